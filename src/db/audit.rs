//! The audit trail's tables: insert and select only (the gateway's role may
//! do nothing else there, and triggers refuse changes from anyone).
//!
//! Events live in `audit_events`, partitioned by the month of `recorded_at`;
//! their resource id lists live once per month in `audit_resource_sets`,
//! named by digest; the view `audit_trail` joins them back, and is what
//! everything reads. The chain itself (hashes, order) is `crate::audit`'s;
//! this module only stores and finds rows.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::rows::narrow;
use super::schema::{audit_archives, audit_events, audit_resource_sets};

diesel::table! {
    /// The view `audit_trail` (migration 000006): an event with its ids.
    /// Written by hand: `diesel print-schema` leaves views out.
    audit_trail (seq) {
        seq -> Int8,
        id -> Uuid,
        occurred_at -> Timestamptz,
        recorded_at -> Timestamptz,
        request_id -> Text,
        trace_id -> Nullable<Text>,
        actor_sub -> Text,
        actor_org -> Text,
        actor_roles -> Array<Nullable<Text>>,
        actor_country -> Nullable<Text>,
        purpose -> Text,
        action -> Text,
        resource_type -> Text,
        resource_set -> Bytea,
        resource_ids -> Array<Nullable<Uuid>>,
        fields -> Array<Nullable<Text>>,
        field_classes -> Array<Nullable<Text>>,
        allowed -> Bool,
        rules -> Array<Nullable<Text>>,
        policy_version -> Text,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

/// One event as the chain hashes it and auditors read it. Array columns are
/// `Array<Nullable<_>>` in diesel's schema (Postgres arrays may hold NULLs);
/// the gateway never writes one, and `audit verify` hashes what is there.
/// As JSON (an archive file's line), the hashes are hex.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = audit_trail, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub seq: i64,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// When the event took its place in the chain: never before the event
    /// ahead of it, so months hold unbroken runs of the chain. Not hashed
    /// (chains from before partitioning had no such column); `audit verify`
    /// checks that it never falls.
    pub recorded_at: DateTime<Utc>,
    pub request_id: String,
    pub trace_id: Option<String>,
    pub actor_sub: String,
    pub actor_org: String,
    pub actor_roles: Vec<Option<String>>,
    pub actor_country: Option<String>,
    pub purpose: String,
    pub action: String,
    pub resource_type: String,
    pub resource_ids: Vec<Option<Uuid>>,
    pub fields: Vec<Option<String>>,
    pub field_classes: Vec<Option<String>>,
    pub allowed: bool,
    pub rules: Vec<Option<String>>,
    pub policy_version: String,
    #[serde(with = "hex::serde")]
    pub prev_hash: Vec<u8>,
    #[serde(with = "hex::serde")]
    pub hash: Vec<u8>,
}

/// An event as stored: its ids replaced by their list's digest. As JSON
/// (for `audit_append_after`) its keys are the columns' names and its
/// `bytea` columns Postgres' hex input form, so `jsonb_populate_recordset`
/// reads back exactly these values.
#[derive(Insertable, serde::Serialize)]
#[diesel(table_name = audit_events)]
struct StoredEvent<'a> {
    seq: i64,
    id: Uuid,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    request_id: &'a str,
    trace_id: Option<&'a str>,
    actor_sub: &'a str,
    actor_org: &'a str,
    actor_roles: &'a [Option<String>],
    actor_country: Option<&'a str>,
    purpose: &'a str,
    action: &'a str,
    resource_type: &'a str,
    #[serde(serialize_with = "bytea")]
    resource_set: Vec<u8>,
    fields: &'a [Option<String>],
    field_classes: &'a [Option<String>],
    allowed: bool,
    rules: &'a [Option<String>],
    policy_version: &'a str,
    #[serde(serialize_with = "bytea")]
    prev_hash: &'a [u8],
    #[serde(serialize_with = "bytea")]
    hash: &'a [u8],
}

#[derive(Insertable, serde::Serialize)]
#[diesel(table_name = audit_resource_sets)]
struct StoredSet<'a> {
    month: NaiveDate,
    #[serde(serialize_with = "bytea")]
    digest: Vec<u8>,
    ids: &'a [Option<Uuid>],
}

/// `bytea`'s hex input form, `\x…`.
fn bytea<S: serde::Serializer, B: AsRef<[u8]>>(b: &B, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("\\x{}", hex::encode(b.as_ref())))
}

/// The first day of `t`'s month in UTC: the partition it belongs to.
pub fn month_of(t: DateTime<Utc>) -> NaiveDate {
    let d = t.date_naive();
    d.with_day(1).unwrap_or(d)
}

/// The name of an id list: SHA-256 over the ids' 16-byte forms in order
/// (the migration computes the same in SQL for the events it moved).
pub fn set_digest(ids: &[Option<Uuid>]) -> Vec<u8> {
    let mut h = Sha256::new();
    for id in ids.iter().flatten() {
        h.update(id.as_bytes());
    }
    h.finalize().to_vec()
}

/// The key of the transaction-scoped advisory lock that serializes appends.
const CHAIN_LOCK: i64 = 0x6b61_7376_7561_7564; // "kasvuaud"

diesel::define_sql_function! {
    /// Postgres' transaction-scoped advisory lock.
    fn pg_advisory_xact_lock(key: BigInt);
}

/// Which of these events are stored (committed): a change's own event is its
/// commit receipt, so a client whose connection to the answer was lost can
/// be told whether its change was made.
pub async fn stored_ids(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    audit_events::table
        .filter(audit_events::id.eq_any(ids))
        .select(audit_events::id)
        .load(conn)
        .await
}

/// Takes the chain's lock until the transaction ends: whoever holds it reads
/// the tail and appends, so the chain has one order across every writer
/// (batches, mutations, other replicas).
pub async fn lock_chain(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::select(pg_advisory_xact_lock(CHAIN_LOCK)).execute(conn).await.map(|_| ())
}

/// [`lock_chain`] and [`ensure_partition`] for `day`'s month in one round
/// trip (the lock first: the select list is evaluated in order).
pub async fn lock_chain_ensuring(conn: &mut AsyncPgConnection, day: NaiveDate) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1), audit_ensure_partition($2)")
        .bind::<BigInt, _>(CHAIN_LOCK)
        .bind::<Date, _>(day)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Creates the partitions of `day`'s month if they are missing (as the
/// tables' owner, through a function the gateway's role may call).
pub async fn ensure_partition(conn: &mut AsyncPgConnection, day: NaiveDate) -> QueryResult<()> {
    diesel::sql_query("SELECT audit_ensure_partition($1)")
        .bind::<Date, _>(day)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The newest event's position, hash and place in time.
pub async fn tail(
    conn: &mut AsyncPgConnection,
) -> QueryResult<Option<(i64, Vec<u8>, DateTime<Utc>)>> {
    audit_events::table
        .select((audit_events::seq, audit_events::hash, audit_events::recorded_at))
        .order(audit_events::seq.desc())
        .first(conn)
        .await
        .optional()
}

/// An id list's place: its month and digest.
pub type ListKey = (NaiveDate, Vec<u8>);

/// Id lists a writer knows are stored (it committed them), so it need not
/// send them again: Postgres would parse them only to find the conflict.
/// Bounded; when full it forgets them all (a forgotten list is only sent
/// again, and left as it is).
#[derive(Debug, Default)]
pub struct StoredLists(std::collections::HashSet<ListKey>);

impl StoredLists {
    const MAX: usize = 4096;

    /// After the commit that stored them, never before.
    pub fn remember(&mut self, keys: Vec<ListKey>) {
        if self.0.len() + keys.len() > Self::MAX {
            self.0.clear();
        }
        self.0.extend(keys);
    }
}

/// Rows as stored: each distinct id list once per month (but those `known`
/// to be stored), then the events naming their lists by digest.
fn stored_forms<'a>(
    rows: &'a [AuditRow],
    known: &StoredLists,
) -> (Vec<StoredSet<'a>>, Vec<StoredEvent<'a>>) {
    let digests: Vec<Vec<u8>> = rows.iter().map(|r| set_digest(&r.resource_ids)).collect();
    let mut sets: Vec<StoredSet> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (r, digest) in rows.iter().zip(&digests) {
        let month = month_of(r.recorded_at);
        let key = (month, digest.clone());
        if !known.0.contains(&key) && seen.insert(key) {
            sets.push(StoredSet { month, digest: digest.clone(), ids: &r.resource_ids });
        }
    }
    let events = rows
        .iter()
        .zip(digests)
        .map(|(r, resource_set)| StoredEvent {
            seq: r.seq,
            id: r.id,
            occurred_at: r.occurred_at,
            recorded_at: r.recorded_at,
            request_id: &r.request_id,
            trace_id: r.trace_id.as_deref(),
            actor_sub: &r.actor_sub,
            actor_org: &r.actor_org,
            actor_roles: &r.actor_roles,
            actor_country: r.actor_country.as_deref(),
            purpose: &r.purpose,
            action: &r.action,
            resource_type: &r.resource_type,
            resource_set,
            fields: &r.fields,
            field_classes: &r.field_classes,
            allowed: r.allowed,
            rules: &r.rules,
            policy_version: &r.policy_version,
            prev_hash: &r.prev_hash,
            hash: &r.hash,
        })
        .collect();
    (sets, events)
}

fn list_keys(sets: &[StoredSet]) -> Vec<ListKey> {
    sets.iter().map(|s| (s.month, s.digest.clone())).collect()
}

/// Inserts rows already chained by the caller, in the caller's transaction
/// (a list stored before is left as it is; 21 columns an event, so chunks of
/// 1,000 stay far below Postgres' 65,535 bind parameters). Returns the lists
/// it sent, to be remembered once the transaction commits.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    rows: &[AuditRow],
    known: &StoredLists,
) -> QueryResult<Vec<ListKey>> {
    let (sets, events) = stored_forms(rows, known);
    for chunk in sets.chunks(1000) {
        diesel::insert_into(audit_resource_sets::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    for chunk in events.chunks(1000) {
        diesel::insert_into(audit_events::table).values(chunk).execute(conn).await?;
    }
    Ok(list_keys(&sets))
}

fn to_json<T: serde::Serialize>(v: &T) -> QueryResult<String> {
    serde_json::to_string(v).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Lock, partition, tail check and insert in one statement that commits on
/// its own (migration 000009), for rows chained to the tail `(seq, hash)`:
/// the lists it sent, or `None`, with nothing stored, if the chain's tail is
/// another by now. Must not run inside a transaction block, or it would not
/// be one round trip.
pub async fn insert_after_tail(
    conn: &mut AsyncPgConnection,
    tail: (i64, &[u8]),
    lock_timeout_ms: u128,
    rows: &[AuditRow],
    known: &StoredLists,
) -> QueryResult<Option<Vec<ListKey>>> {
    #[derive(QueryableByName)]
    struct Appended {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        appended: bool,
    }
    let Some(first) = rows.first() else { return Ok(Some(Vec::new())) };
    let (sets, events) = stored_forms(rows, known);
    let answer: Appended = diesel::sql_query(
        "SELECT audit_append_after($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb) AS appended",
    )
    .bind::<BigInt, _>(CHAIN_LOCK)
    .bind::<Date, _>(month_of(first.recorded_at))
    .bind::<diesel::sql_types::Text, _>(lock_timeout_ms.to_string())
    .bind::<BigInt, _>(tail.0)
    .bind::<diesel::sql_types::Bytea, _>(tail.1)
    .bind::<diesel::sql_types::Text, _>(to_json(&sets)?)
    .bind::<diesel::sql_types::Text, _>(to_json(&events)?)
    .get_result(conn)
    .await?;
    Ok(answer.appended.then(|| list_keys(&sets)))
}

/// Events in chain order from `after_seq` on (for `audit verify`), only of
/// `month`'s partition if one is named (for `audit archive`).
pub async fn in_order(
    conn: &mut AsyncPgConnection,
    after_seq: i64,
    month: Option<NaiveDate>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut q = audit_trail::table
        .filter(audit_trail::seq.gt(after_seq))
        .order(audit_trail::seq.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .into_boxed();
    if let Some((from, to)) = month.and_then(month_bounds) {
        q = q.filter(audit_trail::recorded_at.ge(from)).filter(audit_trail::recorded_at.lt(to));
    }
    q.load(conn).await
}

/// The instants a month's partition spans: [first day, first of the next).
pub fn month_bounds(month: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let next = month.checked_add_months(chrono::Months::new(1))?;
    Some((month.and_hms_opt(0, 0, 0)?.and_utc(), next.and_hms_opt(0, 0, 0)?.and_utc()))
}

/// A month that left the database for an archive file, and where in the
/// chain it was.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_archives, check_for_backend(diesel::pg::Pg))]
pub struct Archived {
    pub month: NaiveDate,
    pub events: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub prev_hash: Vec<u8>,
    pub last_hash: Vec<u8>,
    pub file_name: String,
    pub file_sha256: Vec<u8>,
    #[diesel(skip_insertion)]
    pub archived_at: DateTime<Utc>,
}

/// The archived months, oldest first.
pub async fn archives(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Archived>> {
    audit_archives::table
        .order(audit_archives::month.asc())
        .select(Archived::as_select())
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = Date)]
    month: NaiveDate,
}

/// The partitions of `audit_events` (`audit_events_y2026m12`, …): each
/// one's month, relation and name suffix, as SQL to select from.
const PARTITIONS: &str = "SELECT to_date(right(c.relname, 8), '\"y\"YYYY\"m\"MM') AS month, \
       c.oid AS events_rel, right(c.relname, 8) AS suffix \
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'audit_events'::regclass";

/// The months with a partition of events, oldest first.
pub async fn partition_months(conn: &mut AsyncPgConnection) -> QueryResult<Vec<NaiveDate>> {
    let rows: Vec<Partition> =
        diesel::sql_query(format!("SELECT month FROM ({PARTITIONS}) p ORDER BY month"))
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|p| p.month).collect())
}

/// What a month of the audit trail costs on disk.
#[derive(Debug, Clone, QueryableByName)]
pub struct MonthSize {
    #[diesel(sql_type = Date)]
    pub month: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    /// Distinct id lists stored.
    #[diesel(sql_type = BigInt)]
    pub sets: i64,
    /// The events' partition: rows, TOAST and indexes.
    #[diesel(sql_type = BigInt)]
    pub event_bytes: i64,
    #[diesel(sql_type = BigInt)]
    pub event_index_bytes: i64,
    /// The id lists' partition: rows, TOAST and indexes.
    #[diesel(sql_type = BigInt)]
    pub set_bytes: i64,
}

/// Every month in the database with its events and bytes (counts read every
/// row: an operator's command, not the request path).
pub async fn sizes(conn: &mut AsyncPgConnection) -> QueryResult<Vec<MonthSize>> {
    diesel::sql_query(format!(
        "WITH parts AS ( \
           SELECT month, events_rel, to_regclass('audit_resource_sets_' || suffix) AS sets_rel \
           FROM ({PARTITIONS}) p), \
         e AS (SELECT date_trunc('month', recorded_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n \
               FROM audit_events GROUP BY 1), \
         s AS (SELECT month, count(*) AS n FROM audit_resource_sets GROUP BY 1) \
         SELECT p.month, coalesce(e.n, 0) AS events, coalesce(s.n, 0) AS sets, \
                pg_total_relation_size(p.events_rel) AS event_bytes, \
                pg_indexes_size(p.events_rel) AS event_index_bytes, \
                coalesce(pg_total_relation_size(p.sets_rel), 0) AS set_bytes \
         FROM parts p LEFT JOIN e USING (month) LEFT JOIN s USING (month) ORDER BY p.month"
    ))
    .load(conn)
    .await
}

/// Records the month in the ledger and detaches and drops its partitions,
/// in the caller's transaction (so all of it happens or none). Needs the
/// tables' owner: the gateway's role cannot.
pub async fn detach_archived(conn: &mut AsyncPgConnection, archived: &Archived) -> QueryResult<()> {
    diesel::insert_into(audit_archives::table).values(archived).execute(conn).await?;
    let suffix = archived.month.format("y%Ym%m");
    for table in ["audit_events", "audit_resource_sets"] {
        diesel::sql_query(format!("ALTER TABLE {table} DETACH PARTITION {table}_{suffix}"))
            .execute(conn)
            .await?;
        diesel::sql_query(format!("DROP TABLE {table}_{suffix}")).execute(conn).await?;
    }
    Ok(())
}

/// What auditors search by; every part is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_sub: Option<String>,
    pub actor_org: Option<String>,
    pub purpose: Option<String>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub allowed: Option<bool>,
    pub rule: Option<String>,
    pub request_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

type Boxed<'a> = audit_trail::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(f: &AuditFilter) -> Boxed<'static> {
    let mut q = audit_trail::table.into_boxed();
    // `@>` on the GIN indexes: every event that named this id (through the
    // lists that hold it), or this rule. A lower bound on the time also
    // bounds `recorded_at` (an event is placed after it happened), so only
    // the months from then on are read.
    narrow!(q, f;
        actor_sub => |v| audit_trail::actor_sub.eq(v),
        actor_org => |v| audit_trail::actor_org.eq(v),
        purpose => |v| audit_trail::purpose.eq(v),
        action => |v| audit_trail::action.eq(v),
        resource_type => |v| audit_trail::resource_type.eq(v),
        resource_id => |v| audit_trail::resource_ids.contains(vec![Some(v)]),
        allowed => |v| audit_trail::allowed.eq(v),
        rule => |v| audit_trail::rules.contains(vec![Some(v)]),
        request_id => |v| audit_trail::request_id.eq(v),
        from => |v| audit_trail::occurred_at.ge(v).and(audit_trail::recorded_at.ge(v)),
        to => |v| audit_trail::occurred_at.lt(v),
    );
    q
}

/// Which way a page runs from a position in the chain: newest first from
/// before a seq (auditors' searches), or oldest first from after one
/// (`audit tail --follow`).
pub enum Seq {
    Before(Option<i64>),
    After(Option<i64>),
}

/// A page of matching events, in the direction `from` says.
pub async fn search(
    conn: &mut AsyncPgConnection,
    filter: &AuditFilter,
    from: Seq,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let q = filtered(filter);
    let q = match from {
        Seq::Before(seq) => {
            let q = q.order(audit_trail::seq.desc());
            match seq {
                Some(seq) => q.filter(audit_trail::seq.lt(seq)),
                None => q,
            }
        }
        Seq::After(seq) => {
            let q = q.order(audit_trail::seq.asc());
            match seq {
                Some(seq) => q.filter(audit_trail::seq.gt(seq)),
                None => q,
            }
        }
    };
    q.limit(limit).select(AuditRow::as_select()).load(conn).await
}

pub async fn count(conn: &mut AsyncPgConnection, filter: &AuditFilter) -> QueryResult<i64> {
    filtered(filter).count().get_result(conn).await
}

/// Bounds how long the audit writer's transaction waits for a lock (a table
/// locked by someone else) or runs, so it fails instead of hanging.
/// One statement for both: a commit's round trips are its latency when
/// requests come one at a time.
pub async fn set_local_timeouts(conn: &mut AsyncPgConnection, millis: u128) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $1, true)",
    )
    .bind::<diesel::sql_types::Text, _>(millis.to_string())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Which organisation read any of these resources, when, and which field
/// classes (a subject access report's recipients, from the audit trail).
#[derive(Debug, Clone, QueryableByName)]
pub struct Disclosure {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub actor_org: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub first_read: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub last_read: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub events: i64,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub field_classes: Vec<String>,
}

pub async fn disclosures(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<Disclosure>> {
    // `&&` (overlap) on the GIN index of resource_ids.
    diesel::sql_query(
        "SELECT actor_org, min(occurred_at) AS first_read, max(occurred_at) AS last_read, \
                count(DISTINCT seq) AS events, \
                array_agg(DISTINCT class ORDER BY class) AS field_classes \
         FROM audit_trail CROSS JOIN LATERAL unnest(field_classes) AS class \
         WHERE allowed AND action = 'read' AND resource_ids && $1 \
         GROUP BY actor_org ORDER BY actor_org",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .load(conn)
    .await
}
