//! Enforcement: every read and write the GraphQL layer serves is decided
//! here, and nowhere else.
//!
//! - A register object's fields pass through [`FieldGuard`], set on the whole
//!   `#[Object]` impl (`#[Object(guard = "FieldGuard(self)")]`): the field's
//!   declaration in [`crate::register`] names its class, the policy decides,
//!   allowed reads of audited classes are recorded, denials are recorded and
//!   answered FORBIDDEN. A field with no declaration is denied. Resolvers are
//!   plain getters.
//! - Root fields and whole lists are judged by [`Enforce::read_class`] with the
//!   class of what they list ([`guard_register`]).
//! - Writes: [`Enforce::guard_write`] on the locked row, [`authorize_kind`]
//!   before the input is judged; the allowed change's event is a
//!   [`WriteGrant`], committed in the change's own transaction.

use async_graphql::Context;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::{ContextExt, Receipts};
use crate::audit::{chain, AuditEvent, Decided};
use crate::authz::{Action, Decision, FieldClass, Record, ResourceKind, DEFAULT_DENY};
use crate::error::{AppError, AppResult};

/// A register object: what its fields are declared as, and what the policy
/// sees of it.
pub trait Resource: Send + Sync {
    const KIND: ResourceKind;
    fn record(&self) -> &Record;
    fn id(&self) -> Uuid;
}

/// The guard of every field of a [`Resource`]'s `#[Object]` impl.
pub struct FieldGuard<'a, R: Resource>(pub &'a R);

impl<R: Resource> async_graphql::Guard for FieldGuard<'_, R> {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let name = ctx.field().name();
        let record = self.0.record();
        let id = self.0.id();
        let decided = match R::KIND.field(name) {
            None => Err(undeclared(ctx, R::KIND, name, id)),
            Some(field) => match field.access.class(record.sole_trader) {
                // An id, a tombstone's time, or a list whose rows judge themselves.
                None => Ok(()),
                Some(class) => match allowed_rules(ctx, record, class) {
                    // The common case, without allocating: allowed, and
                    // recorded when the class is audited.
                    Some((r, kind, rules)) => {
                        if class.is_audited() {
                            r.audit.read(kind.as_str(), id, name, class.as_str(), rules);
                        }
                        Ok(())
                    }
                    // Denied (recorded, with its error) or outside the table.
                    None => ctx.read_class(record, class, Some(id), name).map(drop),
                },
            },
        };
        decided.map_err(Into::into)
    }
}

/// The rules that let the request's actor read `class` of `record`, from the
/// table resolved for the request; `None` when denied or not in the table
/// (the caller then takes [`Enforce::read_class`], which decides the same
/// through the authorizer and builds the denial).
fn allowed_rules<'c>(
    ctx: &'c Context<'_>,
    record: &Record,
    class: FieldClass,
) -> Option<(&'c super::RequestContext, ResourceKind, &'c [String])> {
    let r = ctx.request().ok()?;
    let kind = record.resource()?;
    let entry = r.actor_table.as_deref()?.lookup(&r.principal.org, record)?;
    Some((r, kind, entry.readable(class.as_str())?))
}

/// A field served without a declaration: denied and recorded, and the bug
/// logged. The next person adding a field cannot serve it by forgetting.
fn undeclared(ctx: &Context<'_>, kind: ResourceKind, field: &str, id: Uuid) -> AppError {
    tracing::error!(
        "{}.{field} has no declaration in src/register.rs; it is denied",
        kind.graphql_type()
    );
    match ctx.request() {
        Ok(r) => denied_read(r, kind, Some(id), field, None, &[DEFAULT_DENY.to_owned()]),
        Err(e) => e,
    }
}

/// A denial another processing purpose would lift says so: the same actor,
/// the same (visible) record, another `X-Processing-Purpose`. Whatever is
/// hidden from the actor is NOT_FOUND before any of this, so the hint tells
/// nothing about rows it may not see.
fn purpose_hint(
    r: &super::RequestContext,
    allowed: impl Fn(&crate::authz::Principal) -> bool,
) -> Option<String> {
    crate::auth::Purpose::ALL
        .iter()
        .filter(|p| p.as_str() != r.principal.purpose)
        .find(|p| {
            let mut other = r.principal.clone();
            other.purpose = p.as_str().to_owned();
            allowed(&other)
        })
        .map(|p| {
            format!(
                "allowed with the header X-Processing-Purpose: {} (when that is why you are processing it)",
                p.as_str()
            )
        })
}

/// A denied read: recorded, and the FORBIDDEN that names the class (or the
/// missing declaration), the rule and the event.
fn denied_read(
    r: &super::RequestContext,
    kind: ResourceKind,
    id: Option<Uuid>,
    field: &str,
    class: Option<FieldClass>,
    rules: &[String],
) -> AppError {
    let rule = rules.first().map_or(DEFAULT_DENY, String::as_str);
    let event =
        r.audit.deny("read", kind.as_str(), id, Some(field), class.map(FieldClass::as_str), rules);
    let what = match class {
        Some(c) => format!("field class {}", c.as_str()),
        None => format!("{field} has no access declaration"),
    };
    AppError::forbidden(format!("{what} ({rule})"), event)
}

/// The decisions the resolvers ask for.
pub trait Enforce {
    /// May this actor read `class` of `record` (resource `id`, if one row)?
    /// Allowed reads of audited classes of a row are recorded; a denial is
    /// recorded and answered FORBIDDEN naming the class, the rule and the
    /// event. The decision is returned, so what a caller records itself is
    /// built from the rules that decided.
    fn read_class(
        &self,
        record: &Record,
        class: FieldClass,
        id: Option<Uuid>,
        field: &str,
    ) -> AppResult<Decision>;
    /// Whether `class` of `record` is readable, deciding nothing the client
    /// sees and recording nothing (which change-log entries to show).
    fn may_read(&self, record: &Record, class: FieldClass) -> AppResult<bool>;
    /// May this actor make this change? A record hidden from the actor is
    /// `NOT_FOUND`, a denied change `FORBIDDEN` (both recorded). Allowed, the
    /// grant must be committed in the change's transaction ([`WriteGrant::commit`]).
    fn guard_write(
        &self,
        action: Action,
        record: &Record,
        id: Option<Uuid>,
    ) -> AppResult<WriteGrant>;
}

fn kind_of(record: &Record) -> AppResult<ResourceKind> {
    record
        .resource()
        .ok_or_else(|| AppError::internal_msg(format!("unknown resource kind {}", record.kind)))
}

impl Enforce for Context<'_> {
    fn read_class(
        &self,
        record: &Record,
        class: FieldClass,
        id: Option<Uuid>,
        field: &str,
    ) -> AppResult<Decision> {
        let r = self.request()?;
        let kind = kind_of(record)?;
        let decision =
            r.authorizer.read_field(&r.principal, record, class).map_err(policy_error)?;
        if !decision.allowed {
            // A page denies the same class of rows alike many times over:
            // the hint is worked out once per record shape and class.
            let hint = r.hints.get_or_insert(record, class, || {
                purpose_hint(r, |p| {
                    r.authorizer.read_field(p, record, class).is_ok_and(|d| d.allowed)
                })
            });
            return Err(
                denied_read(r, kind, id, field, Some(class), &decision.rules).with_hint(hint)
            );
        }
        if let (true, Some(id)) = (class.is_audited(), id) {
            r.audit.read(kind.as_str(), id, field, class.as_str(), &decision.rules);
        }
        Ok(decision)
    }

    fn may_read(&self, record: &Record, class: FieldClass) -> AppResult<bool> {
        let r = self.request()?;
        Ok(r.authorizer.read_field(&r.principal, record, class).map_err(policy_error)?.allowed)
    }

    fn guard_write(
        &self,
        action: Action,
        record: &Record,
        id: Option<Uuid>,
    ) -> AppResult<WriteGrant> {
        let r = self.request()?;
        let kind = kind_of(record)?;
        let (decision, hidden) =
            r.authorizer.write(&r.principal, action, record).map_err(policy_error)?;
        if hidden || !decision.allowed {
            let event =
                r.audit.deny(action.as_str(), kind.as_str(), id, None, None, &decision.rules);
            return Err(if hidden {
                AppError::NotFound("record")
            } else {
                let hint = purpose_hint(r, |p| {
                    r.authorizer
                        .write(p, action, record)
                        .is_ok_and(|(d, hidden)| d.allowed && !hidden)
                });
                AppError::forbidden(
                    format!(
                        "{} {} is not allowed ({})",
                        action.as_str(),
                        kind.as_str(),
                        decision.rule()
                    ),
                    event,
                )
                .with_hint(hint)
            });
        }
        Ok(WriteGrant {
            receipts: r.receipts.clone(),
            field: root_key(self),
            event: r.audit.subject().event(
                Uuid::new_v4(),
                Decided {
                    action: action.as_str().to_owned(),
                    resource_type: kind.as_str().to_owned(),
                    resource_ids: Vec::new(),
                    fields: written_fields(self),
                    field_classes: Vec::new(),
                    allowed: true,
                    rules: decision.rules,
                },
            ),
        })
    }
}

/// An allowed change whose audit event commits with the change itself.
#[must_use = "the grant's audit event must be committed with the change"]
pub struct WriteGrant {
    event: AuditEvent,
    /// Where the receipt goes once the event is appended, and under which field.
    receipts: std::sync::Arc<Receipts>,
    field: String,
}

impl WriteGrant {
    /// Appends the change's event to the chain inside the mutation's
    /// transaction: the change and its record commit together or not at all.
    /// It is the transaction's last statement, so from here on only the
    /// commit decides: the event is kept as the change's receipt.
    pub async fn commit(mut self, conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<()> {
        self.event.decided.resource_ids = vec![id];
        let event = self.event.id;
        chain::append(conn, &[self.event], crate::audit::now_micros()).await.map_err(|e| {
            tracing::error!(error = %e, "a change's audit event was not stored; the change is rolled back");
            AppError::Unavailable("the audit trail")
        })?;
        self.receipts.push(self.field, event);
        Ok(())
    }

    /// The rules that allowed the change (for what it records besides).
    pub fn rules(&self) -> &[String] {
        &self.event.decided.rules
    }
}

/// The response key of the root field being resolved (the mutation).
fn root_key(ctx: &Context<'_>) -> String {
    let mut node = ctx.path_node.as_ref();
    let mut key = String::new();
    while let Some(n) = node {
        if let async_graphql::QueryPathSegment::Name(name) = n.segment {
            key = name.to_owned();
        }
        node = n.parent;
    }
    key
}

/// The input fields a mutation names (never their values), for its audit event.
fn written_fields(ctx: &Context<'_>) -> Vec<String> {
    let mut fields: Vec<String> = ctx
        .field()
        .arguments()
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(name, value)| match value {
            async_graphql::Value::Object(o) => o.keys().map(|k| k.to_string()).collect(),
            _ => vec![name.to_string()],
        })
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// The register's root fields (`companies`, `contact(id)` …) and whole lists
/// (`dataSubjectRequests`): refused with one FORBIDDEN (recorded) to an actor
/// who may not read the class that identifies `kind`'s rows, rather than a
/// list of ids with every field denied. Decided before any id is looked at,
/// so the answer tells nothing about what exists.
pub fn guard_register(ctx: &Context<'_>, kind: ResourceKind) -> AppResult<Decision> {
    let org = ctx.org()?;
    let record = Record { in_sector: true, ..Record::new_row(kind, org) };
    ctx.read_class(&record, kind.listing_class(), None, ctx.field().name())
}

/// Authorization before the input is judged: an actor the policy lets make
/// no `action` on any record of `kind` (a recipient, an auditor) is
/// FORBIDDEN (recorded) before validation could tell it anything. The
/// record's own decision follows once it is locked.
pub fn authorize_kind(ctx: &Context<'_>, action: Action, kind: ResourceKind) -> AppResult<()> {
    let org = ctx.org()?;
    // The most permissive facts a record of `kind` can have: in the
    // recipients' sector, and a sole trader (whose rights R9 covers).
    let record = Record {
        in_sector: true,
        sole_trader: kind == ResourceKind::Company,
        ..Record::new_row(kind, org)
    };
    // Allowed, the grant is dropped: the change records its own event.
    ctx.guard_write(action, &record, None).map(drop)
}

/// A policy that fails to evaluate is an internal error: the cause is logged,
/// and nothing is disclosed (fail closed).
pub fn policy_error(e: anyhow::Error) -> AppError {
    AppError::internal_msg(format!("policy evaluation failed: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Recorder, Subject};
    use crate::auth::{Actor, Purpose, Role};
    use crate::authz::{Authorizer, Principal};
    use crate::db::OrgCode;
    use crate::graphql::loader::DbReader;
    use crate::graphql::RequestContext;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, ID};
    use std::sync::Arc;

    /// A contact type as the next developer might extend it: one declared
    /// field and one they forgot to declare.
    struct Probe(Record);

    impl Resource for Probe {
        const KIND: ResourceKind = ResourceKind::Contact;
        fn record(&self) -> &Record {
            &self.0
        }
        fn id(&self) -> Uuid {
            Uuid::nil()
        }
    }

    #[Object(guard = "FieldGuard(self)")]
    impl Probe {
        async fn id(&self) -> ID {
            ID("probe".into())
        }
        async fn first_name(&self) -> Option<&str> {
            Some("Maija")
        }
        async fn birth_date(&self) -> Option<&str> {
            Some("1970-01-01")
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn probe(&self) -> Probe {
            Probe(Record::new_row(ResourceKind::Contact, OrgCode::Tem))
        }
    }

    fn context(roles: Vec<Role>, recorder: Arc<Recorder>) -> RequestContext {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let authorizer = Arc::new(Authorizer::load(&dir).expect("the policy loads"));
        let actor = Actor {
            sub: "probe".into(),
            org: OrgCode::Tem,
            roles,
            country: "FI".into(),
            purpose: Purpose::CustomerRelationship,
        };
        let principal = Principal::of(&actor);
        let visibility = authorizer.visibility(&principal).expect("visibility");
        // Never connected: the probe reads no rows.
        let pool = crate::db::build_pool(
            "postgres://nobody@127.0.0.1:1/none",
            &crate::db::PoolSettings::default(),
            Default::default(),
        )
        .expect("pool");
        RequestContext {
            actor_table: authorizer.actor_table(&principal),
            actor,
            principal,
            authorizer,
            loader: async_graphql::dataloader::DataLoader::with_cache(
                DbReader::new(pool, visibility.clone(), Default::default()),
                tokio::spawn,
                crate::graphql::loader::LoaderCache::new(),
            ),
            visibility,
            request_id: "probe-request".into(),
            projection: Default::default(),
            audit: recorder,
            hints: Default::default(),
            receipts: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_field_nobody_declared_is_denied_and_recorded() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(crate::graphql::nulls::FieldErrors)
            .finish();
        let subject = Subject::of(
            &Actor {
                sub: "probe".into(),
                org: OrgCode::Tem,
                roles: vec![Role::Viewer],
                country: "FI".into(),
                purpose: Purpose::CustomerRelationship,
            },
            "probe-request",
            None,
            "test",
        );
        let recorder = Arc::new(Recorder::new(subject));
        let request = async_graphql::Request::new("{ probe { id firstName birthDate } }")
            .data(context(vec![Role::Viewer], recorder.clone()));
        let response = serde_json::to_value(schema.execute(request).await).expect("json");
        // The declared field is served (R1), the undeclared one is not.
        assert_eq!(
            response["data"],
            serde_json::json!({ "probe": { "id": "probe", "firstName": "Maija", "birthDate": null } })
        );
        assert_eq!(response["errors"][0]["path"], serde_json::json!(["probe", "birthDate"]));
        assert_eq!(response["errors"][0]["extensions"]["code"], "FORBIDDEN");
        let events = recorder.finish();
        let denial = events.iter().find(|e| !e.decided.allowed).expect("the denial is recorded");
        assert_eq!(denial.decided.fields, vec!["birthDate".to_owned()]);
        assert_eq!(denial.decided.rules, vec![DEFAULT_DENY.to_owned()]);
        // The allowed read of an audited class is recorded too.
        assert!(events
            .iter()
            .any(|e| e.decided.allowed && e.decided.fields == vec!["firstName".to_owned()]));
    }
}
