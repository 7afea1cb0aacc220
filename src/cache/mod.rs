//! The response cache (docs/cache.md): answers keyed by everything they
//! depend on, valid while the versions of the tables they read are those
//! they were computed at. Two tiers: in this process (bounded, moka) and
//! Redis (shared by every replica). The data versions come from the database
//! (`versions`): without them, nothing is served from or stored in the cache.
//!
//! The cache holds opaque bytes: what an answer is and how its audit events
//! are replayed is the GraphQL layer's (src/http/cached.rs).

mod breaker;
pub mod limit;
pub mod listen;
mod redis_tier;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::versions::Versions;
use crate::metrics::CacheMetrics;

pub use breaker::State as BreakerState;
pub use redis_tier::RedisTier;

/// The cache's settings (`CACHE_*`, `REDIS_*`).
#[derive(Debug, Clone, clap::Args)]
pub struct CacheConfig {
    /// Serve repeated queries from the response cache.
    #[arg(long, env = "CACHE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub cache_enabled: bool,
    /// Bytes the in-process tier holds at most.
    #[arg(long, env = "CACHE_LOCAL_MAX_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub cache_local_max_bytes: u64,
    /// Seconds an answer stays in either tier (it is dropped earlier by a
    /// change of what it read; this only bounds memory for unread entries).
    #[arg(long, env = "CACHE_TTL_SECS", default_value_t = 300)]
    pub cache_ttl_secs: u64,
    /// Answers larger than this many bytes are not cached.
    #[arg(long, env = "CACHE_MAX_ENTRY_BYTES", default_value_t = 1024 * 1024)]
    pub cache_max_entry_bytes: usize,
    /// Prefix of every Redis key this gateway writes (tests use their own).
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "kasvu:")]
    pub redis_key_prefix: String,
    /// Milliseconds a Redis call may take before it counts as failed and
    /// the request goes on without it.
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 25)]
    pub redis_timeout_ms: u64,
    /// Consecutive Redis failures that open the circuit breaker.
    #[arg(long, env = "REDIS_BREAKER_FAILURES", default_value_t = 3)]
    pub redis_breaker_failures: u32,
    /// Milliseconds the breaker stays open before one call tries Redis again.
    #[arg(long, env = "REDIS_BREAKER_OPEN_MS", default_value_t = 2000)]
    pub redis_breaker_open_ms: u64,
    /// Requests per second one person may send (a GCRA bucket per
    /// organisation and `sub`, in Redis when it is there); 0: no limit.
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 0.0)]
    pub rate_limit_per_sec: f64,
    /// Requests a person may send at once before the rate applies.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,
    /// Per organisation: `TEM=100:200,MMM=5:10` (requests per second, burst).
    #[arg(long, env = "RATE_LIMITS", default_value = "", value_parser = limit::parse_limits)]
    pub rate_limits: std::collections::HashMap<String, limit::Limit>,
    /// Milliseconds between checks of the data-version listener's connection.
    #[arg(long, env = "CACHE_HEARTBEAT_MS", default_value_t = 1000)]
    pub cache_heartbeat_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            cache_enabled: true,
            cache_local_max_bytes: 32 * 1024 * 1024,
            cache_ttl_secs: 300,
            cache_max_entry_bytes: 1024 * 1024,
            redis_key_prefix: "kasvu:".to_owned(),
            redis_timeout_ms: 25,
            redis_breaker_failures: 3,
            redis_breaker_open_ms: 2000,
            cache_heartbeat_ms: 1000,
            rate_limit_per_sec: 0.0,
            rate_limit_burst: 100,
            rate_limits: Default::default(),
        }
    }
}

/// A cache key: the SHA-256 of everything an answer depends on but its data.
pub type Key = [u8; 32];

/// One cached answer: the versions of the tables it read, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub deps: Vec<(String, i64)>,
    pub body: Vec<u8>,
}

impl Entry {
    /// Whether nothing it read has changed since.
    pub fn valid_at(&self, versions: &Versions) -> bool {
        self.deps.iter().all(|(t, v)| versions.get(t).copied().unwrap_or(0) == *v)
    }

    /// `deps` as one JSON line, then the body: Redis's value.
    fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.deps).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        let split = bytes.iter().position(|b| *b == b'\n')?;
        let deps = serde_json::from_slice(&bytes[..split]).ok()?;
        Some(Entry { deps, body: bytes[split + 1..].to_vec() })
    }
}

/// The versions every replica agrees on, as this one last read them; `None`
/// while the listener is not connected (then nothing is cached).
#[derive(Default)]
pub struct DataVersions(RwLock<Option<Arc<Versions>>>);

impl DataVersions {
    pub fn current(&self) -> Option<Arc<Versions>> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Takes versions read from the database. Versions only grow, so two
    /// readers racing (the listener, a mutation's own refresh) keep the
    /// larger of each: an older read never brings back an older answer.
    pub fn advance(&self, read: Versions) {
        self.merge(read, true);
    }

    /// Takes versions read outside the listener (a mutation's own, so the
    /// next request here sees its change at once), only while the listener
    /// is connected: a refresh must not resume caching the listener stopped.
    pub fn refresh(&self, read: Versions) {
        self.merge(read, false);
    }

    fn merge(&self, mut read: Versions, when_unknown: bool) {
        let mut slot = self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_deref() {
            None if !when_unknown => return,
            None => {}
            Some(old) => {
                for (t, v) in old {
                    let e = read.entry(t.clone()).or_insert(*v);
                    *e = (*e).max(*v);
                }
            }
        }
        *slot = Some(Arc::new(read));
    }

    /// The listener lost its connection: changes may go unseen from now on.
    pub fn forget(&self) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Local,
    Redis,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Redis => "redis",
        }
    }
}

pub struct ResponseCache {
    pub config: CacheConfig,
    pub versions: Arc<DataVersions>,
    local: moka::sync::Cache<Key, Arc<Entry>>,
    /// Persisted queries' documents by their SHA-256 (src/http/persisted.rs).
    queries: moka::sync::Cache<Key, Arc<str>>,
    redis: Option<RedisTier>,
    pub metrics: CacheMetrics,
}

/// How long a persisted query is kept (a client that finds it gone sends
/// the document again).
const PERSISTED_TTL: Duration = Duration::from_secs(24 * 3600);

impl ResponseCache {
    pub fn new(config: CacheConfig, redis_url: Option<&str>, metrics: CacheMetrics) -> Self {
        let ttl = Duration::from_secs(config.cache_ttl_secs.max(1));
        let local = moka::sync::Cache::builder()
            .max_capacity(config.cache_local_max_bytes)
            .weigher(|_k: &Key, e: &Arc<Entry>| {
                u32::try_from(e.body.len() + 64 * e.deps.len() + 96).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        // Redis also keeps persisted queries, with or without response caching.
        let redis = redis_url.map(|url| RedisTier::start(url, &config, ttl, metrics.clone()));
        let queries = moka::sync::Cache::builder()
            .max_capacity(4 * 1024 * 1024)
            .weigher(|_k: &Key, q: &Arc<str>| u32::try_from(q.len() + 64).unwrap_or(u32::MAX))
            .time_to_live(PERSISTED_TTL)
            .build();
        ResponseCache {
            config,
            versions: Arc::new(DataVersions::default()),
            local,
            queries,
            redis,
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.cache_enabled
    }

    pub fn redis(&self) -> Option<&RedisTier> {
        self.redis.as_ref()
    }

    /// The answer under `key` if it is still what the data says: from this
    /// process, else from Redis (then kept here too).
    pub async fn get(&self, key: &Key, versions: &Versions) -> Option<(Arc<Entry>, Tier)> {
        if let Some(e) = self.local.get(key) {
            if e.valid_at(versions) {
                self.metrics.lookup(Tier::Local, true);
                return Some((e, Tier::Local));
            }
            self.local.invalidate(key);
        }
        self.metrics.lookup(Tier::Local, false);
        let redis = self.redis.as_ref()?;
        let found = redis.get(key).await.and_then(|b| Entry::decode(&b));
        match found {
            Some(e) if e.valid_at(versions) => {
                self.metrics.lookup(Tier::Redis, true);
                let e = Arc::new(e);
                self.local.insert(*key, e.clone());
                Some((e, Tier::Redis))
            }
            _ => {
                self.metrics.lookup(Tier::Redis, false);
                None
            }
        }
    }

    /// Stores an answer in both tiers (Redis in the background: the response
    /// does not wait for it).
    pub fn put(&self, key: Key, entry: Entry) {
        self.metrics.stored();
        let entry = Arc::new(entry);
        self.local.insert(key, entry.clone());
        if let Some(redis) = &self.redis {
            let redis = redis.clone();
            tokio::spawn(async move { redis.set(&key, entry.encode()).await });
        }
    }

    /// A persisted query's document, from this process or Redis.
    pub async fn persisted_query(&self, hash: &Key) -> Option<Arc<str>> {
        if let Some(q) = self.queries.get(hash) {
            return Some(q);
        }
        let bytes = self.redis.as_ref()?.get_named("apq", hash).await?;
        let text: Arc<str> = String::from_utf8(bytes).ok()?.into();
        self.queries.insert(*hash, text.clone());
        Some(text)
    }

    /// Keeps a persisted query's document (whose hash was checked).
    pub fn persist_query(&self, hash: Key, query: &str) {
        if self.queries.contains_key(&hash) {
            return;
        }
        self.queries.insert(hash, query.into());
        if let Some(redis) = &self.redis {
            let (redis, value) = (redis.clone(), query.as_bytes().to_vec());
            tokio::spawn(async move { redis.set_named("apq", &hash, value, PERSISTED_TTL).await });
        }
    }

    /// Entries in the in-process tier (for tests and metrics).
    pub fn local_entries(&self) -> u64 {
        self.local.run_pending_tasks();
        self.local.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_valid_while_what_it_read_is_unchanged() {
        let e = Entry {
            deps: vec![("contacts".into(), 3), ("companies".into(), 0)],
            body: b"{}".to_vec(),
        };
        let mut v = Versions::new();
        v.insert("contacts".into(), 3);
        v.insert("services".into(), 9);
        assert!(e.valid_at(&v));
        v.insert("companies".into(), 1);
        assert!(!e.valid_at(&v));
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b"no newline"), None);
    }

    #[test]
    fn versions_never_go_back() {
        let d = DataVersions::default();
        assert!(d.current().is_none());
        d.advance([("contacts".to_owned(), 5)].into());
        d.advance([("contacts".to_owned(), 4), ("services".to_owned(), 1)].into());
        let v = d.current().expect("versions");
        assert_eq!(v.get("contacts"), Some(&5));
        assert_eq!(v.get("services"), Some(&1));
        d.forget();
        assert!(d.current().is_none());
    }
}
