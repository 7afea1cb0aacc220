//! Archiving whole months of the audit trail to files, and checking them.
//!
//! `audit archive --before 2026-06 --dir D` writes each month before June
//! that is still in the database to `D/audit-events-YYYY-MM.jsonl` (one
//! event a line, with its ids and hashes), checks the month's links on the
//! way, and then in one transaction records the month in the ledger
//! `audit_archives` (its first and last seq, the hash it links to, its last
//! hash, the file's SHA-256) and detaches and drops its partitions. So
//! `audit verify` still checks the whole chain: the ledger from the genesis,
//! then the database from the ledger's end; `audit verify --archives D`
//! also re-hashes every file against the ledger. The current month is never
//! archived.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use sha2::{Digest, Sha256};

use super::chain::{genesis, Verdict, Walker};
use crate::db::audit::{self as store, Archived, AuditRow};

fn file_name(month: NaiveDate) -> String {
    format!("audit-events-{}.jsonl", month.format("%Y-%m"))
}

/// Archives every month before `before` (and before the current month)
/// that is still in the database, oldest first; returns what it archived.
/// Needs the tables' owner. A month whose links do not hold is not
/// archived: the command stops there with the verdict.
pub async fn archive(
    conn: &mut AsyncPgConnection,
    before: NaiveDate,
    dir: &Path,
) -> anyhow::Result<Vec<Archived>> {
    const PAGE: i64 = 5_000;
    let cutoff = before.min(store::month_of(Utc::now()));
    let (mut last_seq, mut last_hash) = match store::archives(conn).await?.pop() {
        Some(a) => (a.last_seq, a.last_hash),
        None => (0, genesis().to_vec()),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut done = Vec::new();
    for month in store::partition_months(conn).await?.into_iter().filter(|m| *m < cutoff) {
        let name = file_name(month);
        let partial = dir.join(format!("{name}.partial"));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?,
        );
        let mut sha = Sha256::new();
        let mut walker = Walker::after(last_seq, last_hash.clone());
        loop {
            let rows = store::in_order(conn, walker.expected_seq - 1, Some(month), PAGE).await?;
            let n = rows.len();
            for row in rows {
                if let Err(Verdict::Broken { seq, reason, .. }) = walker.step(&row) {
                    anyhow::bail!(
                        "not archiving {}: the chain is broken at event {seq}: {reason}",
                        month.format("%Y-%m")
                    );
                }
                // Every column of the chain, with its ids; hashes in hex.
                let mut line = serde_json::to_vec(&row)?;
                line.push(b'\n');
                sha.update(&line);
                file.write_all(&line)?;
            }
            if (n as i64) < PAGE {
                break;
            }
        }
        let file = file.into_inner().context("writing the archive")?;
        file.sync_all()?;
        std::fs::rename(&partial, dir.join(&name))?;
        let archived = Archived {
            month,
            events: i64::try_from(walker.checked)?,
            first_seq: last_seq + 1,
            last_seq: walker.expected_seq - 1,
            prev_hash: last_hash,
            last_hash: walker.prev.clone(),
            file_name: name,
            file_sha256: sha.finalize().to_vec(),
            archived_at: Utc::now(),
        };
        let ledger = archived.clone();
        conn.transaction::<_, diesel::result::Error, _>(async move |c| {
            store::lock_chain(c).await?;
            store::detach_archived(c, &ledger).await
        })
        .await?;
        (last_seq, last_hash) = (archived.last_seq, archived.last_hash.clone());
        done.push(archived);
    }
    Ok(done)
}

/// Re-reads every archived month's file in `dir`: its SHA-256 must be the
/// ledger's, and its events must chain from the month's recorded start to
/// its recorded end.
pub async fn verify_files(conn: &mut AsyncPgConnection, dir: &Path) -> anyhow::Result<Verdict> {
    let mut checked = 0u64;
    for a in store::archives(conn).await? {
        let path = dir.join(&a.file_name);
        let broken = |reason: String, checked: u64| Verdict::Broken {
            seq: a.first_seq,
            id: None,
            reason: format!("archive {}: {reason}", path.display()),
            checked,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => return Ok(broken(format!("cannot be read ({e})"), checked)),
        };
        if Sha256::digest(&bytes).as_slice() != a.file_sha256.as_slice() {
            return Ok(broken("its SHA-256 is not the ledger's".to_owned(), checked));
        }
        let mut walker = Walker::after(a.first_seq - 1, a.prev_hash.clone());
        for line in bytes.lines() {
            let row = serde_json::from_str::<AuditRow>(&line?)
                .with_context(|| format!("reading {}", path.display()))?;
            if let Err(Verdict::Broken { seq, id, reason, .. }) = walker.step(&row) {
                return Ok(Verdict::Broken {
                    seq,
                    id,
                    reason: format!("in {}: {reason}", path.display()),
                    checked: checked + walker.checked,
                });
            }
        }
        if walker.expected_seq - 1 != a.last_seq || walker.prev != a.last_hash {
            return Ok(broken("it does not end where the ledger says".to_owned(), checked));
        }
        checked += walker.checked;
    }
    Ok(Verdict::Intact { events: 0, archived: checked, head: None })
}
