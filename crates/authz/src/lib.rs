//! Authorization: the Braintrust permission model (contract: Permission model) as a pure,
//! synchronous evaluator over a compiled policy. No I/O, no clock, no async:
//! everything here is a function of its arguments, so it is tested with data
//! alone (see `tests/authz_reference.rs` for the independent reference).
//!
//! `CompiledPolicy::compile` validates a `PolicyDoc` and precomputes group
//! closures, role closures and per-object ACL indexes, so a decision is a
//! handful of hash lookups.

mod compile;
mod explain;
mod learn;
mod org_wide;

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashTable};
use loggate_model::doc::Acl;
use loggate_model::identity;

pub use learn::Learning;

use loggate_model::compact::CompactDoc;
use loggate_model::doc::PolicyDoc;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, Scopes, TokenDigest};
use loggate_model::{PolicyError, ValidPolicy};

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The object exists in the token's org but no ACL grants the permission.
    MissingPermission,
    /// The object is not in the policy (or its project is soft-deleted).
    UnknownObject,
    /// The object belongs to another organization than the token.
    OtherOrganization,
    /// The ACLs grant the permission but the token's scope does not.
    ScopeDenied,
}

/// The outcome of one (principal, object, permission) question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allow(self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Who is asking: the user id ACLs name, the org the token is confined to
/// and the scopes that narrow what the ACLs grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user_id: String,
    pub org_id: String,
    pub scopes: Scopes,
}

impl Principal {
    /// A principal no scope narrows.
    pub fn new(user_id: impl Into<String>, org_id: impl Into<String>) -> Self {
        Principal { user_id: user_id.into(), org_id: org_id.into(), scopes: Scopes::default() }
    }
}

impl From<&Identity> for Principal {
    fn from(id: &Identity) -> Self {
        Principal { user_id: id.user_id.clone(), org_id: id.org_id.clone(), scopes: id.scopes.clone() }
    }
}

/// The evidence behind a decision, for `loggate authz --explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// Human-readable lines: for an allow, the ACL id, the group chain from
    /// the user to the ACL's group, and the role chain; for a deny, which
    /// permissions the principal holds on the object and what is missing.
    pub lines: Vec<String>,
    /// For a deny, the sides that denied: `acl` (no ACL grants it, or the
    /// object is unknown or in another organization) and/or `scope`.
    pub denied_by: Vec<&'static str>,
}

/// A validated policy with every index a decision needs precomputed.
///
/// Every collection is interned in document order, so an index `i` of, say,
/// a project is also its position in `to_doc().projects`. Objects learned from
/// the data plane after compiling (`learn`) sit in a small overlay beside
/// the compiled core and take the indexes after the document's.
pub struct CompiledPolicy {
    core: Arc<Core>,
    learned: Arc<learn::Learned>,
}

/// The compiled document: shared, unchanged, between a policy and the
/// policies learning makes from it.
struct Core {
    /// The document as compact records: what the indexes point into.
    doc: CompactDoc,
    orgs: Interner,
    org_names: HashMap<Box<str>, u32>,
    projects: Interner,
    /// Per project: its org and whether it is deleted (`None`: no such org).
    project_info: Vec<Option<ProjectInfo>>,
    /// (org, live project name) -> project.
    project_names: NameIndex,
    experiments: Interner,
    /// Per experiment: its project; `None` when the experiment is deleted.
    experiment_project: Vec<Option<u32>>,
    /// (project, experiment name) -> experiment.
    experiment_names: NameIndex,
    datasets: Interner,
    /// Per dataset: its project; `None` when the dataset is deleted.
    dataset_project: Vec<Option<u32>>,
    dataset_names: NameIndex,
    users: Interner,
    /// Per user: the set (in `group_sets`) of the groups listing it in
    /// `member_users`, and the set of every group containing it (directly or
    /// transitively, sorted). Users with the same groups share the sets.
    user_direct: Vec<u32>,
    user_closure: Vec<u32>,
    group_sets: Vec<Box<[u32]>>,
    groups: Interner,
    /// Per group H: the groups G with H in `G.member_groups`.
    group_parents: Vec<Box<[u32]>>,
    roles: Interner,
    /// Per role: its own `member_permissions`, parsed.
    role_own: Vec<Box<[Grant]>>,
    /// Per role: its `member_roles`.
    role_members: Vec<Box<[u32]>>,
    /// ACLs by the object they sit on; see `Scope`.
    org_acls: Vec<Box<[AclEntry]>>,
    project_acls: Vec<Box<[AclEntry]>>,
    project_log_acls: Vec<Box<[AclEntry]>>,
    experiment_acls: Vec<Box<[AclEntry]>>,
    dataset_acls: Vec<Box<[AclEntry]>>,
    /// Service tokens by id (for parents).
    tokens: Interner,
    /// Service tokens hashed by `TokenDigest::bucket()`.
    token_buckets: HashTable<u32>,
}

impl fmt::Debug for CompiledPolicy {
    /// Counts only: a policy can be large, and token digests are secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doc = &self.core.doc;
        f.debug_struct("CompiledPolicy")
            .field("organizations", &doc.organizations.len())
            .field("projects", &doc.projects.len())
            .field("experiments", &doc.experiments.len())
            .field("datasets", &doc.datasets.len())
            .field("users", &doc.users.len())
            .field("groups", &doc.groups.len())
            .field("roles", &doc.roles.len())
            .field("acls", &doc.acls.len())
            .field("service_tokens", &doc.service_tokens.len())
            .field("learned", &self.learned.len())
            .finish()
    }
}

/// Ids of one collection -> dense indexes (document order). Holds the
/// indexes only: the ids are the document's, so a lookup is handed them.
#[derive(Default)]
struct Interner {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    /// Interns `ids` in order; a repeated id keeps its first index.
    fn new(ids: &[&str]) -> Self {
        let mut table = HashTable::with_capacity(ids.len());
        let hasher = DefaultHashBuilder::default();
        for (i, id) in ids.iter().enumerate() {
            let hash = hasher.hash_one(id);
            if table.find(hash, |&j: &u32| ids[j as usize] == *id).is_none() {
                table.insert_unique(hash, i as u32, |&j: &u32| hasher.hash_one(ids[j as usize]));
            }
        }
        Interner { table, hasher }
    }

    fn get<'a>(&self, id: &str, ids: impl Fn(u32) -> &'a str) -> Option<u32> {
        self.table.find(self.hasher.hash_one(id), |&i| ids(i) == id).copied()
    }
}

/// (parent index, name) -> the first child of that name, in document order.
#[derive(Default)]
struct NameIndex {
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl NameIndex {
    /// Indexes each child with `Some(parent)`; `name` gives its name.
    fn new<'a>(parents: &[Option<u32>], name: impl Fn(u32) -> &'a str) -> Self {
        let mut table = HashTable::with_capacity(parents.len());
        let hasher = DefaultHashBuilder::default();
        for (i, parent) in parents.iter().enumerate() {
            let Some(parent) = *parent else { continue };
            let n = name(i as u32);
            let hash = hasher.hash_one((parent, n));
            if table.find(hash, |&j: &u32| parents[j as usize] == Some(parent) && name(j) == n).is_none() {
                table.insert_unique(hash, i as u32, |&j: &u32| {
                    hasher.hash_one((parents[j as usize].unwrap_or(u32::MAX), name(j)))
                });
            }
        }
        NameIndex { table, hasher }
    }

    fn get<'a>(&self, parent: u32, name: &str, of: impl Fn(u32) -> (Option<u32>, &'a str)) -> Option<u32> {
        self.table.find(self.hasher.hash_one((parent, name)), |&i| of(i) == (Some(parent), name)).copied()
    }
}

#[derive(Debug, Clone, Copy)]
struct ProjectInfo {
    org: u32,
    deleted: bool,
}

/// A permission, optionally only for objects of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    permission: Permission,
    restrict: Option<ObjectType>,
}

/// Permission bits per object type the grant applies to, indexed by
/// `ObjectType as usize`.
type Masks = [u8; ObjectType::ALL.len()];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AclPrincipal {
    User(u32),
    Group(u32),
}

/// One ACL as a decision sees it: who, and what on which object types
/// (role closure and every restriction already folded in).
#[derive(Debug, Clone)]
struct AclEntry {
    principal: AclPrincipal,
    masks: Masks,
    /// Position in `doc.acls` (after them: in the learned ACLs), for
    /// explanations.
    acl: u32,
}

/// A known, live object: its org, its project and the ACL lists that apply
/// to it, most specific first (object, project, organization).
struct Scope<'a> {
    org: u32,
    project: Option<u32>,
    chain: [&'a [AclEntry]; 3],
}

impl CompiledPolicy {
    /// Builds the indexes of a loaded policy.
    pub fn compile(policy: ValidPolicy) -> Self {
        CompiledPolicy { core: Arc::new(compile::build(policy)), learned: Arc::default() }
    }

    /// Loads `doc` (leaving out what breaks a rule, see `loggate_model::load`)
    /// and compiles what is left; returns what was left out beside it.
    pub fn from_doc(doc: PolicyDoc) -> (Self, Vec<PolicyError>) {
        let loaded = loggate_model::load::from_doc(doc);
        (Self::compile(loaded.policy), loaded.left_out)
    }

    /// The document this policy was compiled from (without what was learned
    /// since: see `learn`), rebuilt in its own shape: a copy, for the CLI
    /// and tests, never for a request.
    pub fn to_doc(&self) -> PolicyDoc {
        self.core.doc.to_doc()
    }

    /// An organization's name, by id.
    pub fn org_name(&self, org_id: &str) -> Option<&str> {
        let o = self.org_ix(org_id)?;
        Some(self.core.doc.str(self.core.doc.organizations[o as usize].name))
    }

    /// Whether an organization gives creators every permission on what they
    /// create (`None`: no such organization).
    pub fn creator_grants(&self, org_id: &str) -> Option<bool> {
        let o = self.org_ix(org_id)?;
        Some(self.core.doc.organizations[o as usize].creator_grants)
    }

    /// The identity of a service token, by digest (constant-time compare).
    /// Expiry is not checked here (no clock): see `Identity::expired`.
    pub fn identity(&self, digest: &TokenDigest) -> Option<Identity> {
        let doc = &self.core.doc;
        // Compare every candidate (constant-time `==`), without stopping early.
        let mut found = None;
        for &t in self.core.token_buckets.iter_hash(digest.bucket()) {
            if doc.service_tokens[t as usize].token_sha256 == *digest {
                found = Some(t);
            }
        }
        let token = doc.token(found? as usize);
        // Loading kept only tokens whose parents are loaded.
        let ancestors = if token.token.parent_id.is_none() {
            Vec::new()
        } else {
            identity::ancestors(&token, |id| self.token_ix(id).map(|j| doc.token(j as usize))).unwrap_or_default()
        };
        Some(Identity::of(&token, &ancestors))
    }

    /// Does `principal` hold `permission` on `object`?
    pub fn decide(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Decision {
        match self.confine(principal, object) {
            Err(reason) => Decision::Deny(reason),
            Ok(scope) => {
                // When both deny, the ACLs are the reason given.
                if self.granting(principal, object.object_type, permission, &scope).next().is_none() {
                    Decision::Deny(DenyReason::MissingPermission)
                } else if !self.scope_allows(principal, object, permission, &scope) {
                    Decision::Deny(DenyReason::ScopeDenied)
                } else {
                    Decision::Allow
                }
            }
        }
    }

    /// Whether the principal's scopes let `permission` on `object` through.
    fn scope_allows(&self, principal: &Principal, object: &ObjectRef, permission: Permission, scope: &Scope) -> bool {
        if principal.scopes.is_empty() {
            return true;
        }
        let org = (ObjectType::Organization, self.org_id(scope.org));
        let mut ancestry = [org; 3];
        let mut n = 0;
        if object.object_type != ObjectType::Organization {
            ancestry[n] = (object.object_type, object.id.as_str());
            n += 1;
        }
        if let Some(p) = scope.project.filter(|_| object.object_type != ObjectType::Project) {
            ancestry[n] = (ObjectType::Project, self.project_id(p));
            n += 1;
        }
        principal.scopes.allow(permission, &ancestry[..=n])
    }

    /// `decide` with its evidence.
    pub fn explain(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Explanation {
        explain::explain(self, principal, object, permission)
    }

    /// The organization an object belongs to, if the object is known (and
    /// its project not deleted).
    pub fn object_org(&self, object: &ObjectRef) -> Option<&str> {
        let scope = self.scope(object)?;
        Some(self.org_id(scope.org))
    }

    /// Organization id by name.
    pub fn org_by_name(&self, name: &str) -> Option<&str> {
        let o = *self.core.org_names.get(name)?;
        Some(self.org_id(o))
    }

    /// Live (not deleted) project id by (org id, name).
    pub fn project_by_name(&self, org_id: &str, name: &str) -> Option<&str> {
        let o = self.org_ix(org_id)?;
        let core = &self.core;
        let found = core.project_names.get(o, name, |p| {
            let info = core.project_info[p as usize].filter(|i| !i.deleted);
            (info.map(|i| i.org), core.doc.str(core.doc.projects[p as usize].name))
        });
        let p = found.or_else(|| self.learned.project_by_name(core.doc.projects.len(), o, name))?;
        Some(self.project_id(p))
    }

    /// Experiment id by (project id, name). `None` when the project is
    /// unknown or deleted, as its experiments are then not writable.
    pub fn experiment_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let p = self.live_project(project_id)?;
        let core = &self.core;
        let found = core.experiment_names.get(p, name, |e| {
            (core.experiment_project[e as usize], core.doc.str(core.doc.experiments[e as usize].name))
        });
        let e = found.or_else(|| self.learned.experiment_by_name(core.doc.experiments.len(), p, name))?;
        Some(self.experiment_id(e))
    }

    /// Dataset id by (project id, name). `None` when the project is unknown
    /// or deleted.
    pub fn dataset_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let p = self.live_project(project_id)?;
        let core = &self.core;
        let found = core
            .dataset_names
            .get(p, name, |d| (core.dataset_project[d as usize], core.doc.str(core.doc.datasets[d as usize].name)));
        let d = found.or_else(|| self.learned.dataset_by_name(core.doc.datasets.len(), p, name))?;
        Some(self.dataset_id(d))
    }

    fn live_project(&self, project_id: &str) -> Option<u32> {
        let p = self.project_ix(project_id)?;
        self.project_info(p).is_some_and(|i| !i.deleted).then_some(p)
    }

    /// The object's org and ACL chain; `None` for an unknown object or one
    /// in (or being) a deleted project.
    fn scope(&self, object: &ObjectRef) -> Option<Scope<'_>> {
        let id = object.id.as_str();
        match object.object_type {
            ObjectType::Organization => {
                let o = self.org_ix(id)?;
                Some(Scope { org: o, project: None, chain: [&self.core.org_acls[o as usize], &[], &[]] })
            }
            ObjectType::Project => self.project_scope(self.project_ix(id)?, &[]),
            ObjectType::ProjectLog => {
                let p = self.project_ix(id)?;
                self.project_scope(p, self.project_log_acls(p))
            }
            ObjectType::Experiment => {
                let e = self.experiment_ix(id)?;
                self.project_scope(self.experiment_project(e)?, self.experiment_acls(e))
            }
            ObjectType::Dataset => {
                let d = self.dataset_ix(id)?;
                self.project_scope(self.dataset_project(d)?, self.dataset_acls(d))
            }
            // The policy describes no other objects.
            _ => None,
        }
    }

    /// The scope of an object in project `p`, whose own ACLs are `own`.
    fn project_scope<'a>(&'a self, p: u32, own: &'a [AclEntry]) -> Option<Scope<'a>> {
        let info = self.project_info(p)?;
        if info.deleted {
            return None;
        }
        let chain = [own, self.project_acls(p), &self.core.org_acls[info.org as usize]];
        Some(Scope { org: info.org, project: Some(p), chain })
    }

    /// Token confinement: the object must be known and in the principal's org.
    fn confine(&self, principal: &Principal, object: &ObjectRef) -> Result<Scope<'_>, DenyReason> {
        let scope = self.scope(object).ok_or(DenyReason::UnknownObject)?;
        if self.org_ix(&principal.org_id) != Some(scope.org) {
            return Err(DenyReason::OtherOrganization);
        }
        Ok(scope)
    }

    /// The ACL entries of `scope` that grant `permission` on an object of
    /// type `object_type` to `principal`, most specific first.
    fn granting<'a>(
        &'a self,
        principal: &Principal,
        object_type: ObjectType,
        permission: Permission,
        scope: &Scope<'a>,
    ) -> impl Iterator<Item = &'a AclEntry> + 'a {
        let user = self.user_ix(&principal.user_id);
        let groups: &[u32] = user.map_or(&[], |u| self.user_groups(u));
        let (t, bit) = (object_type as usize, permission.bit());
        scope.chain.into_iter().flatten().filter(move |e| {
            e.masks[t] & bit != 0
                && match e.principal {
                    AclPrincipal::User(u) => Some(u) == user,
                    AclPrincipal::Group(g) => groups.binary_search(&g).is_ok(),
                }
        })
    }
}

/// Item `i` of a per-object column: the core's own while `i` is within it,
/// else the learned object it names (learned objects are numbered after the
/// core's, in the overlay's order).
#[inline]
fn layered<'s, C, T: ?Sized>(
    core: &'s [C],
    learned: &'s [Arc<learn::LearnedObject>],
    i: u32,
    from_core: impl FnOnce(&'s C) -> &'s T,
    from_learned: impl FnOnce(&'s learn::LearnedObject) -> &'s T,
) -> &'s T {
    match core.get(i as usize) {
        Some(c) => from_core(c),
        None => from_learned(&learned[i as usize - core.len()]),
    }
}

/// Lookups by id and by index, over the compiled document and, after it,
/// what was learned.
impl CompiledPolicy {
    fn org_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        self.core.orgs.get(id, |i| doc.str(doc.organizations[i as usize].id))
    }

    fn org_id(&self, o: u32) -> &str {
        self.core.doc.str(self.core.doc.organizations[o as usize].id)
    }

    fn user_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        self.core.users.get(id, |i| doc.str(doc.users[i as usize].id))
    }

    fn group_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        self.core.groups.get(id, |i| doc.str(doc.groups[i as usize].id))
    }

    fn role_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        self.core.roles.get(id, |i| doc.str(doc.roles[i as usize].id))
    }

    fn token_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        self.core.tokens.get(id, |i| doc.str(doc.service_tokens[i as usize].id))
    }

    /// Every group containing user `u` (directly or not), sorted.
    fn user_groups(&self, u: u32) -> &[u32] {
        &self.core.group_sets[self.core.user_closure[u as usize] as usize]
    }

    /// The groups listing user `u` in `member_users`.
    fn user_direct_groups(&self, u: u32) -> &[u32] {
        &self.core.group_sets[self.core.user_direct[u as usize] as usize]
    }

    fn project_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        let base = doc.projects.len();
        self.core.projects.get(id, |i| doc.str(doc.projects[i as usize].id)).or_else(|| self.learned.project(base, id))
    }

    fn project_count(&self) -> u32 {
        (self.core.doc.projects.len() + self.learned.projects.len()) as u32
    }

    fn project_info(&self, p: u32) -> Option<ProjectInfo> {
        match self.core.project_info.get(p as usize) {
            Some(info) => *info,
            None => Some(ProjectInfo {
                org: self.learned.projects[p as usize - self.core.project_info.len()].parent,
                deleted: false,
            }),
        }
    }

    fn project_id(&self, p: u32) -> &str {
        let doc = &self.core.doc;
        layered(&doc.projects, &self.learned.projects, p, |x| doc.str(x.id), |l| &l.id)
    }

    fn project_acls(&self, p: u32) -> &[AclEntry] {
        layered(&self.core.project_acls, &self.learned.projects, p, |x| &**x, |l| &l.acls)
    }

    fn project_log_acls(&self, p: u32) -> &[AclEntry] {
        layered(&self.core.project_log_acls, &self.learned.projects, p, |x| &**x, |l| &l.log_acls)
    }

    fn experiment_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        let base = doc.experiments.len();
        self.core
            .experiments
            .get(id, |i| doc.str(doc.experiments[i as usize].id))
            .or_else(|| self.learned.experiment(base, id))
    }

    fn experiment_count(&self) -> u32 {
        (self.core.doc.experiments.len() + self.learned.experiments.len()) as u32
    }

    fn experiment_project(&self, e: u32) -> Option<u32> {
        match self.core.experiment_project.get(e as usize) {
            Some(p) => *p,
            None => Some(self.learned.experiments[e as usize - self.core.experiment_project.len()].parent),
        }
    }

    fn experiment_id(&self, e: u32) -> &str {
        let doc = &self.core.doc;
        layered(&doc.experiments, &self.learned.experiments, e, |x| doc.str(x.id), |l| &l.id)
    }

    fn experiment_acls(&self, e: u32) -> &[AclEntry] {
        layered(&self.core.experiment_acls, &self.learned.experiments, e, |x| &**x, |l| &l.acls)
    }

    fn dataset_ix(&self, id: &str) -> Option<u32> {
        let doc = &self.core.doc;
        let base = doc.datasets.len();
        self.core.datasets.get(id, |i| doc.str(doc.datasets[i as usize].id)).or_else(|| self.learned.dataset(base, id))
    }

    fn dataset_count(&self) -> u32 {
        (self.core.doc.datasets.len() + self.learned.datasets.len()) as u32
    }

    fn dataset_project(&self, d: u32) -> Option<u32> {
        match self.core.dataset_project.get(d as usize) {
            Some(p) => *p,
            None => Some(self.learned.datasets[d as usize - self.core.dataset_project.len()].parent),
        }
    }

    fn dataset_id(&self, d: u32) -> &str {
        let doc = &self.core.doc;
        layered(&doc.datasets, &self.learned.datasets, d, |x| doc.str(x.id), |l| &l.id)
    }

    fn dataset_acls(&self, d: u32) -> &[AclEntry] {
        layered(&self.core.dataset_acls, &self.learned.datasets, d, |x| &**x, |l| &l.acls)
    }

    /// The ACL an entry was compiled from (a copy: for explanations).
    fn acl(&self, a: u32) -> Acl {
        let doc = &self.core.doc;
        match doc.acls.get(a as usize) {
            Some(x) => doc.acl(x),
            None => Acl::clone(&self.learned.acls[a as usize - doc.acls.len()]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_model::doc::{Acl, Organization, Project, ServiceToken, User};

    fn policy() -> CompiledPolicy {
        let token = TokenDigest::of("bt-st-abcdefghijklmnopqrstuvwxyz012345");
        let (policy, left_out) = CompiledPolicy::from_doc(PolicyDoc {
            organizations: vec![Organization::new("o", "acme")],
            projects: vec![Project::new("p", "o", "checkout")],
            users: vec![User::new("u", "ci", true)],
            acls: vec![Acl::user_permission("a", ObjectType::ProjectLog, "p", "u", Permission::Update)],
            service_tokens: vec![ServiceToken::new("t", "ci", "o", "u", token)],
            ..PolicyDoc::default()
        });
        assert!(left_out.is_empty(), "{left_out:?}");
        policy
    }

    #[test]
    fn compiled_policies_are_shareable_and_debug_hides_digests() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<CompiledPolicy>();
        let p = policy();
        let shown = format!("{p:?}");
        assert!(shown.contains("acls: 1"), "{shown}");
        assert!(!shown.contains(&p.to_doc().service_tokens[0].token_sha256.to_hex()[..8]), "{shown}");
    }

    #[test]
    fn decide_follows_the_scope_chain() {
        let p = policy();
        let who = Principal::new("u", "o");
        let log = ObjectRef::new(ObjectType::ProjectLog, "p");
        assert_eq!(p.decide(&who, &log, Permission::Update), Decision::Allow);
        assert_eq!(p.decide(&who, &log, Permission::Create), Decision::Deny(DenyReason::MissingPermission));
        let project = ObjectRef::new(ObjectType::Project, "p");
        assert_eq!(p.decide(&who, &project, Permission::Update), Decision::Deny(DenyReason::MissingPermission));
        let elsewhere = Principal::new("u", "x");
        assert_eq!(p.decide(&elsewhere, &log, Permission::Update), Decision::Deny(DenyReason::OtherOrganization));
        assert!(p.identity(&TokenDigest::of("bt-st-abcdefghijklmnopqrstuvwxyz012345")).is_some());
    }
}
