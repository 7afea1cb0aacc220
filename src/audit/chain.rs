//! The hash chain: each event stores the hash of the one before it.
//!
//! `hash = SHA-256("kasvu-audit-v1" ‖ prev_hash ‖ canonical(event))`, where
//! the canonical encoding is fixed-order and length-prefixed (so no two
//! different events encode alike) and covers every column but the hashes,
//! `seq` included, so an edited, deleted, inserted or reordered row breaks the
//! chain at that row. The first event's `prev_hash` is [`genesis`].
//!
//! Months that were archived (`audit archive`) left the database; the
//! ledger `audit_archives` keeps where each one began and ended in the
//! chain, so verification continues from the newest one, and
//! [`super::archive::verify_files`] checks the files against it.

use chrono::{DateTime, Utc};
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

/// The row an event becomes at position `seq` after `prev`, placed in the
/// chain at `recorded_at`.
fn chained(event: &AuditEvent, seq: i64, prev: Vec<u8>, recorded_at: DateTime<Utc>) -> AuditRow {
    let (who, what) = (&event.subject, &event.decided);
    let mut row = AuditRow {
        seq,
        id: event.id,
        occurred_at: event.occurred_at,
        recorded_at,
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

/// The chain's newest event as a writer left it: where the next event goes
/// and what it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub recorded_at: DateTime<Utc>,
}

/// The rows `events` become after `tail` (or the genesis), placed at `now`
/// or at the tail's place if a replica with a clock ahead put it later, so
/// `recorded_at` never falls along the chain and each month's partition
/// holds one unbroken run of it.
fn link(events: &[AuditEvent], tail: Option<&Tail>, now: DateTime<Utc>) -> Vec<AuditRow> {
    let (mut seq, mut prev, recorded_at) = match tail {
        Some(t) => (t.seq, t.hash.clone(), now.max(t.recorded_at)),
        None => (0, genesis().to_vec(), now),
    };
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let row = chained(event, seq, prev, recorded_at);
        prev = row.hash.clone();
        rows.push(row);
    }
    rows
}

fn tail_of(rows: &[AuditRow]) -> Option<Tail> {
    let last = rows.last()?;
    tracing::debug!(seq = last.seq, hash = %hex::encode(&last.hash), "audit chain head");
    Some(Tail { seq: last.seq, hash: last.hash.clone(), recorded_at: last.recorded_at })
}

/// Appends events to the chain inside the caller's transaction: takes the
/// chain's lock (held to commit), reads the tail, links and inserts. Events
/// of a transaction that rolls back leave no gap, since the next writer
/// reads the tail only after this one's lock is released.
pub async fn append(
    conn: &mut AsyncPgConnection,
    events: &[AuditEvent],
    now: DateTime<Utc>,
) -> QueryResult<()> {
    append_knowing(conn, events, now, &store::StoredLists::default()).await.map(drop)
}

/// What an append left: the new tail and the id lists it stored, both
/// valid once its transaction commits.
#[derive(Debug, Default)]
pub struct Appended {
    pub tail: Option<Tail>,
    pub lists: Vec<store::ListKey>,
}

/// [`append`], not sending the id lists `known` to be stored.
pub async fn append_knowing(
    conn: &mut AsyncPgConnection,
    events: &[AuditEvent],
    now: DateTime<Utc>,
    known: &store::StoredLists,
) -> QueryResult<Appended> {
    if events.is_empty() {
        return Ok(Appended::default());
    }
    // The month of `now` is almost always the month the events go to.
    store::lock_chain_ensuring(conn, store::month_of(now)).await?;
    let tail =
        store::tail(conn).await?.map(|(seq, hash, recorded_at)| Tail { seq, hash, recorded_at });
    let rows = link(events, tail.as_ref(), now);
    if let Some(first) = rows.first() {
        if store::month_of(first.recorded_at) != store::month_of(now) {
            store::ensure_partition(conn, store::month_of(first.recorded_at)).await?;
        }
    }
    let lists = store::insert(conn, &rows, known).await?;
    Ok(Appended { tail: tail_of(&rows), lists })
}

/// Appends events after `tail`, the one this writer left, in one statement
/// that commits by itself (outside any transaction): `None`, with nothing
/// stored, if someone else has appended since; the caller then appends the
/// usual way. Same rows as [`append`] would store.
pub async fn append_after(
    conn: &mut AsyncPgConnection,
    tail: &Tail,
    events: &[AuditEvent],
    now: DateTime<Utc>,
    lock_timeout_ms: u128,
    known: &store::StoredLists,
) -> QueryResult<Option<Appended>> {
    let rows = link(events, Some(tail), now);
    if rows.is_empty() {
        return Ok(Some(Appended { tail: Some(tail.clone()), lists: Vec::new() }));
    }
    let sent =
        store::insert_after_tail(conn, (tail.seq, &tail.hash), lock_timeout_ms, &rows, known)
            .await?;
    Ok(sent.map(|lists| Appended { tail: tail_of(&rows), lists }))
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds; the head is the newest event (record it elsewhere:
    /// a chain alone cannot show that its newest events were cut off).
    Intact {
        /// Events in the database, all checked.
        events: u64,
        /// Events in archived months (their files are checked by
        /// `verify_files`; here only that the months continue each other).
        archived: u64,
        head: Option<(i64, String)>,
    },
    Broken {
        /// The `seq` of the first event whose link does not hold.
        seq: i64,
        id: Option<Uuid>,
        reason: String,
        /// Events checked before it.
        checked: u64,
    },
}

/// Follows the chain one event at a time from an anchor (the genesis or an
/// archived month's end), wherever the events come from: the database or
/// an archive file.
pub struct Walker {
    pub expected_seq: i64,
    pub prev: Vec<u8>,
    last_recorded: Option<DateTime<Utc>>,
    pub checked: u64,
}

impl Walker {
    /// After the event at `seq` whose hash is `hash`.
    pub fn after(seq: i64, hash: Vec<u8>) -> Walker {
        Walker { expected_seq: seq + 1, prev: hash, last_recorded: None, checked: 0 }
    }

    pub fn from_genesis() -> Walker {
        Walker::after(0, genesis().to_vec())
    }

    /// Checks the next event: a missing position (a deleted row), a
    /// `prev_hash` that is not the previous row's hash (deleted, inserted or
    /// reordered rows), a hash that does not match the row's content (an
    /// edited row), or a place in time before the previous one's (a row
    /// moved to another month).
    pub fn step(&mut self, r: &AuditRow) -> Result<(), Verdict> {
        let broken = |reason: String| Verdict::Broken {
            seq: r.seq,
            id: Some(r.id),
            reason,
            checked: self.checked,
        };
        if r.seq != self.expected_seq {
            return Err(broken(format!(
                "event {} is missing (the next one is {})",
                self.expected_seq, r.seq
            )));
        }
        if r.prev_hash != self.prev {
            return Err(broken(
                "its previous hash is not the hash of the event before it".to_owned(),
            ));
        }
        if link_hash(&self.prev, r) != r.hash {
            return Err(broken(
                "its content does not match its hash (the event was changed)".to_owned(),
            ));
        }
        if self.last_recorded.is_some_and(|t| r.recorded_at < t) {
            return Err(broken(
                "it is recorded before the event ahead of it (it was moved)".to_owned(),
            ));
        }
        self.prev = r.hash.clone();
        self.last_recorded = Some(r.recorded_at);
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }
}

/// Checks that the archived months continue one another from the genesis,
/// then walks the events in the database from the newest archive's end.
pub async fn verify(conn: &mut AsyncPgConnection) -> QueryResult<Verdict> {
    const PAGE: i64 = 5_000;
    let mut walker = Walker::from_genesis();
    let mut archived = 0u64;
    for a in store::archives(conn).await? {
        if a.first_seq != walker.expected_seq || a.prev_hash != walker.prev {
            return Ok(Verdict::Broken {
                seq: a.first_seq,
                id: None,
                reason: format!(
                    "the archived month {} does not continue the chain where the one before it ended",
                    a.month.format("%Y-%m")
                ),
                checked: archived,
            });
        }
        walker = Walker::after(a.last_seq, a.last_hash);
        archived += u64::try_from(a.events).unwrap_or(0);
    }
    loop {
        let rows = store::in_order(conn, walker.expected_seq - 1, None, PAGE).await?;
        for r in &rows {
            if let Err(broken) = walker.step(r) {
                return Ok(broken);
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    let head =
        (walker.expected_seq > 1).then(|| (walker.expected_seq - 1, hex::encode(&walker.prev)));
    Ok(Verdict::Intact { events: walker.checked, archived, head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Decided, Subject};

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap_or_default()
    }

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
        let base = chained(&event(1), 1, genesis().to_vec(), at());
        let mut variants = Vec::new();
        let mut e = event(1);
        e.decided.allowed = false;
        variants.push(chained(&e, 1, genesis().to_vec(), at()));
        let mut e = event(1);
        e.decided.fields = vec!["em".into(), "ail".into()];
        variants.push(chained(&e, 1, genesis().to_vec(), at()));
        let mut e = event(1);
        e.subject.trace_id = Some(String::new());
        variants.push(chained(&e, 1, genesis().to_vec(), at()));
        variants.push(chained(&event(1), 2, genesis().to_vec(), at()));
        variants.push(chained(&event(1), 1, vec![0; 32], at()));
        for v in variants {
            assert_ne!(v.hash, base.hash);
        }
        // Same content, same hash.
        assert_eq!(chained(&event(1), 1, genesis().to_vec(), at()).hash, base.hash);
    }
}
