//! Configuration of `serve`, by flags or environment (contract.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::JwtConfig;
use crate::db::PoolSettings;

#[derive(Debug, Clone, clap::Args)]
pub struct DbConfig {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Milliseconds a request waits for a pooled connection.
    #[arg(long, env = "DB_WAIT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_wait_timeout_ms: u64,
    #[arg(long, env = "DB_CONNECT_TIMEOUT_MS", default_value_t = 5000)]
    pub db_connect_timeout_ms: u64,
    /// Postgres statement_timeout, milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 10000)]
    pub db_statement_timeout_ms: u64,
}

impl DbConfig {
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.db_pool_size,
            wait_timeout: Duration::from_millis(self.db_wait_timeout_ms),
            connect_timeout: Duration::from_millis(self.db_connect_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
        }
    }
}

/// Limits on what one HTTP request may ask for.
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 20_000)]
    pub max_complexity: usize,
    #[arg(long, env = "MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = 10)]
    pub max_root_fields: usize,
    #[arg(long, env = "MAX_BATCH", default_value_t = 5)]
    pub max_batch: usize,
    /// Seconds before a request is abandoned with `UNAVAILABLE`.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_depth: 12,
            max_complexity: 20_000,
            max_aliases: 30,
            max_root_fields: 10,
            max_batch: 5,
            request_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub db: DbConfig,
    /// Redis URL; without it the cache is in-process only.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    #[arg(long, env = "POLICY_DIR", default_value = "policies")]
    pub policy_dir: PathBuf,
    #[command(flatten)]
    pub jwt: JwtConfig,
    #[command(flatten)]
    pub limits: Limits,
    /// Serve GraphiQL at /graphiql, and allow introspection and field suggestions.
    #[arg(long, env = "ENABLE_GRAPHIQL", default_value_t = false)]
    pub enable_graphiql: bool,
    /// Do not apply migrations at start.
    #[arg(long, env = "NO_MIGRATE", default_value_t = false)]
    pub no_migrate: bool,
}
