//! A deterministic, realistically shaped policy for benchmarks: one
//! organization, `projects` projects (with experiments and datasets),
//! service accounts, groups nested `GROUP_DEPTH` deep, roles with role
//! inheritance, and ACLs spread over every level of the hierarchy.
//!
//! Included by every bench with `#[path = "common/policy_gen.rs"] mod policy_gen;`
//! so the shapes measured by criterion, the memory bench and the load
//! script's policy are the same ones.

#![allow(dead_code)]

use loggate_model::TokenDigest;
use loggate_model::doc::{
    Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, Role, RolePermission, ServiceToken, User,
};
use loggate_model::types::{ObjectType, Permission};

/// Sizes of a generated policy.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub projects: usize,
    pub users: usize,
    pub tokens: usize,
    pub groups: usize,
    pub roles: usize,
    pub acls: usize,
}

/// Groups are arranged in this many levels: a group of level L lists two
/// groups of level L+1 in `member_groups`; users sit in the last level.
pub const GROUP_DEPTH: usize = 5;

impl Shape {
    /// The size the issue asks for: 10k ACLs, 1k groups 5 deep, 100 roles.
    pub const LARGE: Shape =
        Shape { projects: 1_000, users: 2_000, tokens: 2_000, groups: 1_000, roles: 100, acls: 10_000 };

    pub fn with_tokens(self, tokens: usize) -> Shape {
        Shape { tokens, ..self }
    }
}

/// A generated policy and the raw tokens whose digests it stores.
pub struct Generated {
    pub doc: PolicyDoc,
    /// `tokens[i]` is the raw token of `doc.service_tokens[i]`.
    pub tokens: Vec<String>,
}

pub const ORG_ID: &str = "00000000-0000-4000-8000-000000000000";

fn id(kind: u32, i: usize) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

pub fn project_id(i: usize) -> String {
    id(1, i)
}
pub fn experiment_id(i: usize) -> String {
    id(2, i)
}
pub fn dataset_id(i: usize) -> String {
    id(3, i)
}
pub fn user_id(i: usize) -> String {
    id(4, i)
}
fn group_id(i: usize) -> String {
    id(5, i)
}
fn role_id(i: usize) -> String {
    id(6, i)
}
fn acl_id(i: usize) -> String {
    id(7, i)
}
fn token_id(i: usize) -> String {
    id(8, i)
}

/// The raw service token number `i` (valid `bt-st-` syntax).
pub fn raw_token(i: usize) -> String {
    format!("bt-st-bench_{i:010}_abcdefghijklmnopqrstuvwx")
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PERMISSIONS: [Permission; 4] = [Permission::Create, Permission::Read, Permission::Update, Permission::Delete];
const RESTRICT: [Option<ObjectType>; 4] =
    [None, Some(ObjectType::ProjectLog), Some(ObjectType::Experiment), Some(ObjectType::Dataset)];

/// Builds the policy. Every token's service account gets `update` on the
/// project log of project `token % projects` through the full group chain
/// and a role that inherits `update` from another role, so the benches'
/// allowed decisions walk the deepest path; the remaining ACLs are noise
/// spread over the org, projects, logs, experiments and datasets.
pub fn generate(shape: Shape) -> Generated {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_level = shape.groups / GROUP_DEPTH;
    assert!(per_level >= 2, "need at least {} groups", 2 * GROUP_DEPTH);
    let organizations = vec![Organization::new(ORG_ID, "bench")];
    let projects = (0..shape.projects)
        .map(|i| Project {
            id: project_id(i),
            org_id: ORG_ID.into(),
            name: format!("project-{i}"),
            description: None,
            deleted_at: None,
        })
        .collect();
    let experiments = (0..shape.projects * 2)
        .map(|i| Experiment::new(experiment_id(i), project_id(i % shape.projects), format!("exp-{i}")))
        .collect();
    let datasets = (0..shape.projects).map(|i| Dataset::new(dataset_id(i), project_id(i), format!("ds-{i}"))).collect();
    let users =
        (0..shape.users).map(|i| User { id: user_id(i), name: format!("svc-{i}"), service_account: true }).collect();

    // Groups: level L occupies [L*per_level, (L+1)*per_level).
    let level = |l: usize, j: usize| l * per_level + j % per_level;
    let mut groups: Vec<Group> = (0..shape.groups)
        .map(|g| Group {
            id: group_id(g),
            org_id: ORG_ID.into(),
            name: format!("group-{g}"),
            description: None,
            member_users: vec![],
            member_groups: vec![],
            deleted_at: None,
        })
        .collect();
    for l in 0..GROUP_DEPTH - 1 {
        for j in 0..per_level {
            let g = level(l, j);
            groups[g].member_groups = vec![group_id(level(l + 1, 2 * j)), group_id(level(l + 1, 2 * j + 1))];
        }
    }
    for u in 0..shape.users {
        groups[level(GROUP_DEPTH - 1, u)].member_users.push(user_id(u));
    }

    // Roles: role 0 grants update (restricted to project logs); role r > 0
    // grants one random permission and inherits role r-1 (roles 1..=5, then
    // every fifth), so role 5 reaches update through five levels.
    let roles = (0..shape.roles)
        .map(|r| Role {
            id: role_id(r),
            org_id: Some(ORG_ID.into()),
            name: format!("role-{r}"),
            description: None,
            member_permissions: vec![RolePermission {
                permission: if r == 0 { Permission::Update } else { PERMISSIONS[rng.below(4)] },
                restrict_object_type: if r == 0 { Some(ObjectType::ProjectLog) } else { RESTRICT[rng.below(4)] },
            }],
            member_roles: if r > 0 && (r <= 5 || r % 5 == 0) { vec![role_id(r - 1)] } else { vec![] },
            deleted_at: None,
        })
        .collect();

    let mut acls = Vec::with_capacity(shape.acls);
    // The grant that makes the benches' writes pass: each project's log is
    // writable by the top-level group containing (through four more
    // levels) the users whose tokens write to it, via role 5 -> role 4 ... -> role 0.
    let inherits_update = 5.min(shape.roles - 1);
    for p in 0..shape.projects.min(shape.acls) {
        // The users writing to p (see `writable_project`) sit in leaf group
        // u % per_level; the top group holding that leaf is found by halving.
        let top = top_ancestor(p % per_level);
        acls.push(Acl {
            id: acl_id(acls.len()),
            object_type: ObjectType::ProjectLog,
            object_id: project_id(p),
            user_id: None,
            group_id: Some(group_id(level(0, top))),
            permission: None,
            role_id: Some(role_id(inherits_update)),
            restrict_object_type: None,
        });
    }
    while acls.len() < shape.acls {
        let i = acls.len();
        let (object_type, object_id) = match rng.below(10) {
            0 => (ObjectType::Organization, ORG_ID.to_string()),
            1..=3 => (ObjectType::Project, project_id(rng.below(shape.projects))),
            4..=5 => (ObjectType::ProjectLog, project_id(rng.below(shape.projects))),
            6..=7 => (ObjectType::Experiment, experiment_id(rng.below(shape.projects * 2))),
            _ => (ObjectType::Dataset, dataset_id(rng.below(shape.projects))),
        };
        let by_group = rng.below(4) != 0;
        let by_role = rng.below(2) == 0;
        acls.push(Acl {
            id: acl_id(i),
            object_type,
            object_id,
            user_id: (!by_group).then(|| user_id(rng.below(shape.users))),
            group_id: by_group.then(|| group_id(rng.below(shape.groups))),
            permission: (!by_role).then(|| PERMISSIONS[rng.below(2)]), // create/read: noise never grants update
            role_id: by_role.then(|| role_id(1 + rng.below(shape.roles - 1))),
            restrict_object_type: None,
        });
    }

    let tokens: Vec<String> = (0..shape.tokens).map(raw_token).collect();
    let service_tokens = tokens
        .iter()
        .enumerate()
        .map(|(i, raw)| ServiceToken {
            id: token_id(i),
            name: format!("token-{i}"),
            org_id: ORG_ID.into(),
            service_account_id: user_id(i % shape.users),
            token_sha256: TokenDigest::of(raw),
            expires_at: None,
            not_before: None,
            scope: None,
            parent_id: None,
        })
        .collect();

    Generated {
        doc: PolicyDoc { organizations, projects, experiments, datasets, users, groups, roles, acls, service_tokens },
        tokens,
    }
}

/// The level-0 group (index within its level) whose subtree holds `leaf`
/// (index within the last level): the children of j are 2j and 2j+1 (mod
/// the level size), so j/2 is always a parent of j.
fn top_ancestor(leaf: usize) -> usize {
    leaf >> (GROUP_DEPTH - 1)
}

/// The project whose log token `token` may write to (through the group
/// chain and the role chain). Needs `projects` to divide into groups per
/// level evenly, as in `Shape::LARGE`.
pub fn writable_project(shape: Shape, token: usize) -> usize {
    (token % shape.users) % shape.projects
}
