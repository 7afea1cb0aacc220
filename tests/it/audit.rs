//! The audit trail: what is recorded, that it is durable before the answer,
//! append-only and hash-chained, and what auditors can ask of it.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::support::{code, TestApp};
use kasvu_gateway::config::{AuditConfig, Config};

const SECTOR: &str = "industry_code ~ '^(01|02|03|10|11)'";
const EMAILS: &str = "query($n: Int) { contacts(first: $n) { nodes { id email lastName } } }";

fn with_audit(audit: AuditConfig) -> impl FnOnce(&mut Config) {
    move |c| c.audit = audit
}

fn quick_timeout() -> AuditConfig {
    AuditConfig { audit_commit_timeout_ms: 300, ..AuditConfig::default() }
}

fn ids(data: &Value) -> Vec<String> {
    let mut ids: Vec<String> = data["contacts"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The events stored so far, as JSON (the test's database only).
async fn events(t: &TestApp, filter: &str) -> Vec<Value> {
    let text = t
        .sql_text(&format!(
            "SELECT coalesce(json_agg(e ORDER BY seq), '[]')::text FROM (\
               SELECT seq, id, request_id, trace_id, actor_sub, actor_org, actor_roles, purpose, action, \
                      resource_type, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(resource_ids) x) AS resource_ids, \
                      fields, field_classes, allowed, rules, policy_version \
               FROM audit_trail WHERE {filter}) e"
        ))
        .await;
    serde_json::from_str::<Vec<Value>>(&text).expect("events as JSON")
}

async fn verify(t: &TestApp) -> (bool, String) {
    audit_cli(t, &["verify"])
}

async fn request_with_headers(
    t: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (StatusCode, Value) {
    let mut req = Request::post("/graphql")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) = t
        .send(
            req.body(Body::from(json!({ "query": query, "variables": variables }).to_string()))
                .expect("request"),
        )
        .await;
    (status, serde_json::from_str(&body).expect("JSON body"))
}

#[tokio::test]
async fn a_page_of_contacts_read_alike_is_one_event_naming_every_id() {
    let t = TestApp::new().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, body) = request_with_headers(
        &t,
        &t.token("TEM", &["viewer"]),
        &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
        EMAILS,
        json!({"n": 50}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request_id = body["extensions"]["requestId"].as_str().expect("requestId");
    let read = ids(&body["data"]);
    assert_eq!(read.len(), 50);
    let evs = events(&t, "action = 'read'").await;
    assert_eq!(evs.len(), 1, "one event for the page: {evs:?}");
    let e = &evs[0];
    assert_eq!(e["resource_ids"], json!(read));
    assert_eq!(e["fields"], json!(["email", "lastName"]));
    assert_eq!(e["field_classes"], json!(["contact.identification"]));
    assert_eq!(e["allowed"], true);
    assert_eq!(e["request_id"], request_id);
    assert_eq!(e["trace_id"], trace);
    assert_eq!(e["actor_org"], "TEM");
    assert_eq!(e["actor_roles"], json!(["viewer"]));
    assert_eq!(e["purpose"], "CUSTOMER_RELATIONSHIP");
    assert_eq!(e["rules"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(e["policy_version"].as_str(), Some(t.app.authorizer().version()));
}

#[tokio::test]
async fn public_company_data_is_not_audited_but_a_sole_traders_name_is() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    let company = t
        .sql_text("SELECT id::text FROM companies WHERE company_form <> 'SOLE_TRADER' AND erased_at IS NULL LIMIT 1")
        .await;
    t.data(
        &token,
        "query($id: ID!) { company(id: $id) { name businessId municipality } }",
        json!({"id": company}),
    )
    .await;
    assert!(events(&t, "true").await.is_empty());
    let trader = t
        .sql_text("SELECT id::text FROM companies WHERE company_form = 'SOLE_TRADER' AND erased_at IS NULL LIMIT 1")
        .await;
    t.data(
        &token,
        "query($id: ID!) { company(id: $id) { name municipality } }",
        json!({"id": trader}),
    )
    .await;
    let evs = events(&t, "true").await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["resource_type"], "company");
    assert_eq!(evs[0]["resource_ids"], json!([trader]));
    assert_eq!(evs[0]["fields"], json!(["name"]));
    assert_eq!(evs[0]["field_classes"], json!(["contact.identification"]));
}

#[tokio::test]
async fn a_forbidden_field_names_the_audit_event_that_recorded_it() {
    let t = TestApp::new().await;
    let id = t
        .sql_text(&format!(
            "SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id \
             WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL LIMIT 1"
        ))
        .await;
    let (_, body) = t
        .gql(
            &t.token("MMM", &["viewer"]),
            "query($id: ID!) { contact(id: $id) { lastName postalAddress homeCountry } }",
            json!({"id": id}),
        )
        .await;
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    let event = errors[0]["extensions"]["auditEventId"].as_str().expect("auditEventId");
    // Both denials share one event: same resource type, decision and class.
    assert_eq!(errors[1]["extensions"]["auditEventId"], event);
    let evs = events(&t, &format!("id = '{event}'")).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["allowed"], false);
    assert_eq!(evs[0]["resource_ids"], json!([id]));
    assert_eq!(evs[0]["fields"], json!(["homeCountry", "postalAddress"]));
    assert_eq!(evs[0]["field_classes"], json!(["contact.home"]));
    let rule = evs[0]["rules"][0].as_str().expect("rule");
    assert!(errors[0]["message"].as_str().unwrap_or("").contains(rule), "{body}");
    // The allowed read of the last name is its own event.
    assert_eq!(events(&t, "allowed").await.len(), 1);
}

#[tokio::test]
async fn a_refused_request_is_recorded_and_its_403_names_the_event() {
    let t = TestApp::new().await;
    let (status, body) =
        t.gql(&t.token_at("TEM", &["viewer"], "US"), "{ viewer { sub } }", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let event = body["errors"][0]["extensions"]["auditEventId"].as_str().expect("auditEventId");
    let evs = events(&t, &format!("id = '{event}'")).await;
    assert_eq!(evs.len(), 1, "{body}");
    assert_eq!(evs[0]["action"], "request");
    assert_eq!(evs[0]["allowed"], false);
    assert_eq!(evs[0]["rules"], json!(["R8-abroad"]));
}

#[tokio::test]
async fn a_change_commits_its_event_in_its_own_transaction() {
    let t = TestApp::new().await;
    let company =
        t.sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL LIMIT 1").await;
    let create =
        "mutation($c: ID!, $i: ContactInput!) { createContact(companyId: $c, input: $i) { id } }";
    let input = json!({"lastName": "Auditointitesti", "email": "v@example.fi", "legalBasis": "CONTRACT", "source": "DATA_SUBJECT"});
    let data = t.data(&t.editor(), create, json!({"c": company, "i": input})).await;
    let id = data["createContact"]["id"].as_str().expect("id");
    let evs = events(&t, "action = 'create'").await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["resource_ids"], json!([id]));
    assert_eq!(evs[0]["fields"], json!(["companyId", "email", "lastName", "legalBasis", "source"]));
    assert_eq!(evs[0]["allowed"], true);

    // If its event cannot be stored, the change does not happen either.
    t.sql_exec("REVOKE INSERT ON audit_events FROM kasvu_gateway").await;
    let (_, body) = t.gql(&t.editor(), create, json!({"c": company, "i": input})).await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    t.sql_exec("GRANT INSERT ON audit_events TO kasvu_gateway").await;
    assert_eq!(
        t.sql_count("SELECT count(*) FROM contacts WHERE last_name = 'Auditointitesti'").await,
        1
    );
}

#[tokio::test]
async fn a_denied_change_is_recorded_and_names_its_event() {
    let t = TestApp::new().await;
    let company =
        t.sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL LIMIT 1").await;
    let (_, body) = t
        .gql(
            &t.token("TEM", &["viewer"]),
            "mutation($c: ID!) { createContact(companyId: $c, input: {lastName: \"X\", legalBasis: CONTRACT, source: DATA_SUBJECT}) { id } }",
            json!({"c": company}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let event = body["errors"][0]["extensions"]["auditEventId"].as_str().expect("auditEventId");
    let evs = events(&t, &format!("id = '{event}'")).await;
    assert_eq!(evs[0]["action"], "create");
    assert_eq!(evs[0]["allowed"], false);
}

#[tokio::test]
async fn the_gateway_may_only_insert_and_select_audit_events_and_no_one_may_change_them() {
    let t = TestApp::new().await;
    t.data(&t.token("TEM", &["viewer"]), EMAILS, json!({"n": 3})).await;
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 1);
    // As the gateway's own connections (SET ROLE kasvu_gateway).
    let mut conn = t.app.pool.get().await.expect("pooled connection");
    for sql in [
        "UPDATE audit_events SET allowed = false",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(err.to_string().contains("permission denied"), "{sql}: {err}");
    }
    drop(conn);
    // As the superuser that owns the table: the trigger refuses.
    let mut owner: diesel_async::AsyncPgConnection =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&t.db_url)
            .await
            .expect("connect");
    let owner = &mut owner;
    for sql in [
        "UPDATE audit_events SET allowed = false",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = diesel::sql_query(sql).execute(owner).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 1);
}

/// Five requests, five events, a verified chain.
async fn five_events(t: &TestApp) {
    let token = t.token("TEM", &["viewer"]);
    for n in 1..=5 {
        t.data(&token, EMAILS, json!({"n": n})).await;
    }
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 5);
    let (ok, out) = verify(t).await;
    assert!(ok, "{out}");
    assert!(out.contains("intact: 5 events"), "{out}");
}

/// Tampering as a superuser, with the append-only trigger switched off.
async fn tamper(t: &TestApp, sql: &str) {
    t.sql_batch(&format!("BEGIN; SET LOCAL session_replication_role = replica; {sql}; COMMIT"))
        .await;
}

#[tokio::test]
async fn verify_finds_an_edited_event() {
    let t = TestApp::new().await;
    five_events(&t).await;
    tamper(&t, "UPDATE audit_events SET actor_sub = 'someone-else' WHERE seq = 3").await;
    let (ok, out) = verify(&t).await;
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at event 3"), "{out}");
    assert!(out.contains("was changed"), "{out}");
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let t = TestApp::new().await;
    five_events(&t).await;
    tamper(&t, "DELETE FROM audit_events WHERE seq = 2").await;
    let (ok, out) = verify(&t).await;
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at event 3"), "{out}");
    assert!(out.contains("event 2 is missing"), "{out}");
    // Deleting the first event is found too.
    tamper(&t, "DELETE FROM audit_events WHERE seq = 1").await;
    let (_, out) = verify(&t).await;
    assert!(out.contains("event 1 is missing"), "{out}");
}

#[tokio::test]
async fn verify_finds_reordered_events() {
    let t = TestApp::new().await;
    five_events(&t).await;
    tamper(
        &t,
        "UPDATE audit_events SET seq = 1000 WHERE seq = 4; \
         UPDATE audit_events SET seq = 4 WHERE seq = 2; \
         UPDATE audit_events SET seq = 2 WHERE seq = 1000",
    )
    .await;
    let (ok, out) = verify(&t).await;
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at event 2"), "{out}");
}

#[tokio::test]
async fn verify_finds_a_rewritten_link() {
    let t = TestApp::new().await;
    five_events(&t).await;
    // A forger who recomputes one event's hash still breaks the next link.
    tamper(&t, "UPDATE audit_events SET hash = sha256(hash) WHERE seq = 4").await;
    let (ok, out) = verify(&t).await;
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at event 4"), "{out}");
}

fn assert_failed_closed(body: &Value) {
    assert_eq!(code(body), "UNAVAILABLE", "{body}");
    assert!(body["data"].is_null(), "no data may be sent: {body}");
    assert!(!body.to_string().contains('@'), "no email may leak: {body}");
}

#[tokio::test]
async fn a_response_is_not_sent_when_its_events_cannot_be_stored() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    t.sql_exec("REVOKE INSERT ON audit_events FROM kasvu_gateway").await;
    let (status, body) = t.gql(&token, EMAILS, json!({"n": 5})).await;
    assert_eq!(status, StatusCode::OK);
    assert_failed_closed(&body);
    // Nothing audited to read: answered as usual.
    t.data(&token, "{ viewer { sub } }", json!({})).await;
    t.sql_exec("GRANT INSERT ON audit_events TO kasvu_gateway").await;
    t.data(&token, EMAILS, json!({"n": 5})).await;
}

#[tokio::test]
async fn a_locked_audit_table_fails_requests_with_unavailable_not_a_hang() {
    let t = TestApp::with(with_audit(quick_timeout())).await;
    let token = t.token("TEM", &["viewer"]);
    let lock = t.lock_table("audit_events").await;
    let started = Instant::now();
    let (_, body) = t.gql(&token, EMAILS, json!({"n": 5})).await;
    assert_failed_closed(&body);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(lock);
    // The writer recovers once the lock is gone.
    t.data(&token, EMAILS, json!({"n": 5})).await;
    let (ok, out) = verify(&t).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_full_audit_queue_fails_requests_at_once() {
    let t = TestApp::with(with_audit(AuditConfig {
        audit_queue_capacity: 1,
        audit_commit_timeout_ms: 1500,
        ..AuditConfig::default()
    }))
    .await;
    let token = t.token("TEM", &["viewer"]);
    let lock = t.lock_table("audit_events").await;
    let bodies =
        futures::future::join_all((0..6).map(|_| t.gql(&token, EMAILS, json!({"n": 2})))).await;
    drop(lock);
    for (_, body) in &bodies {
        assert_failed_closed(body);
    }
    let metrics = t.app.metrics.render(0, 0, 0.0);
    let queue_full = metrics
        .lines()
        .find(|l| l.starts_with("kasvu_audit_failures_total{reason=\"queue_full\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(queue_full >= 1, "{metrics}");
}

#[tokio::test]
async fn concurrent_requests_share_one_audit_commit() {
    let t = TestApp::with(with_audit(AuditConfig {
        audit_commit_timeout_ms: 8000,
        ..AuditConfig::default()
    }))
    .await;
    let token = t.token("TEM", &["viewer"]);
    // Hold the writer while twenty requests finish, so they queue behind it.
    let lock = t.lock_table("audit_events").await;
    let requests =
        futures::future::join_all((0..20).map(|_| t.gql(&token, EMAILS, json!({"n": 3}))));
    let release = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        drop(lock);
    };
    let (bodies, ()) = tokio::join!(requests, release);
    for (status, body) in &bodies {
        assert_eq!(*status, StatusCode::OK);
        assert!(body["errors"].is_null(), "{body}");
    }
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 20);
    let metrics = t.app.metrics.render(0, 0, 0.0);
    let commits = metrics
        .lines()
        .find(|l| l.starts_with("kasvu_audit_batch_events_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("batch count");
    assert!(commits <= 3, "20 requests took {commits} commits");
    let (ok, out) = verify(&t).await;
    assert!(ok, "{out}");
}

const SEARCH: &str = "query($f: AuditEventFilter, $first: Int, $after: String) {
  auditEvents(filter: $f, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id seq requestId actor { sub org roles } purpose action resourceType resourceIds fields fieldClasses allowed rules policyVersion hash prevHash }
  }
}";

#[tokio::test]
async fn auditors_find_every_event_that_touched_a_contact_without_its_values() {
    let t = TestApp::new().await;
    let viewer = t.token("TEM", &["viewer"]);
    let data = t.data(&viewer, EMAILS, json!({"n": 4})).await;
    let contact = &data["contacts"]["nodes"][2];
    let id = contact["id"].as_str().expect("id");
    let email = contact["email"].as_str().expect("email");
    t.data(&viewer, "query($id: ID!) { contact(id: $id) { phone } }", json!({"id": id})).await;
    let auditor = t.token("TEM", &["auditor"]);
    let (_, body) =
        t.gql_for(&auditor, "SECURITY_AUDIT", SEARCH, json!({"f": {"resourceId": id}})).await;
    assert!(body["errors"].is_null(), "{body}");
    let found = &body["data"]["auditEvents"];
    assert_eq!(found["totalCount"], 2, "{body}");
    let nodes = found["nodes"].as_array().expect("nodes");
    // Newest first.
    assert_eq!(nodes[0]["fields"], json!(["phone"]));
    assert_eq!(nodes[1]["fields"], json!(["email", "lastName"]));
    assert!(nodes[0]["seq"].as_i64() > nodes[1]["seq"].as_i64());
    assert_eq!(nodes[0]["actor"]["sub"], "test-user");
    assert_eq!(nodes[0]["actor"]["org"], "TEM");
    assert_eq!(nodes[0]["prevHash"].as_str().map(str::len), Some(64));
    assert!(!body.to_string().contains(email), "values never: {body}");
}

#[tokio::test]
async fn auditors_filter_and_page_the_trail() {
    let t = TestApp::new().await;
    let viewer = t.token("TEM", &["viewer"]);
    for n in 1..=3 {
        t.data(&viewer, EMAILS, json!({"n": n})).await;
    }
    let mmm = t.token("MMM", &["viewer"]);
    let id = t
        .sql_text(&format!(
            "SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id \
             WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL LIMIT 1"
        ))
        .await;
    t.gql(&mmm, "query($id: ID!) { contact(id: $id) { postalAddress } }", json!({"id": id})).await;
    let auditor = t.token("KEHA", &["auditor"]);
    let search = |f: Value, first: i64, after: Option<String>| {
        let auditor = auditor.clone();
        let t = &t;
        async move {
            let (_, body) = t
                .gql_for(
                    &auditor,
                    "SECURITY_AUDIT",
                    SEARCH,
                    json!({"f": f, "first": first, "after": after}),
                )
                .await;
            assert!(body["errors"].is_null(), "{body}");
            body["data"]["auditEvents"].clone()
        }
    };
    let denied = search(json!({"allowed": false}), 10, None).await;
    assert_eq!(denied["totalCount"], 1);
    assert_eq!(denied["nodes"][0]["actor"]["org"], "MMM");
    let rule = denied["nodes"][0]["rules"][0].as_str().expect("rule").to_owned();
    let by_rule = search(json!({"rule": rule}), 10, None).await;
    assert_eq!(by_rule["totalCount"], 1);
    let by_org = search(json!({"actorOrg": "TEM", "resourceType": "contact"}), 10, None).await;
    assert_eq!(by_org["totalCount"], 3);
    // Pages of two, newest first, through the cursor.
    let first = search(json!({"actorOrg": "TEM", "resourceType": "contact"}), 2, None).await;
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let after = first["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    let second = search(json!({"actorOrg": "TEM", "resourceType": "contact"}), 2, after).await;
    assert_eq!(second["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["pageInfo"]["hasNextPage"], false);
    assert!(first["nodes"][1]["seq"].as_i64() > second["nodes"][0]["seq"].as_i64());
    // A time range.
    let future = search(json!({"from": "2099-01-01T00:00:00Z"}), 10, None).await;
    assert_eq!(future["totalCount"], 0);
    // The auditors' own searches are on the record as well.
    let own = search(json!({"resourceType": "audit_event"}), 10, None).await;
    assert!(own["totalCount"].as_i64() >= Some(6), "{own}");
    // Bad input is refused clearly.
    let (_, body) =
        t.gql_for(&auditor, "SECURITY_AUDIT", SEARCH, json!({"f": {"resourceId": "nope"}})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (_, body) =
        t.gql_for(&auditor, "SECURITY_AUDIT", SEARCH, json!({"after": "garbage"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn only_auditors_read_the_trail_and_a_refusal_is_itself_recorded() {
    let t = TestApp::new().await;
    for roles in [&["viewer", "editor", "confidential", "dpo"][..]] {
        let (_, body) = t.gql(&t.token("TEM", roles), SEARCH, json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        let event = body["errors"][0]["extensions"]["auditEventId"].as_str().expect("auditEventId");
        let evs = events(&t, &format!("id = '{event}'")).await;
        assert_eq!(evs[0]["resource_type"], "audit_event");
        assert_eq!(evs[0]["allowed"], false);
    }
}

const EXPLAIN: &str = "query($i: ExplainInput!) { explainDecision(input: $i) { allowed rules policyVersion action fieldClass facts { owner restricted inSector soleTrader } } }";

#[tokio::test]
async fn explain_gives_the_decision_the_gateway_enforces() {
    let t = TestApp::new().await;
    let auditor = t.token("TEM", &["auditor"]);
    let id = t
        .sql_text(&format!(
            "SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id \
             WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL LIMIT 1"
        ))
        .await;
    let explain = |input: Value| {
        let auditor = auditor.clone();
        let t = &t;
        async move {
            let (_, body) =
                t.gql_for(&auditor, "SECURITY_AUDIT", EXPLAIN, json!({"i": input})).await;
            body
        }
    };
    let mmm = json!({"org": "MMM", "roles": ["viewer"], "purpose": "CUSTOMER_RELATIONSHIP"});
    // What MMM actually gets for this contact...
    let (_, real) = t
        .gql(
            &t.token("MMM", &["viewer"]),
            "query($id: ID!) { contact(id: $id) { email postalAddress } }",
            json!({"id": id}),
        )
        .await;
    assert!(real["data"]["contact"]["email"].is_string(), "{real}");
    let denied_rule = real["errors"][0]["message"].as_str().expect("denial").to_owned();
    // ...is what the explanation says.
    let email = explain(json!({"actor": mmm, "action": "read", "resource": {"type": "contact", "id": id}, "field": "email"})).await;
    let d = &email["data"]["explainDecision"];
    assert_eq!(d["allowed"], true, "{email}");
    assert_eq!(d["fieldClass"], "contact.identification");
    assert_eq!(d["facts"]["inSector"], true);
    assert_eq!(d["policyVersion"].as_str(), Some(t.app.authorizer().version()));
    let home = explain(json!({"actor": mmm, "action": "read", "resource": {"type": "contact", "id": id}, "field": "postalAddress"})).await;
    let d = &home["data"]["explainDecision"];
    assert_eq!(d["allowed"], false, "{home}");
    let rule = d["rules"][0].as_str().expect("rule");
    assert!(denied_rule.contains(rule), "{denied_rule} vs {rule}");
    // Described by its facts: a restricted contact is hidden from a viewer.
    let facts = explain(json!({"actor": {"org": "TEM", "roles": ["viewer"], "purpose": "CUSTOMER_RELATIONSHIP"}, "action": "read",
        "resource": {"type": "contact", "facts": {"owner": "TEM", "restricted": true}}, "field": "contact.identification"})).await;
    let d = &facts["data"]["explainDecision"];
    assert_eq!(d["allowed"], false, "{facts}");
    assert!(!d["rules"].as_array().expect("rules").is_empty());
    // A write.
    let write = explain(json!({"actor": {"org": "ELY", "roles": ["viewer", "editor"], "purpose": "CUSTOMER_RELATIONSHIP"}, "action": "update",
        "resource": {"type": "contact", "facts": {"owner": "ELY"}}})).await;
    assert_eq!(write["data"]["explainDecision"]["allowed"], true, "{write}");
    // A data subject request: any controller's DPO handles it, an editor does not.
    let request = t.sql_text("SELECT id::text FROM data_subject_requests LIMIT 1").await;
    for (roles, allowed) in [(json!(["dpo"]), true), (json!(["viewer", "editor"]), false)] {
        let body = explain(json!({"actor": {"org": "UM", "roles": roles, "purpose": "DATA_SUBJECT_REQUEST"}, "action": "handle_request",
            "resource": {"type": "request", "id": request}})).await;
        assert_eq!(body["data"]["explainDecision"]["allowed"], allowed, "{body}");
    }
    // Bad input.
    for bad in [
        json!({"actor": {"org": "TEM", "roles": ["wizard"], "purpose": "CUSTOMER_RELATIONSHIP"}, "action": "read", "resource": {"type": "contact", "id": id}, "field": "email"}),
        json!({"actor": mmm, "action": "read", "resource": {"type": "contact", "id": id}, "field": "shoeSize"}),
        json!({"actor": mmm, "action": "read", "resource": {"type": "contact", "id": id}}),
        json!({"actor": mmm, "action": "fly", "resource": {"type": "contact", "id": id}}),
        json!({"actor": mmm, "action": "read", "resource": {"type": "contact"}, "field": "email"}),
        json!({"actor": mmm, "action": "read", "resource": {"type": "planet", "id": id}, "field": "email"}),
    ] {
        let body = explain(bad.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    let missing = explain(json!({"actor": mmm, "action": "read", "resource": {"type": "contact", "id": "00000000-0000-0000-0000-000000000000"}, "field": "email"})).await;
    assert_eq!(code(&missing), "NOT_FOUND");
}

#[tokio::test]
async fn a_db_role_the_login_cannot_take_stops_the_start_with_the_reason() {
    let err = TestApp::try_with(|c| c.db.db_role = "kasvu_no_such_role".into())
        .await
        .err()
        .expect("start must fail");
    let message = format!("{err:#}");
    assert!(message.contains("DB_ROLE") && message.contains("kasvu_no_such_role"), "{message}");
}

#[tokio::test]
async fn a_database_the_writer_cannot_reach_fails_requests_closed_and_the_writer_recovers() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    t.data(&token, EMAILS, json!({"n": 2})).await;
    // The writer's connections are gone and no new one can be opened; the
    // main pool's open connections still serve the read itself.
    t.cut_audit_writer().await;
    let (_, body) = t.gql(&token, EMAILS, json!({"n": 2})).await;
    t.allow_connections().await;
    assert_failed_closed(&body);
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("audit trail"), "{body}");
    t.data(&token, EMAILS, json!({"n": 2})).await;
    let (ok, out) = verify(&t).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn audit_tail_prints_the_newest_events_and_follows_new_ones() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let t = TestApp::new().await;
    // A denial to find: a recipient asking for a home address.
    let (_, body) = t
        .gql(
            &t.token("MMM", &["viewer"]),
            "{ contacts(first: 2) { nodes { homeCountry } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let bin = env!("CARGO_BIN_EXE_kasvu-gateway");
    let out = Command::new(bin)
        .args(["audit", "tail", "-n", "5", "--denied", "--org", "MMM"])
        .env("DATABASE_URL", &t.db_url)
        .output()
        .expect("audit tail");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("MMM/") && l.contains("DENY") && l.contains("R12-default-deny")),
        "{text}"
    );
    assert!(text.contains("fields=homeCountry"), "{text}");
    // --follow: a new event appears within a few seconds.
    let mut follow = Command::new(bin)
        .args(["audit", "tail", "-n", "1", "--follow", "--org", "RUOKAVIRASTO"])
        .env("DATABASE_URL", &t.db_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("audit tail --follow");
    let stdout = follow.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.contains("RUOKAVIRASTO/"))
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, body) = t
        .gql(
            &t.token("RUOKAVIRASTO", &["viewer"]),
            "{ contacts(first: 1) { nodes { nickname } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let started = std::time::Instant::now();
    while !reader.is_finished() && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = follow.kill();
    let _ = follow.wait();
    let line = reader.join().expect("reader").expect("a followed line");
    assert!(line.contains("fields=nickname"), "{line}");
}

/// Runs `kasvu-gateway audit ARGS` against the test's database.
fn audit_cli(t: &TestApp, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kasvu-gateway"))
        .arg("audit")
        .args(args)
        .env("DATABASE_URL", &t.db_url)
        .output()
        .expect("run audit");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// Appends `n` events about the same two contacts, placed in the chain at
/// `at` (as the writer would, had the request come then).
async fn append_at(t: &TestApp, at: &str, n: usize) {
    use kasvu_gateway::audit::{chain, AuditEvent, Decided, Subject};
    let at = chrono::DateTime::parse_from_rfc3339(at).expect("time").to_utc();
    let subject = Subject {
        request_id: format!("req-{at}"),
        trace_id: None,
        sub: "archivist".into(),
        org: "TEM".into(),
        roles: vec!["viewer".into()],
        country: Some("FI".into()),
        purpose: "CUSTOMER_RELATIONSHIP".into(),
        policy_version: "test".into(),
    };
    let ids = vec![uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2)];
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| AuditEvent {
            id: uuid::Uuid::new_v4(),
            occurred_at: at,
            subject: subject.clone(),
            decided: Decided {
                action: "read".into(),
                resource_type: "contact".into(),
                resource_ids: ids.clone(),
                fields: vec!["email".into()],
                field_classes: vec!["contact.identification".into()],
                allowed: i % 2 == 0,
                rules: vec!["R1".into()],
            },
        })
        .collect();
    let mut conn = t.app.pool.get().await.expect("pooled connection");
    diesel_async::AsyncConnection::transaction::<_, diesel::result::Error, _>(
        &mut *conn,
        async move |c| chain::append(c, &events, at).await,
    )
    .await
    .expect("append");
}

async fn partition_rows(t: &TestApp, month: &str) -> i64 {
    t.sql_count(&format!("SELECT count(*) FROM audit_events_{month}")).await
}

#[tokio::test]
async fn months_are_partitions_that_archive_to_files_and_the_chain_still_verifies() {
    let t = TestApp::new().await;
    append_at(&t, "2026-08-20T10:00:00Z", 3).await;
    append_at(&t, "2026-09-03T10:00:00Z", 4).await;
    append_at(&t, "2026-10-11T10:00:00Z", 2).await;
    // A replica whose clock is behind places its events after the tail,
    // never in an earlier month.
    append_at(&t, "2026-09-30T23:59:00Z", 1).await;
    // And a request now, through the gateway's own writer.
    t.data(&t.token("TEM", &["viewer"]), EMAILS, json!({"n": 2})).await;
    assert_eq!(partition_rows(&t, "y2026m08").await, 3);
    assert_eq!(partition_rows(&t, "y2026m09").await, 4);
    assert_eq!(partition_rows(&t, "y2026m10").await, 3);
    // One id list per month however many events name it.
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_resource_sets_y2026m09").await, 1);
    let (ok, out) = audit_cli(&t, &["verify"]);
    assert!(ok && out.contains("intact: 11 events;"), "{out}");
    let (ok, out) = audit_cli(&t, &["size"]);
    let september: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("2026-09"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert!(ok && september[1..3] == ["4", "1"], "{out}");
    assert!(out.contains("total          11 events"), "{out}");

    // No one may empty a month by going to its partition, and the gateway
    // may not detach one.
    let mut owner: diesel_async::AsyncPgConnection =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(&t.db_url)
            .await
            .expect("connect");
    for sql in ["DELETE FROM audit_events_y2026m08", "TRUNCATE audit_events_y2026m08"] {
        let err = diesel::sql_query(sql).execute(&mut owner).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let mut gateway = t.app.pool.get().await.expect("pooled connection");
    for sql in [
        "ALTER TABLE audit_events DETACH PARTITION audit_events_y2026m08",
        "DELETE FROM audit_events_y2026m08",
        "SELECT audit_ensure_partition('2026-01-01')",
    ] {
        if sql.starts_with("SELECT") {
            // Creating a missing month is what the writer does; allowed.
            diesel::sql_query(sql).execute(&mut gateway).await.expect(sql);
            continue;
        }
        let err = diesel::sql_query(sql).execute(&mut gateway).await.expect_err(sql);
        let err = err.to_string();
        assert!(err.contains("must be owner") || err.contains("permission denied"), "{sql}: {err}");
    }
    drop(gateway);

    // Archive August and September (and the empty January made above).
    let dir = std::env::temp_dir().join(format!("kasvu-archive-{}", uuid::Uuid::new_v4()));
    let dir_arg = dir.to_str().expect("utf-8 path");
    let (ok, out) = audit_cli(&t, &["archive", "--before", "2026-10", "--dir", dir_arg]);
    assert!(ok, "{out}");
    assert!(out.contains("archived 2026-01: 0 events"), "{out}");
    assert!(out.contains("archived 2026-08: 3 events, seq 1..=3"), "{out}");
    assert!(out.contains("archived 2026-09: 4 events, seq 4..=7"), "{out}");
    assert!(out.contains("3 month(s) archived"), "{out}");
    // A writer whose clock is months behind does not bring an archived month back.
    t.sql_exec("SELECT audit_ensure_partition('2026-09-10')").await;
    for gone in ["audit_events_y2026m08", "audit_resource_sets_y2026m09", "audit_events_y2026m09"] {
        assert_eq!(
            t.sql_text(&format!("SELECT coalesce(to_regclass('{gone}')::text, 'gone')")).await,
            "gone"
        );
    }
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 4);
    let lines = std::fs::read_to_string(dir.join("audit-events-2026-09.jsonl")).expect("archive");
    assert_eq!(lines.lines().count(), 4);
    let first: Value =
        serde_json::from_str(lines.lines().next().unwrap_or_default()).expect("json");
    assert_eq!(first["seq"], 4);
    assert_eq!(first["resource_ids"], json!([uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2)]));

    let (ok, out) = audit_cli(&t, &["verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 4 events and 7 in archived months"), "{out}");
    let (ok, out) = audit_cli(&t, &["verify", "--archives", dir_arg]);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 4 events and 7 in archive files, checked"), "{out}");
    // Archiving again finds nothing more before October.
    let (ok, out) = audit_cli(&t, &["archive", "--before", "2026-10", "--dir", dir_arg]);
    assert!(ok && out.contains("0 month(s) archived"), "{out}");

    // An archive file changed after the fact is found.
    let path = dir.join("audit-events-2026-08.jsonl");
    let text = std::fs::read_to_string(&path).expect("archive");
    std::fs::write(&path, text.replacen("archivist", "someone", 1)).expect("write");
    let (ok, out) = audit_cli(&t, &["verify", "--archives", dir_arg]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("BROKEN at event 1") && out.contains("SHA-256 is not the ledger's"),
        "{out}"
    );
    // A month removed from the database without the ledger is found too.
    tamper(&t, "ALTER TABLE audit_events DETACH PARTITION audit_events_y2026m10").await;
    let (ok, out) = audit_cli(&t, &["verify"]);
    assert!(!ok && out.contains("event 8 is missing"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_partitioning_migration_keeps_an_existing_chain_whole() {
    let t = TestApp::new().await;
    append_at(&t, "2026-07-05T08:00:00Z", 2).await;
    let token = t.token("TEM", &["viewer"]);
    for n in 1..=5 {
        t.data(&token, EMAILS, json!({"n": n})).await;
    }
    let head = audit_cli(&t, &["verify"]).1;
    let migration =
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/2026-12-02-000006_audit_partitions");
    let read = |f: &str| std::fs::read_to_string(format!("{migration}/{f}")).expect("migration");
    // Back to the single table of before, with the ids inline, and forward again.
    t.sql_batch(&read("down.sql")).await;
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events WHERE actor_sub = 'archivist' AND cardinality(resource_ids) = 2").await, 2);
    t.sql_batch(&read("up.sql")).await;
    assert_eq!(partition_rows(&t, "y2026m07").await, 2);
    let (ok, out) = audit_cli(&t, &["verify"]);
    assert!(ok, "{out}");
    assert_eq!(out, head);
    assert!(out.contains("intact: 7 events;"), "{out}");
}

/// How the audit writer committed so far: (in a transaction, in one statement).
fn audit_commits(t: &TestApp) -> (u64, u64) {
    let metrics = t.app.metrics.render(0, 0, 0.0);
    let count = |path: &str| -> u64 {
        let series = format!("kasvu_audit_commits_total{{path=\"{path}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    (count("transaction"), count("one_statement"))
}

/// Reads a page of `n` contacts; returns how its events were committed.
async fn read_page(t: &TestApp, token: &str, n: usize) -> &'static str {
    let before = audit_commits(t);
    t.data(token, EMAILS, json!({ "n": n })).await;
    match (audit_commits(t), before) {
        ((a, b), (c, d)) if a == c + 1 && b == d => "transaction",
        ((a, b), (c, d)) if a == c && b == d + 1 => "one_statement",
        (after, before) => panic!("commits went from {before:?} to {after:?}"),
    }
}

#[tokio::test]
async fn a_lone_request_commits_in_one_statement_until_another_writer_appends() {
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    // The first batch reads the tail in a transaction; the writer then knows it.
    assert_eq!(read_page(&t, &token, 3).await, "transaction");
    assert_eq!(read_page(&t, &token, 4).await, "one_statement");

    // A change appends its event in its own transaction: the tail the writer
    // knew is gone, so its next batch finds out and appends the usual way.
    let company =
        t.sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL LIMIT 1").await;
    let create =
        "mutation($c: ID!, $i: ContactInput!) { createContact(companyId: $c, input: $i) { id } }";
    let input = json!({"lastName": "Ketjutesti", "email": "k@example.fi", "legalBasis": "CONTRACT", "source": "DATA_SUBJECT"});
    let (before, _) = audit_commits(&t);
    t.data(&t.editor(), create, json!({"c": company, "i": input})).await;
    read_page(&t, &token, 5).await;
    assert_eq!(audit_commits(&t).0, before + 1, "one fallback after the foreign append");
    assert_eq!(read_page(&t, &token, 6).await, "one_statement");

    // The connection it keeps is closed by the server: the batch is stored
    // on a fresh one, not failed.
    t.sql_exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{}' AND application_name = 'kasvu-gateway-audit'",
        t.db_name()
    ))
    .await;
    assert_eq!(read_page(&t, &token, 7).await, "transaction");
    assert_eq!(read_page(&t, &token, 8).await, "one_statement");

    // Every page's event, in request order, and the chain holds.
    let pages: Vec<usize> = events(&t, "action = 'read' AND resource_type = 'contact' AND allowed")
        .await
        .iter()
        .map(|e| e["resource_ids"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(pages, vec![3, 4, 5, 6, 7, 8]);
    let (ok, out) = verify(&t).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn events_stored_in_one_statement_read_back_as_a_transaction_stores_them() {
    use kasvu_gateway::audit::{chain, AuditEvent, Decided, Subject};
    use kasvu_gateway::db::audit::StoredLists;
    let t = TestApp::new().await;
    // What JSON could bend: quotes, backslashes, control characters, non-ASCII,
    // empty and repeated lists, absent optional values.
    let odd = "\"quoted\" back\\slash \\x41 tab\tnewline\n ääkkönen 🦀 '); DROP TABLE x; --";
    let subject = |trace: Option<&str>, country: Option<&str>| Subject {
        request_id: format!("req {odd}"),
        trace_id: trace.map(str::to_owned),
        sub: odd.into(),
        org: "TEM".into(),
        roles: vec!["viewer".into(), odd.into(), String::new()],
        country: country.map(str::to_owned),
        purpose: "CUSTOMER_RELATIONSHIP".into(),
        policy_version: odd.into(),
    };
    let decided = |ids: Vec<uuid::Uuid>, allowed: bool| Decided {
        action: "read".into(),
        resource_type: "contact".into(),
        resource_ids: ids,
        fields: vec![odd.into(), "email".into()],
        field_classes: vec![],
        allowed,
        rules: vec!["R1".into(), odd.into()],
    };
    let ids = vec![uuid::Uuid::from_u128(7), uuid::Uuid::from_u128(3), uuid::Uuid::from_u128(7)];
    let batch = || -> Vec<AuditEvent> {
        let at = kasvu_gateway::audit::now_micros();
        [
            (
                subject(Some("0af7651916cd43dd8448eb211c80319c"), Some("FI")),
                decided(ids.clone(), true),
            ),
            (subject(None, None), decided(vec![], false)),
            (subject(None, Some("SE")), decided(ids.clone(), false)),
        ]
        .into_iter()
        .map(|(subject, decided)| AuditEvent {
            id: uuid::Uuid::new_v4(),
            occurred_at: at,
            subject,
            decided,
        })
        .collect()
    };
    let mut conn = t.app.pool.get().await.expect("pooled connection");
    let (first, second) = (batch(), batch());
    let first_events = first.clone();
    let appended = diesel_async::AsyncConnection::transaction::<_, diesel::result::Error, _>(
        &mut *conn,
        async move |c| {
            chain::append_knowing(
                c,
                &first_events,
                kasvu_gateway::audit::now_micros(),
                &StoredLists::default(),
            )
            .await
        },
    )
    .await
    .expect("append in a transaction");
    let tail = appended.tail.expect("a tail");
    let mut known = StoredLists::default();
    known.remember(appended.lists);
    let after = chain::append_after(
        &mut conn,
        &tail,
        &second,
        kasvu_gateway::audit::now_micros(),
        2000,
        &known,
    )
    .await
    .expect("append in one statement")
    .expect("the tail was this writer's");
    assert_eq!(after.tail.as_ref().map(|t| t.seq), Some(6));
    // Its lists were stored by the first batch, so none were sent again.
    assert!(after.lists.is_empty(), "{:?}", after.lists);

    // Everything but identity and place in the chain is alike, field by field.
    let stored = events(&t, "true").await;
    assert_eq!(stored.len(), 6);
    let strip = |mut e: Value| {
        for k in ["seq", "id"] {
            e.as_object_mut().expect("object").remove(k);
        }
        e
    };
    for i in 0..3 {
        assert_eq!(strip(stored[i].clone()), strip(stored[i + 3].clone()), "event {i}");
    }
    assert_eq!(stored[0]["actor_sub"], json!(odd));
    assert_eq!(stored[4]["trace_id"], Value::Null);
    assert_eq!(stored[4]["resource_ids"], Value::Null, "an empty list aggregates to null");
    let (ok, out) = verify(&t).await;
    assert!(ok, "{out}");

    // A tail that is no longer the chain's stores nothing.
    let stale = chain::append_after(
        &mut conn,
        &tail,
        &batch(),
        kasvu_gateway::audit::now_micros(),
        2000,
        &known,
    )
    .await
    .expect("the call itself succeeds");
    assert!(stale.is_none());
    assert_eq!(t.sql_count("SELECT count(*) FROM audit_events").await, 6);
}
