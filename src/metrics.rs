//! Prometheus metrics (text format at /metrics).

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Operation names are chosen by clients: past this many distinct names the
/// label becomes "other", so a client cannot blow up the series count.
const MAX_OPERATION_LABELS: usize = 200;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    policy_queries: Histogram,
    denials: IntCounterVec,
    pub audit: AuditMetrics,
    pub cache: CacheMetrics,
    seen_operations: Mutex<HashSet<String>>,
}

/// The audit writer's figures: how much it stores, in how large commits, how
/// fast, and how often a request failed closed because it could not.
#[derive(Clone)]
pub struct AuditMetrics {
    events: prometheus::IntCounter,
    batch_events: Histogram,
    commit_seconds: Histogram,
    commit_paths: IntCounterVec,
    failures: IntCounterVec,
}

/// How the writer committed a batch: in one statement after the tail it
/// knew, or in a transaction that read the tail (first batch, after another
/// writer appended, after an error).
pub const AUDIT_COMMIT_PATHS: [&str; 2] = ["one_statement", "transaction"];

impl AuditMetrics {
    fn new(registry: &Registry) -> anyhow::Result<Self> {
        let events = prometheus::IntCounter::new(
            "kasvu_audit_events_total",
            "Audit events committed to the hash chain",
        )?;
        let batch_events = histogram(
            registry,
            "kasvu_audit_batch_events",
            "Events per audit commit (group commit of concurrent requests)",
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0, 1000.0, 5000.0],
        )?;
        let commit_seconds = histogram(
            registry,
            "kasvu_audit_commit_seconds",
            "Time to commit one batch of audit events",
            vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
        )?;
        let commit_paths = IntCounterVec::new(
            Opts::new(
                "kasvu_audit_commits_total",
                "Audit commits by path: one statement after the tail this writer knew, or a \
                 transaction that read the tail (another writer had appended)",
            ),
            &["path"],
        )?;
        for path in AUDIT_COMMIT_PATHS {
            commit_paths.with_label_values(&[path]);
        }
        let failures = IntCounterVec::new(
            Opts::new(
                "kasvu_audit_failures_total",
                "Requests failed closed because their audit events were not stored, by reason",
            ),
            &["reason"],
        )?;
        // Every reason the writer reports exists from the start, at 0, so a
        // dashboard's rate() has a series before the first failure.
        for reason in ["queue_full", "stopped", "timeout", "store"] {
            failures.with_label_values(&[reason]);
        }
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(commit_paths.clone()))?;
        Ok(AuditMetrics { events, batch_events, commit_seconds, commit_paths, failures })
    }

    pub fn batch(&self, events: usize) {
        self.events.inc_by(events as u64);
        self.batch_events.observe(events as f64);
    }

    /// `path` is one of [`AUDIT_COMMIT_PATHS`].
    pub fn committed(&self, path: &str, seconds: f64) {
        self.commit_seconds.observe(seconds);
        self.commit_paths.with_label_values(&[path]).inc();
    }

    /// Audit transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.batch_events.get_sample_count()
    }

    pub fn failed(&self, reason: &str) {
        self.failures.with_label_values(&[reason]).inc();
    }
}

/// The response cache's figures (docs/cache.md): lookups by tier and
/// outcome, why requests bypassed it, stores, invalidations, Redis's latency
/// and errors, the breaker and the data-version listener.
#[derive(Clone)]
pub struct CacheMetrics {
    lookups: IntCounterVec,
    bypasses: IntCounterVec,
    stores: prometheus::IntCounter,
    invalidations: prometheus::IntCounter,
    redis_seconds: HistogramVec,
    redis_errors: IntCounterVec,
    breaker_open: prometheus::IntGauge,
    listening: prometheus::IntGauge,
}

/// Why a request did not use the cache: a closed set, each a series from the start.
pub const BYPASS_REASONS: [&str; 7] = [
    "disabled",
    "versions_unknown",
    "not_a_query",
    "unversioned_read",
    "error",
    "too_large",
    "redis_skipped",
];

impl CacheMetrics {
    fn new(registry: &Registry) -> anyhow::Result<Self> {
        let lookups = IntCounterVec::new(
            Opts::new("kasvu_cache_lookups_total", "Response cache lookups by tier and result"),
            &["tier", "result"],
        )?;
        for tier in ["local", "redis"] {
            for result in ["hit", "miss"] {
                lookups.with_label_values(&[tier, result]);
            }
        }
        let bypasses = IntCounterVec::new(
            Opts::new(
                "kasvu_cache_bypass_total",
                "Requests answered without the cache (or not stored in it), by reason",
            ),
            &["reason"],
        )?;
        for r in BYPASS_REASONS {
            bypasses.with_label_values(&[r]);
        }
        let stores =
            prometheus::IntCounter::new("kasvu_cache_stores_total", "Answers stored in the cache")?;
        let invalidations = prometheus::IntCounter::new(
            "kasvu_cache_invalidations_total",
            "Change announcements received from the database (each moves a table's version)",
        )?;
        let redis_seconds = HistogramVec::new(
            HistogramOpts::new("kasvu_cache_redis_seconds", "Redis call latency by operation")
                .buckets(vec![0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]),
            &["op"],
        )?;
        let redis_errors = IntCounterVec::new(
            Opts::new("kasvu_cache_redis_errors_total", "Failed Redis calls by kind"),
            &["kind"],
        )?;
        for k in ["error", "timeout"] {
            redis_errors.with_label_values(&[k]);
        }
        let breaker_open = prometheus::IntGauge::new(
            "kasvu_cache_redis_breaker_open",
            "1 while the Redis circuit breaker is open (requests skip Redis)",
        )?;
        let listening = prometheus::IntGauge::new(
            "kasvu_cache_listening",
            "1 while the data-version listener is connected (else the cache is bypassed)",
        )?;
        registry.register(Box::new(lookups.clone()))?;
        registry.register(Box::new(bypasses.clone()))?;
        registry.register(Box::new(stores.clone()))?;
        registry.register(Box::new(invalidations.clone()))?;
        registry.register(Box::new(redis_seconds.clone()))?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(breaker_open.clone()))?;
        registry.register(Box::new(listening.clone()))?;
        Ok(CacheMetrics {
            lookups,
            bypasses,
            stores,
            invalidations,
            redis_seconds,
            redis_errors,
            breaker_open,
            listening,
        })
    }

    pub fn lookup(&self, tier: crate::cache::Tier, hit: bool) {
        self.lookups.with_label_values(&[tier.as_str(), if hit { "hit" } else { "miss" }]).inc();
    }

    /// `reason` is one of [`BYPASS_REASONS`].
    pub fn bypass(&self, reason: &'static str) {
        self.bypasses.with_label_values(&[reason]).inc();
    }

    pub fn stored(&self) {
        self.stores.inc();
    }

    pub fn invalidations(&self, n: u64) {
        self.invalidations.inc_by(n);
    }

    pub fn redis_latency(&self, op: &'static str, seconds: f64) {
        self.redis_seconds.with_label_values(&[op]).observe(seconds);
    }

    pub fn redis_error(&self, kind: &'static str) {
        self.redis_errors.with_label_values(&[kind]).inc();
    }

    pub fn redis_skipped(&self) {
        self.bypass("redis_skipped");
    }

    pub fn breaker(&self, open: bool) {
        self.breaker_open.set(i64::from(open));
    }

    pub fn listening(&self, on: bool) {
        self.listening.set(i64::from(on));
    }

    /// Hits so far, both tiers (tests and benchmarks).
    pub fn hits(&self) -> u64 {
        ["local", "redis"].iter().map(|t| self.lookups.with_label_values(&[t, "hit"]).get()).sum()
    }
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("kasvu_graphql_requests_total", "GraphQL requests by operation and outcome"),
            &["operation", "outcome"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "kasvu_graphql_request_duration_seconds",
                "GraphQL request latency by operation",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["operation"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let policy_queries = histogram(
            &registry,
            "kasvu_policy_queries_per_request",
            "Policy queries one GraphQL request cost (0 when every decision was memoized)",
            vec![0.0, 1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0],
        )?;
        let denials = IntCounterVec::new(
            Opts::new(
                "kasvu_denials_total",
                "Decisions that denied (audit events with allowed = false), by the rule that denied",
            ),
            &["rule"],
        )?;
        registry.register(Box::new(denials.clone()))?;
        let audit = AuditMetrics::new(&registry)?;
        let cache = CacheMetrics::new(&registry)?;
        Ok(Metrics {
            denials,
            audit,
            cache,
            registry,
            requests,
            latency,
            policy_queries,
            seen_operations: Mutex::new(HashSet::new()),
        })
    }

    fn label(&self, operation: Option<&str>) -> String {
        let Some(name) = operation
            .filter(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        else {
            return "anonymous".to_owned();
        };
        let Ok(mut seen) = self.seen_operations.lock() else {
            return "other".to_owned();
        };
        if seen.contains(name)
            || (seen.len() < MAX_OPERATION_LABELS && seen.insert(name.to_owned()))
        {
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// A denial, by each rule it names (rule names come from the policy,
    /// a finite set).
    pub fn observe_denial<'a>(&self, rules: impl IntoIterator<Item = &'a str>) {
        for rule in rules {
            self.denials.with_label_values(&[rule]).inc();
        }
    }

    pub fn observe_policy_queries(&self, queries: u64) {
        self.policy_queries.observe(queries as f64);
    }

    pub fn observe(&self, operation: Option<&str>, outcome: &str, seconds: f64) {
        let op = self.label(operation);
        self.requests.with_label_values(&[op.as_str(), outcome]).inc();
        self.latency.with_label_values(&[op.as_str()]).observe(seconds);
    }

    /// The registry in text format, plus counters kept outside it.
    pub fn render(&self, db_statements: u64, policy_queries: u64, policy_seconds: f64) -> String {
        let mut out =
            TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default();
        let mut counter = |name: &str, help: &str, value: String| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        };
        counter(
            "kasvu_db_statements_total",
            "SQL statements sent to PostgreSQL",
            db_statements.to_string(),
        );
        counter(
            "kasvu_policy_queries_total",
            "Policy queries asked of the Polar engine (memoized decisions ask none)",
            policy_queries.to_string(),
        );
        counter(
            "kasvu_policy_seconds_total",
            "Time spent in policy queries",
            format!("{policy_seconds:.6}"),
        );
        out
    }

    /// Gauges read at scrape time: the pool and the audit writer's queue.
    pub fn render_gauges(&self, out: &mut String, pool: &Gauges) {
        let mut gauge = |name: &str, help: &str, values: &[(&str, usize)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, value) in values {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        gauge(
            "kasvu_db_pool_connections",
            "The request pool's connections: open, idle (available), and the most it opens",
            &[
                ("{state=\"open\"}", pool.open),
                ("{state=\"idle\"}", pool.idle),
                ("{state=\"max\"}", pool.max),
            ],
        );
        gauge(
            "kasvu_db_pool_waiting",
            "Requests waiting for a pooled connection",
            &[("", pool.waiting)],
        );
        gauge(
            "kasvu_audit_queue",
            "Requests whose audit events wait for the writer",
            &[("", pool.audit_queue)],
        );
    }
}

/// What /metrics reads off the pool and the audit writer when scraped.
pub struct Gauges {
    pub open: usize,
    pub idle: usize,
    pub max: usize,
    pub waiting: usize,
    pub audit_queue: usize,
}

/// A histogram with its buckets, registered.
fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> anyhow::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}
