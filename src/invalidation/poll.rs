//! The change-log poller (docs/operations.md, caching and invalidation):
//! the one task that catches a replica up from the store's change log, so
//! concurrent reasons to (a reconnect, a gap, the feed going down) make one
//! read, not one each. It reads when the follower asks, and, while the
//! cache does not trust the feed (down, or not yet caught up), every
//! [`interval`]: each successful read keeps cached answers current
//! without recomputing them; when reads fail, they expire `max_staleness`
//! after the last one that succeeded.

use super::apply::{MAX_CATCH_UP_CHANGES, Outcome};
use super::follow::Follower;
use crate::policy::postgres::ChangeLog;
use crate::policy::{Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The longest pause between reads while the feed is not trusted: a
/// change committed meanwhile (a revocation by plain SQL, say) takes effect
/// within about this long, for one indexed statement per replica per read.
pub const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest, for tiny `max_staleness` values.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How often to read while the feed is not trusted: half of
/// `max_staleness` (so one slow or failed read does not expire the cache),
/// at most [`MAX_INTERVAL`].
pub fn interval(max_staleness: Duration) -> Duration {
    (max_staleness / 2).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Where the change log is read.
pub trait ChangeLogSource: Send + Sync + 'static {
    /// The head and the changes after `after`, at most `limit` (see `PgStore::changes_since`).
    fn changes_since(&self, after: u64, limit: usize) -> impl Future<Output = Result<ChangeLog, StoreError>> + Send;
}

/// The configured store's change log (the postgres store has one).
pub struct StoreLog(pub Arc<Store>);

impl ChangeLogSource for StoreLog {
    async fn changes_since(&self, after: u64, limit: usize) -> Result<ChangeLog, StoreError> {
        match &*self.0 {
            Store::Postgres(pg) => pg.changes_since(after, limit).await,
            Store::File(_) => Err(StoreError("the file store has no change log".into())),
        }
    }
}

/// Runs forever: one catch-up at a time, when asked or every `every`
/// while the feed is not trusted.
pub async fn run(follower: Arc<Follower>, source: impl ChangeLogSource, every: Duration) {
    let mut failing = false;
    loop {
        if follower.trusted() {
            follower.wanted().await;
        } else {
            tokio::select! {
                _ = follower.wanted() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
        let ticket = follower.begin();
        match source.changes_since(ticket.after, MAX_CATCH_UP_CHANGES).await {
            Ok(log) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(revision = log.head, "policy change log readable again");
                }
                match follower.finish(ticket, &log) {
                    Outcome::CaughtUp { revisions: 0, .. } => {}
                    Outcome::CaughtUp { head, revisions, changes } => {
                        tracing::info!(
                            from = ticket.after,
                            revision = head,
                            revisions,
                            changes,
                            "caught up from the policy change log"
                        )
                    }
                    other => tracing::info!(outcome = ?other, "policy change log applied"),
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "cannot read the policy change log; cached answers expire max_staleness after the last read");
                }
                // A store that fails is not asked again at once, however
                // many messages ask for it meanwhile.
                tokio::time::sleep(every).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::DecisionCache;
    use crate::metrics::Metrics;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[test]
    fn the_interval_is_half_of_max_staleness_and_at_most_a_second() {
        assert_eq!(interval(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(interval(Duration::from_millis(500)), Duration::from_millis(250));
        assert_eq!(interval(Duration::ZERO), MIN_INTERVAL);
    }

    /// A change log in memory: revisions with their changes; reads counted.
    #[derive(Default)]
    struct Log {
        revisions: Mutex<Vec<Vec<(String, String)>>>,
        reads: AtomicUsize,
        down: AtomicBool,
    }

    impl Log {
        fn commit(&self, kind: &str, id: &str) {
            self.revisions.lock().push(vec![(kind.into(), id.into())]);
        }
    }

    impl ChangeLogSource for Arc<Log> {
        async fn changes_since(&self, after: u64, limit: usize) -> Result<ChangeLog, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError("down".into()));
            }
            let revisions = self.revisions.lock();
            let rows = (after as usize..revisions.len())
                .flat_map(|i| revisions[i].iter().map(move |(k, id)| ((i + 1) as u64, k.clone(), id.clone(), 0)))
                .collect();
            Ok(ChangeLog::of(after, revisions.len() as u64, rows, limit))
        }
    }

    fn start(log: &Arc<Log>, every: Duration) -> (Arc<Follower>, Arc<DecisionCache>) {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let follower = Arc::new(Follower::with_log(cache.clone(), Arc::new(Metrics::new(true)), 0));
        tokio::spawn(run(follower.clone(), log.clone(), every));
        (follower, cache)
    }

    async fn until(what: &str, probe: impl Fn() -> bool) {
        for _ in 0..500 {
            if probe() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("{what}");
    }

    #[tokio::test]
    async fn while_down_it_reads_every_interval_and_applies_what_it_finds() {
        let log = Arc::new(Log::default());
        let (follower, cache) = start(&log, Duration::from_millis(20));
        follower.down();
        log.commit("acl", "a");
        log.commit("service_token", "t");
        until("both revisions applied", || follower.last_revision() == 2).await;
        assert!(!cache.push_healthy(), "the feed is still down");
        let (reads, since) = (log.reads.load(Ordering::SeqCst), std::time::Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = log.reads.load(Ordering::SeqCst) - reads;
        let most = since.elapsed().as_millis() as usize / 20 + 1;
        assert!((2..=most).contains(&more), "{more} reads in {:?} at one per 20 ms", since.elapsed());
    }

    #[tokio::test]
    async fn once_subscribed_and_caught_up_it_stops_polling() {
        let log = Arc::new(Log::default());
        let (follower, cache) = start(&log, Duration::from_millis(10));
        follower.down();
        log.commit("acl", "a");
        follower.subscribed();
        until("trusted", || cache.push_healthy()).await;
        assert_eq!(follower.last_revision(), 1);
        let reads = log.reads.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(log.reads.load(Ordering::SeqCst), reads, "no reads while the feed is trusted");
        // Concurrent reasons, one read.
        follower.lost_messages();
        follower.lost_messages();
        follower.message(br#"{"revision":9,"committed_at_ms":1,"changes":[]}"#);
        until("trusted again", || cache.push_healthy()).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(log.reads.load(Ordering::SeqCst) - reads <= 2, "{} reads", log.reads.load(Ordering::SeqCst) - reads);
    }

    #[tokio::test]
    async fn a_failing_store_is_retried_every_interval_not_at_once() {
        let log = Arc::new(Log::default());
        log.down.store(true, Ordering::SeqCst);
        let (follower, cache) = start(&log, Duration::from_millis(20));
        let since = std::time::Instant::now();
        follower.subscribed();
        for _ in 0..50 {
            follower.lost_messages();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let reads = log.reads.load(Ordering::SeqCst);
        let most = since.elapsed().as_millis() as usize / 20 + 2;
        assert!(reads <= most, "{reads} reads in {:?} of losses at one per 20 ms", since.elapsed());
        assert!(!cache.push_healthy());
        log.down.store(false, Ordering::SeqCst);
        until("trusted once the store answers", || cache.push_healthy()).await;
    }
}
