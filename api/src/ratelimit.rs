//! Per-API-key request rate limits: a token bucket per key, refilled continuously at the key's
//! `rate_limit_per_minute` with a burst of the same size. In-process: behind a load balancer each
//! instance enforces the limit on its share of the traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets of every key seen, shared by the server's tasks.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<Uuid, Bucket>>>,
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket at `now`; `Err(wait)` when it is empty, with how long
    /// until a request would be admitted.
    pub fn check(&self, key: Uuid, per_minute: u32, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget full buckets (idle keys) rather than grow without bound.
            buckets.retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() * per_sec < capacity);
        }
        let b = buckets.entry(key).or_insert(Bucket { tokens: capacity, at: now });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * per_sec;
        b.tokens = (b.tokens + refill).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let rl = RateLimiter::default();
        let (key, t0) = (Uuid::nil(), Instant::now());
        assert!((0..60).all(|_| rl.check(key, 60, t0).is_ok()), "a full minute's burst");
        let wait = rl.check(key, 60, t0).err().unwrap_or_default();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(rl.check(key, 60, t0 + Duration::from_millis(1001)).is_ok(), "one per second refills");
        assert!(rl.check(key, 60, t0 + Duration::from_millis(1002)).is_err());
        assert!(rl.check(Uuid::max(), 60, t0).is_ok(), "keys do not share buckets");
    }
}
