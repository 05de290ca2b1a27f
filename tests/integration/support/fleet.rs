//! A fleet for tests (contract: Policy file, §8): one postgres policy store (a fresh
//! database), one private feed server (Redis or NATS), N `loggate`
//! replicas sharing both — optionally reaching Postgres through a cuttable
//! [`Relay`] — and the fake data plane. Plus what fleet tests do with it:
//! admin API calls, plain SQL, one-row writes, and waiting until every
//! replica has applied the store's revision.

use super::admin::AdminApi;
use super::feeds::{NatsServer, RedisServer};
use super::gateway::{Gateway, GatewayBuilder};
use super::pg::{Relay, TestDb};
use super::policy::PolicyBuilder;
use super::upstream::Upstream;
use loggate::policy::postgres::PgStore;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub use super::admin::ADMIN_TOKEN;
pub const CHANNEL: &str = "loggate.policy.fleet";

/// The private feed server of a fleet.
pub enum FeedServer {
    Redis(RedisServer),
    Nats(NatsServer),
}

impl FeedServer {
    fn kind(&self) -> &'static str {
        match self {
            FeedServer::Redis(_) => "redis",
            FeedServer::Nats(_) => "nats",
        }
    }

    fn url(&self) -> String {
        match self {
            FeedServer::Redis(s) => s.url(),
            FeedServer::Nats(s) => s.url(),
        }
    }

    pub fn stop(&mut self) {
        match self {
            FeedServer::Redis(s) => s.stop(),
            FeedServer::Nats(s) => s.stop(),
        }
    }

    pub fn restart(&mut self) {
        match self {
            FeedServer::Redis(s) => s.restart(),
            FeedServer::Nats(s) => s.restart(),
        }
    }
}

/// Configures a fleet.
pub struct FleetBuilder {
    feed: &'static str,
    replicas: usize,
    relay: bool,
    max_staleness: String,
    extra_toml: String,
}

/// A running fleet. Replica `i` is `replicas[i]`.
pub struct Fleet {
    pub replicas: Vec<Gateway>,
    pub upstream: Upstream,
    pub feed: FeedServer,
    /// Between the replicas and Postgres, when asked for.
    pub relay: Option<Relay>,
    /// The store, reached directly (never through the relay).
    pub store: PgStore,
    pub http: reqwest::Client,
    pub db: TestDb,
}

impl FleetBuilder {
    /// Replicas fed by a private `redis-server`.
    pub fn redis() -> Self {
        Self::with_feed("redis")
    }

    /// Replicas fed by a private `nats-server`.
    pub fn nats() -> Self {
        Self::with_feed("nats")
    }

    fn with_feed(feed: &'static str) -> Self {
        FleetBuilder { feed, replicas: 2, relay: false, max_staleness: "10s".into(), extra_toml: String::new() }
    }

    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// The replicas reach Postgres through a [`Relay`] the test can cut.
    pub fn via_relay(mut self) -> Self {
        self.relay = true;
        self
    }

    /// `invalidation.max_staleness` (e.g. `"500ms"`).
    pub fn max_staleness(mut self, d: &str) -> Self {
        self.max_staleness = d.to_owned();
        self
    }

    /// Whole TOML sections appended to every replica's config.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    /// Seeds a fresh database with `policy` (migrations + one import
    /// revision), then starts the replicas and waits until each one is
    /// subscribed to the feed.
    pub async fn start(self, policy: &PolicyBuilder) -> Fleet {
        let db = TestDb::create().await;
        let store = PgStore::open(&db.url, Duration::from_secs(10)).expect("store");
        store.migrate().await.expect("migrations");
        store.import(&serde_json::from_value(policy.to_json()).expect("policy document"), true).await.expect("import");

        let feed = match self.feed {
            "redis" => FeedServer::Redis(RedisServer::start()),
            _ => FeedServer::Nats(NatsServer::start()),
        };
        let upstream = Upstream::start(policy.upstream_orgs()).await;
        let relay = match self.relay {
            true => Some(Relay::to_server().await),
            false => None,
        };
        let store_url = match &relay {
            Some(r) => db.url_via(r),
            None => db.url.clone(),
        };
        let builder = GatewayBuilder::new(&upstream.url)
            .postgres(&store_url)
            .invalidation(feed.kind(), &feed.url(), CHANNEL, &self.max_staleness)
            .env("LOGGATE_ADMIN_TOKEN", ADMIN_TOKEN)
            // Revoked tokens are asked about again and again: no 429s for that.
            .extra_toml("[limits]\nauth_failures_per_minute = 0\n")
            .extra_toml(&self.extra_toml);
        let empty = PolicyBuilder::new();
        let starts = (0..self.replicas).map(|_| builder.clone().start(&empty));
        let replicas = futures_util::future::join_all(starts).await;
        let fleet = Fleet { replicas, upstream, feed, relay, store, http: reqwest::Client::new(), db };
        fleet.wait_feed_up(Duration::from_secs(15)).await;
        fleet
    }
}

/// A `/logs3` row aimed at one object (`project_log`, `experiment` or
/// `dataset`), a delete row when `delete` (contract: Permission model/§4: `update` vs `delete`).
pub fn row(object_type: &str, id: &str, delete: bool) -> Value {
    let mut row = match object_type {
        "project_log" => json!({"id": "r", "project_id": id, "log_id": "g"}),
        "experiment" => json!({"id": "r", "experiment_id": id}),
        "dataset" => json!({"id": "r", "dataset_id": id}),
        other => panic!("no /logs3 row targets a {other}"),
    };
    if delete {
        row["_object_delete"] = json!(true);
    }
    row
}

impl Fleet {
    /// `POST /logs3` with one row on replica `i`: `(status, body)`.
    pub async fn write(&self, i: usize, token: &str, row: &Value) -> (u16, Value) {
        let body = json!({"rows": [row], "api_version": 2});
        let r = self
            .http
            .post(format!("{}/logs3", self.replicas[i].url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("POST /logs3");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The status of one `project_log` update on replica `i`.
    pub async fn log_write(&self, i: usize, token: &str, project_id: &str) -> u16 {
        self.write(i, token, &row("project_log", project_id, false)).await.0
    }

    /// One admin API call on replica `i`: `(status, body)`.
    pub async fn admin(&self, i: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, v) = self.admin_api(i).call(method, path, body).await;
        (status.as_u16(), v)
    }

    /// An admin API call on replica `i` that must answer 200; its body.
    pub async fn admin_ok(&self, i: usize, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.admin_api(i).ok(method, path, body).await
    }

    /// The admin API of replica `i`.
    pub fn admin_api(&self, i: usize) -> AdminApi<'_> {
        AdminApi::new(&self.http, &self.replicas[i].admin_url, ADMIN_TOKEN)
    }

    /// `GET /readyz` of replica `i`: `(status, body)`.
    pub async fn readyz(&self, i: usize) -> (u16, Value) {
        let r = self.http.get(format!("{}/readyz", self.replicas[i].admin_url)).send().await.expect("/readyz");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `loggate_policy_revision` of replica `i`: the last revision its
    /// feed applied.
    pub async fn applied_revision(&self, i: usize) -> u64 {
        self.replicas[i].metric("loggate_policy_revision").await as u64
    }

    /// Waits until every replica reports `loggate_invalidation_feed_up 1`.
    pub async fn wait_feed_up(&self, limit: Duration) {
        self.wait_feed(1.0, limit).await
    }

    /// Waits until every replica reports `loggate_invalidation_feed_up 0`.
    pub async fn wait_feed_down(&self, limit: Duration) {
        self.wait_feed(0.0, limit).await
    }

    async fn wait_feed(&self, want: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        for (i, gw) in self.replicas.iter().enumerate() {
            while gw.metric("loggate_invalidation_feed_up").await != want {
                assert!(
                    Instant::now() < deadline,
                    "replica {i}: feed_up never became {want}; output:\n{}",
                    gw.output()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Waits until every replica has applied the store's current revision
    /// (read from the database now); returns it.
    pub async fn converge(&self, limit: Duration) -> u64 {
        let revision = self.store.revision().await.expect("store revision");
        let deadline = Instant::now() + limit;
        for i in 0..self.replicas.len() {
            loop {
                let applied = self.applied_revision(i).await;
                if applied >= revision {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {i} stuck at revision {applied}, store at {revision}; output:\n{}",
                    self.replicas[i].output()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        revision
    }

    /// Polls every replica until `probe(replica)` holds on all of them;
    /// returns how long that took, or panics after `limit`.
    pub async fn until_all<F, Fut>(&self, what: &str, limit: Duration, probe: F) -> Duration
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        let mut pending: Vec<usize> = (0..self.replicas.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for i in pending {
                if !probe(i).await {
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                assert!(started.elapsed() < limit, "{what}: replicas {pending:?} not there within {limit:?}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        started.elapsed()
    }
}
