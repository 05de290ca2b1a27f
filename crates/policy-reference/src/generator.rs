//! A random raw-JSON policy generator and request generator, driven by a tape
//! of `u32`s so that a property-test framework can produce and shrink it.
//!
//! Every choice reads the tape; a tape that has run out reads as zeros, and a
//! zero always picks the plainest option (the first of a list, "no" to every
//! [`Tape::chance`], the smallest count), so shrinking a tape shrinks the
//! policy towards one organization, one project, one user, one ACL and one
//! token, all well-formed.
//!
//! Policies are written as JSON directly (`serde_json::json!`), never through
//! typed structs. All times are placed around [`NOW_MS`], which the requests
//! use too.

use crate::reference::parse_cidr;
use crate::{GenOptions, Request};
use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{Map, Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The fixed "now" of generated policies and requests (2025-06-15T15:06:40Z).
pub const NOW_MS: i64 = 1_750_000_000_000;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// Permissions weighted towards update/read/delete/create.
const WEIGHTED_PERMISSIONS: [&str; 16] = [
    "update",
    "read",
    "update",
    "read",
    "delete",
    "create",
    "update",
    "read",
    "delete",
    "create",
    "update",
    "delete",
    "create_acls",
    "read_acls",
    "update_acls",
    "delete_acls",
];
const RESTRICT_TYPES: [&str; 7] =
    ["experiment", "project", "dataset", "project_log", "organization", "prompt", "org_project"];
const UNTRACKED_TYPES: [&str; 6] = ["prompt", "prompt_session", "group", "role", "org_member", "org_project"];
const CIDR_POOL: [&str; 9] = [
    "10.0.0.0/8",
    "192.168.1.0/24",
    "10.1.2.3/32",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "0.0.0.0/0",
    "::/0",
    "172.16.0.0/12",
    "2001:db8:1:2::7/128",
];
const ADDR_POOL: [IpAddr; 10] = [
    IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
    IpAddr::V4(Ipv4Addr::new(10, 200, 0, 9)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 1, 77)),
    IpAddr::V4(Ipv4Addr::new(192, 168, 2, 1)),
    IpAddr::V4(Ipv4Addr::new(172, 20, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 7)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203)),
];
const MALFORMED_TIMES: [&str; 7] = [
    "2025-06-15T12:00:00",
    "2025-02-30T00:00:00Z",
    "yesterday",
    "",
    "2025-06-15T25:00:00Z",
    "2025-06-15",
    "1750000000",
];
const UNKNOWN_FIELDS: [&str; 6] = ["restrict_object_types", "deleted", "extra", "is_deleted", "org", "permissions_v2"];

// ---------------------------------------------------------------------------

/// A tape of `u32`s read front to back; past its end it reads zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tape {
    data: Vec<u32>,
    pos: usize,
}

impl Tape {
    pub fn new(data: Vec<u32>) -> Tape {
        Tape { data, pos: 0 }
    }

    /// A tape of `len` pseudo-random values from `seed` (splitmix64), for
    /// tests that do not go through a property-test framework.
    pub fn from_seed(seed: u64, len: usize) -> Tape {
        let mut x = seed;
        Tape::new((0..len).map(|_| (splitmix(&mut x) >> 32) as u32).collect())
    }

    /// The next value; 0 once the tape has run out.
    pub fn next_u32(&mut self) -> u32 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        v
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let v = self.next_u32() as usize;
        if n == 0 { 0 } else { v % n }
    }

    /// True with probability `pct` percent; a zero reads as false (unless
    /// `pct >= 100`).
    pub fn chance(&mut self, pct: u32) -> bool {
        self.below(100) as u32 >= 100u32.saturating_sub(pct)
    }

    /// One of `items` (the first on a zero). Panics on an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "Tape::pick on an empty slice");
        &items[self.below(items.len())]
    }

    /// How many values have been read (including zeros past the end).
    pub fn position(&self) -> usize {
        self.pos
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The token digest of generated token number `k` (distinct for distinct `k`).
pub fn digest(k: u64) -> String {
    let mut x = k.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5151;
    let first = splitmix(&mut x) ^ k; // keeps distinct k distinct
    let mut out = format!("{first:016x}");
    for _ in 0..3 {
        out.push_str(&format!("{:016x}", splitmix(&mut x)));
    }
    out
}

// ---------------------------------------------------------------------------

struct Gen<'t> {
    t: &'t mut Tape,
    opts: GenOptions,
    orgs: Vec<String>,
    /// (object_type, id, org) of every tracked object (project_log included).
    objects: Vec<(&'static str, String, String)>,
    users: Vec<String>,
    groups: Vec<(String, String)>,
    roles: Vec<(String, Option<String>)>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Gen<'_> {
    fn bad(&mut self, pct: u32) -> bool {
        self.opts.invalid_entries && self.t.chance(pct)
    }

    /// A timestamp string for `ms`, in one of several RFC 3339 spellings;
    /// rarely with a sub-millisecond fraction half a millisecond later.
    fn ts(&mut self, ms: i64) -> String {
        let r = self.t.below(100);
        let Some(dt) = DateTime::from_timestamp_millis(ms) else {
            return "2025-06-15T15:06:40Z".to_string();
        };
        if r < 60 {
            dt.to_rfc3339_opts(SecondsFormat::Millis, true)
        } else if r < 75 && ms % 1000 == 0 {
            dt.to_rfc3339_opts(SecondsFormat::Secs, true)
        } else if r < 95 {
            let offset = *self.t.pick(&[7200, -19800, 0, 3600 * 14]);
            let tz = FixedOffset::east_opt(offset).unwrap_or(FixedOffset::east_opt(0).expect("zero offset"));
            dt.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Millis, false)
        } else {
            let later = dt + chrono::Duration::microseconds(500);
            later.to_rfc3339_opts(SecondsFormat::Micros, true)
        }
    }

    fn weighted_permission(&mut self) -> &'static str {
        WEIGHTED_PERMISSIONS[self.t.below(WEIGHTED_PERMISSIONS.len())]
    }

    /// A tracked object (sometimes an untracked one), in `org` when it has
    /// one of the drawn kind.
    fn pick_object(&mut self, org: Option<&str>) -> (String, String) {
        let r = self.t.below(100);
        if r >= 93 {
            let ty = *self.t.pick(&UNTRACKED_TYPES);
            let ids: Vec<String> = match ty {
                "group" => self.groups.iter().map(|g| g.0.clone()).collect(),
                "role" => self.roles.iter().map(|g| g.0.clone()).collect(),
                _ => vec![format!("{ty}-0"), format!("{ty}-1")],
            };
            let id = if ids.is_empty() { format!("{ty}-0") } else { self.t.pick(&ids).clone() };
            return (ty.to_string(), id);
        }
        let kind = match r {
            0..25 => "organization",
            25..48 => "project",
            48..58 => "project_log",
            58..80 => "experiment",
            _ => "dataset",
        };
        for kind in [kind, "project", "organization"] {
            let in_org: Vec<&(&str, String, String)> =
                self.objects.iter().filter(|o| o.0 == kind && org.is_none_or(|org| o.2 == org)).collect();
            if !in_org.is_empty() {
                let o = *self.t.pick(&in_org);
                return (o.0.to_string(), o.1.clone());
            }
        }
        let org = self.t.pick(&self.orgs).clone();
        ("organization".to_string(), org)
    }

    fn object_org(&self, object_type: &str, object_id: &str) -> Option<String> {
        self.objects.iter().find(|o| o.0 == object_type && o.1 == object_id).map(|o| o.2.clone())
    }

    fn deleted_at(&mut self, e: &mut Map<String, Value>) {
        if self.t.chance(6) {
            let when = NOW_MS + *self.t.pick(&[-DAY, -1, DAY]);
            let ts = self.ts(when);
            e.insert("deleted_at".into(), json!(ts));
        } else if self.t.chance(10) {
            e.insert("deleted_at".into(), Value::Null);
        }
    }

    /// One generic rule-breaking change, at a modest rate, in invalid mode.
    fn corrupt(&mut self, kind: &str, e: &mut Map<String, Value>, earlier_ids: &[String]) {
        // An organization or a user left out takes everything that names it
        // along, so those two break less often.
        let pct = match kind {
            "organizations" => 2,
            "users" => 3,
            _ => 5,
        };
        if !self.bad(pct) {
            return;
        }
        match self.t.below(6) {
            0 => self.unknown_field(e),
            1 => {
                // deleted_at on every kind: a deletion where the kind has it,
                // an unknown field where it does not.
                let when = NOW_MS - DAY;
                let ts = self.ts(when);
                e.insert("deleted_at".into(), json!(ts));
            }
            2 => {
                // A wrong type in some field (ignored fields accept anything).
                let keys: Vec<String> = e.keys().cloned().collect();
                let key = self.t.pick(&keys).clone();
                let wrong = match &e[&key] {
                    Value::String(_) => self.t.pick(&[json!(7), json!(true), json!(["x"])]).clone(),
                    Value::Bool(_) => json!("yes"),
                    Value::Array(a) if a.is_empty() => json!("x"),
                    Value::Array(_) => self.t.pick(&[json!("x"), json!([7])]).clone(),
                    Value::Null => json!(7),
                    Value::Object(_) => json!("x"),
                    Value::Number(_) => json!("x"),
                };
                e.insert(key, wrong);
            }
            3 => {
                let key = match kind {
                    "service_tokens" => *self.t.pick(&["expires_at", "not_before"]),
                    _ => "deleted_at",
                };
                let bad = *self.t.pick(&MALFORMED_TIMES);
                e.insert(key.into(), json!(bad));
            }
            4 => self.dangling(kind, e),
            _ => {
                if earlier_ids.is_empty() {
                    self.unknown_field(e);
                } else {
                    let dup = self.t.pick(earlier_ids).clone();
                    e.insert("id".into(), json!(dup));
                }
            }
        }
    }

    fn unknown_field(&mut self, e: &mut Map<String, Value>) {
        let key = *self.t.pick(&UNKNOWN_FIELDS);
        let value = self.t.pick(&[json!(true), json!("experiment"), json!(1), Value::Null]).clone();
        e.insert(key.into(), value);
    }

    fn dangling(&mut self, kind: &str, e: &mut Map<String, Value>) {
        let push = |e: &mut Map<String, Value>, key: &str, id: &str| {
            let mut list = e.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            list.push(json!(id));
            e.insert(key.into(), Value::Array(list));
        };
        match kind {
            "projects" => {
                e.insert("org_id".into(), json!("org-missing"));
            }
            "experiments" | "datasets" => {
                e.insert("project_id".into(), json!("p-missing"));
            }
            "groups" => match self.t.below(3) {
                0 => {
                    e.insert("org_id".into(), json!("org-missing"));
                }
                1 => push(e, "member_users", "u-missing"),
                _ => push(e, "member_groups", "g-missing"),
            },
            "roles" => {
                if self.t.chance(50) {
                    e.insert("org_id".into(), json!("org-missing"));
                } else {
                    push(e, "member_roles", "r-missing");
                }
            }
            "acls" => {
                let key = *self.t.pick(&["object_id", "user_id", "group_id", "role_id"]);
                if e.contains_key(key) {
                    e.insert(key.into(), json!(format!("{key}-missing")));
                } else {
                    e.insert("object_id".into(), json!("object-missing"));
                }
            }
            "service_tokens" => {
                let key = *self.t.pick(&["org_id", "service_account_id", "parent_id"]);
                e.insert(key.into(), json!(format!("{key}-missing")));
            }
            _ => self.unknown_field(e),
        }
    }

    // -----------------------------------------------------------------------

    fn organizations(&mut self) -> Vec<Value> {
        let n = 1 + self.t.below(3);
        let mut out = Vec::new();
        for i in 0..n {
            let id = format!("org-{i}");
            let name = *self.t.pick(&["acme", "acme", "initech"]);
            let mut e = obj(json!({"id": id, "name": name}));
            if self.t.chance(25) {
                let v = self.t.chance(50);
                e.insert("creator_grants".into(), json!(v));
            }
            if self.t.chance(15) {
                e.insert("api_url".into(), json!("https://api.example.test"));
                e.insert("is_universal_api".into(), json!(true));
                e.insert("created".into(), json!("2024-01-01T00:00:00Z"));
            }
            if self.bad(3) {
                e.insert("creator_grants".into(), json!("yes"));
            }
            self.corrupt("organizations", &mut e, &self.orgs.clone());
            self.orgs.push(id);
            out.push(Value::Object(e));
        }
        out
    }

    fn projects(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for org in self.orgs.clone() {
            for _ in 0..1 + self.t.below(2) {
                let id = format!("p-{}", ids.len());
                let name = *self.t.pick(&["alpha", "beta", "alpha"]);
                let mut e = obj(json!({"id": id, "org_id": org, "name": name}));
                if self.t.chance(15) {
                    e.insert("created".into(), json!("2024-02-01T00:00:00Z"));
                    e.insert("settings".into(), json!({"comparison_key": null}));
                    e.insert("user_id".into(), json!("someone"));
                }
                self.deleted_at(&mut e);
                self.corrupt("projects", &mut e, &ids);
                self.objects.push(("project", id.clone(), org.clone()));
                self.objects.push(("project_log", id.clone(), org.clone()));
                ids.push(id);
                out.push(Value::Object(e));
            }
        }
        out
    }

    fn experiments_or_datasets(&mut self, kind: &'static str) -> Vec<Value> {
        let (array, prefix, most) = if kind == "experiment" { ("experiments", "e", 3) } else { ("datasets", "d", 2) };
        let projects: Vec<(String, String)> =
            self.objects.iter().filter(|o| o.0 == "project").map(|o| (o.1.clone(), o.2.clone())).collect();
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for (pid, org) in projects {
            for _ in 0..self.t.below(most) {
                let id = format!("{prefix}-{}", ids.len());
                let name = *self.t.pick(&["run", "eval", "run"]);
                let mut e = obj(json!({"id": id, "project_id": pid, "name": name}));
                if self.t.chance(15) {
                    e.insert("created".into(), json!("2024-03-01T00:00:00Z"));
                    e.insert("metadata".into(), json!({"k": [1, 2]}));
                    e.insert("description".into(), Value::Null);
                    if kind == "experiment" {
                        e.insert("public".into(), json!(false));
                        e.insert("repo_info".into(), json!({"commit": "abc"}));
                    }
                }
                self.deleted_at(&mut e);
                self.corrupt(array, &mut e, &ids);
                self.objects.push((kind, id.clone(), org.clone()));
                ids.push(id);
                out.push(Value::Object(e));
            }
        }
        out
    }

    fn users(&mut self) -> Vec<Value> {
        let n = 1 + self.t.below(4);
        let mut out = Vec::new();
        for i in 0..n {
            let id = format!("u-{i}");
            let mut e = obj(json!({"id": id}));
            if self.t.chance(70) {
                e.insert("service_account".into(), json!(!self.t.chance(10)));
            }
            if self.t.chance(40) {
                let name = *self.t.pick(&["bot", "ci", "bot"]);
                e.insert("name".into(), json!(name));
            }
            if self.t.chance(10) {
                e.insert("email".into(), json!("bot@example.test"));
                e.insert("avatar_url".into(), Value::Null);
            }
            if self.bad(3) {
                e.insert("service_account".into(), json!("yes"));
            }
            self.corrupt("users", &mut e, &self.users.clone());
            self.users.push(id);
            out.push(Value::Object(e));
        }
        out
    }

    fn groups(&mut self) -> Vec<Value> {
        // Ids first, so member lists can name later groups (cycles).
        for org in self.orgs.clone() {
            for _ in 0..self.t.below(3) {
                let id = format!("g-{}", self.groups.len());
                self.groups.push((id, org.clone()));
            }
        }
        let mut out = Vec::new();
        for (i, (id, org)) in self.groups.clone().into_iter().enumerate() {
            let name = *self.t.pick(&["admins", "writers", "admins"]);
            let mut e = obj(json!({"id": id, "org_id": org, "name": name}));
            if self.t.chance(80) {
                let members: Vec<String> = (0..self.t.below(3)).map(|_| self.t.pick(&self.users).clone()).collect();
                e.insert("member_users".into(), json!(members));
            }
            if self.t.chance(45) {
                let same: Vec<String> = self.groups.iter().filter(|g| g.1 == org).map(|g| g.0.clone()).collect();
                let mut members: Vec<String> = (0..1 + self.t.below(2)).map(|_| self.t.pick(&same).clone()).collect();
                if self.bad(10) {
                    let other: Vec<String> = self.groups.iter().filter(|g| g.1 != org).map(|g| g.0.clone()).collect();
                    if !other.is_empty() {
                        members.push(self.t.pick(&other).clone());
                    }
                }
                e.insert("member_groups".into(), json!(members));
            }
            if self.t.chance(10) {
                e.insert("description".into(), json!("d"));
                e.insert("created".into(), Value::Null);
            }
            self.deleted_at(&mut e);
            let earlier: Vec<String> = self.groups[..i].iter().map(|g| g.0.clone()).collect();
            self.corrupt("groups", &mut e, &earlier);
            out.push(Value::Object(e));
        }
        out
    }

    fn roles(&mut self) -> Vec<Value> {
        for org in self.orgs.clone() {
            for _ in 0..self.t.below(3) {
                let id = format!("r-{}", self.roles.len());
                self.roles.push((id, Some(org.clone())));
            }
        }
        for _ in 0..self.t.below(3) {
            let id = format!("sys-{}", self.roles.len());
            self.roles.push((id, None));
        }
        let mut out = Vec::new();
        for (i, (id, org)) in self.roles.clone().into_iter().enumerate() {
            let name = *self.t.pick(&["editor", "viewer", "editor"]);
            let mut e = obj(json!({"id": id, "org_id": org, "name": name}));
            if self.t.chance(85) {
                let mut perms = Vec::new();
                for _ in 0..1 + self.t.below(3) {
                    let p = self.weighted_permission();
                    let mut mp = obj(json!({"permission": p}));
                    if self.t.chance(25) {
                        let r = *self.t.pick(&RESTRICT_TYPES);
                        mp.insert("restrict_object_type".into(), json!(r));
                    } else if self.t.chance(10) {
                        mp.insert("restrict_object_type".into(), Value::Null);
                    }
                    if self.bad(5) {
                        match self.t.below(3) {
                            0 => mp.insert("permission".into(), json!("write")),
                            1 => mp.insert("restrict_object_type".into(), json!("experiments")),
                            _ => mp.insert("restrict_object_types".into(), json!("experiment")),
                        };
                    }
                    perms.push(Value::Object(mp));
                }
                e.insert("member_permissions".into(), Value::Array(perms));
            }
            if self.t.chance(40) {
                // Same organization or system roles; a system role lists system roles.
                let allowed: Vec<String> = self
                    .roles
                    .iter()
                    .filter(|r| r.1.is_none() || (org.is_some() && r.1 == org))
                    .map(|r| r.0.clone())
                    .collect();
                let mut members: Vec<String> = if allowed.is_empty() {
                    Vec::new()
                } else {
                    (0..1 + self.t.below(2)).map(|_| self.t.pick(&allowed).clone()).collect()
                };
                if self.bad(10) {
                    let other: Vec<String> =
                        self.roles.iter().filter(|r| r.1.is_some() && r.1 != org).map(|r| r.0.clone()).collect();
                    if !other.is_empty() {
                        members.push(self.t.pick(&other).clone());
                    }
                }
                e.insert("member_roles".into(), json!(members));
            }
            self.deleted_at(&mut e);
            let earlier: Vec<String> = self.roles[..i].iter().map(|r| r.0.clone()).collect();
            self.corrupt("roles", &mut e, &earlier);
            out.push(Value::Object(e));
        }
        out
    }

    fn acls(&mut self) -> Vec<Value> {
        let n = 1 + self.t.below(12);
        let mut out = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for i in 0..n {
            let id = format!("acl-{i}");
            let (object_type, object_id) = self.pick_object(None);
            let org = self.object_org(&object_type, &object_id);
            let mut e = obj(json!({"id": id, "object_type": object_type, "object_id": object_id}));
            let cross = self.bad(7);
            let groups: Vec<String> = self
                .groups
                .iter()
                .filter(|g| cross != (org.is_none() || org.as_ref() == Some(&g.1)))
                .map(|g| g.0.clone())
                .collect();
            if !groups.is_empty() && self.t.chance(40) {
                let g = self.t.pick(&groups).clone();
                e.insert("group_id".into(), json!(g));
            } else {
                let u = self.t.pick(&self.users).clone();
                e.insert("user_id".into(), json!(u));
            }
            let roles: Vec<String> = self
                .roles
                .iter()
                .filter(|r| r.1.is_none() || cross != (org.is_none() || org == r.1))
                .map(|r| r.0.clone())
                .collect();
            if !roles.is_empty() && self.t.chance(45) {
                let r = self.t.pick(&roles).clone();
                e.insert("role_id".into(), json!(r));
                if self.t.chance(10) {
                    e.insert("restrict_object_type".into(), Value::Null);
                }
            } else {
                let p = self.weighted_permission();
                e.insert("permission".into(), json!(p));
                if self.t.chance(30) {
                    let r = *self.t.pick(&RESTRICT_TYPES);
                    e.insert("restrict_object_type".into(), json!(r));
                } else if self.t.chance(10) {
                    e.insert("restrict_object_type".into(), Value::Null);
                }
            }
            if self.t.chance(15) {
                e.insert("_object_org_id".into(), json!(org.clone().unwrap_or_default()));
                e.insert("created".into(), json!("2024-04-01T00:00:00Z"));
            }
            if self.bad(7) {
                self.break_acl(&mut e);
            }
            self.corrupt("acls", &mut e, &ids);
            ids.push(id);
            out.push(Value::Object(e));
        }
        out
    }

    fn break_acl(&mut self, e: &mut Map<String, Value>) {
        match self.t.below(8) {
            0 => {
                // role_id with a restrict_object_type
                let role = self.roles.first().map_or("r-0".to_string(), |r| r.0.clone());
                e.remove("permission");
                e.insert("role_id".into(), json!(role));
                e.insert("restrict_object_type".into(), json!("experiment"));
            }
            1 => {
                // both principals
                let u = self.t.pick(&self.users).clone();
                let g = self.groups.first().map_or("g-0".to_string(), |g| g.0.clone());
                e.insert("user_id".into(), json!(u));
                e.insert("group_id".into(), json!(g));
            }
            2 => {
                e.remove("user_id");
                e.remove("group_id");
            }
            3 => {
                let role = self.roles.first().map_or("r-0".to_string(), |r| r.0.clone());
                e.insert("permission".into(), json!("read"));
                e.insert("role_id".into(), json!(role));
            }
            4 => {
                e.remove("permission");
                e.remove("role_id");
            }
            5 => {
                e.remove("role_id");
                e.insert("permission".into(), json!("write"));
            }
            6 => {
                e.insert("object_type".into(), json!("experiments"));
            }
            _ => {
                // the misspelling that must not widen an org-level grant
                let r = e.remove("restrict_object_type").unwrap_or(json!("experiment"));
                e.insert("restrict_object_types".into(), r);
            }
        }
    }

    fn tokens(&mut self) -> Vec<Value> {
        let n = 1 + self.t.below(4);
        let mut out = Vec::new();
        // (id, org, service account)
        let mut made: Vec<(String, String, String)> = Vec::new();
        for k in 0..n {
            let id = format!("t-{k}");
            let parent = if self.opts.scopes && k > 0 && self.t.chance(30) {
                Some(made[self.t.below(made.len())].clone())
            } else {
                None
            };
            let (org, sa) = match &parent {
                Some(p) if !self.t.chance(20) => (p.1.clone(), p.2.clone()),
                _ => (self.t.pick(&self.orgs).clone(), self.t.pick(&self.users).clone()),
            };
            let name = *self.t.pick(&["ci", "deploy", "ci"]);
            let mut e = obj(json!({
                "id": id, "name": name, "org_id": org, "service_account_id": sa,
                "token_sha256": digest(k as u64),
            }));
            if self.t.chance(50) {
                if self.t.chance(15) {
                    e.insert("expires_at".into(), Value::Null);
                } else {
                    let when = if self.t.chance(30) {
                        NOW_MS + *self.t.pick(&[1, 0, -1, -HOUR, 2])
                    } else {
                        NOW_MS + *self.t.pick(&[DAY, HOUR, DAY * 365])
                    };
                    let ts = self.ts(when);
                    e.insert("expires_at".into(), json!(ts));
                }
            }
            if (self.opts.scopes || self.opts.not_before) && self.t.chance(35) {
                if self.t.chance(15) {
                    e.insert("not_before".into(), Value::Null);
                } else {
                    let when = if self.t.chance(30) {
                        NOW_MS + *self.t.pick(&[-1, 0, 1, HOUR, -2])
                    } else {
                        NOW_MS + *self.t.pick(&[-DAY, -HOUR, -DAY * 30])
                    };
                    let ts = self.ts(when);
                    e.insert("not_before".into(), json!(ts));
                }
            }
            if self.opts.scopes {
                if self.t.chance(55) {
                    let scope = self.scope(&org);
                    e.insert("scope".into(), scope);
                } else if self.t.chance(10) {
                    e.insert("scope".into(), Value::Null);
                }
                if let Some(p) = &parent {
                    e.insert("parent_id".into(), json!(p.0));
                } else if self.t.chance(10) {
                    e.insert("parent_id".into(), Value::Null);
                }
            }
            if self.t.chance(15) {
                e.insert("preview_name".into(), json!("bt-****"));
                e.insert("created".into(), json!("2024-05-01T00:00:00Z"));
            }
            if self.bad(6) {
                self.break_token(&mut e);
            }
            let earlier: Vec<String> = made.iter().map(|m| m.0.clone()).collect();
            self.corrupt("service_tokens", &mut e, &earlier);
            made.push((id, org, sa));
            out.push(Value::Object(e));
        }
        out
    }

    fn break_token(&mut self, e: &mut Map<String, Value>) {
        let d = e.get("token_sha256").and_then(Value::as_str).unwrap_or("").to_string();
        match self.t.below(8) {
            0 => {
                e.insert("token_sha256".into(), json!(d.to_uppercase()));
            }
            1 => {
                e.insert("token_sha256".into(), json!(d[..d.len().saturating_sub(1)]));
            }
            2 => {
                e.insert("scope".into(), json!({"grant": []}));
            }
            3 => {
                e.insert("scope".into(), json!({"grants": [{"object_type": "organization", "object_id": "org-0", "permissions": ["write"]}]}));
            }
            4 => {
                let c = *self.t.pick(&["10.0.0.0/33", "10.0.0.0", "banana/8", "2001:db8::/129", "10.0.0.0/-1"]);
                e.insert("scope".into(), json!({"client_cidrs": [c]}));
            }
            5 => {
                e.insert("scope".into(), json!({"grants": [{"object_type": "organization", "object_id": "org-0"}]}));
            }
            6 => {
                e.insert(
                    "scope".into(),
                    json!({"grants": [{"object_type": "projects", "object_id": "p-0", "permissions": ["read"]}]}),
                );
            }
            _ => {
                e.insert("scope".into(), json!("read-only"));
            }
        }
    }

    fn scope(&mut self, org: &str) -> Value {
        let mut scope = Map::new();
        if self.t.chance(75) {
            let grants: Vec<Value> = if self.t.chance(12) {
                Vec::new()
            } else {
                (0..1 + self.t.below(3))
                    .map(|_| {
                        let in_org = if self.t.chance(85) { Some(org) } else { None };
                        let (ty, oid) = self.pick_object(in_org);
                        let perms: Vec<&str> = if self.t.chance(30) {
                            vec!["read"]
                        } else {
                            (0..1 + self.t.below(3)).map(|_| self.weighted_permission()).collect()
                        };
                        json!({"object_type": ty, "object_id": oid, "permissions": perms})
                    })
                    .collect()
            };
            scope.insert("grants".into(), Value::Array(grants));
        }
        if self.t.chance(45) {
            let cidrs: Vec<&str> = if self.t.chance(10) {
                Vec::new()
            } else {
                (0..1 + self.t.below(2)).map(|_| *self.t.pick(&CIDR_POOL)).collect()
            };
            scope.insert("client_cidrs".into(), json!(cidrs));
        }
        Value::Object(scope)
    }
}

/// A random policy file, written as raw JSON.
pub fn policy(t: &mut Tape, opts: &GenOptions) -> Value {
    let mut g = Gen {
        t,
        opts: *opts,
        orgs: Vec::new(),
        objects: Vec::new(),
        users: Vec::new(),
        groups: Vec::new(),
        roles: Vec::new(),
    };
    let organizations = g.organizations();
    for o in &g.orgs {
        g.objects.push(("organization", o.clone(), o.clone()));
    }
    let projects = g.projects();
    let experiments = g.experiments_or_datasets("experiment");
    let datasets = g.experiments_or_datasets("dataset");
    let users = g.users();
    let groups = g.groups();
    let roles = g.roles();
    let acls = g.acls();
    let service_tokens = g.tokens();
    let mut top = obj(json!({
        "organizations": organizations,
        "projects": projects,
        "experiments": experiments,
        "datasets": datasets,
        "users": users,
        "groups": groups,
        "roles": roles,
        "acls": acls,
        "service_tokens": service_tokens,
    }));
    // Optional arrays may be left out.
    for key in ["experiments", "datasets", "groups", "roles"] {
        if top[key].as_array().is_some_and(Vec::is_empty) && g.t.chance(50) {
            top.remove(key);
        }
    }
    if g.bad(3) {
        // Not a policy at all.
        match g.t.below(5) {
            0 => {
                top.insert("extra".into(), json!([]));
            }
            1 => {
                top.insert("acls".into(), json!({}));
            }
            2 => {
                top.insert("users".into(), Value::Null);
            }
            3 => {
                let orgs = top.remove("organizations").unwrap_or(json!([]));
                top.insert("Organizations".into(), orgs);
            }
            _ => return Value::Array(vec![Value::Object(top)]),
        }
    }
    Value::Object(top)
}

fn array<'a>(policy: &'a Value, key: &str) -> &'a [Value] {
    policy.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn cidrs_of(tok: &Value) -> Vec<&str> {
    tok.get("scope")
        .and_then(|s| s.get("client_cidrs"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn field<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key).and_then(Value::as_str)
}

/// An address inside `cidr`, or None when it does not parse.
fn inside(t: &mut Tape, cidr: &str) -> Option<IpAddr> {
    let (net, len) = parse_cidr(cidr)?;
    Some(match net {
        IpAddr::V4(n) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            IpAddr::V4(Ipv4Addr::from((u32::from(n) & mask) | (t.next_u32() & !mask)))
        }
        IpAddr::V6(n) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            let mut host = 0u128;
            for _ in 0..4 {
                host = (host << 32) | u128::from(t.next_u32());
            }
            IpAddr::V6(Ipv6Addr::from((u128::from(n) & mask) | (host & !mask)))
        }
    })
}

/// (digest, org, service account, client CIDRs of the token and its parent)
type TokenInfo<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<&'a str>);

/// `n` requests against `policy` (any JSON value): mostly its tokens
/// (sometimes an unknown digest), objects of every tracked type, mostly of
/// the token's organization (sometimes of another, missing, or of an
/// untracked type), permissions weighted to update/read/delete/create, times
/// at or around [`NOW_MS`], client addresses sometimes inside the token's
/// (and its parent's) CIDRs. About two requests in five are aimed at one of
/// the policy's ACLs (its object or one below it, its permission or one of
/// its role's, a token of its user or of a member of its group), so that
/// allows are common.
pub fn requests(t: &mut Tape, policy: &Value, n: usize, opts: &GenOptions) -> Vec<Request> {
    let tokens_raw = array(policy, "service_tokens");
    let mut tokens: Vec<TokenInfo> = Vec::new();
    for tok in tokens_raw {
        let Some(d) = field(tok, "token_sha256") else {
            continue;
        };
        let mut cidrs = cidrs_of(tok);
        if let Some(pid) = field(tok, "parent_id")
            && let Some(parent) = tokens_raw.iter().find(|p| field(p, "id") == Some(pid))
        {
            cidrs.extend(cidrs_of(parent));
        }
        tokens.push((d, field(tok, "org_id"), field(tok, "service_account_id"), cidrs));
    }
    let project_org = |pid: &str| {
        array(policy, "projects").iter().find(|p| field(p, "id") == Some(pid)).and_then(|p| field(p, "org_id"))
    };
    // (object_type, id, org, project)
    type Object<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let mut objects: Vec<Object> = Vec::new();
    for o in array(policy, "organizations") {
        if let Some(id) = field(o, "id") {
            objects.push(("organization", id, Some(id), None));
        }
    }
    for p in array(policy, "projects") {
        if let Some(id) = field(p, "id") {
            objects.push(("project", id, field(p, "org_id"), Some(id)));
            objects.push(("project_log", id, field(p, "org_id"), Some(id)));
        }
    }
    for (key, ty) in [("experiments", "experiment"), ("datasets", "dataset")] {
        for x in array(policy, key) {
            if let Some(id) = field(x, "id") {
                let pid = field(x, "project_id");
                objects.push((ty, id, pid.and_then(project_org), pid));
            }
        }
    }
    let acls = array(policy, "acls");
    let find = |key: &str, id: &str| array(policy, key).iter().find(|e| field(e, "id") == Some(id));

    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut token = None;
        let mut aimed: Option<(String, String, String)> = None;
        if !acls.is_empty() && t.chance(50) {
            let acl = t.pick(acls);
            let on = (field(acl, "object_type").unwrap_or(""), field(acl, "object_id").unwrap_or(""));
            let under: Vec<&Object> = objects
                .iter()
                .filter(|o| {
                    (o.0, o.1) == on
                        || (on.0 == "organization" && o.2 == Some(on.1))
                        || (on.0 == "project" && o.3 == Some(on.1))
                })
                .collect();
            let (ty, id) = if under.is_empty() || t.chance(30) {
                on
            } else {
                let o = t.pick(&under);
                (o.0, o.1)
            };
            let role_permissions: Vec<&str> = field(acl, "role_id")
                .and_then(|r| find("roles", r))
                .and_then(|r| r.get("member_permissions"))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|mp| field(mp, "permission")).collect())
                .unwrap_or_default();
            let permission = match field(acl, "permission") {
                Some(p) if !t.chance(15) => p,
                _ if !role_permissions.is_empty() && !t.chance(15) => *t.pick(&role_permissions),
                _ => *t.pick(&WEIGHTED_PERMISSIONS),
            };
            let members: Vec<&str> = match (field(acl, "user_id"), field(acl, "group_id")) {
                (Some(u), _) => vec![u],
                (None, Some(g)) => find("groups", g)
                    .and_then(|g| g.get("member_users"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let holders: Vec<&TokenInfo> =
                tokens.iter().filter(|tok| tok.2.is_some_and(|sa| members.contains(&sa))).collect();
            if !holders.is_empty() {
                token = Some(*t.pick(&holders));
            } else if !tokens.is_empty() {
                token = Some(t.pick(&tokens));
            }
            aimed = Some((ty.to_string(), id.to_string(), permission.to_string()));
        } else if !tokens.is_empty() && !t.chance(10) {
            token = Some(t.pick(&tokens));
        }
        let mut token_sha256 = match token {
            Some(tok) => tok.0.to_string(),
            None => digest(1000 + t.below(4) as u64),
        };
        if opts.invalid_entries && t.chance(2) {
            token_sha256 = token_sha256.to_uppercase();
        }
        let (object_type, object_id, permission) = match aimed {
            Some(a) => a,
            None => {
                let r = t.below(100);
                let (ty, id) = if r >= 96 {
                    let ty = *t.pick(&UNTRACKED_TYPES);
                    (ty.to_string(), format!("{ty}-0"))
                } else if r >= 91 || objects.is_empty() {
                    let ty = *t.pick(&["experiment", "project", "dataset", "organization", "project_log"]);
                    (ty.to_string(), format!("{ty}-missing"))
                } else {
                    let org = token.and_then(|tok| tok.1);
                    let same: Vec<&Object> = objects.iter().filter(|o| o.2 == org).collect();
                    let o = if !same.is_empty() && !t.chance(20) { **t.pick(&same) } else { *t.pick(&objects) };
                    (o.0.to_string(), o.1.to_string())
                };
                (ty, id, t.pick(&WEIGHTED_PERMISSIONS).to_string())
            }
        };
        let now_ms = if t.chance(20) { NOW_MS + *t.pick(&[1, -1, HOUR, -HOUR, DAY, -DAY, 2]) } else { NOW_MS };
        let cidrs = token.map(|tok| tok.3.as_slice()).unwrap_or(&[]);
        let client_addr = if !cidrs.is_empty() && !t.chance(35) {
            let c = *t.pick(cidrs);
            inside(t, c).unwrap_or(ADDR_POOL[0])
        } else {
            *t.pick(&ADDR_POOL)
        };
        out.push(Request { token_sha256, object_type, object_id, permission, now_ms, client_addr });
    }
    out
}
