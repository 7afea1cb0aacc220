# R4 write-own: an editor of a controller, in the EU/EEA, creates companies,
# contacts and services for its own organisation and updates or deletes only
# rows its organisation registered (a service: provided). Confidential rows
# also need the role `confidential`. Recipients never write.

may_write(p: Principal, action: String, r: Record, "R4-write-own") if
    action in ["create", "update", "delete"] and
    r.kind in ["company", "contact", "service"] and
    is_controller(p) and has_role(p, "editor") and p.in_eu_eea and r.owner = p.org;

may_write(p: Principal, action: String, r: Record, "R4-write-own") if
    action in ["create", "update", "delete"] and r.kind = "confidential" and
    is_controller(p) and has_role(p, "editor") and has_role(p, "confidential") and
    p.in_eu_eea and r.owner = p.org;
