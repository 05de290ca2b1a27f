//! The policy document: Braintrust object shapes (the REST API's `Acl`,
//! `Group`, `Role`, `ServiceToken`, …) as they appear in the policy file and
//! in the admin API.
//!
//! Read strictly: every entry rejects fields it does not know. Known fields
//! are loggate's own and those of the Braintrust schema for the same object;
//! the schema's fields loggate has no use for (`created`, `user_id` on a
//! project, …, listed by `Entry::SCHEMA_ONLY`) are accepted and dropped
//! before an entry is read. Permissions, object types, digests
//! and timestamps are typed, so a misspelling is an error at the entry it
//! sits in, never a silently widened grant. The rules between entries
//! (references, organizations, one principal per ACL) are `load`'s.

use serde::{Deserialize, Serialize};

use crate::scope::Scope;
use crate::timestamp::Timestamp;
use crate::token::TokenDigest;
use crate::types::{ObjectType, Permission};

/// The whole policy as one document: the policy-file shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyDoc {
    pub organizations: Vec<Organization>,
    pub projects: Vec<Project>,
    pub experiments: Vec<Experiment>,
    pub datasets: Vec<Dataset>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub roles: Vec<Role>,
    pub acls: Vec<Acl>,
    pub service_tokens: Vec<ServiceToken>,
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// Whether creating a project, experiment or dataset through loggate
    /// gives the creator every permission on it (as Braintrust does).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub creator_grants: bool,
}

impl Organization {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Organization { id: id.into(), name: name.into(), creator_grants: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Soft deletion: a deleted project and its objects are unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Project {
    pub fn new(id: impl Into<String>, org_id: impl Into<String>, name: impl Into<String>) -> Self {
        Project { id: id.into(), org_id: org_id.into(), name: name.into(), description: None, deleted_at: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Experiment {
    pub fn new(id: impl Into<String>, project_id: impl Into<String>, name: impl Into<String>) -> Self {
        Experiment { id: id.into(), project_id: project_id.into(), name: name.into(), deleted_at: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub id: String,
    pub project_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Dataset {
    pub fn new(id: impl Into<String>, project_id: impl Into<String>, name: impl Into<String>) -> Self {
        Dataset { id: id.into(), project_id: project_id.into(), name: name.into(), deleted_at: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub service_account: bool,
}

impl User {
    pub fn new(id: impl Into<String>, name: impl Into<String>, service_account: bool) -> Self {
        User { id: id.into(), name: name.into(), service_account }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub member_users: Vec<String>,
    /// Groups whose members this group contains (transitively).
    #[serde(default)]
    pub member_groups: Vec<String>,
    /// A deleted group contains nobody and grants nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Group {
    pub fn new(id: impl Into<String>, org_id: impl Into<String>, name: impl Into<String>) -> Self {
        Group {
            id: id.into(),
            org_id: org_id.into(),
            name: name.into(),
            description: None,
            member_users: vec![],
            member_groups: vec![],
            deleted_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub id: String,
    /// `None` is a system role, usable in every organization.
    #[serde(default)]
    pub org_id: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub member_permissions: Vec<RolePermission>,
    /// Roles whose permissions this role inherits (transitively).
    #[serde(default)]
    pub member_roles: Vec<String>,
    /// A deleted role grants nothing, also through `member_roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Role {
    pub fn new(id: impl Into<String>, org_id: Option<String>, name: impl Into<String>) -> Self {
        Role {
            id: id.into(),
            org_id,
            name: name.into(),
            description: None,
            member_permissions: vec![],
            member_roles: vec![],
            deleted_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePermission {
    pub permission: Permission,
    #[serde(default)]
    pub restrict_object_type: Option<ObjectType>,
}

/// An ACL in the Braintrust shape: exactly one of `user_id`/`group_id` and
/// exactly one of `permission`/`role_id` (`load` leaves out any other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    pub id: String,
    pub object_type: ObjectType,
    pub object_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub permission: Option<Permission>,
    #[serde(default)]
    pub role_id: Option<String>,
    /// Only with `permission`: the grant applies to objects of this type.
    #[serde(default)]
    pub restrict_object_type: Option<ObjectType>,
}

/// Who an ACL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPrincipal<'a> {
    User(&'a str),
    Group(&'a str),
}

/// What an ACL grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclGrant<'a> {
    Permission { permission: Permission, restrict: Option<ObjectType> },
    Role(&'a str),
}

impl Acl {
    /// A grant of `permission` to a user on an object.
    pub fn user_permission(
        id: impl Into<String>,
        object_type: ObjectType,
        object_id: impl Into<String>,
        user_id: impl Into<String>,
        permission: Permission,
    ) -> Self {
        Acl {
            id: id.into(),
            object_type,
            object_id: object_id.into(),
            user_id: Some(user_id.into()),
            group_id: None,
            permission: Some(permission),
            role_id: None,
            restrict_object_type: None,
        }
    }

    /// The principal, when the ACL names exactly one.
    pub fn principal(&self) -> Option<AclPrincipal<'_>> {
        match (&self.user_id, &self.group_id) {
            (Some(u), None) => Some(AclPrincipal::User(u)),
            (None, Some(g)) => Some(AclPrincipal::Group(g)),
            _ => None,
        }
    }

    /// The grant, when the ACL has exactly one and a role carries no
    /// restriction (the Braintrust schema forbids one).
    pub fn grant(&self) -> Option<AclGrant<'_>> {
        match (self.permission, &self.role_id, self.restrict_object_type) {
            (Some(permission), None, restrict) => Some(AclGrant::Permission { permission, restrict }),
            (None, Some(r), None) => Some(AclGrant::Role(r)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToken {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub service_account_id: String,
    /// SHA-256 of the whole token string; the token itself is never stored.
    pub token_sha256: TokenDigest,
    /// `None` never expires.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Narrower than the ACLs (contract: "Scoped and derived tokens").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The token this one was derived from: its validity and scope apply too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

impl ServiceToken {
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        org_id: impl Into<String>,
        service_account_id: impl Into<String>,
        token_sha256: TokenDigest,
    ) -> Self {
        ServiceToken {
            id: id.into(),
            name: name.into(),
            org_id: org_id.into(),
            service_account_id: service_account_id.into(),
            token_sha256,
            expires_at: None,
            not_before: None,
            scope: None,
            parent_id: None,
        }
    }

    /// Whether the token may be used at `now_ms` (Unix milliseconds).
    pub fn valid_at(&self, now_ms: i64) -> bool {
        self.not_before.is_none_or(|t| now_ms >= t.unix_ms()) && self.expires_at.is_none_or(|t| now_ms < t.unix_ms())
    }
}

/// An entry of one of the document's collections.
pub trait Entry: serde::de::DeserializeOwned {
    /// Fields of the Braintrust schema for this object that loggate accepts
    /// in the file and drops.
    const SCHEMA_ONLY: &'static [&'static str];
    /// Fields that may be null but must be written: leaving one out must
    /// not turn into the widest reading (a role without `org_id` is not a
    /// system role by accident).
    const PRESENT: &'static [&'static str] = &[];
}

impl Entry for Organization {
    const SCHEMA_ONLY: &'static [&'static str] = &[
        "api_url",
        "is_universal_api",
        "is_dataplane_private",
        "proxy_url",
        "realtime_url",
        "created",
        "image_rendering_mode",
    ];
}
impl Entry for Project {
    const SCHEMA_ONLY: &'static [&'static str] = &["created", "user_id", "settings"];
}
impl Entry for Experiment {
    const SCHEMA_ONLY: &'static [&'static str] = &[
        "description",
        "created",
        "repo_info",
        "commit",
        "base_exp_id",
        "dataset_id",
        "dataset_version",
        "internal_metadata",
        "parameters_id",
        "parameters_version",
        "public",
        "user_id",
        "metadata",
        "tags",
    ];
}
impl Entry for Dataset {
    const SCHEMA_ONLY: &'static [&'static str] = &["description", "created", "user_id", "tags", "metadata", "url_slug"];
}
impl Entry for User {
    const SCHEMA_ONLY: &'static [&'static str] = &["given_name", "family_name", "email", "avatar_url", "created"];
}
impl Entry for Group {
    const SCHEMA_ONLY: &'static [&'static str] = &["created", "user_id"];
}
impl Entry for Role {
    const SCHEMA_ONLY: &'static [&'static str] = &["created", "user_id"];
    const PRESENT: &'static [&'static str] = &["org_id"];
}
impl Entry for Acl {
    const SCHEMA_ONLY: &'static [&'static str] = &["_object_org_id", "created"];
}
impl Entry for ServiceToken {
    const SCHEMA_ONLY: &'static [&'static str] =
        &["created", "preview_name", "service_account_email", "service_account_name", "user_id"];
}
