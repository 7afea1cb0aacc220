use std::path::PathBuf;

use kasvu_gateway::authz::{cases, PolicyEngine};

fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The table-driven cases of `policies/tests/` (also `kasvu-gateway policy test`).
#[test]
fn policy_tables_all_pass() {
    let engine = PolicyEngine::load(&policy_dir()).expect("policy loads");
    let outcomes =
        cases::run(&engine, cases::load(&policy_dir().join("tests")).expect("tables parse"))
            .expect("run");
    assert!(outcomes.len() >= 80, "{} cases", outcomes.len());
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "{}:{} {} → got {} {:?}",
                o.case.file.display(),
                o.case.line,
                o.case.text,
                if o.allowed { "allow" } else { "deny" },
                o.rules
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every rule R1–R12 is exercised by an allow or a deny it reports.
#[test]
fn policy_tables_name_every_rule() {
    let all = cases::load(&policy_dir().join("tests")).expect("tables parse");
    for rule in [
        "R1-joint-read",
        "R2-confidential-own",
        "R3-internal-own",
        "R4-write-own",
        "R5-restricted",
        "R6-marketing",
        "R7-recipients",
        "R8-abroad",
        "R9-dpo",
        "R10-auditor",
        "R11-erased",
        "R12-default-deny",
    ] {
        assert!(all.iter().any(|c| c.expect_rule == rule), "no case reports {rule}");
    }
}

fn scratch_policy(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kasvu-policy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    for entry in std::fs::read_dir(policy_dir()).expect("policies").flatten() {
        if entry.path().extension().is_some_and(|x| x == "polar") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
        }
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    dir
}

#[test]
fn a_policy_naming_an_unknown_attribute_or_class_does_not_load() {
    let bad_attr = scratch_policy(&[(
        "zz_bad.polar",
        "hidden(p: Principal, r: Record, \"X\") if r.colour = \"red\";\n",
    )]);
    let err = PolicyEngine::load(&bad_attr).err().expect("must not load");
    assert!(format!("{err:#}").contains("colour"), "{err:#}");
    let bad_class = scratch_policy(&[(
        "zz_bad.polar",
        "hidden(p: Person, _r: Record, \"X\") if p.org = \"TEM\";\n",
    )]);
    let err = PolicyEngine::load(&bad_class).err().expect("must not load");
    assert!(format!("{err:#}").contains("Person"), "{err:#}");
    let syntax = scratch_policy(&[("zz_bad.polar", "hidden(p: Principal, r: Record if;\n")]);
    assert!(PolicyEngine::load(&syntax).is_err());
    for d in [bad_attr, bad_class, syntax] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn the_policy_version_is_a_hash_of_the_files() {
    let a = PolicyEngine::load(&policy_dir()).expect("loads");
    let changed = scratch_policy(&[("zz_comment.polar", "# an operator's note\n")]);
    let b = PolicyEngine::load(&changed).expect("loads");
    assert!(a.version().starts_with("sha256:") && a.version() != b.version());
    let _ = std::fs::remove_dir_all(changed);
}

/// One query per rule per distinct fact combination: asking again is free.
#[test]
fn decisions_are_memoized_on_the_facts() {
    let engine = PolicyEngine::load(&policy_dir()).expect("loads");
    let cases = cases::load(&policy_dir().join("tests")).expect("tables");
    let first = cases::run(&engine, cases.clone()).expect("run");
    let after_first = engine.queries();
    let reads = first.iter().filter(|o| o.case.text.contains("| read ")).count() as u64;
    let again = cases::run(&engine, cases).expect("run");
    let writes = again.len() as u64 - reads;
    // The second run asks nothing for reads; writes are asked per case.
    assert!(
        engine.queries() - after_first <= writes,
        "{} more queries for {writes} write cases",
        engine.queries() - after_first
    );
    assert!(after_first > 0);
}
