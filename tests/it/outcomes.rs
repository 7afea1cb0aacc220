//! A change's outcome is never a guess for the client: an answer that fails
//! after the change reached its commit says whether it was made, and creates
//! take an idempotency key so a lost answer can be asked for again safely.

use diesel_async::AsyncConnection;
use serde_json::{json, Value};

use crate::support::{code, TestApp};

const CREATE: &str = "mutation($i: CompanyInput!, $k: String) { createCompany(input: $i, idempotencyKey: $k) { id name } }";

fn company(business_id: &str, name: &str) -> Value {
    json!({"businessId": business_id, "name": name, "companyForm": "LIMITED_COMPANY",
           "industryCode": "62010", "legalBasis": "PUBLIC_INTEREST", "source": "PUBLIC_SOURCE"})
}

async fn free_business_id(t: &TestApp, id: &str) {
    t.sql_exec(&format!("DELETE FROM companies WHERE business_id = '{id}'")).await;
}

#[tokio::test]
async fn a_create_repeated_with_its_key_answers_with_the_first_record() {
    let t = TestApp::new().await;
    free_business_id(&t, "0512696-4").await;
    let editor = t.editor();
    let count = "SELECT count(*) FROM companies WHERE business_id = '0512696-4'";
    let vars = json!({"i": company("0512696-4", "Avain Oy"), "k": "retry-7f3c2a10"});
    let first = t.data(&editor, CREATE, vars.clone()).await;
    // The same create again (a lost answer): the same record, not a second one
    // and not "business ID taken".
    let again = t.data(&editor, CREATE, vars).await;
    assert_eq!(first, again);
    assert_eq!(t.sql_count(count).await, 1);
    // Fields in another order are the same request.
    let reordered = json!({"i": {"source": "PUBLIC_SOURCE", "legalBasis": "PUBLIC_INTEREST",
        "industryCode": "62010", "companyForm": "LIMITED_COMPANY", "name": "Avain Oy",
        "businessId": "0512696-4"}, "k": "retry-7f3c2a10"});
    assert_eq!(t.data(&editor, CREATE, reordered).await, first);
    // The key with another request is refused; nothing is written.
    let (_, body) = t
        .gql(
            &editor,
            CREATE,
            json!({"i": company("1484332-4", "Toinen Oy"), "k": "retry-7f3c2a10"}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "idempotencyKey");
    assert_eq!(
        t.sql_count("SELECT count(*) FROM companies WHERE business_id = '1484332-4'").await,
        0
    );
    // Keys are the actor's own: someone else's same key is another request.
    let other = t.token_with(kasvu_gateway::auth::Claims::new(
        &t.jwt,
        "someone-else",
        "ELY",
        &["viewer", "editor"],
        None,
        std::time::Duration::from_secs(600),
    ));
    let (_, body) = t
        .gql(&other, CREATE, json!({"i": company("0512696-4", "Avain Oy"), "k": "retry-7f3c2a10"}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "businessId", "{body}");
    // Malformed keys are bad input.
    for key in ["short", "has space in it", &"k".repeat(129)] {
        let (_, body) =
            t.gql(&editor, CREATE, json!({"i": company("2725690-3", "X Oy"), "k": key})).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], "idempotencyKey", "{body}");
    }
    // A key a day old is forgotten (and the retention run removes it).
    t.sql_exec("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'").await;
    let mut conn = diesel_async::AsyncPgConnection::establish(&t.db_url).await.expect("connect");
    kasvu_gateway::retention::run(&mut conn).await.expect("retention");
    assert_eq!(t.sql_count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_change_whose_answer_cannot_be_recorded_says_it_was_committed() {
    let t = TestApp::new().await;
    free_business_id(&t, "0512696-4").await;
    let editor = t.editor();
    // Open the main pool's connections before the writer's are cut.
    let warm =
        (0..4).map(|_| t.gql(&editor, "{ companies(first: 1) { nodes { id } } }", json!({})));
    futures::future::join_all(warm).await;
    let company =
        t.sql_text("SELECT id::text FROM companies WHERE registered_by = 'ELY' LIMIT 1").await;
    t.cut_audit_writer().await;
    // The change commits on the main pool; reading the contact's name back is
    // audited, and the audit writer cannot store it: no data, but the client
    // learns that the change was made.
    let q = "mutation($c: ID!, $i: ContactInput!) { createContact(companyId: $c, input: $i) { id lastName } }";
    let (_, body) = t
        .gql(
            &editor,
            q,
            json!({"c": company, "i": {"lastName": "Kuittinen", "legalBasis": "CONTRACT", "source": "DATA_SUBJECT"}}),
        )
        .await;
    t.allow_connections().await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["outcome"], "committed", "{body}");
    assert!(!body.to_string().contains("Kuittinen"), "{body}");
    assert_eq!(t.sql_count("SELECT count(*) FROM contacts WHERE last_name = 'Kuittinen'").await, 1);
}

#[tokio::test]
async fn a_commit_that_fails_on_a_lost_connection_is_an_unknown_outcome() {
    let t = TestApp::new().await;
    free_business_id(&t, "0512696-4").await;
    // A check PostgreSQL runs at COMMIT, failing the way a terminated
    // connection does: the transaction's last statement (the change's audit
    // event) went through, the commit did not.
    t.sql_batch(
        "CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'terminating connection due to administrator command' USING ERRCODE = '57P01'; \
         END $$; \
         CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON companies \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit();",
    )
    .await;
    let (_, body) = t
        .gql(
            &t.editor(),
            CREATE,
            json!({"i": company("0512696-4", "Kesken Oy"), "k": "commit-lost-0001"}),
        )
        .await;
    assert_eq!(code(&body), "UNAVAILABLE", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["outcome"], "unknown", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap_or("").contains("idempotencyKey"),
        "{body}"
    );
    // It was not made; the same key after the cause is gone makes it once.
    t.sql_exec("DROP TRIGGER fail_at_commit ON companies").await;
    let first = t
        .data(
            &t.editor(),
            CREATE,
            json!({"i": company("0512696-4", "Kesken Oy"), "k": "commit-lost-0001"}),
        )
        .await;
    assert_eq!(first["createCompany"]["name"], "Kesken Oy");
    // An error before any change reached its commit carries no outcome.
    let (_, body) =
        t.gql(&t.editor(), CREATE, json!({"i": company("0512696-4", "Kesken Oy")})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["extensions"].get("outcome").is_none(), "{body}");
}
