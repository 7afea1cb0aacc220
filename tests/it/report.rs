//! The subject access report: everything held about a person across the
//! controllers, and who read it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::support::{code, TestApp};

const DSR: &str = "DATA_SUBJECT_REQUEST";
const SECTOR: &str = "industry_code ~ '^(01|02|03|10|11)'";
const REPORT: &str = "query($id: ID!) { subjectAccessReport(contactId: $id) { contactId matchedBy \
  contacts { id registeredBy personalData { column class value } } services { id contactId provider } \
  changes { contactId field newValue changedByOrg } requests { id kind status deadline } \
  recipients { organization kind reads fieldClasses firstRead lastRead } } }";

/// A personal value of a report's contact, by column.
fn personal<'a>(contact: &'a Value, column: &str) -> Option<&'a str> {
    contact["personalData"].as_array()?.iter().find(|v| v["column"] == column)?["value"].as_str()
}

/// An ELY contact of an agriculture company (so a recipient can read it),
/// registered again by TEM with the same email address in other letters.
async fn person(t: &TestApp) -> (String, String, String) {
    let id = t
        .sql_text(&format!(
            "SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id \
             WHERE co.{SECTOR} AND c.registered_by = 'ELY' AND c.email IS NOT NULL AND NOT c.restricted \
             AND NOT c.objection_pending AND c.erased_at IS NULL ORDER BY c.id LIMIT 1"
        ))
        .await;
    let email = t.sql_text(&format!("SELECT email FROM contacts WHERE id = '{id}'")).await;
    let company = t
        .sql_text("SELECT id::text FROM companies WHERE erased_at IS NULL ORDER BY id LIMIT 1")
        .await;
    let data = t
        .data(
            &t.token("TEM", &["viewer", "editor"]),
            "mutation($c: ID!, $i: ContactInput!) { createContact(companyId: $c, input: $i) { id } }",
            json!({"c": company, "i": {"lastName": "Same Person", "email": email.to_uppercase(), "legalBasis": "CONTRACT", "source": "DATA_SUBJECT"}}),
        )
        .await;
    let twin = data["createContact"]["id"].as_str().expect("id").to_owned();
    (id, twin, email)
}

#[tokio::test]
async fn the_access_report_holds_every_controllers_records_and_who_read_them() {
    let t = TestApp::new().await;
    let (id, twin, email) = person(&t).await;
    // Reads that make recipients: a controller and a ministry.
    t.data(
        &t.token("TEM", &["viewer"]),
        "query($id: ID!) { contact(id: $id) { email } }",
        json!({"id": id}),
    )
    .await;
    t.data(
        &t.token("MMM", &["viewer"]),
        "query($id: ID!) { contact(id: $id) { lastName } }",
        json!({"id": id}),
    )
    .await;
    let dpo = t.token("KEHA", &["dpo"]);
    let (_, filed) = t
        .gql_for(
            &dpo,
            DSR,
            "mutation($c: ID!) { fileDataSubjectRequest(input: {kind: ACCESS, contactId: $c}) { id } }",
            json!({"c": id}),
        )
        .await;
    let request =
        filed["data"]["fileDataSubjectRequest"]["id"].as_str().expect("request").to_owned();

    let (_, body) = t.gql_for(&dpo, DSR, REPORT, json!({"id": id})).await;
    assert!(body["errors"].is_null(), "{body}");
    let r = &body["data"]["subjectAccessReport"];
    let mut contacts: Vec<&str> = r["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    contacts.sort();
    let same = t
        .sql_text(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY id::text) FROM contacts WHERE lower(email) = lower('{email}')"
        ))
        .await;
    assert!(same.contains(&id) && same.contains(&twin));
    assert_eq!(contacts.join(","), same, "matched by email across controllers");
    let services = t
        .sql_count(&format!(
            "SELECT count(*) FROM services s JOIN contacts c ON c.id = s.contact_id WHERE lower(c.email) = lower('{email}')"
        ))
        .await;
    assert_eq!(r["services"].as_array().map(Vec::len), Some(services as usize));
    assert!(r["changes"].as_array().expect("changes").iter().any(|c| c["contactId"]
        == twin.as_str()
        && c["field"] == "last_name"
        && c["newValue"] == "Same Person"
        && c["changedByOrg"] == "TEM"));
    assert!(r["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .any(|q| q["id"] == request.as_str() && q["kind"] == "ACCESS"));
    let recipients = r["recipients"].as_array().expect("recipients");
    let of = |org: &str| {
        recipients.iter().find(|x| x["organization"] == org).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(of("TEM")["kind"], "CONTROLLER", "{r}");
    assert!(of("TEM")["fieldClasses"]
        .as_array()
        .expect("classes")
        .contains(&json!("contact.identification")));
    assert_eq!(of("MMM")["kind"], "RECIPIENT", "{r}");
    assert!(of("MMM")["reads"].as_i64() >= Some(1));
    // The report is itself on the audit record, for every record it disclosed.
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM audit_trail WHERE 'subjectAccessReport' = ANY(fields) AND field_classes = '{{report}}' \
             AND resource_ids @> ARRAY['{id}', '{twin}']::uuid[] AND actor_org = 'KEHA'"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn only_a_dpo_acting_on_a_request_gets_the_report() {
    let t = TestApp::new().await;
    let (id, _, _) = person(&t).await;
    for (token, purpose) in [
        (t.token("KEHA", &["dpo"]), "CUSTOMER_RELATIONSHIP"),
        (t.token("KEHA", &["viewer", "editor", "confidential", "auditor"]), DSR),
    ] {
        let (_, body) = t.gql_for(&token, purpose, REPORT, json!({"id": id})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        assert!(body["errors"][0]["extensions"]["auditEventId"].is_string());
        assert!(!body.to_string().contains("Same Person"));
    }
    let (_, body) = t
        .gql_for(
            &t.token("KEHA", &["dpo"]),
            DSR,
            REPORT,
            json!({"id": "00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
}

async fn download(
    t: &TestApp,
    token: &str,
    purpose: Option<&str>,
    id: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::get(format!("/reports/subject-access/{id}"))
        .header("authorization", format!("Bearer {token}"));
    if let Some(p) = purpose {
        req = req.header("x-processing-purpose", p);
    }
    let (status, headers, body) = t.send(req.body(Body::empty()).expect("request")).await;
    (status, headers, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

#[tokio::test]
async fn the_report_downloads_as_json_with_the_same_authorization() {
    let t = TestApp::new().await;
    let (id, twin, email) = person(&t).await;
    let dpo = t.token("ELY", &["dpo"]);
    let (status, headers, json) = download(&t, &dpo, Some(DSR), &id).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap_or("")
        .contains(&format!("subject-access-{id}.json")));
    assert_eq!(json["contactId"], id.as_str());
    let emails: Vec<&str> = json["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|c| personal(c, "email"))
        .collect();
    assert!(emails.iter().any(|e| e.eq_ignore_ascii_case(&email)), "{json}");
    assert!(json["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .any(|c| c["id"] == twin.as_str()));
    for key in ["services", "changes", "requests", "recipients", "generatedAt", "matchedBy"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    let (status, _, json) = download(&t, &dpo, None, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert_eq!(code(&json), "FORBIDDEN");
    assert!(json["errors"][0]["extensions"]["auditEventId"].is_string());
    let (status, _, _) =
        download(&t, &dpo, Some(DSR), "00000000-0000-0000-0000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, json) = download(&t, &dpo, Some(DSR), "not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, _, _) = download(&t, "not-a-token", Some(DSR), &id).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
