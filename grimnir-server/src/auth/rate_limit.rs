//! Keyed token buckets in memory: per client address, per account, per user.
//!
//! Each key has a bucket of `burst` tokens that refills at one token per `period / burst`; a
//! request takes one token or is refused with the time until the next one. Buckets that have
//! refilled completely are forgotten when the map is full, so memory stays bounded by the number
//! of keys active within one refill time (and by [`MAX_KEYS`] beyond that: when the map is full
//! of busy keys, new keys are refused rather than letting memory grow without bound).
//!
//! The buckets live in one process: several instances each count on their own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys one limiter tracks at once.
pub const MAX_KEYS: usize = 100_000;

/// How many requests, in what time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed at once, after a quiet period.
    pub burst: u32,
    /// Time to earn back all `burst` requests.
    pub period: Duration,
}

impl Quota {
    /// `n` requests per minute, all of them at once if need be.
    pub const fn per_minute(n: u32) -> Self {
        Quota {
            burst: n,
            period: Duration::from_secs(60),
        }
    }

    /// Time to earn one request back.
    fn interval(&self) -> Duration {
        self.period / self.burst.max(1)
    }
}

/// A token bucket per key, kept as the time its bucket is full again (the generic cell rate
/// algorithm): exact arithmetic on `Instant`s, one value per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    quota: Quota,
    full_at: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter giving every key `quota`.
    pub fn new(quota: Quota) -> Self {
        RateLimiter {
            quota,
            full_at: Mutex::new(HashMap::new()),
        }
    }

    /// The quota of every key.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes one request from `key`'s bucket at `now`; when it is empty, returns how long until
    /// the next request is allowed. A refused request takes nothing.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let interval = self.quota.interval();
        // How far ahead of `now` the bucket may be full again and still have a request left.
        let slack = interval * self.quota.burst.max(1).saturating_sub(1);
        // A poisoned lock only means another request panicked mid-update; the map is still a
        // map of instants.
        let mut full_at = self
            .full_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !full_at.contains_key(key) && full_at.len() >= MAX_KEYS {
            full_at.retain(|_, at| *at > now);
            if full_at.len() >= MAX_KEYS {
                return Err(interval);
            }
        }
        let at = full_at.get(key).copied().unwrap_or(now).max(now);
        let limit = now.checked_add(slack).unwrap_or(at);
        if at <= limit {
            full_at.insert(key.clone(), at.checked_add(interval).unwrap_or(at));
            Ok(())
        } else {
            Err(at.duration_since(limit))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(Quota {
            burst: 3,
            period: Duration::from_secs(3),
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&"ip", t0), Ok(()));
        }
        let wait = limiter.check(&"ip", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(990) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Other keys have their own bucket.
        assert_eq!(limiter.check(&"other", t0), Ok(()));
        // One second later, one more request.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.check(&"ip", t1), Ok(()));
        assert!(limiter.check(&"ip", t1).is_err());
        // Refilled completely after the period, never beyond the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.check(&"ip", t2), Ok(()));
        }
        assert!(limiter.check(&"ip", t2).is_err());
    }

    #[test]
    fn refused_requests_do_not_push_the_next_one_back() {
        let limiter = RateLimiter::new(Quota {
            burst: 1,
            period: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(limiter.check(&1, t0).is_ok());
        for s in 1..10 {
            assert!(limiter.check(&1, t0 + Duration::from_secs(s)).is_err());
        }
        assert!(limiter.check(&1, t0 + Duration::from_secs(10)).is_ok());
    }
}
