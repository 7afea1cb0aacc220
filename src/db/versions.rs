//! The register's data versions (migration 000008): per versioned table, the
//! number of committed statements that changed it. The response cache keys
//! an answer by the versions of the tables it read.

use std::collections::BTreeMap;

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The channel every change is announced on, at its commit.
pub const CHANNEL: &str = "kasvu_data_changed";

/// Every versioned table's version (a table never changed is absent: 0).
pub type Versions = BTreeMap<String, i64>;

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
}

/// Reads every table's version (folding the change log when it has grown).
pub async fn read(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Versions> {
    let rows: Vec<Row> =
        diesel::sql_query("SELECT tbl, version FROM data_versions()").load(conn).await?;
    Ok(rows.into_iter().map(|r| (r.tbl, r.version)).collect())
}

/// Starts receiving the change announcements on this connection.
pub async fn listen(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(conn).await.map(drop)
}
