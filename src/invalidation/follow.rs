//! The follower: keeps one replica's cache in step with the store's
//! revisions, whatever delivers them (docs/operations.md, caching and
//! invalidation). The subscribers report what the feed does
//! ([`Follower::subscribed`], [`Follower::message`], [`Follower::down`]);
//! when revisions may have been missed, or while the feed is down, the
//! poller (`poll`) reads the store's change log and hands each read to
//! [`Follower::finish`].
//!
//! The cache trusts pushed invalidations (serves entries however old) only
//! after a catch-up that began while the current subscription was live,
//! with nothing lost since it began: from then on every revision after the
//! one it read arrives through the feed. Until then, and while the feed is
//! down, entries are bounded by `max_staleness` after the last successful
//! catch-up ([`DecisionCache::mark_synced`]).
//!
//! Without a change log (the file store) a loss flushes the cache, which
//! is trusted again at once.

use super::apply::{Applier, Outcome};
use crate::cache::DecisionCache;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::policy::postgres::ChangeLog;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

pub struct Follower {
    state: Mutex<State>,
    cache: Arc<DecisionCache>,
    metrics: Arc<Metrics>,
    has_log: bool,
    /// A catch-up is wanted (one permit however many asked: single flight).
    wanted: Notify,
}

struct State {
    applier: Applier,
    subscribed: bool,
    /// Bumped by every event after which the feed alone is not to be
    /// trusted (a subscription, a loss, the feed going down): a catch-up
    /// that began before the latest one does not restore that trust.
    epoch: u64,
}

/// A catch-up in progress: what it starts from (see [`Follower::begin`]).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// The revision to read the log after.
    pub after: u64,
    epoch: u64,
    subscribed: bool,
    started: Instant,
}

impl Follower {
    /// A follower for a store without a change log: losses flush.
    pub fn without_log(cache: Arc<DecisionCache>, metrics: Arc<Metrics>) -> Self {
        Self::new(Applier::new(cache.clone(), metrics.clone()), cache, metrics, false)
    }

    /// A follower for a store with a change log, at the store's revision
    /// read before anything was cached.
    pub fn with_log(cache: Arc<DecisionCache>, metrics: Arc<Metrics>, revision: u64) -> Self {
        Self::new(Applier::with_log(cache.clone(), metrics.clone(), revision), cache, metrics, true)
    }

    fn new(applier: Applier, cache: Arc<DecisionCache>, metrics: Arc<Metrics>, has_log: bool) -> Self {
        let state = Mutex::new(State { applier, subscribed: false, epoch: 0 });
        Follower { state, cache, metrics, has_log, wanted: Notify::new() }
    }

    /// Whether misses are read from a change log (and a poller runs).
    pub fn has_log(&self) -> bool {
        self.has_log
    }

    /// The last revision applied.
    pub fn last_revision(&self) -> u64 {
        self.state.lock().applier.last_revision()
    }

    /// The feed is subscribed (the server confirmed it): what was published
    /// before may be lost, what comes later arrives.
    pub fn subscribed(&self) -> Outcome {
        self.metrics.invalidation_feed_up.set(1);
        let mut s = self.state.lock();
        s.subscribed = true;
        s.epoch += 1;
        self.lost(s.applier.reconnected())
    }

    /// The feed dropped messages but stays subscribed (a NATS slow consumer).
    pub fn lost_messages(&self) -> Outcome {
        let mut s = self.state.lock();
        s.epoch += 1;
        self.lost(s.applier.reconnected())
    }

    /// The feed is not receiving: cached answers are bounded by
    /// `max_staleness` from now, and the poller starts reading the log.
    pub fn down(&self) {
        self.metrics.invalidation_feed_up.set(0);
        let mut s = self.state.lock();
        s.subscribed = false;
        s.epoch += 1;
        self.cache.set_push_healthy(false);
        self.wanted.notify_one();
    }

    /// One raw message off the feed.
    pub fn message(&self, bytes: &[u8]) -> Outcome {
        let mut s = self.state.lock();
        let outcome = s.applier.message(bytes, now_ms());
        if matches!(outcome, Outcome::Behind(_)) {
            s.epoch += 1;
            self.distrust_push();
        }
        outcome
    }

    /// After a loss: without a log the applier flushed, and pushed
    /// invalidations can be trusted again; with one, a catch-up is due.
    fn lost(&self, outcome: Outcome) -> Outcome {
        if matches!(outcome, Outcome::Behind(_)) {
            self.distrust_push();
        } else {
            self.cache.set_push_healthy(true);
        }
        outcome
    }

    fn distrust_push(&self) {
        self.cache.set_push_healthy(false);
        self.wanted.notify_one();
    }

    /// Waits until a catch-up is wanted (at once if one was asked for
    /// since the last wait).
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }

    /// Whether the cache currently trusts the feed (no polling needed).
    pub fn trusted(&self) -> bool {
        self.cache.push_healthy()
    }

    /// Starts a catch-up: read the change log after `ticket.after`, then
    /// [`finish`](Self::finish) it.
    pub fn begin(&self) -> Ticket {
        let s = self.state.lock();
        Ticket { after: s.applier.last_revision(), epoch: s.epoch, subscribed: s.subscribed, started: Instant::now() }
    }

    /// Applies what a catch-up read. The cache is then in step with the
    /// store as of the ticket's start, and trusts the feed again if it was
    /// subscribed throughout and nothing was lost meanwhile.
    pub fn finish(&self, ticket: Ticket, log: &ChangeLog) -> Outcome {
        let s = &mut *self.state.lock();
        let outcome = s.applier.caught_up(log, now_ms());
        self.cache.mark_synced(ticket.started);
        if ticket.subscribed && s.subscribed && s.epoch == ticket.epoch {
            self.cache.set_push_healthy(true);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invalidation::apply::{FlushReason, Loss};
    use crate::policy::postgres::Coverage;
    use std::time::Duration;

    fn follower(has_log: bool) -> (Follower, Arc<DecisionCache>, Arc<Metrics>) {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let metrics = Arc::new(Metrics::new(true));
        let f = match has_log {
            true => Follower::with_log(cache.clone(), metrics.clone(), 10),
            false => Follower::without_log(cache.clone(), metrics.clone()),
        };
        (f, cache, metrics)
    }

    fn empty_log(head: u64) -> ChangeLog {
        ChangeLog { head, revisions: Vec::new(), coverage: Coverage::Complete }
    }

    fn message(revision: u64) -> Vec<u8> {
        format!(r#"{{"revision":{revision},"committed_at_ms":1,"changes":[]}}"#).into_bytes()
    }

    /// Whether a catch-up was asked for since the last check.
    async fn asked(f: &Follower) -> bool {
        tokio::time::timeout(Duration::from_millis(1), f.wanted()).await.is_ok()
    }

    #[tokio::test]
    async fn a_subscription_is_trusted_only_after_a_catch_up_that_began_within_it() {
        let (f, cache, metrics) = follower(true);
        f.down();
        assert!(!cache.push_healthy());
        assert!(asked(&f).await, "down: the poller starts");
        // A catch-up that began before the subscription does not count.
        let early = f.begin();
        assert_eq!(f.subscribed(), Outcome::Behind(Loss::Reconnect));
        assert_eq!(metrics.invalidation_feed_up.get(), 1);
        assert!(asked(&f).await);
        f.finish(early, &empty_log(10));
        assert!(!cache.push_healthy(), "began before the subscription");
        let ticket = f.begin();
        f.finish(ticket, &empty_log(12));
        assert!(cache.push_healthy());
        assert_eq!(f.last_revision(), 12);
        assert!(!asked(&f).await, "nothing more to do");
    }

    #[tokio::test]
    async fn a_loss_during_a_catch_up_keeps_the_feed_untrusted_and_asks_again() {
        let (f, cache, _) = follower(true);
        f.subscribed();
        let ticket = f.begin();
        assert_eq!(f.message(&message(14)), Outcome::Behind(Loss::Gap { last: 10, revision: 14 }));
        f.finish(ticket, &empty_log(12));
        assert!(!cache.push_healthy());
        assert!(asked(&f).await, "the gap asked for another catch-up");
        let ticket = f.begin();
        assert_eq!(ticket.after, 12);
        f.finish(ticket, &empty_log(14));
        assert!(cache.push_healthy());
        assert_eq!(f.message(&message(15)), Outcome::Applied { revision: 15, changes: 0 });
        // The feed going down mid catch-up: not trusted either.
        let ticket = f.begin();
        f.down();
        f.finish(ticket, &empty_log(15));
        assert!(!cache.push_healthy());
    }

    #[tokio::test]
    async fn a_catch_up_syncs_the_cache_as_of_its_start() {
        let cache = Arc::new(DecisionCache::new(
            100,
            Duration::from_secs(60),
            Duration::from_secs(5),
            Duration::from_millis(40),
        ));
        let f = Follower::with_log(cache.clone(), Arc::new(Metrics::new(true)), 0);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let digest = loggate_model::TokenDigest::of("bt-st-x");
        let lookup = || async {
            cache
                .identity(&digest, || async {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok::<_, std::convert::Infallible>(None)
                })
                .await
                .unwrap()
                .1
        };
        f.down();
        lookup().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let ticket = f.begin();
        f.finish(ticket, &empty_log(0));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(lookup().await, crate::cache::Lookup::Hit, "synced 30 ms ago, computed 60 ms ago");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(lookup().await, crate::cache::Lookup::Miss, "no sync for 60 ms");
    }

    #[tokio::test]
    async fn without_a_log_a_subscription_flushes_and_is_trusted_at_once() {
        let (f, cache, metrics) = follower(false);
        f.down();
        assert_eq!(f.subscribed(), Outcome::Flushed(FlushReason::Reconnect));
        assert!(cache.push_healthy());
        assert_eq!(metrics.invalidations.with_label_values(&["flush"]).get(), 1);
        assert_eq!(f.lost_messages(), Outcome::Flushed(FlushReason::Reconnect));
        assert!(cache.push_healthy());
    }
}
