//! Per-integration token buckets, so one runaway PBX cannot take a gateway from the others.
//! Each gateway limits on its own: with N gateways an integration may get up to N times the
//! rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `None` when `per_sec` is 0: no limit.
    pub fn new(per_sec: f64, burst: u32) -> Option<Self> {
        (per_sec > 0.0).then(|| Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token, or says how long until one is there.
    pub fn check(&self, integration: Uuid) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        let bucket = buckets.entry(integration).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = refilled.min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_the_wait() {
        let limiter = RateLimiter::new(0.5, 2).unwrap();
        let id = Uuid::new_v4();
        assert!(limiter.check(id).is_ok());
        assert!(limiter.check(id).is_ok());
        let wait = limiter.check(id).unwrap_err();
        assert!(
            wait > Duration::from_secs(1) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(
            limiter.check(Uuid::new_v4()).is_ok(),
            "integrations have their own buckets"
        );
    }

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimiter::new(0.0, 10).is_none());
    }
}
