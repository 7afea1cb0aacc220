//! One `App` per process: pools, authenticator, authorizer, config. Shared as
//! a cheap `AppState` (an `Arc`).

use std::sync::Arc;

use crate::auth::Verifier;
use crate::authz::Authorizer;
use crate::config::Config;
use crate::db::{self, PgPool, StatementCounter};
use crate::graphql::{self, AppSchema};
use crate::metrics::Metrics;

pub struct App {
    pub config: Config,
    pub pool: PgPool,
    pub statements: StatementCounter,
    pub verifier: Verifier,
    pub authorizer: Arc<Authorizer>,
    pub metrics: Metrics,
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
            authorizer,
            metrics: Metrics::new()?,
        }))
    }

    /// The executable schema with this app's state attached.
    pub fn schema(self: &Arc<Self>) -> AppSchema {
        graphql::schema_builder(&self.config.limits, self.config.enable_graphiql)
            .data(self.clone())
            .finish()
    }
}
