//! The data subject's rights through the API: restriction, objection,
//! marketing objection, legal hold and erasure, and what requests do.

use serde_json::{json, Value};

use crate::support::{code, TestApp};

const DSR: &str = "DATA_SUBJECT_REQUEST";

async fn contact_of(t: &TestApp, org: &str) -> String {
    t.sql_text(&format!(
        "SELECT c.id::text FROM contacts c WHERE registered_by = '{org}' AND erased_at IS NULL \
         AND NOT restricted AND NOT objection_pending AND NOT legal_hold AND NOT marketing_objection \
         AND NOT EXISTS (SELECT 1 FROM data_subject_requests r WHERE r.contact_id = c.id) \
         ORDER BY id LIMIT 1"
    ))
    .await
}

async fn flag(t: &TestApp, id: &str, column: &str) -> bool {
    t.sql_count(&format!("SELECT count(*) FROM contacts WHERE id = '{id}' AND {column}")).await == 1
}

async fn dsr(t: &TestApp, token: &str, query: &str, vars: Value) -> Value {
    t.gql_for(token, DSR, query, vars).await.1
}

async fn file(t: &TestApp, token: &str, input: Value) -> String {
    let body = dsr(
        t,
        token,
        "mutation($i: FileRequestInput!) { fileDataSubjectRequest(input: $i) { id } }",
        json!({"i": input}),
    )
    .await;
    body["data"]["fileDataSubjectRequest"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("filed: {body}"))
        .to_owned()
}

async fn resolve(t: &TestApp, token: &str, id: &str, input: Value) -> Value {
    dsr(
        t,
        token,
        "mutation($id: ID!, $i: ResolveRequestInput!) { resolveDataSubjectRequest(id: $id, input: $i) { status } }",
        json!({"id": id, "i": input}),
    )
    .await
}

async fn contact_mutation(t: &TestApp, token: &str, name: &str, id: &str) -> Value {
    dsr(t, token, &format!("mutation($id: ID!) {{ {name}(id: $id) {{ id }} }}"), json!({"id": id}))
        .await
}

#[tokio::test]
async fn a_restriction_request_restricts_the_contact_until_its_dpo_lifts_it() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let contact = contact_of(&t, "ELY").await;
    file(&t, &ely, json!({"kind": "RESTRICTION", "contactId": contact})).await;
    assert!(flag(&t, &contact, "restricted").await);
    // Restricted: no one else processes it.
    let (_, body) = t
        .gql(
            &t.token("TEM", &["viewer"]),
            "query($id: ID!) { contact(id: $id) { lastName } }",
            json!({"id": contact}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    // Another organisation's DPO may not lift it.
    let body = contact_mutation(&t, &t.token("TEM", &["dpo"]), "liftRestriction", &contact).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["errors"][0]["extensions"]["auditEventId"].is_string());
    assert!(flag(&t, &contact, "restricted").await);
    let body = contact_mutation(&t, &ely, "liftRestriction", &contact).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(!flag(&t, &contact, "restricted").await);
    // And restricts again directly.
    contact_mutation(&t, &ely, "restrictContact", &contact).await;
    assert!(flag(&t, &contact, "restricted").await);
    assert!(
        t.sql_count(&format!(
            "SELECT count(*) FROM audit_trail WHERE action IN ('restrict_on_request', 'restrict', 'lift_restriction') AND '{contact}' = ANY(resource_ids)"
        ))
        .await
            >= 4,
        "filing, the refused lift, the lift and the restriction are on record"
    );
}

#[tokio::test]
async fn an_objection_restricts_while_assessed_then_is_lifted_or_kept() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let tem = t.token("TEM", &["dpo"]);
    for upheld in [false, true] {
        let contact = contact_of(&t, "ELY").await;
        // Any controller's DPO files it; the person is restricted at once.
        let req = file(&t, &tem, json!({"kind": "OBJECTION", "contactId": contact})).await;
        assert!(flag(&t, &contact, "objection_pending").await);
        resolve(&t, &tem, &req, json!({"status": "IN_PROGRESS"})).await;
        let body =
            resolve(&t, &ely, &req, json!({"status": "COMPLETED", "resolution": "assessed"})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "upheld or not: {body}");
        // The assessment is the registering organisation's.
        let body = resolve(
            &t,
            &tem,
            &req,
            json!({"status": "COMPLETED", "resolution": "assessed", "objectionUpheld": upheld}),
        )
        .await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        assert_eq!(
            t.sql_text(&format!("SELECT status FROM data_subject_requests WHERE id = '{req}'"))
                .await,
            "IN_PROGRESS",
            "a refused resolution changes nothing"
        );
        let body = resolve(
            &t,
            &ely,
            &req,
            json!({"status": "COMPLETED", "resolution": "assessed", "objectionUpheld": upheld}),
        )
        .await;
        assert_eq!(body["data"]["resolveDataSubjectRequest"]["status"], "COMPLETED", "{body}");
        assert!(!flag(&t, &contact, "objection_pending").await);
        assert_eq!(flag(&t, &contact, "restricted").await, upheld);
    }
}

#[tokio::test]
async fn a_marketing_objection_is_set_at_once_whoever_receives_it() {
    let t = TestApp::new().await;
    let contact = contact_of(&t, "ELY").await;
    file(
        &t,
        &t.token("TEM", &["dpo"]),
        json!({"kind": "MARKETING_OBJECTION", "contactId": contact}),
    )
    .await;
    assert!(flag(&t, &contact, "marketing_objection").await);
    assert!(!flag(&t, &contact, "restricted").await, "no assessment, no restriction");
    let (_, body) = t
        .gql_for(
            &t.token("ELY", &["viewer"]),
            "MARKETING",
            "query($id: ID!) { contact(id: $id) { lastName } }",
            json!({"id": contact}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "out of marketing: {body}");
    // Also directly, by any controller's DPO.
    let other = contact_of(&t, "KEHA").await;
    let body = contact_mutation(&t, &t.token("UM", &["dpo"]), "objectToMarketing", &other).await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(flag(&t, &other, "marketing_objection").await);
}

#[tokio::test]
async fn a_rectification_may_restrict_while_pending() {
    let t = TestApp::new().await;
    let dpo = t.token("ELY", &["dpo"]);
    let a = contact_of(&t, "ELY").await;
    file(&t, &dpo, json!({"kind": "RECTIFICATION", "contactId": a})).await;
    assert!(!flag(&t, &a, "restricted").await);
    let b = contact_of(&t, "ELY").await;
    file(&t, &dpo, json!({"kind": "RECTIFICATION", "contactId": b, "restrictWhilePending": true}))
        .await;
    assert!(flag(&t, &b, "restricted").await);
    let body = dsr(
        &t,
        &dpo,
        "mutation($i: FileRequestInput!) { fileDataSubjectRequest(input: $i) { id } }",
        json!({"i": {"kind": "ACCESS", "contactId": a, "restrictWhilePending": true}}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = dsr(
        &t,
        &dpo,
        "mutation($i: FileRequestInput!) { fileDataSubjectRequest(input: $i) { id } }",
        json!({"i": {"kind": "RESTRICTION", "subjectDescription": "someone"}}),
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "a restriction needs its contact: {body}");
}

async fn hold(t: &TestApp, token: &str, name: &str, id: &str, reason: &str) -> Value {
    dsr(
        t,
        token,
        &format!(
            "mutation($id: ID!, $r: String!) {{ {name}(id: $id, reason: $r) {{ id legalHold }} }}"
        ),
        json!({"id": id, "r": reason}),
    )
    .await
}

#[tokio::test]
async fn a_legal_hold_is_set_and_lifted_with_a_reason_by_the_registering_dpo_and_stops_erasure() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let contact = contact_of(&t, "ELY").await;
    let body =
        hold(&t, &t.token("TEM", &["dpo"]), "setContactLegalHold", &contact, "court case").await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = hold(&t, &ely, "setContactLegalHold", &contact, "  ").await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "a reason is required: {body}");
    let body = hold(&t, &ely, "setContactLegalHold", &contact, "court case 123/2026").await;
    assert_eq!(body["data"]["setContactLegalHold"]["legalHold"], true, "{body}");
    let body = contact_mutation(&t, &ely, "eraseContact", &contact).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("legal hold"));
    let body = hold(&t, &ely, "liftContactLegalHold", &contact, "case closed").await;
    assert_eq!(body["data"]["liftContactLegalHold"]["legalHold"], false, "{body}");
    assert_eq!(
        t.sql_text(&format!("SELECT legal_hold_reason FROM contacts WHERE id = '{contact}'")).await,
        "lifted: case closed"
    );
    let body = contact_mutation(&t, &ely, "eraseContact", &contact).await;
    assert!(body["errors"].is_null(), "{body}");
    // A sole trader company.
    let trader = t
        .sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' AND company_form = 'SOLE_TRADER' AND erased_at IS NULL LIMIT 1")
        .await;
    let body = hold(&t, &ely, "setCompanyLegalHold", &trader, "audit").await;
    assert_eq!(body["data"]["setCompanyLegalHold"]["legalHold"], true, "{body}");
}

#[tokio::test]
async fn erasure_is_refused_while_another_request_is_open() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let contact = contact_of(&t, "ELY").await;
    let access = file(&t, &ely, json!({"kind": "ACCESS", "contactId": contact})).await;
    let erasure = file(&t, &ely, json!({"kind": "ERASURE", "contactId": contact})).await;
    resolve(&t, &ely, &erasure, json!({"status": "IN_PROGRESS"})).await;
    let body =
        resolve(&t, &ely, &erasure, json!({"status": "COMPLETED", "resolution": "erased"})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains(&access));
    assert!(
        t.sql_count(&format!(
            "SELECT count(*) FROM contacts WHERE id = '{contact}' AND erased_at IS NULL"
        ))
        .await
            == 1
    );
    resolve(&t, &ely, &access, json!({"status": "IN_PROGRESS"})).await;
    resolve(&t, &ely, &access, json!({"status": "COMPLETED", "resolution": "report sent"})).await;
    // Another organisation's DPO may not complete an erasure of ELY's contact.
    let body = resolve(
        &t,
        &t.token("TEM", &["dpo"]),
        &erasure,
        json!({"status": "COMPLETED", "resolution": "erased"}),
    )
    .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body =
        resolve(&t, &ely, &erasure, json!({"status": "COMPLETED", "resolution": "erased"})).await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["status"], "COMPLETED", "{body}");
    assert!(t.sql_count(&format!("SELECT count(*) FROM contacts WHERE id = '{contact}' AND erased_at IS NOT NULL AND erased_by_org = 'ELY'")).await == 1);
}

/// Every text column of every table, as `table.column`.
async fn text_columns(t: &TestApp) -> Vec<(String, String)> {
    let list = t
        .sql_text(
            "SELECT string_agg(table_name || '.' || column_name, ',') FROM information_schema.columns \
             WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'ARRAY')",
        )
        .await;
    list.split(',')
        .filter_map(|c| c.split_once('.'))
        .map(|(t, c)| (t.to_owned(), c.to_owned()))
        .collect()
}

#[tokio::test]
async fn erasure_leaves_none_of_the_persons_values_in_any_text_column() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let contact = contact_of(&t, "ELY").await;
    // Values no one else has, written through the API so the change log holds them.
    let values = json!({
        "firstName": "Eraseme-Firstname-7781",
        "lastName": "Eraseme-Lastname-7781",
        "email": "eraseme.7781@example.fi",
        "phone": "+358 40 778 1778",
        "postalAddress": "Eraseme-katu 7781, 90100 Oulu",
        "homeMunicipality": "Eraseme-kunta-7781",
        "nickname": "Eraseme-Nick-7781",
        "jobDescription": "Eraseme-Job-7781",
        "otherDescription": "Eraseme-Other-7781",
    });
    let (_, body) = t
        .gql(
            &t.token("ELY", &["viewer", "editor"]),
            "mutation($id: ID!, $i: ContactInput!) { updateContact(id: $id, input: $i) { id } }",
            json!({"id": contact, "i": values}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // And every other personal column the register declares, so a column
    // the erasure missed would show.
    let kind = kasvu_gateway::register::ResourceKind::Contact;
    let assignments: Vec<String> = kind
        .personal_columns()
        .filter(|c| {
            ![
                "first_name",
                "last_name",
                "email",
                "phone",
                "postal_address",
                "home_municipality",
                "nickname",
                "job_description",
                "other_description",
            ]
            .contains(c)
        })
        .map(|c| match c {
            // ISO codes by constraint: two letters no seeded person has.
            "home_country" | "work_country" => format!("{c} = 'QZ'"),
            _ => format!("{c} = 'Eraseme-{c}-7781'"),
        })
        .collect();
    assert!(assignments.len() >= 10, "{assignments:?}");
    t.sql_exec(&format!("UPDATE contacts SET {} WHERE id = '{contact}'", assignments.join(", ")))
        .await;
    let services =
        t.sql_count(&format!("SELECT count(*) FROM services WHERE contact_id = '{contact}'")).await;
    let req = file(
        &t,
        &ely,
        json!({"kind": "ERASURE", "contactId": contact, "subjectDescription": "Eraseme-Firstname-7781 Eraseme-Lastname-7781, eraseme.7781@example.fi"}),
    )
    .await;
    resolve(&t, &ely, &req, json!({"status": "IN_PROGRESS"})).await;
    let body =
        resolve(&t, &ely, &req, json!({"status": "COMPLETED", "resolution": "erased"})).await;
    assert_eq!(body["data"]["resolveDataSubjectRequest"]["status"], "COMPLETED", "{body}");

    let mut found = Vec::new();
    for (table, column) in text_columns(&t).await {
        for needle in ["Eraseme", "eraseme", "778 1778", "7781778", "QZ"] {
            let n = t
                .sql_count(&format!(
                    "SELECT count(*) FROM \"{table}\" WHERE \"{column}\"::text LIKE '%{needle}%'"
                ))
                .await;
            if n > 0 {
                found.push(format!("{table}.{column} ({n} × {needle})"));
            }
        }
    }
    assert!(found.is_empty(), "left behind: {found:?}");
    // The change log keeps which fields changed and who, without values.
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM change_log WHERE entity = 'contact' AND entity_id = '{contact}' \
             AND (NOT redacted OR old_value IS NOT NULL OR new_value IS NOT NULL)"
        ))
        .await,
        0
    );
    assert!(
        t.sql_count(&format!(
            "SELECT count(*) FROM change_log WHERE entity = 'contact' AND entity_id = '{contact}'"
        ))
        .await
            > 9
    );
    // The tombstone, and the services with their non-personal facts.
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM contacts WHERE id = '{contact}' AND erased_at IS NOT NULL AND erased_by_org = 'ELY' \
             AND first_name IS NULL AND last_name IS NULL AND email IS NULL AND phone IS NULL"
        ))
        .await,
        1
    );
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM services WHERE contact_id = '{contact}' AND kind IS NOT NULL AND provider IS NOT NULL")).await,
        services
    );
    // The erasure is on the audit record.
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM audit_trail WHERE action = 'erase' AND allowed AND '{contact}' = ANY(resource_ids)")).await,
        1
    );
}

#[tokio::test]
async fn a_sole_traders_name_and_business_id_are_erased_and_other_companies_are_not_erasable() {
    let t = TestApp::new().await;
    let ely = t.token("ELY", &["dpo"]);
    let trader = t
        .sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' AND company_form = 'SOLE_TRADER' AND erased_at IS NULL AND NOT legal_hold LIMIT 1")
        .await;
    let (name, business_id) = (
        t.sql_text(&format!("SELECT name FROM companies WHERE id = '{trader}'")).await,
        t.sql_text(&format!("SELECT business_id FROM companies WHERE id = '{trader}'")).await,
    );
    let body = contact_mutation(&t, &ely, "eraseCompany", &trader).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM companies WHERE id = '{trader}' AND name IS NULL AND business_id IS NULL AND erased_at IS NOT NULL"
        ))
        .await,
        1
    );
    for value in [&name, &business_id] {
        assert_eq!(
            t.sql_count(&format!(
                "SELECT count(*) FROM change_log WHERE entity_id = '{trader}' AND (old_value = '{value}' OR new_value = '{value}')"
            ))
            .await,
            0
        );
    }
    let company = t
        .sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' AND company_form = 'LIMITED_COMPANY' LIMIT 1")
        .await;
    let body = contact_mutation(&t, &ely, "eraseCompany", &company).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn only_the_registering_organisations_dpo_restricts_holds_or_erases_directly() {
    let t = TestApp::new().await;
    let contact = contact_of(&t, "ELY").await;
    for token in [
        t.token("TEM", &["dpo"]),
        t.token("ELY", &["viewer", "editor", "confidential"]),
        t.token("MMM", &["dpo"]),
    ] {
        for name in ["restrictContact", "liftRestriction", "eraseContact"] {
            let body = contact_mutation(&t, &token, name, &contact).await;
            assert!(["FORBIDDEN", "NOT_FOUND"].contains(&code(&body)), "{name}: {body}");
        }
        let body = hold(&t, &token, "setContactLegalHold", &contact, "x").await;
        assert!(["FORBIDDEN", "NOT_FOUND"].contains(&code(&body)), "{body}");
    }
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM contacts WHERE id = '{contact}' AND NOT restricted AND NOT legal_hold AND erased_at IS NULL"
        ))
        .await,
        1,
        "nothing changed"
    );
}
