//! The policy store interface: what the gateway asks of wherever the policy
//! lives. `Store` dispatches to the configured backend without dynamic
//! dispatch or boxed futures on the hot path.

use super::discovery::Discovery;
use super::file::FileStore;
use super::postgres::PgStore;
use loggate_authz::{Decision, Explanation, Principal};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest};
use std::future::Future;

/// The store could not answer: the caller must fail closed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy store unavailable: {0}")]
pub struct StoreError(pub String);

/// What every backend answers. All lookups are scoped by organization where
/// the model scopes them; authorization itself is the pure `authz` evaluator
/// run over what the backend loaded.
pub trait PolicyStore: Send + Sync {
    fn identity(&self, digest: &TokenDigest) -> impl Future<Output = Result<Option<Identity>, StoreError>> + Send;
    fn decide(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send;
    fn explain(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> impl Future<Output = Result<Explanation, StoreError>> + Send;
    /// Whether the principal would hold `permission` on a new object of
    /// `object_type` created directly in `org_id` (see
    /// `CompiledPolicy::decide_new`).
    fn decide_new(
        &self,
        principal: &Principal,
        org_id: &str,
        object_type: ObjectType,
        permission: Permission,
    ) -> impl Future<Output = Result<Decision, StoreError>> + Send;
    /// Objects of `types` in the principal's organization where its grants
    /// can be, at most `cap` (see `CompiledPolicy::candidates`).
    fn candidates(
        &self,
        principal: &Principal,
        types: &[ObjectType],
        cap: usize,
    ) -> impl Future<Output = Result<Vec<ObjectRef>, StoreError>> + Send;
    fn org_name(&self, org_id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn project_by_name(
        &self,
        org_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn experiment_by_name(
        &self,
        project_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    fn dataset_by_name(
        &self,
        project_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records what a register answer named (discovery), with the creator's
    /// owner grant unless the organization turned creator grants off.
    /// True when the policy changed (something was not known before).
    fn learn(&self, discovery: Discovery) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Whether the store can currently answer (drives `/readyz`).
    fn ready(&self) -> impl Future<Output = bool> + Send;
    /// The revision of the policy in force.
    fn revision(&self) -> u64;
}

/// The configured backend.
// One per process, behind an `Arc`: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Store {
    File(FileStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::File($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl PolicyStore for Store {
    async fn identity(&self, digest: &TokenDigest) -> Result<Option<Identity>, StoreError> {
        dispatch!(self, s => s.identity(digest).await)
    }
    async fn decide(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        dispatch!(self, s => s.decide(principal, object, permission).await)
    }
    async fn explain(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Explanation, StoreError> {
        dispatch!(self, s => s.explain(principal, object, permission).await)
    }
    async fn decide_new(
        &self,
        principal: &Principal,
        org_id: &str,
        object_type: ObjectType,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        dispatch!(self, s => s.decide_new(principal, org_id, object_type, permission).await)
    }
    async fn candidates(
        &self,
        principal: &Principal,
        types: &[ObjectType],
        cap: usize,
    ) -> Result<Vec<ObjectRef>, StoreError> {
        dispatch!(self, s => s.candidates(principal, types, cap).await)
    }
    async fn org_name(&self, org_id: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.org_name(org_id).await)
    }
    async fn project_by_name(&self, org_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.project_by_name(org_id, name).await)
    }
    async fn experiment_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.experiment_by_name(project_id, name).await)
    }
    async fn dataset_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.dataset_by_name(project_id, name).await)
    }
    async fn learn(&self, discovery: Discovery) -> Result<bool, StoreError> {
        dispatch!(self, s => s.learn(discovery).await)
    }
    async fn ready(&self) -> bool {
        dispatch!(self, s => s.ready().await)
    }
    fn revision(&self) -> u64 {
        dispatch!(self, s => PolicyStore::revision(s))
    }
}

impl Store {
    /// Entries of the policy in force that were left out for breaking a
    /// rule (the file store; the Postgres store refuses them on write).
    pub fn invalid_entries(&self) -> usize {
        match self {
            Store::File(s) => s.left_out(),
            Store::Postgres(_) => 0,
        }
    }
}
