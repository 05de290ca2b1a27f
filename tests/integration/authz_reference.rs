//! Property tests comparing the reference evaluator of design §3
//! (`support/reference.rs`: plain loops over the raw policy JSON, written
//! from the contract text alone) with the fast path
//! (`CompiledPolicy::decide`) on random policies and requests.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::support::reference::{arr, reference};
use loggate_authz::{CompiledPolicy, Decision, DenyReason, Principal};
use loggate_model::TokenDigest;
use loggate_model::doc::*;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------
// Random policies, from a tape of random numbers (shrinks towards zeros,
// i.e. towards smaller policies)
// ---------------------------------------------------------------------------

struct Tape {
    data: Vec<u32>,
    pos: usize,
}

impl Tape {
    fn next(&mut self) -> u32 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
    /// True with `pct` percent probability; false on a zero.
    fn chance(&mut self, pct: u32) -> bool {
        self.next() % 100 >= 100 - pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const PERMS: [&str; 6] = ["update", "read", "create", "delete", "update", "read_acls"];
const TYPES: [&str; 5] = ["organization", "project", "project_log", "experiment", "dataset"];
const RESTRICTS: [&str; 6] = ["organization", "project", "project_log", "experiment", "dataset", "prompt"];

fn gen_policy(t: &mut Tape) -> PolicyDoc {
    let mut doc = PolicyDoc::default();
    for o in 0..2 + t.below(2) {
        doc.organizations.push(Organization { id: format!("o{o}"), name: format!("org{o}") });
        for _ in 0..1 + t.below(3) {
            let p = doc.projects.len();
            doc.projects.push(Project {
                id: format!("p{p}"),
                org_id: format!("o{o}"),
                // names repeat across orgs
                name: format!("proj{}", p % 3),
                description: None,
                deleted_at: t.chance(20).then(|| "2026-01-01T00:00:00Z".to_string()),
            });
            for _ in 0..t.below(3) {
                let e = doc.experiments.len();
                doc.experiments.push(Experiment {
                    id: format!("e{e}"),
                    project_id: format!("p{p}"),
                    name: format!("exp{e}"),
                });
            }
            for _ in 0..t.below(3) {
                let d = doc.datasets.len();
                doc.datasets.push(Dataset { id: format!("d{d}"), project_id: format!("p{p}"), name: format!("ds{d}") });
            }
        }
    }
    let n_orgs = doc.organizations.len();
    let n_users = 2 + t.below(5);
    for u in 0..n_users {
        doc.users.push(User { id: format!("u{u}"), name: format!("user{u}"), service_account: t.chance(50) });
    }
    let n_groups = 1 + t.below(6);
    for g in 0..n_groups {
        let member_users = (0..n_users).filter(|_| t.chance(25)).map(|u| format!("u{u}")).collect();
        let member_groups = (0..n_groups).filter(|_| t.chance(25)).map(|h| format!("g{h}")).collect();
        doc.groups.push(Group {
            id: format!("g{g}"),
            org_id: format!("o{}", t.below(n_orgs)),
            name: format!("group{g}"),
            description: None,
            member_users,
            member_groups,
        });
    }
    let n_roles = t.below(5);
    for r in 0..n_roles {
        let member_permissions = (0..t.below(3))
            .map(|_| RolePermission {
                permission: t.pick(&PERMS).to_string(),
                restrict_object_type: t.chance(40).then(|| t.pick(&RESTRICTS).to_string()),
            })
            .collect();
        let member_roles = (0..n_roles).filter(|_| t.chance(25)).map(|m| format!("r{m}")).collect();
        doc.roles.push(Role {
            id: format!("r{r}"),
            org_id: t.chance(50).then(|| format!("o{}", t.below(n_orgs))),
            name: format!("role{r}"),
            description: None,
            member_permissions,
            member_roles,
        });
    }
    for a in 0..1 + t.below(14) {
        let (object_type, object_id) = if t.chance(5) {
            ("prompt".to_string(), format!("prompt{}", t.below(3)))
        } else {
            let ty = *t.pick(&TYPES);
            let id = match ty {
                "organization" => doc.organizations[t.below(n_orgs)].id.clone(),
                "project" | "project_log" => doc.projects[t.below(doc.projects.len())].id.clone(),
                "experiment" if !doc.experiments.is_empty() => {
                    doc.experiments[t.below(doc.experiments.len())].id.clone()
                }
                "dataset" if !doc.datasets.is_empty() => doc.datasets[t.below(doc.datasets.len())].id.clone(),
                _ => continue,
            };
            (ty.to_string(), id)
        };
        let (user_id, group_id) = if t.chance(50) {
            (Some(format!("u{}", t.below(n_users))), None)
        } else {
            (None, Some(format!("g{}", t.below(n_groups))))
        };
        let (permission, role_id) = if n_roles == 0 || t.chance(50) {
            (Some(t.pick(&PERMS).to_string()), None)
        } else {
            (None, Some(format!("r{}", t.below(n_roles))))
        };
        doc.acls.push(Acl {
            id: format!("a{a}"),
            object_type,
            object_id,
            user_id,
            group_id,
            permission,
            role_id,
            restrict_object_type: t.chance(25).then(|| t.pick(&RESTRICTS).to_string()),
        });
    }
    for k in 0..1 + t.below(3) {
        doc.service_tokens.push(ServiceToken {
            id: format!("t{k}"),
            name: format!("token{k}"),
            org_id: format!("o{}", t.below(n_orgs)),
            service_account_id: format!("u{}", t.below(n_users)),
            token_sha256: TokenDigest::of(&token_string(k)).to_hex(),
            expires_at: t.chance(50).then(|| format!("2030-01-0{}T00:00:00Z", 1 + t.below(9))),
        });
    }
    doc
}

fn token_string(k: usize) -> String {
    format!("bt-st-{k:0>40}")
}

/// A request: mostly existing principals and objects, sometimes unknown
/// ones, with the principal's org usually (not always) the object's.
fn gen_request(t: &mut Tape, doc: &PolicyDoc) -> (Principal, ObjectRef, Permission) {
    if !doc.acls.is_empty() && t.chance(50) {
        return gen_request_near_acl(t, doc);
    }
    let user_id = if t.chance(5) { "ghost".to_string() } else { doc.users[t.below(doc.users.len())].id.clone() };
    let ty: ObjectType = if t.chance(3) { ObjectType::Prompt } else { t.pick(&TYPES).parse().unwrap() };
    let ids: Vec<&str> = match ty {
        ObjectType::Organization => doc.organizations.iter().map(|o| o.id.as_str()).collect(),
        ObjectType::Project | ObjectType::ProjectLog => doc.projects.iter().map(|p| p.id.as_str()).collect(),
        ObjectType::Experiment => doc.experiments.iter().map(|e| e.id.as_str()).collect(),
        ObjectType::Dataset => doc.datasets.iter().map(|d| d.id.as_str()).collect(),
        _ => vec![],
    };
    let id = if ids.is_empty() || t.chance(8) {
        // unknown, or an id of another type
        t.pick(&["nope", "o0", "p0", "e0", "d0", "u0", "g0", "prompt0"]).to_string()
    } else {
        t.pick(&ids).to_string()
    };
    let object = ObjectRef::new(ty, id);
    let permission: Permission = t.pick(&PERMS).parse().unwrap();
    // the object's own org most of the time, so that grants matter
    let compiled_org = object_org_naive(doc, &object);
    let org_id = match compiled_org {
        Some(o) if t.chance(75) => o,
        _ if t.chance(5) => "o9".to_string(),
        _ => doc.organizations[t.below(doc.organizations.len())].id.clone(),
    };
    (Principal { user_id, org_id }, object, permission)
}

/// A request aimed at an ACL: its user (or a member of its group), an
/// object at or below its object, and usually its permission.
fn gen_request_near_acl(t: &mut Tape, doc: &PolicyDoc) -> (Principal, ObjectRef, Permission) {
    let acl = &doc.acls[t.below(doc.acls.len())];
    let user_id = match (&acl.user_id, &acl.group_id) {
        (Some(u), _) => u.clone(),
        (_, Some(g)) => {
            // a direct member of the group or of any group (membership may be transitive)
            let groups: Vec<&Group> = doc.groups.iter().filter(|x| &x.id == g || t.chance(30)).collect();
            let members: Vec<&String> = groups.iter().flat_map(|x| x.member_users.iter()).collect();
            if members.is_empty() {
                doc.users[t.below(doc.users.len())].id.clone()
            } else {
                t.pick(&members).to_string()
            }
        }
        _ => unreachable!(),
    };
    let mut below: Vec<ObjectRef> = vec![];
    let add_project = |below: &mut Vec<ObjectRef>, pid: &str| {
        below.push(ObjectRef::new(ObjectType::Project, pid));
        below.push(ObjectRef::new(ObjectType::ProjectLog, pid));
        below.extend(
            doc.experiments
                .iter()
                .filter(|e| e.project_id == pid)
                .map(|e| ObjectRef::new(ObjectType::Experiment, &*e.id)),
        );
        below.extend(
            doc.datasets.iter().filter(|d| d.project_id == pid).map(|d| ObjectRef::new(ObjectType::Dataset, &*d.id)),
        );
    };
    match acl.object_type.as_str() {
        "organization" => {
            below.push(ObjectRef::new(ObjectType::Organization, &*acl.object_id));
            for p in doc.projects.iter().filter(|p| p.org_id == acl.object_id) {
                add_project(&mut below, &p.id);
            }
        }
        "project" => add_project(&mut below, &acl.object_id),
        _ => below.push(ObjectRef::new(acl.object_type.parse().unwrap(), &*acl.object_id)),
    }
    let object = t.pick(&below).clone();
    let permission = match &acl.permission {
        Some(p) if t.chance(70) => p.parse().unwrap(),
        _ => t.pick(&PERMS).parse().unwrap(),
    };
    let org_id = match object_org_naive(doc, &object) {
        Some(o) if t.chance(90) => o,
        _ => doc.organizations[t.below(doc.organizations.len())].id.clone(),
    };
    (Principal { user_id, org_id }, object, permission)
}

/// The org of an object (ignoring deletion), for choosing request orgs.
fn object_org_naive(doc: &PolicyDoc, o: &ObjectRef) -> Option<String> {
    let project_org = |pid: &str| doc.projects.iter().find(|p| p.id == pid).map(|p| p.org_id.clone());
    match o.object_type {
        ObjectType::Organization => Some(o.id.clone()),
        ObjectType::Project | ObjectType::ProjectLog => project_org(&o.id),
        ObjectType::Experiment => {
            doc.experiments.iter().find(|e| e.id == o.id).and_then(|e| project_org(&e.project_id))
        }
        ObjectType::Dataset => doc.datasets.iter().find(|d| d.id == o.id).and_then(|d| project_org(&d.project_id)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

const REQUESTS_PER_CASE: usize = 25;

#[derive(Default)]
struct Stats {
    cases: AtomicUsize,
    requests: AtomicUsize,
    allow: AtomicUsize,
    missing: AtomicUsize,
    unknown: AtomicUsize,
    other_org: AtomicUsize,
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(4000)
}

fn check_case(tape: Vec<u32>, stats: &Stats) -> Result<(), TestCaseError> {
    let mut t = Tape { data: tape, pos: 0 };
    let doc = gen_policy(&mut t);
    let raw = serde_json::to_value(&doc).unwrap();
    let policy = CompiledPolicy::compile(doc.clone())
        .map_err(|e| TestCaseError::fail(format!("generated policy rejected: {e}")))?;
    stats.cases.fetch_add(1, Relaxed);

    for _ in 0..REQUESTS_PER_CASE {
        let (principal, object, permission) = gen_request(&mut t, &doc);
        let want = reference(
            &raw,
            &principal.user_id,
            &principal.org_id,
            object.object_type.as_str(),
            &object.id,
            permission.as_str(),
        );
        let got = policy.decide(&principal, &object, permission);
        prop_assert_eq!(got, want, "{:?} {} {}\npolicy: {}", principal, object, permission, raw);
        prop_assert_eq!(policy.explain(&principal, &object, permission).decision, want);
        stats.requests.fetch_add(1, Relaxed);
        match want {
            Decision::Allow => &stats.allow,
            Decision::Deny(DenyReason::MissingPermission) => &stats.missing,
            Decision::Deny(DenyReason::UnknownObject) => &stats.unknown,
            Decision::Deny(DenyReason::OtherOrganization) => &stats.other_org,
        }
        .fetch_add(1, Relaxed);
    }

    // Identities: every token by its digest, plain loop for the expectation.
    for k in 0..4 {
        let digest = TokenDigest::of(&token_string(k));
        let want = arr(&raw, "service_tokens").iter().find(|x| x["token_sha256"] == digest.to_hex().as_str());
        let got = policy.identity(&digest);
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) => {
                prop_assert_eq!(w["id"].as_str(), Some(g.token_id.as_str()));
                prop_assert_eq!(w["org_id"].as_str(), Some(g.org_id.as_str()));
                prop_assert_eq!(w["service_account_id"].as_str(), Some(g.user_id.as_str()));
                let exp = w["expires_at"]
                    .as_str()
                    .map(|e| chrono::DateTime::parse_from_rfc3339(e).unwrap().timestamp_millis());
                prop_assert_eq!(exp, g.expires_at_ms);
            }
            (w, g) => prop_assert!(false, "token {k}: reference {:?}, fast path {:?}", w, g),
        }
    }
    Ok(())
}

#[test]
fn fast_path_matches_reference_on_random_policies() {
    let stats = Stats::default();
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let tape = proptest::collection::vec(any::<u32>(), 300..600);
    if let Err(e) = runner.run(&tape, |tape| check_case(tape, &stats)) {
        panic!("{e}");
    }
    let n = |a: &AtomicUsize| a.load(Relaxed);
    eprintln!(
        "authz reference: {} policies, {} requests: {} allow, {} missing permission, {} unknown object, {} other organization",
        n(&stats.cases),
        n(&stats.requests),
        n(&stats.allow),
        n(&stats.missing),
        n(&stats.unknown),
        n(&stats.other_org)
    );
    // The comparison is only meaningful if every outcome occurs often.
    let requests = n(&stats.requests);
    if cases() >= 2000 {
        assert!(requests >= 10_000, "{requests} requests");
    }
    for (what, count) in [
        ("allow", n(&stats.allow)),
        ("missing", n(&stats.missing)),
        ("unknown", n(&stats.unknown)),
        ("other org", n(&stats.other_org)),
    ] {
        assert!(count * 20 >= requests, "{what}: only {count} of {requests}");
    }
}

/// The reference itself, on a hand-made case of every rule, so that a bug
/// shared by both evaluators is less likely to hide.
#[test]
fn reference_agrees_with_the_contract_on_known_cases() {
    let raw = serde_json::json!({
        "organizations": [{"id": "o1", "name": "a"}, {"id": "o2", "name": "b"}],
        "projects": [{"id": "p1", "org_id": "o1", "name": "x"},
                     {"id": "p2", "org_id": "o1", "name": "y", "deleted_at": "2026-01-01T00:00:00Z"},
                     {"id": "q1", "org_id": "o2", "name": "x"}],
        "experiments": [{"id": "e1", "project_id": "p1", "name": "e"}],
        "groups": [{"id": "g1", "org_id": "o1", "name": "g", "member_groups": ["g2"]},
                   {"id": "g2", "org_id": "o1", "name": "h", "member_users": ["u"], "member_groups": ["g1"]}],
        "roles": [{"id": "r1", "name": "r", "member_roles": ["r2"]},
                  {"id": "r2", "name": "s", "member_roles": ["r1"],
                   "member_permissions": [{"permission": "update", "restrict_object_type": "project_log"}]}],
        "acls": [{"id": "a", "object_type": "organization", "object_id": "o1", "group_id": "g1", "role_id": "r1"},
                 {"id": "b", "object_type": "project", "object_id": "q1", "user_id": "u", "permission": "update"}]
    });
    let r = |org: &str, t: &str, id: &str, p: &str| reference(&raw, "u", org, t, id, p);
    assert_eq!(r("o1", "project_log", "p1", "update"), Decision::Allow);
    assert_eq!(r("o1", "experiment", "e1", "update"), Decision::Deny(DenyReason::MissingPermission));
    assert_eq!(r("o1", "project_log", "p1", "create"), Decision::Deny(DenyReason::MissingPermission));
    assert_eq!(r("o1", "project_log", "p2", "update"), Decision::Deny(DenyReason::UnknownObject));
    assert_eq!(r("o1", "project_log", "q1", "update"), Decision::Deny(DenyReason::OtherOrganization));
    assert_eq!(r("o2", "project_log", "q1", "update"), Decision::Allow);
    assert_eq!(r("o1", "prompt", "p1", "update"), Decision::Deny(DenyReason::UnknownObject));
}
