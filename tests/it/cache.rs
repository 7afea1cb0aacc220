//! The response cache (docs/cache.md) on the real PostgreSQL and Redis:
//! answers the same as uncached ones, the audit trail the same, never an
//! answer from before a write, never one actor profile's answer for another,
//! and Redis faults never failing a request.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{without_request_id, TestApp};
use kasvu_gateway::cache::BreakerState;
use kasvu_gateway::config::Config;

const DASHBOARD: &str =
    "query Dashboard { companies(first: 20) { totalCount nodes { id name municipality \
    contacts { firstName lastName email homeCountry services { kind status amountEur } } } } }";

/// A Redis key prefix of this test's own, so tests share the server safely.
fn prefix() -> String {
    format!("kasvu-test:{}:", uuid::Uuid::new_v4().simple())
}

fn cached(c: &mut Config) {
    c.cache.cache_enabled = true;
    c.cache.cache_heartbeat_ms = 200;
}

fn with_redis(c: &mut Config, url: &str, prefix: &str) {
    cached(c);
    c.redis_url = Some(url.to_owned());
    c.cache.redis_key_prefix = prefix.to_owned();
    // Generous for a loaded test machine; the fault test sets its own.
    c.cache.redis_timeout_ms = 500;
}

/// POSTs a JSON body to a gateway: the status, the Retry-After header and the body.
async fn send(router: &axum::Router, token: &str, body: Value) -> (u16, Option<String>, Value) {
    let req = Request::post("/graphql")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = router.clone().oneshot(req).await.expect("router");
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
    (status, retry, serde_json::from_slice(&bytes).expect("a JSON body"))
}

async fn post(router: &axum::Router, token: &str, query: &str, vars: Value) -> Value {
    send(router, token, json!({ "query": query, "variables": vars })).await.2
}

async fn post_body(router: &axum::Router, token: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = send(router, token, body).await;
    (status, body)
}

async fn status_of(router: &axum::Router, token: &str) -> (u16, Option<String>, Value) {
    send(router, token, json!({ "query": "{ companies(first: 1) { nodes { name } } }" })).await
}

/// A token for another person of TEM with the same roles as `t.token("TEM", &["viewer"])`.
fn colleague(t: &TestApp) -> String {
    t.token_with(kasvu_gateway::auth::Claims::new(
        &t.jwt,
        "colleague",
        "TEM",
        &["viewer"],
        None,
        Duration::from_secs(600),
    ))
}

/// The answer without what differs between two requests by design: the
/// request id, the trace id and the audit event ids errors name.
fn comparable(body: &Value) -> Value {
    let mut b = without_request_id(body.clone());
    if let Some(errors) = b.get_mut("errors").and_then(Value::as_array_mut) {
        for e in errors {
            if let Some(ext) = e.get_mut("extensions").and_then(Value::as_object_mut) {
                assert!(ext.remove("auditEventId").is_none_or(|id| id.is_string()));
            }
        }
    }
    b
}

/// A request's audit events, everything but their ids, times and request.
async fn events_of(t: &TestApp, body: &Value) -> String {
    let request = body["extensions"]["requestId"].as_str().expect("requestId");
    t.sql_text(&format!(
        "SELECT coalesce(json_agg(e ORDER BY e::text), '[]')::text FROM (SELECT actor_sub, actor_org, actor_roles, \
         actor_country, purpose, action, resource_type, resource_ids, fields, field_classes, allowed, \
         rules, policy_version FROM audit_trail WHERE request_id = '{request}') e"
    ))
    .await
}

/// The ids of the events a request recorded.
async fn event_ids(t: &TestApp, body: &Value) -> Vec<String> {
    let request = body["extensions"]["requestId"].as_str().expect("requestId");
    let ids = t
        .sql_text(&format!(
            "SELECT coalesce(string_agg(id::text, ','), '') FROM audit_trail WHERE request_id = '{request}'"
        ))
        .await;
    ids.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn hits(t: &TestApp) -> u64 {
    t.app.metrics.cache.hits()
}

/// Waits until the listener has read the data versions (caching starts then).
async fn listening(app: &kasvu_gateway::app::AppState) {
    for _ in 0..200 {
        if app.cache.versions.current().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the data-version listener never read the versions");
}

#[tokio::test]
async fn a_hit_answers_and_audits_exactly_as_the_execution_did() {
    let t = TestApp::with(cached).await;
    listening(&t.app).await;
    let token = t.token("TEM", &["viewer"]);
    let first = post(&t.router, &token, DASHBOARD, json!({})).await;
    assert!(
        first["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "amountEur of other providers is denied: {first}"
    );
    let before = hits(&t);
    // The same document written differently is the same query.
    let again = DASHBOARD.replace(' ', "  ").replace("{ ", "{\n  # the same\n ");
    let second = post(&t.router, &token, &again, json!({})).await;
    assert_eq!(hits(&t), before + 1, "the second request is a hit");
    assert_eq!(comparable(&first), comparable(&second));
    // The trail has the hit's own events, field by field those of the execution.
    assert_eq!(events_of(&t, &first).await, events_of(&t, &second).await);
    let (ids1, ids2) = (event_ids(&t, &first).await, event_ids(&t, &second).await);
    assert!(!ids2.is_empty() && ids1.iter().all(|i| !ids2.contains(i)), "new events, new ids");
    // Each FORBIDDEN names an event of its own request, and its own trace.
    let trace_of = |body: &Value| {
        let request = body["extensions"]["requestId"].as_str().expect("requestId");
        format!(
            "SELECT string_agg(DISTINCT trace_id, ',') FROM audit_trail WHERE request_id = '{request}'"
        )
    };
    let (trace1, trace2) =
        (t.sql_text(&trace_of(&first)).await, t.sql_text(&trace_of(&second)).await);
    assert_ne!(trace1, trace2);
    for e in second["errors"].as_array().expect("errors") {
        let id = e["extensions"]["auditEventId"].as_str().expect("auditEventId");
        assert!(ids2.iter().any(|i| i == id), "{id} is one of the hit's events");
        assert_eq!(e["extensions"]["traceId"], json!(trace2), "{e}");
    }
    // Another person with the same facts shares the answer, with their own trail.
    let colleague = colleague(&t);
    let third = post(&t.router, &colleague, DASHBOARD, json!({})).await;
    assert_eq!(hits(&t), before + 2);
    assert_eq!(comparable(&first), comparable(&third));
    let subs = t
        .sql_text(&format!(
            "SELECT string_agg(DISTINCT actor_sub, ',') FROM audit_trail WHERE request_id = '{}'",
            third["extensions"]["requestId"].as_str().expect("requestId")
        ))
        .await;
    assert_eq!(subs, "colleague");
}

#[tokio::test]
async fn a_write_through_the_gateway_is_seen_by_the_next_request() {
    let t = TestApp::with(cached).await;
    listening(&t.app).await;
    let viewer = t.token("ELY", &["viewer"]);
    let q = "query($id: ID!) { company(id: $id) { name } }";
    let id = t.sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' AND erased_at IS NULL ORDER BY id LIMIT 1").await;
    let before = post(&t.router, &viewer, q, json!({ "id": id })).await;
    post(&t.router, &viewer, q, json!({ "id": id })).await;
    let hits_before = hits(&t);
    let changed = post(
        &t.router,
        &t.editor(),
        "mutation($id: ID!) { updateCompany(id: $id, input: { name: \"Renamed Oy\" }) { name } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(changed["data"]["updateCompany"]["name"], "Renamed Oy", "{changed}");
    let after = post(&t.router, &viewer, q, json!({ "id": id })).await;
    assert_eq!(after["data"]["company"]["name"], "Renamed Oy", "was {before}");
    assert_eq!(hits(&t), hits_before, "not answered from before the change");
}

#[tokio::test]
async fn a_write_from_psql_reaches_every_gateway_on_the_database() {
    let redis = prefix();
    let url = "redis://127.0.0.1:6379";
    let t = TestApp::with(|c| with_redis(c, url, &redis)).await;
    let (other, other_router) = t.another_gateway(|c| with_redis(c, url, &redis)).await;
    listening(&t.app).await;
    listening(&other).await;
    let viewer = t.token("TEM", &["viewer"]);
    let q = "query($id: ID!) { company(id: $id) { name municipality } }";
    let id = t
        .sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL ORDER BY id LIMIT 1")
        .await;
    let first = post(&t.router, &viewer, q, json!({ "id": id })).await;
    // The other gateway finds it in Redis (its own process has nothing yet).
    let mut shared = false;
    for _ in 0..50 {
        let before = other.metrics.cache.hits();
        let answer = post(&other_router, &viewer, q, json!({ "id": id })).await;
        assert_eq!(comparable(&answer), comparable(&first));
        if other.metrics.cache.hits() > before {
            shared = true;
            break;
        }
        // The first gateway writes to Redis in the background.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(shared, "the second gateway was answered from Redis");
    // A write outside any gateway: both see it once the database announces it.
    let mut delays = Vec::new();
    for round in 0..5 {
        let name = format!("Kunta {round}");
        t.sql_exec(&format!("UPDATE companies SET municipality = '{name}' WHERE id = '{id}'"))
            .await;
        let written = Instant::now();
        for (router, who) in [(&t.router, "first"), (&other_router, "second")] {
            loop {
                let answer = post(router, &viewer, q, json!({ "id": id })).await;
                if answer["data"]["company"]["municipality"] == name.as_str() {
                    delays.push(written.elapsed());
                    break;
                }
                assert!(
                    written.elapsed() < Duration::from_secs(3),
                    "the {who} gateway never saw the write: {answer}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    delays.sort();
    eprintln!("invalidation delay after a psql write: max {:?} of {}", delays.last(), delays.len());
}

#[tokio::test]
async fn answers_that_read_identity_the_clock_or_the_audit_trail_are_not_cached() {
    let t = TestApp::with(cached).await;
    listening(&t.app).await;
    let dpo = t.token("TEM", &["dpo"]);
    let auditor = t.token("KEHA", &["auditor"]);
    for (token, purpose, q) in [
        (&dpo, "CUSTOMER_RELATIONSHIP", "{ viewer { sub org } }"),
        (
            &dpo,
            "DATA_SUBJECT_REQUEST",
            "{ dataSubjectRequests(first: 5) { nodes { id overdue } } }",
        ),
        (&auditor, "SECURITY_AUDIT", "{ auditEvents(first: 5) { nodes { id action } } }"),
    ] {
        for _ in 0..2 {
            let (_, body) = t.gql_for(token, purpose, q, json!({})).await;
            assert!(body["data"].is_object(), "{q}: {body}");
        }
        assert_eq!(hits(&t), 0, "{q} was answered from the cache");
    }
    // Without those, the same actor's query is cached.
    for _ in 0..2 {
        t.gql_for(
            &dpo,
            "DATA_SUBJECT_REQUEST",
            "{ dataSubjectRequests(first: 5) { nodes { id kind } } }",
            json!({}),
        )
        .await;
    }
    assert_eq!(hits(&t), 1);
}

#[tokio::test]
async fn no_persona_is_ever_answered_with_another_profiles_answer() {
    let t = TestApp::with(cached).await;
    let plain = TestApp::new().await;
    listening(&t.app).await;
    let queries = [
        DASHBOARD,
        "{ contacts(first: 30) { totalCount nodes { firstName lastName email phone homeCountry nickname restricted company { name } } } }",
        "{ services(first: 30) { totalCount nodes { kind title provider amountEur notes company { name } } } }",
        "{ companies(first: 30) { nodes { name confidential { turnoverEur riskRating notes } } } }",
    ];
    // Twice through the cached gateway (the second round from the cache),
    // each answer against the uncached gateway's for the same persona.
    for round in 0..2 {
        for (name, actor) in crate::support::personas() {
            let claims = kasvu_gateway::auth::Claims::new(
                &t.jwt,
                &actor.sub,
                actor.org.as_str(),
                &actor.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                Some(&actor.country),
                Duration::from_secs(600),
            );
            let (cached_token, plain_token) =
                (t.token_with(claims.clone()), plain.token_with(claims));
            for q in queries {
                let (_, a) = t.gql_for(&cached_token, actor.purpose.as_str(), q, json!({})).await;
                let (_, b) =
                    plain.gql_for(&plain_token, actor.purpose.as_str(), q, json!({})).await;
                assert_eq!(comparable(&a), comparable(&b), "{name}, round {round}: {q}");
            }
        }
    }
    assert!(hits(&t) > 0, "the second round was answered from the cache");
}

#[tokio::test]
async fn caching_pauses_while_the_listener_is_away() {
    let t = TestApp::with(cached).await;
    listening(&t.app).await;
    let viewer = t.token("TEM", &["viewer"]);
    let q = "query($id: ID!) { company(id: $id) { municipality } }";
    let id = t
        .sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL ORDER BY id LIMIT 1")
        .await;
    post(&t.router, &viewer, q, json!({ "id": id })).await;
    let db = t.db_url.rsplit('/').next().unwrap_or_default().to_owned();
    let killed = t
        .sql_count(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND application_name = 'kasvu-gateway-listener'"
        ))
        .await;
    assert_eq!(killed, 1);
    // Until it reads the versions again, nothing comes from the cache.
    for _ in 0..100 {
        if t.app.cache.versions.current().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.sql_exec(&format!("UPDATE companies SET municipality = 'Paused' WHERE id = '{id}'")).await;
    let answer = post(&t.router, &viewer, q, json!({ "id": id })).await;
    assert_eq!(answer["data"]["company"]["municipality"], "Paused", "{answer}");
    // It reconnects by itself and caching resumes.
    listening(&t.app).await;
    post(&t.router, &viewer, q, json!({ "id": id })).await;
    let before = hits(&t);
    post(&t.router, &viewer, q, json!({ "id": id })).await;
    assert_eq!(hits(&t), before + 1);
}

/// A Redis server of the test's own, which it may stop and kill.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed with Redis)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_stopped_or_killed_never_fails_a_request() {
    let redis = PrivateRedis::start();
    let t = TestApp::with(|c| {
        with_redis(c, &redis.url(), &prefix());
        c.cache.redis_timeout_ms = 50;
        c.cache.redis_breaker_open_ms = 300;
    })
    .await;
    listening(&t.app).await;
    let viewer = t.token("TEM", &["viewer"]);
    let q = "query($n: Int) { companies(first: $n) { nodes { name } } }";
    // Distinct variables: each request misses the process tier and asks Redis.
    let mut n = 1;
    let mut ask = |t: &TestApp| {
        n += 1;
        let (router, viewer) = (t.router.clone(), viewer.clone());
        async move {
            let started = Instant::now();
            let body = post(&router, &viewer, q, json!({ "n": n % 90 + 1 })).await;
            assert!(
                body["errors"].is_null() && body["data"]["companies"]["nodes"].is_array(),
                "{body}"
            );
            started.elapsed()
        }
    };
    for _ in 0..5 {
        ask(&t).await;
    }
    // Stopped (SIGSTOP): calls time out, the breaker opens, requests go on.
    redis.signal("-STOP");
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        slowest = slowest.max(ask(&t).await);
    }
    let tier = t.app.cache.redis().expect("redis tier");
    // Open, or half open if the test ran slowly enough for a trial to be due.
    assert_ne!(tier.breaker_state(), BreakerState::Closed, "the breaker opened");
    assert!(slowest < Duration::from_secs(2), "a stopped Redis held a request {slowest:?}");
    // Back: a trial call closes the breaker.
    redis.signal("-CONT");
    let resumed = Instant::now();
    while tier.breaker_state() != BreakerState::Closed {
        assert!(resumed.elapsed() < Duration::from_secs(10), "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        ask(&t).await;
    }
    // Killed: the same.
    redis.signal("-KILL");
    for _ in 0..20 {
        ask(&t).await;
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn persisted_queries_are_sent_by_hash_once_registered_on_any_gateway() {
    let redis = prefix();
    let url = "redis://127.0.0.1:6379";
    let t = TestApp::with(|c| with_redis(c, url, &redis)).await;
    let (_, other) = t.another_gateway(|c| with_redis(c, url, &redis)).await;
    let token = t.token("TEM", &["viewer"]);
    let query = "query Names($n: Int) { companies(first: $n) { nodes { name } } }";
    let hash = sha256_hex(query);
    let by_hash = |vars: Value| json!({ "variables": vars, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    // Unknown: the client is told so, in the words Apollo's clients expect.
    let (status, body) = post_body(&t.router, &token, by_hash(json!({ "n": 3 }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
    // A document that is not the hash's is refused and not stored.
    let mut wrong = by_hash(json!({ "n": 3 }));
    wrong["query"] = json!("{ companies(first: 1) { nodes { id } } }");
    let (status, body) = post_body(&t.router, &token, wrong).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let (_, body) = post_body(&t.router, &token, by_hash(json!({ "n": 3 }))).await;
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    // Registered with its document, then sent by hash alone.
    let mut register = by_hash(json!({ "n": 3 }));
    register["query"] = json!(query);
    let (_, first) = post_body(&t.router, &token, register).await;
    assert_eq!(first["data"]["companies"]["nodes"].as_array().map(Vec::len), Some(3), "{first}");
    let (_, again) = post_body(&t.router, &token, by_hash(json!({ "n": 3 }))).await;
    assert_eq!(again["data"], first["data"]);
    // Another gateway finds it in Redis; and over GET too.
    let mut found = false;
    for _ in 0..50 {
        let (_, body) = post_body(&other, &token, by_hash(json!({ "n": 2 }))).await;
        if body["data"]["companies"]["nodes"].as_array().map(Vec::len) == Some(2) {
            found = true;
            break;
        }
        assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound", "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "the second gateway found the persisted query in Redis");
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();
    let uri = format!(
        "/graphql?variables={}&extensions={}",
        url::form_urlencoded::byte_serialize(json!({ "n": 1 }).to_string().as_bytes())
            .collect::<String>(),
        url::form_urlencoded::byte_serialize(ext.as_bytes()).collect::<String>()
    );
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = t.send(req).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["data"]["companies"]["nodes"].as_array().map(Vec::len), Some(1), "{body}");
    // A large document is answered but not kept.
    let large =
        format!("# {}\n{{ companies(first: 1) {{ nodes {{ name }} }} }}", "x".repeat(70 * 1024));
    let large_hash = sha256_hex(&large);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": large_hash } });
    let (_, body) =
        post_body(&t.router, &token, json!({ "query": large, "extensions": ext })).await;
    assert!(body["data"]["companies"].is_object(), "{body}");
    let (_, body) = post_body(&t.router, &token, json!({ "extensions": ext })).await;
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound", "{body}");
    // Malformed extensions are the client's error.
    for bad in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let (status, body) = post_body(&t.router, &token, json!({ "extensions": bad })).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
}

fn limited(c: &mut Config) {
    // One request a minute after a burst of 3; MMM far more.
    c.cache.rate_limit_per_sec = 1.0 / 60.0;
    c.cache.rate_limit_burst = 3;
    c.cache.rate_limits = kasvu_gateway::cache::limit::parse_limits("MMM=100:100").expect("limits");
}

#[tokio::test]
async fn a_person_over_their_budget_gets_429_with_retry_after_on_every_gateway() {
    let redis = prefix();
    let url = "redis://127.0.0.1:6379";
    let t = TestApp::with(|c| {
        with_redis(c, url, &redis);
        limited(c);
    })
    .await;
    let (other, other_router) = t
        .another_gateway(|c| {
            with_redis(c, url, &redis);
            limited(c);
        })
        .await;
    // Both gateways draw on one bucket in Redis (once connected to it).
    for _ in 0..100 {
        if t.app.cache.redis().is_some_and(|r| r.connected())
            && other.cache.redis().is_some_and(|r| r.connected())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tem = t.token("TEM", &["viewer"]);
    for router in [&t.router, &other_router, &t.router] {
        let (status, _, body) = status_of(router, &tem).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = status_of(&other_router, &tem).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Nothing was executed or audited for it.
    assert!(body.get("data").is_none(), "{body}");
    // Another person, and another organisation's limit, are their own.
    let colleague = colleague(&t);
    assert_eq!(status_of(&t.router, &colleague).await.0, 200);
    let mmm = t.token("MMM", &["viewer"]);
    for _ in 0..10 {
        assert_eq!(status_of(&t.router, &mmm).await.0, 200);
    }
}

#[tokio::test]
async fn rate_limits_hold_in_process_while_redis_is_away() {
    let redis = PrivateRedis::start();
    let t = TestApp::with(|c| {
        with_redis(c, &redis.url(), &prefix());
        limited(c);
        c.cache.redis_timeout_ms = 50;
    })
    .await;
    drop(redis);
    let tem = t.token("TEM", &["viewer"]);
    for _ in 0..3 {
        assert_eq!(status_of(&t.router, &tem).await.0, 200);
    }
    assert_eq!(status_of(&t.router, &tem).await.0, 429);
}
