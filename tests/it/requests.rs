//! Data subject requests: filing, deadlines, extension, status, lists.

use serde_json::{json, Value};

use crate::support::{code, TestApp};

const PURPOSE: &str = "DATA_SUBJECT_REQUEST";
const FIELDS: &str = "id kind contactId subjectDescription receivedBy dueAt extendedDueAt extensionReason deadline overdue status resolution handledBy handledByOrg";

async fn file(t: &TestApp, token: &str, input: Value) -> Value {
    let (_, body) = t
        .gql_for(
            token,
            PURPOSE,
            &format!("mutation($i: FileRequestInput!) {{ fileDataSubjectRequest(input: $i) {{ {FIELDS} }} }}"),
            json!({"i": input}),
        )
        .await;
    body
}

fn filed(body: &Value) -> &Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"]["fileDataSubjectRequest"]
}

async fn a_contact(t: &TestApp, org: &str) -> String {
    t.sql_text(&format!(
        "SELECT id::text FROM contacts WHERE registered_by = '{org}' AND erased_at IS NULL \
         AND NOT restricted AND NOT objection_pending ORDER BY id LIMIT 1"
    ))
    .await
}

#[tokio::test]
async fn a_request_is_due_one_calendar_month_after_receipt() {
    let t = TestApp::new().await;
    let dpo = t.token("TEM", &["dpo"]);
    let contact = a_contact(&t, "TEM").await;
    for (received, due) in [
        ("2025-01-31", "2025-02-28"),
        ("2024-01-31", "2024-02-29"),
        ("2024-01-30", "2024-02-29"),
        ("2026-03-31", "2026-04-30"),
        ("2025-12-31", "2026-01-31"),
        ("2026-02-28", "2026-03-28"),
    ] {
        let body =
            file(&t, &dpo, json!({"kind": "ACCESS", "contactId": contact, "receivedOn": received}))
                .await;
        let r = filed(&body);
        assert_eq!(r["dueAt"], due, "received {received}");
        assert_eq!(r["deadline"], due);
        assert_eq!(r["status"], "RECEIVED");
        assert_eq!(r["receivedBy"], "TEM");
        assert_eq!(r["contactId"], contact.as_str());
    }
}

#[tokio::test]
async fn filing_refuses_bad_input_and_changes_nothing() {
    let t = TestApp::new().await;
    let dpo = t.token("TEM", &["dpo"]);
    let before = t.sql_count("SELECT count(*) FROM data_subject_requests").await;
    for input in [
        json!({"kind": "ACCESS"}),
        json!({"kind": "ACCESS", "contactId": "00000000-0000-0000-0000-000000000000"}),
        json!({"kind": "ACCESS", "contactId": "not-an-id"}),
        json!({"kind": "ACCESS", "subjectDescription": "Matti M.", "receivedOn": "2099-01-01"}),
        json!({"kind": "ACCESS", "subjectDescription": "   "}),
    ] {
        let body = file(&t, &dpo, input.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}: {body}");
    }
    assert_eq!(t.sql_count("SELECT count(*) FROM data_subject_requests").await, before);
    // Identifying facts alone are enough.
    let body = file(
        &t,
        &dpo,
        json!({"kind": "ACCESS", "subjectDescription": "Matti Meikäläinen, born 1970, Oulu"}),
    )
    .await;
    assert_eq!(filed(&body)["contactId"], Value::Null);
}

#[tokio::test]
async fn every_controllers_dpo_sees_and_handles_every_request_and_no_one_else() {
    let t = TestApp::new().await;
    let tem = t.token("TEM", &["dpo"]);
    let body =
        file(&t, &tem, json!({"kind": "RECTIFICATION", "contactId": a_contact(&t, "ELY").await}))
            .await;
    let id = filed(&body)["id"].as_str().expect("id").to_owned();
    let query = "query($id: ID!) { dataSubjectRequest(id: $id) { id status receivedBy } }";
    // Another controller's DPO reads and moves it on.
    let ely = t.token("ELY", &["dpo"]);
    let (_, body) = t.gql_for(&ely, PURPOSE, query, json!({"id": id})).await;
    assert_eq!(body["data"]["dataSubjectRequest"]["receivedBy"], "TEM", "{body}");
    let (_, body) = t
        .gql_for(
            &ely,
            PURPOSE,
            "mutation($id: ID!) { resolveDataSubjectRequest(id: $id, input: {status: IN_PROGRESS}) { status handledByOrg } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["handledByOrg"], "ELY", "{body}");
    // Not a DPO, or a recipient's: FORBIDDEN, for the list and for a request.
    for token in [
        t.token("TEM", &["viewer", "editor", "confidential"]),
        t.token("MMM", &["dpo"]),
        t.token("TEM", &["auditor"]),
    ] {
        let (_, body) =
            t.gql_for(&token, PURPOSE, "{ dataSubjectRequests { totalCount } }", json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        assert!(body["errors"][0]["extensions"]["auditEventId"].is_string());
        let (_, body) = t.gql_for(&token, PURPOSE, query, json!({"id": id})).await;
        assert!(body["data"]["dataSubjectRequest"]["status"].is_null(), "{body}");
        let body = file(&t, &token, json!({"kind": "ACCESS", "subjectDescription": "x"})).await;
        assert!(["FORBIDDEN", "NOT_FOUND"].contains(&code(&body)), "{body}");
    }
}

async fn resolve(t: &TestApp, token: &str, id: &str, input: Value) -> Value {
    let (_, body) = t
        .gql_for(
            token,
            PURPOSE,
            "mutation($id: ID!, $i: ResolveRequestInput!) { resolveDataSubjectRequest(id: $id, input: $i) { status resolution } }",
            json!({"id": id, "i": input}),
        )
        .await;
    body
}

#[tokio::test]
async fn status_goes_received_in_progress_then_completed_or_rejected_with_a_reason() {
    let t = TestApp::new().await;
    let dpo = t.token("KEHA", &["dpo"]);
    let new = || async {
        let body =
            file(&t, &dpo, json!({"kind": "ACCESS", "subjectDescription": "a person"})).await;
        filed(&body)["id"].as_str().expect("id").to_owned()
    };
    let a = new().await;
    let body = resolve(&t, &dpo, &a, json!({"status": "COMPLETED"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "RECEIVED → COMPLETED: {body}");
    let body = resolve(&t, &dpo, &a, json!({"status": "RECEIVED"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "RECEIVED → RECEIVED: {body}");
    let body = resolve(&t, &dpo, &a, json!({"status": "IN_PROGRESS"})).await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["status"], "IN_PROGRESS");
    let body = resolve(&t, &dpo, &a, json!({"status": "REJECTED"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "a rejection needs a reason: {body}");
    let body =
        resolve(&t, &dpo, &a, json!({"status": "REJECTED", "resolution": "manifestly unfounded"}))
            .await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["resolution"], "manifestly unfounded");
    let body = resolve(&t, &dpo, &a, json!({"status": "IN_PROGRESS"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "REJECTED is final: {body}");
    let b = new().await;
    resolve(&t, &dpo, &b, json!({"status": "IN_PROGRESS"})).await;
    let body =
        resolve(&t, &dpo, &b, json!({"status": "COMPLETED", "resolution": "assessed"})).await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["status"], "COMPLETED", "{body}");
    // Every change is in the change log, with who.
    assert!(
        t.sql_count(&format!(
            "SELECT count(*) FROM change_log WHERE entity = 'data_subject_request' AND entity_id = '{b}' AND field = 'status'"
        ))
        .await
            >= 2
    );
}

async fn extend(t: &TestApp, token: &str, id: &str, to: &str, reason: &str) -> Value {
    let (_, body) = t
        .gql_for(
            token,
            PURPOSE,
            "mutation($id: ID!, $to: NaiveDate!, $r: String!) { extendDataSubjectRequest(id: $id, extendedDueAt: $to, reason: $r) { dueAt extendedDueAt extensionReason deadline } }",
            json!({"id": id, "to": to, "r": reason}),
        )
        .await;
    body
}

#[tokio::test]
async fn a_deadline_is_extended_once_by_at_most_two_months_with_a_reason() {
    let t = TestApp::new().await;
    let dpo = t.token("UM", &["dpo"]);
    // Received 31 December 2025: due 31 January, extendable to 31 March 2026.
    let body = file(
        &t,
        &dpo,
        json!({"kind": "ACCESS", "subjectDescription": "x", "receivedOn": "2025-12-31"}),
    )
    .await;
    let id = filed(&body)["id"].as_str().expect("id").to_owned();
    for (to, reason) in [
        ("2026-04-01", "complex"),
        ("2026-01-31", "complex"),
        ("2026-01-15", "complex"),
        ("2026-03-31", "  "),
    ] {
        let body = extend(&t, &dpo, &id, to, reason).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{to} {reason:?}: {body}");
    }
    let body = extend(&t, &dpo, &id, "2026-03-31", "many registers to search").await;
    let r = &body["data"]["extendDataSubjectRequest"];
    assert_eq!(r["dueAt"], "2026-01-31", "{body}");
    assert_eq!(r["extendedDueAt"], "2026-03-31");
    assert_eq!(r["deadline"], "2026-03-31");
    assert_eq!(r["extensionReason"], "many registers to search");
    let body = extend(&t, &dpo, &id, "2026-03-30", "again").await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "only once: {body}");
    // A leap year: due 29 February 2024 extends to 29 April at most.
    let body = file(
        &t,
        &dpo,
        json!({"kind": "ACCESS", "subjectDescription": "x", "receivedOn": "2024-01-29"}),
    )
    .await;
    let id = filed(&body)["id"].as_str().expect("id").to_owned();
    assert_eq!(
        extend(&t, &dpo, &id, "2024-04-30", "r").await["errors"][0]["extensions"]["code"],
        "BAD_USER_INPUT"
    );
    let body = extend(&t, &dpo, &id, "2024-04-29", "r").await;
    assert_eq!(body["data"]["extendDataSubjectRequest"]["extendedDueAt"], "2024-04-29", "{body}");
}

#[tokio::test]
async fn overdue_lists_open_requests_past_their_deadline() {
    let t = TestApp::new().await;
    let dpo = t.token("TEM", &["dpo"]);
    let late = filed(
        &file(
            &t,
            &dpo,
            json!({"kind": "ACCESS", "subjectDescription": "late", "receivedOn": "2025-01-10"}),
        )
        .await,
    )["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let fresh =
        filed(&file(&t, &dpo, json!({"kind": "ACCESS", "subjectDescription": "fresh"})).await)
            ["id"]
            .as_str()
            .expect("id")
            .to_owned();
    let ids = |overdue: bool| {
        let dpo = dpo.clone();
        let t = &t;
        async move {
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (_, body) = t
                    .gql_for(
                        &dpo,
                        PURPOSE,
                        "query($o: Boolean, $a: String) { dataSubjectRequests(filter: {overdue: $o}, first: 100, after: $a) { totalCount pageInfo { hasNextPage endCursor } nodes { id overdue } } }",
                        json!({"o": overdue, "a": after}),
                    )
                    .await;
                let page = &body["data"]["dataSubjectRequests"];
                for n in page["nodes"].as_array().expect("nodes") {
                    assert_eq!(n["overdue"], overdue, "{n}");
                    out.push(n["id"].as_str().expect("id").to_owned());
                }
                if page["pageInfo"]["hasNextPage"] != true {
                    break;
                }
                after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
            }
            out
        }
    };
    let overdue = ids(true).await;
    assert!(overdue.contains(&late) && !overdue.contains(&fresh));
    let not_overdue = ids(false).await;
    assert!(not_overdue.contains(&fresh) && !not_overdue.contains(&late));
    resolve(&t, &dpo, &late, json!({"status": "IN_PROGRESS"})).await;
    resolve(&t, &dpo, &late, json!({"status": "COMPLETED", "resolution": "sent"})).await;
    assert!(!ids(true).await.contains(&late), "a completed request is not overdue");
}

#[tokio::test]
async fn reading_requests_is_audited() {
    let t = TestApp::new().await;
    let dpo = t.token("TEM", &["dpo"]);
    let (_, body) = t
        .gql_for(
            &dpo,
            PURPOSE,
            "{ dataSubjectRequests(first: 5) { nodes { id kind status } } }",
            json!({}),
        )
        .await;
    let nodes = body["data"]["dataSubjectRequests"]["nodes"].as_array().expect("nodes").clone();
    assert_eq!(nodes.len(), 5, "{body}");
    assert_eq!(
        t.sql_count("SELECT count(*) FROM audit_trail WHERE resource_type = 'request' AND allowed AND cardinality(resource_ids) = 5 AND field_classes = '{request}'")
            .await,
        1
    );
}
