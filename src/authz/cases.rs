//! Table-driven policy tests (`policies/tests/*.table`), run by
//! `kasvu-gateway policy test` and by the test suite.
//!
//! One case per line, six columns separated by `|`:
//!
//! ```text
//! actor             | purpose   | action | record                          | field        | expect
//! TEM viewer        | -         | read   | contact owner=ELY               | contact.home | allow R1-joint-read
//! BFOY viewer @US   | -         | read   | contact owner=ELY in_sector     | contact.home | deny R12-default-deny
//! ```
//!
//! actor: organisation, comma-separated roles, optional `@CC` country (default FI).
//! purpose: a purpose, or `-` for CUSTOMER_RELATIONSHIP.
//! action: `read` (needs a field class), or a write: create, update, delete, erase, restrict, …
//! record: kind (company, confidential, contact, service), `owner=ORG`, and any of the flags
//! restricted, marketing_objection, in_sector, sole_trader, erased.
//! expect: `allow RULE` or `deny RULE`: the decision and the rule that made it.

use std::path::{Path, PathBuf};

use super::engine::{PolicyEngine, Principal, Record};
use super::verdict;
use crate::auth::{Actor, Purpose, Role};

#[derive(Debug, Clone)]
pub struct Case {
    pub file: PathBuf,
    pub line: usize,
    pub text: String,
    actor: Principal,
    action: String,
    record: Record,
    field: Option<String>,
    pub expect_allowed: bool,
    pub expect_rule: String,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: Case,
    pub allowed: bool,
    pub rules: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.allowed == self.case.expect_allowed && self.rules.contains(&self.case.expect_rule)
    }
}

fn parse_actor(text: &str, purpose: &str) -> Result<Principal, String> {
    let mut words = text.split_whitespace();
    let org = words
        .next()
        .ok_or("no organisation")?
        .parse()
        .map_err(|_| format!("unknown organisation in {text:?}"))?;
    let mut roles: Vec<Role> = Vec::new();
    let mut country = "FI".to_owned();
    for w in words {
        if let Some(cc) = w.strip_prefix('@') {
            country = crate::validate::country(cc)?;
        } else {
            for r in w.split(',').filter(|r| !r.is_empty()) {
                roles.push(r.parse().map_err(|r| format!("unknown role {r:?}"))?);
            }
        }
    }
    roles.sort();
    roles.dedup();
    let purpose = match purpose {
        "-" | "" => Purpose::CustomerRelationship,
        p => p.parse().map_err(|p| format!("unknown purpose {p:?}"))?,
    };
    Ok(Principal::of(&Actor { sub: "policy-test".into(), org, roles, country, purpose }))
}

fn parse_record(text: &str) -> Result<Record, String> {
    let mut words = text.split_whitespace();
    let kind = words.next().ok_or("no record kind")?;
    if !["company", "confidential", "contact", "service", "request", "audit_event"].contains(&kind)
    {
        return Err(format!("unknown record kind {kind:?}"));
    }
    let mut record = Record {
        kind: kind.into(),
        owner: String::new(),
        restricted: false,
        marketing_objection: false,
        in_sector: false,
        sole_trader: false,
        erased: false,
    };
    for w in words {
        match w {
            "restricted" => record.restricted = true,
            "marketing_objection" => record.marketing_objection = true,
            "in_sector" => record.in_sector = true,
            "sole_trader" => record.sole_trader = true,
            "erased" => record.erased = true,
            w => match w.strip_prefix("owner=") {
                Some(o) => {
                    record.owner = o
                        .parse::<crate::db::OrgCode>()
                        .map_err(|_| format!("unknown owner {o:?}"))?
                        .as_str()
                        .into()
                }
                None => return Err(format!("unknown record word {w:?}")),
            },
        }
    }
    if record.owner.is_empty() {
        return Err("the record needs owner=ORG".into());
    }
    Ok(record)
}

fn parse_line(file: &Path, line: usize, text: &str) -> Result<Option<Case>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let cols: Vec<&str> = trimmed.split('|').map(str::trim).collect();
    let [actor, purpose, action, record, field, expect] = cols.as_slice() else {
        return Err(format!("expected 6 columns separated by |, found {}", cols.len()));
    };
    if *actor == "actor" {
        return Ok(None); // a header row
    }
    let (decision, rule) = expect.split_once(' ').ok_or("expect is `allow RULE` or `deny RULE`")?;
    let expect_allowed = match decision {
        "allow" => true,
        "deny" => false,
        other => return Err(format!("expect starts with allow or deny, not {other:?}")),
    };
    let field = match *field {
        "-" | "" => None,
        f => Some(f.to_owned()),
    };
    if *action == "read" && field.is_none() {
        return Err("a read case names a field class".into());
    }
    Ok(Some(Case {
        file: file.to_owned(),
        line,
        text: trimmed.to_owned(),
        actor: parse_actor(actor, purpose)?,
        action: (*action).to_owned(),
        record: parse_record(record)?,
        field,
        expect_allowed,
        expect_rule: rule.trim().to_owned(),
    }))
}

/// Reads every `*.table` file under `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let files = super::files_with_extension(dir, "table")?;
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for (i, line) in text.lines().enumerate() {
            match parse_line(&file, i + 1, line) {
                Ok(Some(case)) => cases.push(case),
                Ok(None) => {}
                Err(e) => anyhow::bail!("{}:{}: {e}", file.display(), i + 1),
            }
        }
    }
    Ok(cases)
}

pub fn run(engine: &PolicyEngine, cases: Vec<Case>) -> anyhow::Result<Vec<Outcome>> {
    cases
        .into_iter()
        .map(|case| {
            let v =
                verdict(engine, &case.actor, &case.action, &case.record, case.field.as_deref())?;
            Ok(Outcome { case, allowed: v.allowed, rules: v.rules })
        })
        .collect()
}
