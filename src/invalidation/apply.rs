//! The applier: turns feed messages and change-log reads into cache
//! invalidations (docs/operations.md, caching and invalidation). No I/O
//! and no clock of its own (the caller passes "now"), so every rule is
//! unit-tested with data.
//!
//! Rules, by the revision `N` of a message and the last applied one:
//! - `N == last + 1`: targeted invalidation of each change (see
//!   [`invalidate_change`]);
//! - `N <= last`: ignored (several bridges publish the same revision);
//! - `N > last + 1` (a gap: messages were lost), a (re)connect, or a
//!   message that does not parse or names an unknown kind: revisions may
//!   be missing. With a change log (the postgres store) the answer is
//!   [`Outcome::Behind`]: the message's own changes are dropped at once (a
//!   revocation need not wait), `last` stays, and the caller reads the log
//!   and hands it to [`Applier::caught_up`], which applies every missing
//!   revision as if announced, or flushes when the log cannot cover them
//!   (pruned, too long, a store that went back). Without one (the file
//!   store), everything is flushed.
//!
//! Without a change log, after a flush caused by a (re)connect or an
//! unreadable message, the next message newer than `last` is applied as a
//! targeted one even if revisions were skipped: the flush already covered
//! everything committed before it, and the subscription was live when it
//! happened, so nothing later is lost.

use super::message::{self, Announcement, Change, ChangeKind};
use crate::cache::DecisionCache;
use crate::metrics::Metrics;
use crate::policy::postgres::{ChangeLog, Coverage};
use loggate_model::types::ObjectType;
use std::collections::HashSet;
use std::sync::Arc;

/// More changes than this in one message flush instead: cheaper than that
/// many targeted invalidations, and always correct.
pub const MAX_TARGETED_CHANGES: usize = 256;

/// The most changes one catch-up applies; a longer stretch of the log is
/// not read, and the cache is flushed instead. Each targeted invalidation
/// of a token, user, organization or object is one pass over the cached
/// decisions (about a millisecond for 100,000 of them), so a thousand cost
/// well under a second of one core in the worst case (ACL, group and role
/// changes all come down to one drop of every decision, and repeated
/// changes are applied once). A flush costs the store a few statements for
/// every token in use (thousands in a busy fleet), all at once.
pub const MAX_CATCH_UP_CHANGES: usize = 1_000;

/// Why everything was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushReason {
    /// The feed (re)connected: messages may have been lost meanwhile.
    Reconnect,
    /// Revisions between `last` and `revision` never arrived.
    Gap { last: u64, revision: u64 },
    /// The message did not parse, or named an unknown kind.
    Unreadable,
    /// One message with more than [`MAX_TARGETED_CHANGES`] changes.
    LargeChange { revision: u64 },
    /// The change log could not cover the revisions after `last` up to `head`.
    Log { coverage: Coverage, last: u64, head: u64 },
}

/// How revisions may have been lost (with a change log, no flush: a catch-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// The feed (re)connected, or dropped messages (a slow consumer).
    Reconnect,
    /// Revisions between `last` and `revision` never arrived.
    Gap { last: u64, revision: u64 },
    /// A message did not parse, or named an unknown kind.
    Unreadable,
}

/// What one event did to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        revision: u64,
        changes: usize,
    },
    Ignored {
        revision: u64,
    },
    Flushed(FlushReason),
    /// Revisions after the last applied one may be missing: catch up.
    Behind(Loss),
    /// A change-log read applied: `revisions` of them, `changes` changes, up to `head`.
    CaughtUp {
        head: u64,
        revisions: usize,
        changes: usize,
    },
}

pub struct Applier {
    cache: Arc<DecisionCache>,
    metrics: Arc<Metrics>,
    last: u64,
    /// A flush covered everything up to now: the next newer revision is not a gap.
    resync: bool,
    /// Missing revisions are read from the store's change log, not flushed.
    has_log: bool,
}

impl Applier {
    /// An applier for a store without a change log (losses flush).
    pub fn new(cache: Arc<DecisionCache>, metrics: Arc<Metrics>) -> Self {
        Applier { cache, metrics, last: 0, resync: true, has_log: false }
    }

    /// An applier for a store with a change log, starting at `revision`:
    /// the store's revision read before anything was cached.
    pub fn with_log(cache: Arc<DecisionCache>, metrics: Arc<Metrics>, revision: u64) -> Self {
        Applier { cache, metrics, last: revision, resync: false, has_log: true }
    }

    /// The last revision applied (0: none yet).
    pub fn last_revision(&self) -> u64 {
        self.last
    }

    /// The feed (re)connected and is subscribed, or dropped messages.
    pub fn reconnected(&mut self) -> Outcome {
        if self.has_log { Outcome::Behind(Loss::Reconnect) } else { self.flush(FlushReason::Reconnect) }
    }

    /// One raw message off the feed, received at `now_ms`.
    pub fn message(&mut self, bytes: &[u8], now_ms: i64) -> Outcome {
        match message::parse(bytes) {
            Ok(a) => self.announcement(&a, now_ms),
            Err(garbage) => {
                if let Some(revision) = garbage.revision
                    && revision <= self.last
                {
                    return Outcome::Ignored { revision };
                }
                if self.has_log {
                    tracing::warn!(error = %garbage, "catching up from the change log");
                    return Outcome::Behind(Loss::Unreadable);
                }
                tracing::warn!(error = %garbage, "flushing the decision cache");
                let outcome = self.flush(FlushReason::Unreadable);
                if let Some(revision) = garbage.revision {
                    self.advance(revision, garbage.committed_at_ms, now_ms);
                }
                outcome
            }
        }
    }

    /// One parsed announcement, received at `now_ms`.
    pub fn announcement(&mut self, a: &Announcement, now_ms: i64) -> Outcome {
        if a.revision <= self.last {
            return Outcome::Ignored { revision: a.revision };
        }
        let in_order = a.revision == self.last + 1 || (self.resync && !self.has_log);
        if !in_order && self.has_log && a.changes.len() <= MAX_TARGETED_CHANGES {
            // Dropped now, counted (and the lag recorded) when the
            // catch-up applies this revision with the ones before it.
            for change in &a.changes {
                invalidate_change(&self.cache, change);
            }
            tracing::info!(last = self.last, revision = a.revision, "invalidation feed skipped revisions; catching up");
            return Outcome::Behind(Loss::Gap { last: self.last, revision: a.revision });
        }
        let outcome = if !in_order {
            tracing::warn!(last = self.last, revision = a.revision, "invalidation feed skipped revisions; flushing");
            self.flush(FlushReason::Gap { last: self.last, revision: a.revision })
        } else if a.changes.len() > MAX_TARGETED_CHANGES {
            self.flush(FlushReason::LargeChange { revision: a.revision })
        } else {
            for change in &a.changes {
                invalidate_change(&self.cache, change);
            }
            Outcome::Applied { revision: a.revision, changes: a.changes.len() }
        };
        self.count(a.changes.iter().map(|c| c.kind));
        // A flush covers everything committed before it, gap or not.
        self.resync = false;
        self.advance(a.revision, Some(a.committed_at_ms), now_ms);
        outcome
    }

    /// Applies a change-log read made when `last` was this applier's
    /// revision: every revision newer than the one applied since, as if
    /// announced, or a flush when the log does not cover them.
    pub fn caught_up(&mut self, log: &ChangeLog, now_ms: i64) -> Outcome {
        let head = log.head;
        let unknown = log.revisions.iter().flat_map(|r| &r.changes).find(|(kind, _)| ChangeKind::parse(kind).is_none());
        if let Some((kind, id)) = unknown {
            tracing::warn!(kind = %kind, id = %id, "change kind outside the contract in the change log; flushing");
            let outcome = self.flush(FlushReason::Unreadable);
            self.advance(head, None, now_ms);
            return outcome;
        }
        if log.coverage != Coverage::Complete {
            tracing::warn!(coverage = ?log.coverage, last = self.last, head, "the change log cannot cover the missed revisions; flushing");
            let outcome = self.flush(FlushReason::Log { coverage: log.coverage, last: self.last, head });
            if log.coverage == Coverage::Rewound {
                // Another store than the one `last` came from: follow its revisions.
                self.last = head;
                self.metrics.policy_loaded(head);
            } else {
                self.advance(head, None, now_ms);
            }
            return outcome;
        }
        let (mut revisions, mut changes) = (0, 0);
        let mut done: HashSet<(ChangeKind, &str)> = HashSet::new();
        let applied = self.last;
        for r in log.revisions.iter().filter(|r| r.revision > applied) {
            for (kind, id) in &r.changes {
                let kind = ChangeKind::parse(kind).expect("checked above");
                // Applying a change twice drops nothing more.
                if done.insert((kind, id)) {
                    invalidate_change(&self.cache, &Change { kind, id: id.clone() });
                }
            }
            self.count(r.changes.iter().filter_map(|(kind, _)| ChangeKind::parse(kind)));
            self.advance(r.revision, Some(r.committed_at_ms), now_ms);
            revisions += 1;
            changes += r.changes.len();
        }
        self.resync = false;
        self.advance(head, None, now_ms);
        Outcome::CaughtUp { head: self.last, revisions, changes }
    }

    fn count(&self, kinds: impl Iterator<Item = ChangeKind>) {
        for kind in kinds {
            self.metrics.invalidations.with_label_values(&[kind.as_str()]).inc();
        }
    }

    fn flush(&mut self, reason: FlushReason) -> Outcome {
        self.cache.invalidate_all();
        self.metrics.invalidations.with_label_values(&["flush"]).inc();
        self.resync = matches!(reason, FlushReason::Reconnect | FlushReason::Unreadable);
        Outcome::Flushed(reason)
    }

    fn advance(&mut self, revision: u64, committed_at_ms: Option<i64>, now_ms: i64) {
        self.last = self.last.max(revision);
        self.metrics.policy_loaded(self.last);
        if let Some(t) = committed_at_ms {
            self.metrics.revocation_lag_seconds.observe(lag_seconds(t, now_ms));
        }
    }
}

/// Commit-to-invalidation time; clocks that disagree never make it negative.
pub fn lag_seconds(committed_at_ms: i64, now_ms: i64) -> f64 {
    now_ms.saturating_sub(committed_at_ms).max(0) as f64 / 1000.0
}

/// The smallest invalidation that covers every decision and identity the
/// change could alter, given what the cache records per entry (token id,
/// user id, org id, object, permission):
///
/// | kind | drops |
/// |---|---|
/// | `service_token` | that token's identity and decisions, and cached "unknown token" answers |
/// | `user` | identities and decisions of tokens acting as that user |
/// | `organization` | identities and decisions of tokens of that org |
/// | `project` | decisions on the project and its log, and on every experiment/dataset (parents are not cached) |
/// | `experiment`, `dataset` | decisions on that object |
/// | `acl`, `group`, `role` | every decision (an id alone says neither whom nor what it reaches); identities stay |
pub fn invalidate_change(cache: &DecisionCache, change: &Change) {
    let id = change.id.as_str();
    match change.kind {
        ChangeKind::ServiceToken => cache.invalidate_token(id),
        ChangeKind::User => cache.invalidate_user(id),
        ChangeKind::Organization => cache.invalidate_object(ObjectType::Organization, id),
        ChangeKind::Project => cache.invalidate_object(ObjectType::Project, id),
        ChangeKind::Experiment => cache.invalidate_object(ObjectType::Experiment, id),
        ChangeKind::Dataset => cache.invalidate_object(ObjectType::Dataset, id),
        ChangeKind::Acl | ChangeKind::Group | ChangeKind::Role => cache.invalidate_decisions(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{DecisionKey, Lookup};
    use loggate_authz::Decision;
    use loggate_model::types::{ObjectRef, Permission};
    use loggate_model::{Identity, TokenDigest};
    use std::convert::Infallible;
    use std::time::Duration;

    struct World {
        cache: Arc<DecisionCache>,
        metrics: Arc<Metrics>,
        applier: Applier,
    }

    fn world() -> World {
        let cache =
            Arc::new(DecisionCache::new(100, Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(10)));
        let metrics = Arc::new(Metrics::new(true));
        let applier = Applier::new(cache.clone(), metrics.clone());
        World { cache, metrics, applier }
    }

    /// A world whose store has a change log, at revision 10, both decisions cached.
    async fn logged_at_10() -> World {
        let mut w = world();
        w.applier = Applier::with_log(w.cache.clone(), w.metrics.clone(), 10);
        w.cached().await;
        assert_eq!(w.cached().await, [true, true]);
        w
    }

    /// A complete read of the log after `after`: `(revision, [(kind, id)])`.
    fn log(after: u64, revisions: &[(u64, &[(&str, &str)])]) -> ChangeLog {
        let head = revisions.last().map_or(after, |r| r.0);
        let rows = revisions
            .iter()
            .flat_map(|(r, changes)| changes.iter().map(move |(k, i)| (*r, k.to_string(), i.to_string(), 1_000)))
            .collect();
        ChangeLog::of(after, head, rows, MAX_CATCH_UP_CHANGES)
    }

    fn identity(token: &str, user: &str, org: &str) -> Identity {
        Identity {
            token_id: token.into(),
            token_name: token.into(),
            org_id: org.into(),
            user_id: user.into(),
            ..Identity::default()
        }
    }

    /// Two callers, each with one cached allow: t1 (user u1, org o1) on
    /// project log p1, t2 (user u2, org o2) on experiment e2.
    const CALLERS: [(&str, &str, &str, ObjectType, &str); 2] =
        [("t1", "u1", "o1", ObjectType::ProjectLog, "p1"), ("t2", "u2", "o2", ObjectType::Dataset, "d2")];

    impl World {
        /// Asks both callers' decisions; true where the answer was cached.
        async fn cached(&self) -> [bool; 2] {
            let mut out = [false; 2];
            for (i, (token, user, org, t, id)) in CALLERS.into_iter().enumerate() {
                let object = ObjectRef::new(t, id);
                let key = DecisionKey::new(TokenDigest::of(token), &object, Permission::Update);
                let (_, lookup) = self
                    .cache
                    .decision(key, &Arc::new(identity(token, user, org)), &object, || async {
                        Ok::<_, Infallible>(Decision::Allow)
                    })
                    .await
                    .unwrap();
                out[i] = lookup == Lookup::Hit;
            }
            out
        }

        fn counter(&self, kind: &str) -> u64 {
            self.metrics.invalidations.with_label_values(&[kind]).get()
        }

        fn send(&mut self, revision: u64, changes: &[(&str, &str)]) -> Outcome {
            let changes: Vec<_> = changes.iter().map(|(k, id)| serde_json::json!({"kind": k, "id": id})).collect();
            let msg = serde_json::json!({"revision": revision, "committed_at_ms": 1_000, "changes": changes});
            self.applier.message(msg.to_string().as_bytes(), 1_250)
        }
    }

    /// Connected, at revision 10, both decisions cached.
    async fn at_revision_10() -> World {
        let mut w = world();
        w.applier.reconnected();
        w.send(10, &[]);
        w.cached().await;
        assert_eq!(w.cached().await, [true, true]);
        w
    }

    #[tokio::test]
    async fn the_next_revision_drops_exactly_what_changed_for_every_kind() {
        let cases: [(&str, &str, [bool; 2]); 14] = [
            ("service_token", "t1", [false, true]),
            ("service_token", "t9", [true, true]),
            ("user", "u2", [true, false]),
            ("user", "u9", [true, true]),
            ("organization", "o1", [false, true]),
            ("organization", "o9", [true, true]),
            ("project", "p1", [false, false]), // d2 sits below some project
            ("experiment", "e9", [true, true]),
            ("dataset", "d2", [true, false]),
            ("dataset", "d9", [true, true]),
            ("acl", "a1", [false, false]),
            ("group", "g1", [false, false]),
            ("role", "r1", [false, false]),
            ("project", "p9", [true, false]),
        ];
        for (kind, id, want) in cases {
            let mut w = at_revision_10().await;
            let flushes = w.counter("flush");
            assert_eq!(w.send(11, &[(kind, id)]), Outcome::Applied { revision: 11, changes: 1 }, "{kind}");
            assert_eq!(w.cached().await, want, "{kind} {id}");
            assert_eq!(w.counter(kind), 1, "{kind} counted");
            assert_eq!(w.counter("flush"), flushes, "{kind}: no flush");
            assert_eq!(w.metrics.policy_revision.get(), 11);
            assert_eq!(w.applier.last_revision(), 11);
        }
    }

    #[tokio::test]
    async fn duplicates_and_older_revisions_are_ignored() {
        let mut w = at_revision_10().await;
        assert_eq!(w.send(10, &[("acl", "a")]), Outcome::Ignored { revision: 10 });
        assert_eq!(w.send(3, &[("acl", "a")]), Outcome::Ignored { revision: 3 });
        assert_eq!(w.cached().await, [true, true]);
        assert_eq!(w.counter("acl"), 0);
        assert_eq!(w.send(11, &[("service_token", "t1")]), Outcome::Applied { revision: 11, changes: 1 });
        w.cached().await;
        assert_eq!(w.send(11, &[("service_token", "t1")]), Outcome::Ignored { revision: 11 });
        assert_eq!(w.cached().await, [true, true]);
    }

    #[tokio::test]
    async fn a_gap_flushes_and_continues_from_the_new_revision() {
        let mut w = at_revision_10().await;
        let flushes = w.counter("flush");
        assert_eq!(
            w.send(13, &[("service_token", "t9")]),
            Outcome::Flushed(FlushReason::Gap { last: 10, revision: 13 })
        );
        assert_eq!(w.cached().await, [false, false]);
        assert_eq!(w.counter("flush"), flushes + 1);
        assert_eq!(w.metrics.policy_revision.get(), 13);
        assert_eq!(w.send(14, &[("service_token", "t9")]), Outcome::Applied { revision: 14, changes: 1 });
        assert_eq!(w.cached().await, [true, true]);
    }

    #[tokio::test]
    async fn garbage_and_unknown_kinds_flush() {
        for bad in [
            &b"{not json"[..],
            br#"{"revision":11,"committed_at_ms":1,"changes":[{"kind":"prompt","id":"x"}]}"#,
            br#"{"revision":"11","committed_at_ms":1,"changes":[]}"#,
            br#"[]"#,
        ] {
            let mut w = at_revision_10().await;
            let flushes = w.counter("flush");
            assert_eq!(w.applier.message(bad, 0), Outcome::Flushed(FlushReason::Unreadable));
            assert_eq!(w.cached().await, [false, false]);
            assert_eq!(w.counter("flush"), flushes + 1);
        }
        // An unreadable message whose revision is readable still advances.
        let mut w = at_revision_10().await;
        w.applier.message(br#"{"revision":11,"committed_at_ms":1,"changes":[{"kind":"x","id":"x"}]}"#, 0);
        assert_eq!(w.applier.last_revision(), 11);
        assert_eq!(w.applier.message(br#"{"revision":11,"changes":7}"#, 0), Outcome::Ignored { revision: 11 });
        // After an unreadable message the next newer one is not a gap.
        let mut w = at_revision_10().await;
        w.applier.message(b"???", 0);
        w.cached().await;
        assert_eq!(w.send(12, &[("user", "u1")]), Outcome::Applied { revision: 12, changes: 1 });
        assert_eq!(w.cached().await, [false, true]);
    }

    #[tokio::test]
    async fn reconnects_flush_and_resynchronize() {
        let mut w = at_revision_10().await;
        let flushes = w.counter("flush");
        assert_eq!(w.applier.reconnected(), Outcome::Flushed(FlushReason::Reconnect));
        assert_eq!(w.cached().await, [false, false]);
        assert_eq!(w.counter("flush"), flushes + 1);
        w.cached().await;
        // Revisions 11..=14 were committed while disconnected: the flush covered them.
        assert_eq!(w.send(15, &[("user", "u2")]), Outcome::Applied { revision: 15, changes: 1 });
        assert_eq!(w.cached().await, [true, false]);
        assert_eq!(w.send(9, &[]), Outcome::Ignored { revision: 9 });
        // Resynchronized: a later gap flushes again.
        assert!(matches!(w.send(17, &[]), Outcome::Flushed(FlushReason::Gap { .. })));
    }

    #[tokio::test]
    async fn one_transaction_with_many_kinds_counts_each_and_records_the_lag() {
        let mut w = at_revision_10().await;
        let lags = w.metrics.revocation_lag_seconds.get_sample_count();
        let outcome = w.send(11, &[("service_token", "t1"), ("acl", "a1"), ("acl", "a2"), ("group", "g")]);
        assert_eq!(outcome, Outcome::Applied { revision: 11, changes: 4 });
        assert_eq!((w.counter("service_token"), w.counter("acl"), w.counter("group")), (1, 2, 1));
        assert_eq!(w.metrics.revocation_lag_seconds.get_sample_count(), lags + 1);
        assert!(w.metrics.revocation_lag_seconds.get_sample_sum() >= 0.25);
        assert_eq!(lag_seconds(2_000, 1_000), 0.0, "a publisher clock ahead of ours is not negative lag");
    }

    #[tokio::test]
    async fn very_large_transactions_flush() {
        let mut w = at_revision_10().await;
        let many: Vec<(&str, &str)> = (0..=MAX_TARGETED_CHANGES).map(|_| ("service_token", "t9")).collect();
        assert_eq!(w.send(11, &many), Outcome::Flushed(FlushReason::LargeChange { revision: 11 }));
        assert_eq!(w.cached().await, [false, false]);
        assert_eq!(w.applier.last_revision(), 11);
    }

    #[tokio::test]
    async fn with_a_log_a_gap_drops_what_it_names_and_asks_for_a_catch_up() {
        let mut w = logged_at_10().await;
        assert_eq!(
            w.send(13, &[("service_token", "t1")]),
            Outcome::Behind(Loss::Gap { last: 10, revision: 13 }),
            "no flush"
        );
        assert_eq!(w.cached().await, [false, true], "the message's own change took effect at once");
        assert_eq!((w.applier.last_revision(), w.counter("flush")), (10, 0));
        // The catch-up applies 11..=13 as if announced (13 again: harmless).
        let read = log(10, &[(11, &[("user", "u2")]), (12, &[]), (13, &[("service_token", "t1")])]);
        assert_eq!(read.coverage, Coverage::Pruned, "12 has no row: the triggers never make such a revision");
        let read = log(10, &[(11, &[("user", "u2")]), (12, &[("dataset", "d9")]), (13, &[("service_token", "t1")])]);
        w.cached().await;
        let lags = w.metrics.revocation_lag_seconds.get_sample_count();
        assert_eq!(w.applier.caught_up(&read, 1_500), Outcome::CaughtUp { head: 13, revisions: 3, changes: 3 });
        assert_eq!(w.cached().await, [false, false]);
        assert_eq!(
            (w.counter("user"), w.counter("dataset"), w.counter("service_token"), w.counter("flush")),
            (1, 1, 1, 0)
        );
        assert_eq!(w.metrics.revocation_lag_seconds.get_sample_count(), lags + 3, "one lag per revision");
        assert_eq!((w.applier.last_revision(), w.metrics.policy_revision.get()), (13, 13));
        assert_eq!(w.send(14, &[]), Outcome::Applied { revision: 14, changes: 0 });
    }

    #[tokio::test]
    async fn with_a_log_reconnects_and_unreadable_messages_ask_for_a_catch_up() {
        let mut w = logged_at_10().await;
        assert_eq!(w.applier.reconnected(), Outcome::Behind(Loss::Reconnect));
        assert_eq!(w.applier.message(b"{not json", 0), Outcome::Behind(Loss::Unreadable));
        assert_eq!(
            w.applier.message(br#"{"revision":12,"committed_at_ms":1,"changes":[{"kind":"x","id":"x"}]}"#, 0),
            Outcome::Behind(Loss::Unreadable)
        );
        assert_eq!(w.applier.message(br#"{"revision":9,"changes":7}"#, 0), Outcome::Ignored { revision: 9 });
        assert_eq!(w.cached().await, [true, true], "nothing dropped");
        assert_eq!((w.applier.last_revision(), w.counter("flush")), (10, 0));
        assert_eq!(w.applier.caught_up(&log(10, &[]), 0), Outcome::CaughtUp { head: 10, revisions: 0, changes: 0 });
        assert_eq!(w.cached().await, [true, true]);
    }

    #[tokio::test]
    async fn a_catch_up_skips_what_the_feed_applied_since_it_read_the_log() {
        let mut w = logged_at_10().await;
        let read = log(10, &[(11, &[("service_token", "t1")]), (12, &[("user", "u2")])]);
        // Meanwhile the feed delivered 11 and 12.
        w.send(11, &[("service_token", "t1")]);
        w.send(12, &[("user", "u2")]);
        w.cached().await;
        assert_eq!(w.applier.caught_up(&read, 0), Outcome::CaughtUp { head: 12, revisions: 0, changes: 0 });
        assert_eq!(w.cached().await, [true, true], "nothing dropped twice");
        assert_eq!(w.counter("service_token"), 1);
    }

    #[tokio::test]
    async fn a_log_that_cannot_cover_the_gap_flushes() {
        for (coverage, head, want_last) in
            [(Coverage::Pruned, 14, 14), (Coverage::TooMany, 14, 14), (Coverage::Rewound, 4, 4)]
        {
            let mut w = logged_at_10().await;
            let read = ChangeLog { head, revisions: Vec::new(), coverage };
            assert_eq!(
                w.applier.caught_up(&read, 0),
                Outcome::Flushed(FlushReason::Log { coverage, last: 10, head }),
                "{coverage:?}"
            );
            assert_eq!(w.cached().await, [false, false], "{coverage:?}");
            assert_eq!(w.counter("flush"), 1, "{coverage:?}");
            assert_eq!((w.applier.last_revision(), w.metrics.policy_revision.get()), (want_last, want_last as i64));
        }
        // More changes than a catch-up applies are not read.
        let many: Vec<(&str, &str)> = (0..=MAX_CATCH_UP_CHANGES).map(|_| ("acl", "a")).collect();
        assert_eq!(log(10, &[(11, &many)]).coverage, Coverage::TooMany);
    }

    #[tokio::test]
    async fn a_kind_outside_the_contract_in_the_log_flushes() {
        let mut w = logged_at_10().await;
        let read = log(10, &[(11, &[("prompt", "p")])]);
        assert_eq!(w.applier.caught_up(&read, 0), Outcome::Flushed(FlushReason::Unreadable));
        assert_eq!(w.applier.last_revision(), 11);
    }
}
