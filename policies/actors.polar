# Actors and organisations.
#
# A Principal is built by the gateway from a verified token and the
# X-Processing-Purpose header. The policy sees: org, org_kind (CONTROLLER or
# RECIPIENT), roles, in_eu_eea (EU-27, IS, LI, NO) and purpose.
# A Record is what the policy sees of a row: kind (company, confidential,
# contact, service), owner (registering organisation, or a service's
# provider), restricted (processing restricted or an objection pending),
# marketing_objection, in_sector (its company's industry code is in the
# recipients' scope: 01-03, 10, 11), sole_trader and erased.

is_controller(p: Principal) if p.org_kind = "CONTROLLER";
is_recipient(p: Principal) if p.org_kind = "RECIPIENT";

has_role(p: Principal, role: String) if role in p.roles;

# Staff who work with the register's contents (not an auditor alone).
staff(p: Principal) if has_role(p, "viewer");
staff(p: Principal) if has_role(p, "editor");
staff(p: Principal) if has_role(p, "confidential");
staff(p: Principal) if has_role(p, "dpo");

# Personal data classes: emptied on erasure for everyone (R11).
personal("contact.identification");
personal("contact.home");
personal("contact.additional");
personal("history");
