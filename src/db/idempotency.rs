//! `idempotency_keys`: the create mutations already made, by the key their
//! client gave, so a repeated create answers with the first one's record.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::idempotency_keys;
use super::OrgCode;

/// How long a key is honoured.
pub const KEPT_FOR: chrono::Duration = chrono::Duration::days(1);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys, check_for_backend(diesel::pg::Pg))]
pub struct KeyRow {
    pub org: OrgCode,
    pub sub: String,
    pub key: String,
    pub operation: String,
    pub request_hash: Vec<u8>,
    pub resource_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// The actor's key, if it was used within [`KEPT_FOR`].
pub async fn find(
    conn: &mut AsyncPgConnection,
    org: OrgCode,
    sub: &str,
    key: &str,
) -> QueryResult<Option<KeyRow>> {
    idempotency_keys::table
        .filter(idempotency_keys::org.eq(org))
        .filter(idempotency_keys::sub.eq(sub))
        .filter(idempotency_keys::key.eq(key))
        .filter(idempotency_keys::created_at.gt(Utc::now() - KEPT_FOR))
        .select(KeyRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Records a key in the create's own transaction. An expired row with the
/// same key is replaced; a live one is a unique violation (a concurrent
/// request with the same key).
pub async fn insert(conn: &mut AsyncPgConnection, row: &KeyRow) -> QueryResult<()> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::org.eq(row.org))
            .filter(idempotency_keys::sub.eq(&row.sub))
            .filter(idempotency_keys::key.eq(&row.key))
            .filter(idempotency_keys::created_at.le(Utc::now() - KEPT_FOR)),
    )
    .execute(conn)
    .await?;
    diesel::insert_into(idempotency_keys::table).values(row).execute(conn).await.map(drop)
}

/// Removes keys past [`KEPT_FOR`]; the number removed.
pub async fn purge_expired(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::delete(
        idempotency_keys::table.filter(idempotency_keys::created_at.le(Utc::now() - KEPT_FOR)),
    )
    .execute(conn)
    .await
}
