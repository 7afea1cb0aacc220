//! The response cache in the request path (docs/cache.md).
//!
//! A query is looked up under a key made of everything its answer depends on
//! apart from the data: the normalized document, operation name and
//! variables, the actor's policy-visible facts (never who they are), the
//! policy version and the schema. An entry is valid while every table the
//! execution read is at the version it was read at. What an execution read
//! is observed, not declared (`db::reads`): an answer that read the audit
//! trail, the clock or the actor's identity is not stored.
//!
//! An entry carries the audit events its execution recorded. A hit records
//! them again, for its own actor, request and trace, through the same group
//! commit and before the response, so the trail is the same cached or not;
//! the `auditEventId`s in the answer's errors name the hit's own events.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::{Response as GqlResponse, ServerError, Value};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::HttpState;
use crate::audit::{AuditEvent, Decided, Recorder};
use crate::cache::{Entry, Key};
use crate::db::reads::ReadSet;
use crate::db::versions::Versions;

/// Bumped when the entry format or the key's ingredients change.
const FORMAT: &str = "kasvu-response-v1";

/// A query that may be answered from the cache: its key, and the versions
/// in force when it came in (an entry it stores is labelled with them).
pub struct Plan {
    key: Key,
    versions: Arc<Versions>,
}

/// What a cached entry holds: the answer, and the events its execution
/// recorded. Written from the executed answer without copying it; read with
/// `data` left as JSON text, which the response then carries as it is.
#[derive(serde::Serialize)]
struct StoredOut<'a> {
    data: &'a Value,
    #[serde(skip_serializing_if = "<[ServerError]>::is_empty")]
    errors: &'a [ServerError],
    events: Vec<StoredEvent>,
}

#[derive(serde::Deserialize)]
struct StoredIn {
    data: Box<RawValue>,
    /// Left as text too: a page with a denied field has an error per row,
    /// and reading them into `ServerError`s (whose path segments are an
    /// untagged enum) cost more than the rest of a hit together.
    #[serde(default)]
    errors: Option<Box<RawValue>>,
    events: Vec<StoredEvent>,
}

/// A cached answer as a hit sends it: its data and errors as JSON text.
pub(super) struct Hit {
    pub data: Box<RawValue>,
    pub errors: Option<Box<RawValue>>,
}

/// A stored answer's errors as this request sends them: each `auditEventId`
/// renamed to the hit's own event and `traceId` the hit's trace, as
/// `with_codes` would have written them; everything else as stored.
fn replay_errors(
    stored: &RawValue,
    renamed: &HashMap<String, String>,
    trace_id: Option<&str>,
) -> serde_json::Result<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct In<'a> {
        #[serde(borrow)]
        message: &'a RawValue,
        #[serde(borrow, default)]
        locations: Option<&'a RawValue>,
        #[serde(borrow, default)]
        path: Option<&'a RawValue>,
        #[serde(borrow, default)]
        extensions: BTreeMap<Cow<'a, str>, &'a RawValue>,
    }
    // The field order and skipping of `ServerError`'s own serialization.
    #[derive(serde::Serialize)]
    struct Out<'a> {
        message: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        locations: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        extensions: BTreeMap<Cow<'a, str>, Ext<'a>>,
    }
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Ext<'a> {
        Raw(&'a RawValue),
        Text(&'a str),
    }
    let errors: Vec<In> = serde_json::from_str(stored.get())?;
    let out: Vec<Out> = errors
        .iter()
        .map(|e| {
            let mut extensions: BTreeMap<Cow<str>, Ext> =
                e.extensions.iter().map(|(k, v)| (k.clone(), Ext::Raw(v))).collect();
            if let Some(id) = e.extensions.get("auditEventId") {
                let id = serde_json::from_str::<Cow<str>>(id.get()).unwrap_or_default();
                if let Some(new) = renamed.get(id.as_ref()) {
                    extensions.insert(Cow::Borrowed("auditEventId"), Ext::Text(new));
                }
            }
            if let Some(trace_id) = trace_id {
                extensions.insert(Cow::Borrowed("traceId"), Ext::Text(trace_id));
            }
            Out { message: e.message, locations: e.locations, path: e.path, extensions }
        })
        .collect();
    serde_json::value::to_raw_value(&out)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    /// The id the answer's errors name (replaced by the hit's own).
    id: Uuid,
    decided: Decided,
}

/// The document with insignificant characters removed (comments, commas,
/// white space except one between two names or numbers), strings kept as
/// written: alike documents share entries, different ones never do.
pub fn normalize(query: &str) -> String {
    // A space between two of these may be the difference between tokens
    // (`a b`), or between a valid and an invalid document (`- 1`, `. ..`).
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.';
    let mut out = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    let mut space = false;
    let push = |out: &mut String, c: char, space: &mut bool| {
        if *space && word(c) && out.ends_with(word) {
            out.push(' ');
        }
        *space = false;
        out.push(c);
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' || d == '\r' {
                        break;
                    }
                }
                space = true;
            }
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => space = true,
            '"' => {
                push(&mut out, '"', &mut space);
                let block = chars.peek() == Some(&'"') && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&'"')
                };
                if block {
                    out.push_str("\"\"");
                    chars.next();
                    chars.next();
                    let mut quotes = 0;
                    for d in chars.by_ref() {
                        out.push(d);
                        quotes = if d == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 && !out[..out.len() - 3].ends_with('\\') {
                            break;
                        }
                    }
                } else {
                    let mut escaped = false;
                    for d in chars.by_ref() {
                        out.push(d);
                        if escaped {
                            escaped = false;
                        } else if d == '\\' {
                            escaped = true;
                        } else if d == '"' || d == '\n' {
                            break;
                        }
                    }
                }
            }
            c => push(&mut out, c, &mut space),
        }
    }
    out
}

impl HttpState {
    /// Whether this request may use the cache; if not, why (a bypass reason
    /// of `metrics::BYPASS_REASONS`).
    pub(super) fn plan(
        &self,
        principal: &crate::authz::Principal,
        policy_version: &str,
        request: &async_graphql::Request,
        is_query: bool,
    ) -> Result<Plan, &'static str> {
        let cache = &self.app.cache;
        if !cache.enabled() {
            return Err("disabled");
        }
        if !is_query {
            return Err("not_a_query");
        }
        let Some(versions) = cache.versions.current() else {
            return Err("versions_unknown");
        };
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part(FORMAT.as_bytes());
        part(self.schema_hash.as_bytes());
        // What validation allows: an entry stored by a replica with looser
        // limits (or introspection on) is never served by a stricter one.
        let limits = &self.app.config.limits;
        part(&(limits.max_depth as u64).to_le_bytes());
        part(&(limits.max_complexity as u64).to_le_bytes());
        part(&[u8::from(self.app.config.enable_graphiql)]);
        part(policy_version.as_bytes());
        // The facts the policy decides by; the person (sub, name) is not one.
        part(principal.org.as_bytes());
        part(principal.org_kind.as_bytes());
        part(principal.roles.join(",").as_bytes());
        part(if principal.in_eu_eea { b"eu" } else { b"abroad" });
        part(principal.purpose.as_bytes());
        part(normalize(&request.query).as_bytes());
        part(request.operation_name.as_deref().unwrap_or("").as_bytes());
        part(&serde_json::to_vec(&request.variables).unwrap_or_default());
        Ok(Plan { key: h.finalize().into(), versions })
    }

    /// A valid entry's answer (its data and errors as JSON text), its events
    /// recorded again in `recorder` under new ids (which the answer's errors
    /// then name), its errors naming this request's trace.
    pub(super) async fn cached(
        &self,
        plan: &Plan,
        recorder: &Recorder,
        trace_id: Option<&str>,
    ) -> Option<Hit> {
        let (entry, _tier) = self.app.cache.get(&plan.key, &plan.versions).await?;
        let unreadable = |e: serde_json::Error| {
            tracing::warn!(error = %e, "an unreadable cache entry was ignored");
        };
        let stored: StoredIn = serde_json::from_slice(&entry.body).map_err(unreadable).ok()?;
        // Read before any event is recorded again: a hit that cannot be
        // answered must leave nothing in the trail.
        let ids: Vec<Uuid> = stored.events.iter().map(|_| Uuid::new_v4()).collect();
        let renamed: HashMap<String, String> = stored
            .events
            .iter()
            .zip(&ids)
            .map(|(e, new)| (e.id.to_string(), new.to_string()))
            .collect();
        let errors = match &stored.errors {
            Some(errors) => {
                Some(replay_errors(errors, &renamed, trace_id).map_err(unreadable).ok()?)
            }
            None => None,
        };
        for (e, id) in stored.events.into_iter().zip(ids) {
            recorder.push_as(id, e.decided);
        }
        Some(Hit { data: stored.data, errors })
    }

    /// The entry of an executed answer if it depends on nothing but the key
    /// and the versions of what it read; otherwise why not.
    pub(super) fn prepare(
        &self,
        plan: Plan,
        response: &GqlResponse,
        events: &[AuditEvent],
        reads: &ReadSet,
    ) -> Result<(Key, Entry), &'static str> {
        // Only the policy's own outcomes are part of an answer; a fault is not.
        let policy_only = response.errors.iter().all(|e| {
            !e.path.is_empty()
                && e.extensions.as_ref().and_then(|x| x.get("code")).is_some_and(
                    |c| matches!(c, Value::String(s) if s == "FORBIDDEN" || s == "NOT_FOUND"),
                )
        });
        if response.data == Value::Null || !policy_only {
            return Err("error");
        }
        let tables = reads.outcome().map_err(|why| {
            tracing::debug!(why, "answer not cached");
            "unversioned_read"
        })?;
        let stored = StoredOut {
            data: &response.data,
            errors: &response.errors,
            events: events
                .iter()
                .map(|e| StoredEvent { id: e.id, decided: e.decided.clone() })
                .collect(),
        };
        let body = serde_json::to_vec(&stored).map_err(|_| "error")?;
        if body.len() > self.app.cache.config.cache_max_entry_bytes {
            return Err("too_large");
        }
        let deps = tables
            .into_iter()
            .map(|t| (t.to_owned(), plan.versions.get(t).copied().unwrap_or(0)))
            .collect();
        Ok((plan.key, Entry { deps, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizing_drops_what_graphql_ignores_and_keeps_strings() {
        assert_eq!(
            normalize("query  Q {\n  companies(first: 10,  after: \"a  b\") # note\n { nodes { name } } }"),
            "query Q{companies(first:10 after:\"a  b\"){nodes{name}}}"
        );
        assert_eq!(normalize("{a}"), normalize(" {  a , } "));
        assert_ne!(normalize("{ a(s: \"x  y\") }"), normalize("{ a(s: \"x y\") }"));
        assert_eq!(
            normalize("{ a(s: \"\"\" # not a comment \"\"\") }"),
            "{a(s:\"\"\" # not a comment \"\"\")}"
        );
        assert_eq!(normalize("{ a(s: \"q\\\"#\") }"), "{a(s:\"q\\\"#\")}");
        assert_ne!(normalize("{ a b }"), normalize("{ ab }"));
        assert_ne!(normalize("{ a(n: - 1) }"), normalize("{ a(n: -1) }"));
        assert_ne!(normalize("{ ... on A { b } }"), normalize("{ ...onA { b } }"));
    }
}
