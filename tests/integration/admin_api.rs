//! The admin API (contract: Admin API) on a real gateway over a real Postgres: every
//! endpoint, Braintrust shapes checked against the OpenAPI schemas, bad
//! inputs as 400 naming the field, 401/404/405, and the end-to-end story of
//! a revoked ACL and of a store that went away.

use crate::support::admin::ADMIN_TOKEN;
use crate::support::pg::SpecSchemas;
use crate::support::policy::{PolicyBuilder, Token};
use crate::support::wait;
use crate::support::world::{HasPolicy, World, log_row};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// `invalidation.max_staleness` of the stories that watch a change take
/// effect: with no feed, a cached identity or decision lives that long.
const STALENESS: &str = "[invalidation]\nmax_staleness = \"100ms\"\n";
/// How long such a change may take to show: the bound plus slack for a
/// loaded machine.
const TAKES_EFFECT: Duration = Duration::from_secs(2);

/// Org "acme" with project "checkout" and a writer holding `update` on its
/// log through one ACL. Not the standard cast: with a single organization
/// the admin API needs no `org_name`, and these stories rely on that.
struct Acme {
    policy: PolicyBuilder,
    org: String,
    project: String,
    writer: Token,
    writer_acl: String,
}

fn acme() -> Acme {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project = policy.project(&org, "checkout");
    let writer = policy.service_token(&org, "ci-writer");
    let writer_acl = policy.grant_user(&writer.user_id, "update", "project_log", &project);
    Acme { policy, org, project, writer, writer_acl }
}

impl HasPolicy for Acme {
    fn policy(&self) -> &PolicyBuilder {
        &self.policy
    }

    fn secrets(&self) -> Vec<&str> {
        vec![&self.writer.raw]
    }
}

/// A gateway on a fresh database holding `acme` (imported through the CLI),
/// the admin API on; `extra_toml` adds whole config sections.
async fn start(acme: Acme, extra_toml: &str) -> World<Acme> {
    World::builder_for(acme).postgres().gateway(|b| b.extra_toml(extra_toml)).start().await
}

/// `POST /logs3` of one row to checkout's log as `token`: status and body.
async fn write(w: &World<Acme>, token: &str) -> (u16, Value) {
    let r = w.logs3(token, vec![log_row(&w.project)]).await;
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

/// Writes as `token` until the answer is `want` (what was changed has
/// reached the gateway, within [`TAKES_EFFECT`]); the body of that answer.
async fn until_answer(w: &World<Acme>, token: &str, want: u16, what: &str) -> Value {
    wait::until(what, TAKES_EFFECT, async || match write(w, token).await {
        (status, body) if status == want => Ok(body),
        other => Err(other),
    })
    .await
}

async fn revision(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT revision FROM policy_revision", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn acl_endpoints() {
    let w = start(acme(), "").await;
    let (api, s) = (w.admin(), SpecSchemas::load());
    let item =
        json!({"object_type": "project", "object_id": w.project, "user_id": w.writer.user_id, "permission": "read"});
    let created = api.ok(Method::POST, "/v1/acl", Some(item.clone())).await;
    s.assert_component("Acl", &created);
    assert_eq!(created["_object_org_id"], w.org);
    let again = api.ok(Method::POST, "/v1/acl", Some(item.clone())).await;
    assert_eq!(again["id"], created["id"], "an identical ACL returns the same id");
    let id = created["id"].as_str().unwrap();
    s.assert_component("Acl", &api.ok(Method::GET, &format!("/v1/acl/{id}"), None).await);

    let list = api.ok(Method::GET, &format!("/v1/acl?object_type=project&object_id={}", w.project), None).await;
    s.assert_list("Acl", &list);
    assert_eq!(list["objects"].as_array().unwrap().len(), 1);
    let (st, v) = api.call(Method::GET, "/v1/acl?object_type=project", None).await;
    assert_eq!((st, v["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("object_id")));
    let (st, v) = api.call(Method::GET, "/v1/acl?object_type=nope&object_id=x", None).await;
    assert_eq!((st, v["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("object_type")));

    // Every AclObjectType and Permission value of the spec is accepted.
    let spec = crate::support::pg::openapi_spec();
    for t in spec["components"]["schemas"]["AclObjectType"]["enum"].as_array().unwrap() {
        let object_id = match t.as_str().unwrap() {
            "organization" | "org_member" | "org_project" | "org_audit_logs" => w.org.clone(),
            "project" | "project_log" => w.project.clone(),
            "prompt" | "prompt_session" => "any-prompt".into(),
            _ => continue,
        };
        for p in spec["components"]["schemas"]["Permission"]["enum"].as_array().unwrap() {
            let acl = api
                .ok(
                    Method::POST,
                    "/v1/acl",
                    Some(
                        json!({"object_type": t, "object_id": object_id, "user_id": w.writer.user_id, "permission": p}),
                    ),
                )
                .await;
            s.assert_component("Acl", &acl);
        }
    }

    // list_org: GET per spec, POST with a body too; a bare array.
    let all = api.ok(Method::GET, "/v1/acl/list_org?org_name=acme", None).await;
    s.assert_valid(json!({"type": "array", "items": {"$ref": "#/components/schemas/Acl"}}), &all);
    assert!(all.as_array().unwrap().len() > 10);
    let reads =
        api.ok(Method::POST, "/v1/acl/list_org", Some(json!({"permission": "read", "object_type": "project"}))).await;
    assert!(reads.as_array().unwrap().iter().all(|a| a["permission"] == "read" && a["object_type"] == "project"));
    api.bad(Method::POST, "/v1/acl/list_org", json!({"org_name": "nope"}), "org_name").await;

    // batch_update: one transaction, one revision.
    let c = w.db().client().await;
    let before = revision(&c).await;
    let batch = api
        .ok(
            Method::POST,
            "/v1/acl/batch_update",
            Some(json!({
                "add_acls": [
                    {"object_type": "project_log", "object_id": w.project, "user_id": w.writer.user_id, "permission": "delete"},
                    {"object_type": "organization", "object_id": w.org, "user_id": w.writer.user_id, "permission": "create", "restrict_object_type": "project"}
                ],
                "remove_acls": [item]
            })),
        )
        .await;
    s.assert_component("AclBatchUpdateResponse", &batch);
    assert_eq!(batch["added_acls"].as_array().unwrap().len(), 2);
    assert_eq!(batch["removed_acls"][0]["id"], created["id"]);
    assert_eq!(revision(&c).await, before + 1, "batch_update is one revision");
    let (st, _) = api.call(Method::GET, &format!("/v1/acl/{id}"), None).await;
    assert_eq!(st, 404);

    // Bad inputs: 400 naming the field; nothing written.
    let before = revision(&c).await;
    let u = &w.writer.user_id;
    api.bad(Method::POST, "/v1/acl/batch_update", json!({"add_acls": [{"object_type": "project", "object_id": w.project, "user_id": u, "permission": "read"}, {"object_type": "project", "object_id": w.project, "group_id": "nope", "permission": "read"}]}), "add_acls[1].group_id").await;
    assert_eq!(revision(&c).await, before, "a failed batch writes nothing");
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": "nope", "user_id": u, "permission": "read"}),
        "object_id",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "user_id": "nope", "permission": "read"}),
        "user_id",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "user_id": u, "role_id": "nope"}),
        "role_id",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "user_id": u, "permission": "write"}),
        "permission",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "projects", "object_id": w.project, "user_id": u, "permission": "read"}),
        "object_type",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "permission": "read"}),
        "user_id",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "user_id": u, "group_id": u, "permission": "read"}),
        "group_id",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": w.project, "user_id": u}),
        "permission",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/acl",
        json!({"object_type": "project", "object_id": 7, "user_id": u, "permission": "read"}),
        "object_id",
    )
    .await;
    api.bad(Method::POST, "/v1/acl/batch_update", json!({"add_acls": {}}), "add_acls").await;
    let (st, v) = api.call(Method::POST, "/v1/acl", Some(json!([1]))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(revision(&c).await, before);

    let deleted = api.ok(Method::DELETE, &format!("/v1/acl/{}", w.writer_acl), None).await;
    s.assert_component("Acl", &deleted);
    let (st, v) = api.call(Method::DELETE, &format!("/v1/acl/{}", w.writer_acl), None).await;
    assert_eq!((st, v["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    for (m, p) in [
        (Method::PUT, "/v1/acl"),
        (Method::PATCH, "/v1/acl/x"),
        (Method::GET, "/v1/acl/batch_update"),
        (Method::PUT, "/v1/acl/list_org"),
    ] {
        let (st, v) = api.call(m.clone(), p, Some(json!({}))).await;
        assert_eq!(
            (st, v["error"]["code"].clone()),
            (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")),
            "{m} {p}"
        );
    }
}

#[tokio::test]
async fn group_role_token_and_project_endpoints() {
    let w = start(acme(), STALENESS).await;
    let (api, s) = (w.admin(), SpecSchemas::load());
    let u = w.writer.user_id.clone();

    // Groups.
    let inner = api.ok(Method::POST, "/v1/group", Some(json!({"name": "inner", "member_users": [u]}))).await;
    s.assert_component("Group", &inner);
    let same = api.ok(Method::POST, "/v1/group", Some(json!({"name": "inner"}))).await;
    assert_eq!(same["id"], inner["id"], "an existing name returns that group");
    let outer = api
        .ok(
            Method::POST,
            "/v1/group",
            Some(json!({"name": "outer", "member_groups": [inner["id"]], "org_name": "acme"})),
        )
        .await;
    let oid = outer["id"].as_str().unwrap();
    let patched = api
        .ok(
            Method::PATCH,
            &format!("/v1/group/{oid}"),
            Some(json!({"add_member_users": [u], "remove_member_groups": [inner["id"]], "description": "d"})),
        )
        .await;
    s.assert_component("Group", &patched);
    assert_eq!(patched["member_users"], json!([u]));
    assert_eq!(patched["member_groups"], json!([]));
    assert_eq!(patched["description"], "d");
    s.assert_list("Group", &api.ok(Method::GET, "/v1/group?org_name=acme", None).await);
    s.assert_component("Group", &api.ok(Method::GET, &format!("/v1/group/{oid}"), None).await);
    api.bad(Method::POST, "/v1/group", json!({"name": "x", "member_users": ["nope"]}), "member_users[0]").await;
    api.bad(Method::POST, "/v1/group", json!({"name": ""}), "name").await;
    api.bad(Method::POST, "/v1/group", json!({"name": "x", "org_name": "nope"}), "org_name").await;
    api.bad(Method::PATCH, &format!("/v1/group/{oid}"), json!({"add_member_groups": ["nope"]}), "add_member_groups[0]")
        .await;
    api.bad(Method::PATCH, &format!("/v1/group/{oid}"), json!({"add_member_users": "x"}), "add_member_users").await;
    s.assert_component("Group", &api.ok(Method::DELETE, &format!("/v1/group/{oid}"), None).await);
    for m in [Method::GET, Method::PATCH, Method::DELETE] {
        let (st, _) = api.call(m, &format!("/v1/group/{oid}"), Some(json!({}))).await;
        assert_eq!(st, 404);
    }

    // Roles.
    let base = api.ok(Method::POST, "/v1/role", Some(json!({"name": "base", "member_permissions": [{"permission": "update", "restrict_object_type": "project_log"}]}))).await;
    s.assert_component("Role", &base);
    let top = api.ok(Method::POST, "/v1/role", Some(json!({"name": "top", "member_roles": [base["id"]]}))).await;
    let tid = top["id"].as_str().unwrap();
    let patched = api
        .ok(Method::PATCH, &format!("/v1/role/{tid}"), Some(json!({"add_member_permissions": [{"permission": "read"}], "remove_member_roles": [base["id"]], "name": "top2"})))
        .await;
    s.assert_component("Role", &patched);
    assert_eq!(patched["member_permissions"], json!([{"permission": "read", "restrict_object_type": null}]));
    assert_eq!(patched["name"], "top2");
    let patched = api
        .ok(
            Method::PATCH,
            &format!("/v1/role/{tid}"),
            Some(json!({"remove_member_permissions": [{"permission": "read"}]})),
        )
        .await;
    assert_eq!(patched["member_permissions"], json!([]));
    s.assert_list("Role", &api.ok(Method::GET, "/v1/role", None).await);
    api.bad(
        Method::POST,
        "/v1/role",
        json!({"name": "x", "member_permissions": [{"permission": "fly"}]}),
        "member_permissions[0].permission",
    )
    .await;
    api.bad(
        Method::POST,
        "/v1/role",
        json!({"name": "x", "member_permissions": [{"permission": "read", "restrict_object_type": "moon"}]}),
        "member_permissions[0].restrict_object_type",
    )
    .await;
    api.bad(Method::POST, "/v1/role", json!({"name": "x", "member_roles": ["nope"]}), "member_roles[0]").await;
    s.assert_component("Role", &api.ok(Method::DELETE, &format!("/v1/role/{tid}"), None).await);
    let (st, _) = api.call(Method::GET, &format!("/v1/role/{tid}"), None).await;
    assert_eq!(st, 404);

    // Service tokens: the raw key once, only its digest stored.
    let created =
        api.ok(Method::POST, "/v1/service_token", Some(json!({"name": "new-writer", "service_account_id": u}))).await;
    s.assert_component("CreateServiceTokenOutput", &created);
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("bt-st-") && key.len() >= 38, "{key}");
    assert_eq!(created["preview_name"], format!("{}…", &key[..10]));
    let c = w.db().client().await;
    let stored: String = c
        .query_one("SELECT token_sha256 FROM service_tokens WHERE id = $1", &[&created["id"].as_str().unwrap()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, crate::support::policy::token_sha256(key));
    let dump: String = c.query_one("SELECT string_agg(t::text, ' ') FROM service_tokens t", &[]).await.unwrap().get(0);
    assert!(!dump.contains(&key[6..]), "the raw token is never stored");
    // The new token acts as its service account: the writer's ACL applies.
    assert_eq!(write(&w, key).await.0, 200);
    let got = api.ok(Method::GET, &format!("/v1/service_token/{}", created["id"].as_str().unwrap()), None).await;
    s.assert_component("ServiceToken", &got);
    assert!(got.get("key").is_none());
    // PATCH narrows: a scope that grants nothing stops the writes the ACLs
    // allow; clearing it restores them. Only the narrowing fields change.
    let path = format!("/v1/service_token/{}", created["id"].as_str().unwrap());
    let narrowed = api.ok(Method::PATCH, &path, Some(json!({"scope": {"grants": []}}))).await;
    s.assert_component("ServiceToken", &narrowed);
    assert_eq!(narrowed["scope"], json!({"grants": []}));
    until_answer(&w, key, 403, "a token narrowed to nothing is refused").await;
    assert_eq!(write(&w, key).await.1["error"]["code"], "scope_denied");
    api.bad(Method::PATCH, &path, json!({"scope": {"grants": [{"object_type": "project"}]}}), "scope").await;
    api.bad(Method::PATCH, &path, json!({"scope": {"client_cidrs": ["10.0.0.0/33"]}}), "scope").await;
    api.bad(Method::PATCH, &path, json!({"expires_at": "tomorrow"}), "expires_at").await;
    api.bad(Method::PATCH, &path, json!({"name": "renamed"}), "name").await;
    assert_eq!(api.ok(Method::PATCH, &path, Some(json!({"scope": null}))).await["scope"], Value::Null);
    until_answer(&w, key, 200, "a cleared scope narrows nothing").await;
    // The spec requires service_account_id.
    api.bad(Method::POST, "/v1/service_token", json!({"name": "fresh"}), "service_account_id").await;
    s.assert_list("ServiceToken", &api.ok(Method::GET, "/v1/service_token", None).await);
    api.bad(
        Method::POST,
        "/v1/service_token",
        json!({"name": "x", "service_account_id": "nope"}),
        "service_account_id",
    )
    .await;
    api.bad(Method::POST, "/v1/service_token", json!({}), "name").await;
    // Root tokens only (a child is derived on the gateway by its parent),
    // and never one whose validity window is empty; nothing is written.
    let tokens = || async { api.ok(Method::GET, "/v1/service_token", None).await["objects"].as_array().unwrap().len() };
    let before = tokens().await;
    let fresh = |extra: Value| {
        let mut body = json!({"name": "fresh", "service_account_id": u});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let parent = created["id"].clone();
    api.bad(Method::POST, "/v1/service_token", fresh(json!({"parent_id": parent})), "parent_id").await;
    let never = json!({"not_before": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"});
    api.bad(Method::POST, "/v1/service_token", fresh(never), "not_before").await;
    let empty = json!({"not_before": "2030-01-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"});
    api.bad(Method::POST, "/v1/service_token", fresh(empty), "not_before").await;
    assert_eq!(tokens().await, before, "a refused create writes nothing");
    assert_eq!(
        api.ok(Method::POST, "/v1/service_token", Some(fresh(json!({"parent_id": null})))).await["parent_id"],
        Value::Null
    );
    // PATCH judges the window it leaves: one side set later than the other is refused and changes nothing.
    api.ok(Method::PATCH, &path, Some(json!({"expires_at": "2030-01-01T00:00:00Z"}))).await;
    api.bad(Method::PATCH, &path, json!({"not_before": "2031-01-01T00:00:00Z"}), "not_before").await;
    let kept = api.ok(Method::GET, &path, None).await;
    assert_eq!(kept["not_before"], Value::Null, "a refused PATCH rolls back: {kept}");
    api.ok(Method::PATCH, &path, Some(json!({"expires_at": null}))).await;
    s.assert_component(
        "ServiceToken",
        &api.ok(Method::DELETE, &format!("/v1/service_token/{}", created["id"].as_str().unwrap()), None).await,
    );
    // No feed: a cached identity lives up to max_staleness.
    until_answer(&w, key, 401, "a deleted token no longer authenticates").await;
    let (st, _) =
        api.call(Method::DELETE, &format!("/v1/service_token/{}", created["id"].as_str().unwrap()), None).await;
    assert_eq!(st, 404);

    // Projects.
    let p = api.ok(Method::POST, "/v1/project", Some(json!({"name": "new-project", "description": "x"}))).await;
    s.assert_component("Project", &p);
    let same = api.ok(Method::POST, "/v1/project", Some(json!({"name": "checkout"}))).await;
    assert_eq!(same["id"], w.project, "an existing name returns that project");
    let pid = p["id"].as_str().unwrap();
    let renamed = api.ok(Method::PATCH, &format!("/v1/project/{pid}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!(renamed["name"], "renamed");
    api.bad(Method::PATCH, &format!("/v1/project/{pid}"), json!({"name": "checkout"}), "name").await;
    api.bad(Method::PATCH, &format!("/v1/project/{pid}"), json!({"name": 3}), "name").await;
    s.assert_list("Project", &api.ok(Method::GET, "/v1/project?project_name=renamed", None).await);
    s.assert_component("Project", &api.ok(Method::GET, &format!("/v1/project/{pid}"), None).await);
    // Soft delete: the writer's project stops being writable.
    assert_eq!(write(&w, &w.writer.raw).await.0, 200);
    let deleted = api.ok(Method::DELETE, &format!("/v1/project/{}", w.project), None).await;
    s.assert_component("Project", &deleted);
    until_answer(&w, &w.writer.raw, 403, "a deleted project's log is not writable").await;
    assert!(deleted["deleted_at"].is_string());
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> =
        c.query_one("SELECT deleted_at FROM projects WHERE id = $1", &[&w.project]).await.unwrap().get(0);
    assert!(deleted_at.is_some(), "soft delete keeps the row");
    let (st, _) = api.call(Method::GET, &format!("/v1/project/{}", w.project), None).await;
    assert_eq!(st, 404);
    for (m, p) in [
        (Method::PUT, "/v1/project"),
        (Method::POST, "/v1/project/x"),
        (Method::PUT, "/v1/service_token/x"),
        (Method::PUT, "/v1/group/x"),
        (Method::PUT, "/v1/role"),
    ] {
        let (st, _) = api.call(m.clone(), p, Some(json!({}))).await;
        assert_eq!(st, 405, "{m} {p}");
    }
    let (st, _) = api.call(Method::GET, "/v1/nothing", None).await;
    assert_eq!(st, 404);
    let (st, body) = api.call(Method::PATCH, "/v1/service_token/x", Some(json!({"scope": null}))).await;
    assert_eq!((st.as_u16(), body["error"]["code"].as_str()), (404, Some("not_found")), "PATCH of an unknown token");
}

#[tokio::test]
async fn org_name_is_required_with_two_organizations() {
    let mut acme = acme();
    acme.policy.org("second");
    let w = start(acme, "").await;
    let api = w.admin();
    api.bad(Method::POST, "/v1/project", json!({"name": "p"}), "org_name").await;
    api.bad(Method::POST, "/v1/group", json!({"name": "g"}), "org_name").await;
    api.bad(Method::GET, "/v1/acl/list_org", json!(null), "org_name").await;
    let p = api.ok(Method::POST, "/v1/project", Some(json!({"name": "p", "org_name": "second"}))).await;
    assert_ne!(p["org_id"], w.org);
}

#[tokio::test]
async fn admin_token_is_required_and_the_api_is_off_without_it() {
    let w = start(acme(), "").await;
    let url = format!("{}/v1/acl/x", w.gw.admin_url);
    let r = w.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = w.http.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "unauthenticated");

    // Without the env var the admin API is off: 404, even with a token.
    let off = w.another_gateway(|b| b.postgres(&w.db().url)).await;
    let r = w.http.get(format!("{}/v1/acl/x", off.admin_url)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // With the file store the admin API answers 404 too (the policy is the file).
    let file = w.another_gateway(|b| b.env("LOGGATE_ADMIN_TOKEN", ADMIN_TOKEN)).await;
    let r = w.http.get(format!("{}/v1/acl/x", file.admin_url)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("file"));
}

#[tokio::test]
async fn revoking_an_acl_denies_the_writer_and_a_lost_store_fails_closed() {
    let w = World::builder_for(acme())
        .postgres_via_relay()
        .gateway(|b| b.extra_toml(&format!("[cache]\nttl = \"100ms\"\nnegative_ttl = \"100ms\"\n\n{STALENESS}")))
        .start()
        .await;
    let (api, relay) = (w.admin(), w.relay());
    let (st, v) = write(&w, &w.writer.raw).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(w.upstream.logs3_rows().len(), 1);

    api.ok(Method::DELETE, &format!("/v1/acl/{}", w.writer_acl), None).await;
    let v = until_answer(&w, &w.writer.raw, 403, "the revoked writer is denied").await;
    assert_eq!(v["error"]["code"], "permission_denied");

    // Grant again through the API, then lose the database: never an allow.
    api.ok(Method::POST, "/v1/acl", Some(json!({"object_type": "project_log", "object_id": w.project, "user_id": w.writer.user_id, "permission": "update"})))
        .await;
    until_answer(&w, &w.writer.raw, 200, "the writer granted again may write").await;
    relay.cut();
    // Until the cached allow is older than max_staleness it may still be
    // served; then the answer is 503, and that request forwards nothing.
    let (v, forwarded) = wait::until("the lost store fails closed", TAKES_EFFECT, async || {
        let forwarded = w.upstream.logs3_rows().len();
        match write(&w, &w.writer.raw).await {
            (503, v) => Ok((v, forwarded)),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(v["error"]["code"], "policy_unavailable");
    let (st, v) = api.call(Method::GET, "/v1/project", None).await;
    assert_eq!((st, v["error"]["code"].clone()), (StatusCode::SERVICE_UNAVAILABLE, json!("policy_unavailable")));
    let ready = w.http.get(format!("{}/readyz", w.gw.admin_url)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(w.upstream.logs3_rows().len(), forwarded, "nothing forwarded while the store is gone");

    // Postgres back: the pool reconnects by itself.
    relay.restore();
    wait::until_every(
        "recovery after the store came back",
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || match write(&w, &w.writer.raw).await {
            (200, _) => Ok(()),
            other => Err(other),
        },
    )
    .await;
}

/// Schemathesis (property-based API testing from the OpenAPI spec) against
/// the admin API, with the project's copy of the Braintrust spec: no answer
/// may be a server error, and every answer must match the spec's response
/// schema (formats included), content type and headers. Status codes the
/// spec does not list (404 for an unknown id, 405 for an unsupported
/// method) are loggate's documented contract, so that check is not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_only_spec_shaped_answers() {
    let tool = crate::support::sdk::venv_tool("schemathesis");
    if !tool.is_file() {
        assert!(std::env::var_os("CI").is_none(), "{} missing: .ci/run installs it", tool.display());
        eprintln!("skipping: {} missing (pip install -r tests/sdk/requirements.txt)", tool.display());
        return;
    }
    let w = start(acme(), "").await;
    let spec = crate::support::sdk::repo_root().join("tests/fixtures/braintrust-openapi-admin.json");
    let out = tokio::process::Command::new(&tool)
        .arg("run")
        .arg(&spec)
        .args(["--url", &w.gw.admin_url])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,response_headers_conformance",
        ])
        .args(["--phases", "coverage,fuzzing,stateful", "--max-examples", "25", "--seed", "20261205", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found failures:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("passed"), "{report}");
}
