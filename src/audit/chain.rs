//! The hash chain: each event stores the hash of the one before it.
//!
//! `hash = SHA-256("kasvu-audit-v1" ‖ prev_hash ‖ canonical(event))`, where
//! the canonical encoding is fixed-order and length-prefixed (so no two
//! different events encode alike) and covers every column but the hashes,
//! `seq` included, so an edited, deleted, inserted or reordered row breaks the
//! chain at that row. The first event's `prev_hash` is [`genesis`].

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AuditEvent;
use crate::db::audit::{self as store, AuditRow};

const DOMAIN: &[u8] = b"kasvu-audit-v1";

/// The `prev_hash` of the first event: a fixed, documented value.
pub fn genesis() -> [u8; 32] {
    Sha256::digest(b"kasvu-gateway audit genesis").into()
}

struct Canonical(Vec<u8>);

impl Canonical {
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }
    fn text(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.text(s);
            }
        }
    }
    fn texts(&mut self, v: &[Option<String>]) {
        self.len(v.len());
        for s in v {
            self.opt_text(s.as_deref());
        }
    }
    fn uuids(&mut self, v: &[Option<Uuid>]) {
        self.len(v.len());
        for id in v {
            match id {
                None => self.0.push(0),
                Some(id) => {
                    self.0.push(1);
                    self.0.extend_from_slice(id.as_bytes());
                }
            }
        }
    }
}

/// The hashed content of a row: every column but `prev_hash` and `hash`.
fn canonical(r: &AuditRow) -> Vec<u8> {
    let mut c = Canonical(Vec::with_capacity(512));
    c.0.extend_from_slice(&r.seq.to_be_bytes());
    c.0.extend_from_slice(r.id.as_bytes());
    c.0.extend_from_slice(&r.occurred_at.timestamp_micros().to_be_bytes());
    c.text(&r.request_id);
    c.opt_text(r.trace_id.as_deref());
    c.text(&r.actor_sub);
    c.text(&r.actor_org);
    c.texts(&r.actor_roles);
    c.opt_text(r.actor_country.as_deref());
    c.text(&r.purpose);
    c.text(&r.action);
    c.text(&r.resource_type);
    c.uuids(&r.resource_ids);
    c.texts(&r.fields);
    c.texts(&r.field_classes);
    c.0.push(u8::from(r.allowed));
    c.texts(&r.rules);
    c.text(&r.policy_version);
    c.0
}

fn link_hash(prev: &[u8], row: &AuditRow) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(canonical(row));
    h.finalize().to_vec()
}

fn texts(v: &[String]) -> Vec<Option<String>> {
    v.iter().cloned().map(Some).collect()
}

/// The row an event becomes at position `seq` after `prev`.
fn chained(event: &AuditEvent, seq: i64, prev: Vec<u8>) -> AuditRow {
    let (who, what) = (&event.subject, &event.decided);
    let mut row = AuditRow {
        seq,
        id: event.id,
        occurred_at: event.occurred_at,
        request_id: who.request_id.clone(),
        trace_id: who.trace_id.clone(),
        actor_sub: who.sub.clone(),
        actor_org: who.org.clone(),
        actor_roles: texts(&who.roles),
        actor_country: who.country.clone(),
        purpose: who.purpose.clone(),
        action: what.action.clone(),
        resource_type: what.resource_type.clone(),
        resource_ids: what.resource_ids.iter().copied().map(Some).collect(),
        fields: texts(&what.fields),
        field_classes: texts(&what.field_classes),
        allowed: what.allowed,
        rules: texts(&what.rules),
        policy_version: who.policy_version.clone(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    };
    row.hash = link_hash(&prev, &row);
    row.prev_hash = prev;
    row
}

/// Appends events to the chain inside the caller's transaction: takes the
/// chain's lock (held to commit), reads the tail, links and inserts. Events
/// of a transaction that rolls back leave no gap, since the next writer
/// reads the tail only after this one's lock is released.
pub async fn append(conn: &mut AsyncPgConnection, events: &[AuditEvent]) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    store::lock_chain(conn).await?;
    let (mut seq, mut prev) = match store::tail(conn).await? {
        Some((seq, hash)) => (seq, hash),
        None => (0, genesis().to_vec()),
    };
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let row = chained(event, seq, prev);
        prev = row.hash.clone();
        rows.push(row);
    }
    store::insert(conn, &rows).await?;
    if let Some(last) = rows.last() {
        tracing::debug!(seq = last.seq, hash = %hex::encode(&last.hash), "audit chain head");
    }
    Ok(())
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds; the head is the newest event (record it elsewhere:
    /// a chain alone cannot show that its newest events were cut off).
    Intact { events: u64, head: Option<(i64, String)> },
    Broken {
        /// The `seq` of the first event whose link does not hold.
        seq: i64,
        id: Option<Uuid>,
        reason: String,
        /// Events checked before it.
        checked: u64,
    },
}

/// Walks the chain from the genesis in `seq` order and names the first
/// broken link: a missing position (a deleted row), a `prev_hash` that is not
/// the previous row's hash (deleted, inserted or reordered rows), or a hash
/// that does not match the row's content (an edited row).
pub async fn verify(conn: &mut AsyncPgConnection) -> QueryResult<Verdict> {
    const PAGE: i64 = 5_000;
    let mut expected_seq = 1i64;
    let mut prev = genesis().to_vec();
    let mut checked = 0u64;
    loop {
        let rows = store::in_order(conn, expected_seq - 1, PAGE).await?;
        let full_page = rows.len() as i64 == PAGE;
        for r in &rows {
            let broken =
                |reason: String| Verdict::Broken { seq: r.seq, id: Some(r.id), reason, checked };
            if r.seq != expected_seq {
                return Ok(broken(format!(
                    "event {expected_seq} is missing (the next one is {})",
                    r.seq
                )));
            }
            if r.prev_hash != prev {
                return Ok(broken(
                    "its previous hash is not the hash of the event before it".to_owned(),
                ));
            }
            if link_hash(&prev, r) != r.hash {
                return Ok(broken(
                    "its content does not match its hash (the event was changed)".to_owned(),
                ));
            }
            prev = r.hash.clone();
            expected_seq += 1;
            checked += 1;
        }
        if !full_page {
            break;
        }
    }
    let head = (checked > 0).then(|| (expected_seq - 1, hex::encode(&prev)));
    Ok(Verdict::Intact { events: checked, head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Decided, Subject};
    use chrono::DateTime;

    fn event(n: u128) -> AuditEvent {
        AuditEvent {
            id: Uuid::from_u128(n),
            occurred_at: DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap_or_default(),
            subject: Subject::test_viewer(),
            decided: Decided {
                action: "read".into(),
                resource_type: "contact".into(),
                resource_ids: vec![Uuid::from_u128(7)],
                fields: vec!["email".into()],
                field_classes: vec!["contact.identification".into()],
                allowed: true,
                rules: vec!["R1".into()],
            },
        }
    }

    #[test]
    fn every_column_is_covered_by_the_hash() {
        let base = chained(&event(1), 1, genesis().to_vec());
        let mut variants = Vec::new();
        let mut e = event(1);
        e.decided.allowed = false;
        variants.push(chained(&e, 1, genesis().to_vec()));
        let mut e = event(1);
        e.decided.fields = vec!["em".into(), "ail".into()];
        variants.push(chained(&e, 1, genesis().to_vec()));
        let mut e = event(1);
        e.subject.trace_id = Some(String::new());
        variants.push(chained(&e, 1, genesis().to_vec()));
        variants.push(chained(&event(1), 2, genesis().to_vec()));
        variants.push(chained(&event(1), 1, vec![0; 32]));
        for v in variants {
            assert_ne!(v.hash, base.hash);
        }
        // Same content, same hash.
        assert_eq!(chained(&event(1), 1, genesis().to_vec()).hash, base.hash);
    }
}
