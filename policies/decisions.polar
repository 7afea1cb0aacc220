# How the gateway asks. R12 default-deny: whatever no rule below allows is
# denied; the gateway reports "R12-default-deny" when nothing matched.
#
# refused(actor, rule)                    the whole request is refused (403)
# hidden(actor, record, rule)             the record is invisible (NOT_FOUND, left out of lists)
# readable(actor, record, class, rule)    a field class the actor may read on a visible record
# may_write(actor, action, record, rule)  a mutation the actor may make

readable(p: Principal, r: Record, class: String, rule: String) if
    grants(p, r, class, rule) and not (r.erased and personal(class));

# The classic form, for operators trying the policy in the Polar REPL:
# may this actor make this change to this record?
allow(p: Principal, action: String, r: Record) if may_write(p, action, r, _);
