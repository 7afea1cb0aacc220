//! `kasvu-gateway bench policy`: what authorization costs on the dashboard
//! query (50 companies → contacts → services), through the real router and
//! database, for a TEM viewer and an MMM reader: policy queries and policy
//! time per request, cold (a fresh policy engine) and memoized.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::app::App;
use crate::auth::{sign_dev_token, Claims, JwtConfig};
use crate::authz::{Authorizer, PolicyEngine};
use crate::config::{Config, DbConfig, Limits};

pub const DASHBOARD: &str = "query Dashboard { companies(first: 50) { nodes { name municipality industryCode \
    contacts { firstName lastName email homeCountry services { kind status requestedAt amountEur } } } } }";

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub db: DbConfig,
    #[arg(long, env = "POLICY_DIR", default_value = "policies")]
    pub policy_dir: std::path::PathBuf,
    /// Memoized requests per persona.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
}

struct Sample {
    queries: u64,
    policy: Duration,
    latency: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// One dashboard request through the router; an answer without data fails.
async fn dashboard(router: axum::Router, token: &str) -> anyhow::Result<()> {
    query(router, token, DASHBOARD, "{\"data\":{\"companies\"").await
}

/// One query through the router; an answer that does not start with
/// `expect` (its data) fails.
async fn query(router: axum::Router, token: &str, query: &str, expect: &str) -> anyhow::Result<()> {
    let req = Request::post("/graphql")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(serde_json::json!({ "query": query }).to_string()))?;
    let res = router.oneshot(req).await?;
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await?;
    anyhow::ensure!(
        body.starts_with(expect.as_bytes()),
        "unexpected answer: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    Ok(())
}

/// A throwaway development key for the benchmark's tokens.
fn bench_jwt() -> anyhow::Result<(std::path::PathBuf, JwtConfig)> {
    let key_dir = std::env::temp_dir().join(format!("kasvu-bench-{}", uuid::Uuid::new_v4()));
    let jwt = JwtConfig {
        issuer: "kasvu-bench".into(),
        audience: "kasvu-gateway".into(),
        jwks_file: None,
        jwks_url: None,
        jwks_refetch_secs: 60,
        dev_key_file: key_dir.join("dev.key"),
        leeway_secs: 30,
    };
    crate::auth::dev_key(&jwt.dev_key_file, true)?;
    Ok((key_dir, jwt))
}

pub async fn policy(args: BenchArgs) -> anyhow::Result<()> {
    let (key_dir, jwt) = bench_jwt()?;
    let started = Instant::now();
    let compiled = crate::authz::compile_fresh(&args.policy_dir)?;
    println!(
        "policy compiled for {} actor profiles in {:.0} ms",
        compiled.profiles(),
        started.elapsed().as_secs_f64() * 1e3
    );
    println!("persona       phase      requests  policy queries/req  policy ms/req  latency p50 ms  p99 ms");
    for (persona, org, roles) in
        [("TEM viewer", "TEM", ["viewer"]), ("MMM reader", "MMM", ["viewer"])]
    {
        // A fresh engine per persona, so its first request is really cold.
        let authorizer = Arc::new(Authorizer::load(&args.policy_dir)?);
        let config = in_process(
            args.db.clone(),
            &args.policy_dir,
            &jwt,
            crate::config::AuditConfig::default(),
        )?;
        let app = App::build_with(config, authorizer.clone()).await?;
        let router = crate::http::router(app);
        let token = sign_dev_token(
            &jwt,
            &Claims::new(&jwt, "bench", org, &roles, None, Duration::from_secs(3600)),
        )?;
        let run = || async {
            let (q0, s0) = (authorizer.engine().queries(), PolicyEngine::process_totals().1);
            let started = Instant::now();
            dashboard(router.clone(), &token).await?;
            let latency = started.elapsed();
            let policy = Duration::from_secs_f64((PolicyEngine::process_totals().1 - s0).max(0.0));
            Ok::<_, anyhow::Error>(Sample {
                queries: authorizer.engine().queries() - q0,
                policy,
                latency,
            })
        };
        let cold = run().await?;
        println!(
            "{persona:<13} cold       {:>8}  {:>18}  {:>13.2}  {:>14.1}  {:>6.1}",
            1,
            cold.queries,
            cold.policy.as_secs_f64() * 1e3,
            cold.latency.as_secs_f64() * 1e3,
            cold.latency.as_secs_f64() * 1e3
        );
        let mut samples = Vec::with_capacity(args.iterations);
        for _ in 0..args.iterations {
            samples.push(run().await?);
        }
        let n = samples.len().max(1) as f64;
        let queries = samples.iter().map(|s| s.queries).sum::<u64>() as f64 / n;
        let policy_ms = samples.iter().map(|s| s.policy.as_secs_f64()).sum::<f64>() / n * 1e3;
        let mut lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        lat.sort();
        println!(
            "{persona:<13} memoized   {:>8}  {:>18.1}  {:>13.3}  {:>14.1}  {:>6.1}",
            samples.len(),
            queries,
            policy_ms,
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&key_dir);
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuditBenchArgs {
    #[command(flatten)]
    pub db: DbConfig,
    #[arg(long, env = "POLICY_DIR", default_value = "policies")]
    pub policy_dir: std::path::PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Requests per mode.
    #[arg(long, default_value_t = 400)]
    pub requests: usize,
}

/// `kasvu-gateway bench audit`: the dashboard query with auditing on, under
/// concurrent load, with the audit writer's group commit against one
/// synchronous audit transaction per request: throughput, events per second,
/// latency and how many commits the events took.
pub async fn audit(args: AuditBenchArgs) -> anyhow::Result<()> {
    let (key_dir, jwt) = bench_jwt()?;
    // One policy for both runs, warmed by the first request of the first.
    let authorizer = Arc::new(Authorizer::load(&args.policy_dir)?);
    let token = sign_dev_token(
        &jwt,
        &Claims::new(&jwt, "bench", "TEM", &["viewer"], None, Duration::from_secs(3600)),
    )?;
    let concurrency = args.concurrency.max(1);
    let per_worker = args.requests.div_ceil(concurrency);
    println!("mode           requests  concurrency  req/s   events/s  commits  p50 ms  p99 ms");
    for (mode, per_request) in [("group commit", false), ("per request", true)] {
        let config = in_process(
            DbConfig { db_pool_size: args.db.db_pool_size.max(concurrency), ..args.db.clone() },
            &args.policy_dir,
            &jwt,
            crate::config::AuditConfig {
                audit_per_request: per_request,
                audit_commit_timeout_ms: 10_000,
                ..Default::default()
            },
        )?;
        let app = App::build_with(config, authorizer.clone()).await?;
        let router = crate::http::router(app.clone());
        let one = |router: axum::Router, token: String| async move {
            let started = Instant::now();
            dashboard(router, &token).await?;
            Ok::<_, anyhow::Error>(started.elapsed())
        };
        one(router.clone(), token.clone()).await?;
        let events_before = audit_events(&app).await?;
        let commits_before = app.metrics.audit.commits();
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (router, token) = (router.clone(), token.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_worker);
                    for _ in 0..per_worker {
                        latencies.push(one(router.clone(), token.clone()).await?);
                    }
                    Ok::<_, anyhow::Error>(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for w in workers {
            latencies.extend(w.await??);
        }
        let wall = started.elapsed().as_secs_f64();
        let events = audit_events(&app).await? - events_before;
        let commits = app.metrics.audit.commits() - commits_before;
        latencies.sort();
        println!(
            "{mode:<13} {:>9}  {concurrency:>11}  {:>6.1}  {:>8.0}  {commits:>7}  {:>6.1}  {:>6.1}",
            latencies.len(),
            latencies.len() as f64 / wall,
            events as f64 / wall,
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&key_dir);
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct CpuBenchArgs {
    #[command(flatten)]
    pub db: DbConfig,
    #[arg(long, env = "POLICY_DIR", default_value = "policies")]
    pub policy_dir: std::path::PathBuf,
    /// Measured requests per shape (after 20 to warm up).
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Fail (exit status 1) if the dashboard costs the gateway more CPU than
    /// this many milliseconds per request: a regression check for CI or a
    /// release (compare like with like: a release build on a quiet machine).
    #[arg(long)]
    pub budget_ms: Option<f64>,
    /// With the response cache on (in process): every measured request is
    /// then a hit, audited as usual.
    #[arg(long)]
    pub cache: bool,
}

/// The query shapes of the performance issue (docs/performance.md).
pub const SHAPES: [(&str, &str, &str); 4] = [
    ("dashboard", DASHBOARD, "{\"data\":{\"companies\""),
    (
        "dashboard-noamt",
        "{ companies(first: 50) { nodes { name municipality industryCode contacts { firstName \
         lastName email homeCountry services { kind status requestedAt } } } } }",
        "{\"data\":{\"companies\"",
    ),
    ("small", "{ companies(first: 10) { nodes { name } } }", "{\"data\":{\"companies\""),
    (
        "contacts",
        "{ contacts(first: 50) { totalCount nodes { firstName email company { name } } } }",
        "{\"data\":{\"contacts\"",
    ),
];

/// CPU seconds a process has used (user + system), from `/proc/<pid>/stat`
/// in clock ticks (USER_HZ, 100 on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// `kasvu-gateway bench cpu`: CPU per request of each query shape, in this
/// process (the gateway's work: parsing, authorization, execution, audit,
/// serialization; no HTTP server) and in the PostgreSQL backends serving it
/// (when the server runs on this machine), requests one at a time.
pub async fn cpu(args: CpuBenchArgs) -> anyhow::Result<()> {
    let (key_dir, jwt) = bench_jwt()?;
    let authorizer = Arc::new(Authorizer::load(&args.policy_dir)?);
    let mut config =
        in_process(args.db.clone(), &args.policy_dir, &jwt, crate::config::AuditConfig::default())?;
    config.cache.cache_enabled = args.cache;
    let app = App::build_with(config, authorizer).await?;
    let router = crate::http::router(app.clone());
    let token = sign_dev_token(
        &jwt,
        &Claims::new(&jwt, "bench", "TEM", &["viewer"], None, Duration::from_secs(3600)),
    )?;
    if args.cache {
        // Caching starts once the data-version listener has read the versions.
        let started = Instant::now();
        while app.cache.versions.current().is_none() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "the cache never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "shape              requests  gateway cpu ms/req  postgres cpu ms/req  statements/req  p50 ms  p99 ms"
    );
    let mut dashboard_cpu = None;
    for (name, text, expect) in SHAPES {
        for _ in 0..20 {
            query(router.clone(), &token, text, expect).await?;
        }
        // The backends that served the warm-up serve the run (same pool).
        let backends = backend_pids(&app).await?;
        let pg_cpu = || backends.iter().filter_map(|p| cpu_seconds(p)).sum::<f64>();
        let (cpu0, pg0, st0) = (cpu_seconds("self"), pg_cpu(), app.statements.get());
        let mut latencies = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let started = Instant::now();
            query(router.clone(), &token, text, expect).await?;
            latencies.push(started.elapsed());
        }
        let n = args.requests.max(1) as f64;
        let gateway = cpu_seconds("self").zip(cpu0).map(|(b, a)| (b - a) / n * 1e3);
        let postgres = (pg_cpu() - pg0) / n * 1e3;
        let statements = (app.statements.get() - st0) as f64 / n;
        latencies.sort();
        println!(
            "{name:<17}  {:>8}  {:>18}  {:>19}  {statements:>14.1}  {:>6.2}  {:>6.2}",
            args.requests,
            gateway.map_or("n/a".to_owned(), |g| format!("{g:.2}")),
            if backends.is_empty() { "n/a".to_owned() } else { format!("{postgres:.2}") },
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
        if name == "dashboard" {
            dashboard_cpu = gateway;
        }
    }
    let _ = std::fs::remove_dir_all(&key_dir);
    if let (Some(budget), Some(used)) = (args.budget_ms, dashboard_cpu) {
        anyhow::ensure!(
            used <= budget,
            "the dashboard cost {used:.2} ms of gateway CPU per request; the budget is {budget} ms"
        );
    }
    Ok(())
}

/// The process ids of this database's gateway backends, if the server is on
/// this machine (its `/proc` shows them).
async fn backend_pids(app: &crate::app::AppState) -> anyhow::Result<Vec<String>> {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut conn = app.pool.get().await?;
    let pids: Vec<Pid> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'kasvu-gateway%'",
        ),
        &mut conn,
    )
    .await?;
    Ok(pids
        .into_iter()
        .map(|p| p.pid.to_string())
        .filter(|p| std::path::Path::new(&format!("/proc/{p}/stat")).exists())
        .collect())
}

async fn audit_events(app: &crate::app::AppState) -> anyhow::Result<i64> {
    let mut conn = app.pool.get().await?;
    Ok(crate::db::audit::count(&mut conn, &Default::default()).await?)
}

/// The configuration a benchmark runs the app with: in this process, on an
/// ephemeral port, without background jobs, on an already migrated database.
fn in_process(
    db: DbConfig,
    policy_dir: &std::path::Path,
    jwt: &JwtConfig,
    audit: crate::config::AuditConfig,
) -> anyhow::Result<Config> {
    Ok(Config {
        db,
        redis_url: None,
        // The benchmarks measure execution: nothing answered from a cache.
        cache: crate::cache::CacheConfig { cache_enabled: false, ..Default::default() },
        listen_addr: "127.0.0.1:0".parse()?,
        policy_dir: policy_dir.to_path_buf(),
        jwt: jwt.clone(),
        limits: Limits::default(),
        audit,
        policy_watch_secs: 0,
        retention_interval_secs: 0,
        metrics_addr: None,
        metrics_token: None,
        enable_graphiql: false,
        no_migrate: true,
    })
}
