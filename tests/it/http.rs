use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{code, TestApp};

const Q: &str = "{ viewer { sub } }";

#[tokio::test]
async fn non_json_posts_are_refused_without_executing() {
    let t = TestApp::new().await;
    let token = t.editor();
    let mutation = json!({"query": "mutation { deleteService(id: \"00000000-0000-0000-0000-000000000000\") }"}).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, body) = t.post_raw(Some(&token), ct, mutation.clone()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {body}");
        assert!(body.get("data").is_none());
    }
    let (status, _) = t
        .post_raw(
            Some(&token),
            Some("application/json; charset=utf-8"),
            json!({"query": Q}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn get_serves_queries_and_refuses_mutations() {
    let t = TestApp::new().await;
    let token = t.editor();
    let get = |q: &str| {
        let uri = format!(
            "/graphql?query={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let (status, _, body) = t.send(get(Q)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("test-user"));
    let before = t.sql_count("SELECT count(*) FROM companies").await;
    let m = "mutation { createCompany(input: {businessId: \"0512696-4\", name: \"X\", companyForm: OTHER, legalBasis: CONTRACT, source: PUBLIC_SOURCE}) { id } }";
    let (status, headers, _) = t.send(get(m)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers.get("allow").map(|v| v.to_str().unwrap_or("")), Some("POST"));
    assert_eq!(t.sql_count("SELECT count(*) FROM companies").await, before);
}

#[tokio::test]
async fn accept_graphql_response_json_gets_that_type_and_4xx_for_invalid_queries() {
    let t = TestApp::new().await;
    let token = t.editor();
    let req = |q: &str| {
        Request::post("/graphql")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/graphql-response+json")
            .body(Body::from(json!({"query": q}).to_string()))
            .expect("request")
    };
    let (status, headers, _) = t.send(req(Q)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/graphql-response+json");
    let (status, _, body) = t.send(req("{ noSuchField }")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // application/json keeps 200 for the same request.
    let (status, body) = t.gql(&token, "{ noSuchField }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let t = TestApp::with(|c| c.limits.max_body_bytes = 2048).await;
    let big =
        json!({"query": format!("{{ viewer {{ sub }} }} # {}", "x".repeat(4096))}).to_string();
    let (status, _) = t.post_raw(Some(&t.editor()), Some("application/json"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn too_many_aliases_are_refused() {
    let t = TestApp::new().await;
    let aliases: String = (0..31).map(|i| format!("a{i}: viewer {{ sub }} ")).collect();
    // Aliases hidden in a fragment count too.
    let (_, body) = t
        .gql(&t.editor(), &format!("{{ ...F }} fragment F on Query {{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn too_many_root_fields_are_refused() {
    let t = TestApp::new().await;
    let q = format!("{{ {} }}", "viewer { sub } ".repeat(11));
    let (_, body) = t.gql(&t.editor(), &q, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
}

#[tokio::test]
async fn too_deep_and_too_complex_queries_are_refused() {
    let shallow = TestApp::with(|c| c.limits.max_depth = 4).await;
    let deep = "{ companies(first: 1) { nodes { contacts { company { contacts { id } } } } } }";
    let (_, body) = shallow.gql(&shallow.editor(), deep, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nested 6 levels deep; at most 4"),
        "{body}"
    );

    let cheap = TestApp::with(|c| c.limits.max_complexity = 30).await;
    let many = "{ companies(first: 2) { nodes { id name municipality country website industryCode businessId legalBasis source createdAt updatedAt registeredBy companyForm lastProcessedAt legalHold erasedAt } } services(first: 1) { nodes { id kind title provider status requestedAt deliveredAt invoicedAt legalBasis source amountEur notes } } }";
    let (_, body) = cheap.gql(&cheap.editor(), many, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("at most 30 is allowed"),
        "{body}"
    );
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn batches_run_each_request_and_are_bounded() {
    let t = TestApp::new().await;
    let two = json!([{"query": Q}, {"query": "{ policyVersion }"}]).to_string();
    // The policy version is class `audit`.
    let token = t.token("TEM", &["editor", "auditor"]);
    let (status, body) = t.post_raw(Some(&token), Some("application/json"), two).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["data"]["viewer"]["sub"], "test-user");
    assert!(body[1]["data"]["policyVersion"].as_str().unwrap_or("").starts_with("sha256:"));
    let six = serde_json::Value::Array(vec![json!({"query": Q}); 6]).to_string();
    let (status, body) = t.post_raw(Some(&token), Some("application/json"), six).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX");
}

#[tokio::test]
async fn introspection_suggestions_and_graphiql_only_when_enabled() {
    let off = TestApp::new().await;
    let (_, body) = off.gql(&off.editor(), "{ __schema { queryType { name } } }", json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "introspection should be off: {body}");
    let (_, body) = off.gql(&off.editor(), "{ viewr { sub } }", json!({})).await;
    assert!(!body.to_string().contains("Did you mean"), "{body}");
    let (status, _, _) =
        off.send(Request::get("/graphiql").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let on = TestApp::with(|c| c.enable_graphiql = true).await;
    let d = on.data(&on.editor(), "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(d["__schema"]["queryType"]["name"], "Query");
    let (status, _, page) =
        on.send(Request::get("/graphiql").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("graphiql"));
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    let t = TestApp::new().await;
    let body = json!({"query": "query Dashboard { viewer { sub } }", "operationName": "Dashboard"})
        .to_string();
    let (status, _) = t.post_raw(Some(&t.editor()), Some("application/json"), body).await;
    assert_eq!(status, StatusCode::OK);
    // A recipient asking for home addresses: served, with those fields
    // denied: a partial answer, not an error. A bad query is an error.
    for (op, query) in [
        ("Partly", "query Partly { contacts(first: 2) { nodes { firstName homeCountry } } }"),
        ("Broken", "query Broken { contacts(first: 2) { nodes { nosuchfield } } }"),
    ] {
        let body = json!({"query": query, "operationName": op}).to_string();
        t.post_raw(Some(&t.token("MMM", &["viewer"])), Some("application/json"), body).await;
    }
    let get = |p: &str| Request::get(p).body(Body::empty()).expect("req");
    let (status, _, _) = t.send(get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = t.send(get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = t.send(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("kasvu_graphql_requests_total{operation=\"Dashboard\",outcome=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("kasvu_graphql_requests_total{operation=\"Partly\",outcome=\"partial\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("kasvu_graphql_requests_total{operation=\"Broken\",outcome=\"error\"} 1"),
        "{body}"
    );
    assert!(body.contains("kasvu_graphql_request_duration_seconds_bucket{operation=\"Dashboard\""));
    assert!(body.contains("kasvu_db_statements_total"));
    assert!(
        body.contains("kasvu_policy_queries_total") && body.contains("kasvu_policy_seconds_total")
    );
}

#[tokio::test]
async fn readyz_fails_when_migrations_are_missing() {
    let t = TestApp::new().await;
    t.sql_exec("DELETE FROM __diesel_schema_migrations").await;
    let (status, _, _) = t.send(Request::get("/readyz").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let t = TestApp::new().await;
    let (_, headers, body) = t
        .send(
            Request::post("/graphql")
                .header("authorization", format!("Bearer {}", t.editor()))
                .header("content-type", "application/json")
                .body(Body::from(json!({"query": Q}).to_string()))
                .expect("req"),
        )
        .await;
    let id = headers["x-request-id"].to_str().expect("id").to_owned();
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["extensions"]["requestId"], id.as_str());
}

/// A database failure reaches the client as INTERNAL_SERVER_ERROR with the
/// request id, never with the cause.
#[tokio::test]
async fn internal_error_cause_never_reaches_the_client() {
    let t = TestApp::new().await;
    t.sql_exec("ALTER TABLE services RENAME COLUMN notes TO notes_secret_internal_name").await;
    // `notes` is selected, so the read names the missing column.
    let (status, body) =
        t.gql(&t.editor(), "{ services(first: 1) { nodes { id notes } } }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("notes_secret")
            && !text.contains("does not exist")
            && !text.contains("SELECT"),
        "{text}"
    );
    let rid = body["extensions"]["requestId"].as_str().expect("request id");
    assert_eq!(body["errors"][0]["extensions"]["requestId"], rid);
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains(rid));
}

#[tokio::test]
async fn statement_timeout_is_unavailable_not_internal() {
    let t = TestApp::with(|c| c.db.db_statement_timeout_ms = 300).await;
    let lock = t.lock_table("companies").await;
    let (status, body) =
        t.gql(&t.editor(), "{ companies(first: 1) { nodes { id } } }", json!({})).await;
    drop(lock);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("statement timeout"),
        "{body}"
    );
    // The pool recovers: the next request is served.
    t.data(&t.editor(), "{ companies(first: 1) { nodes { id } } }", json!({})).await;
}

#[tokio::test]
async fn request_timeout_is_unavailable() {
    let t = TestApp::with(|c| c.limits.request_timeout_secs = 1).await;
    let lock = t.lock_table("companies").await;
    let started = std::time::Instant::now();
    let (_, body) = t.gql(&t.editor(), "{ companies(first: 1) { nodes { id } } }", json!({})).await;
    drop(lock);
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("timed out"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A connection costs its page size times its nodes, so `first: 100` cannot
/// slip under the complexity limit that `first: 10` meets.
#[tokio::test]
async fn complexity_grows_with_page_size() {
    let t = TestApp::with(|c| c.limits.max_complexity = 200).await;
    let q = "query($n: Int) { companies(first: $n) { nodes { id name municipality } } }";
    t.data(&t.editor(), q, json!({"n": 10})).await;
    let (_, body) = t.gql(&t.editor(), q, json!({"n": 100})).await;
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("complex"), "{body}");
    assert!(body["data"].is_null());
}

#[tokio::test]
async fn every_request_logs_one_line_with_who_and_what_but_no_personal_value() {
    let t = TestApp::new().await;
    let path = std::env::temp_dir().join(format!("kasvu-log-{}.jsonl", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("log file");
    // A password in the URL (trust auth ignores it) must not reach the log.
    let with_password = t.db_url.replacen("postgres@", "postgres:s3cret-pw@", 1);
    let (server, base) = crate::reload::start_server_logging(
        &t,
        &[("LOG_FORMAT", "json"), ("RUST_LOG", "info"), ("DATABASE_URL", with_password.as_str())],
        file.into(),
    )
    .await;
    let client = reqwest::Client::new();
    let token = t.token("TEM", &["viewer"]);
    let email = t
        .sql_text("SELECT email FROM contacts WHERE email IS NOT NULL AND NOT restricted AND NOT objection_pending AND erased_at IS NULL LIMIT 1")
        .await;
    let ok = client
        .post(format!("{base}/graphql"))
        .bearer_auth(&token)
        .json(
            &json!({"query": "query Dash { contacts(first: 5) { nodes { email homeCountry } } }"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    let unauthenticated = client
        .post(format!("{base}/graphql"))
        .json(&json!({"query": "{ viewer { sub } }"}))
        .send()
        .await
        .expect("post");
    assert_eq!(unauthenticated.status(), 401);
    let _ = client
        .post(format!("{base}/graphql"))
        .bearer_auth(t.token("MMM", &["viewer"]))
        .json(&json!({"query": "{ contacts(first: 3) { nodes { homeCountry } } }"}))
        .send()
        .await
        .expect("post");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(server);
    let log = std::fs::read_to_string(&path).expect("log");
    let _ = std::fs::remove_file(&path);
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file");
    assert!(!log.contains("s3cret-pw"), "a password in the log");
    assert!(log.contains("configuration in force") && log.contains("REDACTED"), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    let graphql: Vec<&Value> = lines.iter().filter(|l| l["fields"]["path"] == "/graphql").collect();
    assert_eq!(graphql.len(), 3, "{log}");
    let dash =
        graphql.iter().find(|l| l["fields"]["operation"] == "Dash").expect("the dashboard's line");
    let f = &dash["fields"];
    assert_eq!(f["status"], 200);
    assert_eq!(f["org"], "TEM");
    assert_eq!(f["roles"], "viewer");
    assert_eq!(f["method"], "POST");
    assert!(f["audit_events"].as_u64().unwrap_or(0) >= 1, "{dash}");
    assert!(f["request_id"].as_str().is_some_and(|r| r.len() == 36), "{dash}");
    assert!(f["trace_id"].as_str().is_some_and(|r| r.len() == 32), "{dash}");
    assert!(graphql.iter().any(|l| l["fields"]["status"] == 401));
    // The recipient's denied home countries are counted, not shown.
    assert!(graphql
        .iter()
        .any(|l| l["fields"]["org"] == "MMM" && l["fields"]["denied"].as_u64().unwrap_or(0) >= 1));
    assert!(!email.is_empty() && !log.contains(&email), "a personal value in the log");
}

#[tokio::test]
async fn metrics_can_take_a_token_and_an_address_of_their_own() {
    let t = TestApp::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let (server, base) = crate::reload::start_server(
        &t,
        &[("METRICS_ADDR", metrics_addr.as_str()), ("METRICS_TOKEN", "m3trics-t0ken")],
    )
    .await;
    let client = reqwest::Client::new();
    let on_main = client.get(format!("{base}/metrics")).send().await.expect("get");
    assert_eq!(on_main.status(), 404, "not on the public listener");
    let url = format!("http://{metrics_addr}/metrics");
    let anonymous = client.get(&url).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
    let wrong = client.get(&url).bearer_auth("m3trics-t0keX").send().await.expect("get");
    assert_eq!(wrong.status(), 401);
    let ok = client.get(&url).bearer_auth("m3trics-t0ken").send().await.expect("get");
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.expect("text").contains("kasvu_db_statements_total"));
    drop(server);
}

/// Every metric the Grafana dashboard (ops/grafana/kasvu-gateway.json) asks
/// for is exported, once the gateway has served, denied and audited.
#[tokio::test]
async fn the_grafana_dashboard_names_only_exported_metrics() {
    let t = TestApp::new().await;
    // A served, audited read and a denial.
    t.data(&t.token("TEM", &["viewer"]), "{ contacts(first: 2) { nodes { email } } }", json!({}))
        .await;
    let (_, body) = t
        .gql(
            &t.token("MMM", &["viewer"]),
            "{ contacts(first: 1) { nodes { homeCountry } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let req = Request::get("/metrics").body(Body::empty()).expect("request");
    let (status, _, metrics) = t.send(req).await;
    assert_eq!(status, StatusCode::OK);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana/kasvu-gateway.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("json");
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("kasvu_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                names.push(name);
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            metrics.lines().any(|l| l.starts_with(&name)),
            "the dashboard names {name}, which /metrics does not export"
        );
    }
}

/// GraphiQL works offline: its page and every library it loads come from the
/// gateway itself, under a CSP that allows nothing else.
#[tokio::test]
async fn graphiql_is_served_from_the_binary_under_a_strict_csp() {
    let on = TestApp::with(|c| c.enable_graphiql = true).await;
    let (status, headers, page) =
        on.send(Request::get("/graphiql").body(Body::empty()).expect("req")).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    // Every script and stylesheet the page names is local, and served.
    let mut assets = 0;
    for part in page.split(['"', '\'']) {
        if part.starts_with("http://") || part.starts_with("https://") || part.starts_with("//") {
            panic!("the page loads {part} from elsewhere");
        }
        if part.starts_with("/graphiql/") {
            let (status, headers, body) =
                on.send(Request::get(part).body(Body::empty()).expect("req")).await;
            assert_eq!(status, StatusCode::OK, "{part}");
            let ct = headers["content-type"].to_str().expect("type");
            assert!(
                ct.starts_with("text/javascript") || ct.starts_with("text/css"),
                "{part}: {ct}"
            );
            assert!(body.len() > 100, "{part}");
            assets += 1;
        }
    }
    assert_eq!(assets, 5, "{page}");
    let (status, _, _) =
        on.send(Request::get("/graphiql/../Cargo.toml").body(Body::empty()).expect("req")).await;
    assert_ne!(status, StatusCode::OK);
}

/// GraphiQL's introspection query follows type references 15 levels down: a
/// document that asks only for the schema is not bound by the depth limit
/// (with introspection on), one that also reads rows is.
#[tokio::test]
async fn introspection_alone_is_not_bound_by_the_depth_limit() {
    let on = TestApp::with(|c| c.enable_graphiql = true).await;
    let deep_types = "__schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } }";
    let d = on.data(&on.editor(), &format!("{{ {deep_types} }}"), json!({})).await;
    assert!(d["__schema"]["types"].is_array());
    let (_, body) = on
        .gql(
            &on.editor(),
            &format!("{{ {deep_types} companies(first: 1) {{ nodes {{ id }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
}
