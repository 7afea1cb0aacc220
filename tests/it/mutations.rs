use serde_json::{json, Value};

use crate::support::{code, TestApp};

const CREATE_COMPANY: &str = "mutation($i: CompanyInput!) { createCompany(input: $i) { id name businessId country registeredBy legalBasis source } }";

fn company_input() -> Value {
    json!({"businessId": "0512696-4", "name": "Testi Oy", "companyForm": "LIMITED_COMPANY", "industryCode": "62010",
           "municipality": "Oulu", "website": "https://testi.fi", "legalBasis": "PUBLIC_INTEREST", "source": "PUBLIC_SOURCE"})
}

async fn create_company(t: &TestApp, tok: &str) -> String {
    t.sql_exec("DELETE FROM companies WHERE business_id = '0512696-4'").await;
    let d = t.data(tok, CREATE_COMPANY, json!({"i": company_input()})).await;
    d["createCompany"]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn create_company_registers_for_the_actors_org_and_logs_each_field() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let id = create_company(&t, &tok).await;
    let d = t.data(&tok, "query($id: ID!) { company(id: $id) { name businessId country registeredBy legalBasis source } }", json!({"id": id})).await;
    assert_eq!(
        d["company"],
        json!({"name": "Testi Oy", "businessId": "0512696-4", "country": "FI", "registeredBy": "ELY", "legalBasis": "PUBLIC_INTEREST", "source": "PUBLIC_SOURCE"})
    );
    let logged = t.sql_count(&format!("SELECT count(*) FROM change_log WHERE entity = 'company' AND entity_id = '{id}' AND old_value IS NULL AND changed_by_org = 'ELY' AND request_id IS NOT NULL")).await;
    assert!(logged >= 10, "one row per field, got {logged}");
}

#[tokio::test]
async fn invalid_company_input_names_the_field_and_writes_nothing() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let before = t.sql_count("SELECT count(*) FROM companies").await;
    let log_before = t.sql_count("SELECT count(*) FROM change_log").await;
    let cases = [
        ("businessId", json!("0512696-5")),
        ("businessId", json!("512696-4")),
        ("industryCode", json!("6201")),
        ("country", json!("XX")),
        ("website", json!("ftp://x.fi")),
        ("name", json!("   ")),
        ("legalBasis", Value::Null),
        ("source", Value::Null),
    ];
    for (field, value) in cases {
        let mut input = company_input();
        input[field] = value.clone();
        let (_, body) = t.gql(&tok, CREATE_COMPANY, json!({"i": input})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{field}={value}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let mut input = company_input();
    input.as_object_mut().expect("object").remove("legalBasis");
    let (_, body) = t.gql(&tok, CREATE_COMPANY, json!({"i": input})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "legalBasis");
    assert_eq!(t.sql_count("SELECT count(*) FROM companies").await, before);
    assert_eq!(t.sql_count("SELECT count(*) FROM change_log").await, log_before);
}

#[tokio::test]
async fn duplicate_business_id_is_refused() {
    let t = TestApp::new().await;
    let tok = t.editor();
    create_company(&t, &tok).await;
    let (_, body) = t.gql(&tok, CREATE_COMPANY, json!({"i": company_input()})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "businessId");
}

#[tokio::test]
async fn update_company_logs_changed_fields_only_and_can_clear_optional_ones() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let id = create_company(&t, &tok).await;
    let before = t.sql_count("SELECT count(*) FROM change_log").await;
    let d = t.data(&tok, "mutation($id: ID!) { updateCompany(id: $id, input: {name: \"Uusi Oy\", website: null, municipality: \"Oulu\"}) { name website municipality } }", json!({"id": id})).await;
    assert_eq!(
        d["updateCompany"],
        json!({"name": "Uusi Oy", "website": null, "municipality": "Oulu"})
    );
    let rows = t.sql_count(&format!("SELECT count(*) FROM change_log WHERE entity_id = '{id}' AND id > 0 AND ((field = 'name' AND old_value = 'Testi Oy' AND new_value = 'Uusi Oy') OR (field = 'website' AND new_value IS NULL))")).await;
    assert_eq!(rows, 2);
    // name and website changed; last_processed_at moved too.
    let fields = t.sql_count("SELECT count(*) FROM change_log").await - before;
    assert_eq!(fields, 3, "name, website, last_processed_at");
    let (_, body) = t
        .gql(
            &tok,
            "mutation($id: ID!) { updateCompany(id: $id, input: {name: null}) { name } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "name");
    let (_, body) = t.gql(&tok, "mutation { updateCompany(id: \"00000000-0000-4000-8000-000000000000\", input: {name: \"X\"}) { name } }", json!({})).await;
    assert_eq!(code(&body), "NOT_FOUND");
}

#[tokio::test]
async fn delete_company_with_dependents_is_refused_and_empty_one_deleted() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let busy = t
        .data(
            &tok,
            "{ companies(first: 1, filter: {registeredBy: ELY}) { nodes { id } } }",
            json!({}),
        )
        .await["companies"]["nodes"][0]["id"]
        .clone();
    let (_, body) =
        t.gql(&tok, "mutation($id: ID!) { deleteCompany(id: $id) }", json!({"id": busy})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let id = create_company(&t, &tok).await;
    let d = t.data(&tok, "mutation($id: ID!) { deleteCompany(id: $id) }", json!({"id": id})).await;
    assert_eq!(d["deleteCompany"], id.as_str());
    assert_eq!(t.sql_count(&format!("SELECT count(*) FROM companies WHERE id = '{id}'")).await, 0);
    assert!(t.sql_count(&format!("SELECT count(*) FROM change_log WHERE entity_id = '{id}' AND new_value IS NULL AND old_value = 'Testi Oy'")).await == 1);
}

const CREATE_CONTACT: &str = "mutation($c: ID!, $i: ContactInput!) { createContact(companyId: $c, input: $i) { id firstName lastName email phone homeCountry registeredBy lastProcessedAt } }";

fn contact_input() -> Value {
    json!({"firstName": "Maija", "lastName": "Meikäläinen", "email": "maija@testi.fi", "phone": "+358 40 123 4567",
           "homeCountry": "fi", "legalBasis": "LEGITIMATE_INTEREST", "source": "DATA_SUBJECT"})
}

#[tokio::test]
async fn contacts_are_validated_created_updated_and_logged() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let company = create_company(&t, &tok).await;
    for (field, value) in [
        ("email", "not-an-email"),
        ("phone", "12"),
        ("homeCountry", "ZZ"),
        ("workCountry", "Finland"),
    ] {
        let mut input = contact_input();
        input[field] = json!(value);
        let (_, body) = t.gql(&tok, CREATE_CONTACT, json!({"c": company, "i": input})).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let mut input = contact_input();
    input.as_object_mut().expect("object").remove("source");
    let (_, body) = t.gql(&tok, CREATE_CONTACT, json!({"c": company, "i": input})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "source");
    let (_, body) = t
        .gql(
            &tok,
            CREATE_CONTACT,
            json!({"c": "00000000-0000-4000-8000-000000000000", "i": contact_input()}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "companyId");

    let d = t.data(&tok, CREATE_CONTACT, json!({"c": company, "i": contact_input()})).await;
    let c = &d["createContact"];
    assert_eq!(c["homeCountry"], "FI");
    assert_eq!(c["registeredBy"], "ELY");
    let id = c["id"].as_str().expect("id").to_owned();
    let created = c["lastProcessedAt"].as_str().expect("time").to_owned();
    let d = t.data(&tok, "mutation($id: ID!) { updateContact(id: $id, input: {email: \"maija.m@testi.fi\", title: \"CEO\"}) { email title lastProcessedAt changes { field oldValue newValue changedByOrg } } }", json!({"id": id})).await;
    let u = &d["updateContact"];
    assert_eq!(u["email"], "maija.m@testi.fi");
    assert!(
        u["lastProcessedAt"].as_str().expect("time") > created.as_str(),
        "a change is processing"
    );
    let changes = u["changes"].as_array().expect("changes");
    assert!(changes.iter().any(|c| c["field"] == "email"
        && c["oldValue"] == "maija@testi.fi"
        && c["newValue"] == "maija.m@testi.fi"
        && c["changedByOrg"] == "ELY"));
    assert!(changes.iter().any(|c| c["field"] == "title" && c["oldValue"].is_null()));
}

#[tokio::test]
async fn services_validate_their_contact_and_restart_the_retention_clock() {
    let t = TestApp::new().await;
    let tok = t.editor();
    let company = create_company(&t, &tok).await;
    let contact = t.data(&tok, CREATE_CONTACT, json!({"c": company, "i": contact_input()})).await
        ["createContact"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    t.sql_exec(&format!(
        "UPDATE contacts SET last_processed_at = now() - interval '4 years' WHERE id = '{contact}'"
    ))
    .await;
    let q = "mutation($i: ServiceInput!) { createService(input: $i) { id provider status contact { id lastProcessedAt } amountEur } }";
    let base = json!({"companyId": company, "contactId": contact, "kind": "ADVISORY", "title": "Kasvuneuvonta", "legalBasis": "PUBLIC_INTEREST", "source": "DATA_SUBJECT", "amountEur": "1250.50"});
    let d = t.data(&tok, q, json!({"i": base})).await;
    let s = &d["createService"];
    assert_eq!(s["provider"], "ELY");
    assert_eq!(s["status"], "REQUESTED");
    assert_eq!(s["amountEur"], "1250.50");
    assert_eq!(t.sql_count(&format!("SELECT count(*) FROM contacts WHERE id = '{contact}' AND last_processed_at > now() - interval '1 minute'")).await, 1);
    let other = t
        .data(&tok, "{ contacts(first: 1) { nodes { id company { id } } } }", json!({}))
        .await["contacts"]["nodes"][0]["id"]
        .clone();
    let mut wrong = base.clone();
    wrong["contactId"] = other;
    let (_, body) = t.gql(&tok, q, json!({"i": wrong})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "contactId", "{body}");
    let mut missing = base.clone();
    missing.as_object_mut().expect("object").remove("kind");
    let (_, body) = t.gql(&tok, q, json!({"i": missing})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "kind");
    let sid = s["id"].as_str().expect("id").to_owned();
    let d = t.data(&tok, "mutation($id: ID!) { updateService(id: $id, input: {status: DELIVERED, deliveredAt: \"2026-01-02T10:00:00Z\"}) { status deliveredAt } }", json!({"id": sid})).await;
    assert_eq!(d["updateService"]["status"], "DELIVERED");
    let d = t.data(&tok, "mutation($id: ID!) { deleteService(id: $id) }", json!({"id": sid})).await;
    assert_eq!(d["deleteService"], sid.as_str());
}

#[tokio::test]
async fn confidential_rows_one_per_org_with_validation() {
    let t = TestApp::new().await;
    let tok = t.token("FINNVERA", &["editor", "confidential"]);
    let company = create_company(&t, &tok).await;
    let q = "mutation($c: ID!, $i: ConfidentialInput!) { createCompanyConfidential(companyId: $c, input: $i) { id registeredBy riskRating employeeCount turnoverEur } }";
    let d = t.data(&tok, q, json!({"c": company, "i": {"riskRating": "B", "employeeCount": 12, "turnoverEur": 1500000}})).await;
    assert_eq!(d["createCompanyConfidential"]["registeredBy"], "FINNVERA");
    assert_eq!(d["createCompanyConfidential"]["turnoverEur"], "1500000.00");
    let (_, body) = t.gql(&tok, q, json!({"c": company, "i": {"riskRating": "C"}})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "companyId");
    let (_, body) = t.gql(&tok, q, json!({"c": company, "i": {"employeeCount": -1}})).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "employeeCount");
    let id = d["createCompanyConfidential"]["id"].as_str().expect("id").to_owned();
    let d = t.data(&tok, "mutation($id: ID!) { updateCompanyConfidential(id: $id, input: {riskRating: \"A\", notes: null}) { riskRating } }", json!({"id": id})).await;
    assert_eq!(d["updateCompanyConfidential"]["riskRating"], "A");
    assert_eq!(t.sql_count(&format!("SELECT count(*) FROM change_log WHERE entity = 'company_confidential' AND entity_id = '{id}' AND field = 'risk_rating' AND old_value = 'B'")).await, 1);
    t.data(&tok, "mutation($id: ID!) { deleteCompanyConfidential(id: $id) }", json!({"id": id}))
        .await;
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM company_confidential WHERE id = '{id}'")).await,
        0
    );
}
