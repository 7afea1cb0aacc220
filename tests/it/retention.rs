//! The five-year retention rule on the seeded register.

use serde_json::json;

use crate::support::{code, TestApp};

const EXPIRED: &str = "erased_at IS NULL AND last_processed_at < now() - interval '5 years'";

fn gateway(t: &TestApp, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kasvu-gateway"))
        .args(args)
        .env("DATABASE_URL", &t.db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the gateway");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn retention_erases_what_the_rule_says_must_go_and_keeps_held_records() {
    let t = TestApp::new().await;
    let due_contacts = t
        .sql_count(&format!(
            "SELECT count(*) FROM contacts c WHERE {EXPIRED} AND NOT legal_hold AND NOT EXISTS \
             (SELECT 1 FROM data_subject_requests r WHERE r.contact_id = c.id AND r.status IN ('RECEIVED', 'IN_PROGRESS'))"
        ))
        .await;
    let held =
        t.sql_count(&format!("SELECT count(*) FROM contacts WHERE {EXPIRED} AND legal_hold")).await;
    let pending = t
        .sql_count(&format!(
            "SELECT count(*) FROM contacts c WHERE {EXPIRED} AND NOT legal_hold AND EXISTS \
             (SELECT 1 FROM data_subject_requests r WHERE r.contact_id = c.id AND r.status IN ('RECEIVED', 'IN_PROGRESS'))"
        ))
        .await;
    let due_traders = t
        .sql_count(&format!(
            "SELECT count(*) FROM companies WHERE company_form = 'SOLE_TRADER' AND {EXPIRED} AND NOT legal_hold"
        ))
        .await;
    assert!(due_contacts > 0 && held > 0 && due_traders > 0, "the seed has every case");

    // A DPO sees the same list.
    let (_, body) = t
        .gql_for(
            &t.token("BF", &["dpo"]),
            "DATA_SUBJECT_REQUEST",
            "{ retentionCandidates(first: 1000) { cutoff candidates { kind id registeredBy lastProcessedAt } } }",
            json!({}),
        )
        .await;
    let listed = body["data"]["retentionCandidates"]["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let of = |k: &str| listed.iter().filter(|c| c["kind"] == k).count() as i64;
    assert_eq!((of("contact"), of("company")), (due_contacts, due_traders));
    let (_, body) = t
        .gql(&t.token("BF", &["viewer", "editor"]), "{ retentionCandidates { cutoff } }", json!({}))
        .await;
    assert_eq!(code(&body), "FORBIDDEN");

    // A dry run lists and changes nothing.
    let out = gateway(&t, &["retention", "--dry-run"]);
    assert!(out.contains(&format!("{} record(s) due", due_contacts + due_traders)), "{out}");
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM contacts WHERE {EXPIRED}")).await,
        due_contacts + held + pending
    );

    let out = gateway(&t, &["retention"]);
    assert!(
        out.contains(&format!("erased {due_contacts} contact(s) and {due_traders} sole trader(s)")),
        "{out}"
    );
    // What had to go is gone; what a hold or a request keeps stays.
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM contacts WHERE {EXPIRED}")).await,
        held + pending
    );
    assert_eq!(
        t.sql_count(&format!("SELECT count(*) FROM contacts WHERE {EXPIRED} AND legal_hold")).await,
        held
    );
    assert_eq!(
        t.sql_count(&format!(
            "SELECT count(*) FROM companies WHERE company_form = 'SOLE_TRADER' AND {EXPIRED} AND NOT legal_hold"
        ))
        .await,
        0
    );
    // Erased as an erasure erases: nothing personal, the change log redacted, audited.
    assert_eq!(
        t.sql_count(
            "SELECT count(*) FROM contacts WHERE erased_by = 'kasvu-gateway retention' \
             AND (last_name IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL OR first_name IS NOT NULL)"
        )
        .await,
        0
    );
    assert_eq!(
        t.sql_count(
            "SELECT count(*) FROM change_log l JOIN contacts c ON c.id = l.entity_id \
             WHERE c.erased_by = 'kasvu-gateway retention' AND (l.old_value IS NOT NULL OR l.new_value IS NOT NULL)"
        )
        .await,
        0
    );
    assert_eq!(
        t.sql_count("SELECT count(*) FROM audit_events WHERE action = 'erase' AND 'retention-5-years' = ANY(rules)")
            .await,
        due_contacts + due_traders
    );
    assert!(gateway(&t, &["audit", "verify"]).contains("intact"));
    // Idempotent.
    let out = gateway(&t, &["retention"]);
    assert!(out.contains("erased 0 contact(s) and 0 sole trader(s)"), "{out}");
}

#[tokio::test]
async fn serve_can_run_the_rule_on_a_schedule() {
    let t = TestApp::new().await;
    let expired = format!(
        "SELECT count(*) FROM contacts c WHERE {EXPIRED} AND NOT legal_hold AND NOT EXISTS \
         (SELECT 1 FROM data_subject_requests r WHERE r.contact_id = c.id AND r.status IN ('RECEIVED', 'IN_PROGRESS'))"
    );
    assert!(t.sql_count(&expired).await > 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let _server = crate::reload::Server(
        std::process::Command::new(env!("CARGO_BIN_EXE_kasvu-gateway"))
            .args(["serve", "--no-migrate"])
            .env("DATABASE_URL", &t.db_url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "POLICY_DIR",
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"),
            )
            .env("JWT_DEV_KEY_FILE", &t.jwt.dev_key_file)
            .env("RETENTION_INTERVAL_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the gateway"),
    );
    let started = std::time::Instant::now();
    while t.sql_count(&expired).await > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the scheduled run did not erase what was due"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
