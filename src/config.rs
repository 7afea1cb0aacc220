//! Configuration of `serve`, by flags or environment (docs/contract.md).

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
    /// The role the gateway's connections act as (`SET ROLE`): the register
    /// in full, the audit trail insert and select only. The login of
    /// DATABASE_URL must be a member (or a superuser). Empty: the login's own.
    #[arg(long, env = "DB_ROLE", default_value = "kasvu_gateway", value_parser = parse_role)]
    pub db_role: String,
}

fn parse_role(s: &str) -> Result<String, String> {
    let ok = s.is_empty()
        || (s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("a role name is lower-case letters, digits and _".to_owned())
    }
}

/// The audit writer (src/audit/writer.rs).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditConfig {
    /// Requests that may wait for the audit writer; past this a request fails
    /// with UNAVAILABLE at once.
    #[arg(long, env = "AUDIT_QUEUE_CAPACITY", default_value_t = 1024)]
    pub audit_queue_capacity: usize,
    /// Events one audit transaction takes at most.
    #[arg(long, env = "AUDIT_BATCH_MAX_EVENTS", default_value_t = 5000)]
    pub audit_batch_max_events: usize,
    /// Milliseconds a request waits for its audit events to commit before it
    /// fails with UNAVAILABLE (and the writer's lock and statement timeout).
    #[arg(long, env = "AUDIT_COMMIT_TIMEOUT_MS", default_value_t = 2000)]
    pub audit_commit_timeout_ms: u64,
    /// One audit transaction per request, no group commit (benchmark baseline).
    #[arg(long, env = "AUDIT_PER_REQUEST", default_value_t = false, hide = true)]
    pub audit_per_request: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let d = crate::audit::WriterSettings::default();
        AuditConfig {
            audit_queue_capacity: d.queue_capacity,
            audit_batch_max_events: d.max_batch_events,
            audit_commit_timeout_ms: d.commit_timeout.as_millis() as u64,
            audit_per_request: d.per_request,
        }
    }
}

impl AuditConfig {
    pub fn writer_settings(&self) -> crate::audit::WriterSettings {
        crate::audit::WriterSettings {
            queue_capacity: self.audit_queue_capacity,
            max_batch_events: self.audit_batch_max_events,
            commit_timeout: Duration::from_millis(self.audit_commit_timeout_ms),
            per_request: self.audit_per_request,
        }
    }
}

impl DbConfig {
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            max_size: self.db_pool_size,
            wait_timeout: Duration::from_millis(self.db_wait_timeout_ms),
            connect_timeout: Duration::from_millis(self.db_connect_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
            role: (!self.db_role.is_empty()).then(|| self.db_role.clone()),
            application_name: "kasvu-gateway",
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
    /// Characters one string argument may have (names, notes, descriptions).
    #[arg(long, env = "MAX_STRING_CHARS", default_value_t = 10_000)]
    pub max_string_chars: usize,
    /// Characters one filter string may have (it becomes a search pattern).
    #[arg(long, env = "MAX_FILTER_CHARS", default_value_t = 200)]
    pub max_filter_chars: usize,
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
            max_string_chars: 10_000,
            max_filter_chars: 200,
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
    #[command(flatten)]
    pub cache: crate::cache::CacheConfig,
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    #[arg(long, env = "POLICY_DIR", default_value = "policies")]
    pub policy_dir: PathBuf,
    /// Check POLICY_DIR for changes this often and reload when it changed
    /// (Kubernetes updates a mounted ConfigMap in place); 0: only on SIGHUP.
    #[arg(long, env = "POLICY_WATCH_SECS", default_value_t = 10)]
    pub policy_watch_secs: u64,
    #[command(flatten)]
    pub jwt: JwtConfig,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub audit: AuditConfig,
    /// Serve /metrics on this address instead of LISTEN_ADDR (e.g. a port
    /// only the monitoring network reaches).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Require `Authorization: Bearer <token>` on /metrics.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Serve GraphiQL at /graphiql, and allow introspection and field suggestions.
    #[arg(long, env = "ENABLE_GRAPHIQL", default_value_t = false)]
    pub enable_graphiql: bool,
    /// Run the five-year retention rule every this many seconds (0: off).
    #[arg(long, env = "RETENTION_INTERVAL_SECS", default_value_t = 0)]
    pub retention_interval_secs: u64,
    /// Do not apply migrations at start.
    #[arg(long, env = "NO_MIGRATE", default_value_t = false)]
    pub no_migrate: bool,
}

/// A URL with its password (and any token in the query) replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            if u.query().is_some() {
                u.set_query(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

impl Config {
    /// Logs the configuration in force at start, secrets redacted, so an
    /// operator sees what the gateway runs with.
    pub fn log_in_force(&self) {
        let jwt_keys = match (&self.jwt.jwks_file, &self.jwt.jwks_url) {
            (Some(f), _) => format!("JWKS file {}", f.display()),
            (None, Some(u)) => format!("JWKS URL {}", redact_url(u)),
            (None, None) => format!("development key {}", self.jwt.dev_key_file.display()),
        };
        tracing::info!(
            database_url = %redact_url(&self.db.database_url),
            db_role = %self.db.db_role,
            db_pool_size = self.db.db_pool_size,
            db_statement_timeout_ms = self.db.db_statement_timeout_ms,
            redis_url = %self.redis_url.as_deref().map(redact_url).unwrap_or_else(|| "-".to_owned()),
            listen_addr = %self.listen_addr,
            policy_dir = %self.policy_dir.display(),
            jwt_issuer = %self.jwt.issuer,
            jwt_audience = %self.jwt.audience,
            jwt_keys = %jwt_keys,
            limits = ?self.limits,
            audit = ?self.audit,
            graphiql = self.enable_graphiql,
            metrics_addr = %self.metrics_addr.map_or_else(|| "LISTEN_ADDR".to_owned(), |a| a.to_string()),
            metrics_token = if self.metrics_token.is_some() { "set (REDACTED)" } else { "-" },
            retention_interval_secs = self.retention_interval_secs,
            "configuration in force"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_secrets_in_logs() {
        assert_eq!(
            redact_url("postgres://kasvu:s3cret@db:5432/kasvu"),
            "postgres://kasvu:REDACTED@db:5432/kasvu"
        );
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redact_url("https://idp/jwks?token=abc").contains("abc"));
        assert_eq!(redact_url("not a url"), "(not a URL)");
    }
}
