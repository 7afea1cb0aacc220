//! The `audit_events` table: insert and select only (the gateway's role may do
//! nothing else there, and a trigger refuses changes from anyone).
//!
//! The chain itself (hashes, order) is `crate::audit`'s; this module only
//! stores and finds rows.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::rows::narrow;
use super::schema::audit_events;

/// One stored event, as selected and as inserted. Array columns are
/// `Array<Nullable<_>>` in diesel's schema (Postgres arrays may hold NULLs);
/// the gateway never writes one, and `audit verify` hashes what is there.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct AuditRow {
    pub seq: i64,
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
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
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The key of the transaction-scoped advisory lock that serializes appends.
const CHAIN_LOCK: i64 = 0x6b61_7376_7561_7564; // "kasvuaud"

diesel::define_sql_function! {
    /// Postgres' transaction-scoped advisory lock.
    fn pg_advisory_xact_lock(key: BigInt);
}

/// Takes the chain's lock until the transaction ends: whoever holds it reads
/// the tail and appends, so the chain has one order across every writer
/// (batches, mutations, other replicas).
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

pub async fn lock_chain(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::select(pg_advisory_xact_lock(CHAIN_LOCK)).execute(conn).await.map(|_| ())
}

/// The newest event's position and hash.
pub async fn tail(conn: &mut AsyncPgConnection) -> QueryResult<Option<(i64, Vec<u8>)>> {
    audit_events::table
        .select((audit_events::seq, audit_events::hash))
        .order(audit_events::seq.desc())
        .first(conn)
        .await
        .optional()
}

/// Inserts rows already chained by the caller (20 columns each, so chunks of
/// 1,000 stay far below Postgres' 65,535 bind parameters).
pub async fn insert(conn: &mut AsyncPgConnection, rows: &[AuditRow]) -> QueryResult<()> {
    for chunk in rows.chunks(1000) {
        diesel::insert_into(audit_events::table).values(chunk).execute(conn).await?;
    }
    Ok(())
}

/// Events in chain order from `after_seq` on (for `audit verify`).
pub async fn in_order(
    conn: &mut AsyncPgConnection,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    audit_events::table
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)
        .await
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

type Boxed<'a> = audit_events::BoxedQuery<'a, diesel::pg::Pg>;

fn filtered(f: &AuditFilter) -> Boxed<'static> {
    let mut q = audit_events::table.into_boxed();
    // `@>` on the GIN indexes: every event that named this id, or this rule.
    narrow!(q, f;
        actor_sub => |v| audit_events::actor_sub.eq(v),
        actor_org => |v| audit_events::actor_org.eq(v),
        purpose => |v| audit_events::purpose.eq(v),
        action => |v| audit_events::action.eq(v),
        resource_type => |v| audit_events::resource_type.eq(v),
        resource_id => |v| audit_events::resource_ids.contains(vec![Some(v)]),
        allowed => |v| audit_events::allowed.eq(v),
        rule => |v| audit_events::rules.contains(vec![Some(v)]),
        request_id => |v| audit_events::request_id.eq(v),
        from => |v| audit_events::occurred_at.ge(v),
        to => |v| audit_events::occurred_at.lt(v),
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
            let q = q.order(audit_events::seq.desc());
            match seq {
                Some(seq) => q.filter(audit_events::seq.lt(seq)),
                None => q,
            }
        }
        Seq::After(seq) => {
            let q = q.order(audit_events::seq.asc());
            match seq {
                Some(seq) => q.filter(audit_events::seq.gt(seq)),
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
pub async fn set_local_timeouts(conn: &mut AsyncPgConnection, millis: u128) -> QueryResult<()> {
    diesel::sql_query(format!("SET LOCAL lock_timeout = {millis}")).execute(conn).await?;
    diesel::sql_query(format!("SET LOCAL statement_timeout = {millis}")).execute(conn).await?;
    Ok(())
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
         FROM audit_events CROSS JOIN LATERAL unnest(field_classes) AS class \
         WHERE allowed AND action = 'read' AND resource_ids && $1 \
         GROUP BY actor_org ORDER BY actor_org",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
    .load(conn)
    .await
}
