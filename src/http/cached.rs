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

use std::sync::Arc;

use async_graphql::{Response as GqlResponse, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::HttpState;
use crate::audit::{AuditEvent, Decided, Recorder};
use crate::cache::{Entry, Key};
use crate::db::reads::ReadSet;
use crate::db::versions::Versions;

/// Bumped when the entry format or the key's ingredients change.
const FORMAT: &str = "kasvu-response-v2";

/// A query that may be answered from the cache: its key, and the versions
/// in force when it came in (an entry it stores is labelled with them).
pub struct Plan {
    key: Key,
    versions: Arc<Versions>,
}

/// What a cached entry holds: this header as one JSON line, then the
/// answer's data and its errors as the JSON text a response carries. A hit
/// copies the text without reading it (a page with a denied field has an
/// error per row, and reading those back cost more than the rest of a hit),
/// putting its own event ids and trace id into the holes the header names.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    /// The events the execution recorded, recorded again by each hit.
    events: Vec<StoredEvent>,
    data_len: usize,
    errors_len: usize,
    /// Ascending, within the errors' text.
    holes: Vec<Hole>,
}

/// A JSON string in the errors' text (quotes included) that a hit replaces:
/// an `auditEventId` (the event's index in `events`) or the `traceId`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Hole {
    at: usize,
    len: usize,
    event: Option<usize>,
}

/// A cached answer as a hit sends it: its data and errors as JSON text.
pub(super) struct Hit {
    pub data: Vec<u8>,
    pub errors: Option<Vec<u8>>,
}

/// Where each `"key":"` is followed by a JSON string in `text`: the
/// string's offset and length, quotes included (the values written here are
/// uuids and hex, never escaped).
fn string_values<'t>(text: &'t str, key: &str) -> impl Iterator<Item = (usize, &'t str)> + 't {
    let needle = format!("\"{key}\":\"");
    let starts: Vec<usize> =
        text.match_indices(&needle).map(|(at, _)| at + needle.len() - 1).collect();
    starts.into_iter().filter_map(move |at| {
        let end = text[at + 1..].find('"')? + at + 2;
        Some((at, &text[at..end]))
    })
}

/// The errors as stored: `with_codes`' `traceId` already in place (a
/// placeholder), then the holes of it and of the event ids.
fn errors_with_holes(
    response: &GqlResponse,
    events: &[AuditEvent],
) -> Result<(Vec<u8>, Vec<Hole>), &'static str> {
    if response.errors.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let placeholder = format!("\"{}\"", Uuid::new_v4().simple());
    let mut errors = response.errors.clone();
    for e in &mut errors {
        e.extensions.get_or_insert_with(Default::default).set("traceId", &placeholder[1..33]);
    }
    let text = serde_json::to_string(&errors).map_err(|_| "error")?;
    let mut holes: Vec<Hole> = string_values(&text, "traceId")
        .filter(|(_, v)| *v == placeholder)
        .map(|(at, v)| Hole { at, len: v.len(), event: None })
        .collect();
    for (at, v) in string_values(&text, "auditEventId") {
        let Some(i) = events.iter().position(|e| v.get(1..v.len() - 1) == Some(&e.id.to_string()))
        else {
            // An error naming an event this execution did not record.
            return Err("error");
        };
        holes.push(Hole { at, len: v.len(), event: Some(i) });
    }
    holes.sort_by_key(|h| h.at);
    Ok((text.into_bytes(), holes))
}

/// The stored errors with this hit's event ids and trace in the holes.
fn fill_holes(text: &[u8], holes: &[Hole], ids: &[Uuid], trace_id: &str) -> Option<Vec<u8>> {
    let trace = serde_json::to_vec(trace_id).ok()?;
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut pos = 0;
    for h in holes {
        out.extend_from_slice(text.get(pos..h.at)?);
        match h.event {
            Some(i) => {
                out.push(b'"');
                out.extend_from_slice(ids.get(i)?.hyphenated().to_string().as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(&trace),
        }
        pos = h.at.checked_add(h.len)?;
    }
    out.extend_from_slice(text.get(pos..)?);
    Some(out)
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
        trace_id: &str,
    ) -> Option<Hit> {
        let (entry, _tier) = self.app.cache.get(&plan.key, &plan.versions).await?;
        let hit = replay(&entry.body, trace_id);
        if hit.is_none() {
            tracing::warn!("an unreadable cache entry was ignored");
        }
        // Recorded only once the answer is whole: a hit that cannot be
        // answered leaves nothing in the trail.
        let (hit, events, ids) = hit?;
        for (e, id) in events.into_iter().zip(ids) {
            recorder.push_as(id, e.decided);
        }
        Some(hit)
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
        let data = serde_json::to_vec(&response.data).map_err(|_| "error")?;
        let (errors, holes) = errors_with_holes(response, events)?;
        let header = Header {
            events: events
                .iter()
                .map(|e| StoredEvent { id: e.id, decided: e.decided.clone() })
                .collect(),
            data_len: data.len(),
            errors_len: errors.len(),
            holes,
        };
        let mut body = serde_json::to_vec(&header).map_err(|_| "error")?;
        body.push(b'\n');
        body.extend_from_slice(&data);
        body.extend_from_slice(&errors);
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

/// An entry's answer with new event ids, the events, and those ids; `None`
/// if the entry is not one this format wrote.
fn replay(body: &[u8], trace_id: &str) -> Option<(Hit, Vec<StoredEvent>, Vec<Uuid>)> {
    let split = body.iter().position(|b| *b == b'\n')?;
    let header: Header = serde_json::from_slice(&body[..split]).ok()?;
    let rest = &body[split + 1..];
    if rest.len() != header.data_len.checked_add(header.errors_len)? {
        return None;
    }
    let (data, errors) = rest.split_at(header.data_len);
    let ids: Vec<Uuid> = header.events.iter().map(|_| Uuid::new_v4()).collect();
    let errors = match errors.is_empty() {
        true => None,
        false => Some(fill_holes(errors, &header.holes, &ids, trace_id)?),
    };
    Some((Hit { data: data.to_vec(), errors }, header.events, ids))
}

#[cfg(test)]
mod tests {
    use super::{errors_with_holes, normalize, replay, Header, StoredEvent};
    use crate::audit::{AuditEvent, Decided, Subject};
    use uuid::Uuid;

    fn denied(event: Uuid, row: usize) -> async_graphql::ServerError {
        let mut e =
            async_graphql::ServerError::new("access denied: field class service.internal", None);
        e.path = vec![
            async_graphql::PathSegment::Field("services".into()),
            async_graphql::PathSegment::Index(row),
            async_graphql::PathSegment::Field("amountEur".into()),
        ];
        let ext = e.extensions.get_or_insert_with(Default::default);
        ext.set("code", "FORBIDDEN");
        ext.set("auditEventId", event.to_string());
        e
    }

    /// An entry as `prepare` writes it, for an answer with two denied rows.
    fn entry() -> (Vec<u8>, Vec<AuditEvent>) {
        let subject = Subject {
            request_id: "r".into(),
            trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
            sub: "s".into(),
            org: "TEM".into(),
            roles: vec!["viewer".into()],
            country: None,
            purpose: "CUSTOMER_RELATIONSHIP".into(),
            policy_version: "v".into(),
        };
        let decided = Decided {
            action: "read".into(),
            resource_type: "service".into(),
            resource_ids: vec![Uuid::from_u128(1)],
            fields: vec!["amountEur".into()],
            field_classes: vec!["service.internal".into()],
            allowed: false,
            rules: vec!["R12-default-deny".into()],
        };
        let events = vec![subject.event(Uuid::new_v4(), decided)];
        let mut response = async_graphql::Response::new(async_graphql::Value::Null);
        response.errors = vec![denied(events[0].id, 0), denied(events[0].id, 1)];
        let (errors, holes) = errors_with_holes(&response, &events).expect("errors");
        let header = Header {
            events: events
                .iter()
                .map(|e| StoredEvent { id: e.id, decided: e.decided.clone() })
                .collect(),
            data_len: 4,
            errors_len: errors.len(),
            holes,
        };
        let mut body = serde_json::to_vec(&header).expect("header");
        body.push(b'\n');
        body.extend_from_slice(b"null");
        body.extend_from_slice(&errors);
        (body, events)
    }

    #[test]
    fn a_replayed_answer_names_the_hits_events_and_trace_and_nothing_else_changes() {
        let (body, events) = entry();
        let (hit, replayed, ids) = replay(&body, "4bf92f3577b34da6a3ce929d0e0e4736").expect("hit");
        assert_eq!(replayed.len(), 1);
        assert_ne!(ids[0], events[0].id);
        let errors: serde_json::Value =
            serde_json::from_slice(&hit.errors.expect("errors")).expect("valid JSON");
        let want = |row: usize| {
            serde_json::json!({
                "message": "access denied: field class service.internal",
                "path": ["services", row, "amountEur"],
                "extensions": {
                    "auditEventId": ids[0].to_string(),
                    "code": "FORBIDDEN",
                    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                },
            })
        };
        assert_eq!(errors, serde_json::json!([want(0), want(1)]));
        // A trace id is written as a JSON string whatever it holds.
        let (hit, _, _) = replay(&body, "a\"b").expect("hit");
        let errors: serde_json::Value =
            serde_json::from_slice(&hit.errors.expect("errors")).expect("valid JSON");
        assert_eq!(errors[0]["extensions"]["traceId"], "a\"b");
    }

    #[test]
    fn an_entry_that_does_not_add_up_is_ignored() {
        let (body, _) = entry();
        let split = body.iter().position(|b| *b == b'\n').expect("header line");
        let header = || -> Header { serde_json::from_slice(&body[..split]).expect("header") };
        let with = |header: &Header| {
            let mut b = serde_json::to_vec(header).expect("header");
            b.push(b'\n');
            b.extend_from_slice(&body[split + 1..]);
            b
        };
        assert!(replay(&with(&header()), "t").is_some());
        // Cut short, or longer than its header says.
        assert!(replay(&body[..body.len() - 1], "t").is_none());
        assert!(replay(&[body.as_slice(), b"x"].concat(), "t").is_none());
        // A hole past the end, holes out of order, an event that is not there.
        let mut h = header();
        let (last, len) = (h.holes.len() - 1, h.errors_len);
        h.holes[last].at = len + 10;
        assert!(replay(&with(&h), "t").is_none());
        let mut h = header();
        h.holes.swap(0, 1);
        assert!(replay(&with(&h), "t").is_none());
        let mut h = header();
        if let Some(hole) = h.holes.iter_mut().find(|hole| hole.event.is_some()) {
            hole.event = Some(7);
        }
        assert!(replay(&with(&h), "t").is_none());
        assert!(replay(b"not an entry", "t").is_none());
    }

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
