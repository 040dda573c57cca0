//! Request rate limits, answered 429 with `Retry-After` (issue 19, row 2):
//!
//! - **refusals per address** (on by default, `--refusals-per-address`, 50
//!   a second): an address whose requests keep being refused for want of a
//!   valid credential (401, and webhook deliveries refused before their
//!   signature checks out) is answered 429 for everything until its budget
//!   refills, so guessing keys or flooding webhook endpoints costs the
//!   service almost nothing; callers with valid credentials never spend it;
//! - **requests per address** (`--rate-limit-per-address`, off by default:
//!   a policy decision point often serves a few busy callers);
//! - **requests per API key** (`--rate-limit-per-key`, off by default),
//!   checked once the key is known.
//!
//! GCRA buckets from `governor`, one per address or key, pruned every
//! minute of those that are full again, so memory follows the active set.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Addresses blocked at once, at most: a flood from many addresses is
/// limited per address anyway; beyond this the oldest blocks are dropped.
const MAX_BLOCKED: usize = 100_000;

/// The configured limits, each `None` when off.
#[derive(Debug, Default)]
pub struct Throttle {
    refusals: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses over their refusal budget, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// How many `blocked` holds, read without the lock on every request.
    blocked_count: AtomicUsize,
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<String>>,
}

/// A bucket of `per_second`, bursting to twice that.
fn limiter<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

/// How long until `limiter` lets `key` through again, if it does not now.
fn wait<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Option<Duration> {
    limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl Throttle {
    /// Limits in requests per second; 0 turns one off.
    pub fn new(refusals_per_address: u32, per_address: u32, per_key: u32) -> Self {
        Self {
            refusals: limiter(refusals_per_address),
            blocked: Mutex::default(),
            blocked_count: AtomicUsize::new(0),
            per_address: limiter(per_address),
            per_key: limiter(per_key),
        }
    }

    /// Whether a request from `ip` may go on; how long to wait if not.
    pub fn admit_address(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.blocked_count.load(Ordering::Relaxed) > 0
            && let Ok(mut blocked) = self.blocked.lock()
            && let Some(until) = blocked.get(&ip).copied()
        {
            match until.checked_duration_since(Instant::now()) {
                Some(left) => return Err(left),
                None => {
                    blocked.remove(&ip);
                    self.blocked_count.store(blocked.len(), Ordering::Relaxed);
                }
            }
        }
        match self.per_address.as_ref().and_then(|l| wait(l, &ip)) {
            Some(left) => Err(left),
            None => Ok(()),
        }
    }

    /// Counts a refusal for want of a credential against `ip`; past the
    /// budget the address is blocked until it refills.
    pub fn refused(&self, ip: IpAddr) {
        let Some(left) = self.refusals.as_ref().and_then(|l| wait(l, &ip)) else { return };
        if let Ok(mut blocked) = self.blocked.lock() {
            if blocked.len() >= MAX_BLOCKED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            if blocked.len() < MAX_BLOCKED {
                blocked.insert(ip, Instant::now() + left.max(Duration::from_millis(100)));
            }
            self.blocked_count.store(blocked.len(), Ordering::Relaxed);
        }
    }

    /// Whether a request with API key `id` may go on; how long to wait if not.
    pub fn admit_key(&self, id: &str) -> Result<(), Duration> {
        match self.per_key.as_ref().and_then(|l| wait(l, &id.to_owned())) {
            Some(left) => Err(left),
            None => Ok(()),
        }
    }

    /// Forgets buckets that are full again and blocks that have expired.
    pub fn prune(&self) {
        for limiter in [&self.refusals, &self.per_address].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            self.blocked_count.store(blocked.len(), Ordering::Relaxed);
        }
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after(wait: Duration) -> u16 {
    u16::try_from(wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1)).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_refusal_budget_is_blocked_and_others_are_not() {
        let t = Throttle::new(5, 0, 0);
        let (bad, good): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..10 {
            assert!(t.admit_address(bad).is_ok(), "the burst (2 × 5) is allowed");
            t.refused(bad);
        }
        t.refused(bad);
        let wait = t.admit_address(bad).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(retry_after(wait), 1);
        assert!(t.admit_address(good).is_ok());
        assert!(t.admit_key("k").is_ok(), "no per-key limit configured");
    }

    #[test]
    fn per_key_limits_apply_per_key() {
        let t = Throttle::new(0, 0, 1);
        assert!(t.admit_key("a").is_ok() && t.admit_key("a").is_ok());
        assert!(t.admit_key("a").is_err());
        assert!(t.admit_key("b").is_ok());
    }
}
