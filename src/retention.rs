//! The five-year retention rule (docs/register.md): data about a natural person is
//! kept at most five years from when it was last processed, then erased,
//! unless a legal hold or an open data subject request keeps it.
//!
//! One record, one transaction (lock, check again, erase, audit event), so a
//! run that stops half-way leaves every record either kept or erased, and a
//! second run finishes the work: the command is idempotent.

use chrono::{DateTime, Months, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{chain, Decided, Subject};
use crate::db::{self, ChangeAuthor, OrgCode};
use crate::register::ResourceKind;
use crate::rights;

/// How long after its last processing personal data may be kept.
pub const YEARS: u32 = 5;

/// Records are looked at in batches of this many.
const BATCH: i64 = 500;

/// A record the rule says must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// A contact or a company (a sole trader).
    pub kind: ResourceKind,
    pub id: Uuid,
    pub registered_by: OrgCode,
    pub last_processed_at: DateTime<Utc>,
}

/// The moment before which data is past the rule, as of `now`.
pub fn cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(12 * YEARS)).unwrap_or(now)
}

/// What must go now, at most `limit` of each kind.
pub async fn due(conn: &mut AsyncPgConnection, limit: i64) -> diesel::QueryResult<Vec<Due>> {
    let cutoff = cutoff(Utc::now());
    let mut out: Vec<Due> = db::contacts::retention_due(conn, cutoff, limit)
        .await?
        .into_iter()
        .map(|c| Due {
            kind: ResourceKind::Contact,
            id: c.id.0,
            registered_by: c.registered_by,
            last_processed_at: c.last_processed_at,
        })
        .collect();
    out.extend(db::companies::retention_due(conn, cutoff, limit).await?.into_iter().map(|c| Due {
        kind: ResourceKind::Company,
        id: c.id.0,
        registered_by: c.registered_by,
        last_processed_at: c.last_processed_at,
    }));
    Ok(out)
}

/// Who erases under the rule: the gateway itself, on behalf of the
/// registering controller (in the tombstone, the change log and the audit trail).
fn author(org: OrgCode, run: &str) -> ChangeAuthor {
    ChangeAuthor {
        sub: "kasvu-gateway retention".to_owned(),
        org,
        request_id: Some(run.to_owned()),
    }
}

fn subject(org: OrgCode, run: &str) -> Subject {
    Subject {
        request_id: run.to_owned(),
        trace_id: None,
        sub: "kasvu-gateway retention".to_owned(),
        org: org.as_str().to_owned(),
        roles: Vec::new(),
        country: None,
        purpose: "RETENTION".to_owned(),
        policy_version: format!("retention: {YEARS} years (docs/register.md)"),
    }
}

/// Erases one record if the rule still says so once it is locked.
async fn erase_one(conn: &mut AsyncPgConnection, d: &Due, run: &str) -> diesel::QueryResult<bool> {
    let cutoff = cutoff(Utc::now());
    let run = run.to_owned();
    let d = d.clone();
    conn.transaction::<_, diesel::result::Error, _>(async move |conn| {
        let who = author(d.registered_by, &run);
        // The same rules as an erasure a DPO asks for (crate::rights),
        // checked again on the locked row.
        let erased = match d.kind {
            ResourceKind::Contact => {
                let Some(row) = db::contacts::lock(conn, db::ContactId(d.id)).await? else {
                    return Ok(false);
                };
                if row.last_processed_at >= cutoff
                    || rights::contact_blocker(conn, &row, None).await?.is_some()
                {
                    return Ok(false);
                }
                rights::erase_contact(conn, &who, &row).await?;
                true
            }
            _ => {
                let Some(row) = db::companies::lock(conn, db::CompanyId(d.id)).await? else {
                    return Ok(false);
                };
                if row.last_processed_at >= cutoff || rights::company_blocker(&row).is_some() {
                    return Ok(false);
                }
                rights::erase_company(conn, &who, &row).await?;
                true
            }
        };
        let event = subject(d.registered_by, &run).event(
            Uuid::new_v4(),
            Decided {
                action: "erase".to_owned(),
                resource_type: d.kind.as_str().to_owned(),
                resource_ids: vec![d.id],
                fields: Vec::new(),
                field_classes: Vec::new(),
                allowed: true,
                rules: vec![format!("retention-{YEARS}-years")],
            },
        );
        chain::append(conn, &[event], crate::audit::now_micros()).await?;
        Ok(erased)
    })
    .await
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub erased: Vec<Due>,
    /// Listed as due, then found kept once locked (changed meanwhile).
    pub skipped: usize,
}

/// Erases everything the rule says must go.
pub async fn run(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Outcome> {
    let run = format!("retention-{}", Uuid::new_v4());
    let mut outcome = Outcome::default();
    let mut seen = std::collections::HashSet::new();
    loop {
        let batch: Vec<Due> =
            due(conn, BATCH).await?.into_iter().filter(|d| !seen.contains(&d.id)).collect();
        if batch.is_empty() {
            break;
        }
        for d in batch {
            seen.insert(d.id);
            if erase_one(conn, &d, &run).await? {
                outcome.erased.push(d);
            } else {
                outcome.skipped += 1;
            }
        }
    }
    // Idempotency keys are kept a day; they name who created what.
    let keys = crate::db::idempotency::purge_expired(conn).await?;
    tracing::info!(
        erased = outcome.erased.len(),
        skipped = outcome.skipped,
        idempotency_keys_removed = keys,
        run,
        "retention run"
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_cutoff_is_five_calendar_years_back() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).single().expect("time");
        assert_eq!(
            cutoff(now),
            Utc.with_ymd_and_hms(2021, 11, 23, 12, 0, 0).single().expect("time")
        );
        let leap = Utc.with_ymd_and_hms(2029, 2, 28, 0, 0, 0).single().expect("time");
        assert_eq!(
            cutoff(leap),
            Utc.with_ymd_and_hms(2024, 2, 28, 0, 0, 0).single().expect("time")
        );
    }
}
