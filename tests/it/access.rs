//! docs/access.md through GraphQL: each rule as the personas meet it.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{code, personas, TestApp};
use kasvu_gateway::db::project::Columns;

const SECTOR: &str = "industry_code ~ '^(01|02|03|10|11)'";

fn errors_at<'a>(body: &'a Value, field: &str) -> Vec<&'a Value> {
    body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["path"].as_array().is_some_and(|p| p.last() == Some(&json!(field))))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn recipient_cannot_see_home_address() {
    let t = TestApp::new().await;
    let id = t.sql_text(&format!("SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.home_country IS NOT NULL LIMIT 1")).await;
    let (_, body) = t.gql(&t.token("MMM", &["viewer"]), "query($id: ID!) { contact(id: $id) { lastName homeCountry postalAddress nickname registeredBy } }", json!({"id": id})).await;
    let c = &body["data"]["contact"];
    assert!(c["lastName"].is_string() && c["registeredBy"].is_string(), "{body}");
    assert!(c["homeCountry"].is_null() && c["nickname"].is_null());
    let home = errors_at(&body, "homeCountry");
    assert_eq!(home.len(), 1, "{body}");
    assert_eq!(home[0]["extensions"]["code"], "FORBIDDEN");
    assert!(home[0]["message"].as_str().unwrap_or("").contains("contact.home"));
    assert!(errors_at(&body, "nickname")[0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("contact.additional"));
}

#[tokio::test]
async fn recipients_see_only_agriculture_and_food_companies() {
    let t = TestApp::new().await;
    for org in ["MMM", "RUOKAVIRASTO"] {
        let tok = t.token(org, &["viewer"]);
        let d = t.data(&tok, "{ companies(first: 100) { totalCount nodes { industryCode contacts { id } services { id } } } }", json!({})).await;
        assert_eq!(
            d["companies"]["totalCount"],
            t.sql_count(&format!(
                "SELECT count(*) FROM companies WHERE {SECTOR} AND erased_at IS NULL"
            ))
            .await
        );
        for c in d["companies"]["nodes"].as_array().expect("nodes") {
            let code = c["industryCode"].as_str().expect("code");
            assert!(["01", "02", "03", "10", "11"].iter().any(|p| code.starts_with(p)), "{code}");
        }
        let d =
            t.data(&tok, "{ contacts { totalCount } services { totalCount } }", json!({})).await;
        let contacts = t.sql_count(&format!("SELECT count(*) FROM contacts c JOIN companies co ON co.id = c.company_id WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.erased_at IS NULL")).await;
        assert_eq!(d["contacts"]["totalCount"], contacts);
        let services = t.sql_count(&format!("SELECT count(*) FROM services s JOIN companies co ON co.id = s.company_id WHERE co.{SECTOR}")).await;
        assert_eq!(d["services"]["totalCount"], services);
        let other =
            t.sql_text(&format!("SELECT id::text FROM companies WHERE NOT {SECTOR} LIMIT 1")).await;
        let (_, body) = t
            .gql(&tok, "query($id: ID!) { company(id: $id) { id name } }", json!({"id": other}))
            .await;
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
        assert!(body["data"]["company"].is_null());
    }
}

#[tokio::test]
async fn recipients_cannot_write_or_read_internal_data() {
    let t = TestApp::new().await;
    let tok = t.token("MMM", &["viewer", "editor", "confidential"]);
    let (_, body) = t.gql(&tok, "mutation { createCompany(input: {businessId: \"0512696-4\", name: \"X\", companyForm: OTHER, legalBasis: CONTRACT, source: PUBLIC_SOURCE}) { id } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        t.sql_count("SELECT count(*) FROM companies WHERE business_id = '0512696-4'").await,
        0
    );
    let (_, body) =
        t.gql(&tok, "{ services(first: 5) { nodes { kind amountEur } } }", json!({})).await;
    assert!(
        !errors_at(&body, "amountEur").is_empty()
            && body["data"]["services"]["nodes"][0]["kind"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn actors_abroad_other_than_bfoy_are_refused_whole_requests() {
    let t = TestApp::new().await;
    for (org, cc) in [("TEM", "US"), ("BF", "GB"), ("MMM", "CN")] {
        let (status, body) =
            t.gql(&t.token_at(org, &["viewer"], cc), "{ viewer { sub } }", json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{org}@{cc}: {body}");
        assert_eq!(code(&body), "FORBIDDEN");
        assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("R8-abroad"));
    }
    // Inside the EEA, abroad from Finland is still in.
    t.data(&t.token_at("TEM", &["viewer"], "NO"), "{ viewer { sub } }", json!({})).await;
}

#[tokio::test]
async fn bfoy_abroad_reads_only_what_business_services_need() {
    let t = TestApp::new().await;
    let tok = t.token_at("BFOY", &["viewer", "editor", "confidential"], "US");
    let (status, body) = t.gql(&tok, "{ contacts(first: 3) { nodes { lastName email registeredBy homeMunicipality industry } } }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let n = &body["data"]["contacts"]["nodes"][0];
    assert!(n["lastName"].is_string() && n["registeredBy"].is_string(), "{body}");
    assert!(
        !errors_at(&body, "homeMunicipality").is_empty()
            && !errors_at(&body, "industry").is_empty()
    );
    let (_, body) = t.gql(&tok, "mutation { createCompany(input: {businessId: \"0512696-4\", name: \"X\", companyForm: OTHER, legalBasis: CONTRACT, source: PUBLIC_SOURCE}) { id } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
}

#[tokio::test]
async fn restricted_contacts_are_invisible_except_to_a_dpo_handling_a_request() {
    let t = TestApp::new().await;
    let id = t
        .sql_text("SELECT c.id::text FROM contacts c WHERE c.restricted AND c.erased_at IS NULL AND EXISTS (SELECT 1 FROM services s WHERE s.contact_id = c.id) LIMIT 1")
        .await;
    let q = "query($id: ID!) { contact(id: $id) { lastName restricted } }";
    let (_, body) = t.gql(&t.token("TEM", &["viewer", "dpo"]), q, json!({"id": id})).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let (status, body) =
        t.gql_for(&t.token("TEM", &["dpo"]), "DATA_SUBJECT_REQUEST", q, json!({"id": id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["contact"]["restricted"], true, "{body}");
    // Left out of nested lists too.
    let company =
        t.sql_text(&format!("SELECT company_id::text FROM contacts WHERE id = '{id}'")).await;
    let d = t
        .data(
            &t.token("TEM", &["viewer"]),
            "query($id: ID!) { company(id: $id) { contacts { id } } }",
            json!({"id": company}),
        )
        .await;
    assert!(!d["company"]["contacts"]
        .as_array()
        .expect("list")
        .iter()
        .any(|c| c["id"] == id.as_str()));
    // Reached through a service it is NOT_FOUND too, and the service is served.
    let service = t
        .sql_text(&format!("SELECT id::text FROM services WHERE contact_id = '{id}' LIMIT 1"))
        .await;
    let (_, body) = t
        .gql(
            &t.token("TEM", &["viewer"]),
            "query($id: ID!) { service(id: $id) { kind contact { lastName } } }",
            json!({"id": service}),
        )
        .await;
    // Hidden is answered exactly as absent: `contact` present and null,
    // no error (a service without a contact answers the same).
    assert!(
        body["data"]["service"]["kind"].is_string()
            && body["data"]["service"].get("contact") == Some(&Value::Null),
        "{body}"
    );
    assert!(body.get("errors").is_none(), "{body}");
    // And an editor cannot change them.
    let owner = t.sql_text(&format!("SELECT registered_by FROM contacts WHERE id = '{id}'")).await;
    let (_, body) = t
        .gql(
            &t.token(&owner, &["editor"]),
            "mutation($id: ID!) { updateContact(id: $id, input: {title: \"x\"}) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
}

#[tokio::test]
async fn marketing_leaves_out_objecting_and_restricted_contacts_and_refuses_recipients() {
    let t = TestApp::new().await;
    let (_, body) = t
        .gql_for(
            &t.token("TEM", &["viewer"]),
            "MARKETING",
            "{ contacts { totalCount } }",
            json!({}),
        )
        .await;
    let expected = t.sql_count("SELECT count(*) FROM contacts WHERE NOT marketing_objection AND NOT restricted AND NOT objection_pending AND erased_at IS NULL").await;
    assert_eq!(body["data"]["contacts"]["totalCount"], expected, "{body}");
    for org in ["MMM", "RUOKAVIRASTO"] {
        let (status, body) = t
            .gql_for(&t.token(org, &["viewer"]), "MARKETING", "{ viewer { sub } }", json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("R6-marketing"));
    }
    let (status, _) = t
        .gql_for(
            &t.token_at("BFOY", &["viewer"], "US"),
            "MARKETING",
            "{ viewer { sub } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn confidential_rows_only_to_their_own_orgs_confidential_role() {
    let t = TestApp::new().await;
    let company = t.sql_text("SELECT cc.company_id::text FROM company_confidential cc JOIN companies c ON c.id = cc.company_id WHERE c.erased_at IS NULL GROUP BY cc.company_id HAVING count(*) > 1 LIMIT 1").await;
    let q = "query($id: ID!) { company(id: $id) { confidential { registeredBy riskRating } } }";
    let orgs: Vec<String> = {
        let all = t.sql_text(&format!("SELECT string_agg(registered_by, ',' ORDER BY registered_by) FROM company_confidential WHERE company_id = '{company}'")).await;
        all.split(',').map(str::to_owned).collect()
    };
    for org in &orgs {
        let d = t.data(&t.token(org, &["viewer", "confidential"]), q, json!({"id": company})).await;
        let rows = d["company"]["confidential"].as_array().expect("rows").clone();
        assert_eq!(rows.len(), 1, "{org} sees only its own: {d}");
        assert_eq!(rows[0]["registeredBy"], org.as_str());
        assert!(rows[0]["riskRating"].is_string());
    }
    for (org, roles) in [
        (orgs[0].as_str(), vec!["viewer"]),
        ("TEM", vec!["viewer", "dpo"]),
        ("MMM", vec!["viewer", "confidential"]),
    ] {
        let d = t
            .data(
                &t.token(org, &roles),
                "{ companies(first: 100) { nodes { confidential { id } } } }",
                json!({}),
            )
            .await;
        let seen: usize = d["companies"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|c| c["confidential"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(seen, 0, "{org} {roles:?}");
    }
}

#[tokio::test]
async fn internal_service_data_only_to_the_provider() {
    let t = TestApp::new().await;
    let id = t
        .sql_text(
            "SELECT id::text FROM services WHERE provider = 'BF' AND notes IS NOT NULL LIMIT 1",
        )
        .await;
    let q = "query($id: ID!) { service(id: $id) { title notes amountEur } }";
    let d = t.data(&t.token("BF", &["viewer"]), q, json!({"id": id})).await;
    assert!(d["service"]["notes"].is_string());
    let (_, body) = t.gql(&t.token("ELY", &["viewer"]), q, json!({"id": id})).await;
    assert!(
        body["data"]["service"]["title"].is_string() && body["data"]["service"]["notes"].is_null()
    );
    assert!(
        errors_at(&body, "notes")[0]["message"].as_str().unwrap_or("").contains("service.internal"),
        "{body}"
    );
}

#[tokio::test]
async fn an_auditor_alone_reads_no_personal_field() {
    let t = TestApp::new().await;
    // R10: the register's root fields are refused with one FORBIDDEN each,
    // not a page of ids with every field denied.
    let (_, body) = t.gql(&t.token("TEM", &["auditor"]), "{ contacts(first: 2) { nodes { id lastName email } } companies(first: 1) { nodes { name } } }", json!({})).await;
    assert_eq!(body["data"], Value::Null, "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    for e in errors {
        assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{body}");
        assert!(e["extensions"]["auditEventId"].is_string(), "{body}");
    }
    assert!(!errors_at(&body, "contacts").is_empty() && !errors_at(&body, "companies").is_empty());
    // By id too, whether or not the id exists.
    let id = t.sql_text("SELECT id::text FROM contacts LIMIT 1").await;
    for id in [id, uuid::Uuid::new_v4().to_string()] {
        let (_, body) = t
            .gql(
                &t.token("TEM", &["auditor"]),
                "query($id: ID!) { contact(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(body["data"], json!({ "contact": null }), "{body}");
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
}

#[tokio::test]
async fn writes_only_to_rows_of_the_actors_org() {
    let t = TestApp::new().await;
    let theirs =
        t.sql_text("SELECT id::text FROM companies WHERE registered_by = 'TEM' LIMIT 1").await;
    let before = t.sql_count("SELECT count(*) FROM change_log").await;
    let (_, body) = t
        .gql(
            &t.token("ELY", &["editor"]),
            "mutation($id: ID!) { updateCompany(id: $id, input: {municipality: \"Oulu\"}) { id } }",
            json!({"id": theirs}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap_or("").contains("R12-default-deny"));
    assert_eq!(t.sql_count("SELECT count(*) FROM change_log").await, before);
    let (_, body) = t.gql(&t.token("ELY", &["viewer"]), "mutation { createCompany(input: {businessId: \"0512696-4\", name: \"X\", companyForm: OTHER, legalBasis: CONTRACT, source: PUBLIC_SOURCE}) { id } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let d = t.data(&t.token("TEM", &["editor"]), "mutation($id: ID!) { updateCompany(id: $id, input: {municipality: \"Oulu\"}) { municipality } }", json!({"id": theirs})).await;
    assert_eq!(d["updateCompany"]["municipality"], "Oulu");
}

/// Aliases, fragments, inline fragments, repeats and every path to a contact
/// reach the same decision.
#[tokio::test]
async fn no_bypass_through_aliases_fragments_or_other_paths() {
    let t = TestApp::new().await;
    let tok = t.token("MMM", &["viewer"]);
    let id = t.sql_text(&format!("SELECT c.id::text FROM contacts c JOIN companies co ON co.id = c.company_id WHERE co.{SECTOR} AND NOT c.restricted AND NOT c.objection_pending AND c.home_country IS NOT NULL AND EXISTS (SELECT 1 FROM services s WHERE s.contact_id = c.id) LIMIT 1")).await;
    let company =
        t.sql_text(&format!("SELECT company_id::text FROM contacts WHERE id = '{id}'")).await;
    let q = r#"query($id: ID!, $company: ID!) {
        contact(id: $id) { a: homeCountry homeCountry b: homeCountry ...F ... on Contact { c: homeCountry } }
        company(id: $company) { contacts { x: homeCountry } }
        contacts(filter: {companyId: $company}) { nodes { y: homeCountry } edges { node { z: homeCountry } } }
        services(filter: {companyId: $company}) { nodes { contact { w: homeCountry } } }
    }
    fragment F on Contact { d: homeCountry }"#;
    let (_, body) = t.gql(&tok, q, json!({"id": id, "company": company})).await;
    let text = body["data"].to_string();
    let home = t.sql_text(&format!("SELECT home_country FROM contacts WHERE id = '{id}'")).await;
    assert!(!text.contains(&format!("\"{home}\"")), "a home country leaked: {body}");
    let forbidden = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter(|e| e["extensions"]["code"] == "FORBIDDEN")
        .count();
    assert!(forbidden >= 9, "{forbidden} denials: {body}");
}

/// The policy is compiled when it loads: no request asks the policy engine,
/// the first of an actor profile included, and the per-request metric says so.
#[tokio::test]
async fn no_request_asks_the_policy_engine_not_even_the_first() {
    let t = TestApp::with_own_policy().await;
    let q = "{ companies(first: 50) { nodes { name municipality contacts { lastName email homeCountry services { kind status amountEur } } } } }";
    let authorizer = t.app.authorizer();
    let engine = authorizer.engine();
    let before = engine.queries();
    let mut requests = 0;
    for (org, roles) in
        [("TEM", vec!["viewer"]), ("MMM", vec!["viewer"]), ("BF", vec!["dpo", "editor"])]
    {
        let tok = t.token(org, &roles);
        for _ in 0..2 {
            let (_, body) = t.gql(&tok, q, json!({})).await;
            assert!(
                body["data"]["companies"]["nodes"].as_array().is_some_and(|n| !n.is_empty()),
                "{body}"
            );
            requests += 1;
        }
    }
    assert_eq!(engine.queries() - before, 0, "policy queries on the request path");
    assert_eq!(authorizer.compiled_misses(), 0, "decisions outside the table");
    let (_, _, metrics) = t
        .send(axum::http::Request::get("/metrics").body(axum::body::Body::empty()).expect("req"))
        .await;
    let zero = metrics
        .lines()
        .find(|l| l.starts_with("kasvu_policy_queries_per_request_bucket{le=\"0\"}"))
        .expect("histogram");
    let zero: u64 = zero.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(zero >= requests, "{zero} of {requests} requests without a query");
}

/// For every persona, over the whole seeded register: the rows the SQL filter
/// (derived from the policy) returns are exactly the rows the policy, asked
/// row by row, says are visible.
#[tokio::test]
async fn sql_visibility_equals_per_row_policy_decisions() {
    use std::collections::{BTreeSet, HashMap};

    use kasvu_gateway::authz::{Principal, Record};
    use kasvu_gateway::db::page::PageRequest;
    use kasvu_gateway::db::visible::Visible;
    use kasvu_gateway::db::{self, CompanyId};

    let t = TestApp::new().await;
    let authz = t.app.authorizer();
    let mut conn = t.app.pool.get().await.expect("connection");
    let everything = PageRequest { after: None, limit: 1_000_000 };
    // Every row of a table under a visibility, whole.
    macro_rules! every {
        ($table:ident, $vis:expr) => {
            db::$table::list(&mut conn, &Default::default(), $vis, everything, Columns::all())
                .await
                .expect(stringify!($table))
        };
    }
    let companies = every!(companies, &Visible::All);
    let contacts = every!(contacts, &Visible::All);
    let services = every!(services, &Visible::All);
    let company_ids: Vec<CompanyId> = companies.iter().map(|c| c.id).collect();
    let confidential =
        db::confidential::by_company_ids(&mut conn, &company_ids, &Visible::All, Columns::all())
            .await
            .expect("confidential");
    let industry: HashMap<CompanyId, Option<String>> =
        companies.iter().map(|c| (c.id, c.industry_code.clone())).collect();
    let of = |id: &CompanyId| industry.get(id).cloned().flatten();
    assert!(
        companies.iter().any(|c| c.erased_at.is_some())
            && contacts.iter().any(|c| c.erased_at.is_some()),
        "the seed has tombstones"
    );

    let mut mismatches = Vec::new();
    for (name, actor) in personas() {
        let p = Principal::of(&actor);
        if authz.refused(&p).expect("policy").is_some() {
            assert_eq!(name, "TEM in the US", "only TEM abroad is refused outright");
            continue;
        }
        let vis = authz.visibility(&p).expect("visibility");
        let visible = |r: Record| authz.engine().hidden(&p, &r).expect("policy").is_empty();

        let sql: BTreeSet<_> =
            every!(companies, &vis.companies).into_iter().map(|r| r.id.0).collect();
        let policy: BTreeSet<_> =
            companies.iter().filter(|r| visible(Record::company(r))).map(|r| r.id.0).collect();
        mismatches
            .extend(sql.symmetric_difference(&policy).map(|id| format!("{name}: company {id}")));

        let sql: BTreeSet<_> =
            every!(contacts, &vis.contacts).into_iter().map(|r| r.id.0).collect();
        let policy: BTreeSet<_> = contacts
            .iter()
            .filter(|r| visible(Record::contact(r, of(&r.company_id).as_deref())))
            .map(|r| r.id.0)
            .collect();
        mismatches
            .extend(sql.symmetric_difference(&policy).map(|id| format!("{name}: contact {id}")));

        let sql: BTreeSet<_> =
            every!(services, &vis.services).into_iter().map(|r| r.id.0).collect();
        let policy: BTreeSet<_> = services
            .iter()
            .filter(|r| visible(Record::service(r, of(&r.company_id).as_deref())))
            .map(|r| r.id.0)
            .collect();
        mismatches
            .extend(sql.symmetric_difference(&policy).map(|id| format!("{name}: service {id}")));

        let sql: BTreeSet<_> = db::confidential::by_company_ids(
            &mut conn,
            &company_ids,
            &vis.confidential,
            Columns::all(),
        )
        .await
        .expect("q")
        .into_iter()
        .map(|r| r.id.0)
        .collect();
        let policy: BTreeSet<_> = confidential
            .iter()
            .filter(|r| visible(Record::confidential(r, of(&r.company_id).as_deref())))
            .map(|r| r.id.0)
            .collect();
        mismatches.extend(
            sql.symmetric_difference(&policy).map(|id| format!("{name}: confidential row {id}")),
        );
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        mismatches.iter().take(5).collect::<Vec<_>>()
    );
}

/// A projected read fetches each row's facts whatever the document names: the
/// policy sees the same record, and the page the same keyset, from a row read
/// with the facts alone as from the whole row, for every row of the register.
#[tokio::test]
async fn a_row_read_with_its_facts_alone_decides_as_the_whole_row() {
    use kasvu_gateway::authz::Record;
    use kasvu_gateway::db::page::{PageRequest, Paged};
    use kasvu_gateway::db::project::Shapes;
    use kasvu_gateway::db::visible::Visible;
    use kasvu_gateway::db::{self};

    let t = TestApp::new().await;
    let mut conn = t.app.pool.get().await.expect("connection");
    let everything = PageRequest { after: None, limit: 1_000_000 };
    let shapes = Shapes::default();
    // Every row of a table, whole and with its facts alone, in the same order.
    macro_rules! both {
        ($table:ident) => {{
            let mut read = async |cols| {
                db::$table::list(&mut conn, &Default::default(), &Visible::All, everything, cols)
                    .await
                    .expect(stringify!($table))
            };
            let whole = read(Columns::all()).await;
            let facts = read(Columns::for_fields([""; 0], &shapes)).await;
            assert_eq!(whole.len(), facts.len());
            (whole, facts)
        }};
    }
    let (whole, facts) = both!(companies);
    assert!(whole.len() > 100);
    let industry: std::collections::HashMap<_, _> =
        whole.iter().map(|c| (c.id, c.industry_code.clone())).collect();
    for (w, f) in whole.iter().zip(&facts) {
        assert_eq!((w.id, w.keyset()), (f.id, f.keyset()));
        assert_eq!(Record::company(w), Record::company(f), "{:?}", w.id);
        // Nothing beyond the facts was fetched.
        assert!(f.name.is_none() && f.website.is_none() && f.business_id.is_none());
    }
    let (whole, facts) = both!(contacts);
    assert!(whole.iter().any(|c| c.restricted) && whole.iter().any(|c| c.marketing_objection));
    for (w, f) in whole.iter().zip(&facts) {
        let i = industry[&w.company_id].as_deref();
        assert_eq!((w.id, w.company_id, w.keyset()), (f.id, f.company_id, f.keyset()));
        assert_eq!(Record::contact(w, i), Record::contact(f, i), "{:?}", w.id);
        assert!(f.first_name.is_none() && f.email.is_none());
    }
    let (whole, facts) = both!(services);
    for (w, f) in whole.iter().zip(&facts) {
        let i = industry[&w.company_id].as_deref();
        assert_eq!(
            (w.id, w.company_id, w.contact_id, w.keyset()),
            (f.id, f.company_id, f.contact_id, f.keyset())
        );
        assert_eq!(Record::service(w, i), Record::service(f, i), "{:?}", w.id);
        assert!(f.amount_eur.is_none() && f.notes.is_none());
    }
}
