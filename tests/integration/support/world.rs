//! The one harness of the stories: a cast (who and what the policy knows)
//! and a [`World`]: that cast, the fake data plane and a real gateway in
//! front of it, reached over HTTP.
//!
//! The standard cast is org "acme" with project "checkout" (plus an
//! experiment and a dataset in it) and a second org "globex"; one token per
//! kind of caller; optionally more writers, each with a grant of its own.
//! `World::start()` runs it on the file store; [`World::builder`] adjusts
//! the gateway's config, adds writers, puts the data plane behind TLS or the
//! policy into Postgres with the admin API on. A story whose policy is not
//! the standard one (e.g. one organization only) brings its own cast: any
//! type that implements [`HasPolicy`], through [`World::builder_for`].

use super::admin::{ADMIN_TOKEN, AdminApi};
use super::gateway::{Gateway, GatewayBuilder};
use super::http::{self, Resp};
use super::pg::{Relay, TestDb};
use super::policy::{PolicyBuilder, Token, new_id, new_token};
use super::upstream::Upstream;
use serde_json::{Value, json};
use std::ops::{Deref, DerefMut};

pub const ORG_NAME: &str = "acme";
pub const PROJECT_NAME: &str = "checkout";
pub const EXPERIMENT_NAME: &str = "baseline";
pub const DATASET_NAME: &str = "golden";

/// What a world is made of: a policy, and the raw tokens in it that must
/// never be echoed or logged.
pub trait HasPolicy {
    fn policy(&self) -> &PolicyBuilder;
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Something that goes into `Authorization: Bearer`: a [`Token`] or a raw string.
pub trait Bearer {
    fn bearer(&self) -> &str;
}

impl Bearer for Token {
    fn bearer(&self) -> &str {
        &self.raw
    }
}

impl Bearer for str {
    fn bearer(&self) -> &str {
        self
    }
}

impl Bearer for String {
    fn bearer(&self) -> &str {
        self
    }
}

impl<T: Bearer + ?Sized> Bearer for &T {
    fn bearer(&self) -> &str {
        (**self).bearer()
    }
}

/// The standard cast: the policy and its tokens.
pub struct Cast {
    pub policy: PolicyBuilder,
    pub org: String,
    pub project: String,
    pub experiment: String,
    pub dataset: String,
    /// A project of "acme" nobody but the creator (org level) may write.
    pub other_project: String,
    pub other_org: String,
    /// A project of "globex".
    pub foreign_project: String,
    /// `update` on checkout's project log, on the experiment and the dataset.
    pub writer: Token,
    /// `update` and `delete` on checkout's project log.
    pub deleter: Token,
    /// `read` on checkout's project log, the experiment and the dataset.
    pub reader: Token,
    /// `create` and `update` on the organization acme.
    pub creator: Token,
    /// `create` on project checkout only.
    pub project_creator: Token,
    /// `create` on checkout's project log only (never `update`).
    pub log_creator: Token,
    /// No grant at all.
    pub nobody: Token,
    /// A globex token that an ACL (wrongly) grants `update` on checkout's log.
    pub outsider: Token,
    /// `update` on checkout's log, expired in 2000.
    pub expired: Token,
    /// Well-formed, unknown to the policy.
    pub unknown: String,
    /// More writers of checkout's log ([`Cast::with_writers`]), none by default.
    pub writers: Vec<Writer>,
}

/// A token "writer-<i>" of acme whose only grant, `update` on checkout's
/// project log, is one ACL of its own (so that revoking it touches no one else).
#[derive(Debug, Clone)]
pub struct Writer {
    pub token: Token,
    /// The id of its ACL.
    pub acl: String,
}

pub fn cast() -> Cast {
    let mut p = PolicyBuilder::new();
    let org = p.org(ORG_NAME);
    let project = p.project(&org, PROJECT_NAME);
    let experiment = p.experiment(&project, EXPERIMENT_NAME);
    let dataset = p.dataset(&project, DATASET_NAME);
    let other_project = p.project(&org, "internal");
    let other_org = p.org("globex");
    let foreign_project = p.project(&other_org, "globex-app");

    let writer = p.service_token(&org, "ci-writer");
    p.grant_user(&writer.user_id, "update", "project_log", &project);
    p.grant_user(&writer.user_id, "update", "experiment", &experiment);
    p.grant_user(&writer.user_id, "update", "dataset", &dataset);
    let deleter = p.service_token(&org, "ci-deleter");
    p.grant_user(&deleter.user_id, "update", "project_log", &project);
    p.grant_user(&deleter.user_id, "delete", "project_log", &project);
    let reader = p.service_token(&org, "ci-reader");
    p.grant_user(&reader.user_id, "read", "project_log", &project);
    p.grant_user(&reader.user_id, "read", "experiment", &experiment);
    p.grant_user(&reader.user_id, "read", "dataset", &dataset);
    let creator = p.service_token(&org, "ci-creator");
    p.grant_user(&creator.user_id, "create", "organization", &org);
    p.grant_user(&creator.user_id, "update", "organization", &org);
    let project_creator = p.service_token(&org, "ci-project-creator");
    p.grant_user(&project_creator.user_id, "create", "project", &project);
    let log_creator = p.service_token(&org, "ci-log-creator");
    p.grant_user(&log_creator.user_id, "create", "project_log", &project);
    let nobody = p.service_token(&org, "ci-nobody");
    let outsider = p.service_token(&other_org, "globex-writer");
    p.grant_user(&outsider.user_id, "update", "project_log", &project);
    p.grant_user(&outsider.user_id, "update", "project_log", &foreign_project);
    let expired_user = p.user("ci-expired", true);
    let expired = p.token_for(&org, "ci-expired", &expired_user, Some("2000-01-01T00:00:00Z"));
    p.grant_user(&expired.user_id, "update", "project_log", &project);
    Cast {
        policy: p,
        org,
        project,
        experiment,
        dataset,
        other_project,
        other_org,
        foreign_project,
        writer,
        deleter,
        reader,
        creator,
        project_creator,
        log_creator,
        nobody,
        outsider,
        expired,
        unknown: new_token(),
        writers: Vec::new(),
    }
}

impl Cast {
    /// Adds `n` [`Writer`]s ("writer-0", "writer-1", …).
    pub fn with_writers(mut self, n: usize) -> Cast {
        for _ in 0..n {
            let i = self.writers.len();
            let token = self.policy.service_token(&self.org, &format!("writer-{i}"));
            let acl = self.policy.grant_user(&token.user_id, "update", "project_log", &self.project);
            self.writers.push(Writer { token, acl });
        }
        self
    }

    /// A `/logs3` body writing one fresh row to checkout's project log.
    pub fn logs3_body(&self) -> String {
        json!({"rows": [log_row(&self.project)], "api_version": 2}).to_string()
    }
}

impl HasPolicy for Cast {
    fn policy(&self) -> &PolicyBuilder {
        &self.policy
    }

    /// Every raw token of the cast (none may ever be echoed or logged).
    fn secrets(&self) -> Vec<&str> {
        let mut all = vec![
            self.writer.raw.as_str(),
            &self.deleter.raw,
            &self.reader.raw,
            &self.creator.raw,
            &self.project_creator.raw,
            &self.log_creator.raw,
            &self.nobody.raw,
            &self.outsider.raw,
            &self.expired.raw,
            &self.unknown,
        ];
        all.extend(self.writers.iter().map(|w| w.token.raw.as_str()));
        all
    }
}

/// A cast (the standard one unless a story brings its own), the fake data
/// plane and a running gateway; the cast's fields read as the world's
/// (`w.writer`, `w.project`).
pub struct World<C = Cast> {
    cast: C,
    pub upstream: Upstream,
    pub gw: Gateway,
    pub http: reqwest::Client,
    /// The policy store's database (on Postgres only).
    db: Option<TestDb>,
    /// Between the gateway and Postgres, when asked for.
    relay: Option<Relay>,
    /// The admin API's token, when it is on.
    admin_token: Option<String>,
}

impl<C> Deref for World<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.cast
    }
}

impl<C> DerefMut for World<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.cast
    }
}

/// Where a world keeps its policy.
enum Store {
    /// The policy file (hot-reloaded) the cast's policy is written to.
    File,
    /// A fresh Postgres database the cast's policy is imported into with
    /// `loggate policy import`, reached directly or through a [`Relay`].
    Postgres { via_relay: bool },
}

/// How a [`World`] is started ([`World::builder`], [`World::builder_for`]).
pub struct WorldBuilder<'a, C = Cast> {
    cast: C,
    configure: Vec<Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + 'a>>,
    tls_upstream: Option<rustls::ServerConfig>,
    store: Store,
    admin_token: Option<String>,
}

impl<'a, C: HasPolicy> WorldBuilder<'a, C> {
    /// Adjusts the gateway's config (applied in the order given).
    pub fn gateway(mut self, configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder + 'a) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    /// The data plane speaks TLS with this server config.
    pub fn tls_upstream(mut self, config: rustls::ServerConfig) -> Self {
        self.tls_upstream = Some(config);
        self
    }

    /// The policy lives in a fresh Postgres database (migrated by the
    /// gateway, the cast's policy imported through `loggate policy import`),
    /// and the admin API is on ([`ADMIN_TOKEN`]).
    pub fn postgres(mut self) -> Self {
        self.store = Store::Postgres { via_relay: false };
        self.admin_token.get_or_insert_with(|| ADMIN_TOKEN.to_owned());
        self
    }

    /// [`postgres`](Self::postgres), reached through a [`Relay`] the story
    /// can cut ([`World::relay`]).
    pub fn postgres_via_relay(mut self) -> Self {
        self = self.postgres();
        self.store = Store::Postgres { via_relay: true };
        self
    }

    /// Turns the admin API on with `token` (`LOGGATE_ADMIN_TOKEN`).
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    pub async fn start(self) -> World<C> {
        let orgs = self.cast.policy().upstream_orgs();
        let upstream = match self.tls_upstream {
            Some(config) => Upstream::start_tls(orgs, config).await,
            None => Upstream::start(orgs).await,
        };
        let mut builder = GatewayBuilder::new(&upstream.url);
        let (mut db, mut relay) = (None, None);
        if let Store::Postgres { via_relay } = self.store {
            let fresh = TestDb::create().await;
            let url = match via_relay {
                true => {
                    let r = Relay::to_server().await;
                    let url = fresh.url_via(&r);
                    relay = Some(r);
                    url
                }
                false => fresh.url.clone(),
            };
            builder = builder.postgres(&url);
            db = Some(fresh);
        }
        if let Some(token) = &self.admin_token {
            builder = builder.env("LOGGATE_ADMIN_TOKEN", token);
        }
        for configure in self.configure {
            builder = configure(builder);
        }
        let gw = match db {
            None => builder.start(self.cast.policy()).await,
            Some(_) => {
                let gw = builder.start(&PolicyBuilder::new()).await;
                import(&gw, self.cast.policy()).await;
                gw
            }
        };
        World { cast: self.cast, upstream, gw, http: reqwest::Client::new(), db, relay, admin_token: self.admin_token }
    }
}

impl<'a> WorldBuilder<'a, Cast> {
    /// Adds `n` [`Writer`]s to the standard cast (`w.writers`).
    pub fn writers(mut self, n: usize) -> Self {
        self.cast = self.cast.with_writers(n);
        self
    }
}

/// Imports `policy` into the store of `gw` with the CLI, as an operator would.
async fn import(gw: &Gateway, policy: &PolicyBuilder) {
    let file = gw.config_path().with_file_name("import.json");
    policy.write(&file);
    // tokio's Command: the runtime must keep running (a relay lives on it).
    let out = tokio::process::Command::new(super::gateway::loggate_bin())
        .args(["policy", "import", "--config"])
        .arg(gw.config_path())
        .arg(&file)
        .output()
        .await
        .expect("run loggate policy import");
    assert!(out.status.success(), "policy import: {}", String::from_utf8_lossy(&out.stderr));
}

impl World {
    /// A builder of the standard world.
    pub fn builder<'a>() -> WorldBuilder<'a> {
        World::builder_for(cast())
    }

    /// The standard world with the default gateway config.
    pub async fn start() -> World {
        World::builder().start().await
    }

    /// The standard world; `configure` adjusts the gateway's config.
    pub async fn start_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> World {
        World::builder().gateway(configure).start().await
    }

    /// The gateway still serves a good request after whatever came before,
    /// and has printed no token so far.
    pub async fn still_serves(&self) {
        let row = log_row(&self.project);
        let id = row["id"].clone();
        let r = self.logs3(&self.writer, vec![row]).await;
        assert_eq!(r.status, 200, "a good request after the bad one failed: {}", r.text());
        let last = self.upstream.requests_to("/logs3").pop().expect("a /logs3 request reached the data plane");
        assert_eq!(last.json()["rows"][0]["id"], id, "the good row did not reach the data plane");
        self.gw.assert_output_free_of(&self.secrets());
    }
}

impl<C: HasPolicy> World<C> {
    /// A builder of the world of `cast`.
    pub fn builder_for<'a>(cast: C) -> WorldBuilder<'a, C> {
        WorldBuilder { cast, configure: Vec::new(), tls_upstream: None, store: Store::File, admin_token: None }
    }

    /// The world of `c` (whose ids the caller already knows); `configure`
    /// adjusts the gateway's config.
    pub async fn start_cast(c: C, configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> World<C> {
        World::builder_for(c).gateway(configure).start().await
    }

    /// The cast's raw tokens (none may ever be echoed or logged).
    pub fn secrets(&self) -> Vec<&str> {
        self.cast.secrets()
    }

    /// Starts another gateway in front of this world's data plane, on the
    /// cast's policy file, configured by `configure` alone.
    pub async fn another_gateway(&self, configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Gateway {
        configure(GatewayBuilder::new(&self.upstream.url)).start(self.cast.policy()).await
    }

    /// The policy store's database (a world on Postgres).
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("a world on Postgres (WorldBuilder::postgres)")
    }

    /// The relay between the gateway and Postgres ([`WorldBuilder::postgres_via_relay`]).
    pub fn relay(&self) -> &Relay {
        self.relay.as_ref().expect("a world on Postgres through a relay (WorldBuilder::postgres_via_relay)")
    }

    /// The gateway's admin API, with the world's admin token.
    pub fn admin(&self) -> AdminApi<'_> {
        let token = self.admin_token.as_deref().expect("the admin API is on (WorldBuilder::admin_token or postgres)");
        AdminApi::new(&self.http, &self.gw.admin_url, token)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.url)
    }

    /// A request builder with `Authorization: Bearer <raw>`.
    pub fn request(&self, method: reqwest::Method, path: &str, raw_token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(raw_token)
    }

    /// `POST path` with a JSON body and `Content-Type: application/json`.
    pub async fn post_json(&self, path: &str, token: &(impl Bearer + ?Sized), body: &Value) -> Resp {
        http::send(
            self.request(reqwest::Method::POST, path, token.bearer())
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &(impl Bearer + ?Sized)) -> Resp {
        http::send(self.request(reqwest::Method::GET, path, token.bearer())).await
    }

    /// `POST /logs3` `{"rows": rows, "api_version": 2}`.
    pub async fn logs3(&self, token: &(impl Bearer + ?Sized), rows: Vec<Value>) -> Resp {
        self.post_json("/logs3", token, &json!({"rows": rows, "api_version": 2})).await
    }

    /// Checks the §5 error shape (and that no token leaks into it).
    pub fn error(&self, resp: &Resp, status: u16, code: &str) -> Value {
        http::assert_error(resp, status, code, &self.secrets())
    }

    /// How many requests reached the fake at `path`.
    pub fn forwarded(&self, path: &str) -> usize {
        self.upstream.requests_to(path).len()
    }
}

/// A project-log row for `project_id` with a fresh id.
pub fn log_row(project_id: &str) -> Value {
    json!({
        "id": new_id(), "project_id": project_id, "log_id": "g",
        "input": {"question": "2+2?"}, "output": "4", "_is_merge": false,
    })
}

/// An experiment row.
pub fn experiment_row(experiment_id: &str) -> Value {
    json!({"id": new_id(), "experiment_id": experiment_id, "input": "x", "output": "y", "scores": {"acc": 1}})
}

/// A dataset row.
pub fn dataset_row(dataset_id: &str) -> Value {
    json!({"id": new_id(), "dataset_id": dataset_id, "input": "x", "expected": "y"})
}
