//! The invalidation feed (docs/operations.md, caching and invalidation):
//! subscribers that receive one message per policy revision and drop
//! exactly what changed from the decision cache, the catch-up from the
//! store's change log when messages may have been missed, and the bridge
//! that publishes those messages for the postgres store.
//!
//! - [`message`]: the wire contract;
//! - [`apply`]: revision bookkeeping and per-kind invalidation (pure);
//! - [`follow`]: one replica's state: feed health, when the cache may
//!   trust the feed, what a catch-up starts from;
//! - [`poll`]: the one task that reads the change log: when revisions may
//!   have been missed (a reconnect, a gap, an unreadable message), and
//!   every `max_staleness / 2` (at most 1 s) while the feed is down, so
//!   cached answers stay current without being recomputed;
//! - [`redis`], [`nats`]: subscribers; they report (re)connects, messages
//!   and losses to the follower. With the file store (no change log) a
//!   (re)connect or a loss flushes the cache;
//! - [`bridge`]: Postgres `LISTEN loggate_policy` -> feed messages.

pub mod apply;
pub mod bridge;
pub mod follow;
pub mod message;
pub mod nats;
pub mod poll;
pub mod redis;

use crate::cache::DecisionCache;
use crate::config::{Feed, InvalidationConfig};
use crate::metrics::Metrics;
use crate::policy::{PolicyStore, Store};
use follow::Follower;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Starts what keeps the cache in step with the store: for the postgres
/// store the change-log poller (also with `feed = "none"`: then it is the
/// only source of invalidations), and the configured subscriber
/// (`feed = "redis" | "nats"`), whose task is returned. The feed starts
/// down; it reports up once subscribed.
pub fn spawn(
    config: &InvalidationConfig,
    cache: Arc<DecisionCache>,
    metrics: Arc<Metrics>,
    store: Option<Arc<Store>>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let logged = store.filter(|s| matches!(**s, Store::Postgres(_)));
    let follower = Arc::new(match &logged {
        // Read before anything was cached: changes after it are caught up.
        Some(store) => Follower::with_log(cache, metrics, store.revision()),
        None => Follower::without_log(cache, metrics),
    });
    if let Some(store) = logged {
        tokio::spawn(poll::run(follower.clone(), poll::StoreLog(store), poll::interval(config.max_staleness)));
    }
    let task = match config.feed {
        Feed::None => return Ok(None),
        Feed::Redis => {
            let subscriber = redis::Subscriber::new(&config.url, &config.channel)?;
            follower.down();
            tokio::spawn(subscriber.run(follower))
        }
        Feed::Nats => {
            let subscriber = nats::Subscriber::new(&config.url, &config.channel);
            follower.down();
            tokio::spawn(subscriber.run(follower))
        }
    };
    Ok(Some(task))
}

/// Reconnect delays with equal jitter: attempt `n` (from 0) waits a random
/// time between half and all of `100 ms * 2^n`, capped at 5 s (50-100 ms,
/// 100-200 ms, ... 2.5-5 s); reset on success. Random so that a fleet that
/// lost its feed at the same moment does not reconnect in lockstep (why
/// `fastrand`: docs/decisions/reconnect-backoff.md).
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Backoff { attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt.
    pub fn step(&mut self) -> Duration {
        let d = Self::delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// The delay before attempt `n` (from 0), for clients that count their
    /// own attempts (async-nats).
    pub fn delay(n: u32) -> Duration {
        let base = Self::FIRST.saturating_mul(1 << n.min(6)).min(Self::MAX);
        base / 2 + (base / 2).mul_f64(fastrand::f64())
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The step `n` (from 0) is meant to take: `100 ms * 2^n` capped at 5 s.
    fn base(n: usize) -> Duration {
        Duration::from_millis(100 << n.min(6)).min(Duration::from_secs(5))
    }

    fn steps(b: &mut Backoff, n: usize) -> Vec<Duration> {
        (0..n).map(|_| b.step()).collect()
    }

    #[test]
    fn backoff_delays_stay_within_half_and_all_of_their_step() {
        for _ in 0..200 {
            let mut b = Backoff::new();
            for (n, d) in steps(&mut b, 12).into_iter().enumerate() {
                assert!(base(n) / 2 <= d && d <= base(n), "step {n}: {d:?}");
            }
        }
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut b = Backoff::new();
        let s = steps(&mut b, 10);
        // Each uncapped step starts where the one before ends.
        assert!(s[..6].windows(2).all(|w| w[0] <= w[1]), "{s:?}");
        assert!(s[0] < Duration::from_millis(100) + Duration::from_nanos(1));
        assert!(s[6..].iter().all(|d| *d >= Duration::from_millis(2500)), "{s:?}");
    }

    #[test]
    fn backoff_resets_on_success() {
        let mut b = Backoff::new();
        steps(&mut b, 8);
        b.reset();
        assert!(b.step() <= Duration::from_millis(100));
        assert!(b.step() <= Duration::from_millis(200));
    }

    #[test]
    fn two_backoffs_draw_different_delays() {
        let (mut a, mut b) = (Backoff::new(), Backoff::new());
        assert_ne!(steps(&mut a, 8), steps(&mut b, 8));
    }

    #[test]
    fn a_fleet_does_not_reconnect_in_lockstep() {
        // 1,000 subscribers that lost the feed together, at their 8th attempt
        // (each waiting 2.5-5 s): at most a few land in the same 10 ms.
        let mut per_slot = std::collections::HashMap::<u128, u32>::new();
        for _ in 0..1000 {
            let mut b = Backoff::new();
            let at: Duration = steps(&mut b, 8).into_iter().sum();
            *per_slot.entry(at.as_millis() / 10).or_default() += 1;
        }
        let busiest = per_slot.values().max().copied().unwrap_or(0);
        assert!(busiest <= 20, "{busiest} of 1000 reconnect within the same 10 ms");
        assert!(per_slot.len() >= 250, "{} distinct 10 ms slots", per_slot.len());
    }
}
