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
use crate::support::gateway::{Gateway, GatewayBuilder};
use crate::support::policy::{PolicyBuilder, Token};
use crate::support::upstream::Upstream;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use loggate::policy::Store;
use loggate::policy::file::Reload;
use loggate::server::Shared;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHANNEL: &str = "loggate.policy.test";
const FEED_TIMEOUT: Duration = Duration::from_secs(15);

/// Org "acme", project "checkout", three writers each holding `update` on
/// the project log through an ACL of their own.
struct World {
    policy: PolicyBuilder,
    project_id: String,
    writers: Vec<(Token, String)>,
}

fn world() -> World {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project_id = policy.project(&org, "checkout");
    let writers = (0..3)
        .map(|i| {
            let token = policy.service_token(&org, &format!("writer-{i}"));
            let acl = policy.grant_user(&token.user_id, "update", "project_log", &project_id);
            (token, acl)
        })
        .collect();
    World { policy, project_id, writers }
}

impl World {
    fn token(&self, i: usize) -> &Token {
        &self.writers[i].0
    }
    fn acl(&self, i: usize) -> String {
        self.writers[i].1.clone()
    }
    fn logs3_body(&self) -> String {
        serde_json::json!({"rows": [{"id": "r1", "project_id": self.project_id, "log_id": "g", "input": "x"}], "api_version": 2})
            .to_string()
    }
}

/// Polls `check` until it is true or `timeout` passes.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// The real binary.

async fn post_logs3(gw: &Gateway, w: &World, token: &Token) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/logs3", gw.url))
        .bearer_auth(&token.raw)
        .header("content-type", "application/json")
        .body(w.logs3_body())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn metric(gw: &Gateway, series: &str) -> f64 {
    sample(&gw.metrics().await, series).unwrap_or(0.0)
}

async fn feed_up(gw: &Gateway, up: bool) -> Duration {
    let want = if up { 1.0 } else { 0.0 };
    eventually(FEED_TIMEOUT, &format!("loggate_invalidation_feed_up == {want}"), || async {
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
    let mut w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let gw =
        GatewayBuilder::new(&upstream.url).invalidation("redis", &redis.url(), CHANNEL, "10s").start(&w.policy).await;
    feed_up(&gw, true).await;
    assert_eq!(readyz(&gw).await.1["invalidation_feed"], "up");

    let writer = w.token(0).clone();
    assert_eq!(post_logs3(&gw, &w, &writer).await, 200);
    let hits = metric(&gw, HITS).await;
    assert_eq!(post_logs3(&gw, &w, &writer).await, 200);
    assert!(metric(&gw, HITS).await >= hits + 2.0, "identity and decision came from the cache");

    // The admin revokes the writer's grant: revision 2 changes that ACL.
    let acl = w.acl(0);
    assert!(w.policy.remove_acl(&acl));
    gw.write_policy(&w.policy);
    assert_eq!(redis.publish(CHANNEL, &revision_message(2, &[("acl", &acl)])).await, 1, "one subscriber");
    eventually(Duration::from_secs(2), "the revoked grant is denied", || async {
        post_logs3(&gw, &w, &writer).await == 403
    })
    .await;
    eventually(Duration::from_secs(2), "revision 2 applied", || async {
        let m = gw.metrics().await;
        sample(&m, "loggate_policy_revision") == Some(2.0)
            && sample(&m, "loggate_invalidations_total{kind=\"acl\"}") == Some(1.0)
            && sample(&m, "loggate_revocation_lag_seconds_count") == Some(1.0)
    })
    .await;
    let lag = metric(&gw, "loggate_revocation_lag_seconds_sum").await;
    assert!((0.0..2.0).contains(&lag), "lag {lag}s");
    // Another writer was not affected by the revocation.
    assert_eq!(post_logs3(&gw, &w, w.token(1)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_loss_is_noticed_and_every_reconnect_flushes() {
    let mut redis = RedisServer::start();
    let mut w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let gw =
        GatewayBuilder::new(&upstream.url).invalidation("redis", &redis.url(), CHANNEL, "10s").start(&w.policy).await;
    feed_up(&gw, true).await;
    let writer = w.token(0).clone();
    assert_eq!(post_logs3(&gw, &w, &writer).await, 200);

    // The server drops the subscriber connection: resubscribed and flushed.
    let flushes = metric(&gw, FLUSHES).await;
    assert_ne!(redis.kill_pubsub_clients(), "0", "the gateway was subscribed");
    eventually(FEED_TIMEOUT, "a flush after CLIENT KILL", || async { metric(&gw, FLUSHES).await > flushes }).await;
    feed_up(&gw, true).await;

    // The server goes away; the token is revoked while it is down.
    redis.stop();
    feed_up(&gw, false).await;
    let (status, body) = readyz(&gw).await;
    assert_eq!((status, &body["invalidation_feed"]), (200, &serde_json::json!("down")), "feed down alone keeps ready");
    assert!(w.policy.remove_token(&writer.id));
    let before_reload = metric(&gw, FLUSHES).await;
    gw.write_policy(&w.policy);
    // The file store reloads on its own poll; wait for it so the store
    // itself knows of the revocation before the feed returns.
    eventually(FEED_TIMEOUT, "the policy file reloaded", || async { metric(&gw, FLUSHES).await > before_reload }).await;
    let flushes = metric(&gw, FLUSHES).await;
    redis.restart();
    feed_up(&gw, true).await;
    assert!(metric(&gw, FLUSHES).await > flushes, "reconnect flushed");
    assert_eq!(post_logs3(&gw, &w, &writer).await, 401, "revoked token denied after reconnect");
    assert_eq!(post_logs3(&gw, &w, w.token(1)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_feed_down_past_max_staleness_cached_decisions_are_rechecked() {
    let mut redis = RedisServer::start();
    let w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let gw =
        GatewayBuilder::new(&upstream.url).invalidation("redis", &redis.url(), CHANNEL, "400ms").start(&w.policy).await;
    feed_up(&gw, true).await;
    let writer = w.token(0);
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let misses = metric(&gw, MISSES).await;
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    assert_eq!(metric(&gw, MISSES).await, misses, "feed up: older than max_staleness is still served");

    redis.stop();
    feed_up(&gw, false).await;
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let misses = metric(&gw, MISSES).await;
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    assert_eq!(metric(&gw, MISSES).await, misses + 2.0, "identity and decision recomputed from the store");
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    assert_eq!(metric(&gw, MISSES).await, misses + 2.0, "fresh again: served from the cache");
    assert_eq!(readyz(&gw).await.0, 200);

    redis.restart();
    feed_up(&gw, true).await;
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let misses = metric(&gw, MISSES).await;
    assert_eq!(post_logs3(&gw, &w, writer).await, 200);
    assert_eq!(metric(&gw, MISSES).await, misses, "feed back up: no staleness bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_revision_message_flips_a_cached_allow_and_reconnects_flush() {
    let mut nats = NatsServer::start();
    let mut w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let gw =
        GatewayBuilder::new(&upstream.url).invalidation("nats", &nats.url(), CHANNEL, "10s").start(&w.policy).await;
    feed_up(&gw, true).await;
    let writer = w.token(0).clone();
    assert_eq!(post_logs3(&gw, &w, &writer).await, 200);
    assert_eq!(post_logs3(&gw, &w, &writer).await, 200);

    let acl = w.acl(0);
    w.policy.remove_acl(&acl);
    gw.write_policy(&w.policy);
    nats.publish(CHANNEL, &revision_message(7, &[("acl", &acl)])).await;
    eventually(Duration::from_secs(2), "the revoked grant is denied", || async {
        post_logs3(&gw, &w, &writer).await == 403
    })
    .await;
    eventually(Duration::from_secs(2), "revision 7 applied", || async {
        let m = gw.metrics().await;
        sample(&m, "loggate_policy_revision") == Some(7.0)
            && sample(&m, "loggate_revocation_lag_seconds_count") == Some(1.0)
    })
    .await;

    let flushes = metric(&gw, FLUSHES).await;
    nats.stop();
    feed_up(&gw, false).await;
    assert_eq!(readyz(&gw).await.0, 200);
    nats.restart();
    feed_up(&gw, true).await;
    assert!(metric(&gw, FLUSHES).await > flushes, "reconnect flushed");
    assert_eq!(post_logs3(&gw, &w, w.token(1)).await, 200);
}

// ---------------------------------------------------------------------------
// In-process, with nothing but the feed to invalidate the cache.

struct InProcess {
    shared: Arc<Shared>,
    policy_path: std::path::PathBuf,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

async fn in_process(w: &World, feed: &str, url: &str) -> InProcess {
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

    async fn post_logs3(&self, w: &World, token: &Token) -> u16 {
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
        eventually(FEED_TIMEOUT, &format!("feed_up == {want}"), || async {
            self.metric("loggate_invalidation_feed_up") == want
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_feed_alone_revokes_and_no_revocation_is_lost_across_reconnects() {
    let mut redis = RedisServer::start();
    let mut w = world();
    let gw = in_process(&w, "redis", &redis.url()).await;
    gw.feed_up(true).await;
    let (t0, t1, t2) = (w.token(0).clone(), w.token(1).clone(), w.token(2).clone());
    for t in [&t0, &t1, &t2] {
        assert_eq!(gw.post_logs3(&w, t).await, 200);
    }

    // Targeted: revoke t0's grant. Without a message the cache keeps serving.
    let acl = w.acl(0);
    w.policy.remove_acl(&acl);
    gw.replace_policy(&w.policy);
    assert_eq!(gw.post_logs3(&w, &t0).await, 200, "cached, and nothing announced the change yet");
    let flushes = gw.metric(FLUSHES);
    redis.publish(CHANNEL, &revision_message(2, &[("acl", &acl)])).await;
    let took = eventually(Duration::from_secs(2), "t0 denied", || async { gw.post_logs3(&w, &t0).await == 403 }).await;
    println!("revocation by message took {took:?}");
    assert_eq!(gw.metric(FLUSHES), flushes, "targeted, not a flush");
    assert_eq!(gw.metric("loggate_invalidations_total{kind=\"acl\"}"), 1.0);

    // The subscriber is cut off while t1 is revoked; the message is lost.
    assert_ne!(redis.kill_pubsub_clients(), "0");
    w.policy.remove_token(&t1.id);
    gw.replace_policy(&w.policy);
    let receivers = redis.publish(CHANNEL, &revision_message(3, &[("service_token", &t1.id)])).await;
    println!("revision 3 reached {receivers} subscriber(s)");
    eventually(FEED_TIMEOUT, "reconnect flush", || async { gw.metric(FLUSHES) > flushes }).await;
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
    eventually(Duration::from_secs(2), "revision 4", || async { gw.metric("loggate_policy_revision") == 4.0 }).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.metric("loggate_invalidations_total{kind=\"service_token\"}"), before + 1.0, "duplicate ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_feed_alone_revokes_and_no_revocation_is_lost_across_a_restart() {
    let mut nats = NatsServer::start();
    let mut w = world();
    let gw = in_process(&w, "nats", &nats.url()).await;
    gw.feed_up(true).await;
    let (t0, t1) = (w.token(0).clone(), w.token(1).clone());
    assert_eq!(gw.post_logs3(&w, &t0).await, 200);
    assert_eq!(gw.post_logs3(&w, &t1).await, 200);

    w.policy.remove_token(&t0.id);
    gw.replace_policy(&w.policy);
    assert_eq!(gw.post_logs3(&w, &t0).await, 200, "cached, nothing announced yet");
    nats.publish(CHANNEL, &revision_message(5, &[("service_token", &t0.id)])).await;
    eventually(Duration::from_secs(2), "t0 denied", || async { gw.post_logs3(&w, &t0).await == 401 }).await;
    assert_eq!(gw.post_logs3(&w, &t1).await, 200, "t1 untouched");

    nats.stop();
    gw.feed_up(false).await;
    w.policy.remove_token(&t1.id);
    gw.replace_policy(&w.policy);
    nats.restart();
    gw.feed_up(true).await;
    assert_eq!(gw.post_logs3(&w, &t1).await, 401, "revoked token denied after reconnect");
}
