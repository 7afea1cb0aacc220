# R5 restricted: a contact whose processing is restricted (GDPR art. 18), or
# whose objection is being assessed, is stored but not processed: invisible to
# everyone but a DPO handling a data subject request.

hidden(p: Principal, r: Record, "R5-restricted") if
    r.restricted and not (handles_requests(p) and p.purpose = "DATA_SUBJECT_REQUEST");

# A controller's DPO in the EU/EEA: who handles data subject requests (R9).
# A recipient's DPO handles none (R7), and nothing restricted goes abroad (R8).
handles_requests(p: Principal) if is_controller(p) and has_role(p, "dpo") and p.in_eu_eea;

# R6 marketing: for direct marketing, contacts who objected to it (always
# honoured) or whose processing is restricted are invisible. Recipients and
# actors abroad may not use the purpose at all.

hidden(p: Principal, r: Record, "R6-marketing") if
    p.purpose = "MARKETING" and (r.marketing_objection or r.restricted);

refused(p: Principal, "R6-marketing") if p.purpose = "MARKETING" and is_recipient(p);
refused(p: Principal, "R6-marketing") if p.purpose = "MARKETING" and not p.in_eu_eea;

# R11 erased: an erased record is invisible to everyone but a DPO, who sees its
# tombstone; its personal fields are empty for everyone (see `personal`).

hidden(p: Principal, r: Record, "R11-erased") if r.erased and not handles_requests(p);
