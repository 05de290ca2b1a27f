//! Authorization: the Braintrust permission model (design §3) as a pure,
//! synchronous evaluator over a compiled policy. No I/O, no clock, no async:
//! everything here is a function of its arguments, so it is tested with data
//! alone (see `tests/authz_reference.rs` for the independent reference).
//!
//! `CompiledPolicy::compile` validates a `PolicyDoc` and precomputes group
//! closures, role closures and per-object ACL indexes, so a decision is a
//! handful of hash lookups.

use crate::auth::{Identity, TokenDigest};
use crate::policy::model::PolicyDoc;
use crate::policy::types::{ObjectRef, Permission};
use crate::policy::validate::PolicyErrors;

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The object exists in the token's org but no ACL grants the permission.
    MissingPermission,
    /// The object is not in the policy (or its project is soft-deleted).
    UnknownObject,
    /// The object belongs to another organization than the token.
    OtherOrganization,
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

/// Who is asking: the user id ACLs name and the org the token is confined to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user_id: String,
    pub org_id: String,
}

impl From<&Identity> for Principal {
    fn from(id: &Identity) -> Self {
        Principal { user_id: id.user_id.clone(), org_id: id.org_id.clone() }
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
}

/// A validated policy with every index a decision needs precomputed.
#[derive(Debug)]
pub struct CompiledPolicy {
    // filled in by the implementation
}

impl CompiledPolicy {
    /// Validates `doc` (see `policy::validate`) and builds the indexes.
    pub fn compile(doc: PolicyDoc) -> Result<Self, PolicyErrors> {
        let _ = doc;
        todo!()
    }

    /// The document this policy was compiled from.
    pub fn doc(&self) -> &PolicyDoc {
        todo!()
    }

    /// The identity of a service token, by digest (constant-time compare).
    /// Expiry is not checked here (no clock): see `Identity::expired_at`.
    pub fn identity(&self, digest: &TokenDigest) -> Option<Identity> {
        let _ = digest;
        todo!()
    }

    /// Does `principal` hold `permission` on `object`?
    pub fn decide(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Decision {
        let _ = (principal, object, permission);
        todo!()
    }

    /// `decide` with its evidence.
    pub fn explain(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Explanation {
        let _ = (principal, object, permission);
        todo!()
    }

    /// The organization an object belongs to, if the object is known (and
    /// its project not deleted).
    pub fn object_org(&self, object: &ObjectRef) -> Option<&str> {
        let _ = object;
        todo!()
    }

    /// Organization id by name.
    pub fn org_by_name(&self, name: &str) -> Option<&str> {
        let _ = name;
        todo!()
    }

    /// Live (not deleted) project id by (org id, name).
    pub fn project_by_name(&self, org_id: &str, name: &str) -> Option<&str> {
        let _ = (org_id, name);
        todo!()
    }

    /// Experiment id by (project id, name).
    pub fn experiment_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let _ = (project_id, name);
        todo!()
    }

    /// Dataset id by (project id, name).
    pub fn dataset_by_name(&self, project_id: &str, name: &str) -> Option<&str> {
        let _ = (project_id, name);
        todo!()
    }
}
