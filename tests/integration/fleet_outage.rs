//! The feed and the store going away in postgres mode (docs/operations.md, caching and invalidation):
//! - feed down alone: `/readyz` stays 200; a revocation committed meanwhile
//!   (plain SQL: nothing can announce it) is read from the change log by
//!   the poller within `max_staleness`, without a flush: other cached
//!   answers are still served, not recomputed;
//! - store unreachable too (a cut relay between loggate and Postgres):
//!   cached answers are served until `max_staleness` after the last
//!   successful read of the change log, then 503 `policy_unavailable` —
//!   never an allow, also for a token never seen before — and `/readyz` 503;
//! - both back: normal service, revisions flow through the feed again.

use crate::support::fleet::{Fleet, FleetBuilder, row};
use crate::support::policy::PolicyBuilder;
use crate::support::wait;
use std::time::{Duration, Instant};

const MAX_STALENESS: Duration = Duration::from_millis(1000);
/// The poller reads the change log this often while the feed is down.
const POLL: Duration = Duration::from_millis(500);
/// What a loaded 2-core machine may add to a bound.
const SLACK: Duration = Duration::from_secs(2);
/// How long, and how often, the fail-closed answer is checked to hold.
const FAILS_CLOSED_FOR: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_millis(50);
const FLUSHES: &str = "loggate_invalidations_total{kind=\"flush\"}";
const MISSES: &str = "loggate_decision_cache_total{result=\"miss\"}";

/// Asserts that replica 0 answers `token` with 503 `policy_unavailable`.
async fn assert_unavailable(fleet: &Fleet, token: &str, project: &str, who: &str) {
    let (status, body) = fleet.write(0, token, &row("project_log", project, false)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("policy_unavailable")), "{who}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_down_bounds_staleness_and_store_down_fails_closed() {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project = policy.project(&org, "checkout");
    let writer = policy.service_token(&org, "writer");
    let other = policy.service_token(&org, "other");
    let unseen = policy.service_token(&org, "never-seen-before");
    let writer_acl = policy.grant_user(&writer.user_id, "update", "project_log", &project);
    policy.grant_user(&other.user_id, "update", "project_log", &project);
    let unseen_acl = policy.grant_user(&unseen.user_id, "update", "project_log", &project);
    let mut fleet = FleetBuilder::redis()
        .replicas(1)
        .via_relay()
        .max_staleness(&format!("{}ms", MAX_STALENESS.as_millis()))
        .start(&policy)
        .await;
    let sql = fleet.db.client().await;

    // Allowed and cached.
    for token in [&writer, &other, &writer, &other] {
        assert_eq!(fleet.log_write(0, &token.raw, &project).await, 200);
    }

    // The feed goes away: still ready.
    fleet.feed.stop();
    fleet.wait_feed_down(Duration::from_secs(10)).await;
    let (status, ready) = fleet.readyz(0).await;
    assert_eq!(status, 200, "only the feed is down: {ready}");
    assert_eq!(ready["invalidation_feed"], "down", "{ready}");
    assert_eq!(fleet.log_write(0, &writer.raw, &project).await, 200);

    // Revoked by plain SQL while nothing can announce it: the poller reads
    // it from the change log within max_staleness, and drops only what it
    // changed.
    let (applied, flushes) = (fleet.applied_revision(0).await, fleet.replicas[0].metric(FLUSHES).await);
    sql.execute("DELETE FROM acls WHERE id = $1", &[&writer_acl]).await.unwrap();
    let lag = fleet
        .until_all("revocation with the feed down", MAX_STALENESS + SLACK, |i| {
            let (fleet, writer, project) = (&fleet, &writer, &project);
            async move { fleet.log_write(i, &writer.raw, project).await == 403 }
        })
        .await;
    println!("feed down: SQL revocation denied after {lag:?} (poll every {POLL:?}, max_staleness {MAX_STALENESS:?})");
    assert!(fleet.applied_revision(0).await > applied, "the poller applied the revision");
    assert_eq!(fleet.replicas[0].metric(FLUSHES).await, flushes, "targeted, not a flush");
    // An ACL change drops every decision (it does not say whom it reaches)
    // but no identity; a flush would have dropped both.
    let misses = fleet.replicas[0].metric(MISSES).await;
    assert_eq!(fleet.log_write(0, &other.raw, &project).await, 200);
    assert_eq!(fleet.replicas[0].metric(MISSES).await, misses + 1.0, "another token's identity is still cached");

    // The store becomes unreachable too. What is cached stays in force
    // until max_staleness after the last successful read of the log (at
    // most POLL ago), then nothing cached may be served: fail closed,
    // whatever the token.
    fleet.relay.as_ref().unwrap().cut();
    let cut = Instant::now();
    assert_eq!(fleet.log_write(0, &other.raw, &project).await, 200, "cached, synced within max_staleness");
    wait::until_every("cached answers expire", MAX_STALENESS + SLACK, Duration::from_millis(10), async || {
        fleet.log_write(0, &other.raw, &project).await == 503
    })
    .await;
    println!("store cut with the feed down: 503 after {:?} (max_staleness {MAX_STALENESS:?})", cut.elapsed());
    let forwarded_while_cached = fleet.upstream.logs3_rows().len();
    let until = Instant::now() + FAILS_CLOSED_FOR;
    while Instant::now() < until {
        assert_unavailable(&fleet, &other.raw, &project, "a cached writer").await;
        assert_unavailable(&fleet, &writer.raw, &project, "revoked writer").await;
        assert_unavailable(&fleet, &unseen.raw, &project, "a valid token never seen before").await;
        assert_unavailable(&fleet, &crate::support::policy::new_token(), &project, "an unknown token").await;
        tokio::time::sleep(EVERY).await;
    }
    let (status, ready) = fleet.readyz(0).await;
    assert_eq!(status, 503, "store unreachable: {ready}");
    assert_eq!(ready["policy_store"], "unreachable", "{ready}");
    assert_eq!(fleet.upstream.logs3_rows().len(), forwarded_while_cached, "nothing forwarded once expired");

    // A revocation committed while both are down.
    sql.execute("DELETE FROM acls WHERE id = $1", &[&unseen_acl]).await.unwrap();
    let regrant = sql
        .query_one(
            "INSERT INTO acls (id, object_type, object_id, user_id, permission) \
             VALUES (gen_random_uuid()::text, 'project_log', $1, $2, 'update') RETURNING id",
            &[&project, &writer.user_id],
        )
        .await
        .unwrap()
        .get::<_, String>(0);

    // Both back: ready, subscribed, caught up, and deciding from the store.
    fleet.relay.as_ref().unwrap().restore();
    fleet.feed.restart();
    wait::until_every("ready after the store came back", Duration::from_secs(15), EVERY, async || {
        match fleet.readyz(0).await {
            (200, _) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    fleet.wait_feed_up(Duration::from_secs(15)).await;
    fleet.converge(Duration::from_secs(15)).await;
    assert_eq!(fleet.log_write(0, &writer.raw, &project).await, 200, "granted again while both were down");
    assert_eq!(fleet.log_write(0, &unseen.raw, &project).await, 403, "revoked while both were down");

    // And the feed carries the next revocation again.
    let before = fleet.applied_revision(0).await;
    sql.execute("DELETE FROM acls WHERE id = $1", &[&regrant]).await.unwrap();
    fleet
        .until_all("revocation after recovery", Duration::from_secs(2), |i| {
            let (fleet, writer, project) = (&fleet, &writer, &project);
            async move { fleet.log_write(i, &writer.raw, project).await == 403 }
        })
        .await;
    fleet.converge(Duration::from_secs(2)).await;
    assert!(fleet.applied_revision(0).await > before, "the revocation arrived through the feed");
}
