//! Fleet recovery without a stampede (docs/operations.md, caching and
//! invalidation): two replicas on Postgres, many warm tokens, steady load
//! on replica 1, and the feed server restarted under it. What the store
//! sees in the 10 s after the restart is compared with a quiet 10 s before
//! it: statements and transactions (counted on the wire by the relay in
//! front of Postgres), rows read (`pg_stat_database`); and what the
//! callers see: answers other than 200, and the p99 latency.
//!
//! The numbers are printed (`--no-capture`); benches/results holds a run.
//! `LOGGATE_RECOVERY_TOKENS` sets the number of warm tokens (default 5,000).
//!
//! And when the change log cannot cover what a replica missed (revisions
//! pruned from it), the replica flushes instead.

use crate::support::fleet::{Fleet, FleetBuilder};
use crate::support::load::{Load, Window, Writer};
use crate::support::pg::{Counts, DbStats};
use crate::support::policy::PolicyBuilder;
use std::time::{Duration, Instant};

/// Projects the tokens write to (each token to one).
const PROJECTS: usize = 50;
/// Requests per second on replica 1, for the whole measurement.
const RATE: u32 = 200;
/// Each measured stretch.
const WINDOW: Duration = Duration::from_secs(10);
/// How long the feed server is gone (the restart the issue measured).
const FEED_GONE: Duration = Duration::from_millis(1700);
/// Requests in flight while the tokens are warmed.
const WARM_CONCURRENCY: usize = 16;
/// `pg_stat_database` counters reach the view up to 10 s late (an idle
/// backend reports within `PGSTAT_IDLE_INTERVAL`): its readings start after
/// this long of steady load, and the restart's are read this long after
/// the window (so they span 21 s; the wire counts of the same span are
/// printed beside them).
const STATS_LAG: Duration = Duration::from_secs(11);
/// What the catch-up may add to the quiet period's statements (each one
/// transaction; `pg_stat_database` counts two, the prepare and the
/// execution): per replica,
/// a poll or two while the feed is down and one catch-up after it returns,
/// plus the bridges republishing what they could not publish meanwhile.
const CATCH_UP_ALLOWANCE: u64 = 40;
/// The p99 after the restart may be twice the one before, or this, the
/// larger: below it, scheduling noise on a shared 2-core machine dominates.
const P99_FLOOR: Duration = Duration::from_millis(100);

fn tokens() -> usize {
    std::env::var("LOGGATE_RECOVERY_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

/// One organization, [`PROJECTS`] projects, `n` service tokens each allowed
/// to write one project's log through an ACL of its own.
fn policy(n: usize) -> (PolicyBuilder, Vec<Writer>) {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let projects: Vec<String> = (0..PROJECTS).map(|i| policy.project(&org, &format!("p{i}"))).collect();
    let writers = (0..n)
        .map(|i| {
            let token = policy.service_token(&org, &format!("writer-{i}"));
            let project_id = projects[i % PROJECTS].clone();
            policy.grant_user(&token.user_id, "update", "project_log", &project_id);
            Writer { token: token.raw, project_id }
        })
        .collect();
    (policy, writers)
}

/// One write per token on replica 1, so that every identity and decision is cached.
async fn warm(fleet: &Fleet, writers: &[Writer]) {
    use futures_util::StreamExt;
    let statuses: Vec<u16> = futures_util::stream::iter(writers)
        .map(|w| fleet.log_write(0, &w.token, &w.project_id))
        .buffer_unordered(WARM_CONCURRENCY)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "every warm-up write is allowed");
}

/// What the store and the callers saw in one stretch.
#[derive(Debug)]
struct Stretch {
    wire: Counts,
    requests: Window,
}

impl Stretch {
    fn line(&self, name: &str) -> String {
        format!(
            "{name}: {} statements in {} round trips; {} requests, non-200 {:?}, p50 {:?}, p99 {:?}",
            self.wire.statements,
            self.wire.round_trips,
            self.requests.len(),
            self.requests.failures(),
            self.requests.quantile(0.50),
            self.requests.quantile(0.99),
        )
    }
}

/// `pg_stat_database` between two readings, with the wire counts of the same span.
fn stats_line(name: &str, db: DbStats, wire: Counts) -> String {
    format!(
        "{name}: pg_stat_database {} transactions, {} rows returned, {} rows fetched; on the wire {} statements, {} round trips",
        db.transactions, db.rows_returned, db.rows_fetched, wire.statements, wire.round_trips
    )
}

fn wire(fleet: &Fleet) -> Counts {
    fleet.relay.as_ref().expect("a relay").counts()
}

fn minus(a: Counts, b: Counts) -> Counts {
    Counts { statements: a.statements - b.statements, round_trips: a.round_trips - b.round_trips }
}

async fn restart_under_load(builder: FleetBuilder, feed: &str) {
    let n = tokens();
    let (policy, writers) = policy(n);
    let mut fleet = builder.replicas(2).via_relay().start(&policy).await;
    let warming = Instant::now();
    warm(&fleet, &writers).await;
    println!("{feed}: {n} tokens warmed on replica 1 in {:?}", warming.elapsed());

    let load = Load::start(&fleet.replicas[0].url, writers, RATE);
    tokio::time::sleep(STATS_LAG).await;

    let (quiet_from, w0, d0) = (Instant::now(), wire(&fleet), fleet.db.stats().await);
    tokio::time::sleep(WINDOW).await;
    let (quiet_to, w1, d1) = (Instant::now(), wire(&fleet), fleet.db.stats().await);

    let flushes = fleet.replicas[0].metric("loggate_invalidations_total{kind=\"flush\"}").await;
    fleet.feed.stop();
    tokio::time::sleep(FEED_GONE).await;
    fleet.feed.restart();
    tokio::time::sleep(WINDOW.saturating_sub(quiet_to.elapsed())).await;
    let (after_to, w2) = (Instant::now(), wire(&fleet));
    tokio::time::sleep(STATS_LAG).await;
    let (w3, d3) = (wire(&fleet), fleet.db.stats().await);
    load.stop();

    let quiet = Stretch { wire: minus(w1, w0), requests: load.window(quiet_from, quiet_to) };
    let after = Stretch { wire: minus(w2, w1), requests: load.window(quiet_to, after_to) };
    let flushed = fleet.replicas[0].metric("loggate_invalidations_total{kind=\"flush\"}").await - flushes;
    println!("{feed}: {n} warm tokens, {RATE} req/s on replica 1, feed server gone for {FEED_GONE:?}");
    println!("{feed}: {}", quiet.line("quiet 10 s"));
    println!("{feed}: {}", after.line("10 s from the feed's restart"));
    println!("{feed}: {}", stats_line("quiet 10 s", d1 - d0, quiet.wire));
    println!("{feed}: {}", stats_line("21 s from the feed's restart", d3 - d1, minus(w3, w1)));
    println!("{feed}: replica 1 flushed {flushed} time(s)");

    fleet.wait_feed_up(Duration::from_secs(15)).await;
    let bound = 2 * quiet.wire.statements + CATCH_UP_ALLOWANCE;
    assert!(
        after.wire.statements <= bound,
        "{feed}: {} statements after the restart, bound {bound}",
        after.wire.statements
    );
    assert_eq!(quiet.requests.failures(), [], "{feed}: quiet period");
    assert_eq!(after.requests.failures(), [], "{feed}: after the restart");
    let p99_bound = (2 * quiet.requests.quantile(0.99)).max(P99_FLOOR);
    assert!(
        after.requests.quantile(0.99) <= p99_bound,
        "{feed}: p99 {:?} after the restart, bound {p99_bound:?}",
        after.requests.quantile(0.99)
    );
    assert_eq!(flushed, 0.0, "{feed}: the change log covered the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_load_costs_no_stampede() {
    restart_under_load(FleetBuilder::redis(), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_under_load_costs_no_stampede() {
    restart_under_load(FleetBuilder::nats(), "nats").await;
}

/// A revision missing from the change log (pruned) cannot be caught up:
/// the poller flushes every replica, which takes the revocation it held
/// into account; the feed coming back flushes nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_change_log_flushes() {
    const FLUSHES: &str = "loggate_invalidations_total{kind=\"flush\"}";
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project = policy.project(&org, "checkout");
    let writer = policy.service_token(&org, "writer");
    let acl = policy.grant_user(&writer.user_id, "update", "project_log", &project);
    let mut fleet = FleetBuilder::redis().replicas(2).max_staleness("2s").start(&policy).await;
    for i in [0, 1, 0, 1] {
        assert_eq!(fleet.log_write(i, &writer.raw, &project).await, 200);
    }
    fleet.feed.stop();
    fleet.wait_feed_down(Duration::from_secs(10)).await;
    let mut flushes = Vec::new();
    for gw in &fleet.replicas {
        flushes.push(gw.metric(FLUSHES).await);
    }

    // One transaction revokes the grant and prunes its own revision from
    // the log: no replica can learn what it changed.
    let sql = fleet.db.client().await;
    sql.batch_execute(&format!(
        "BEGIN; DELETE FROM acls WHERE id = '{acl}';
         DELETE FROM policy_changes WHERE revision = (SELECT revision FROM policy_revision WHERE singleton);
         COMMIT;"
    ))
    .await
    .unwrap();
    let lag = fleet
        .until_all("the pruned revocation", Duration::from_secs(4), |i| {
            let (fleet, writer, project) = (&fleet, &writer, &project);
            async move { fleet.log_write(i, &writer.raw, project).await == 403 }
        })
        .await;
    println!("pruned revocation denied on both replicas after {lag:?}");
    let revision = fleet.converge(Duration::from_secs(2)).await;
    for (i, gw) in fleet.replicas.iter().enumerate() {
        assert_eq!(gw.metric(FLUSHES).await, flushes[i] + 1.0, "replica {i} flushed once");
        flushes[i] += 1.0;
    }

    // The feed returns; a later revision arrives through it.
    fleet.feed.restart();
    fleet.wait_feed_up(Duration::from_secs(15)).await;
    sql.execute("INSERT INTO projects (id, org_id, name) VALUES (gen_random_uuid()::text, $1, 'later')", &[&org])
        .await
        .unwrap();
    assert!(fleet.converge(Duration::from_secs(5)).await > revision);
    for (i, gw) in fleet.replicas.iter().enumerate() {
        assert_eq!(gw.metric(FLUSHES).await, flushes[i], "replica {i}: nothing more to flush");
    }
}
