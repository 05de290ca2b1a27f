//! The invalidation feed (docs/operations.md, caching and invalidation): subscribers that receive one message
//! per policy revision and drop exactly what changed from the decision
//! cache, and the bridge that publishes those messages for the postgres
//! store.
//!
//! - [`message`]: the wire contract;
//! - [`apply`]: revision bookkeeping and per-kind invalidation (pure);
//! - [`redis`], [`nats`]: subscribers; each flushes on every (re)connect
//!   and keeps `loggate_invalidation_feed_up` and the cache's push health
//!   current (while down, cached answers older than `max_staleness` are
//!   recomputed from the store);
//! - [`bridge`]: Postgres `LISTEN loggate_policy` -> feed messages.

pub mod apply;
pub mod bridge;
pub mod message;
pub mod nats;
pub mod redis;

use crate::cache::DecisionCache;
use crate::config::{Feed, InvalidationConfig};
use crate::metrics::Metrics;
use crate::policy::Store;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// What a subscriber reports about its connection, and what it asks the
/// store when it (re)connects.
#[derive(Clone)]
pub struct FeedHealth {
    cache: Arc<DecisionCache>,
    metrics: Arc<Metrics>,
    /// The store, when its revisions are the feed's (postgres).
    store: Option<Arc<Store>>,
}

impl FeedHealth {
    pub fn new(cache: Arc<DecisionCache>, metrics: Arc<Metrics>, store: Option<Arc<Store>>) -> Self {
        let store = store.filter(|s| matches!(**s, Store::Postgres(_)));
        FeedHealth { cache, metrics, store }
    }

    /// The store's committed revision, read BEFORE a reconnect flush: every
    /// change up to it is then covered by the flush, so the subscriber can
    /// skip their (possibly lost) messages and report that revision.
    /// `None` when the store has no feed revisions or cannot answer.
    pub async fn store_revision(&self) -> Option<u64> {
        match self.store.as_deref() {
            Some(Store::Postgres(pg)) => pg.revision().await.ok(),
            _ => None,
        }
    }

    /// Subscribed and receiving: pushed invalidations can be trusted.
    pub fn up(&self) {
        self.metrics.invalidation_feed_up.set(1);
        self.cache.set_push_healthy(true);
    }

    /// Not receiving: cached answers are bounded by `max_staleness`.
    pub fn down(&self) {
        self.metrics.invalidation_feed_up.set(0);
        self.cache.set_push_healthy(false);
    }
}

/// Starts the configured subscriber (`feed = "redis" | "nats"`); `None` for
/// `feed = "none"`. The feed starts down; it reports up once subscribed.
pub fn spawn(
    config: &InvalidationConfig,
    cache: Arc<DecisionCache>,
    metrics: Arc<Metrics>,
    store: Option<Arc<Store>>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let health = FeedHealth::new(cache.clone(), metrics.clone(), store);
    let applier = apply::Applier::new(cache, metrics);
    let task = match config.feed {
        Feed::None => return Ok(None),
        Feed::Redis => {
            let subscriber = redis::Subscriber::new(&config.url, &config.channel)?;
            health.down();
            tokio::spawn(subscriber.run(applier, health))
        }
        Feed::Nats => {
            let subscriber = nats::Subscriber::new(&config.url, &config.channel);
            health.down();
            tokio::spawn(subscriber.run(applier, health))
        }
    };
    Ok(Some(task))
}

/// Milliseconds since the Unix epoch (the clock `committed_at_ms` uses).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Exponential reconnect delays: 100 ms doubling to 5 s, reset on success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay before the next attempt.
    pub fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
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

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new();
        let steps: Vec<u128> = (0..8).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.step(), Duration::from_millis(100));
    }
}
