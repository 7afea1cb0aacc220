# R9 dpo: every controller's DPO lists and handles every data subject request
# (they are handled jointly) and produces subject access reports; a DPO
# restricts, lifts restriction, sets or lifts a legal hold on and erases the
# contacts (and sole trader companies) its own organisation registered.

grants(p: Principal, _r: Record, "request", "R9-dpo") if
    is_controller(p) and has_role(p, "dpo") and p.in_eu_eea;

# Filing, extending and resolving requests: any controller's DPO, whichever
# organisation received the request (they are handled jointly).
may_write(p: Principal, "handle_request", r: Record, "R9-dpo") if
    r.kind = "request" and is_controller(p) and has_role(p, "dpo") and p.in_eu_eea;

# Filing a restriction or objection request (or a rectification asked to
# restrict while pending) restricts its contact at once, whichever
# controller's DPO received it: the restriction protects the person while the
# request is assessed (GDPR arts. 18, 21, 26). Lifting it is the registering
# organisation's DPO's (above).
may_write(p: Principal, "restrict_on_request", r: Record, "R9-dpo") if
    r.kind = "contact" and is_controller(p) and has_role(p, "dpo") and p.in_eu_eea;

# An objection to direct marketing is unconditional (GDPR art. 21(3)):
# whichever controller's DPO receives it records it at once.
may_write(p: Principal, "object_marketing", r: Record, "R9-dpo") if
    r.kind = "contact" and is_controller(p) and has_role(p, "dpo") and p.in_eu_eea;

may_write(p: Principal, action: String, r: Record, "R9-dpo") if
    action in ["restrict", "lift_restriction", "legal_hold", "lift_legal_hold", "erase"] and
    is_controller(p) and has_role(p, "dpo") and p.in_eu_eea and r.owner = p.org and
    (r.kind = "contact" or (r.kind = "company" and r.sole_trader));

# A subject access report discloses everything every controller holds about
# a person, so only a DPO acting on a data subject request produces one.
grants(p: Principal, _r: Record, "report", "R9-dpo") if
    is_controller(p) and has_role(p, "dpo") and p.in_eu_eea and
    p.purpose = "DATA_SUBJECT_REQUEST";

# R10 auditor: audit events, decision explanations, the policy version and
# the chain check. An auditor role alone reads no personal field: it grants
# only the class `audit` (separation of duties). The trail names who read
# which person's records, so R8 binds auditors too: none abroad reads it.

grants(p: Principal, _r: Record, "audit", "R10-auditor") if
    has_role(p, "auditor") and p.in_eu_eea;
