//! The feed and the store going away in postgres mode (docs/operations.md, caching and invalidation):
//! - feed down alone: `/readyz` stays 200; a revocation committed meanwhile
//!   (plain SQL: nothing can announce it) takes effect once
//!   `max_staleness` has passed, because decisions are re-checked against
//!   the store;
//! - store unreachable too (a cut relay between loggate and Postgres):
//!   503 `policy_unavailable` — never an allow, also for a token never seen
//!   before — and `/readyz` 503;
//! - both back: normal service, revisions flow through the feed again.

use crate::support::fleet::{Fleet, FleetBuilder, row};
use crate::support::policy::PolicyBuilder;
use crate::support::wait;
use std::time::{Duration, Instant};

const MAX_STALENESS: Duration = Duration::from_millis(500);
/// A wait past `max_staleness`: that every cached entry has outlived the
/// bound is the behaviour under test (nothing observable marks the moment).
const PAST_MAX_STALENESS: Duration = MAX_STALENESS.saturating_add(Duration::from_millis(100));
/// How long, and how often, the fail-closed answer is checked to hold.
const FAILS_CLOSED_FOR: Duration = Duration::from_secs(1);
const EVERY: Duration = Duration::from_millis(50);

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
    let unseen = policy.service_token(&org, "never-seen-before");
    let writer_acl = policy.grant_user(&writer.user_id, "update", "project_log", &project);
    let unseen_acl = policy.grant_user(&unseen.user_id, "update", "project_log", &project);
    let mut fleet = FleetBuilder::redis()
        .replicas(1)
        .via_relay()
        .max_staleness(&format!("{}ms", MAX_STALENESS.as_millis()))
        .start(&policy)
        .await;
    let sql = fleet.db.client().await;

    // Allowed and cached.
    assert_eq!(fleet.log_write(0, &writer.raw, &project).await, 200);
    assert_eq!(fleet.log_write(0, &writer.raw, &project).await, 200);

    // The feed goes away: still ready.
    fleet.feed.stop();
    fleet.wait_feed_down(Duration::from_secs(10)).await;
    let (status, ready) = fleet.readyz(0).await;
    assert_eq!(status, 200, "only the feed is down: {ready}");
    assert_eq!(ready["invalidation_feed"], "down", "{ready}");
    assert_eq!(fleet.log_write(0, &writer.raw, &project).await, 200);

    // Revoked by plain SQL while nothing can announce it: denied once
    // max_staleness has passed (plus slack for a loaded machine).
    let applied = fleet.applied_revision(0).await;
    sql.execute("DELETE FROM acls WHERE id = $1", &[&writer_acl]).await.unwrap();
    let lag = fleet
        .until_all("revocation with the feed down", MAX_STALENESS + Duration::from_secs(2), |i| {
            let (fleet, writer, project) = (&fleet, &writer, &project);
            async move { fleet.log_write(i, &writer.raw, project).await == 403 }
        })
        .await;
    println!("feed down: SQL revocation denied after {lag:?} (max_staleness {MAX_STALENESS:?})");
    assert_eq!(fleet.applied_revision(0).await, applied, "no revision arrived: the store answered, not the feed");

    // The store becomes unreachable too. Past max_staleness nothing cached
    // may be served: fail closed, whatever the token.
    let forwarded = fleet.upstream.logs3_rows().len();
    fleet.relay.as_ref().unwrap().cut();
    tokio::time::sleep(PAST_MAX_STALENESS).await;
    let until = Instant::now() + FAILS_CLOSED_FOR;
    while Instant::now() < until {
        assert_unavailable(&fleet, &writer.raw, &project, "revoked writer").await;
        assert_unavailable(&fleet, &unseen.raw, &project, "a valid token never seen before").await;
        assert_unavailable(&fleet, &crate::support::policy::new_token(), &project, "an unknown token").await;
        tokio::time::sleep(EVERY).await;
    }
    let (status, ready) = fleet.readyz(0).await;
    assert_eq!(status, 503, "store unreachable: {ready}");
    assert_eq!(ready["policy_store"], "unreachable", "{ready}");
    assert_eq!(fleet.upstream.logs3_rows().len(), forwarded, "nothing forwarded while the policy is unknown");

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
