//! The policy document: Braintrust object shapes (see the OpenAPI spec) as
//! they appear in the policy file (design §7) and in the admin API.
//!
//! These are plain data. Validation lives in `policy::validate`; evaluation
//! works on the compiled form in `authz`.

use serde::{Deserialize, Serialize};

/// The whole policy as one document: the policy-file shape of design §7.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Soft deletion: a deleted project and its objects are no longer writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: String,
    pub project_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub id: String,
    pub project_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub service_account: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    /// `None` is a system role, assignable in every organization.
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
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RolePermission {
    pub permission: String,
    #[serde(default)]
    pub restrict_object_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acl {
    pub id: String,
    pub object_type: String,
    pub object_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub group_id: Option<String>,
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default)]
    pub restrict_object_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceToken {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub service_account_id: String,
    /// Lower-case hex SHA-256 of the whole token string; the token itself is
    /// never stored.
    pub token_sha256: String,
    /// RFC 3339; `None` never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}
