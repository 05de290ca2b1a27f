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
mod org_wide;

use std::collections::HashMap;
use std::fmt;

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
/// a project is also its position in `doc().projects`.
pub struct CompiledPolicy {
    doc: PolicyDoc,
    orgs: Interner,
    org_names: HashMap<Box<str>, u32>,
    projects: Interner,
    /// Per project: its org and whether it is deleted (`None`: no such org).
    project_info: Vec<Option<ProjectInfo>>,
    /// Per org: live project name -> project.
    project_names: Vec<HashMap<Box<str>, u32>>,
    experiments: Interner,
    /// Per experiment: its project; `None` when the experiment is deleted.
    experiment_project: Vec<Option<u32>>,
    /// Per project: experiment name -> experiment.
    experiment_names: Vec<HashMap<Box<str>, u32>>,
    datasets: Interner,
    /// Per dataset: its project; `None` when the dataset is deleted.
    dataset_project: Vec<Option<u32>>,
    dataset_names: Vec<HashMap<Box<str>, u32>>,
    users: Interner,
    /// Per user: every group containing it (directly or transitively), sorted.
    user_groups: Vec<Box<[u32]>>,
    /// Per user: the groups listing it in `member_users`.
    user_direct_groups: Vec<Box<[u32]>>,
    /// Per group H: the groups G with H in `G.member_groups`.
    group_parents: Vec<Box<[u32]>>,
    roles: Interner,
    /// Per role: its own `member_permissions`, parsed.
    role_own: Vec<Box<[Grant]>>,
    /// Per role: its `member_roles`.
    role_members: Vec<Box<[u32]>>,
    /// ACLs by the object they sit on; see `Scope`.
    org_acls: Vec<Vec<AclEntry>>,
    project_acls: Vec<Vec<AclEntry>>,
    project_log_acls: Vec<Vec<AclEntry>>,
    experiment_acls: Vec<Vec<AclEntry>>,
    dataset_acls: Vec<Vec<AclEntry>>,
    /// `TokenDigest::bucket()` -> candidate tokens.
    token_buckets: HashMap<u64, Box<[u32]>>,
    token_digests: Vec<TokenDigest>,
    token_identities: Vec<Identity>,
}

impl fmt::Debug for CompiledPolicy {
    /// Counts only: a policy can be large, and token digests are secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("organizations", &self.doc.organizations.len())
            .field("projects", &self.doc.projects.len())
            .field("experiments", &self.doc.experiments.len())
            .field("datasets", &self.doc.datasets.len())
            .field("users", &self.doc.users.len())
            .field("groups", &self.doc.groups.len())
            .field("roles", &self.doc.roles.len())
            .field("acls", &self.doc.acls.len())
            .field("service_tokens", &self.doc.service_tokens.len())
            .finish()
    }
}

/// Ids of one collection -> dense indexes (document order).
#[derive(Debug, Default)]
struct Interner(HashMap<Box<str>, u32>);

impl Interner {
    fn get(&self, id: &str) -> Option<u32> {
        self.0.get(id).copied()
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
    /// Position in `doc.acls`, for explanations.
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
        compile::build(policy)
    }

    /// Loads `doc` (leaving out what breaks a rule, see `loggate_model::load`)
    /// and compiles what is left; returns what was left out beside it.
    pub fn from_doc(doc: PolicyDoc) -> (Self, Vec<PolicyError>) {
        let loaded = loggate_model::load::from_doc(doc);
        (Self::compile(loaded.policy), loaded.left_out)
    }

    /// The document this policy was compiled from.
    pub fn doc(&self) -> &PolicyDoc {
        &self.doc
    }

    /// The identity of a service token, by digest (constant-time compare).
    /// Expiry is not checked here (no clock): see `Identity::expired`.
    pub fn identity(&self, digest: &TokenDigest) -> Option<Identity> {
        let candidates = self.token_buckets.get(&digest.bucket())?;
        // Compare every candidate (constant-time `==`), without stopping early.
        let mut found = None;
        for &t in candidates.iter() {
            if self.token_digests[t as usize] == *digest {
                found = Some(t);
            }
        }
        found.map(|t| self.token_identities[t as usize].clone())
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
        let org = (ObjectType::Organization, self.doc.organizations[scope.org as usize].id.as_str());
        let mut ancestry = [org; 3];
        let mut n = 0;
        if object.object_type != ObjectType::Organization {
            ancestry[n] = (object.object_type, object.id.as_str());
            n += 1;
        }
        if let Some(p) = scope.project.filter(|_| object.object_type != ObjectType::Project) {
            ancestry[n] = (ObjectType::Project, self.doc.projects[p as usize].id.as_str());
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
        Some(&self.doc.organizations[scope.org as usize].id)
    }

    /// Organization id by name.
    pub fn org_by_name(&self, name: &str) -> Option<&str> {
        let o = *self.org_names.get(name)?;
        Some(&self.doc.organizations[o as usize].id)
    }

    /// Live (not deleted) project id by (org id, name).
    pub fn project_by_name(&self, org_id: &str, name: &str) -> Option<&str> {
        let o = self.orgs.get(org_id)?;
        let p = *self.project_names[o as usize].get(name)?;
        Some(&self.doc.projects[p as usize].id)
    }

    /// Experiment id by (project id, name). `None` when the project is
    /// unknown or deleted, as its experiments are then not writable.
    pub fn experiment_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let p = self.live_project(project_id)?;
        let e = *self.experiment_names[p as usize].get(name)?;
        Some(&self.doc.experiments[e as usize].id)
    }

    /// Dataset id by (project id, name). `None` when the project is unknown
    /// or deleted.
    pub fn dataset_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let p = self.live_project(project_id)?;
        let d = *self.dataset_names[p as usize].get(name)?;
        Some(&self.doc.datasets[d as usize].id)
    }

    fn live_project(&self, project_id: &str) -> Option<u32> {
        let p = self.projects.get(project_id)?;
        self.project_info[p as usize].is_some_and(|i| !i.deleted).then_some(p)
    }

    /// The object's org and ACL chain; `None` for an unknown object or one
    /// in (or being) a deleted project.
    fn scope(&self, object: &ObjectRef) -> Option<Scope<'_>> {
        let id = object.id.as_str();
        match object.object_type {
            ObjectType::Organization => {
                let o = self.orgs.get(id)?;
                Some(Scope { org: o, project: None, chain: [&self.org_acls[o as usize], &[], &[]] })
            }
            ObjectType::Project => self.project_scope(self.projects.get(id)?, &[]),
            ObjectType::ProjectLog => {
                let p = self.projects.get(id)?;
                self.project_scope(p, &self.project_log_acls[p as usize])
            }
            ObjectType::Experiment => {
                let e = self.experiments.get(id)? as usize;
                self.project_scope(self.experiment_project[e]?, &self.experiment_acls[e])
            }
            ObjectType::Dataset => {
                let d = self.datasets.get(id)? as usize;
                self.project_scope(self.dataset_project[d]?, &self.dataset_acls[d])
            }
            // The policy describes no other objects.
            _ => None,
        }
    }

    /// The scope of an object in project `p`, whose own ACLs are `own`.
    fn project_scope<'a>(&'a self, p: u32, own: &'a [AclEntry]) -> Option<Scope<'a>> {
        let info = self.project_info[p as usize]?;
        if info.deleted {
            return None;
        }
        let chain = [own, &self.project_acls[p as usize], &self.org_acls[info.org as usize]];
        Some(Scope { org: info.org, project: Some(p), chain })
    }

    /// Token confinement: the object must be known and in the principal's org.
    fn confine(&self, principal: &Principal, object: &ObjectRef) -> Result<Scope<'_>, DenyReason> {
        let scope = self.scope(object).ok_or(DenyReason::UnknownObject)?;
        if self.orgs.get(&principal.org_id) != Some(scope.org) {
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
        let user = self.users.get(&principal.user_id);
        let groups: &[u32] = user.map_or(&[], |u| &self.user_groups[u as usize]);
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
        assert!(!shown.contains(&p.doc().service_tokens[0].token_sha256.to_hex()[..8]), "{shown}");
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
