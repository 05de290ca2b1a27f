//! Random admin API operation sequences against one Postgres store, one
//! private Redis feed and two replicas (contract: Permission model, §8, §11).
//!
//! Each case resets the store to a base policy (one `import --replace`
//! revision), warms both replicas' caches with a fixed set of questions,
//! then runs ~15 random admin operations through replica 0 or 1 — ACLs
//! created and deleted (user or group principal, permission or role,
//! optional `restrict_object_type`, on organizations, projects, project
//! logs, experiments and datasets), groups created and patched (member
//! users and groups, cycles included), roles created and patched (member
//! permissions and roles), service tokens deleted — warming part of the
//! questions after every operation, so that a cache entry a change failed
//! to invalidate would survive. Once both replicas have applied the store's
//! final revision, every question is asked on both replicas over HTTP
//! (`POST /logs3` with one row: `update`, or `delete` for an
//! `_object_delete` row) and compared with the reference evaluator run on
//! the exported final policy: 200 = allow, 403 = deny, 401 = unknown token.
//!
//! Cases: `PROPTEST_CASES` (default 8, ~3 s each).

use crate::support::fleet::{Fleet, FleetBuilder, row};
use crate::support::policy::{PolicyBuilder, Token, token_sha256};
use futures_util::StreamExt;
use loggate_model::doc::PolicyDoc;
use loggate_policy_reference::{Outcome, Request, reference};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

const PERMS: [&str; 4] = ["update", "delete", "read", "create"];
const RESTRICTS: [&str; 5] = ["project_log", "experiment", "dataset", "project", "organization"];
const CONVERGE: Duration = Duration::from_secs(10);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(8)
}

// ---------------------------------------------------------------------------
// The base policy every case starts from
// ---------------------------------------------------------------------------

/// One question: may `tokens[token]` write (or delete) on this object?
#[derive(Debug, Clone)]
struct Question {
    token: usize,
    object_type: &'static str,
    id: String,
    delete: bool,
}

struct Base {
    policy: PolicyBuilder,
    doc: PolicyDoc,
    /// acme: w0..w3 acting as users[0..4]; `tokens[4]`: users[0] in the other org.
    tokens: Vec<Token>,
    users: Vec<String>,
    groups: Vec<String>,
    roles: Vec<String>,
    acls: Vec<String>,
    /// What ACLs are put on: `(object_type, id)`.
    targets: Vec<(&'static str, String)>,
    questions: Vec<Question>,
}

impl Base {
    fn new() -> Base {
        let mut p = PolicyBuilder::new();
        let acme = p.org("acme");
        let other = p.org("other");
        let (p0, p1, q0) = (p.project(&acme, "p0"), p.project(&acme, "p1"), p.project(&other, "q0"));
        let (e0, e1, eq) = (p.experiment(&p0, "e0"), p.experiment(&p1, "e1"), p.experiment(&q0, "eq"));
        let (d0, d1) = (p.dataset(&p0, "d0"), p.dataset(&p1, "d1"));
        let mut tokens: Vec<Token> = (0..4).map(|i| p.service_token(&acme, &format!("w{i}"))).collect();
        let users: Vec<String> = tokens.iter().map(|t| t.user_id.clone()).collect();
        tokens.push(p.token_for(&other, "w0-other", &users[0], None));
        let g0 = p.group(&acme, "base-g0", &[&users[0]], &[]);
        let g1 = p.group(&acme, "base-g1", &[&users[1]], &[&g0]);
        let r0 = p.role(Some(&acme), "base-writer", &[("update", Some("project_log"))], &[]);
        let r1 = p.role(Some(&acme), "base-deleter", &[("delete", None)], &[&r0]);
        let acls = vec![
            p.grant_user(&users[0], "update", "project_log", &p0),
            p.grant_group(&g1, "update", "project", &p1),
            p.grant_user_role(&users[2], &r1, "organization", &acme),
            p.acl(Some(&users[3]), None, Some("delete"), None, "organization", &acme, Some("dataset")),
            p.grant_user(&users[0], "update", "project_log", &q0),
        ];
        let targets = vec![
            ("organization", acme.clone()),
            ("organization", other.clone()),
            ("project", p0.clone()),
            ("project", p1.clone()),
            ("project", q0.clone()),
            ("project_log", p0.clone()),
            ("project_log", p1.clone()),
            ("project_log", q0.clone()),
            ("experiment", e0.clone()),
            ("experiment", e1.clone()),
            ("experiment", eq.clone()),
            ("dataset", d0.clone()),
            ("dataset", d1.clone()),
        ];
        let objects = [
            ("project_log", &p0),
            ("project_log", &p1),
            ("project_log", &q0),
            ("experiment", &e0),
            ("experiment", &e1),
            ("experiment", &eq),
            ("dataset", &d0),
            ("dataset", &d1),
        ];
        let mut questions = Vec::new();
        for token in 0..tokens.len() {
            for (object_type, id) in objects {
                for delete in [false, true] {
                    questions.push(Question { token, object_type, id: id.clone(), delete });
                }
            }
        }
        let doc = serde_json::from_value(p.to_json()).expect("base policy");
        Base { policy: p, doc, tokens, users, groups: vec![g0, g1], roles: vec![r0, r1], acls, targets, questions }
    }
}

// ---------------------------------------------------------------------------
// Operations: indices are resolved against what exists when the operation runs
// ---------------------------------------------------------------------------

type PermIdx = (usize, Option<usize>);

#[derive(Debug, Clone)]
enum Op {
    CreateAcl {
        via: usize,
        group: bool,
        principal: usize,
        role: bool,
        grant: usize,
        restrict: Option<usize>,
        object: usize,
    },
    DeleteAcl {
        via: usize,
        acl: usize,
    },
    CreateGroup {
        via: usize,
        other_org: bool,
        users: Vec<usize>,
        groups: Vec<usize>,
    },
    PatchGroup {
        via: usize,
        group: usize,
        add_users: Vec<usize>,
        remove_users: Vec<usize>,
        add_groups: Vec<usize>,
        remove_groups: Vec<usize>,
    },
    CreateRole {
        via: usize,
        other_org: bool,
        perms: Vec<PermIdx>,
        roles: Vec<usize>,
    },
    PatchRole {
        via: usize,
        role: usize,
        add_perms: Vec<PermIdx>,
        remove_perms: Vec<PermIdx>,
        add_roles: Vec<usize>,
        remove_roles: Vec<usize>,
    },
    DeleteToken {
        via: usize,
        token: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let i = || 0..16usize;
    let is = move || vec(i(), 0..3);
    let perm = move || (i(), proptest::option::weighted(0.3, i()));
    let perms = move || vec(perm(), 0..3);
    let via = || 0..2usize;
    prop_oneof![
        5 => (via(), any::<bool>(), i(), any::<bool>(), i(), proptest::option::weighted(0.3, i()), i()).prop_map(
            |(via, group, principal, role, grant, restrict, object)| Op::CreateAcl { via, group, principal, role, grant, restrict, object }),
        2 => (via(), i()).prop_map(|(via, acl)| Op::DeleteAcl { via, acl }),
        1 => (via(), any::<bool>(), is(), is()).prop_map(|(via, other_org, users, groups)| Op::CreateGroup { via, other_org, users, groups }),
        3 => (via(), i(), is(), is(), is(), is()).prop_map(|(via, group, add_users, remove_users, add_groups, remove_groups)|
            Op::PatchGroup { via, group, add_users, remove_users, add_groups, remove_groups }),
        1 => (via(), any::<bool>(), perms(), is()).prop_map(|(via, other_org, perms, roles)| Op::CreateRole { via, other_org, perms, roles }),
        2 => (via(), i(), perms(), perms(), is(), is()).prop_map(|(via, role, add_perms, remove_perms, add_roles, remove_roles)|
            Op::PatchRole { via, role, add_perms, remove_perms, add_roles, remove_roles }),
        1 => (via(), i()).prop_map(|(via, token)| Op::DeleteToken { via, token }),
    ]
}

/// What exists now (ids), as the operations left it.
struct Live {
    groups: Vec<String>,
    roles: Vec<String>,
    acls: Vec<String>,
    tokens: Vec<String>,
    names: usize,
}

fn pick(xs: &[String], i: usize) -> Option<&String> {
    (!xs.is_empty()).then(|| &xs[i % xs.len()])
}

fn picks(xs: &[String], is: &[usize]) -> Vec<String> {
    is.iter().filter_map(|i| pick(xs, *i).cloned()).collect()
}

fn perm_items(ps: &[PermIdx]) -> Vec<Value> {
    ps.iter()
        .map(|(p, r)| json!({"permission": PERMS[p % PERMS.len()], "restrict_object_type": r.map(|r| RESTRICTS[r % RESTRICTS.len()])}))
        .collect()
}

/// Runs one operation through the admin API; returns what it did (for the
/// failure report), or `None` when there was nothing to operate on.
async fn run_op(fleet: &Fleet, base: &Base, live: &mut Live, op: &Op) -> Result<Option<String>, TestCaseError> {
    let org = |other: bool| if other { "other" } else { "acme" };
    let (via, method, path, body) = match op {
        Op::CreateAcl { via, group, principal, role, grant, restrict, object } => {
            let (object_type, object_id) = &base.targets[object % base.targets.len()];
            let mut acl = json!({"object_type": object_type, "object_id": object_id});
            match pick(&live.groups, *principal).filter(|_| *group) {
                Some(g) => acl["group_id"] = json!(g),
                None => acl["user_id"] = json!(base.users[principal % base.users.len()]),
            }
            match pick(&live.roles, *grant).filter(|_| *role) {
                Some(r) => acl["role_id"] = json!(r),
                None => {
                    acl["permission"] = json!(PERMS[grant % PERMS.len()]);
                    acl["restrict_object_type"] = json!(restrict.map(|r| RESTRICTS[r % RESTRICTS.len()]));
                }
            }
            (*via, Method::POST, "/v1/acl".to_owned(), Some(acl))
        }
        Op::DeleteAcl { via, acl } => {
            let Some(id) = pick(&live.acls, *acl).cloned() else {
                return Ok(None);
            };
            live.acls.retain(|a| *a != id);
            (*via, Method::DELETE, format!("/v1/acl/{id}"), None)
        }
        Op::CreateGroup { via, other_org, users, groups } => {
            live.names += 1;
            let body = json!({"name": format!("group-{}", live.names), "org_name": org(*other_org),
                              "member_users": picks(&base.users, users), "member_groups": picks(&live.groups, groups)});
            (*via, Method::POST, "/v1/group".to_owned(), Some(body))
        }
        Op::PatchGroup { via, group, add_users, remove_users, add_groups, remove_groups } => {
            let Some(id) = pick(&live.groups, *group) else {
                return Ok(None);
            };
            let body = json!({"add_member_users": picks(&base.users, add_users), "remove_member_users": picks(&base.users, remove_users),
                              "add_member_groups": picks(&live.groups, add_groups), "remove_member_groups": picks(&live.groups, remove_groups)});
            (*via, Method::PATCH, format!("/v1/group/{id}"), Some(body))
        }
        Op::CreateRole { via, other_org, perms, roles } => {
            live.names += 1;
            let body = json!({"name": format!("role-{}", live.names), "org_name": org(*other_org),
                              "member_permissions": perm_items(perms), "member_roles": picks(&live.roles, roles)});
            (*via, Method::POST, "/v1/role".to_owned(), Some(body))
        }
        Op::PatchRole { via, role, add_perms, remove_perms, add_roles, remove_roles } => {
            let Some(id) = pick(&live.roles, *role) else {
                return Ok(None);
            };
            let body = json!({"add_member_permissions": perm_items(add_perms), "remove_member_permissions": perm_items(remove_perms),
                              "add_member_roles": picks(&live.roles, add_roles), "remove_member_roles": picks(&live.roles, remove_roles)});
            (*via, Method::PATCH, format!("/v1/role/{id}"), Some(body))
        }
        Op::DeleteToken { via, token } => {
            let Some(id) = pick(&live.tokens, *token).cloned() else {
                return Ok(None);
            };
            live.tokens.retain(|t| *t != id);
            (*via, Method::DELETE, format!("/v1/service_token/{id}"), None)
        }
    };
    let (status, v) = fleet.admin(via, method.clone(), &path, body.clone()).await;
    let done = format!("replica {via}: {method} {path} {}", body.unwrap_or(Value::Null));
    // Groups and roles grant only in their own organization: the admin API
    // refuses a reference that crosses (and nothing changes).
    if status == 400 && v["error"]["message"].as_str().is_some_and(|m| m.contains("another organization")) {
        return Ok(Some(format!("{done} -> 400 (crosses organizations)")));
    }
    prop_assert_eq!(status, 200, "{} -> {}", done, v);
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    match op {
        Op::CreateAcl { .. } if !live.acls.contains(&id) => live.acls.push(id),
        Op::CreateGroup { .. } => live.groups.push(id),
        Op::CreateRole { .. } => live.roles.push(id),
        _ => {}
    }
    Ok(Some(done))
}

// ---------------------------------------------------------------------------
// Questions over HTTP, answers from the reference
// ---------------------------------------------------------------------------

/// The statuses of `questions` on replica `i` (8 requests in flight).
async fn ask(fleet: &Fleet, base: &Base, i: usize, questions: &[&Question]) -> Vec<u16> {
    futures_util::stream::iter(questions.iter().map(|q| async move {
        let (status, body) = fleet.write(i, &base.tokens[q.token].raw, &row(q.object_type, &q.id, q.delete)).await;
        assert!(matches!(status, 200 | 401 | 403), "unexpected answer {status}: {body}");
        status
    }))
    .buffered(8)
    .collect()
    .await
}

/// What the independent reference evaluator answers on `policy` (the
/// exported document).
fn expected(policy: &Value, base: &Base, q: &Question) -> u16 {
    let request = Request {
        token_sha256: token_sha256(&base.tokens[q.token].raw),
        object_type: q.object_type.to_owned(),
        object_id: q.id.clone(),
        permission: (if q.delete { "delete" } else { "update" }).to_owned(),
        now_ms: chrono::Utc::now().timestamp_millis(),
        client_addr: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    match reference::decide(policy, &request) {
        Outcome::Allow => 200,
        Outcome::Unauthenticated => 401,
        _ => 403,
    }
}

/// `(user id, org id)` of the policy's token with this digest.
fn token_identity(policy: &Value, digest: &str) -> Option<(String, String)> {
    let tokens = policy["service_tokens"].as_array()?;
    let t = tokens.iter().find(|t| t["token_sha256"] == digest)?;
    Some((t["service_account_id"].as_str()?.to_owned(), t["org_id"].as_str()?.to_owned()))
}

/// What the store itself decides now (the slice a replica loads on a
/// cache miss): tells a stale cache entry from a wrong slice.
async fn store_says(fleet: &Fleet, policy: &Value, base: &Base, q: &Question) -> String {
    use loggate::policy::PolicyStore;
    let Some((user_id, org_id)) = token_identity(policy, &token_sha256(&base.tokens[q.token].raw)) else {
        return "store: no such token".into();
    };
    let principal = loggate_authz::Principal::new(user_id, org_id);
    let object = loggate_model::types::ObjectRef::new(q.object_type.parse().unwrap(), q.id.as_str());
    let permission =
        if q.delete { loggate_model::types::Permission::Delete } else { loggate_model::types::Permission::Update };
    format!("store slice: {:?}", fleet.store.decide(&principal, &object, permission).await)
}

#[derive(Default)]
struct Stats {
    cases: AtomicUsize,
    ops: AtomicUsize,
    answers: [AtomicUsize; 3],
}

/// Waits until every replica applied the store's revision, exports the
/// policy, and asks every question on `replicas`: each answer must be the
/// reference's on the exported policy. Leaves those replicas' caches warm.
async fn check(
    fleet: &Fleet,
    base: &Base,
    replicas: &[usize],
    when: &str,
    log: &[String],
    stats: &Stats,
) -> Result<(), TestCaseError> {
    let revision = fleet.converge(CONVERGE).await;
    let exported = fleet.store.load_doc().await.map_err(|e| TestCaseError::fail(format!("export: {e}")))?;
    let policy = serde_json::to_value(&exported).unwrap();
    let want: Vec<u16> = base.questions.iter().map(|q| expected(&policy, base, q)).collect();
    let all: Vec<&Question> = base.questions.iter().collect();
    let mut disagreements = Vec::new();
    for &i in replicas {
        let got = ask(fleet, base, i, &all).await;
        for ((q, w), g) in base.questions.iter().zip(&want).zip(&got) {
            if w != g {
                disagreements.push(format!(
                    "replica {i}: token {} ({}) {} {} {}: reference {w}, replica {g}; {}",
                    q.token,
                    base.tokens[q.token].name,
                    if q.delete { "delete" } else { "update" },
                    q.object_type,
                    q.id,
                    store_says(fleet, &policy, base, q).await
                ));
            }
        }
        for w in &want {
            stats.answers[match w {
                200 => 0,
                403 => 1,
                _ => 2,
            }]
            .fetch_add(1, Relaxed);
        }
    }
    prop_assert!(
        disagreements.is_empty(),
        "{} disagreements {when} (revision {revision}):\n{}\noperations:\n{}\nexported policy: {}",
        disagreements.len(),
        disagreements.join("\n"),
        log.join("\n"),
        policy
    );
    Ok(())
}

async fn run_case(fleet: &Fleet, base: &Base, ops: &[Op], stats: &Stats) -> Result<(), TestCaseError> {
    fleet.store.import(&base.doc, true).await.map_err(|e| TestCaseError::fail(format!("reset: {e}")))?;
    fleet.upstream.clear();
    let both: Vec<usize> = (0..fleet.replicas.len()).collect();
    let mut log = Vec::new();
    // Warm: every question cached on both replicas (and checked).
    check(fleet, base, &both, "after the reset", &log, stats).await?;
    let mut live = Live {
        groups: base.groups.clone(),
        roles: base.roles.clone(),
        acls: base.acls.clone(),
        tokens: base.tokens.iter().map(|t| t.id.clone()).collect(),
        names: stats.cases.load(Relaxed) * 100,
    };
    let all: Vec<&Question> = base.questions.iter().collect();
    for (step, op) in ops.iter().enumerate() {
        let Some(done) = run_op(fleet, base, &mut live, op).await? else {
            continue;
        };
        log.push(done);
        stats.ops.fetch_add(1, Relaxed);
        // Right after the commit, before or after its invalidation arrives
        // (by chance), some questions on one replica...
        let (checked, other) = (step % 2, 1 - step % 2);
        let some: Vec<&Question> =
            all.iter().enumerate().filter(|(q, _)| (q + step) % 8 == 0).map(|(_, q)| *q).collect();
        ask(fleet, base, other, &some).await;
        // ...then, once converged, every question on the other one: each of
        // them was cached before this operation, so an invalidation this
        // operation missed shows up here.
        check(fleet, base, &[checked], &format!("after operation {}", log.len()), &log, stats).await?;
    }
    check(fleet, base, &both, "at the end", &log, stats).await?;
    stats.cases.fetch_add(1, Relaxed);
    Ok(())
}

#[test]
fn admin_operation_sequences_agree_with_the_reference_on_both_replicas() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let base = Base::new();
    let fleet = rt.block_on(FleetBuilder::redis().replicas(2).start(&base.policy));
    let stats = Stats::default();
    let config = Config { cases: cases(), failure_persistence: None, max_shrink_iters: 24, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    let result = runner.run(&vec(op(), 10..=18), |ops| rt.block_on(run_case(&fleet, &base, &ops, &stats)));
    let n = |a: &AtomicUsize| a.load(Relaxed);
    eprintln!(
        "fleet property: {} cases, {} admin operations, {} answers compared: {} allow, {} deny, {} unauthenticated ({:?})",
        n(&stats.cases),
        n(&stats.ops),
        n(&stats.answers[0]) + n(&stats.answers[1]) + n(&stats.answers[2]),
        n(&stats.answers[0]),
        n(&stats.answers[1]),
        n(&stats.answers[2]),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The comparisons mean something only if every answer occurs.
    assert!(stats.answers.iter().all(|a| n(a) > 0), "some answer never occurred");
    drop(fleet);
}
