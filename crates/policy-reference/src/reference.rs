//! The reference evaluator: loggate's permission contract, read straight off
//! the raw JSON of a policy file.
//!
//! Loading only computes, per top-level array, which entries are kept (a
//! `Vec<bool>` mask) and why the others were left out. Every decision then
//! walks the raw arrays with linear look-ups by id; transitive walks (member
//! groups, member roles, parent tokens) are recursions or loops with visited
//! sets, so cycles terminate.
//!
//! Points the contract leaves open, and how this reference settles them:
//! * An optional field (`field?`) that is present with value `null` counts as
//!   absent. A required field must be present; only role `org_id` may be null.
//! * Duplicate ids are found among the entries that passed their own shape
//!   checks: the first such entry of an id is kept, every later one is left
//!   out (an earlier malformed entry does not shadow a later well-formed one).
//! * Cross-organization checks are static: they compare the `org_id`s written
//!   in the file, looking the referenced group/role/object up among the
//!   well-formed, de-duplicated entries (before references are resolved). A
//!   referenced entry that is not among them is a dangling reference instead.
//! * A role (org or system) listing a member role of some organization other
//!   than its own crosses organizations; a system role may be listed anywhere.
//! * A token whose `parent_id` chain loops is walked once around the loop:
//!   every token on it must be valid at now, and every scope on it applies.
//! * Two loaded tokens with the same digest: the first in file order is used.
//! * Times are compared exactly (nanoseconds), not truncated to milliseconds.
//! * A service token's `service_account_id` need not name a user with
//!   `service_account: true`.

use crate::{Outcome, Request};
use serde_json::Value;
use std::collections::HashSet;
use std::net::IpAddr;

/// The top-level arrays of a policy file, in this order throughout.
pub const ARRAYS: [&str; 9] =
    ["organizations", "projects", "experiments", "datasets", "users", "groups", "roles", "acls", "service_tokens"];
const ORG: usize = 0;
const PROJECT: usize = 1;
const EXPERIMENT: usize = 2;
const DATASET: usize = 3;
const USER: usize = 4;
const GROUP: usize = 5;
const ROLE: usize = 6;
const ACL: usize = 7;
const TOKEN: usize = 8;

pub const PERMISSIONS: [&str; 8] =
    ["create", "read", "update", "delete", "create_acls", "read_acls", "update_acls", "delete_acls"];

pub const OBJECT_TYPES: [&str; 11] = [
    "organization",
    "project",
    "experiment",
    "dataset",
    "prompt",
    "prompt_session",
    "group",
    "role",
    "org_member",
    "project_log",
    "org_project",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    StrOrNull,
    Bool,
    Time,
    IdList,
    Permission,
    ObjectType,
    Digest,
    Scope,
    MemberPermissions,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}
use Need::{Optional as O, Required as R};

struct Shape {
    fields: &'static [(&'static str, Ty, Need)],
    ignored: &'static [&'static str],
}

const SHAPES: [Shape; 9] = [
    Shape {
        fields: &[("id", Ty::Str, R), ("name", Ty::Str, R), ("creator_grants", Ty::Bool, O)],
        ignored: &["api_url", "is_universal_api", "proxy_url", "realtime_url", "created"],
    },
    Shape {
        fields: &[
            ("id", Ty::Str, R),
            ("org_id", Ty::Str, R),
            ("name", Ty::Str, R),
            ("description", Ty::StrOrNull, O),
            ("deleted_at", Ty::Time, O),
        ],
        ignored: &["created", "user_id", "settings"],
    },
    Shape {
        fields: &[("id", Ty::Str, R), ("project_id", Ty::Str, R), ("name", Ty::Str, R), ("deleted_at", Ty::Time, O)],
        ignored: &[
            "created",
            "description",
            "user_id",
            "public",
            "base_exp_id",
            "commit",
            "dataset_id",
            "dataset_version",
            "metadata",
            "repo_info",
        ],
    },
    Shape {
        fields: &[("id", Ty::Str, R), ("project_id", Ty::Str, R), ("name", Ty::Str, R), ("deleted_at", Ty::Time, O)],
        ignored: &["created", "description", "user_id", "metadata"],
    },
    Shape {
        fields: &[("id", Ty::Str, R), ("name", Ty::Str, O), ("service_account", Ty::Bool, O)],
        ignored: &["given_name", "family_name", "email", "avatar_url", "created"],
    },
    Shape {
        fields: &[
            ("id", Ty::Str, R),
            ("org_id", Ty::Str, R),
            ("name", Ty::Str, R),
            ("member_users", Ty::IdList, O),
            ("member_groups", Ty::IdList, O),
            ("description", Ty::StrOrNull, O),
            ("deleted_at", Ty::Time, O),
        ],
        ignored: &["created", "user_id"],
    },
    Shape {
        fields: &[
            ("id", Ty::Str, R),
            ("org_id", Ty::StrOrNull, R),
            ("name", Ty::Str, R),
            ("member_permissions", Ty::MemberPermissions, O),
            ("member_roles", Ty::IdList, O),
            ("description", Ty::StrOrNull, O),
            ("deleted_at", Ty::Time, O),
        ],
        ignored: &["created", "user_id"],
    },
    Shape {
        fields: &[
            ("id", Ty::Str, R),
            ("object_type", Ty::ObjectType, R),
            ("object_id", Ty::Str, R),
            ("user_id", Ty::Str, O),
            ("group_id", Ty::Str, O),
            ("permission", Ty::Permission, O),
            ("role_id", Ty::Str, O),
            ("restrict_object_type", Ty::ObjectType, O),
        ],
        ignored: &["_object_org_id", "created"],
    },
    Shape {
        fields: &[
            ("id", Ty::Str, R),
            ("name", Ty::Str, R),
            ("org_id", Ty::Str, R),
            ("service_account_id", Ty::Str, R),
            ("token_sha256", Ty::Digest, R),
            ("expires_at", Ty::Time, O),
            ("not_before", Ty::Time, O),
            ("scope", Ty::Scope, O),
            ("parent_id", Ty::Str, O),
        ],
        ignored: &["created", "preview_name", "user_id"],
    },
];

// ---------------------------------------------------------------------------
// Value checks

/// RFC 3339 timestamp → nanoseconds since the epoch.
fn parse_time(s: &str) -> Option<i128> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos()))
}

/// "addr/len", IPv4 or IPv6, by hand: the address part by std, the length as
/// plain decimal digits no larger than the address width. Host bits may be set.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let addr: IpAddr = addr.parse().ok()?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    if len > width {
        return None;
    }
    Some((addr, len))
}

/// Whether `addr` lies inside the CIDR `s` (an address of the other family
/// never does; an unparsable CIDR contains nothing).
pub fn cidr_contains(s: &str, addr: IpAddr) -> bool {
    let Some((net, len)) = parse_cidr(s) else {
        return false;
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

fn check_object(v: &Value, fields: &[(&str, Ty, Need)], ignored: &[&str]) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".to_string());
    };
    for (k, val) in obj {
        if let Some((_, ty, need)) = fields.iter().find(|(name, _, _)| name == k) {
            if val.is_null() {
                if *need == Need::Optional || *ty == Ty::StrOrNull {
                    continue;
                }
                return Err(format!("`{k}` is null"));
            }
            check_value(*ty, val).map_err(|e| format!("`{k}`: {e}"))?;
        } else if !ignored.contains(&k.as_str()) {
            return Err(format!("unknown field `{k}`"));
        }
    }
    for (name, _, need) in fields {
        if *need == Need::Required && !obj.contains_key(*name) {
            return Err(format!("missing field `{name}`"));
        }
    }
    Ok(())
}

fn check_value(ty: Ty, v: &Value) -> Result<(), String> {
    let ok = match ty {
        Ty::Str => v.is_string(),
        Ty::StrOrNull => v.is_string() || v.is_null(),
        Ty::Bool => v.is_boolean(),
        Ty::Time => v.as_str().is_some_and(|s| parse_time(s).is_some()),
        Ty::IdList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Ty::Permission => v.as_str().is_some_and(|s| PERMISSIONS.contains(&s)),
        Ty::ObjectType => v.as_str().is_some_and(|s| OBJECT_TYPES.contains(&s)),
        Ty::Digest => v
            .as_str()
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
        Ty::Scope => return check_scope(v),
        Ty::MemberPermissions => {
            let Some(items) = v.as_array() else {
                return Err("not an array".to_string());
            };
            for (i, item) in items.iter().enumerate() {
                check_object(
                    item,
                    &[("permission", Ty::Permission, R), ("restrict_object_type", Ty::ObjectType, O)],
                    &[],
                )
                .map_err(|e| format!("[{i}]: {e}"))?;
            }
            true
        }
    };
    if ok { Ok(()) } else { Err(format!("bad value {v}")) }
}

fn check_scope(v: &Value) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("scope is not an object".to_string());
    };
    for (k, val) in obj {
        match k.as_str() {
            "grants" => {
                if val.is_null() {
                    continue;
                }
                let Some(grants) = val.as_array() else {
                    return Err("grants is not an array".to_string());
                };
                for (i, g) in grants.iter().enumerate() {
                    check_object(g, &[("object_type", Ty::ObjectType, R), ("object_id", Ty::Str, R)], &["permissions"])
                        .map_err(|e| format!("grants[{i}]: {e}"))?;
                    let perms = g.get("permissions").and_then(Value::as_array);
                    let Some(perms) = perms else {
                        return Err(format!("grants[{i}]: `permissions` missing or not an array"));
                    };
                    for p in perms {
                        if !p.as_str().is_some_and(|s| PERMISSIONS.contains(&s)) {
                            return Err(format!("grants[{i}]: bad permission {p}"));
                        }
                    }
                }
            }
            "client_cidrs" => {
                if val.is_null() {
                    continue;
                }
                let Some(cidrs) = val.as_array() else {
                    return Err("client_cidrs is not an array".to_string());
                };
                for c in cidrs {
                    if c.as_str().and_then(parse_cidr).is_none() {
                        return Err(format!("bad client_cidrs entry {c}"));
                    }
                }
            }
            _ => return Err(format!("unknown scope field `{k}`")),
        }
    }
    Ok(())
}

/// Shape checks of one entry, on its own.
fn check_entry(kind: usize, e: &Value) -> Result<(), String> {
    check_object(e, SHAPES[kind].fields, SHAPES[kind].ignored)?;
    if kind == ACL {
        let users = usize::from(s(e, "user_id").is_some()) + usize::from(s(e, "group_id").is_some());
        if users != 1 {
            return Err("not exactly one of user_id/group_id".to_string());
        }
        let grants = usize::from(s(e, "permission").is_some()) + usize::from(s(e, "role_id").is_some());
        if grants != 1 {
            return Err("not exactly one of permission/role_id".to_string());
        }
        if s(e, "role_id").is_some() && s(e, "restrict_object_type").is_some() {
            return Err("role_id with a non-null restrict_object_type".to_string());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Raw field access (only used on entries that passed their shape checks)

/// A string field; absent, null or not a string → None.
fn s<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key).and_then(Value::as_str)
}

fn id(e: &Value) -> &str {
    s(e, "id").unwrap_or("")
}

fn list<'a>(e: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    e.get(key).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

fn deleted(e: &Value) -> bool {
    e.get("deleted_at").is_some_and(|v| !v.is_null())
}

fn non_null<'a>(e: &'a Value, key: &str) -> Option<&'a Value> {
    e.get(key).filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------
// Loading

/// A policy file with, per top-level array, the mask of loaded entries.
pub struct Loaded<'a> {
    arrays: [&'a [Value]; 9],
    keep: [Vec<bool>; 9],
    left_out: Vec<(usize, usize, String)>,
}

/// Loads a policy file, or says why it is not a policy at all.
pub fn load(policy: &Value) -> Result<Loaded<'_>, String> {
    let Some(top) = policy.as_object() else {
        return Err("not a JSON object".to_string());
    };
    let empty: &[Value] = &[];
    let mut arrays = [empty; 9];
    for (k, v) in top {
        let Some(i) = ARRAYS.iter().position(|a| a == k) else {
            return Err(format!("unknown top-level key `{k}`"));
        };
        let Some(items) = v.as_array() else {
            return Err(format!("`{k}` is not an array"));
        };
        arrays[i] = items;
    }
    let mut l = Loaded { arrays, keep: std::array::from_fn(|k| vec![false; arrays[k].len()]), left_out: Vec::new() };

    // 1. Each entry on its own; 2. later duplicates of a well-formed id.
    for kind in 0..9 {
        for (i, e) in l.arrays[kind].iter().enumerate() {
            if let Err(why) = check_entry(kind, e) {
                l.left_out.push((kind, i, why));
            } else if (0..i).any(|j| l.keep[kind][j] && id(&l.arrays[kind][j]) == id(e)) {
                l.left_out.push((kind, i, format!("duplicate id {:?}", id(e))));
            } else {
                l.keep[kind][i] = true;
            }
        }
    }

    // 3. Principals crossing organizations, judged on the file as written.
    let mut crossing = Vec::new();
    for (i, g) in l.entries(GROUP) {
        for m in list(g, "member_groups") {
            if let Some(mg) = l.find(GROUP, m)
                && s(mg, "org_id") != s(g, "org_id")
            {
                crossing.push((GROUP, i, format!("member group {m:?} is of another organization")));
                break;
            }
        }
    }
    for (i, r) in l.entries(ROLE) {
        for m in list(r, "member_roles") {
            if let Some(mr) = l.find(ROLE, m)
                && let Some(member_org) = s(mr, "org_id")
                && Some(member_org) != s(r, "org_id")
            {
                crossing.push((ROLE, i, format!("member role {m:?} is of another organization")));
                break;
            }
        }
    }
    for (i, a) in l.entries(ACL) {
        let Some(object_org) = l.object_org(s(a, "object_type").unwrap_or(""), s(a, "object_id").unwrap_or("")) else {
            continue;
        };
        if let Some(gid) = s(a, "group_id")
            && let Some(g) = l.find(GROUP, gid)
            && s(g, "org_id") != Some(object_org)
        {
            crossing.push((ACL, i, format!("group {gid:?} is of another organization than the object")));
        }
        if let Some(rid) = s(a, "role_id")
            && let Some(r) = l.find(ROLE, rid)
            && let Some(role_org) = s(r, "org_id")
            && role_org != object_org
        {
            crossing.push((ACL, i, format!("role {rid:?} is of another organization than the object")));
        }
    }
    for (kind, i, why) in crossing {
        if l.keep[kind][i] {
            l.keep[kind][i] = false;
            l.left_out.push((kind, i, why));
        }
    }

    // 4. Required references, to a fixpoint (only ever removes entries).
    loop {
        let mut changed = false;
        for kind in [PROJECT, EXPERIMENT, DATASET, GROUP, ROLE, ACL, TOKEN] {
            for i in 0..l.arrays[kind].len() {
                if !l.keep[kind][i] {
                    continue;
                }
                if let Some(why) = l.missing_reference(kind, &l.arrays[kind][i]) {
                    l.keep[kind][i] = false;
                    l.left_out.push((kind, i, why));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    l.left_out.sort();
    Ok(l)
}

impl<'a> Loaded<'a> {
    /// The loaded entries of one array, with their positions.
    fn entries(&self, kind: usize) -> impl Iterator<Item = (usize, &'a Value)> + '_ {
        self.arrays[kind].iter().enumerate().filter(move |(i, _)| self.keep[kind][*i])
    }

    /// The loaded entry of this kind with this id.
    fn find(&self, kind: usize, wanted: &str) -> Option<&'a Value> {
        self.entries(kind).map(|(_, e)| e).find(|e| id(e) == wanted)
    }

    /// The organization of a tracked object as the (loaded) entries say,
    /// deleted or not; None for untracked types or unresolvable objects.
    fn object_org(&self, object_type: &str, object_id: &str) -> Option<&'a str> {
        let project_org = |pid: &str| self.find(PROJECT, pid).and_then(|p| s(p, "org_id"));
        match object_type {
            "organization" => self.find(ORG, object_id).and_then(|o| s(o, "id")),
            "project" | "project_log" => project_org(object_id),
            "experiment" | "dataset" => {
                let kind = if object_type == "experiment" { EXPERIMENT } else { DATASET };
                self.find(kind, object_id).and_then(|x| s(x, "project_id")).and_then(project_org)
            }
            _ => None,
        }
    }

    fn missing_reference(&self, kind: usize, e: &Value) -> Option<String> {
        let need = |target: usize, key: &str| -> Option<String> {
            let wanted = s(e, key)?;
            if self.find(target, wanted).is_some() {
                None
            } else {
                Some(format!("`{key}` {wanted:?}: no such {}", ARRAYS[target]))
            }
        };
        match kind {
            PROJECT | GROUP | ROLE => need(ORG, "org_id"),
            EXPERIMENT | DATASET => need(PROJECT, "project_id"),
            ACL => need(USER, "user_id").or_else(|| need(GROUP, "group_id")).or_else(|| need(ROLE, "role_id")).or_else(
                || {
                    let target = match s(e, "object_type")? {
                        "organization" => ORG,
                        "project" | "project_log" => PROJECT,
                        "experiment" => EXPERIMENT,
                        "dataset" => DATASET,
                        _ => return None,
                    };
                    need(target, "object_id")
                },
            ),
            TOKEN => {
                need(ORG, "org_id").or_else(|| need(USER, "service_account_id")).or_else(|| need(TOKEN, "parent_id"))
            }
            _ => None,
        }
    }

    /// The decision for one request.
    pub fn decide(&self, req: &Request) -> Outcome {
        // 1. Authenticate.
        let token =
            self.entries(TOKEN).map(|(_, t)| t).find(|t| s(t, "token_sha256") == Some(req.token_sha256.as_str()));
        let Some(token) = token else {
            return Outcome::Unauthenticated;
        };
        let mut chain = vec![token];
        let mut seen = HashSet::from([id(token)]);
        let mut current = token;
        while let Some(parent_id) = s(current, "parent_id") {
            let Some(parent) = self.find(TOKEN, parent_id) else {
                return Outcome::Unauthenticated;
            };
            if !seen.insert(id(parent)) {
                break;
            }
            chain.push(parent);
            current = parent;
        }
        let now = i128::from(req.now_ms) * 1_000_000;
        for t in &chain {
            if let Some(nb) = s(t, "not_before").and_then(parse_time)
                && now < nb
            {
                return Outcome::Unauthenticated;
            }
            if let Some(exp) = s(t, "expires_at").and_then(parse_time)
                && now >= exp
            {
                return Outcome::Unauthenticated;
            }
        }

        // 2. Client address.
        for t in &chain {
            let cidrs = non_null(t, "scope").and_then(|sc| non_null(sc, "client_cidrs"));
            if let Some(cidrs) = cidrs.and_then(Value::as_array) {
                let inside = cidrs.iter().filter_map(Value::as_str).any(|c| cidr_contains(c, req.client_addr));
                if !inside {
                    return Outcome::ClientAddressDenied;
                }
            }
        }

        // 3. The object and its ancestors (the object first, the organization last).
        let Some(ancestry) = self.ancestry(&req.object_type, &req.object_id) else {
            return Outcome::UnknownObject;
        };
        let object_org = ancestry.last().map(|(_, oid)| *oid);
        if object_org != s(token, "org_id") {
            return Outcome::PermissionDenied;
        }

        // 4. ACLs.
        let user = s(token, "service_account_id").unwrap_or("");
        let acl_allows = self.acl_allows(user, &ancestry, &req.permission, &req.object_type);

        // 5. Scopes of the token and all its parents.
        let scope_passes = chain.iter().all(|t| scope_passes(t, &ancestry, &req.permission));

        // 6.
        match (acl_allows, scope_passes) {
            (true, true) => Outcome::Allow,
            (true, false) => Outcome::ScopeDenied,
            (false, _) => Outcome::PermissionDenied,
        }
    }

    /// The requested object and its ancestors as (object_type, object_id),
    /// or None when the object is unknown (missing, deleted, in a deleted
    /// project, or of an untracked type).
    fn ancestry<'r>(&self, object_type: &'r str, object_id: &'r str) -> Option<Vec<(&'r str, &'r str)>>
    where
        'a: 'r,
    {
        match object_type {
            "organization" => {
                self.find(ORG, object_id)?;
                Some(vec![("organization", object_id)])
            }
            "project" | "project_log" => {
                let p = self.find(PROJECT, object_id).filter(|p| !deleted(p))?;
                let org = s(p, "org_id")?;
                let mut v = vec![(object_type, object_id)];
                if object_type == "project_log" {
                    v.push(("project", object_id));
                }
                v.push(("organization", org));
                Some(v)
            }
            "experiment" | "dataset" => {
                let kind = if object_type == "experiment" { EXPERIMENT } else { DATASET };
                let x = self.find(kind, object_id).filter(|x| !deleted(x))?;
                let pid = s(x, "project_id")?;
                let p = self.find(PROJECT, pid).filter(|p| !deleted(p))?;
                let org = s(p, "org_id")?;
                Some(vec![(object_type, object_id), ("project", pid), ("organization", org)])
            }
            _ => None,
        }
    }

    fn acl_allows(&self, user: &str, ancestry: &[(&str, &str)], permission: &str, object_type: &str) -> bool {
        self.entries(ACL).any(|(_, acl)| {
            let on = (s(acl, "object_type").unwrap_or(""), s(acl, "object_id").unwrap_or(""));
            if !ancestry.contains(&on) {
                return false;
            }
            let principal = if let Some(u) = s(acl, "user_id") {
                u == user
            } else if let Some(g) = s(acl, "group_id") {
                self.group_contains(g, user, &mut HashSet::new())
            } else {
                false
            };
            if !principal {
                return false;
            }
            if let Some(p) = s(acl, "permission") {
                p == permission && restrict_allows(acl, object_type)
            } else if let Some(r) = s(acl, "role_id") {
                self.role_grants(r, permission, object_type, &mut HashSet::new())
            } else {
                false
            }
        })
    }

    /// Whether the live group `gid` contains `user`, directly or through live
    /// member groups.
    fn group_contains<'v>(&self, gid: &'v str, user: &str, visited: &mut HashSet<&'v str>) -> bool
    where
        'a: 'v,
    {
        let Some(g) = self.find(GROUP, gid) else {
            return false;
        };
        if deleted(g) || !visited.insert(gid) {
            return false;
        }
        if list(g, "member_users").any(|m| m == user && self.find(USER, m).is_some()) {
            return true;
        }
        list(g, "member_groups").any(|m| self.group_contains(m, user, visited))
    }

    /// Whether the live role `rid` grants `permission` on an object of
    /// `object_type`, itself or through live member roles.
    fn role_grants<'v>(&self, rid: &'v str, permission: &str, object_type: &str, visited: &mut HashSet<&'v str>) -> bool
    where
        'a: 'v,
    {
        let Some(r) = self.find(ROLE, rid) else {
            return false;
        };
        if deleted(r) || !visited.insert(rid) {
            return false;
        }
        let direct = r
            .get("member_permissions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|mp| s(mp, "permission") == Some(permission) && restrict_allows(mp, object_type));
        direct || list(r, "member_roles").any(|m| self.role_grants(m, permission, object_type, visited))
    }

    /// The entries left out, named like `acls[3]: ...`.
    pub fn left_out(&self) -> Vec<String> {
        self.left_out.iter().map(|(k, i, why)| format!("{}[{i}]: {why}", ARRAYS[*k])).collect()
    }

    /// Whether entry `index` of the top-level array `array` was loaded.
    pub fn is_loaded(&self, array: &str, index: usize) -> bool {
        ARRAYS.iter().position(|a| *a == array).and_then(|k| self.keep[k].get(index).copied()).unwrap_or(false)
    }
}

fn restrict_allows(e: &Value, object_type: &str) -> bool {
    match s(e, "restrict_object_type") {
        None => true,
        Some(r) => r == object_type,
    }
}

fn scope_passes(token: &Value, ancestry: &[(&str, &str)], permission: &str) -> bool {
    let Some(scope) = non_null(token, "scope") else {
        return true;
    };
    let Some(grants) = non_null(scope, "grants").and_then(Value::as_array) else {
        return true;
    };
    grants.iter().any(|g| {
        let on = (s(g, "object_type").unwrap_or(""), s(g, "object_id").unwrap_or(""));
        ancestry.contains(&on) && list(g, "permissions").any(|p| p == permission)
    })
}

/// The decision of the contract for `req` under the raw policy file `policy`.
/// A file that is not a policy loads nothing: every request is
/// `Unauthenticated`.
pub fn decide(policy: &Value, req: &Request) -> Outcome {
    match load(policy) {
        Ok(l) => l.decide(req),
        Err(_) => Outcome::Unauthenticated,
    }
}

/// The entries the reference leaves out, each named like `acls[3]: why`; for
/// a file that is not a policy, one line `policy: why`.
pub fn explain_invalid(policy: &Value) -> Vec<String> {
    match load(policy) {
        Ok(l) => l.left_out(),
        Err(why) => vec![format!("policy: {why}")],
    }
}
