//! For auditors (class `audit`, R10): search the audit trail and have a
//! decision explained. Auditors see ids, field names and rules, never values.

use std::str::FromStr;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::connection::{self as conn_page, Conn, Totals};
use super::enums::Organization;
use super::{industry_of, parse_id, policy_error, ContextExt};
use crate::audit::Decided;
use crate::auth::{Actor, Purpose, Role};
use crate::authz::{FieldClass, Principal, Record, ResourceKind};
use crate::db::audit::{self as store, AuditFilter, AuditRow};
use crate::db::visible::Visible;
use crate::db::{self, OrgCode};
use crate::error::{AppError, AppResult};
use crate::validate;

/// One recorded decision.
pub struct AuditEvent(AuditRow);

fn present<T: Clone>(v: &[Option<T>]) -> Vec<T> {
    v.iter().flatten().cloned().collect()
}

#[derive(SimpleObject)]
pub struct AuditActor {
    pub sub: String,
    /// The organisation code as recorded (e.g. `TEM`).
    pub org: String,
    pub roles: Vec<String>,
    pub country: Option<String>,
}

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Position in the hash chain.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn request_id(&self) -> &str {
        &self.0.request_id
    }
    async fn trace_id(&self) -> Option<&str> {
        self.0.trace_id.as_deref()
    }
    async fn actor(&self) -> AuditActor {
        AuditActor {
            sub: self.0.actor_sub.clone(),
            org: self.0.actor_org.clone(),
            roles: present(&self.0.actor_roles),
            country: self.0.actor_country.clone(),
        }
    }
    async fn purpose(&self) -> &str {
        &self.0.purpose
    }
    /// `read`, `create`, `update`, `delete`, `restrict`, …, `explain`, or
    /// `request` for a whole request refused.
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn resource_type(&self) -> &str {
        &self.0.resource_type
    }
    async fn resource_ids(&self) -> Vec<ID> {
        present(&self.0.resource_ids).into_iter().map(|id| ID(id.to_string())).collect()
    }
    /// GraphQL field names read or written (never their values).
    async fn fields(&self) -> Vec<String> {
        present(&self.0.fields)
    }
    async fn field_classes(&self) -> Vec<String> {
        present(&self.0.field_classes)
    }
    async fn allowed(&self) -> bool {
        self.0.allowed
    }
    /// The rules that allowed or denied.
    async fn rules(&self) -> Vec<String> {
        present(&self.0.rules)
    }
    /// SHA-256 of the policy files that decided.
    async fn policy_version(&self) -> &str {
        &self.0.policy_version
    }
    /// This event's link in the chain (hex SHA-256).
    async fn hash(&self) -> String {
        hex::encode(&self.0.hash)
    }
    async fn prev_hash(&self) -> String {
        hex::encode(&self.0.prev_hash)
    }
}

#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    pub actor_sub: Option<String>,
    pub actor_org: Option<Organization>,
    pub purpose: Option<String>,
    pub action: Option<String>,
    /// `company`, `contact`, `service`, `confidential`, `request`, `audit_event`.
    pub resource_type: Option<String>,
    /// Every event that named this resource (an indexed lookup).
    pub resource_id: Option<ID>,
    pub allowed: Option<bool>,
    /// Events decided by this rule (e.g. `R3-recipient-scope`).
    pub rule: Option<String>,
    pub request_id: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

impl AuditEventFilter {
    fn into_store(self) -> AppResult<AuditFilter> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from >= to {
                return Err(AppError::bad_input("to", "must be after from"));
            }
        }
        let resource_id = match &self.resource_id {
            Some(id) => Some(
                Uuid::parse_str(id)
                    .map_err(|_| AppError::bad_input("resourceId", "is not a valid id"))?,
            ),
            None => None,
        };
        Ok(AuditFilter {
            actor_sub: self.actor_sub,
            actor_org: self.actor_org.map(|o| OrgCode::from(o).as_str().to_owned()),
            purpose: self.purpose,
            action: self.action,
            resource_type: self.resource_type,
            resource_id,
            allowed: self.allowed,
            rule: self.rule,
            request_id: self.request_id,
            from: self.from,
            to: self.to,
        })
    }
}

/// Cursors of the audit trail are positions in the chain.
fn encode_cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit|{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("audit|")?.parse().ok()
}

#[derive(InputObject)]
pub struct ExplainActor {
    pub org: Organization,
    /// `viewer`, `editor`, `confidential`, `dpo`, `auditor`.
    pub roles: Vec<String>,
    /// ISO 3166-1 alpha-2 country where the person works.
    #[graphql(default = "FI")]
    pub country: String,
    /// As in X-Processing-Purpose, e.g. `CUSTOMER_RELATIONSHIP`.
    pub purpose: String,
}

/// The facts the policy sees of a record, when it is described rather than named.
#[derive(InputObject, SimpleObject, Clone)]
#[graphql(input_name = "RecordFactsInput")]
pub struct RecordFacts {
    /// The registering organisation (the provider, for a service).
    pub owner: Organization,
    #[graphql(default)]
    pub restricted: bool,
    #[graphql(default)]
    pub marketing_objection: bool,
    /// The company's industry is in the Ministry of Agriculture and Forestry's
    /// and the Food Authority's sector.
    #[graphql(default)]
    pub in_sector: bool,
    #[graphql(default)]
    pub sole_trader: bool,
    #[graphql(default)]
    pub erased: bool,
}

#[derive(InputObject)]
pub struct ExplainResource {
    /// `company`, `contact`, `service`, `confidential` or `request` (a data subject request).
    #[graphql(name = "type")]
    pub kind: String,
    /// A record of the register: its facts are read from it.
    pub id: Option<ID>,
    /// Or the facts, described.
    pub facts: Option<RecordFacts>,
}

#[derive(InputObject)]
pub struct ExplainInput {
    pub actor: ExplainActor,
    /// `read`, `create`, `update`, `delete`, `handle_request`, `restrict`,
    /// `restrict_on_request`, `lift_restriction`, `object_marketing`,
    /// `legal_hold`, `lift_legal_hold`, `erase`.
    pub action: String,
    pub resource: ExplainResource,
    /// For `read`: a GraphQL field name of the resource type (`email`) or a
    /// field class (`contact.home`).
    pub field: Option<String>,
}

#[derive(SimpleObject)]
pub struct Decision {
    pub allowed: bool,
    /// The rules behind the decision: those that allowed it, or the one that
    /// denied it (`R12-default-deny` when nothing allowed).
    pub rules: Vec<String>,
    pub policy_version: String,
    pub action: String,
    /// The class the field belongs to, for a read.
    pub field_class: Option<String>,
    /// What the policy saw of the record.
    pub facts: RecordFacts,
}

/// `read` and every change the gateway asks the policy about.
fn actions() -> impl Iterator<Item = &'static str> {
    std::iter::once("read").chain(crate::authz::Action::ALL.into_iter().map(|a| a.as_str()))
}

/// The kinds of resource a decision can be explained for.
const KINDS: [ResourceKind; 5] = [
    ResourceKind::Company,
    ResourceKind::Contact,
    ResourceKind::Service,
    ResourceKind::Confidential,
    ResourceKind::Request,
];

fn facts_of(r: &Record) -> AppResult<RecordFacts> {
    let owner = OrgCode::from_str(&r.owner)
        .map_err(|_| AppError::internal_msg(format!("unknown owner {}", r.owner)))?;
    Ok(RecordFacts {
        owner: owner.into(),
        restricted: r.restricted,
        marketing_objection: r.marketing_objection,
        in_sector: r.in_sector,
        sole_trader: r.sole_trader,
        erased: r.erased,
    })
}

/// What the policy sees of a record of the register, whoever may see it.
async fn record_by_id(ctx: &Context<'_>, kind: ResourceKind, id: &ID) -> AppResult<Record> {
    let mut conn = ctx.conn().await?;
    let conn = &mut *conn;
    let all = Visible::All;
    let not_found = || AppError::NotFound("resource");
    Ok(match kind {
        ResourceKind::Company => {
            let id: db::CompanyId = parse_id("resource.id", id)?;
            let row = db::companies::by_ids(conn, &[id], &all, crate::db::project::Columns::all())
                .await?
                .pop()
                .ok_or_else(not_found)?;
            Record::company(&row)
        }
        ResourceKind::Contact => {
            let id: db::ContactId = parse_id("resource.id", id)?;
            let row = db::contacts::by_ids(conn, &[id], &all, crate::db::project::Columns::all())
                .await?
                .pop()
                .ok_or_else(not_found)?;
            Record::contact(&row, industry_of(conn, row.company_id).await?.as_deref())
        }
        ResourceKind::Service => {
            let id: db::ServiceId = parse_id("resource.id", id)?;
            let row = db::services::by_ids(conn, &[id], &all, crate::db::project::Columns::all())
                .await?
                .pop()
                .ok_or_else(not_found)?;
            Record::service(&row, industry_of(conn, row.company_id).await?.as_deref())
        }
        ResourceKind::Request => {
            let id: db::RequestId = parse_id("resource.id", id)?;
            let row = db::requests::by_id(conn, id).await?.ok_or_else(not_found)?;
            Record::request(&row)
        }
        ResourceKind::Confidential => {
            let id: db::ConfidentialId = parse_id("resource.id", id)?;
            let row = db::confidential::by_id(conn, id).await?.ok_or_else(not_found)?;
            Record::confidential(&row, industry_of(conn, row.company_id).await?.as_deref())
        }
        ResourceKind::AuditEvent => return Err(not_found()),
    })
}

/// The actor an explanation is about, checked like a token's claims.
fn described_actor(a: &ExplainActor) -> AppResult<Principal> {
    let mut roles = a
        .roles
        .iter()
        .map(|r| {
            Role::from_str(r)
                .map_err(|_| AppError::bad_input("actor.roles", format!("unknown role {r}")))
        })
        .collect::<AppResult<Vec<_>>>()?;
    roles.sort();
    roles.dedup();
    let purpose = Purpose::from_str(&a.purpose)
        .map_err(|_| AppError::bad_input("actor.purpose", "is not a processing purpose"))?;
    let country =
        validate::country(&a.country).map_err(|m| AppError::bad_input("actor.country", m))?;
    Ok(Principal::of(&Actor {
        sub: "explained".to_owned(),
        org: a.org.into(),
        roles,
        country,
        purpose,
    }))
}

#[derive(Default)]
pub struct AuditQuery;

impl AuditQuery {
    /// The auditor's own permission (class `audit`); a denial is recorded.
    pub(crate) fn guard_audit(ctx: &Context<'_>, field: &str) -> AppResult<Vec<String>> {
        let r = ctx.request()?;
        let decision = r.authorizer.may_audit(&r.principal, r.actor.org).map_err(policy_error)?;
        if decision.allowed {
            Ok(decision.rules)
        } else {
            let event = r.audit.deny(
                "read",
                "audit_event",
                None,
                Some(field),
                Some(FieldClass::Audit.as_str()),
                &decision.rules,
            );
            Err(AppError::forbidden(
                format!("field class {} ({})", FieldClass::Audit.as_str(), decision.rule()),
                event,
            ))
        }
    }
}

#[Object]
impl AuditQuery {
    /// The audit trail, newest first.
    #[graphql(complexity = "conn_page::cost(first, child_complexity)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditEventFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Conn<AuditEvent>> {
        let rules = Self::guard_audit(ctx, "auditEvents")?;
        let filter = filter.unwrap_or_default().into_store()?;
        let (page, first) = conn_page::page_request(first, None)?;
        let before =
            match &after {
                Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                    AppError::bad_input("after", "is not a cursor this API issued")
                })?),
                None => None,
            };
        let mut conn = ctx.conn().await?;
        let mut rows =
            store::search(&mut conn, &filter, store::Seq::Before(before), page.limit).await?;
        let total =
            if conn_page::wants_total(ctx) { store::count(&mut conn, &filter).await? } else { 0 };
        let has_next = rows.len() > first;
        rows.truncate(first);
        // Auditors' own reads are on the record too.
        ctx.request()?.audit.push(Decided {
            action: "read".to_owned(),
            resource_type: "audit_event".to_owned(),
            resource_ids: rows.iter().map(|r| r.id).collect(),
            fields: vec!["auditEvents".to_owned()],
            field_classes: vec![FieldClass::Audit.as_str().to_owned()],
            allowed: true,
            rules,
        });
        let mut connection = Connection::with_additional_fields(
            after.is_some(),
            has_next,
            Totals { total_count: total },
        );
        connection
            .edges
            .extend(rows.into_iter().map(|r| Edge::new(encode_cursor(r.seq), AuditEvent(r))));
        Ok(connection)
    }

    /// The decision the policy in force makes for a described actor, action,
    /// resource and field, and the rules behind it.
    async fn explain_decision(
        &self,
        ctx: &Context<'_>,
        input: ExplainInput,
    ) -> AppResult<Decision> {
        let rules = Self::guard_audit(ctx, "explainDecision")?;
        let principal = described_actor(&input.actor)?;
        let action = input.action.trim().to_ascii_lowercase();
        if !actions().any(|a| a == action) {
            return Err(AppError::bad_input(
                "action",
                format!("must be one of {}", actions().collect::<Vec<_>>().join(", ")),
            ));
        }
        let kind = ResourceKind::parse(&input.resource.kind.trim().to_ascii_lowercase())
            .filter(|k| KINDS.contains(k))
            .ok_or_else(|| {
                let kinds: Vec<&str> = KINDS.iter().map(|k| k.as_str()).collect();
                AppError::bad_input("resource.type", format!("must be one of {}", kinds.join(", ")))
            })?;
        let (record, named) = match (&input.resource.id, &input.resource.facts) {
            (Some(id), None) => (record_by_id(ctx, kind, id).await?, Uuid::parse_str(id).ok()),
            (None, Some(f)) => (
                Record {
                    restricted: f.restricted,
                    marketing_objection: f.marketing_objection,
                    in_sector: f.in_sector,
                    sole_trader: f.sole_trader,
                    erased: f.erased,
                    ..Record::new_row(kind, f.owner.into())
                },
                None,
            ),
            _ => return Err(AppError::bad_input("resource", "give either id or facts")),
        };
        let class = match (action.as_str(), &input.field) {
            ("read", None) => return Err(AppError::bad_input("field", "a read needs a field")),
            ("read", Some(f)) => Some(
                FieldClass::parse(f).or_else(|| kind.class_of(f, record.sole_trader)).ok_or_else(
                    || {
                        AppError::bad_input(
                            "field",
                            format!(
                                "{f} is neither a field class nor a guarded field of {}",
                                kind.as_str()
                            ),
                        )
                    },
                )?,
            ),
            _ => None,
        };
        let r = ctx.request()?;
        let verdict =
            r.authorizer.explain(&principal, &action, &record, class).map_err(policy_error)?;
        r.audit.push(Decided {
            action: "explain".to_owned(),
            resource_type: kind.as_str().to_owned(),
            resource_ids: named.into_iter().collect(),
            fields: input.field.iter().cloned().collect(),
            field_classes: vec![FieldClass::Audit.as_str().to_owned()],
            allowed: true,
            rules,
        });
        Ok(Decision {
            allowed: verdict.allowed,
            rules: verdict.rules,
            policy_version: r.authorizer.version().to_owned(),
            action,
            field_class: class.map(|c| c.as_str().to_owned()),
            facts: facts_of(&record)?,
        })
    }
}
