//! HTTP: the GraphQL endpoint with its guards, health, readiness and metrics.

mod cached;
mod graphql;
mod log;
mod persisted;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::app::AppState;
use crate::graphql::AppSchema;

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    /// SHA-256 of the schema's SDL: part of every cache key, so a build
    /// with another schema never reads this one's entries from Redis.
    pub schema_hash: std::sync::Arc<str>,
}

impl HttpState {
    fn new(app: AppState) -> Self {
        use sha2::Digest;
        let schema = app.schema();
        let schema_hash = hex::encode(sha2::Sha256::digest(schema.sdl().as_bytes())).into();
        HttpState { schema, app, schema_hash }
    }
}

pub fn router(app: AppState) -> Router {
    let state = HttpState::new(app.clone());
    let mut router = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/reports/subject-access/{contact_id}", get(graphql::subject_access_report))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if app.config.metrics_addr.is_none() {
        router = router.route("/metrics", get(metrics));
    }
    if app.config.enable_graphiql {
        router =
            router.route("/graphiql", get(graphiql)).route("/graphiql/{file}", get(graphiql_asset));
    }
    router
        .layer(DefaultBodyLimit::max(app.config.limits.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(log::log_requests))
        .with_state(state)
}

/// A handler that panicked outside GraphQL execution (which catches its own)
/// answers 500 with the usual error body; the process and every other
/// request go on.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(panic = crate::error::panic_message(&*panic), "a request handler panicked");
    let body = serde_json::json!({
        "errors": [{
            "message": "internal error",
            "extensions": { "code": crate::error::ErrorCode::InternalServerError.as_str() },
        }],
    });
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when PostgreSQL answers, every migration is applied and a policy is loaded.
async fn readyz(State(s): State<HttpState>) -> Response {
    let db = async {
        let mut conn = s.app.pool.get().await.map_err(|e| e.to_string())?;
        match crate::db::migrations_applied(&mut conn).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("migrations pending".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    match db.await {
        Ok(()) => (StatusCode::OK, format!("ready; policy {}\n", s.app.authorizer().version()))
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: database\n").into_response()
        }
    }
}

/// `/metrics` alone, for `METRICS_ADDR`.
pub fn metrics_router(app: AppState) -> Router {
    let state = HttpState::new(app);
    Router::new()
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(log::log_requests))
        .with_state(state)
}

async fn metrics(State(s): State<HttpState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &s.app.config.metrics_token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared in constant time: the token is a secret.
        let same = given.len() == token.len()
            && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            let body = serde_json::json!({
                "errors": [{
                    "message": "/metrics needs Authorization: Bearer <METRICS_TOKEN>",
                    "extensions": { "code": crate::error::ErrorCode::Unauthenticated.as_str() },
                }],
            });
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
        }
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let (queries, seconds) = crate::authz::PolicyEngine::process_totals();
        let mut out = s.app.metrics.render(s.app.statements.get(), queries, seconds);
        let pool = s.app.pool.status();
        s.app.metrics.render_gauges(
            &mut out,
            &crate::metrics::Gauges {
                open: pool.size,
                idle: pool.available,
                max: pool.max_size,
                waiting: pool.waiting,
                audit_queue: s.app.audit.queued(),
            },
        );
        out
    })
        .into_response()
}

/// GraphiQL's page and libraries, embedded at build time (assets/graphiql,
/// pinned and checked by scripts/graphiql-assets): nothing from a CDN.
macro_rules! embedded {
    ($(($name:literal, $type:literal)),+ $(,)?) => {
        [$(($name, $type, include_bytes!(concat!("../../assets/graphiql/", $name)) as &[u8])),+]
    };
}

const GRAPHIQL_FILES: [(&str, &str, &[u8]); 6] = embedded![
    ("index.html", "text/html; charset=utf-8"),
    ("init.js", "text/javascript; charset=utf-8"),
    ("graphiql.min.js", "text/javascript; charset=utf-8"),
    ("graphiql.min.css", "text/css; charset=utf-8"),
    ("react.production.min.js", "text/javascript; charset=utf-8"),
    ("react-dom.production.min.js", "text/javascript; charset=utf-8"),
];

/// Only this origin's scripts, styles (GraphiQL's editor sets inline
/// styles), images and API; no frames, forms or base changes.
const GRAPHIQL_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

fn graphiql_file(name: &str) -> Response {
    match GRAPHIQL_FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (axum::http::header::CONTENT_TYPE, *content_type),
                (axum::http::header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP),
                (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn graphiql() -> Response {
    graphiql_file("index.html")
}

async fn graphiql_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    graphiql_file(&file)
}

/// Runs the server until SIGINT or SIGTERM, then drains in-flight requests.
pub async fn serve(app: AppState) -> anyhow::Result<()> {
    let addr = app.config.listen_addr;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, graphiql = app.config.enable_graphiql, "serving");
    spawn_policy_reloader(app.clone());
    spawn_retention(app.clone());
    spawn_count_folding(app.clone());
    if let Some(metrics_addr) = app.config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr).await?;
        tracing::info!(addr = %metrics_addr, "serving /metrics");
        let metrics = metrics_router(app.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    axum::serve(listener, router(app)).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// A background job's clock: a tick every `secs` seconds (`None`: the job
/// is off), a late tick delayed rather than bunched up.
fn ticker(secs: u64) -> Option<tokio::time::Interval> {
    (secs > 0).then(|| {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(secs));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    })
}

/// The retention rule on a schedule, when RETENTION_INTERVAL_SECS is set
/// (off by default: most deployments run `kasvu-gateway retention` from cron,
/// where a dry run can be reviewed first).
fn spawn_retention(app: AppState) {
    let Some(mut every) = ticker(app.config.retention_interval_secs) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            every.tick().await;
            let result = match app.pool.get().await {
                Ok(mut conn) => crate::retention::run(&mut conn).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "scheduled retention run failed; retried next time");
            }
        }
    });
}

/// Folds the visible-count deltas (migration 000007) every 30 s, so a
/// total sums a few hundred rows however many writes came before. Every
/// replica folds; folds are safe together and with writers.
fn spawn_count_folding(app: AppState) {
    let Some(mut every) = ticker(30) else {
        return;
    };
    tokio::spawn(async move {
        loop {
            every.tick().await;
            let result = match app.pool.get().await {
                Ok(mut conn) => {
                    crate::db::fold_visible_counts(&mut conn).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "folding the visible counts failed; retried next time");
            }
        }
    });
}

/// SIGHUP reloads the policy, and so does a change of the policy files seen
/// by polling every POLICY_WATCH_SECS. Requests in flight finish under the
/// policy they started with; an invalid new policy is logged and the old one
/// stays. Polling, not inotify: a mounted ConfigMap changes by swapping a
/// symlink to a new directory, which file watches on the old files miss.
fn spawn_policy_reloader(app: AppState) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::warn!("cannot listen for SIGHUP; policy reload on signal is off");
                return;
            };
            while hup.recv().await.is_some() {
                reload_policy(&app, "SIGHUP").await;
            }
        });
    }
    let Some(mut every) = ticker(app.config.policy_watch_secs) else {
        return;
    };
    tokio::spawn(async move {
        // A version refused once is not tried again until the files change.
        let mut refused: Option<String> = None;
        loop {
            every.tick().await;
            let dir = app.config.policy_dir.clone();
            let on_disk = match tokio::task::spawn_blocking(move || {
                crate::authz::policy_version(&dir)
            })
            .await
            {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "policy directory unreadable; the policy in force stays");
                    continue;
                }
                Err(_) => continue,
            };
            if on_disk == app.authorizer().version() || refused.as_deref() == Some(&on_disk) {
                continue;
            }
            if !reload_policy(&app, "files changed").await {
                refused = Some(on_disk);
            }
        }
    });
}

/// Reloads off the async workers (loading compiles the policy); whether the
/// new policy is in force.
async fn reload_policy(app: &AppState, why: &'static str) -> bool {
    let app = app.clone();
    match tokio::task::spawn_blocking(move || app.reload_policy()).await {
        Ok(Ok(version)) => {
            tracing::info!(policy_version = %version, trigger = why, "policy reloaded");
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), trigger = why, "policy reload refused; the policy in force stays");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "policy reload task failed");
            false
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_a_json_error() {
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("secret detail");
                    }
                    "unreachable"
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_response));
        let req =
            axum::http::Request::get("/boom").body(axum::body::Body::empty()).expect("request");
        let res = app.oneshot(req).await.expect("a response, not an abort");
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(res.into_body(), 4096).await.expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["errors"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR");
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
}
