//! Rate limits (contract: Configuration `[limits]`): per token and per organization
//! (governor keyed GCRA limiters), and a per-client-address budget of failed
//! authentications so tokens cannot be brute-forced. Keyed state is pruned
//! periodically (`retain_recent`), so it does not grow without bound.

use crate::config::LimitsConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A refused request and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

pub struct Limits {
    per_token: Option<DefaultKeyedRateLimiter<Arc<str>>>,
    per_org: Option<DefaultKeyedRateLimiter<Arc<str>>>,
    auth_failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that exhausted their failure budget, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Whether `blocked` has entries (kept under its lock): every request
    /// asks, and usually nobody is blocked, so it need not take the lock
    /// (one lock shared by all workers).
    any_blocked: AtomicBool,
    clock: DefaultClock,
}

fn quota_per_second(rps: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rps)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Limits {
            per_token: quota_per_second(config.per_token_rps, config.per_token_burst).map(governor::RateLimiter::keyed),
            per_org: quota_per_second(config.per_org_rps, config.per_org_burst).map(governor::RateLimiter::keyed),
            auth_failures: NonZeroU32::new(config.auth_failures_per_minute)
                .map(|n| governor::RateLimiter::keyed(Quota::per_minute(n))),
            blocked: Mutex::new(HashMap::new()),
            any_blocked: AtomicBool::new(false),
            clock: DefaultClock::default(),
        }
    }

    fn check<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Option<DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), Limited> {
        match limiter {
            Some(l) => l
                .check_key(key)
                .map_err(|not_until| Limited { retry_after: not_until.wait_time_from(self.clock.now()) }),
            None => Ok(()),
        }
    }

    /// Whether any per-token or per-organization limit is configured.
    pub fn limits_requests(&self) -> bool {
        self.per_token.is_some() || self.per_org.is_some()
    }

    /// One authorized request of `token_id` in `org_id`.
    pub fn check_request(&self, token_id: &Arc<str>, org_id: &Arc<str>) -> Result<(), Limited> {
        self.check(&self.per_token, token_id)?;
        self.check(&self.per_org, org_id)
    }

    /// Whether `addr` is currently blocked for failing authentication.
    pub fn auth_blocked(&self, addr: IpAddr) -> Result<(), Limited> {
        if !self.any_blocked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut blocked = self.blocked.lock();
        let result = match blocked.get(&addr) {
            Some(until) if *until > Instant::now() => Err(Limited { retry_after: *until - Instant::now() }),
            Some(_) => {
                blocked.remove(&addr);
                Ok(())
            }
            None => Ok(()),
        };
        self.any_blocked.store(!blocked.is_empty(), Ordering::Release);
        result
    }

    /// Records a failed authentication from `addr`; past the budget the
    /// address is blocked until the budget refills by one.
    pub fn auth_failed(&self, addr: IpAddr) -> Result<(), Limited> {
        let Err(limited) = self.check(&self.auth_failures, &addr) else {
            return Ok(());
        };
        let mut blocked = self.blocked.lock();
        blocked.insert(addr, Instant::now() + limited.retry_after);
        self.any_blocked.store(true, Ordering::Release);
        Err(limited)
    }

    /// Drops idle keyed state; call periodically.
    pub fn prune(&self) {
        for l in [&self.per_token, &self.per_org].into_iter().flatten() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.auth_failures {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = Instant::now();
        let mut blocked = self.blocked.lock();
        blocked.retain(|_, until| *until > now);
        self.any_blocked.store(!blocked.is_empty(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_limit_refuses_past_burst_with_retry_after() {
        let l = Limits::new(&LimitsConfig { per_token_rps: 1, per_token_burst: 2, ..LimitsConfig::default() });
        let (t, o): (Arc<str>, Arc<str>) = ("t".into(), "o".into());
        assert!(l.check_request(&t, &o).is_ok());
        assert!(l.check_request(&t, &o).is_ok());
        let e = l.check_request(&t, &o).unwrap_err();
        assert!(e.retry_after > Duration::ZERO && e.retry_after <= Duration::from_secs(1));
        assert!(l.check_request(&"other".into(), &o).is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let l = Limits::new(&LimitsConfig { auth_failures_per_minute: 0, ..LimitsConfig::default() });
        for _ in 0..1000 {
            assert!(l.check_request(&"t".into(), &"o".into()).is_ok());
            assert!(l.auth_failed("127.0.0.1".parse().unwrap()).is_ok());
        }
    }

    #[test]
    fn auth_failures_block_the_address_only() {
        let l = Limits::new(&LimitsConfig { auth_failures_per_minute: 3, ..LimitsConfig::default() });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.auth_failed(a).is_ok());
        }
        assert!(l.auth_failed(a).is_err());
        assert!(l.auth_blocked(a).is_err());
        assert!(l.auth_blocked("10.0.0.2".parse().unwrap()).is_ok());
        l.prune();
    }

    #[test]
    fn a_block_ends_when_the_budget_refills() {
        // 600 a minute: one more failure is allowed 100 ms later, so the
        // block is seen even on a busy machine, and over after 250 ms.
        let l = Limits::new(&LimitsConfig { auth_failures_per_minute: 600, ..LimitsConfig::default() });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        while l.auth_failed(a).is_ok() {}
        assert!(l.auth_blocked(a).is_err());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.auth_blocked(a).is_ok());
        assert!(!l.any_blocked.load(Ordering::Acquire), "nobody left blocked: requests skip the lock again");
        assert!(l.auth_failed(a).is_ok());
    }
}
