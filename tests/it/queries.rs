use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{code, TestApp};

async fn first_company(t: &TestApp, token: &str) -> Value {
    t.data(token, "{ companies(first: 1) { nodes { id businessId name } } }", json!({})).await
        ["companies"]["nodes"][0]
        .clone()
}

#[tokio::test]
async fn company_by_id_and_by_business_id() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let c = first_company(&t, &tok).await;
    let d = t
        .data(&tok, "query($id: ID!) { company(id: $id) { id name } }", json!({"id": c["id"]}))
        .await;
    assert_eq!(d["company"]["name"], c["name"]);
    let d = t
        .data(
            &tok,
            "query($b: String!) { companyByBusinessId(businessId: $b) { id } }",
            json!({"b": c["businessId"]}),
        )
        .await;
    assert_eq!(d["companyByBusinessId"]["id"], c["id"]);
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ids_bad_input() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    for q in [
        "{ company(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
        "{ contact(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
        "{ service(id: \"00000000-0000-4000-8000-000000000000\") { id } }",
        "{ companyByBusinessId(businessId: \"0512696-4\") { id } }",
    ] {
        let (_, body) = t.gql(&tok, q, json!({})).await;
        assert_eq!(code(&body), "NOT_FOUND", "{q}: {body}");
    }
    let (_, body) = t.gql(&tok, "{ company(id: \"nope\") { id } }", json!({})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (_, body) =
        t.gql(&tok, "{ companyByBusinessId(businessId: \"0512696-5\") { id } }", json!({})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn pagination_walks_every_row_once_with_keyset_cursors() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let q = "query($after: String) { services(first: 100, after: $after, filter: {provider: BF}) { totalCount pageInfo { hasNextPage endCursor hasPreviousPage } edges { cursor node { id } } nodes { id } } }";
    let total = t.sql_count("SELECT count(*) FROM services WHERE provider = 'BF'").await;
    let mut seen = std::collections::HashSet::new();
    let mut after = Value::Null;
    loop {
        let d = t.data(&tok, q, json!({"after": after})).await;
        let page = &d["services"];
        assert_eq!(page["totalCount"], total);
        let edges = page["edges"].as_array().expect("edges");
        assert_eq!(page["nodes"].as_array().map(Vec::len), Some(edges.len()));
        for e in edges {
            assert!(
                seen.insert(e["node"]["id"].as_str().expect("id").to_owned()),
                "a row came twice"
            );
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
            break;
        }
        assert_eq!(edges.len(), 100);
        after = page["pageInfo"]["endCursor"].clone();
        assert_eq!(edges.last().map(|e| &e["cursor"]), Some(&after));
    }
    assert_eq!(seen.len() as i64, total);
}

#[tokio::test]
async fn page_size_defaults_to_20_and_is_bounded() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let d =
        t.data(&tok, "{ companies { nodes { id } pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(d["companies"]["nodes"].as_array().map(Vec::len), Some(20));
    let d = t
        .data(&tok, "{ companies(first: 0) { nodes { id } pageInfo { hasNextPage } } }", json!({}))
        .await;
    assert_eq!(d["companies"]["nodes"].as_array().map(Vec::len), Some(0));
    assert_eq!(d["companies"]["pageInfo"]["hasNextPage"], true);
    for bad in [
        "{ companies(first: 101) { nodes { id } } }",
        "{ companies(first: -1) { nodes { id } } }",
        "{ companies(after: \"garbage\") { nodes { id } } }",
    ] {
        let (_, body) = t.gql(&tok, bad, json!({})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
}

#[tokio::test]
async fn company_filters_match_sql() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let q = "query($f: CompanyFilterInput) { companies(filter: $f, first: 100) { totalCount nodes { name industryCode municipality companyForm registeredBy businessId } } }";
    let cases = [
        (json!({"industryCodePrefix": "01"}), "industry_code LIKE '01%'"),
        (json!({"industryCodePrefix": "10"}), "industry_code LIKE '10%'"),
        (json!({"municipality": "Oulu"}), "municipality = 'Oulu'"),
        (json!({"companyForm": "SOLE_TRADER"}), "company_form = 'SOLE_TRADER'"),
        (json!({"registeredBy": "FINNVERA"}), "registered_by = 'FINNVERA'"),
        (json!({"nameContains": "MEIJERI"}), "name ILIKE '%meijeri%'"),
        (
            json!({"nameContains": "meijeri", "municipality": "Helsinki"}),
            "name ILIKE '%meijeri%' AND municipality = 'Helsinki'",
        ),
        (json!({"nameContains": "100%_"}), "false"),
    ];
    for (filter, sql) in cases {
        let d = t.data(&tok, q, json!({"f": filter})).await;
        // Erased companies are invisible to a viewer (R11).
        let expected = t
            .sql_count(&format!(
                "SELECT count(*) FROM companies WHERE ({sql}) AND erased_at IS NULL"
            ))
            .await;
        assert_eq!(d["companies"]["totalCount"], expected, "{filter}");
        assert!(expected == 0 || !d["companies"]["nodes"].as_array().expect("nodes").is_empty());
    }
    let one = t.data(&tok, "{ companies(first: 1) { nodes { businessId } } }", json!({})).await
        ["companies"]["nodes"][0]["businessId"]
        .clone();
    let d = t.data(&tok, q, json!({"f": {"businessId": one}})).await;
    assert_eq!(d["companies"]["totalCount"], 1);
    let (_, body) = t.gql(&tok, q, json!({"f": {"industryCodePrefix": "0x"}})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

/// A TEM viewer sees every contact but restricted, objecting (R5) and erased (R11) ones.
#[tokio::test]
async fn contact_and_service_filters_match_sql() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let c = first_company(&t, &tok).await;
    let cid = c["id"].as_str().expect("id").to_owned();
    let q = "query($f: ContactFilterInput) { contacts(filter: $f, first: 100) { totalCount nodes { id email } } }";
    let d = t.data(&tok, q, json!({"f": {"companyId": cid}})).await;
    assert_eq!(
        d["contacts"]["totalCount"],
        t.sql_count(&format!(
            "SELECT count(*) FROM contacts WHERE company_id = '{cid}' AND NOT (restricted OR objection_pending) AND erased_at IS NULL"
        ))
        .await
    );
    let d = t.data(&tok, q, json!({"f": {"nameContains": "aino kor"}})).await;
    assert_eq!(
        d["contacts"]["totalCount"],
        t.sql_count(
            "SELECT count(*) FROM contacts WHERE first_name || ' ' || last_name ILIKE '%aino kor%' AND NOT (restricted OR objection_pending) AND erased_at IS NULL"
        )
        .await
    );
    let d = t.data(&tok, q, json!({"f": {"registeredBy": "UM"}})).await;
    assert_eq!(
        d["contacts"]["totalCount"],
        t.sql_count("SELECT count(*) FROM contacts WHERE registered_by = 'UM' AND NOT (restricted OR objection_pending) AND erased_at IS NULL")
            .await
    );
    let email = t
        .data(
            &tok,
            "{ contacts(first: 1, filter: {nameContains: \"a\"}) { nodes { email } } }",
            json!({}),
        )
        .await["contacts"]["nodes"][0]["email"]
        .as_str()
        .expect("email")
        .to_uppercase();
    let d = t.data(&tok, q, json!({"f": {"email": email}})).await;
    assert!(d["contacts"]["totalCount"].as_i64().unwrap_or(0) >= 1);

    let q = "query($f: ServiceFilterInput) { services(filter: $f, first: 5) { totalCount } }";
    let cases = [
        (json!({"companyId": cid}), format!("company_id = '{cid}'")),
        (
            json!({"kind": "FUNDING", "status": "INVOICED"}),
            "kind = 'FUNDING' AND status = 'INVOICED'".to_owned(),
        ),
        (json!({"provider": "TUKES"}), "provider = 'TUKES'".to_owned()),
        (
            json!({"requestedFrom": "2024-01-01T00:00:00Z", "requestedTo": "2025-01-01T00:00:00Z"}),
            "requested_at >= '2024-01-01' AND requested_at < '2025-01-01'".to_owned(),
        ),
    ];
    for (filter, sql) in cases {
        let d = t.data(&tok, q, json!({"f": filter})).await;
        assert_eq!(
            d["services"]["totalCount"],
            t.sql_count(&format!("SELECT count(*) FROM services WHERE {sql}")).await,
            "{filter}"
        );
    }
    let (_, body) = t.gql(&tok, q, json!({"f": {"requestedFrom": "2025-01-01T00:00:00Z", "requestedTo": "2024-01-01T00:00:00Z"}})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

/// `companies(first: 50) { contacts { services } }` is one statement per level.
#[tokio::test]
async fn nested_query_costs_one_statement_per_level() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let before = t.statements();
    let d = t
        .data(
            &tok,
            "{ companies(first: 50) { nodes { contacts { id services { id } } } } }",
            json!({}),
        )
        .await;
    let contacts: usize = d["companies"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|c| c["contacts"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(contacts > 50, "the page should have many contacts, had {contacts}");
    assert_eq!(t.statements() - before, 3, "companies → contacts → services");
    // Looking back up to a parent the page already holds costs nothing.
    let before = t.statements();
    t.data(
        &tok,
        "{ companies(first: 50) { nodes { contacts { id company { id } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(t.statements() - before, 2, "companies → contacts; company from the primed cache");
}

#[tokio::test]
async fn nested_fields_resolve_to_the_right_rows() {
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["viewer"]);
    let d = t.data(&tok, "{ services(first: 30, filter: {kind: EVENT}) { nodes { id company { id } contact { id company { id } } } } }", json!({})).await;
    for s in d["services"]["nodes"].as_array().expect("nodes") {
        let sid = s["id"].as_str().expect("id");
        let company = t
            .sql_count(&format!(
                "SELECT count(*) FROM services WHERE id = '{sid}' AND company_id = '{}'",
                s["company"]["id"].as_str().expect("company")
            ))
            .await;
        assert_eq!(company, 1);
        if !s["contact"].is_null() {
            assert_eq!(s["contact"]["company"]["id"], s["company"]["id"]);
        }
    }
}

#[tokio::test]
async fn confidential_rows_are_listed_per_registering_org() {
    let t = TestApp::new().await;
    let tok = t.token("BF", &["viewer", "confidential"]);
    let id: String = {
        let d = t.data(&tok, "{ companies(first: 100) { nodes { id confidential { registeredBy riskRating turnoverEur } } } }", json!({})).await;
        let nodes = d["companies"]["nodes"].as_array().expect("nodes").clone();
        let with = nodes
            .iter()
            .find(|c| c["confidential"].as_array().is_some_and(|a| !a.is_empty()))
            .expect("a company with confidential rows");
        assert!(with["confidential"][0]["turnoverEur"].as_str().is_some(), "decimal as string");
        with["id"].as_str().expect("id").to_owned()
    };
    let d = t
        .data(
            &tok,
            "query($id: ID!) { company(id: $id) { confidential { registeredBy } } }",
            json!({"id": id}),
        )
        .await;
    let n = d["company"]["confidential"].as_array().map_or(0, Vec::len) as i64;
    assert_eq!(
        n,
        t.sql_count(&format!(
            "SELECT count(*) FROM company_confidential WHERE company_id = '{id}'"
        ))
        .await
    );
}

/// The demo register covers every case docs/contract.md lists, in the proportions the foundation issue asks for.
#[tokio::test]
async fn seeded_register_covers_every_case() {
    let t = TestApp::new().await;
    let n = |sql: &'static str| t.sql_count(sql);
    let companies = n("SELECT count(*) FROM companies").await;
    let contacts = n("SELECT count(*) FROM contacts").await;
    assert_eq!(companies, 2000);
    assert!((5500..=6500).contains(&contacts), "{contacts}");
    assert_eq!(n("SELECT count(*) FROM services").await, 20_000);
    let pct = |part: i64, whole: i64| part * 100 / whole;
    assert!(
        pct(
            n("SELECT count(*) FROM companies WHERE company_form = 'SOLE_TRADER'").await,
            companies
        ) >= 5
    );
    assert!(
        pct(
            n("SELECT count(*) FROM companies WHERE industry_code ~ '^(01|02|03|10|11)'").await,
            companies
        ) >= 10
    );
    assert!(pct(n("SELECT count(*) FROM contacts WHERE restricted").await, contacts) >= 2);
    assert!(
        pct(
            n("SELECT count(*) FROM contacts WHERE marketing_objection OR objection_pending").await,
            contacts
        ) >= 5
    );
    assert!(
        pct(
            n("SELECT count(*) FROM contacts WHERE last_processed_at < now() - interval '5 years'")
                .await,
            contacts
        ) >= 3
    );
    assert!(pct(n("SELECT count(*) FROM companies WHERE last_processed_at < now() - interval '5 years'").await, companies) >= 3);
    assert!(n("SELECT count(*) FROM contacts WHERE legal_hold AND last_processed_at < now() - interval '5 years'").await > 0);
    assert!(n("SELECT count(DISTINCT registered_by) FROM company_confidential").await >= 3);
    assert!(n("SELECT count(*) FROM (SELECT company_id FROM company_confidential GROUP BY 1 HAVING count(*) > 1) x").await > 0);
    assert_eq!(n("SELECT count(DISTINCT kind) FROM services").await, 7);
    assert_eq!(n("SELECT count(DISTINCT status) FROM services").await, 5);
    assert_eq!(
        n("SELECT count(DISTINCT provider) FROM services").await,
        8,
        "every controller provides"
    );
    assert_eq!(n("SELECT count(DISTINCT registered_by) FROM contacts").await, 8);
    assert_eq!(n("SELECT count(DISTINCT (kind, status)) FROM data_subject_requests").await, 24);
    assert_eq!(n("SELECT count(*) FROM services s JOIN contacts c ON c.id = s.contact_id WHERE c.company_id <> s.company_id").await, 0);
}

#[tokio::test]
async fn requests_beyond_the_pool_size_do_not_deadlock_it() {
    // Four connections, twenty concurrent pages with nested levels: a
    // resolver that kept its connection while the loader waited for another
    // one would starve the pool until its wait timeout.
    let t = TestApp::new().await;
    let token = t.token("TEM", &["viewer"]);
    let query =
        "{ companies(first: 5) { nodes { name contacts { lastName services { title } } } } \
                   contacts(first: 5) { nodes { lastName company { name } } } \
                   services(first: 5) { nodes { title contact { lastName } } } }";
    let started = std::time::Instant::now();
    let bodies = futures::future::join_all((0..20).map(|_| t.gql(&token, query, json!({})))).await;
    for (status, body) in &bodies {
        assert_eq!(*status, StatusCode::OK);
        assert!(
            body["errors"]
                .as_array()
                .is_none_or(|e| e.iter().all(|e| e["extensions"]["code"] != "UNAVAILABLE")),
            "{body}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn the_gateways_connections_do_not_jit_compile() {
    use diesel_async::RunQueryDsl;
    let t = TestApp::new().await;
    let mut conn = t.app.pool.get().await.expect("a pooled connection");
    let jit: String =
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("current_setting('jit')"))
            .get_result(&mut *conn)
            .await
            .expect("jit setting");
    assert_eq!(jit, "off");
}

/// The sector a row belongs to is a column the database keeps (migration
/// 000005), equal to the Rust reading of the divisions, moved with its company.
#[tokio::test]
async fn the_recipients_sector_is_a_column_kept_with_the_company() {
    use kasvu_gateway::db::visible::in_sector;
    let t = TestApp::new().await;
    for code in ["01110", "02", "03999", "10710", "11", "12", "04", "0", "", "21000", "1"] {
        let sql = t.sql_text(&format!("SELECT industry_in_sector('{code}')::text")).await;
        assert_eq!(sql == "true", in_sector(Some(code)), "{code}");
    }
    assert_eq!(t.sql_text("SELECT industry_in_sector(NULL)::text").await, "false");
    let drift = "SELECT count(*) FROM contacts c JOIN companies co ON co.id = c.company_id \
                 WHERE c.in_sector <> industry_in_sector(co.industry_code)";
    assert_eq!(t.sql_count(drift).await, 0);
    // A company moved out of the sector takes its people out of a recipient's view.
    let company = t
        .sql_text(
            "SELECT co.id::text FROM companies co JOIN contacts c ON c.company_id = co.id \
             WHERE industry_in_sector(co.industry_code) AND NOT c.restricted AND NOT c.objection_pending \
             AND c.erased_at IS NULL LIMIT 1",
        )
        .await;
    let mmm = t.token("MMM", &["viewer"]);
    let q = "query($id: ID!) { contacts(filter: {companyId: $id}) { totalCount } }";
    let before = t.data(&mmm, q, json!({"id": company})).await["contacts"]["totalCount"].clone();
    assert!(before.as_i64().unwrap_or(0) > 0, "{before}");
    t.sql_exec(&format!("UPDATE companies SET industry_code = '62010' WHERE id = '{company}'"))
        .await;
    let after = t.data(&mmm, q, json!({"id": company})).await["contacts"]["totalCount"].clone();
    assert_eq!(after, json!(0));
    assert_eq!(t.sql_count(drift).await, 0);
}

/// Every persona's visible totals, from the counts (an unfiltered listing)
/// and by counting the rows under the same condition.
async fn totals_agree(t: &TestApp, stage: &str) {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use kasvu_gateway::authz::Principal;
    use kasvu_gateway::db::schema::{companies, contacts, services};
    let authorizer = t.app.authorizer();
    let mut conn = t.app.pool.get().await.expect("a pooled connection");
    for (name, actor) in crate::support::personas() {
        let principal = Principal::of(&actor);
        if authorizer.refused(&principal).expect("policy").is_some() {
            continue;
        }
        let vis = authorizer.visibility(&principal).expect("visibility");
        let counted = (
            kasvu_gateway::db::companies::count(&mut conn, &Default::default(), &vis.companies)
                .await
                .expect("company total"),
            kasvu_gateway::db::contacts::count(&mut conn, &Default::default(), &vis.contacts)
                .await
                .expect("contact total"),
            kasvu_gateway::db::services::count(&mut conn, &Default::default(), &vis.services)
                .await
                .expect("service total"),
        );
        let rows: (i64, i64, i64) = (
            companies::table
                .filter(vis.companies.condition::<companies::table>())
                .count()
                .get_result(&mut conn)
                .await
                .expect("companies"),
            contacts::table
                .filter(vis.contacts.condition::<contacts::table>())
                .count()
                .get_result(&mut conn)
                .await
                .expect("contacts"),
            services::table
                .filter(vis.services.condition::<services::table>())
                .count()
                .get_result(&mut conn)
                .await
                .expect("services"),
        );
        assert_eq!(counted, rows, "{name}, {stage}");
    }
}

#[tokio::test]
async fn visible_totals_follow_every_write_and_survive_folding() {
    let t = TestApp::new().await;
    totals_agree(&t, "as seeded").await;
    // Writes through the gateway: a restriction and an erasure move contacts
    // out of most actors' sight.
    let ids = t
        .sql_text(
            "SELECT string_agg(id::text, ',') FROM (SELECT id FROM contacts \
             WHERE registered_by = 'TEM' AND erased_at IS NULL AND NOT restricted AND NOT legal_hold \
             ORDER BY id LIMIT 2) c",
        )
        .await;
    let ids: Vec<&str> = ids.split(',').collect();
    let dpo = t.token("TEM", &["dpo"]);
    let (_, body) = t
        .gql_for(
            &dpo,
            "DATA_SUBJECT_REQUEST",
            "mutation($id: ID!) { restrictContact(id: $id) { id } }",
            json!({ "id": ids[0] }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = t
        .gql_for(
            &dpo,
            "DATA_SUBJECT_REQUEST",
            "mutation($id: ID!) { eraseContact(id: $id) { id } }",
            json!({ "id": ids[1] }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // Writes from outside the gateway, many rows in one statement each.
    t.sql_batch(
        "UPDATE companies SET industry_code = '01110' WHERE id IN \
             (SELECT id FROM companies WHERE industry_code NOT LIKE '01%' ORDER BY id LIMIT 7);
         UPDATE contacts SET marketing_objection = NOT marketing_objection WHERE id IN \
             (SELECT id FROM contacts ORDER BY id LIMIT 40);
         DELETE FROM services WHERE id IN (SELECT id FROM services ORDER BY id LIMIT 25);
         INSERT INTO services (company_id, kind, title, provider, status, legal_basis, source) \
             SELECT company_id, kind, title, 'MMM', status, legal_basis, source \
             FROM services ORDER BY id LIMIT 30;",
    )
    .await;
    totals_agree(&t, "after writes").await;
    let mut conn = t.app.pool.get().await.expect("a pooled connection");
    kasvu_gateway::db::fold_visible_counts(&mut conn).await.expect("fold");
    drop(conn);
    totals_agree(&t, "after folding").await;
    let keys = t.sql_count("SELECT count(*) FROM contact_counts").await;
    assert!(keys <= 2 * 2 * 2 * 2 * 2 * 12, "one row per key after folding: {keys}");
    // The gateway's role reads the counts and cannot change them.
    let refused = {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut c = diesel_async::AsyncPgConnection::establish(&t.db_url).await.expect("connect");
        c.batch_execute("SET ROLE kasvu_gateway; UPDATE contact_counts SET n = n + 1").await
    };
    assert!(refused.is_err(), "the gateway's role must not write the counts");
}

/// Reads select only the columns the document names (`db::project`): every
/// field of every projectable type, asked alone, answers exactly what it
/// answers among all the others, at the top level and nested, for actors
/// who see different fields (denied ones included).
#[tokio::test]
async fn a_field_asked_alone_answers_as_among_all_the_others() {
    use kasvu_gateway::register::ResourceKind;
    let t = TestApp::new().await;
    // The object-valued fields need selections of their own.
    let objects = ["company", "contact", "contacts", "services", "confidential", "changes"];
    let fields = |kind: ResourceKind| -> Vec<&'static str> {
        kind.fields().iter().filter_map(|f| f.graphql).filter(|f| !objects.contains(f)).collect()
    };
    // (type, the list it is read from, where the nodes are)
    let places: [(ResourceKind, &str, &[&str]); 6] = [
        (
            ResourceKind::Company,
            "companies(first: 40) { nodes { id %s } }",
            &["companies", "nodes"],
        ),
        (ResourceKind::Contact, "contacts(first: 40) { nodes { id %s } }", &["contacts", "nodes"]),
        (ResourceKind::Service, "services(first: 40) { nodes { id %s } }", &["services", "nodes"]),
        (
            ResourceKind::Contact,
            "companies(first: 15) { nodes { id contacts { id %s } } }",
            &["companies", "nodes", "*", "contacts"],
        ),
        (
            ResourceKind::Service,
            "contacts(first: 15) { nodes { id services { id %s } } }",
            &["contacts", "nodes", "*", "services"],
        ),
        (
            ResourceKind::Company,
            "services(first: 15) { nodes { id company { id %s } } }",
            &["services", "nodes", "*", "company"],
        ),
    ];
    // Every object at `path` (a "*" walks a list), flattened.
    fn at<'v>(v: &'v Value, path: &[&str]) -> Vec<&'v Value> {
        match path.split_first() {
            None => match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            },
            Some((&"*", rest)) => {
                v.as_array().into_iter().flatten().flat_map(|x| at(x, rest)).collect()
            }
            Some((key, rest)) => at(&v[*key], rest),
        }
    }
    // The paths of the errors on `field`, without the event and trace ids.
    fn denied(body: &Value, field: &str) -> Vec<Value> {
        let mut v: Vec<Value> = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["path"].as_array().and_then(|p| p.last()) == Some(&json!(field)))
            .map(|e| json!([e["path"], e["extensions"]["code"], e["message"]]))
            .collect();
        v.sort_by_key(|x| x.to_string());
        v
    }
    for (org, roles) in
        [("TEM", &["viewer"][..]), ("BF", &["viewer", "confidential"]), ("TEM", &["dpo"])]
    {
        let tok = t.token(org, roles);
        for (kind, shape, path) in &places {
            let all = fields(*kind);
            let (_, full) = t
                .gql(&tok, &format!("{{ {} }}", shape.replace("%s", &all.join(" "))), json!({}))
                .await;
            let full_nodes = at(&full["data"], path);
            assert!(!full_nodes.is_empty(), "{org} {roles:?} {shape}: {full}");
            for field in &all {
                let (_, alone) =
                    t.gql(&tok, &format!("{{ {} }}", shape.replace("%s", field)), json!({})).await;
                let nodes = at(&alone["data"], path);
                assert_eq!(nodes.len(), full_nodes.len(), "{org} {shape} {field}: {alone}");
                for (a, f) in nodes.iter().zip(&full_nodes) {
                    let (a, f) = (a.as_object(), f.as_object());
                    let (Some(a), Some(f)) = (a, f) else {
                        assert_eq!(a, f, "{org} {shape} {field}");
                        continue;
                    };
                    // Present (null included) exactly when it is among all the others.
                    assert_eq!(a.get(*field), f.get(*field), "{org} {roles:?} {shape} {field}");
                    assert_eq!(a.get("id"), f.get("id"));
                }
                assert_eq!(denied(&alone, field), denied(&full, field), "{org} {shape} {field}");
            }
        }
    }
}

/// Each column set is a statement every connection prepares and keeps, so a
/// table gets at most `MAX_SHAPES` of them; documents naming ever new field
/// combinations beyond that read whole rows and still answer exactly.
#[tokio::test]
async fn documents_naming_ever_new_field_sets_read_whole_rows_past_the_bound() {
    use kasvu_gateway::db::project::MAX_SHAPES;
    use kasvu_gateway::register::ResourceKind;
    let t = TestApp::new().await;
    let tok = t.token("TEM", &["dpo"]);
    let fields: Vec<&str> = ResourceKind::Contact
        .fields()
        .iter()
        .filter(|f| f.column.is_some())
        .filter_map(|f| f.graphql)
        .filter(|f| *f != "company")
        .collect();
    let query = |names: &[&str]| {
        format!("{{ contacts(first: 30) {{ nodes {{ id {} }} }} }}", names.join(" "))
    };
    // Denied fields answer null beside their error, alike in both.
    let full = t.gql(&tok, &query(&fields), json!({})).await.1["data"].clone();
    let mut sent = 0;
    'pairs: for (i, a) in fields.iter().enumerate() {
        for b in &fields[i + 1..] {
            if sent > MAX_SHAPES + 10 {
                break 'pairs;
            }
            sent += 1;
            let d = t.gql(&tok, &query(&[a, b]), json!({})).await.1["data"].clone();
            let (got, want) = (&d["contacts"]["nodes"], &full["contacts"]["nodes"]);
            for (g, w) in got.as_array().expect("nodes").iter().zip(want.as_array().expect("nodes"))
            {
                assert_eq!((&g[a], &g[b]), (&w[a], &w[b]), "{a} {b}");
            }
        }
    }
    assert!(sent > MAX_SHAPES, "only {sent} documents");
    assert_eq!(t.app.shapes.count("contacts"), MAX_SHAPES);
}
