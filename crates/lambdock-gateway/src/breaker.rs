//! A per-function circuit breaker, as the reference has (section 2.6), with its faults fixed:
//! only sandbox failures count (a crash, a timeout, an init failure, an unreachable worker — not
//! a handled function error, which is the function working as written), a success closes it and
//! resets the count (the reference never resets while closed), and while it is open a caller gets
//! the last failure's answer at once — what Lambda would have answered — instead of a made-up
//! 502, without another worker being started for a function that keeps failing. After the
//! recovery time one call goes through (half-open); its outcome decides.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;

/// Breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive sandbox failures that open the breaker (0 disables it).
    pub threshold: u32,
    /// How long it stays open before a trial call.
    pub recovery: Duration,
}

/// The state, for metrics: 0 closed, 1 open, 2 half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls get the last failure.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

/// The answer replayed while open.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Request id of the failed call (its body names it; replays name theirs).
    pub request_id: String,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    opened_at: Option<Instant>,
    trial: bool,
    last: Option<Failure>,
}

/// What the breaker says about a call.
#[derive(Debug)]
pub enum Admission {
    /// Go ahead.
    Pass,
    /// Answer with this failure.
    Reject(Failure),
}

/// Breakers of every function.
#[derive(Debug)]
pub struct Breakers {
    cfg: BreakerConfig,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Breakers {
    /// Breakers with these settings.
    pub fn new(cfg: BreakerConfig) -> Self {
        Breakers {
            cfg,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call of `function` go ahead?
    pub fn admit(&self, function: &str) -> Admission {
        let mut entries = self.entries();
        let Some(e) = entries.get_mut(function) else {
            return Admission::Pass;
        };
        let (Some(opened), Some(last)) = (e.opened_at, e.last.clone()) else {
            return Admission::Pass;
        };
        if opened.elapsed() >= self.cfg.recovery && !e.trial {
            e.trial = true;
            return Admission::Pass;
        }
        Admission::Reject(last)
    }

    /// Records a call that ran without a sandbox failure.
    pub fn success(&self, function: &str) {
        self.entries().remove(function);
    }

    /// Records a sandbox failure and the answer it gave.
    pub fn failure(&self, function: &str, failure: Failure) {
        if self.cfg.threshold == 0 {
            return;
        }
        let mut entries = self.entries();
        let e = entries.entry(function.to_string()).or_insert(Entry {
            failures: 0,
            opened_at: None,
            trial: false,
            last: None,
        });
        e.failures += 1;
        e.last = Some(failure);
        if e.trial || e.failures >= self.cfg.threshold {
            if e.opened_at.is_none() || e.trial {
                tracing::warn!(
                    function,
                    failures = e.failures,
                    "circuit opened: answering with the last failure until a trial call succeeds"
                );
            }
            e.opened_at = Some(Instant::now());
            e.trial = false;
        }
    }

    /// The state of a function's breaker.
    pub fn state(&self, function: &str) -> BreakerState {
        match self.entries().get(function) {
            Some(Entry { trial: true, .. }) => BreakerState::HalfOpen,
            Some(Entry {
                opened_at: Some(_), ..
            }) => BreakerState::Open,
            _ => BreakerState::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            request_id: "r".into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{\"errorType\":\"Runtime.ExitError\"}"),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_trial() {
        let b = Breakers::new(BreakerConfig {
            threshold: 2,
            recovery: Duration::from_millis(50),
        });
        b.failure("f", failure());
        assert!(matches!(b.admit("f"), Admission::Pass));
        b.success("f");
        b.failure("f", failure());
        assert_eq!(
            b.state("f"),
            BreakerState::Closed,
            "a success resets the count"
        );
        b.failure("f", failure());
        assert_eq!(b.state("f"), BreakerState::Open);
        assert!(matches!(b.admit("f"), Admission::Reject(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            matches!(b.admit("f"), Admission::Pass),
            "one trial after the recovery time"
        );
        assert_eq!(b.state("f"), BreakerState::HalfOpen);
        assert!(
            matches!(b.admit("f"), Admission::Reject(_)),
            "only one trial"
        );
        b.failure("f", failure());
        assert_eq!(b.state("f"), BreakerState::Open, "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(b.admit("f"), Admission::Pass));
        b.success("f");
        assert_eq!(b.state("f"), BreakerState::Closed);
        assert!(matches!(b.admit("other"), Admission::Pass));
    }
}
