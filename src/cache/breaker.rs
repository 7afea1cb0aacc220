//! A circuit breaker for Redis: after `failures` failed calls in a row, no
//! call is made for `open_for`; then one call may try (half open), and its
//! outcome closes the breaker or opens it again. A request never waits on a
//! Redis that is known to be away.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    opened_at: Option<Instant>,
    /// A half-open trial is under way: others stay away until it ends.
    trial: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            open_for,
            inner: Mutex::new(Inner { failures: 0, opened_at: None, trial: false }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go to Redis now.
    pub fn allow(&self) -> bool {
        let mut s = self.lock();
        match s.opened_at {
            None => true,
            Some(at) if at.elapsed() >= self.open_for && !s.trial => {
                s.trial = true;
                true
            }
            Some(_) => false,
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.opened_at = None;
        s.trial = false;
    }

    pub fn failure(&self) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        if s.trial || s.failures >= self.threshold {
            s.opened_at = Some(Instant::now());
        }
        s.trial = false;
    }

    pub fn state(&self) -> State {
        let s = self.lock();
        match s.opened_at {
            None => State::Closed,
            Some(_) if s.trial => State::HalfOpen,
            Some(at) if at.elapsed() >= self.open_for => State::HalfOpen,
            Some(_) => State::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_lets_one_trial_through() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(b.allow());
            b.failure();
        }
        assert_eq!(b.state(), State::Closed);
        assert!(b.allow());
        b.failure();
        assert_eq!(b.state(), State::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one trial after the open period");
        assert!(!b.allow(), "only one");
        b.failure();
        assert_eq!(b.state(), State::Open, "a failed trial opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert!(b.allow() && b.allow());
    }
}
