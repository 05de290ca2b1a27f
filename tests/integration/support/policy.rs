//! Builds a policy file (contract: Policy file shape) in which the test knows every raw
//! service token. Written as plain JSON so that it checks the file contract,
//! not the crate's own model types.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

/// A fresh service token: `bt-st-` + 40 random `[A-Za-z0-9]` characters.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).expect("OS RNG");
    // 62 does not divide 256; the slight bias does not matter for tests.
    let tail: String = bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    format!("bt-st-{tail}")
}

/// Lower-case hex SHA-256 of the whole token, as `token_sha256` stores it.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A v4-shaped UUID string (random), for ids the test does not care about.
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS RNG");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A service token the test created: its raw value and policy ids.
#[derive(Debug, Clone)]
pub struct Token {
    pub raw: String,
    pub id: String,
    pub name: String,
    /// The service account user the token acts as.
    pub user_id: String,
    pub org_id: String,
}

/// Accumulates the policy document. Every `add_*`/`grant_*` returns the id
/// of what it created.
#[derive(Debug, Default, Clone)]
pub struct PolicyBuilder {
    organizations: Vec<Value>,
    projects: Vec<Value>,
    experiments: Vec<Value>,
    datasets: Vec<Value>,
    users: Vec<Value>,
    groups: Vec<Value>,
    roles: Vec<Value>,
    acls: Vec<Value>,
    service_tokens: Vec<Value>,
}

impl PolicyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn org(&mut self, name: &str) -> String {
        self.org_with_id(&new_id(), name)
    }

    pub fn org_with_id(&mut self, id: &str, name: &str) -> String {
        self.organizations.push(json!({"id": id, "name": name}));
        id.to_owned()
    }

    pub fn project(&mut self, org_id: &str, name: &str) -> String {
        self.project_with_id(org_id, &new_id(), name)
    }

    pub fn project_with_id(&mut self, org_id: &str, id: &str, name: &str) -> String {
        self.projects.push(json!({"id": id, "org_id": org_id, "name": name}));
        id.to_owned()
    }

    pub fn experiment(&mut self, project_id: &str, name: &str) -> String {
        let id = new_id();
        self.experiments.push(json!({"id": id, "project_id": project_id, "name": name}));
        id
    }

    pub fn dataset(&mut self, project_id: &str, name: &str) -> String {
        let id = new_id();
        self.datasets.push(json!({"id": id, "project_id": project_id, "name": name}));
        id
    }

    pub fn user(&mut self, name: &str, service_account: bool) -> String {
        let id = new_id();
        self.users.push(json!({"id": id, "name": name, "service_account": service_account}));
        id
    }

    pub fn group(&mut self, org_id: &str, name: &str, member_users: &[&str], member_groups: &[&str]) -> String {
        let id = new_id();
        self.groups.push(json!({
            "id": id, "org_id": org_id, "name": name,
            "member_users": member_users, "member_groups": member_groups,
        }));
        id
    }

    /// A role: `perms` are `(permission, restrict_object_type)`.
    pub fn role(
        &mut self,
        org_id: Option<&str>,
        name: &str,
        perms: &[(&str, Option<&str>)],
        member_roles: &[&str],
    ) -> String {
        let id = new_id();
        let perms: Vec<Value> =
            perms.iter().map(|(p, r)| json!({"permission": p, "restrict_object_type": r})).collect();
        self.roles.push(json!({
            "id": id, "org_id": org_id, "name": name,
            "member_permissions": perms, "member_roles": member_roles,
        }));
        id
    }

    /// A raw ACL entry (for tests of odd shapes); returns its id.
    pub fn acl_raw(&mut self, mut acl: Value) -> String {
        let id = acl.get("id").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(new_id);
        acl["id"] = json!(id);
        self.acls.push(acl);
        id
    }

    /// Grants `permission` on `(object_type, object_id)` to a user.
    pub fn grant_user(&mut self, user_id: &str, permission: &str, object_type: &str, object_id: &str) -> String {
        self.acl(Some(user_id), None, Some(permission), None, object_type, object_id, None)
    }

    /// Grants `permission` on an object to a group.
    pub fn grant_group(&mut self, group_id: &str, permission: &str, object_type: &str, object_id: &str) -> String {
        self.acl(None, Some(group_id), Some(permission), None, object_type, object_id, None)
    }

    /// Grants a role on an object to a user.
    pub fn grant_user_role(&mut self, user_id: &str, role_id: &str, object_type: &str, object_id: &str) -> String {
        self.acl(Some(user_id), None, None, Some(role_id), object_type, object_id, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn acl(
        &mut self,
        user_id: Option<&str>,
        group_id: Option<&str>,
        permission: Option<&str>,
        role_id: Option<&str>,
        object_type: &str,
        object_id: &str,
        restrict_object_type: Option<&str>,
    ) -> String {
        let id = new_id();
        self.acls.push(json!({
            "id": id, "object_type": object_type, "object_id": object_id,
            "user_id": user_id, "group_id": group_id,
            "permission": permission, "role_id": role_id,
            "restrict_object_type": restrict_object_type,
        }));
        id
    }

    /// Removes every ACL naming `user_id` directly; returns how many.
    pub fn revoke_user(&mut self, user_id: &str) -> usize {
        let before = self.acls.len();
        self.acls.retain(|a| a["user_id"] != user_id);
        before - self.acls.len()
    }

    /// The document as pretty JSON bytes (what [`write`](Self::write) writes).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.to_json()).unwrap()
    }

    /// A service account plus a token for it in `org_id`.
    pub fn service_token(&mut self, org_id: &str, name: &str) -> Token {
        let user_id = self.user(name, true);
        self.token_for(org_id, name, &user_id, None)
    }

    /// A token for an existing user, optionally expiring (RFC 3339).
    pub fn token_for(&mut self, org_id: &str, name: &str, user_id: &str, expires_at: Option<&str>) -> Token {
        let raw = new_token();
        let id = new_id();
        self.service_tokens.push(json!({
            "id": id, "name": name, "org_id": org_id, "service_account_id": user_id,
            "token_sha256": token_sha256(&raw), "expires_at": expires_at,
        }));
        Token { raw, id, name: name.to_owned(), user_id: user_id.to_owned(), org_id: org_id.to_owned() }
    }

    /// A token for an existing user whose entry also carries `fields`
    /// (an object: `scope`, `not_before`, `expires_at`, `parent_id`, …),
    /// merged over the usual ones.
    pub fn token_entry(&mut self, org_id: &str, name: &str, user_id: &str, fields: Value) -> Token {
        let token = self.token_for(org_id, name, user_id, None);
        let entry = self.service_tokens.last_mut().expect("the entry just pushed");
        for (k, v) in fields.as_object().expect("token fields are a JSON object") {
            entry[k] = v.clone();
        }
        token
    }

    /// A token for an existing user narrowed by `scope` (contract: "Scoped
    /// and derived tokens").
    pub fn scoped_token(&mut self, org_id: &str, name: &str, user_id: &str, scope: Value) -> Token {
        self.token_entry(org_id, name, user_id, json!({"scope": scope}))
    }

    /// Removes an ACL by id (a revocation); returns whether it existed.
    pub fn remove_acl(&mut self, id: &str) -> bool {
        let before = self.acls.len();
        self.acls.retain(|a| a["id"] != id);
        self.acls.len() != before
    }

    /// Removes a service token by id (a revocation); returns whether it existed.
    pub fn remove_token(&mut self, id: &str) -> bool {
        let before = self.service_tokens.len();
        self.service_tokens.retain(|t| t["id"] != id);
        self.service_tokens.len() != before
    }

    pub fn to_json(&self) -> Value {
        json!({
            "organizations": self.organizations,
            "projects": self.projects,
            "experiments": self.experiments,
            "datasets": self.datasets,
            "users": self.users,
            "groups": self.groups,
            "roles": self.roles,
            "acls": self.acls,
            "service_tokens": self.service_tokens,
        })
    }

    /// Writes the document atomically (temp file + rename), so a hot-reloading
    /// server never sees half a file.
    pub fn write(&self, path: &Path) {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.to_json()).unwrap()).expect("write policy");
        std::fs::rename(&tmp, path).expect("rename policy");
    }

    /// `(org_id, org_name, [(project_id, project_name)])` for the fake upstream,
    /// so that the data plane knows the same projects under the same ids.
    pub fn upstream_orgs(&self) -> Vec<super::upstream::FakeOrg> {
        self.organizations
            .iter()
            .map(|o| {
                let org_id = o["id"].as_str().unwrap();
                super::upstream::FakeOrg {
                    id: org_id.to_owned(),
                    name: o["name"].as_str().unwrap().to_owned(),
                    projects: self
                        .projects
                        .iter()
                        .filter(|p| p["org_id"] == org_id)
                        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
                        .collect(),
                }
            })
            .collect()
    }
}
