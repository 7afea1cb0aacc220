//! What an answer may reveal (issue 9): a denied field is present as null,
//! hidden and absent answer alike on every path, and the policy's gaps found
//! in review stay closed.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{code, without_request_id, TestApp};

const DSR: &str = "DATA_SUBJECT_REQUEST";
const SECTOR: &str = "industry_code ~ '^(01|02|03|10|11)'";

async fn sector_contact(t: &TestApp, extra: &str) -> String {
    t.sql_text(&format!(
        "SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id \
         WHERE co.{SECTOR} AND {extra} ORDER BY c.id LIMIT 1"
    ))
    .await
}

#[tokio::test]
async fn a_denied_field_is_present_as_null_beside_its_error() {
    let t = TestApp::new().await;
    let mmm = t.token("MMM", &["viewer"]);
    let id =
        sector_contact(&t, "NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL")
            .await;
    let (_, body) = t
        .gql(
            &mmm,
            "query($id: ID!) { contact(id: $id) { id homeMunicipality } }",
            json!({ "id": id }),
        )
        .await;
    let contact = body["data"]["contact"].as_object().expect("contact object");
    assert_eq!(contact.get("homeMunicipality"), Some(&Value::Null), "{body}");
    assert_eq!(contact.get("id"), Some(&json!(id)));
    assert_eq!(body["errors"][0]["path"], json!(["contact", "homeMunicipality"]));
    assert_eq!(code(&body), "FORBIDDEN");

    // Every selected field denied: each node is an object of nulls, not null.
    let (_, body) =
        t.gql(&mmm, "{ contacts(first: 3) { nodes { homeCountry nickname } } }", json!({})).await;
    let nodes = body["data"]["contacts"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{body}");
    for n in nodes {
        assert_eq!(n, &json!({ "homeCountry": null, "nickname": null }), "{body}");
    }
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(6), "{body}");
}

#[tokio::test]
async fn hidden_and_absent_answer_alike_on_every_path() {
    let t = TestApp::new().await;
    let viewer = t.token("TEM", &["viewer"]);
    let restricted = t
        .sql_text("SELECT id::text FROM contacts WHERE restricted AND erased_at IS NULL LIMIT 1")
        .await;
    let objecting = t
        .sql_text(
            "SELECT id::text FROM contacts WHERE objection_pending AND NOT restricted LIMIT 1",
        )
        .await;
    let erased =
        t.sql_text("SELECT id::text FROM contacts WHERE erased_at IS NOT NULL LIMIT 1").await;
    let ordinary = t
        .sql_text(
            "SELECT id::text FROM contacts WHERE NOT restricted AND NOT objection_pending \
             AND erased_at IS NULL LIMIT 1",
        )
        .await;
    assert!(![&restricted, &objecting, &erased, &ordinary].iter().any(|s| s.is_empty()));
    let unknown = uuid::Uuid::new_v4().to_string();
    let report = "query($id: ID!) { subjectAccessReport(contactId: $id) { contactId } }";
    let mut answers = Vec::new();
    for id in [&restricted, &objecting, &erased, &unknown] {
        let (_, body) = t.gql(&viewer, report, json!({ "id": id })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
        answers.push(without_request_id(body));
        let req = Request::get(format!("/reports/subject-access/{id}"))
            .header("authorization", format!("Bearer {viewer}"))
            .body(Body::empty())
            .expect("request");
        let (status, _, _) = t.send(req).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // A contact the viewer sees anyway: the report's own rule refuses it.
    let (_, body) = t.gql(&viewer, report, json!({ "id": ordinary })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");

    // A data subject request is invisible to a non-DPO, existing or not.
    let request = t.sql_text("SELECT id::text FROM data_subject_requests LIMIT 1").await;
    let q = "query($id: ID!) { dataSubjectRequest(id: $id) { id kind } }";
    let (_, existing) = t.gql(&viewer, q, json!({ "id": request })).await;
    let (_, random) = t.gql(&viewer, q, json!({ "id": unknown })).await;
    assert_eq!(code(&existing), "NOT_FOUND", "{existing}");
    assert!(!existing.to_string().contains(&request), "{existing}");
    assert_eq!(without_request_id(existing), without_request_id(random));

    // A service whose person is hidden, and one that has none: both null, no error.
    let q = "query($id: ID!) { service(id: $id) { kind contact { id } } }";
    for sql in [
        format!("SELECT id::text FROM services WHERE contact_id = '{restricted}' LIMIT 1"),
        "SELECT id::text FROM services WHERE contact_id IS NULL LIMIT 1".to_owned(),
    ] {
        let service = t.sql_text(&sql).await;
        if service.is_empty() {
            continue;
        }
        let (_, body) = t.gql(&viewer, q, json!({ "id": service })).await;
        assert_eq!(body["data"]["service"].get("contact"), Some(&Value::Null), "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
}

#[tokio::test]
async fn r8_binds_auditors_too() {
    let t = TestApp::new().await;
    let q = "{ auditEvents(first: 1) { nodes { id } } policyVersion }";
    let (status, body) =
        t.gql_for(&t.token_at("BFOY", &["auditor"], "US"), "SECURITY_AUDIT", q, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["errors"]
        .as_array()
        .is_some_and(|e| e.iter().all(|e| e["extensions"]["code"] == "FORBIDDEN")));
    assert!(!body.to_string().contains("sha256:"), "{body}");
    let (_, body) =
        t.gql_for(&t.token_at("BFOY", &["auditor"], "SE"), "SECURITY_AUDIT", q, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn a_recipient_without_a_reading_role_reads_nothing() {
    let t = TestApp::new().await;
    let id = sector_contact(&t, "NOT c.restricted AND NOT c.objection_pending").await;
    for roles in [&[][..], &["auditor"][..]] {
        for org in ["MMM", "RUOKAVIRASTO"] {
            let token = t.token(org, roles);
            let (_, body) =
                t.gql(&token, "{ companies(first: 5) { nodes { id name } } }", json!({})).await;
            assert_eq!(body["data"], Value::Null, "{org} {roles:?}: {body}");
            assert_eq!(code(&body), "FORBIDDEN", "{body}");
            let (_, body) = t
                .gql(
                    &token,
                    "query($id: ID!) { contact(id: $id) { firstName email } }",
                    json!({ "id": id }),
                )
                .await;
            assert_eq!(body["data"], json!({ "contact": null }), "{body}");
            assert_eq!(code(&body), "FORBIDDEN", "{body}");
        }
    }
}

#[tokio::test]
async fn a_recipients_dpo_handles_no_requests_and_sees_nothing_restricted() {
    let t = TestApp::new().await;
    let dpo = t.token("MMM", &["dpo"]);
    for extra in ["c.restricted", "c.erased_at IS NOT NULL"] {
        let id = sector_contact(&t, extra).await;
        assert!(!id.is_empty(), "the seed has an in-sector {extra} contact");
        let (_, body) = t
            .gql_for(
                &dpo,
                DSR,
                "query($id: ID!) { contact(id: $id) { id firstName } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{extra}: {body}");
    }
    let (_, body) =
        t.gql_for(&dpo, DSR, "{ dataSubjectRequests(first: 1) { nodes { id } } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_report_shows_only_the_readers_own_service_notes() {
    let t = TestApp::new().await;
    // A person with noted services of at least two providers.
    let row = t
        .sql_text(
            "SELECT contact_id::text || ' ' || min(provider) FROM services \
             JOIN contacts c ON c.id = contact_id \
             WHERE notes IS NOT NULL AND NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL \
             GROUP BY contact_id HAVING count(DISTINCT provider) > 1 LIMIT 1",
        )
        .await;
    let (contact, provider) = row.split_once(' ').expect("a contact with two providers' notes");
    let token = t.token(provider, &["dpo"]);
    let (_, body) = t
        .gql_for(
            &token,
            DSR,
            "query($id: ID!) { subjectAccessReport(contactId: $id) { services { provider notes } } }",
            json!({ "id": contact }),
        )
        .await;
    let services = body["data"]["subjectAccessReport"]["services"].as_array().expect("services");
    let notes = |own: bool| {
        services
            .iter()
            .filter(|s| (s["provider"] == provider) == own)
            .filter(|s| s["notes"].is_string())
            .count()
    };
    assert!(notes(true) > 0, "{body}");
    assert_eq!(notes(false), 0, "another provider's notes: {body}");
}

#[tokio::test]
async fn only_auditors_read_the_policy_version() {
    let t = TestApp::new().await;
    for token in
        [t.token("TEM", &["viewer"]), t.token("MMM", &["viewer"]), t.token("TEM", &["dpo"])]
    {
        let (_, body) = t.gql(&token, "{ policyVersion viewer { org } }", json!({})).await;
        assert_eq!(body["data"].get("policyVersion"), Some(&Value::Null), "{body}");
        assert!(body["data"]["viewer"]["org"].is_string(), "{body}");
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
    let d = t.data(&t.token("TEM", &["auditor"]), "{ policyVersion }", json!({})).await;
    assert!(d["policyVersion"].as_str().unwrap_or("").starts_with("sha256:"));
}

#[tokio::test]
async fn a_legal_holds_reason_is_history_only_dpos_read() {
    let t = TestApp::new().await;
    let id = t
        .sql_text(
            "SELECT id::text FROM contacts WHERE registered_by = 'ELY' AND NOT legal_hold \
             AND NOT restricted AND NOT objection_pending AND erased_at IS NULL LIMIT 1",
        )
        .await;
    let (_, body) = t
        .gql(
            &t.token("ELY", &["dpo"]),
            "mutation($id: ID!) { setContactLegalHold(id: $id, reason: \"court case 123/2026\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let q = "query($id: ID!) { contact(id: $id) { changes { field newValue } } }";
    let fields = |body: &Value| -> Vec<String> {
        body["data"]["contact"]["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["field"].as_str().map(str::to_owned))
            .collect()
    };
    let d = t.data(&t.token("TEM", &["viewer"]), q, json!({ "id": id })).await;
    let seen = fields(&json!({ "data": d }));
    assert!(seen.contains(&"legal_hold".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"legal_hold_reason".to_owned()), "{seen:?}");
    assert!(!d.to_string().contains("court case"), "{d}");
    let d = t.data(&t.token("TEM", &["dpo"]), q, json!({ "id": id })).await;
    assert!(fields(&json!({ "data": d })).contains(&"legal_hold_reason".to_owned()), "{d}");
}

#[tokio::test]
async fn a_pending_objection_is_one_truth_the_database_keeps() {
    let t = TestApp::new().await;
    let drift =
        "SELECT count(*) FROM contacts WHERE objection_pending <> contact_objection_pending(id)";
    assert_eq!(t.sql_count(drift).await, 0, "the seed is consistent");
    assert!(
        t.sql_count("SELECT count(*) FROM contacts WHERE objection_pending").await > 0,
        "the seed has objecting contacts"
    );
    let id = t
        .sql_text(
            "SELECT id::text FROM contacts WHERE NOT restricted AND NOT objection_pending \
             AND erased_at IS NULL LIMIT 1",
        )
        .await;
    let viewer = t.token("TEM", &["viewer"]);
    let q = "query($id: ID!) { contact(id: $id) { id } }";
    assert_eq!(t.data(&viewer, q, json!({ "id": id })).await["contact"]["id"], json!(id));
    // An objection filed outside the gateway (psql): invisible at once.
    t.sql_exec(&format!(
        "INSERT INTO data_subject_requests (kind, contact_id, received_by, due_at, status) \
         VALUES ('OBJECTION', '{id}', 'TEM', current_date + 30, 'IN_PROGRESS')"
    ))
    .await;
    let (_, body) = t.gql(&viewer, q, json!({ "id": id })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    // A writer cannot clear the flag while the objection is open.
    t.sql_exec(&format!("UPDATE contacts SET objection_pending = false WHERE id = '{id}'")).await;
    let (_, body) = t.gql(&viewer, q, json!({ "id": id })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    // Resolved, the flag goes with it.
    t.sql_exec(&format!(
        "UPDATE data_subject_requests SET status = 'REJECTED', resolution = 'no grounds', \
         resolved_at = now() WHERE contact_id = '{id}'"
    ))
    .await;
    assert_eq!(t.data(&viewer, q, json!({ "id": id })).await["contact"]["id"], json!(id));
    assert_eq!(t.sql_count(drift).await, 0);
}

#[tokio::test]
async fn a_denial_another_purpose_would_lift_says_so() {
    let t = TestApp::new().await;
    let id = t
        .sql_text(
            "SELECT id::text FROM contacts WHERE NOT restricted AND NOT objection_pending \
             AND erased_at IS NULL LIMIT 1",
        )
        .await;
    let report = "query($id: ID!) { subjectAccessReport(contactId: $id) { contactId } }";
    // A DPO who forgot the purpose header.
    let (_, body) = t.gql(&t.token("TEM", &["dpo"]), report, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let hint = body["errors"][0]["extensions"]["hint"].as_str().unwrap_or("");
    assert!(hint.contains("X-Processing-Purpose: DATA_SUBJECT_REQUEST"), "{body}");
    // A viewer: no purpose would help, so no hint.
    let (_, body) = t.gql(&t.token("TEM", &["viewer"]), report, json!({ "id": id })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["errors"][0]["extensions"].get("hint").is_none(), "{body}");
    // Hidden rows get no hint either: a restricted contact stays NOT_FOUND.
    let restricted = t
        .sql_text("SELECT id::text FROM contacts WHERE restricted AND erased_at IS NULL LIMIT 1")
        .await;
    let (_, body) = t
        .gql(
            &t.token("TEM", &["dpo"]),
            "query($id: ID!) { contact(id: $id) { firstName } }",
            json!({ "id": restricted }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert!(body["errors"][0]["extensions"].get("hint").is_none(), "{body}");
}
