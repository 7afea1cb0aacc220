//! Per-actor rate limiting (docs/cache.md): a GCRA bucket per organisation
//! and person, kept in Redis so every replica draws on the same bucket, and
//! in this process while Redis is unreachable (then each replica limits on
//! its own). Limits are set per organisation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::RedisTier;

/// Requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_sec: f64,
    pub burst: u32,
}

impl Limit {
    /// GCRA's emission interval and tolerance, in microseconds.
    fn gcra(self) -> (i64, i64) {
        let interval = (1e6 / self.per_sec).round().max(1.0) as i64;
        (interval, interval * i64::from(self.burst.max(1) - 1))
    }
}

/// `TEM=100:200,MMM=5:10`: per organisation, requests per second and burst.
pub fn parse_limits(text: &str) -> Result<HashMap<String, Limit>, String> {
    let mut out = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once('=').and_then(|(org, l)| {
            let (rate, burst) = l.split_once(':')?;
            Some((org.trim().to_owned(), rate.trim().parse().ok()?, burst.trim().parse().ok()?))
        });
        match parsed {
            Some((org, per_sec, burst)) if per_sec >= 0.0 && !org.is_empty() => {
                out.insert(org, Limit { per_sec, burst });
            }
            _ => return Err(format!("{part:?} is not ORG=PER_SEC:BURST")),
        }
    }
    Ok(out)
}

/// The bucket in Redis, on Redis's clock: the theoretical arrival time (µs)
/// per key; answers {1, 0} (allowed) or {0, µs to wait}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then
  return {0, tat - tolerance - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
";

pub struct RateLimiter {
    default: Limit,
    per_org: HashMap<String, Limit>,
    redis: Option<RedisTier>,
    /// The in-process buckets (µs since `epoch`), used while Redis is away.
    local: Mutex<HashMap<String, i64>>,
    epoch: Instant,
}

impl RateLimiter {
    pub fn new(default: Limit, per_org: HashMap<String, Limit>, redis: Option<RedisTier>) -> Self {
        RateLimiter {
            default,
            per_org,
            redis,
            local: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// `Err(wait)` when the actor has used up their bucket.
    pub async fn check(&self, org: &str, sub: &str) -> Result<(), Duration> {
        let limit = self.per_org.get(org).copied().unwrap_or(self.default);
        if limit.per_sec <= 0.0 {
            return Ok(());
        }
        let (interval, tolerance) = limit.gcra();
        let key = format!("{org}:{sub}");
        let decided = match &self.redis {
            Some(redis) => redis.gcra(GCRA, &key, interval, tolerance).await,
            None => None,
        };
        let (allowed, wait_us) = decided.unwrap_or_else(|| self.local(&key, interval, tolerance));
        if allowed {
            Ok(())
        } else {
            Err(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
        }
    }

    fn local(&self, key: &str, interval: i64, tolerance: i64) -> (bool, i64) {
        let now = i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX);
        let mut buckets = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Idle buckets are full ones: dropping them changes no decision.
            buckets.retain(|_, tat| *tat > now);
        }
        let tat = buckets.get(key).copied().unwrap_or(now).max(now);
        if now < tat - tolerance {
            return (false, tat - tolerance - now);
        }
        buckets.insert(key.to_owned(), tat + interval);
        (true, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_per_organisation() {
        let l = parse_limits("TEM=100:200, MMM=0.5:1").expect("limits");
        assert_eq!(l["TEM"], Limit { per_sec: 100.0, burst: 200 });
        assert_eq!(l["MMM"], Limit { per_sec: 0.5, burst: 1 });
        assert!(parse_limits("TEM=100").is_err());
        assert!(parse_limits("=1:1").is_err());
        assert!(parse_limits("").expect("none").is_empty());
    }

    #[tokio::test]
    async fn the_local_bucket_allows_the_burst_then_one_per_interval() {
        let r = RateLimiter::new(Limit { per_sec: 10.0, burst: 3 }, HashMap::new(), None);
        for _ in 0..3 {
            assert!(r.check("TEM", "a").await.is_ok());
        }
        let wait = r.check("TEM", "a").await.expect_err("over the burst");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(r.check("TEM", "b").await.is_ok(), "another person has a bucket of their own");
        tokio::time::sleep(wait + Duration::from_millis(5)).await;
        assert!(r.check("TEM", "a").await.is_ok());
    }
}
