//! The data layer: diesel schema, rows, forms and query functions. Nothing here
//! knows about GraphQL, HTTP or the policy engine.

pub mod audit;
pub mod change_log;
pub mod companies;
pub mod confidential;
pub mod contacts;
pub mod enums;
pub mod idempotency;
pub mod ids;
pub mod page;
pub mod project;
pub mod reads;
pub mod requests;
mod rows;
pub mod schema;
pub mod seed;
pub mod services;
pub mod versions;
pub mod visible;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use enums::*;
pub use ids::*;

pub type PgPool = Pool<AsyncPgConnection>;
pub type PooledConn = Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_size: usize,
    /// How long a request waits for a free connection before `UNAVAILABLE`.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// Postgres `statement_timeout` for every statement on these connections.
    pub statement_timeout: Duration,
    /// `SET ROLE` on every connection (a checked identifier, see config).
    pub role: Option<String>,
    /// What `pg_stat_activity` shows for these connections.
    pub application_name: &'static str,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            role: None,
            application_name: "kasvu-gateway",
        }
    }
}

/// Counts every SQL statement sent on the pool's connections: a Prometheus
/// counter, and how tests prove that a nested query costs one statement per level.
#[derive(Debug, Default, Clone)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        AtomicU64::load(&self.0, Ordering::Relaxed)
    }
}

/// Whether each statement gets a trace span (set when spans are exported).
static TRACE_STATEMENTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn trace_statements(on: bool) {
    TRACE_STATEMENTS.store(on, Ordering::Relaxed);
}

/// Counts statements and, when traces are exported, gives each one a span
/// (`db.*` attributes; the SQL text without its bound values, which may be
/// personal).
struct CountStatements(StatementCounter, Option<tracing::Span>);

impl CountStatements {
    fn new(counter: StatementCounter) -> Self {
        CountStatements(counter, None)
    }
}

impl Instrumentation for CountStatements {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                (self.0).0.fetch_add(1, Ordering::Relaxed);
                if reads::tracking() {
                    let text = query.to_string();
                    reads::observe(text.split("-- binds:").next().unwrap_or(""));
                }
                if std::sync::atomic::AtomicBool::load(&TRACE_STATEMENTS, Ordering::Relaxed) {
                    let text = query.to_string();
                    let sql = text.split("-- binds:").next().unwrap_or("").trim();
                    let op = sql.split_whitespace().next().unwrap_or("SQL").to_ascii_uppercase();
                    self.1 = Some(tracing::info_span!(
                        "db.query",
                        otel.name = %format!("{op} {}", DB_NAMESPACE),
                        otel.kind = "client",
                        db.system.name = "postgresql",
                        db.operation.name = %op,
                        db.query.text = %sql,
                        error.type = tracing::field::Empty,
                    ));
                }
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.1.take() {
                    if error.is_some() {
                        span.record("error.type", "db_error");
                    }
                }
            }
            _ => {}
        }
    }
}

/// What statement spans name the database.
const DB_NAMESPACE: &str = "kasvu";

/// No instrumentation, while the pool pings a connection.
struct Quiet;

impl Instrumentation for Quiet {
    fn on_connection_event(&mut self, _: InstrumentationEvent<'_>) {}
}

pub fn build_pool(
    url: &str,
    settings: &PoolSettings,
    counter: StatementCounter,
) -> anyhow::Result<PgPool> {
    let statement_timeout_ms = settings.statement_timeout.as_millis();
    let role = settings.role.clone();
    let application_name = settings.application_name;
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // A ping on every checkout: a backend terminated by the server (restart,
    // failover, pg_terminate_backend) answers its last statement with an
    // error, and until its socket's end is noticed the pool would lend it
    // again and fail the next request too. One local round trip is the
    // price; the ping is the pool's, so the statement counter does not see it.
    let ping_counter = counter.clone();
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::CustomFunction(
        Box::new(move |conn: &mut AsyncPgConnection| {
            let counter = ping_counter.clone();
            Box::pin(async move {
                conn.set_instrumentation(Quiet);
                let ping = diesel::sql_query("SELECT 1").execute(conn).await;
                conn.set_instrumentation(CountStatements::new(counter));
                ping.map(drop)
            })
        }),
    );
    config.custom_setup = Box::new(move |url| {
        let counter = counter.clone();
        let role = role.clone();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            if let Some(role) = role {
                // Quoted; the name was checked to be a plain identifier.
                diesel::sql_query(format!("SET ROLE \"{role}\""))
                    .execute(&mut conn)
                    .await
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
            }
            diesel::sql_query(format!("SET application_name = '{application_name}'"))
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            // The gateway's statements are short keyset reads: compiling one
            // with LLVM (planner estimates pass jit_above_cost at a few
            // thousand rows) took 30 ms for a statement that runs in 2 ms.
            diesel::sql_query("SET jit = off")
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            // Installed after the SET so the counter sees only the gateway's own queries.
            conn.set_instrumentation(CountStatements::new(counter));
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    let pool = Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?;
    Ok(pool)
}

/// Folds the visible-count deltas into one row per key (migration 000007).
pub async fn fold_visible_counts(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT fold_visible_counts()").execute(conn).await.map(drop)
}

/// Applies pending migrations. Runs on a blocking thread because diesel's
/// migration harness is synchronous; an advisory lock keeps two gateways
/// starting at once from racing.
pub async fn run_migrations(url: &str) -> anyhow::Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut conn =
            <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(&url)?;
        diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_lock(7355608)"),
            &mut conn,
        )?;
        let result = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect());
        diesel::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_unlock(7355608)"),
            &mut conn,
        )?;
        result.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
    })
    .await?
}

/// Whether every embedded migration has been applied (for `/readyz`).
pub async fn migrations_applied(conn: &mut AsyncPgConnection) -> diesel::QueryResult<bool> {
    use diesel::migration::MigrationSource;
    use diesel::prelude::*;
    diesel::table! { __diesel_schema_migrations (version) { version -> VarChar, } }
    let applied: Vec<String> = diesel_async::RunQueryDsl::load(
        __diesel_schema_migrations::table.select(__diesel_schema_migrations::version),
        conn,
    )
    .await?;
    let embedded = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(diesel::result::Error::QueryBuilderError)?;
    Ok(embedded.iter().all(|m| applied.iter().any(|v| *v == m.name().version().to_string())))
}

/// Who made a change, for the change log.
#[derive(Debug, Clone)]
pub struct ChangeAuthor {
    pub sub: String,
    pub org: OrgCode,
    pub request_id: Option<String>,
}

/// Clears every personal column `kind` declares (`crate::register`) of one
/// row and sets its tombstone (when, who, which organisation), in one
/// statement so the row's constraints see both. Callers read the row back.
pub(crate) async fn tombstone(
    conn: &mut AsyncPgConnection,
    kind: crate::register::ResourceKind,
    id: uuid::Uuid,
    author: &ChangeAuthor,
) -> diesel::QueryResult<()> {
    use diesel::sql_types::{Text, Timestamptz, Uuid};
    diesel::sql_query(format!(
        "UPDATE {} SET {}, erased_at = $2, erased_by = $3, erased_by_org = $4, updated_at = $2 \
         WHERE id = $1",
        kind.table(),
        kind.erase_assignments()
    ))
    .bind::<Uuid, _>(id)
    .bind::<Timestamptz, _>(chrono::Utc::now())
    .bind::<Text, _>(&author.sub)
    .bind::<Text, _>(author.org.as_str())
    .execute(conn)
    .await
    .map(drop)
}
