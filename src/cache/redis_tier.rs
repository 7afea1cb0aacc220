//! The Redis tier: shared by every replica, never in a request's way. Every
//! call has a short timeout and goes through a circuit breaker; a Redis that
//! is down, killed or stopped costs a request at most one timeout, after
//! which requests skip Redis until a trial call finds it back. Connecting
//! (and reconnecting) happens in the background.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

use super::breaker::{Breaker, State};
use super::{CacheConfig, Key};
use crate::metrics::CacheMetrics;

#[derive(Clone)]
pub struct RedisTier(Arc<Inner>);

struct Inner {
    conn: RwLock<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    ttl: Duration,
    breaker: Breaker,
    metrics: CacheMetrics,
}

impl RedisTier {
    /// Starts connecting in the background; until connected, calls are skipped.
    pub fn start(url: &str, config: &CacheConfig, ttl: Duration, metrics: CacheMetrics) -> Self {
        let tier = RedisTier(Arc::new(Inner {
            conn: RwLock::new(None),
            prefix: config.redis_key_prefix.clone(),
            timeout: Duration::from_millis(config.redis_timeout_ms.max(1)),
            ttl,
            breaker: Breaker::new(
                config.redis_breaker_failures,
                Duration::from_millis(config.redis_breaker_open_ms),
            ),
            metrics,
        }));
        match redis::Client::open(url) {
            Ok(client) => {
                let inner = tier.0.clone();
                tokio::spawn(async move { connect(client, inner).await });
            }
            Err(e) => {
                tracing::error!(url = %crate::config::redact_url(url), error = %e, "REDIS_URL is not a Redis URL; the cache is in-process only");
            }
        }
        tier
    }

    fn key(&self, kind: &str, key: &Key) -> String {
        format!("{}{kind}:{}", self.0.prefix, hex::encode(key))
    }

    /// Whether requests currently skip Redis (breaker open).
    pub fn breaker_state(&self) -> State {
        self.0.breaker.state()
    }

    pub fn connected(&self) -> bool {
        self.0.conn.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// One command, under the timeout and the breaker; `None` when skipped
    /// or failed (the caller goes on without Redis).
    async fn call<T: redis::FromRedisValue>(&self, op: &'static str, cmd: redis::Cmd) -> Option<T> {
        let inner = &self.0;
        let mut conn =
            inner.conn.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()?;
        if !inner.breaker.allow() {
            inner.metrics.redis_skipped();
            return None;
        }
        let started = Instant::now();
        let result = tokio::time::timeout(inner.timeout, cmd.query_async::<T>(&mut conn)).await;
        inner.metrics.redis_latency(op, started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(Ok(v)) => {
                inner.breaker.success();
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(op, error = %e, "redis call failed");
                inner.metrics.redis_error("error");
                inner.breaker.failure();
                None
            }
            Err(_) => {
                inner.metrics.redis_error("timeout");
                inner.breaker.failure();
                None
            }
        };
        inner.metrics.breaker(inner.breaker.state() != State::Closed);
        outcome
    }

    /// A cached answer.
    pub async fn get(&self, key: &Key) -> Option<Vec<u8>> {
        self.get_named("resp", key).await
    }

    pub async fn set(&self, key: &Key, value: Vec<u8>) {
        self.set_named("resp", key, value, self.0.ttl).await
    }

    /// Runs the rate limiter's GCRA script on `key`: (allowed, µs to wait).
    pub async fn gcra(
        &self,
        script: &str,
        key: &str,
        interval: i64,
        tolerance: i64,
    ) -> Option<(bool, i64)> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script)
            .arg(1)
            .arg(format!("{}rl:{key}", self.0.prefix))
            .arg(interval)
            .arg(tolerance);
        let r: Vec<i64> = self.call("gcra", cmd).await?;
        Some((*r.first()? == 1, *r.get(1)?))
    }

    /// A value of another kind (`apq`: persisted queries) under its own key space.
    pub async fn get_named(&self, kind: &str, key: &Key) -> Option<Vec<u8>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(kind, key));
        self.call::<Option<Vec<u8>>>("get", cmd).await.flatten()
    }

    pub async fn set_named(&self, kind: &str, key: &Key, value: Vec<u8>, ttl: Duration) {
        let mut cmd = redis::cmd("SET");
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        cmd.arg(self.key(kind, key)).arg(value).arg("PX").arg(ttl_ms);
        let _: Option<()> = self.call("set", cmd).await;
    }
}

/// Connects, retrying every second; the connection manager reconnects by
/// itself after that.
async fn connect(client: redis::Client, inner: Arc<Inner>) {
    let mut logged = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ConnectionManager::new(client.clone()))
            .await
        {
            Ok(Ok(conn)) => {
                *inner.conn.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
                tracing::info!("connected to redis");
                return;
            }
            Ok(Err(e)) if !logged => {
                tracing::warn!(error = %e, "cannot connect to redis; retrying (the cache is in-process meanwhile)");
                logged = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
