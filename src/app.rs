//! One `App` per process: pools, authenticator, authorizer, config. Shared as
//! a cheap `AppState` (an `Arc`).

use std::sync::{Arc, RwLock};

use crate::audit::AuditWriter;
use crate::auth::Verifier;
use crate::authz::Authorizer;
use crate::cache::ResponseCache;
use crate::config::Config;
use crate::db::{self, PgPool, StatementCounter};
use crate::graphql::{self, AppSchema};
use crate::metrics::Metrics;

pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub statements: StatementCounter,
    pub verifier: Verifier,
    /// The policy in force; [`App::reload_policy`] swaps it.
    authorizer: RwLock<Arc<Authorizer>>,
    /// The single writer of the audit trail.
    pub audit: AuditWriter,
    /// Answers by what they depend on, and the data versions that keep them valid.
    pub cache: ResponseCache,
    /// Per-person request budgets (in Redis when it is there).
    pub limiter: crate::cache::limit::RateLimiter,
    pub metrics: Metrics,
    /// The column sets the pool's reads use (`db::project`): bounded, so
    /// documents cannot grow the connections' statement caches without end.
    pub shapes: crate::db::project::Shapes,
}

pub type AppState = Arc<App>;

impl App {
    /// Builds the application; migrates first unless configured not to.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let authorizer = Arc::new(Authorizer::load(&config.policy_dir)?);
        Self::build_with(config, authorizer).await
    }

    /// Builds the application around an authorizer already loaded from
    /// `config.policy_dir` (tests share one rather than check the policy per app).
    pub async fn build_with(
        config: Config,
        authorizer: Arc<Authorizer>,
    ) -> anyhow::Result<AppState> {
        if !config.no_migrate {
            let applied = db::run_migrations(&config.db.database_url).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied migrations");
            }
        }
        let statements = StatementCounter::default();
        let pool = db::build_pool(
            &config.db.database_url,
            &config.db.pool_settings(),
            statements.clone(),
        )?;
        // One connection now, so a DB_ROLE the login may not take stops the
        // start with the reason instead of failing every request later.
        if let Err(e) = pool.get().await {
            anyhow::bail!(
                "cannot open a database connection as role {:?} (DB_ROLE): {e}; \
                 grant the role to the login of DATABASE_URL, or set DB_ROLE to empty",
                config.db.db_role
            );
        }
        // The audit writer has connections of its own: requests that exhaust
        // the main pool must not also stop every response (fail closed).
        // Its statements end within the commit timeout (the one-statement
        // append sets no timeout of its own).
        let writer_settings = config.audit.writer_settings();
        let audit_pool = db::build_pool(
            &config.db.database_url,
            &db::PoolSettings {
                max_size: 2,
                application_name: "kasvu-gateway-audit",
                statement_timeout: writer_settings.commit_timeout,
                ..config.db.pool_settings()
            },
            statements.clone(),
        )?;
        let metrics = Metrics::new()?;
        let audit = AuditWriter::start(audit_pool, writer_settings, metrics.audit.clone());
        let cache = ResponseCache::new(
            config.cache.clone(),
            config.redis_url.as_deref(),
            metrics.cache.clone(),
        );
        if cache.enabled() {
            crate::cache::listen::Listener {
                database_url: config.db.database_url.clone(),
                role: (!config.db.db_role.is_empty()).then(|| config.db.db_role.clone()),
                heartbeat: std::time::Duration::from_millis(
                    config.cache.cache_heartbeat_ms.max(10),
                ),
                versions: cache.versions.clone(),
                metrics: metrics.cache.clone(),
            }
            .spawn();
        }
        let limiter = crate::cache::limit::RateLimiter::new(
            crate::cache::limit::Limit {
                per_sec: config.cache.rate_limit_per_sec,
                burst: config.cache.rate_limit_burst,
            },
            config.cache.rate_limits.clone(),
            cache.redis().cloned(),
        );
        let verifier = Verifier::from_config(&config.jwt).await?;
        tracing::info!(
            policy_version = authorizer.version(),
            auth = verifier.mode(),
            "gateway configured"
        );
        Ok(Arc::new(App {
            config,
            pool,
            statements,
            verifier,
            authorizer: RwLock::new(authorizer),
            audit,
            cache,
            limiter,
            metrics,
            shapes: Default::default(),
        }))
    }

    /// After a change made here: the versions read now, so the next request
    /// on this replica cannot be answered from before the change (others
    /// learn of it from the database's announcement).
    pub async fn refresh_versions(&self) {
        if !self.cache.enabled() || self.cache.versions.current().is_none() {
            return;
        }
        let read = async {
            let mut conn = self.pool.get().await.ok()?;
            crate::db::versions::read(&mut conn).await.ok()
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), read).await {
            Ok(Some(v)) => self.cache.versions.refresh(v),
            // The listener's announcement comes instead; until then, stop
            // caching rather than risk an answer from before the change.
            _ => self.cache.versions.forget(),
        }
    }

    /// The policy in force. A request takes it once and keeps it, so a
    /// reload never changes the rules under a request in flight.
    pub fn authorizer(&self) -> Arc<Authorizer> {
        match self.authorizer.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the policy directory again. A policy that does not load or
    /// fails its check is refused and the one in force stays.
    pub fn reload_policy(&self) -> anyhow::Result<String> {
        let fresh = Arc::new(Authorizer::load(&self.config.policy_dir)?);
        let version = fresh.version().to_owned();
        match self.authorizer.write() {
            Ok(mut a) => *a = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(version)
    }

    /// The executable schema with this app's state attached.
    pub fn schema(self: &Arc<Self>) -> AppSchema {
        graphql::schema_builder(&self.config.limits, self.config.enable_graphiql)
            .data(self.clone())
            .finish()
    }
}
