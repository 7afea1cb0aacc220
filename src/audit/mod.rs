//! The audit trail of authorization decisions (docs/access.md, "Auditing decisions").
//!
//! A request's decisions are gathered by its [`Recorder`] (one event per
//! resource type, decision and field set), handed to the [`AuditWriter`], and
//! the response waits until they are committed. Events are hash-chained by
//! [`chain::append`], the only code that inserts them; `audit verify` walks the
//! chain with [`chain::verify`].

pub mod archive;
pub mod chain;
pub mod recorder;
pub mod writer;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Actor;

pub use recorder::Recorder;
pub use writer::{AuditError, AuditWriter, WriterSettings};

/// Who decided-for, in which request: what every event of a request shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub request_id: String,
    pub trace_id: Option<String>,
    pub sub: String,
    pub org: String,
    pub roles: Vec<String>,
    pub country: Option<String>,
    pub purpose: String,
    pub policy_version: String,
}

#[cfg(test)]
impl Subject {
    /// A TEM viewer in Finland, for the unit tests of the writer and the chain.
    pub(crate) fn test_viewer() -> Subject {
        Subject {
            request_id: "req".into(),
            trace_id: None,
            sub: "s".into(),
            org: "TEM".into(),
            roles: vec!["viewer".into()],
            country: Some("FI".into()),
            purpose: "CUSTOMER_RELATIONSHIP".into(),
            policy_version: "v".into(),
        }
    }
}

impl Subject {
    pub fn of(actor: &Actor, request_id: &str, trace_id: Option<&str>, policy: &str) -> Self {
        Subject {
            request_id: request_id.to_owned(),
            trace_id: trace_id.map(str::to_owned),
            sub: actor.sub.clone(),
            org: actor.org.as_str().to_owned(),
            roles: actor.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            country: Some(actor.country.clone()),
            purpose: actor.purpose.as_str().to_owned(),
            policy_version: policy.to_owned(),
        }
    }
}

/// What an event says, apart from who and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decided {
    /// `read`, `create`, `update`, `delete`, `restrict`, …, `explain`, or
    /// `request` for a whole request refused.
    pub action: String,
    pub resource_type: String,
    pub resource_ids: Vec<Uuid>,
    /// GraphQL field names read or written (never their values).
    pub fields: Vec<String>,
    pub field_classes: Vec<String>,
    pub allowed: bool,
    pub rules: Vec<String>,
}

/// One decision about a set of resources, before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: Uuid,
    /// Microsecond precision, as Postgres stores it (the hash covers it).
    pub occurred_at: DateTime<Utc>,
    pub subject: Subject,
    pub decided: Decided,
}

impl Subject {
    pub fn event(&self, id: Uuid, decided: Decided) -> AuditEvent {
        AuditEvent { id, occurred_at: now_micros(), subject: self.clone(), decided }
    }
}

/// Now, cut to the microseconds Postgres keeps, so the stored time hashes the
/// same as the one the writer hashed.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The W3C `traceparent` trace id of a request, or a fresh one, so an event
/// always names the trace its request's logs carry.
pub fn trace_id(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|tp| {
            let mut parts = tp.trim().split('-');
            let (_version, trace) = (parts.next()?, parts.next()?);
            let valid = trace.len() == 32
                && trace.bytes().all(|b| b.is_ascii_hexdigit())
                && trace.bytes().any(|b| b != b'0');
            valid.then(|| trace.to_ascii_lowercase())
        })
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string())
}

/// One event as a line a person reads in a terminal (`audit tail`): when,
/// who, for what, what, about which resources, the decision and its rules,
/// the request. Field names and ids only, never values.
pub fn tail_line(e: &crate::db::audit::AuditRow) -> String {
    let list =
        |v: &[Option<String>]| v.iter().flatten().map(String::as_str).collect::<Vec<_>>().join(",");
    let ids: Vec<String> = e.resource_ids.iter().flatten().map(Uuid::to_string).collect();
    let resources = match ids.len() {
        0 => "-".to_owned(),
        1 => ids[0].clone(),
        n => format!("{} (+{} more)", ids[0], n - 1),
    };
    format!(
        "{seq:>8} {time} {org}/{sub} [{roles}] {purpose} {verdict} {action} {kind} {resources} fields={fields} rules={rules} request={request}",
        seq = e.seq,
        time = e.occurred_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
        org = e.actor_org,
        sub = e.actor_sub,
        roles = list(&e.actor_roles),
        purpose = e.purpose,
        verdict = if e.allowed { "ALLOW" } else { "DENY " },
        action = e.action,
        kind = e.resource_type,
        fields = list(&e.fields),
        rules = list(&e.rules),
        request = e.request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_comes_from_traceparent_or_is_made() {
        assert_eq!(
            trace_id(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        for bad in
            [None, Some("garbage"), Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")]
        {
            let made = trace_id(bad);
            assert_eq!(made.len(), 32);
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
}
