//! The invalidation feed (docs/operations.md, caching and invalidation) against real Redis and NATS servers
//! each test starts on a port of its own.
//!
//! Two kinds of stories:
//! - the real `loggate` binary (file store, `feed = "redis" | "nats"`): a
//!   revision message flips a cached decision and is measured in
//!   `/metrics`; the feed going down and up shows in
//!   `loggate_invalidation_feed_up` and flushes; past `max_staleness`
//!   cached decisions are re-checked; `/readyz` stays ready.
//! - the gateway in-process with only the feed running (no file watcher):
//!   the policy is swapped under the cache without any flush, so only the
//!   feed can make a revocation take effect. This proves targeted
//!   invalidation, and that a revocation published while the subscriber
//!   was disconnected is not lost (flush on reconnect).

use crate::support::feeds::{NatsServer, RedisServer, revision_message, sample};
use crate::support::gateway::Gateway;
use crate::support::policy::{PolicyBuilder, Token};
use crate::support::upstream::Upstream;
use crate::support::wait;
use crate::support::world::{Cast, World, cast, log_row};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use loggate::policy::Store;
use loggate::policy::file::Reload;
use loggate::server::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHANNEL: &str = "loggate.policy.test";
const FEED_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a revision message may take to show (a few ms when all is well).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);

/// `max_staleness` of the story where it runs out, and a wait past it:
/// cached entries growing older than the bound is the behaviour under test
/// (nothing observable happens when they do, so this one is a sleep).
const MAX_STALENESS: &str = "400ms";
const PAST_MAX_STALENESS: Duration = Duration::from_millis(600);

/// The standard cast with three more writers, each holding `update` on
/// checkout's project log through an ACL of its own (`w.writers[i]`).
const WRITERS: usize = 3;

// ---------------------------------------------------------------------------
// The real binary.

/// `POST /logs3` of one row to checkout's log as `token`: the status.
async fn post_logs3(w: &World, token: &Token) -> u16 {
    w.logs3(token, vec![log_row(&w.project)]).await.status
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    sample(&gw.metrics().await, series).unwrap_or(0.0)
}

async fn feed_up(gw: &Gateway, up: bool) {
    let want = if up { 1.0 } else { 0.0 };
    wait::until(format!("loggate_invalidation_feed_up == {want}"), FEED_TIMEOUT, async || {
        sample(&gw.metrics().await, "loggate_invalidation_feed_up") == Some(want)
    })
    .await
}

async fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{}/readyz", gw.admin_url)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const FLUSHES: &str = "loggate_invalidations_total{kind=\"flush\"}";
const MISSES: &str = "loggate_decision_cache_total{result=\"miss\"}";
const HITS: &str = "loggate_decision_cache_total{result=\"hit\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revision_message_flips_a_cached_allow_and_records_the_lag() {
    let redis = RedisServer::start();
    let mut w = World::builder()
        .writers(WRITERS)
        .gateway(|b| b.invalidation("redis", &redis.url(), CHANNEL, "10s"))
        .start()
        .await;
    feed_up(&w.gw, true).await;
    assert_eq!(readyz(&w.gw).await.1["invalidation_feed"], "up");

    let writer = w.writers[0].token.clone();
    assert_eq!(post_logs3(&w, &writer).await, 200);
    let hits = metric(&w.gw, HITS).await;
    assert_eq!(post_logs3(&w, &writer).await, 200);
    assert!(metric(&w.gw, HITS).await >= hits + 2.0, "identity and decision came from the cache");

    // The admin revokes the writer's grant: revision 2 changes that ACL.
    let acl = w.writers[0].acl.clone();
    assert!(w.policy.remove_acl(&acl));
    w.gw.write_policy(&w.policy);
    assert_eq!(redis.publish(CHANNEL, &revision_message(2, &[("acl", &acl)])).await, 1, "one subscriber");
    wait::until("the revoked grant is denied", MESSAGE_TIMEOUT, async || post_logs3(&w, &writer).await == 403).await;
    wait::until("revision 2 applied", MESSAGE_TIMEOUT, async || {
        let m = w.gw.metrics().await;
        sample(&m, "loggate_policy_revision") == Some(2.0)
            && sample(&m, "loggate_invalidations_total{kind=\"acl\"}") == Some(1.0)
            && sample(&m, "loggate_revocation_lag_seconds_count") == Some(1.0)
    })
    .await;
    let lag = metric(&w.gw, "loggate_revocation_lag_seconds_sum").await;
    assert!((0.0..2.0).contains(&lag), "lag {lag}s");
    // Another writer was not affected by the revocation.
    assert_eq!(post_logs3(&w, &w.writers[1].token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_loss_is_noticed_and_every_reconnect_flushes() {
    let mut redis = RedisServer::start();
    let mut w = World::builder()
        .writers(WRITERS)
        .gateway(|b| b.invalidation("redis", &redis.url(), CHANNEL, "10s"))
        .start()
        .await;
    feed_up(&w.gw, true).await;
    let writer = w.writers[0].token.clone();
    assert_eq!(post_logs3(&w, &writer).await, 200);

    // The server drops the subscriber connection: resubscribed and flushed.
    let flushes = metric(&w.gw, FLUSHES).await;
    assert_ne!(redis.kill_pubsub_clients(), "0", "the gateway was subscribed");
    wait::until("a flush after CLIENT KILL", FEED_TIMEOUT, async || metric(&w.gw, FLUSHES).await > flushes).await;
    feed_up(&w.gw, true).await;

    // The server goes away; the token is revoked while it is down.
    redis.stop();
    feed_up(&w.gw, false).await;
    let (status, body) = readyz(&w.gw).await;
    assert_eq!((status, &body["invalidation_feed"]), (200, &serde_json::json!("down")), "feed down alone keeps ready");
    assert!(w.policy.remove_token(&writer.id));
    let before_reload = metric(&w.gw, FLUSHES).await;
    w.gw.write_policy(&w.policy);
    // The file store reloads on its own poll; wait for it so the store
    // itself knows of the revocation before the feed returns.
    wait::until("the policy file reloaded", FEED_TIMEOUT, async || metric(&w.gw, FLUSHES).await > before_reload).await;
    let flushes = metric(&w.gw, FLUSHES).await;
    redis.restart();
    feed_up(&w.gw, true).await;
    assert!(metric(&w.gw, FLUSHES).await > flushes, "reconnect flushed");
    assert_eq!(post_logs3(&w, &writer).await, 401, "revoked token denied after reconnect");
    assert_eq!(post_logs3(&w, &w.writers[1].token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_feed_down_past_max_staleness_cached_decisions_are_rechecked() {
    let mut redis = RedisServer::start();
    let w = World::builder()
        .writers(WRITERS)
        .gateway(|b| b.invalidation("redis", &redis.url(), CHANNEL, MAX_STALENESS))
        .start()
        .await;
    feed_up(&w.gw, true).await;
    let writer = &w.writers[0].token;
    assert_eq!(post_logs3(&w, writer).await, 200);
    tokio::time::sleep(PAST_MAX_STALENESS).await;
    let misses = metric(&w.gw, MISSES).await;
    assert_eq!(post_logs3(&w, writer).await, 200);
    assert_eq!(metric(&w.gw, MISSES).await, misses, "feed up: older than max_staleness is still served");

    redis.stop();
    feed_up(&w.gw, false).await;
    assert_eq!(post_logs3(&w, writer).await, 200);
    tokio::time::sleep(PAST_MAX_STALENESS).await;
    let misses = metric(&w.gw, MISSES).await;
    assert_eq!(post_logs3(&w, writer).await, 200);
    assert_eq!(metric(&w.gw, MISSES).await, misses + 2.0, "identity and decision recomputed from the store");
    assert_eq!(post_logs3(&w, writer).await, 200);
    assert_eq!(metric(&w.gw, MISSES).await, misses + 2.0, "fresh again: served from the cache");
    assert_eq!(readyz(&w.gw).await.0, 200);

    redis.restart();
    feed_up(&w.gw, true).await;
    assert_eq!(post_logs3(&w, writer).await, 200);
    tokio::time::sleep(PAST_MAX_STALENESS).await;
    let misses = metric(&w.gw, MISSES).await;
    assert_eq!(post_logs3(&w, writer).await, 200);
    assert_eq!(metric(&w.gw, MISSES).await, misses, "feed back up: no staleness bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_revision_message_flips_a_cached_allow_and_reconnects_flush() {
    let mut nats = NatsServer::start();
    let mut w = World::builder()
        .writers(WRITERS)
        .gateway(|b| b.invalidation("nats", &nats.url(), CHANNEL, "10s"))
        .start()
        .await;
    feed_up(&w.gw, true).await;
    let writer = w.writers[0].token.clone();
    assert_eq!(post_logs3(&w, &writer).await, 200);
    assert_eq!(post_logs3(&w, &writer).await, 200);

    let acl = w.writers[0].acl.clone();
    w.policy.remove_acl(&acl);
    w.gw.write_policy(&w.policy);
    nats.publish(CHANNEL, &revision_message(7, &[("acl", &acl)])).await;
    wait::until("the revoked grant is denied", MESSAGE_TIMEOUT, async || post_logs3(&w, &writer).await == 403).await;
    wait::until("revision 7 applied", MESSAGE_TIMEOUT, async || {
        let m = w.gw.metrics().await;
        sample(&m, "loggate_policy_revision") == Some(7.0)
            && sample(&m, "loggate_revocation_lag_seconds_count") == Some(1.0)
    })
    .await;

    let flushes = metric(&w.gw, FLUSHES).await;
    nats.stop();
    feed_up(&w.gw, false).await;
    assert_eq!(readyz(&w.gw).await.0, 200);
    nats.restart();
    feed_up(&w.gw, true).await;
    assert!(metric(&w.gw, FLUSHES).await > flushes, "reconnect flushed");
    assert_eq!(post_logs3(&w, &w.writers[1].token).await, 200);
}

// ---------------------------------------------------------------------------
// In-process, with nothing but the feed to invalidate the cache.

struct InProcess {
    shared: Arc<Shared>,
    policy_path: std::path::PathBuf,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

async fn in_process(w: &Cast, feed: &str, url: &str) -> InProcess {
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.json");
    w.policy.write(&policy_path);
    let toml = format!(
        "[upstream]\napi_url = \"{up}\"\napp_url = \"{up}\"\n[policy]\nfile = \"{policy}\"\n\
         [invalidation]\nfeed = \"{feed}\"\nurl = \"{url}\"\nchannel = \"{CHANNEL}\"\nmax_staleness = \"10s\"\n",
        up = upstream.url,
        policy = policy_path.display(),
    );
    let config = loggate::config::Config::from_toml(&toml, std::iter::empty(), None).unwrap();
    let shared = loggate::server::build(config, None).await.unwrap();
    // No `spawn_upkeep`: file changes are only seen through `replace_policy`,
    // which swaps the policy without touching the cache.
    loggate::server::spawn_invalidation(&shared).await.unwrap();
    InProcess { shared, policy_path, _upstream: upstream, _dir: dir }
}

impl InProcess {
    /// Swaps the policy in force; only the feed can now invalidate.
    fn replace_policy(&self, policy: &PolicyBuilder) {
        policy.write(&self.policy_path);
        #[allow(unreachable_patterns)]
        match &*self.shared.gateway.store {
            Store::File(f) => assert!(matches!(f.reload(), Reload::Reloaded { .. })),
            _ => unreachable!("file store"),
        }
    }

    async fn post_logs3(&self, w: &Cast, token: &Token) -> u16 {
        let gw = &self.shared.gateway;
        let route = gw.route(&Method::POST, "/logs3").unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri("/logs3")
            .header(header::AUTHORIZATION, format!("Bearer {}", token.raw))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(w.logs3_body())))
            .unwrap();
        let mut facts = Default::default();
        match gw.handle(&route, request, "127.0.0.1".parse().unwrap(), &mut facts).await {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.status().as_u16(),
        }
    }

    fn metric(&self, series: &str) -> f64 {
        sample(&String::from_utf8(self.shared.gateway.metrics.render()).unwrap(), series).unwrap_or(0.0)
    }

    async fn feed_up(&self, up: bool) {
        let want = if up { 1.0 } else { 0.0 };
        wait::until(format!("feed_up == {want}"), FEED_TIMEOUT, async || {
            self.metric("loggate_invalidation_feed_up") == want
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_feed_alone_revokes_and_no_revocation_is_lost_across_reconnects() {
    let mut redis = RedisServer::start();
    let mut w = cast().with_writers(WRITERS);
    let gw = in_process(&w, "redis", &redis.url()).await;
    gw.feed_up(true).await;
    let (t0, t1, t2) = (w.writers[0].token.clone(), w.writers[1].token.clone(), w.writers[2].token.clone());
    for t in [&t0, &t1, &t2] {
        assert_eq!(gw.post_logs3(&w, t).await, 200);
    }

    // Targeted: revoke t0's grant. Without a message the cache keeps serving.
    let acl = w.writers[0].acl.clone();
    w.policy.remove_acl(&acl);
    gw.replace_policy(&w.policy);
    assert_eq!(gw.post_logs3(&w, &t0).await, 200, "cached, and nothing announced the change yet");
    let flushes = gw.metric(FLUSHES);
    redis.publish(CHANNEL, &revision_message(2, &[("acl", &acl)])).await;
    let published = Instant::now();
    wait::until("t0 denied", MESSAGE_TIMEOUT, async || gw.post_logs3(&w, &t0).await == 403).await;
    println!("revocation by message took {:?}", published.elapsed());
    assert_eq!(gw.metric(FLUSHES), flushes, "targeted, not a flush");
    assert_eq!(gw.metric("loggate_invalidations_total{kind=\"acl\"}"), 1.0);

    // The subscriber is cut off while t1 is revoked; the message is lost.
    assert_ne!(redis.kill_pubsub_clients(), "0");
    w.policy.remove_token(&t1.id);
    gw.replace_policy(&w.policy);
    let receivers = redis.publish(CHANNEL, &revision_message(3, &[("service_token", &t1.id)])).await;
    println!("revision 3 reached {receivers} subscriber(s)");
    wait::until("reconnect flush", FEED_TIMEOUT, async || gw.metric(FLUSHES) > flushes).await;
    gw.feed_up(true).await;
    assert_eq!(gw.post_logs3(&w, &t1).await, 401, "revoked token denied after reconnect");
    assert_eq!(gw.post_logs3(&w, &t2).await, 200, "t2 cached again");

    // The server is down while t2 is revoked: nothing can be announced.
    redis.stop();
    gw.feed_up(false).await;
    w.policy.remove_token(&t2.id);
    gw.replace_policy(&w.policy);
    assert_eq!(gw.post_logs3(&w, &t2).await, 200, "within max_staleness the cached identity is still served");
    redis.restart();
    gw.feed_up(true).await;
    assert_eq!(gw.post_logs3(&w, &t2).await, 401, "revoked token denied after reconnect");

    // Revision 4 follows the flushes as a targeted message, duplicates ignored.
    let before = gw.metric("loggate_invalidations_total{kind=\"service_token\"}");
    for _ in 0..2 {
        redis.publish(CHANNEL, &revision_message(4, &[("service_token", &t2.id)])).await;
    }
    wait::until("revision 4", MESSAGE_TIMEOUT, async || gw.metric("loggate_policy_revision") == 4.0).await;
    // The subscriber applies messages in the order they were published: once
    // revision 5 (changing nothing) is in, the duplicate has been handled.
    redis.publish(CHANNEL, &revision_message(5, &[])).await;
    wait::until("revision 5, after the duplicate", MESSAGE_TIMEOUT, async || {
        gw.metric("loggate_policy_revision") == 5.0
    })
    .await;
    assert_eq!(gw.metric("loggate_invalidations_total{kind=\"service_token\"}"), before + 1.0, "duplicate ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_feed_alone_revokes_and_no_revocation_is_lost_across_a_restart() {
    let mut nats = NatsServer::start();
    let mut w = cast().with_writers(WRITERS);
    let gw = in_process(&w, "nats", &nats.url()).await;
    gw.feed_up(true).await;
    let (t0, t1) = (w.writers[0].token.clone(), w.writers[1].token.clone());
    assert_eq!(gw.post_logs3(&w, &t0).await, 200);
    assert_eq!(gw.post_logs3(&w, &t1).await, 200);

    w.policy.remove_token(&t0.id);
    gw.replace_policy(&w.policy);
    assert_eq!(gw.post_logs3(&w, &t0).await, 200, "cached, nothing announced yet");
    nats.publish(CHANNEL, &revision_message(5, &[("service_token", &t0.id)])).await;
    wait::until("t0 denied", MESSAGE_TIMEOUT, async || gw.post_logs3(&w, &t0).await == 401).await;
    assert_eq!(gw.post_logs3(&w, &t1).await, 200, "t1 untouched");

    nats.stop();
    gw.feed_up(false).await;
    w.policy.remove_token(&t1.id);
    gw.replace_policy(&w.policy);
    nats.restart();
    gw.feed_up(true).await;
    assert_eq!(gw.post_logs3(&w, &t1).await, 401, "revoked token denied after reconnect");
}
