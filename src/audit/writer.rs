//! The single writer of the audit trail: events of concurrent requests are
//! committed together in one transaction (group commit), and each request
//! waits for the commit that holds its events before it answers.
//!
//! Bounded everywhere: the queue (a full queue fails the request at once),
//! the wait for the commit, and the writer's own lock and statement timeouts,
//! so a locked table or a database that is down fails requests with
//! `UNAVAILABLE` instead of piling them up.

use std::time::{Duration, Instant};

use diesel_async::AsyncConnection;
use tokio::sync::{mpsc, oneshot};

use super::{chain, AuditEvent};
use crate::db::{self, PgPool};
use crate::metrics::AuditMetrics;

#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Submissions (requests) that may wait for the writer.
    pub queue_capacity: usize,
    /// Events one transaction takes at most.
    pub max_batch_events: usize,
    /// How long a request waits for its events to commit; also the writer's
    /// lock and statement timeout.
    pub commit_timeout: Duration,
    /// One transaction per request instead of group commit (the benchmark's
    /// baseline; not for production).
    pub per_request: bool,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            queue_capacity: 1024,
            max_batch_events: 5000,
            commit_timeout: Duration::from_secs(2),
            per_request: false,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("the audit queue is full")]
    QueueFull,
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("the audit events were not committed in time")]
    Timeout,
    #[error("the audit events could not be stored: {0}")]
    Store(String),
}

impl AuditError {
    fn reason(&self) -> &'static str {
        match self {
            AuditError::QueueFull => "queue_full",
            AuditError::Stopped => "stopped",
            AuditError::Timeout => "timeout",
            AuditError::Store(_) => "store",
        }
    }
}

struct Submission {
    events: Vec<AuditEvent>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Submission>,
    pool: PgPool,
    settings: WriterSettings,
    metrics: AuditMetrics,
}

impl AuditWriter {
    /// Requests waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Starts the writer task on `pool` (its own, so requests that exhaust
    /// the main pool cannot starve the audit trail).
    pub fn start(pool: PgPool, settings: WriterSettings, metrics: AuditMetrics) -> Self {
        let (queue, rx) = mpsc::channel(settings.queue_capacity.max(1));
        tokio::spawn(run(rx, pool.clone(), settings.clone(), metrics.clone()));
        AuditWriter { queue, pool, settings, metrics }
    }

    /// Stores the events and returns once they are committed; an error means
    /// they may not be, and the caller must not disclose what they record.
    pub async fn record(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let result = if self.settings.per_request {
            let n = events.len();
            tokio::time::timeout(
                self.settings.commit_timeout,
                store(&self.pool, &events, &self.settings, &self.metrics),
            )
            .await
            .unwrap_or(Err(AuditError::Timeout))
            .inspect(|()| self.metrics.batch(n))
        } else {
            self.submit(events).await
        };
        if let Err(e) = &result {
            self.metrics.failed(e.reason());
            tracing::error!(error = %e, "audit events not stored; the request fails closed");
        }
        result
    }

    async fn submit(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        let (done, committed) = oneshot::channel();
        self.queue.try_send(Submission { events, done }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AuditError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => AuditError::Stopped,
        })?;
        match tokio::time::timeout(self.settings.commit_timeout, committed).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuditError::Stopped),
            Err(_) => Err(AuditError::Timeout),
        }
    }
}

/// The writer's connection and the chain's tail as it left it. While
/// nobody else appends (a mutation's own transaction, another replica), a
/// batch goes out in one round trip ([`chain::append_after`]); the
/// connection is kept between batches, so no pool checkout or ping either.
/// Any error forgets both. The id lists it stored are not sent again.
#[derive(Default)]
struct Held {
    conn: Option<db::PooledConn>,
    tail: Option<chain::Tail>,
    lists: db::audit::StoredLists,
}

async fn run(
    mut rx: mpsc::Receiver<Submission>,
    pool: PgPool,
    settings: WriterSettings,
    metrics: AuditMetrics,
) {
    let mut held = Held::default();
    // No artificial wait: while one batch commits the next one gathers, so a
    // batch is as large as the load makes it.
    while let Some(first) = rx.recv().await {
        let mut events = first.events;
        let mut waiting = vec![first.done];
        while events.len() < settings.max_batch_events {
            match rx.try_recv() {
                Ok(s) => {
                    events.extend(s.events);
                    waiting.push(s.done);
                }
                Err(_) => break,
            }
        }
        // A submitter that gave up waiting has already failed its request;
        // its events are still worth storing (they over-report, never under).
        let result = store_held(&mut held, &pool, &events, &settings, &metrics).await;
        if result.is_ok() {
            metrics.batch(events.len());
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

async fn store_held(
    held: &mut Held,
    pool: &PgPool,
    events: &[AuditEvent],
    settings: &WriterSettings,
    metrics: &AuditMetrics,
) -> Result<(), AuditError> {
    let started = Instant::now();
    let timeout_ms = settings.commit_timeout.as_millis();
    // A tail is kept only with the connection that wrote it.
    let tail = held.tail.take();
    let conn = if tail.is_some() { held.conn.take() } else { None };
    if let (Some(tail), Some(mut conn)) = (tail, conn) {
        let now = super::now_micros();
        match chain::append_after(&mut conn, &tail, events, now, timeout_ms, &held.lists).await {
            Ok(Some(appended)) => {
                held.conn = Some(conn);
                held.tail = appended.tail;
                held.lists.remember(appended.lists);
                metrics.committed("one_statement", started.elapsed().as_secs_f64());
                return Ok(());
            }
            // Someone else appended: the usual way, on the same connection.
            Ok(None) => held.conn = Some(conn),
            // A held connection can be one the server has closed since
            // (restart, failover): one more try on a pooled one, which the
            // pool pings. The call commits or not as a whole, and a retry of
            // rows that did commit fails on their ids, never doubles them.
            Err(e) => {
                tracing::warn!(error = %e, "audit append on the held connection failed; retrying")
            }
        }
    }
    let fail = |e: String| AuditError::Store(e);
    let mut conn = match held.conn.take() {
        Some(conn) => conn,
        None => pool.get().await.map_err(|e| fail(e.to_string()))?,
    };
    // An error leaves the connection broken or mid-transaction: not kept.
    let appended = in_transaction(&mut conn, events, timeout_ms, &held.lists)
        .await
        .map_err(|e| fail(e.to_string()))?;
    held.conn = Some(conn);
    held.tail = appended.tail;
    held.lists.remember(appended.lists);
    metrics.committed("transaction", started.elapsed().as_secs_f64());
    Ok(())
}

async fn in_transaction(
    conn: &mut db::PooledConn,
    events: &[AuditEvent],
    timeout_ms: u128,
    known: &db::audit::StoredLists,
) -> diesel::QueryResult<chain::Appended> {
    conn.transaction::<_, diesel::result::Error, _>(async move |c| {
        db::audit::set_local_timeouts(c, timeout_ms).await?;
        chain::append_knowing(c, events, super::now_micros(), known).await
    })
    .await
}

/// One transaction for these events alone (the per-request baseline): the
/// writer's usual way with nothing held.
async fn store(
    pool: &PgPool,
    events: &[AuditEvent],
    settings: &WriterSettings,
    metrics: &AuditMetrics,
) -> Result<(), AuditError> {
    store_held(&mut Held::default(), pool, events, settings, metrics).await
}
