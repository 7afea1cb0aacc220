//! Hostile input, sent the way an attacker sends it: every case answers with
//! the right status and code, writes nothing to the register, and leaves the
//! gateway serving. The cases of the hardening review (issue 9) and their kind.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{code, TestApp};

/// Rows of every register table and the change log, to show nothing was written.
async fn register_counts(t: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "companies",
        "company_confidential",
        "contacts",
        "services",
        "data_subject_requests",
        "change_log",
    ] {
        counts.push(t.sql_count(&format!("SELECT count(*) FROM {table}")).await);
    }
    counts
}

/// The gateway still answers an ordinary query.
async fn still_serving(t: &TestApp) {
    let d = t
        .data(&t.token("TEM", &["viewer"]), "{ companies(first: 1) { nodes { name } } }", json!({}))
        .await;
    assert!(d["companies"]["nodes"][0]["name"].is_string(), "{d}");
}

async fn get(t: &TestApp, token: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    let req = Request::get(format!("/graphql?{query}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = t.send(req).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

fn nested_list(levels: usize) -> String {
    format!(
        "{{ companies(first: {}1{}) {{ nodes {{ id }} }} }}",
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

fn nested_filter(levels: usize) -> String {
    format!(
        "{{ companies(filter: {}{}) {{ nodes {{ id }} }} }}",
        "{a: ".repeat(levels),
        "}".repeat(levels)
    )
}

#[tokio::test]
async fn deeply_nested_documents_and_variables_are_refused_before_parsing() {
    let t = TestApp::new().await;
    // A recipient's token is enough to try.
    let token = t.token("MMM", &["viewer"]);
    let before = register_counts(&t).await;
    for query in [
        nested_list(2048),
        nested_list(1024),
        nested_list(100_000),
        nested_filter(2048),
        format!("{}{}", "{ a ".repeat(5000), "}".repeat(5000)),
        format!("query {}", "(".repeat(3000)),
    ] {
        let (status, body) = t.gql(&token, &query, json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", &query[..40]);
        assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
        if query.len() < 30_000 {
            let (status, body) = get(&t, &token, &[("query", &query)]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
        }
    }
    // Variables nested past the bound, in the body and in a GET.
    // Built as text: a serde_json value this deep would overflow the test's own stack.
    let deep = format!("{}1{}", "[".repeat(3000), "]".repeat(3000));
    let body = format!(
        r#"{{"query": "query($f: Int) {{ companies(first: $f) {{ nodes {{ id }} }} }}", "variables": {{"f": {deep}}}}}"#
    );
    let (status, b) = t.post_raw(Some(&token), Some("application/json"), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(code(&b), "QUERY_TOO_COMPLEX", "{b}");
    let (status, b) = get(
        &t,
        &token,
        &[
            ("query", "query($f: Int) { companies(first: $f) { nodes { id } } }"),
            ("variables", &format!(r#"{{"f": {deep}}}"#)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(code(&b), "QUERY_TOO_COMPLEX", "{b}");
    // Nesting within the bound is an ordinary validation error, not a refusal.
    let (_, b) = t.gql(&token, &nested_list(20), json!({})).await;
    assert_eq!(code(&b), "BAD_USER_INPUT", "{b}");
    assert_eq!(register_counts(&t).await, before);
    still_serving(&t).await;
}

#[tokio::test]
async fn the_real_gateway_survives_what_used_to_abort_it() {
    let t = TestApp::new().await;
    let (server, base) = crate::reload::start_server(&t, &[]).await;
    let client = reqwest::Client::new();
    let token = t.token("MMM", &["viewer"]);
    for query in [nested_list(2048), nested_filter(2048), nested_list(200_000)] {
        let res = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 400);
        if query.len() > 30_000 {
            continue; // too long for a URL
        }
        let res = client
            .get(format!("{base}/graphql"))
            .bearer_auth(&token)
            .query(&[("query", &query)])
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 400);
    }
    let health = client.get(format!("{base}/healthz")).send().await.expect("the process is alive");
    assert!(health.status().is_success());
    let body = crate::reload::ask(
        &client,
        &format!("{base}/graphql"),
        &token,
        "{ companies(first: 1) { nodes { name } } }",
    )
    .await;
    assert!(body["data"]["companies"]["nodes"].is_array(), "{body}");
    drop(server);
}

#[tokio::test]
async fn long_strings_and_nul_bytes_are_bad_input_naming_the_argument() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    let before = register_counts(&t).await;
    let q = "query($f: CompanyFilterInput) { companies(filter: $f) { nodes { id } } }";
    let megabyte = "x".repeat(1024 * 1024 - 200);
    for (value, field) in [
        (megabyte.as_str(), "filter.nameContains"),
        (&"é".repeat(201), "filter.nameContains"),
        ("Oy\u{0}Ab", "filter.nameContains"),
    ] {
        let (status, body) = t.gql(&token, q, json!({"f": {"nameContains": value}})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    // Inline, too; and a long free text on a mutation.
    let inline = format!(
        r#"{{ companies(filter: {{municipality: "{}"}}) {{ nodes {{ id }} }} }}"#,
        "a".repeat(5000)
    );
    let (_, body) = t.gql(&token, &inline, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "filter.municipality", "{body}");
    let id = t.sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' LIMIT 1").await;
    let (_, body) = t
        .gql(
            &t.editor(),
            "mutation($id: ID!, $w: String) { updateCompany(id: $id, input: {website: $w}) { id } }",
            json!({"id": id, "w": "w".repeat(10_001)}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.website", "{body}");
    // At the bound it is an ordinary filter.
    let (_, body) = t.gql(&token, q, json!({"f": {"nameContains": "y".repeat(200)}})).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(register_counts(&t).await, before);
    still_serving(&t).await;
}

#[tokio::test]
async fn a_megabyte_filter_from_many_clients_does_not_hold_the_pool() {
    // The tests' pool has 4 connections: 16 hostile requests at once, then an ordinary one is served.
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    let q = "query($f: CompanyFilterInput) { companies(filter: $f) { totalCount nodes { id } } }";
    let big = "%".repeat(1024 * 1000);
    let hostile = (0..16).map(|_| t.gql(&token, q, json!({"f": {"nameContains": big}})));
    for (_, body) in futures::future::join_all(hostile).await {
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    still_serving(&t).await;
}

#[tokio::test]
async fn forged_cursors_and_bad_ids_are_bad_input() {
    use base64::Engine;
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    let forge = |raw: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    for cursor in [
        forge(format!("{}|{}", i64::MAX, uuid::Uuid::nil())),
        forge(format!("{}|{}", -100_000_000_000_000_000i64, uuid::Uuid::nil())),
        forge(format!("999999999999999999|{}", uuid::Uuid::nil())),
        forge("1|not-a-uuid".into()),
        "%%%".into(),
        "\u{0}".into(),
    ] {
        for list in ["companies", "contacts", "services"] {
            let q = format!("query($a: String) {{ {list}(after: $a) {{ nodes {{ id }} }} }}");
            let (status, body) = t.gql(&token, &q, json!({ "a": cursor })).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(code(&body), "BAD_USER_INPUT", "{list} {cursor:?}: {body}");
        }
    }
    for id in ["", "x", "00000000-0000-0000-0000-00000000000g", "\u{0}"] {
        let (_, body) =
            t.gql(&token, "query($id: ID!) { company(id: $id) { id } }", json!({ "id": id })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{id:?}: {body}");
    }
}

#[tokio::test]
async fn bad_headers_bodies_and_tokens_get_their_status_and_a_json_error() {
    let t = TestApp::with(|c| c.limits.max_body_bytes = 64 * 1024).await;
    let before = register_counts(&t).await;
    let token = t.token("TEM", &["viewer"]);
    let send = |purposes: Vec<&'static [u8]>, auth: Option<Vec<u8>>, body: Vec<u8>| {
        let mut req = Request::post("/graphql").header("content-type", "application/json");
        for p in purposes {
            req = req.header("x-processing-purpose", p);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let req = req.body(Body::from(body)).expect("request");
        async {
            let (status, headers, body) = t.send(req).await;
            let json: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("not JSON ({status}): {body}"));
            (status, headers, json)
        }
    };
    let bearer = |t: &str| Some(format!("Bearer {t}").into_bytes());
    let ok_body = json!({"query": "{ viewer { sub } }"}).to_string().into_bytes();
    // 413 is the JSON error body with a code.
    let (status, _, body) = send(vec![], bearer(&token), vec![b' '; 70 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Two purposes, or an empty one: 400, never "first wins" or the default.
    for purposes in [
        vec![&b"MARKETING"[..], &b"CUSTOMER_RELATIONSHIP"[..]],
        vec![&b"CUSTOMER_RELATIONSHIP"[..], &b"CUSTOMER_RELATIONSHIP"[..]],
        vec![&b""[..]],
        vec![&b"   "[..]],
        vec![&b"marketing"[..]],
        vec![&b"\xff\xfe"[..]],
    ] {
        let (status, _, body) = send(purposes.clone(), bearer(&token), ok_body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{purposes:?}: {body}");
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    // Tokens: garbage, huge, not text, no scheme, alg none.
    let none = format!(
        "{}.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"none","typ":"JWT"}"#
        ),
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"sub":"x","org":"TEM","roles":["dpo"],"exp":9999999999}"#
        )
    );
    for auth in [
        bearer("garbage"),
        bearer(&"a".repeat(60_000)),
        bearer(&none),
        Some(b"Bearer \xff\xfe".to_vec()),
        Some(token.clone().into_bytes()),
        Some(b"Basic dXNlcjpwYXNz".to_vec()),
        None,
    ] {
        let (status, headers, body) = send(vec![], auth, ok_body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        assert!(headers.contains_key("www-authenticate"));
    }
    // Bodies that are not GraphQL requests: bad bytes, lone surrogates, wrong shapes.
    for raw in [
        &b"\xff\xfe{\"query\": 1}"[..],
        br#"{"query": "{ viewer { sub } }\ud800"}"#,
        br#"{"query": ["not", "a", "string"]}"#,
        b"null",
        b"",
        br#"{"query": "{ viewer { sub } }", "variables": "not an object"}"#,
    ] {
        let (status, _, body) = send(vec![], bearer(&token), raw.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{:?}: {body}", String::from_utf8_lossy(raw));
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    // Width: aliases and root fields past their limits.
    let aliases = format!(
        "{{ {} }}",
        (0..40).map(|i| format!("a{i}: viewer {{ sub }}")).collect::<Vec<_>>().join(" ")
    );
    let (_, _, body) =
        send(vec![], bearer(&token), json!({"query": aliases}).to_string().into_bytes()).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert_eq!(register_counts(&t).await, before);
    still_serving(&t).await;
}

#[tokio::test]
async fn a_recipients_mutation_is_forbidden_before_its_input_is_judged() {
    let t = TestApp::new().await;
    let before = register_counts(&t).await;
    let mmm = t.token("MMM", &["viewer", "editor"]);
    let id = t.sql_text("SELECT id::text FROM companies LIMIT 1").await;
    let contact = t.sql_text("SELECT id::text FROM contacts LIMIT 1").await;
    for (q, vars) in [
        (
            "mutation { createCompany(input: {businessId: \"bad\", name: \"\"}) { id } }",
            json!({}),
        ),
        (
            "mutation($id: ID!) { updateCompany(id: $id, input: {businessId: \"bad\"}) { id } }",
            json!({"id": id}),
        ),
        (
            "mutation($id: ID!) { createContact(companyId: $id, input: {email: \"not an email\"}) { id } }",
            json!({"id": id}),
        ),
        (
            "mutation($id: ID!) { updateContact(id: $id, input: {email: \"nope\"}) { id } }",
            json!({"id": contact}),
        ),
        (
            "mutation($id: ID!) { createService(input: {companyId: $id}) { id } }",
            json!({"id": id}),
        ),
        (
            "mutation($id: ID!) { setContactLegalHold(id: $id, reason: \"\") { id } }",
            json!({"id": contact}),
        ),
        (
            "mutation { fileDataSubjectRequest(input: {kind: ACCESS}) { id } }",
            json!({}),
        ),
    ] {
        let (_, body) = t.gql(&mmm, q, vars).await;
        assert_eq!(code(&body), "FORBIDDEN", "{q}: {body}");
        assert!(body["errors"][0]["extensions"]["auditEventId"].is_string(), "{body}");
    }
    assert_eq!(register_counts(&t).await, before);
}

#[tokio::test]
async fn a_connection_terminated_under_a_request_is_unavailable() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    // The request waits on a locked table; its backend is then terminated.
    let lock = t.lock_table("companies").await;
    let request = t.gql(&token, "{ companies(first: 1) { nodes { name } } }", json!({}));
    let terminate = async {
        let db = t.db_url.rsplit('/').next().unwrap_or_default().to_owned();
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let n = t
                .sql_count(&format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{db}' AND wait_event_type = 'Lock' AND application_name LIKE 'kasvu-gateway%'"
                ))
                .await;
            if n > 0 {
                return;
            }
        }
        panic!("the request never waited on the lock");
    };
    let ((status, body), ()) = tokio::join!(request, terminate);
    drop(lock);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    still_serving(&t).await;
}

#[tokio::test]
async fn graphql_http_audit_passes_without_warnings() {
    let t = TestApp::new().await;
    let (server, base) = crate::reload::start_server(&t, &[]).await;
    let token = t.token("TEM", &["viewer"]);
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/graphql-http-audit");
    let out = std::process::Command::new(script)
        .args([format!("{base}/graphql"), token])
        .output()
        .expect("run scripts/graphql-http-audit (needs node and npm)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "graphql-http audit:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 warned or failed"), "{stdout}");
    drop(server);
}
