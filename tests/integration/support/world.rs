//! The standard cast of the raw-HTTP suites: org "acme" with project
//! "checkout" (plus an experiment and a dataset in it) and a second org
//! "globex"; one token per kind of caller; the fake data plane and a
//! running gateway in front of it.

use super::gateway::{Gateway, GatewayBuilder};
use super::http::{self, Resp};
use super::policy::{PolicyBuilder, Token, new_id, new_token};
use super::upstream::Upstream;
use serde_json::{Value, json};

pub struct World {
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
    /// No grant at all.
    pub nobody: Token,
    /// A globex token that an ACL (wrongly) grants `update` on checkout's log.
    pub outsider: Token,
    /// `update` on checkout's log, expired in 2000.
    pub expired: Token,
    /// Well-formed, unknown to the policy.
    pub unknown: String,
    pub upstream: Upstream,
    pub gw: Gateway,
    pub http: reqwest::Client,
}

pub const ORG_NAME: &str = "acme";
pub const PROJECT_NAME: &str = "checkout";
pub const EXPERIMENT_NAME: &str = "baseline";
pub const DATASET_NAME: &str = "golden";

/// The policy of the standard world, and its tokens.
pub struct Cast {
    pub policy: PolicyBuilder,
    pub org: String,
    pub project: String,
    pub experiment: String,
    pub dataset: String,
    pub other_project: String,
    pub other_org: String,
    pub foreign_project: String,
    pub writer: Token,
    pub deleter: Token,
    pub reader: Token,
    pub creator: Token,
    pub project_creator: Token,
    pub nobody: Token,
    pub outsider: Token,
    pub expired: Token,
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
        nobody,
        outsider,
        expired,
    }
}

impl World {
    /// The standard world with the default gateway config.
    pub async fn start() -> World {
        World::start_with(|b| b).await
    }

    /// The standard world; `configure` adjusts the gateway's config.
    pub async fn start_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> World {
        World::start_cast(cast(), configure).await
    }

    /// The world of `c` (whose ids the caller already knows).
    pub async fn start_cast(c: Cast, configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> World {
        let upstream = Upstream::start(c.policy.upstream_orgs()).await;
        let gw = configure(GatewayBuilder::new(&upstream.url)).start(&c.policy).await;
        World {
            policy: c.policy,
            org: c.org,
            project: c.project,
            experiment: c.experiment,
            dataset: c.dataset,
            other_project: c.other_project,
            other_org: c.other_org,
            foreign_project: c.foreign_project,
            writer: c.writer,
            deleter: c.deleter,
            reader: c.reader,
            creator: c.creator,
            project_creator: c.project_creator,
            nobody: c.nobody,
            outsider: c.outsider,
            expired: c.expired,
            unknown: new_token(),
            upstream,
            gw,
            http: reqwest::Client::new(),
        }
    }

    /// Every raw token of the world (none may ever be echoed or logged).
    pub fn secrets(&self) -> Vec<&str> {
        vec![
            &self.writer.raw,
            &self.deleter.raw,
            &self.reader.raw,
            &self.creator.raw,
            &self.project_creator.raw,
            &self.nobody.raw,
            &self.outsider.raw,
            &self.expired.raw,
            &self.unknown,
        ]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.url)
    }

    /// A request builder with `Authorization: Bearer <raw>`.
    pub fn request(&self, method: reqwest::Method, path: &str, raw_token: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(raw_token)
    }

    /// `POST path` with a JSON body and `Content-Type: application/json`.
    pub async fn post_json(&self, path: &str, token: &Token, body: &Value) -> Resp {
        http::send(
            self.request(reqwest::Method::POST, path, &token.raw)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: &Token) -> Resp {
        http::send(self.request(reqwest::Method::GET, path, &token.raw)).await
    }

    /// `POST /logs3` `{"rows": rows, "api_version": 2}`.
    pub async fn logs3(&self, token: &Token, rows: Vec<Value>) -> Resp {
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
