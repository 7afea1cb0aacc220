//! Test support: each test gets its own database cloned from a template that
//! is migrated and seeded once (per migration set), and its own app.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tower::ServiceExt;

use kasvu_gateway::app::{App, AppState};
use kasvu_gateway::auth::{sign_dev_token, Claims, JwtConfig};
use kasvu_gateway::config::{AuditConfig, Config, DbConfig, Limits};

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&format!("{}/postgres", server_url()))
        .await
        .expect("connect to PostgreSQL (is it running?)")
}

/// The template's name changes with the migrations and the seed code, so a
/// stale template is never reused.
fn template_name() -> String {
    let mut h = Sha256::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = walk(&root.join("migrations"));
    files.push(root.join("src/db/seed.rs"));
    files.sort();
    for f in files {
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    format!("kasvu_tpl_{}", &hex::encode(h.finalize())[..12])
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut conn = admin().await;
            // Serialises template creation across test processes (nextest).
            diesel::sql_query("SELECT pg_advisory_lock(424242)")
                .execute(&mut conn)
                .await
                .expect("lock");
            let exists: i64 = diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
            ))
            .get_result(&mut conn)
            .await
            .expect("check template");
            if exists == 0 {
                let building = format!("{name}_building");
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .expect("drop");
                diesel::sql_query(format!("CREATE DATABASE {building}"))
                    .execute(&mut conn)
                    .await
                    .expect("create template");
                let url = format!("{}/{building}", server_url());
                kasvu_gateway::db::run_migrations(&url).await.expect("migrate template");
                let mut c = AsyncPgConnection::establish(&url).await.expect("connect template");
                kasvu_gateway::db::seed::seed(&mut c, 1, false).await.expect("seed template");
                drop(c);
                diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("rename template");
            }
            diesel::sql_query("SELECT pg_advisory_unlock(424242)")
                .execute(&mut conn)
                .await
                .expect("unlock");
            name
        })
        .await
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The default policy, loaded and checked once per test process.
fn authorizer() -> std::sync::Arc<kasvu_gateway::authz::Authorizer> {
    static AUTHORIZER: std::sync::OnceLock<std::sync::Arc<kasvu_gateway::authz::Authorizer>> =
        std::sync::OnceLock::new();
    AUTHORIZER
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
            std::sync::Arc::new(kasvu_gateway::authz::Authorizer::load(&dir).expect("policy loads"))
        })
        .clone()
}

pub struct TestApp {
    pub app: AppState,
    pub router: axum::Router,
    pub db_url: String,
    pub jwt: JwtConfig,
    _db: TestDb,
}

/// The test's database and key directory, removed when dropped (also when
/// the app failed to build).
struct TestDb {
    name: String,
    key_dir: PathBuf,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with(|_| {}).await
    }

    /// An app whose configuration the test changes first (limits, audit,
    /// identity provider, …).
    pub async fn with(configure: impl FnOnce(&mut Config)) -> TestApp {
        Self::try_with(configure).await.expect("build app")
    }

    /// An app that loads a policy of its own instead of the process-wide one
    /// (for tests that count policy queries, which parallel tests would disturb).
    pub async fn with_own_policy() -> TestApp {
        Self::build(|_| {}, true).await.expect("build app")
    }

    /// Builds the app, or says why it would not start.
    pub async fn try_with(configure: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
        Self::build(configure, false).await
    }

    async fn build(
        configure: impl FnOnce(&mut Config),
        own_policy: bool,
    ) -> anyhow::Result<TestApp> {
        let tpl = template().await;
        let db_name = format!(
            "kasvu_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin().await;
        diesel::sql_query(format!("CREATE DATABASE {db_name} TEMPLATE {tpl}"))
            .execute(&mut conn)
            .await
            .expect("clone template");
        let db_url = format!("{}/{db_name}", server_url());
        let key_dir = std::env::temp_dir().join(&db_name);
        let jwt = JwtConfig {
            issuer: "kasvu-test".into(),
            audience: "kasvu-gateway".into(),
            jwks_file: None,
            jwks_url: None,
            jwks_refetch_secs: 0,
            dev_key_file: key_dir.join("dev.key"),
            leeway_secs: 0,
        };
        let mut config = Config {
            db: DbConfig {
                database_url: db_url.clone(),
                db_pool_size: 4,
                db_wait_timeout_ms: 5000,
                db_connect_timeout_ms: 5000,
                db_statement_timeout_ms: 10_000,
                db_role: "kasvu_gateway".into(),
            },
            redis_url: None,
            // Off unless a test turns it on (tests/it/cache.rs): a write from
            // psql reaches the cache by announcement, a moment after its commit.
            cache: kasvu_gateway::cache::CacheConfig { cache_enabled: false, ..Default::default() },
            listen_addr: "127.0.0.1:0".parse().expect("addr"),
            policy_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"),
            jwt,
            limits: Limits::default(),
            audit: AuditConfig::default(),
            policy_watch_secs: 0,
            retention_interval_secs: 0,
            metrics_addr: None,
            metrics_token: None,
            enable_graphiql: false,
            no_migrate: false,
        };
        configure(&mut config);
        let jwt = config.jwt.clone();
        // The signing key exists before the verifier loads it.
        kasvu_gateway::auth::dev_key(&jwt.dev_key_file, true).expect("dev key");
        let db = TestDb { name: db_name, key_dir };
        let app = if own_policy {
            App::build(config).await?
        } else {
            App::build_with(config, authorizer()).await?
        };
        let router = kasvu_gateway::http::router(app.clone());
        Ok(TestApp { app, router, db_url, jwt, _db: db })
    }

    /// A second gateway on this test's database, as another process would be:
    /// its own pools, cache and data-version listener.
    pub async fn another_gateway(
        &self,
        configure: impl FnOnce(&mut Config),
    ) -> (AppState, axum::Router) {
        let mut config = self.app.config.clone();
        config.no_migrate = true;
        configure(&mut config);
        let app = App::build_with(config, authorizer()).await.expect("second gateway");
        let router = kasvu_gateway::http::router(app.clone());
        (app, router)
    }

    pub fn token(&self, org: &str, roles: &[&str]) -> String {
        self.token_with(Claims::new(
            &self.jwt,
            "test-user",
            org,
            roles,
            None,
            std::time::Duration::from_secs(600),
        ))
    }

    pub fn token_with(&self, claims: Claims) -> String {
        sign_dev_token(&self.jwt, &claims).expect("sign")
    }

    pub fn editor(&self) -> String {
        self.token("ELY", &["viewer", "editor"])
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = self.router.clone().oneshot(req).await.expect("router");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
        (status, headers, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn post_raw(
        &self,
        token: Option<&str>,
        content_type: Option<&str>,
        body: String,
    ) -> (StatusCode, Value) {
        let mut req = Request::post("/graphql");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (status, _, body) = self.send(req.body(Body::from(body)).expect("request")).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// POSTs a query as `token`; returns the status and the JSON body.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> (StatusCode, Value) {
        self.post_raw(
            Some(token),
            Some("application/json"),
            json!({ "query": query, "variables": variables }).to_string(),
        )
        .await
    }

    /// A query that must succeed without errors; returns `data`.
    pub async fn data(&self, token: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql(token, query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        let mut c = AsyncPgConnection::establish(&self.db_url).await.expect("connect");
        diesel::dsl::sql::<diesel::sql_types::BigInt>(sql).get_result(&mut c).await.expect("count")
    }

    /// The first column of the first row, as text (`SELECT id::text …`).
    pub async fn sql_text(&self, sql: &str) -> String {
        let mut c = AsyncPgConnection::establish(&self.db_url).await.expect("connect");
        diesel::dsl::sql::<diesel::sql_types::Text>(sql).get_result(&mut c).await.expect("a row")
    }

    pub fn token_at(&self, org: &str, roles: &[&str], country: &str) -> String {
        self.token_with(Claims::new(
            &self.jwt,
            "test-user",
            org,
            roles,
            Some(country),
            std::time::Duration::from_secs(600),
        ))
    }

    /// POSTs with an `X-Processing-Purpose`.
    pub async fn gql_for(
        &self,
        token: &str,
        purpose: &str,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let req = Request::post("/graphql")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("x-processing-purpose", purpose)
            .body(Body::from(json!({ "query": query, "variables": variables }).to_string()))
            .expect("request");
        let (status, _, body) = self.send(req).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    pub async fn sql_exec(&self, sql: &str) {
        let mut c = AsyncPgConnection::establish(&self.db_url).await.expect("connect");
        diesel::sql_query(sql).execute(&mut c).await.expect("exec");
    }

    /// Several statements in one go (simple protocol), e.g. a transaction.
    pub async fn sql_batch(&self, sql: &str) {
        use diesel_async::SimpleAsyncConnection;
        let mut c = AsyncPgConnection::establish(&self.db_url).await.expect("connect");
        c.batch_execute(sql).await.expect("batch");
    }

    /// Holds an exclusive lock on `table` from another connection until the
    /// returned connection is dropped (which ends its transaction).
    /// The test database's name.
    pub fn db_name(&self) -> &str {
        self.db_url.rsplit('/').next().unwrap_or_default()
    }

    /// Cuts the audit writer off: its connections are terminated and no new
    /// connection to the database is allowed, while the main pool's open
    /// connections still serve. [`TestApp::allow_connections`] undoes it.
    pub async fn cut_audit_writer(&self) {
        let db = self.db_name();
        let mut admin = admin().await;
        for sql in [
            format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND application_name = 'kasvu-gateway-audit'"
            ),
        ] {
            diesel::sql_query(sql).execute(&mut admin).await.expect("cut the audit writer");
        }
    }

    pub async fn allow_connections(&self) {
        diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.db_name()))
            .execute(&mut admin().await)
            .await
            .expect("allow connections");
    }

    pub async fn lock_table(&self, table: &str) -> AsyncPgConnection {
        use diesel_async::SimpleAsyncConnection;
        let mut c = AsyncPgConnection::establish(&self.db_url).await.expect("connect");
        c.batch_execute(&format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            .await
            .expect("lock");
        c
    }

    pub fn statements(&self) -> u64 {
        self.app.statements.get()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::fs::remove_dir_all(&self.key_dir);
        // Dropped from a plain thread: Drop cannot await, and the test's runtime may be gone.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = admin().await;
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            });
        })
        .join();
    }
}

/// The first error's `extensions.code`.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("")
}

/// The personas of the authorization issue.
pub fn personas() -> Vec<(&'static str, kasvu_gateway::auth::Actor)> {
    use kasvu_gateway::auth::{Actor, Purpose, Role};
    use kasvu_gateway::db::OrgCode;
    let a = |org: OrgCode, roles: &[Role], country: &str, purpose: Purpose| Actor {
        sub: "persona".into(),
        org,
        roles: roles.to_vec(),
        country: country.into(),
        purpose,
    };
    use Purpose::*;
    use Role::*;
    vec![
        ("TEM viewer", a(OrgCode::Tem, &[Viewer], "FI", CustomerRelationship)),
        ("ELY editor", a(OrgCode::Ely, &[Viewer, Editor], "FI", CustomerRelationship)),
        ("BF confidential", a(OrgCode::Bf, &[Viewer, Confidential], "FI", CustomerRelationship)),
        (
            "FINNVERA confidential",
            a(OrgCode::Finnvera, &[Confidential], "FI", CustomerRelationship),
        ),
        ("TEM dpo", a(OrgCode::Tem, &[Dpo], "FI", CustomerRelationship)),
        ("TEM dpo handling a request", a(OrgCode::Tem, &[Dpo], "FI", DataSubjectRequest)),
        ("auditor only", a(OrgCode::Keha, &[Auditor], "FI", SecurityAudit)),
        ("viewer for marketing", a(OrgCode::Bf, &[Viewer], "FI", Marketing)),
        ("MMM reader", a(OrgCode::Mmm, &[Viewer], "FI", CustomerRelationship)),
        ("MMM dpo handling a request", a(OrgCode::Mmm, &[Dpo], "FI", DataSubjectRequest)),
        ("MMM without a reading role", a(OrgCode::Mmm, &[Auditor], "FI", CustomerRelationship)),
        ("RUOKAVIRASTO without roles", a(OrgCode::Ruokavirasto, &[], "FI", CustomerRelationship)),
        ("BFOY auditor in the US", a(OrgCode::Bfoy, &[Auditor], "US", SecurityAudit)),
        ("RUOKAVIRASTO reader", a(OrgCode::Ruokavirasto, &[Viewer], "FI", CustomerRelationship)),
        ("BFOY in the US", a(OrgCode::Bfoy, &[Viewer], "US", CustomerRelationship)),
        ("TEM in the US", a(OrgCode::Tem, &[Viewer], "US", CustomerRelationship)),
    ]
}

/// The body without the per-request request and trace ids, to compare two answers.
pub fn without_request_id(mut body: Value) -> Value {
    if let Some(ext) = body.get_mut("extensions").and_then(Value::as_object_mut) {
        ext.remove("requestId");
    }
    if let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) {
        for e in errors {
            if let Some(ext) = e.get_mut("extensions").and_then(Value::as_object_mut) {
                ext.remove("traceId");
            }
        }
    }
    body
}
