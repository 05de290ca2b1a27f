//! The reference evaluator of design §3, written from the contract text
//! alone: plain loops over the raw policy JSON (the policy-file shape of
//! §7), recursive group and role expansion with visited sets. Independent
//! of the fast path on purpose; `authz_reference` compares the two on
//! random policies, `fleet_property` compares it with live replicas.

use loggate_authz::{Decision, DenyReason};
use serde_json::Value;
use std::collections::HashSet;

pub fn arr<'a>(policy: &'a Value, key: &str) -> &'a [Value] {
    policy.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub fn find<'a>(policy: &'a Value, key: &str, id: &str) -> Option<&'a Value> {
    arr(policy, key).iter().find(|x| x["id"] == id)
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

/// Does group `group` contain `user`, directly or through its member groups?
fn group_contains(policy: &Value, group: &str, user: &str, visited: &mut HashSet<String>) -> bool {
    if !visited.insert(group.to_string()) {
        return false;
    }
    let Some(g) = find(policy, "groups", group) else {
        return false;
    };
    if arr(g, "member_users").iter().any(|u| u == user) {
        return true;
    }
    arr(g, "member_groups").iter().filter_map(s).any(|h| group_contains(policy, h, user, visited))
}

/// Does role `role` (or one of its member roles) hold `permission` for an
/// object of type `object_type`?
fn role_grants(policy: &Value, role: &str, permission: &str, object_type: &str, visited: &mut HashSet<String>) -> bool {
    if !visited.insert(role.to_string()) {
        return false;
    }
    let Some(r) = find(policy, "roles", role) else {
        return false;
    };
    for mp in arr(r, "member_permissions") {
        let restrict = &mp["restrict_object_type"];
        if mp["permission"] == permission && (restrict.is_null() || restrict == object_type) {
            return true;
        }
    }
    arr(r, "member_roles").iter().filter_map(s).any(|m| role_grants(policy, m, permission, object_type, visited))
}

/// The decision of design §3 for (user, org) asking `permission` on
/// (object_type, object_id).
pub fn reference(
    policy: &Value,
    user: &str,
    org: &str,
    object_type: &str,
    object_id: &str,
    permission: &str,
) -> Decision {
    // The object, its organization, and the (type, id) pairs whose ACLs apply.
    let live_project = |id: &str| find(policy, "projects", id).filter(|p| p["deleted_at"].is_null());
    let (object_org, scopes): (String, Vec<(&str, String)>) = match object_type {
        "organization" => match find(policy, "organizations", object_id) {
            Some(_) => (object_id.to_string(), vec![("organization", object_id.to_string())]),
            None => return Decision::Deny(DenyReason::UnknownObject),
        },
        "project" | "project_log" | "experiment" | "dataset" => {
            let project_id = match object_type {
                "project" | "project_log" => object_id.to_string(),
                _ => {
                    let key = if object_type == "experiment" { "experiments" } else { "datasets" };
                    match find(policy, key, object_id) {
                        Some(o) => o["project_id"].as_str().unwrap().to_string(),
                        None => return Decision::Deny(DenyReason::UnknownObject),
                    }
                }
            };
            let Some(project) = live_project(&project_id) else {
                return Decision::Deny(DenyReason::UnknownObject);
            };
            let project_org = project["org_id"].as_str().unwrap().to_string();
            let mut scopes = vec![];
            if object_type != "project" {
                scopes.push((object_type, object_id.to_string()));
            }
            scopes.push(("project", project_id));
            scopes.push(("organization", project_org.clone()));
            (project_org, scopes)
        }
        _ => return Decision::Deny(DenyReason::UnknownObject),
    };
    if object_org != org {
        return Decision::Deny(DenyReason::OtherOrganization);
    }
    for acl in arr(policy, "acls") {
        let on_scope = scopes.iter().any(|(t, id)| acl["object_type"] == *t && acl["object_id"] == id.as_str());
        if !on_scope {
            continue;
        }
        let principal_matches = acl["user_id"] == user
            || acl["group_id"].as_str().is_some_and(|g| group_contains(policy, g, user, &mut HashSet::new()));
        if !principal_matches {
            continue;
        }
        let restrict = &acl["restrict_object_type"];
        if !(restrict.is_null() || restrict == object_type) {
            continue;
        }
        let grants = acl["permission"] == permission
            || acl["role_id"]
                .as_str()
                .is_some_and(|r| role_grants(policy, r, permission, object_type, &mut HashSet::new()));
        if grants {
            return Decision::Allow;
        }
    }
    Decision::Deny(DenyReason::MissingPermission)
}

/// The identity a raw service token stands for in `policy`: `(token id,
/// user id, org id)`, or `None` when no token has its digest (design §2:
/// 401). Tokens whose `expires_at` lies in the past count as absent.
pub fn token_identity(policy: &Value, token_sha256: &str) -> Option<(String, String, String)> {
    let t = arr(policy, "service_tokens").iter().find(|t| t["token_sha256"] == token_sha256)?;
    if let Some(expires) = t["expires_at"].as_str() {
        let at = chrono::DateTime::parse_from_rfc3339(expires).expect("expires_at is RFC 3339");
        if at <= chrono::Utc::now() {
            return None;
        }
    }
    Some((t["id"].as_str()?.to_owned(), t["service_account_id"].as_str()?.to_owned(), t["org_id"].as_str()?.to_owned()))
}
