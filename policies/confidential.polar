# R2 confidential-own: confidential company data (funding decisions, risk
# ratings) is read only by the role `confidential` of the organisation that
# registered it: not TEM, not a DPO, not anyone abroad. Other organisations'
# confidential rows are invisible, so their existence is not disclosed either.

grants(p: Principal, r: Record, "company.confidential", "R2-confidential-own") if
    r.kind = "confidential" and is_controller(p) and has_role(p, "confidential") and
    p.in_eu_eea and r.owner = p.org;

hidden(p: Principal, r: Record, "R2-confidential-own") if
    r.kind = "confidential" and not (has_role(p, "confidential") and r.owner = p.org and p.in_eu_eea);

# R3 internal-own: a service's amount and notes are internal to its provider.
grants(p: Principal, r: Record, "service.internal", "R3-internal-own") if
    r.kind = "service" and is_controller(p) and staff(p) and p.in_eu_eea and r.owner = p.org;
