//! What one execution read, seen from the statements it sent: which of the
//! register's versioned tables (migration 000008), and whether it read
//! anything else (the audit trail, the clock, a table the versions do not
//! cover). The response cache keys an answer by the versions of the tables
//! it read, so this is derived from the execution itself: a new resolver
//! that reads the audit trail or `now()` makes its answers uncacheable
//! without anyone listing it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

/// The register's tables whose changes the database counts and announces
/// (`data_changes`, migration 000008); the same list as the migration's.
pub const VERSIONED: [&str; 8] = [
    "change_log",
    "companies",
    "company_confidential",
    "contacts",
    "data_subject_requests",
    "idempotency_keys",
    "organizations",
    "services",
];

/// Tables that mirror a versioned one (kept by its triggers in the same
/// transaction), read under the versioned table's name.
const MIRRORS: [(&str, &str); 3] = [
    ("contact_counts", "contacts"),
    ("company_counts", "companies"),
    ("service_counts", "services"),
];

#[derive(Debug, Default)]
struct State {
    tables: BTreeSet<&'static str>,
    /// Why the execution's answer depends on more than its tables' versions.
    unversioned: Option<String>,
}

/// One execution's reads; shared by its tasks (the loader's batches run in
/// their own).
#[derive(Debug, Default, Clone)]
pub struct ReadSet(Arc<Mutex<State>>);

tokio::task_local! {
    /// The reads of the execution running in this task, if any is tracked.
    pub static READS: ReadSet;
}

impl ReadSet {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer also depends on something no table version covers.
    pub fn depends_on(&self, what: &str) {
        let mut s = self.state();
        if s.unversioned.is_none() {
            s.unversioned = Some(what.to_owned());
        }
    }

    /// The versioned tables read, or why the answer depends on more.
    pub fn outcome(&self) -> Result<Vec<&'static str>, String> {
        let s = self.state();
        match &s.unversioned {
            Some(why) => Err(why.clone()),
            None => Ok(s.tables.iter().copied().collect()),
        }
    }

    /// One statement's SQL text (without its bound values).
    pub fn observe(&self, sql: &str) {
        match tables_of(sql) {
            Ok(tables) => self.state().tables.extend(tables),
            Err(why) => self.depends_on(&why),
        }
    }
}

/// Marks the current execution (if tracked) as depending on `what`.
pub fn depends_on(what: &str) {
    let _ = READS.try_with(|r| r.depends_on(what));
}

/// Notes a statement for the current execution, if one is tracked.
pub(crate) fn observe(sql: &str) {
    let _ = READS.try_with(|r| r.observe(sql));
}

/// Whether a tracked execution runs in this task (the SQL text is then worth
/// rendering).
pub(crate) fn tracking() -> bool {
    READS.try_with(|_| ()).is_ok()
}

/// The versioned tables a statement reads, or why it reads something else.
/// Tables are the identifiers after FROM, JOIN, INTO and UPDATE and those
/// qualifying a column (`"t"."c"`), quoted or not; a statement that names no
/// table, or one outside the versioned set, or asks the clock or chance,
/// is not answered by versions alone.
fn tables_of(sql: &str) -> Result<Vec<&'static str>, String> {
    let lower = sql.to_ascii_lowercase();
    for clock in ["now()", "current_timestamp", "current_date", "clock_timestamp", "random()"] {
        if lower.contains(clock) {
            return Err(format!("the statement reads {clock}"));
        }
    }
    let tokens = tokenize(&lower);
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let after_keyword = i > 0
            && matches!(tokens[i - 1].as_str(), "from" | "join" | "into" | "update")
            && t.as_str() != "(";
        let qualifier = tokens.get(i + 1).is_some_and(|n| n == ".");
        if !(after_keyword || qualifier) || !is_identifier(t) {
            continue;
        }
        let name = t.as_str();
        let table = VERSIONED
            .iter()
            .copied()
            .find(|v| *v == name)
            .or_else(|| MIRRORS.iter().find(|(mirror, _)| *mirror == name).map(|(_, of)| *of));
        match table {
            Some(v) => found.push(v),
            // `unnest(...) AS x`, a sub-query's alias: nothing the versions miss.
            None if !after_keyword => {}
            None => return Err(format!("the statement reads {name}")),
        }
    }
    if found.is_empty() {
        return Err("a statement that reads no register table".to_owned());
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

fn is_identifier(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// Identifiers (quotes removed), single punctuation characters; string
/// literals and numbers dropped.
fn tokenize(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut id = String::new();
                for d in chars.by_ref() {
                    if d == '"' {
                        break;
                    }
                    id.push(d);
                }
                out.push(id);
            }
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '$' => {
                let mut id = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == '$' {
                        id.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(id);
            }
            c if c.is_whitespace() => {}
            c => out.push(c.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diesel_reads_name_their_tables() {
        let sql = r#"SELECT "contacts"."id", "contacts"."first_name" FROM "contacts" WHERE (("contacts"."company_id" = ANY($1)) AND NOT ("contacts"."restricted")) ORDER BY "contacts"."created_at" ASC"#;
        assert_eq!(tables_of(sql), Ok(vec!["contacts"]));
        let count = r#"SELECT SUM("contact_counts"."n") FROM "contact_counts" WHERE NOT "contact_counts"."erased""#;
        assert_eq!(tables_of(count), Ok(vec!["contacts"]));
    }

    #[test]
    fn the_audit_trail_the_clock_and_unknown_reads_are_not_versioned() {
        for sql in [
            r#"SELECT "audit_trail"."seq" FROM "audit_trail" WHERE "audit_trail"."seq" > $1"#,
            r#"SELECT "contacts"."id" FROM "contacts" WHERE "contacts"."last_processed_at" < now()"#,
            r#"SELECT "services"."id" FROM "services" WHERE "services"."requested_at" < CURRENT_TIMESTAMP"#,
            "SELECT 1",
            "SELECT c.id FROM contacts c JOIN audit_events a ON a.id = c.id",
            "SELECT pid FROM pg_stat_activity",
        ] {
            assert!(tables_of(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn string_literals_are_not_tables() {
        let sql = r#"SELECT "companies"."id" FROM "companies" WHERE "companies"."name" = 'from audit_events'"#;
        assert_eq!(tables_of(sql), Ok(vec!["companies"]));
    }

    #[tokio::test]
    async fn a_tracked_execution_collects_across_statements() {
        let reads = ReadSet::default();
        READS
            .scope(reads.clone(), async {
                assert!(tracking());
                observe(r#"SELECT "companies"."id" FROM "companies""#);
                observe(r#"SELECT "services"."id" FROM "services""#);
            })
            .await;
        assert_eq!(reads.outcome(), Ok(vec!["companies", "services"]));
        READS.scope(reads.clone(), async { depends_on("the actor's identity") }).await;
        assert_eq!(reads.outcome(), Err("the actor's identity".to_owned()));
        assert!(!tracking());
    }
}
