//! `CompiledPolicy::explain`: the evidence behind a decision, for
//! `loggate authz --explain`. Not on the request path; it may allocate.

use std::collections::VecDeque;

use super::{AclEntry, AclPrincipal, CompiledPolicy, Decision, DenyReason, Explanation, Principal};
use loggate_model::types::{ObjectRef, ObjectType, Permission};

pub(super) fn explain(
    policy: &CompiledPolicy,
    principal: &Principal,
    object: &ObjectRef,
    permission: Permission,
) -> Explanation {
    let decision = policy.decide(principal, object, permission);
    let mut lines = Vec::new();
    let mut denied_by = Vec::new();
    if !decision.is_allow() && decision != Decision::Deny(DenyReason::ScopeDenied) {
        denied_by.push("acl");
    }
    match policy.confine(principal, object) {
        Err(DenyReason::UnknownObject) => lines.push(format!(
            "deny: {object} is unknown (not in the policy, or its project is deleted); {permission} cannot be granted"
        )),
        Err(DenyReason::OtherOrganization) => {
            let org = policy.object_org(object).unwrap_or("?");
            lines.push(format!(
                "deny: {object} belongs to organization {org}, but the token is confined to organization {}; no ACL reaches another organization",
                principal.org_id
            ));
        }
        Err(DenyReason::MissingPermission | DenyReason::ScopeDenied) => {
            unreachable!("confine only denies unknown or other-org objects")
        }
        Ok(scope) => {
            if !policy.scope_allows(principal, object, permission, &scope) {
                denied_by.push("scope");
                lines.push(format!(
                    "deny: the token's scope does not grant {permission} on {object} or on its project or organization"
                ));
            }
            let granting: Vec<&AclEntry> = policy.granting(principal, object.object_type, permission, &scope).collect();
            if granting.is_empty() {
                let held: Vec<&str> = Permission::ALL
                    .into_iter()
                    .filter(|&p| policy.granting(principal, object.object_type, p, &scope).next().is_some())
                    .map(Permission::as_str)
                    .collect();
                lines.push(format!("deny: user {} does not hold {permission} on {object}", principal.user_id));
                if held.is_empty() {
                    lines.push(format!("holds on {object}: no permission"));
                } else {
                    lines.push(format!("holds on {object}: {}", held.join(", ")));
                }
                lines.push(format!("missing: {permission}"));
            }
            for entry in granting {
                describe(policy, principal, object, permission, entry, &mut lines);
            }
        }
    }
    Explanation { decision, lines, denied_by }
}

/// The lines for one granting ACL: which ACL, how the principal matches it,
/// and how it grants the permission.
fn describe(
    policy: &CompiledPolicy,
    principal: &Principal,
    object: &ObjectRef,
    permission: Permission,
    entry: &AclEntry,
    lines: &mut Vec<String>,
) {
    let doc = &policy.core.doc;
    let acl = policy.acl(entry.acl);
    lines.push(format!(
        "allow: acl {} on {}:{} grants {permission} on {object}",
        acl.id, acl.object_type, acl.object_id
    ));
    match entry.principal {
        AclPrincipal::User(u) => {
            lines.push(format!("principal: user {} is named by the acl", doc.str(doc.users[u as usize].id)))
        }
        AclPrincipal::Group(g) => {
            let user = policy.user_ix(&principal.user_id).expect("matched a group, so the user is known");
            let start = policy.user_direct_groups(user);
            let path = shortest_path(start, &policy.core.group_parents, |n| n == g).expect("group contains the user");
            let chain: Vec<String> = path
                .iter()
                .map(|&n| named(doc.str(doc.groups[n as usize].name), doc.str(doc.groups[n as usize].id)))
                .collect();
            lines.push(format!("group chain: {} -> {}", principal.user_id, chain.join(" -> ")));
        }
    }
    let restricted = |t: Option<ObjectType>| t.map(|t| format!(" restricted to {t}")).unwrap_or_default();
    match (&acl.permission, &acl.role_id) {
        (Some(p), _) => {
            lines.push(format!("grant: permission {p}{} set on the acl", restricted(acl.restrict_object_type)))
        }
        (None, Some(r)) => {
            let role = policy.role_ix(r).expect("validated role");
            let holds = |n: u32| {
                policy.core.role_own[n as usize]
                    .iter()
                    .any(|g| g.permission == permission && g.restrict.is_none_or(|t| t == object.object_type))
            };
            let path = shortest_path(&[role], &policy.core.role_members, holds).expect("role grants the permission");
            let chain: Vec<String> = path
                .iter()
                .map(|&n| named(doc.str(doc.roles[n as usize].name), doc.str(doc.roles[n as usize].id)))
                .collect();
            let holder = *path.last().expect("non-empty path");
            let grant = policy.core.role_own[holder as usize]
                .iter()
                .find(|g| g.permission == permission && g.restrict.is_none_or(|t| t == object.object_type))
                .expect("holder holds it");
            let own = grant.restrict.map(|t: ObjectType| format!(" restricted to {t}")).unwrap_or_default();
            lines.push(format!(
                "role chain: {} (role {} holds {permission}{own}){}",
                chain.join(" -> "),
                named(doc.str(doc.roles[holder as usize].name), doc.str(doc.roles[holder as usize].id)),
                restricted(acl.restrict_object_type).replace(" restricted", "; acl restricted")
            ));
        }
        (None, None) => unreachable!("validated: exactly one grant"),
    }
}

/// `name (id)`: names for people, ids for grep.
fn named(name: &str, id: &str) -> String {
    if name.is_empty() || name == id { id.to_owned() } else { format!("{name} ({id})") }
}

/// The shortest path from one of `start` to a node satisfying `goal` along
/// `edges`, both ends included (breadth first, cycle-safe).
fn shortest_path(start: &[u32], edges: &[Box<[u32]>], goal: impl Fn(u32) -> bool) -> Option<Vec<u32>> {
    let mut prev: Vec<Option<u32>> = vec![None; edges.len()];
    let mut seen = vec![false; edges.len()];
    let mut queue = VecDeque::new();
    for &s in start {
        if !std::mem::replace(&mut seen[s as usize], true) {
            queue.push_back(s);
        }
    }
    while let Some(n) = queue.pop_front() {
        if goal(n) {
            let mut path = vec![n];
            let mut cur = n;
            while let Some(p) = prev[cur as usize] {
                path.push(p);
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for &next in edges[n as usize].iter() {
            if !std::mem::replace(&mut seen[next as usize], true) {
                prev[next as usize] = Some(n);
                queue.push_back(next);
            }
        }
    }
    None
}
