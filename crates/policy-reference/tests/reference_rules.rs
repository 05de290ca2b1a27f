//! Hand-written policies for every rule of the contract: at least one allow
//! and one deny each.

use loggate_policy_reference::Outcome::{self, *};
use loggate_policy_reference::Request;
use loggate_policy_reference::reference::{decide, explain_invalid, load};
use serde_json::{Value, json};
use std::net::IpAddr;

const NOW: i64 = 1_750_000_000_000; // 2025-06-15T15:06:40Z

fn digest(c: char) -> String {
    c.to_string().repeat(64)
}

/// Two organizations (same name), projects, experiments, a dataset, two
/// service accounts and three tokens (t1: u1 in org-a, t2: u2 in org-a, tb:
/// u1 in org-b). No groups, roles or ACLs.
fn base() -> Value {
    json!({
        "organizations": [
            {"id": "org-a", "name": "acme"},
            {"id": "org-b", "name": "acme", "creator_grants": true}
        ],
        "projects": [
            {"id": "p1", "org_id": "org-a", "name": "alpha"},
            {"id": "p2", "org_id": "org-a", "name": "beta"},
            {"id": "pb", "org_id": "org-b", "name": "alpha"}
        ],
        "experiments": [
            {"id": "e1", "project_id": "p1", "name": "run"},
            {"id": "e2", "project_id": "p1", "name": "run"},
            {"id": "e3", "project_id": "p2", "name": "run"},
            {"id": "eb", "project_id": "pb", "name": "run"}
        ],
        "datasets": [
            {"id": "d1", "project_id": "p1", "name": "ds"}
        ],
        "users": [
            {"id": "u1", "service_account": true},
            {"id": "u2", "service_account": true, "name": "bot"}
        ],
        "groups": [],
        "roles": [],
        "acls": [],
        "service_tokens": [
            {"id": "t1", "name": "ci", "org_id": "org-a", "service_account_id": "u1", "token_sha256": digest('1')},
            {"id": "t2", "name": "ci", "org_id": "org-a", "service_account_id": "u2", "token_sha256": digest('2')},
            {"id": "tb", "name": "ci", "org_id": "org-b", "service_account_id": "u1", "token_sha256": digest('b')}
        ]
    })
}

fn push(p: &mut Value, key: &str, entry: Value) {
    p[key].as_array_mut().expect("array").push(entry);
}

fn set(p: &mut Value, key: &str, id: &str, field: &str, value: Value) {
    let entry = p[key].as_array_mut().expect("array").iter_mut().find(|e| e["id"] == id).expect("entry");
    entry[field] = value;
}

fn user_acl(id: &str, object_type: &str, object_id: &str, user: &str, permission: &str) -> Value {
    json!({"id": id, "object_type": object_type, "object_id": object_id, "user_id": user, "permission": permission})
}

fn req(token: char, object_type: &str, object_id: &str, permission: &str) -> Request {
    Request {
        token_sha256: digest(token),
        object_type: object_type.to_string(),
        object_id: object_id.to_string(),
        permission: permission.to_string(),
        now_ms: NOW,
        client_addr: "10.1.2.3".parse().expect("addr"),
    }
}

fn at(mut r: Request, now_ms: i64) -> Request {
    r.now_ms = now_ms;
    r
}

fn from(mut r: Request, addr: &str) -> Request {
    r.client_addr = addr.parse::<IpAddr>().expect("addr");
    r
}

fn d(p: &Value, r: &Request) -> Outcome {
    decide(p, r)
}

fn left_out(p: &Value) -> String {
    explain_invalid(p).join("\n")
}

// ---------------------------------------------------------------------------
// Not a policy

#[test]
fn not_a_policy_loads_nothing() {
    let mut good = base();
    push(&mut good, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    assert_eq!(d(&good, &req('1', "organization", "org-a", "read")), Allow);
    assert!(explain_invalid(&good).is_empty());

    let r = req('1', "organization", "org-a", "read");
    let mut unknown_key = good.clone();
    unknown_key["prompts"] = json!([]);
    let mut not_array = good.clone();
    not_array["groups"] = json!({});
    let mut null_array = good.clone();
    null_array["roles"] = Value::Null;
    for bad in [json!([good.clone()]), json!("policy"), Value::Null, json!(1), unknown_key, not_array, null_array] {
        assert_eq!(d(&bad, &r), Unauthenticated, "{bad}");
        assert!(load(&bad).is_err());
        assert_eq!(explain_invalid(&bad).len(), 1);
        assert!(explain_invalid(&bad)[0].starts_with("policy: "));
    }
    // Every array is optional.
    assert_eq!(d(&json!({}), &r), Unauthenticated);
    let mut minimal = good.clone();
    let m = minimal.as_object_mut().expect("object");
    for k in ["groups", "roles", "datasets", "experiments"] {
        m.remove(k);
    }
    assert_eq!(d(&minimal, &r), Allow);
}

// ---------------------------------------------------------------------------
// Authentication

#[test]
fn unknown_digest_is_unauthenticated() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), Allow);
    assert_eq!(d(&p, &req('9', "organization", "org-a", "read")), Unauthenticated);
    // Unauthenticated comes first, even for an unknown object.
    assert_eq!(d(&p, &req('9', "experiment", "nope", "read")), Unauthenticated);
}

#[test]
fn expires_at_and_not_before() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    set(&mut p, "service_tokens", "t1", "expires_at", json!("2025-06-15T15:06:40.000Z")); // == NOW
    let r = req('1', "organization", "org-a", "read");
    assert_eq!(d(&p, &r), Unauthenticated, "at expires_at");
    assert_eq!(d(&p, &at(r.clone(), NOW + 1)), Unauthenticated);
    assert_eq!(d(&p, &at(r.clone(), NOW - 1)), Allow, "a millisecond before expiry");
    // Offsets are honoured: 17:06:40+02:00 is NOW.
    set(&mut p, "service_tokens", "t1", "expires_at", json!("2025-06-15T17:06:40+02:00"));
    assert_eq!(d(&p, &r), Unauthenticated);
    assert_eq!(d(&p, &at(r.clone(), NOW - 1)), Allow);
    // Null: no limit.
    set(&mut p, "service_tokens", "t1", "expires_at", Value::Null);
    assert_eq!(d(&p, &r), Allow);

    set(&mut p, "service_tokens", "t1", "not_before", json!("2025-06-15T15:06:40Z")); // == NOW
    assert_eq!(d(&p, &r), Allow, "at not_before");
    assert_eq!(d(&p, &at(r.clone(), NOW - 1)), Unauthenticated, "before not_before");
    set(&mut p, "service_tokens", "t1", "not_before", json!("2025-06-16T00:00:00Z"));
    assert_eq!(d(&p, &r), Unauthenticated, "not yet valid");
    set(&mut p, "service_tokens", "t1", "not_before", Value::Null);
    assert_eq!(d(&p, &r), Allow);
    // Exact comparison below the millisecond.
    set(&mut p, "service_tokens", "t1", "expires_at", json!("2025-06-15T15:06:40.000500Z"));
    assert_eq!(d(&p, &r), Allow, "expires half a millisecond after now");
    set(&mut p, "service_tokens", "t1", "expires_at", Value::Null);
    set(&mut p, "service_tokens", "t1", "not_before", json!("2025-06-15T15:06:40.000500Z"));
    assert_eq!(d(&p, &r), Unauthenticated, "valid half a millisecond after now");
    assert_eq!(d(&p, &at(r.clone(), NOW + 1)), Allow);
}

#[test]
fn malformed_timestamps_leave_the_token_out() {
    for bad in
        [json!("2025-06-15T12:00:00"), json!("2025-02-30T00:00:00Z"), json!("yesterday"), json!(""), json!(1750000000)]
    {
        for field in ["expires_at", "not_before"] {
            let mut p = base();
            push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
            set(&mut p, "service_tokens", "t1", field, bad.clone());
            assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), Unauthenticated, "{field}: {bad}");
            assert!(left_out(&p).contains("service_tokens[0]"), "{}", left_out(&p));
        }
    }
}

#[test]
fn user_removed_but_token_kept_is_unauthenticated() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u2", "read"));
    assert_eq!(d(&p, &req('2', "organization", "org-a", "read")), Allow);
    // A wrong type leaves the user out, and with it the token and the ACL.
    set(&mut p, "users", "u2", "service_account", json!("yes"));
    assert_eq!(d(&p, &req('2', "organization", "org-a", "read")), Unauthenticated);
    let why = left_out(&p);
    assert!(why.contains("users[1]"), "{why}");
    assert!(why.contains("service_tokens[1]"), "{why}");
    assert!(why.contains("acls[0]"), "{why}");
    // Removing the user entry altogether does the same.
    let mut p = base();
    p["users"].as_array_mut().expect("users").remove(1);
    assert_eq!(d(&p, &req('2', "organization", "org-a", "read")), Unauthenticated);
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), PermissionDenied);
}

#[test]
fn token_references_must_resolve() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    set(&mut p, "service_tokens", "t1", "org_id", json!("org-missing"));
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), Unauthenticated);
    // An invalid organization takes its projects, objects, ACLs and tokens with it.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "experiment", "e1", "u1", "read"));
    push(&mut p, "acls", user_acl("a2", "organization", "org-b", "u1", "read"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), Allow);
    set(&mut p, "organizations", "org-a", "deleted_at", json!("2025-01-01T00:00:00Z")); // not a field of orgs
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), Unauthenticated);
    let why = left_out(&p);
    for entry in [
        "organizations[0]",
        "projects[0]",
        "projects[1]",
        "experiments[0]",
        "datasets[0]",
        "acls[0]",
        "service_tokens[0]",
        "service_tokens[1]",
    ] {
        assert!(why.contains(entry), "{entry} in {why}");
    }
    assert!(!why.contains("acls[1]") && !why.contains("service_tokens[2]"), "{why}");
    assert_eq!(d(&p, &req('b', "organization", "org-b", "read")), Allow);
}

#[test]
fn duplicate_ids_leave_out_later_entries() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "update"));
    push(
        &mut p,
        "service_tokens",
        json!({"id": "t1", "name": "again", "org_id": "org-a", "service_account_id": "u1", "token_sha256": digest('3')}),
    );
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), Allow);
    assert_eq!(d(&p, &req('1', "organization", "org-a", "update")), PermissionDenied);
    assert_eq!(d(&p, &req('3', "organization", "org-a", "read")), Unauthenticated);
    let why = left_out(&p);
    assert!(why.contains("acls[1]: duplicate") && why.contains("service_tokens[3]: duplicate"), "{why}");
    // The same id in different arrays is no duplicate.
    let mut p = base();
    push(&mut p, "groups", json!({"id": "p1", "org_id": "org-a", "name": "g", "member_users": ["u1"]}));
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "group_id": "p1", "permission": "read"}),
    );
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    // A duplicate project: the first wins (org-a), the later one (org-b) is out.
    let mut p = base();
    push(&mut p, "projects", json!({"id": "p1", "org_id": "org-b", "name": "alpha"}));
    push(&mut p, "acls", user_acl("a1", "project", "p1", "u1", "read"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    assert_eq!(d(&p, &req('b', "project", "p1", "read")), PermissionDenied);
}

#[test]
fn wrong_types_leave_entries_out() {
    let r = req('1', "organization", "org-a", "read");
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    assert_eq!(d(&p, &r), Allow);
    let cases: Vec<(&str, &str, &str, Value)> = vec![
        ("acls", "a1", "id", json!(7)),
        ("acls", "a1", "permission", json!("write")),
        ("acls", "a1", "permission", json!("Read")),
        ("acls", "a1", "object_type", json!("organizations")),
        ("acls", "a1", "restrict_object_type", json!("experiments")),
        ("acls", "a1", "user_id", json!(["u1"])),
        ("organizations", "org-a", "creator_grants", json!("yes")),
        ("organizations", "org-a", "name", json!(null)),
        ("users", "u1", "service_account", json!("yes")),
        ("users", "u1", "name", json!(5)),
        ("service_tokens", "t1", "token_sha256", json!(digest('A'))),
        ("service_tokens", "t1", "token_sha256", json!(digest('1')[..63])),
        ("service_tokens", "t1", "name", json!(1)),
        ("service_tokens", "t1", "parent_id", json!(1)),
        ("service_tokens", "t1", "scope", json!("read")),
    ];
    for (key, id, field, value) in cases {
        let mut bad = p.clone();
        set(&mut bad, key, id, field, value.clone());
        assert_ne!(d(&bad, &r), Allow, "{key} {id} {field}={value}");
        assert!(left_out(&bad).contains(key), "{key} {field}: {}", left_out(&bad));
    }
    // Ignored fields accept anything.
    let mut ok = p.clone();
    set(&mut ok, "acls", "a1", "_object_org_id", json!(12));
    set(&mut ok, "acls", "a1", "created", json!({"x": 1}));
    set(&mut ok, "organizations", "org-a", "api_url", Value::Null);
    set(&mut ok, "users", "u1", "email", json!(false));
    set(&mut ok, "service_tokens", "t1", "preview_name", json!([1]));
    set(&mut ok, "service_tokens", "t1", "user_id", json!("u2"));
    assert_eq!(d(&ok, &r), Allow, "{}", left_out(&ok));
    assert!(explain_invalid(&ok).is_empty());
    // Entries that are not objects, or miss a required field.
    let mut bad = p.clone();
    push(&mut bad, "acls", json!("a2"));
    push(&mut bad, "acls", json!({"id": "a3", "object_type": "organization", "user_id": "u1", "permission": "read"}));
    let why = left_out(&bad);
    assert!(why.contains("acls[1]") && why.contains("acls[2]"), "{why}");
    assert_eq!(d(&bad, &r), Allow, "the first ACL still loads");
}

#[test]
fn unknown_fields_leave_entries_out() {
    let r = req('1', "organization", "org-a", "read");
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    for (key, id) in [("acls", "a1"), ("organizations", "org-a"), ("users", "u1"), ("service_tokens", "t1")] {
        let mut bad = p.clone();
        set(&mut bad, key, id, "extra", json!(true));
        assert_ne!(d(&bad, &r), Allow, "{key}");
        assert!(left_out(&bad).contains("unknown field `extra`"), "{}", left_out(&bad));
    }
    // deleted_at is an unknown field on ACLs and tokens.
    let mut bad = p.clone();
    set(&mut bad, "acls", "a1", "deleted_at", Value::Null);
    assert_eq!(d(&bad, &r), PermissionDenied);
}

#[test]
fn misspelled_restrict_object_types_leaves_the_org_acl_out() {
    let mut p = base();
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "organization", "object_id": "org-a", "user_id": "u1", "permission": "update", "restrict_object_type": "experiment"}),
    );
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), PermissionDenied);
    let mut typo = base();
    push(
        &mut typo,
        "acls",
        json!({"id": "a1", "object_type": "organization", "object_id": "org-a", "user_id": "u1", "permission": "update", "restrict_object_types": "experiment"}),
    );
    assert_eq!(d(&typo, &req('1', "experiment", "e1", "update")), PermissionDenied);
    assert_eq!(d(&typo, &req('1', "project", "p1", "update")), PermissionDenied);
    assert_eq!(d(&typo, &req('1', "organization", "org-a", "update")), PermissionDenied);
    assert!(left_out(&typo).contains("acls[0]: unknown field `restrict_object_types`"), "{}", left_out(&typo));
}

// ---------------------------------------------------------------------------
// ACL shape

#[test]
fn acl_needs_exactly_one_principal_and_one_grant() {
    let r = req('1', "project", "p1", "read");
    let mut ok = base();
    push(&mut ok, "groups", json!({"id": "g1", "org_id": "org-a", "name": "g", "member_users": ["u1"]}));
    push(
        &mut ok,
        "roles",
        json!({"id": "r1", "org_id": "org-a", "name": "viewer", "member_permissions": [{"permission": "read"}]}),
    );
    push(
        &mut ok,
        "acls",
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1", "permission": "read", "group_id": null, "role_id": null}),
    );
    assert_eq!(d(&ok, &r), Allow, "nulls count as absent: {}", left_out(&ok));
    for bad_acl in [
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1", "group_id": "g1", "permission": "read"}),
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "permission": "read"}),
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1", "permission": "read", "role_id": "r1"}),
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1"}),
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": null, "group_id": null, "permission": "read"}),
    ] {
        let mut p = base();
        p["groups"] = ok["groups"].clone();
        p["roles"] = ok["roles"].clone();
        push(&mut p, "acls", bad_acl.clone());
        assert_eq!(d(&p, &r), PermissionDenied, "{bad_acl}");
        assert!(left_out(&p).contains("acls[0]"), "{bad_acl}");
    }
}

#[test]
fn role_id_with_restrict_object_type_is_left_out() {
    let mut p = base();
    push(
        &mut p,
        "roles",
        json!({"id": "r1", "org_id": "org-a", "name": "editor", "member_permissions": [{"permission": "update"}]}),
    );
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1", "role_id": "r1", "restrict_object_type": null}),
    );
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
    set(&mut p, "acls", "a1", "restrict_object_type", json!("experiment"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), PermissionDenied);
    assert!(left_out(&p).contains("acls[0]: role_id with a non-null restrict_object_type"), "{}", left_out(&p));
}

// ---------------------------------------------------------------------------
// Objects

#[test]
fn objects_must_exist_and_be_live() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    for (ty, id) in
        [("organization", "org-a"), ("project", "p1"), ("project_log", "p1"), ("experiment", "e1"), ("dataset", "d1")]
    {
        assert_eq!(d(&p, &req('1', ty, id, "read")), Allow, "{ty} {id}");
    }
    for (ty, id) in [
        ("organization", "org-x"),
        ("project", "nope"),
        ("project_log", "e1"),
        ("experiment", "p1"),
        ("dataset", "e1"),
        ("prompt", "p1"),
        ("org_project", "org-a"),
        ("Project", "p1"),
    ] {
        assert_eq!(d(&p, &req('1', ty, id, "read")), UnknownObject, "{ty} {id}");
    }
}

#[test]
fn deleted_experiment_dataset_and_project_are_unknown() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    push(&mut p, "acls", user_acl("a2", "experiment", "e1", "u1", "read"));
    let live = p.clone();
    set(&mut p, "experiments", "e1", "deleted_at", json!("2025-01-01T00:00:00Z"));
    set(&mut p, "datasets", "d1", "deleted_at", json!("2030-01-01T00:00:00Z")); // deleted whenever
    assert_eq!(d(&live, &req('1', "experiment", "e1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), UnknownObject);
    assert_eq!(d(&p, &req('1', "dataset", "d1", "read")), UnknownObject);
    assert_eq!(d(&p, &req('1', "experiment", "e2", "read")), Allow);
    assert!(explain_invalid(&p).is_empty(), "deleted entries stay loaded");
    // A deleted project: itself, its log and every object in it are unknown.
    let mut p = live.clone();
    set(&mut p, "projects", "p1", "deleted_at", json!("2025-01-01T00:00:00+01:00"));
    for (ty, id) in
        [("project", "p1"), ("project_log", "p1"), ("experiment", "e1"), ("experiment", "e2"), ("dataset", "d1")]
    {
        assert_eq!(d(&p, &req('1', ty, id, "read")), UnknownObject, "{ty} {id}");
    }
    assert_eq!(d(&p, &req('1', "project", "p2", "read")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "e3", "read")), Allow);
    // deleted_at null is live; a malformed deleted_at leaves the entry out.
    let mut p = live.clone();
    set(&mut p, "experiments", "e1", "deleted_at", Value::Null);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), Allow);
    set(&mut p, "experiments", "e1", "deleted_at", json!("2025-01-01"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), UnknownObject);
    assert!(left_out(&p).contains("experiments[0]"));
}

#[test]
fn another_organizations_object_is_denied() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-b", "u1", "read"));
    push(&mut p, "acls", user_acl("a2", "organization", "org-a", "u1", "read"));
    // tb (org-b, u1) reaches org-b objects; t1 (org-a, u1) does not, though u1 has an ACL there.
    assert_eq!(d(&p, &req('b', "experiment", "eb", "read")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "eb", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "organization", "org-b", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('b', "project", "p1", "read")), PermissionDenied);
}

#[test]
fn acl_objects_must_exist_but_untracked_ones_are_kept() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "experiment", "e-missing", "u1", "read"));
    push(&mut p, "acls", user_acl("a2", "project_log", "e1", "u1", "read")); // not a project id
    push(&mut p, "acls", user_acl("a3", "prompt", "anything", "u1", "read"));
    push(&mut p, "acls", user_acl("a4", "group", "no-such-group", "u1", "read"));
    let why = left_out(&p);
    assert!(why.contains("acls[0]") && why.contains("acls[1]"), "{why}");
    assert!(!why.contains("acls[2]") && !why.contains("acls[3]"), "{why}");
    assert_eq!(d(&p, &req('1', "prompt", "anything", "read")), UnknownObject);
    // An ACL on a deleted experiment stays loaded but its object is unknown.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "experiment", "e1", "u1", "read"));
    set(&mut p, "experiments", "e1", "deleted_at", json!("2025-01-01T00:00:00Z"));
    assert!(explain_invalid(&p).is_empty());
}

// ---------------------------------------------------------------------------
// ACL ancestry, permissions, restrict_object_type

#[test]
fn acl_ancestry() {
    // On the organization: everything in it.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "update"));
    for (ty, id) in
        [("organization", "org-a"), ("project", "p2"), ("project_log", "p1"), ("experiment", "e1"), ("dataset", "d1")]
    {
        assert_eq!(d(&p, &req('1', ty, id, "update")), Allow, "{ty}");
    }
    // On a project: the project, its log, experiments and datasets; not the org or other projects.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "project", "p1", "u1", "update"));
    for (ty, id) in
        [("project", "p1"), ("project_log", "p1"), ("experiment", "e1"), ("experiment", "e2"), ("dataset", "d1")]
    {
        assert_eq!(d(&p, &req('1', ty, id, "update")), Allow, "{ty} {id}");
    }
    for (ty, id) in [("organization", "org-a"), ("project", "p2"), ("project_log", "p2"), ("experiment", "e3")] {
        assert_eq!(d(&p, &req('1', ty, id, "update")), PermissionDenied, "{ty} {id}");
    }
    // On a project_log: only the log.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "project_log", "p1", "u1", "update"));
    assert_eq!(d(&p, &req('1', "project_log", "p1", "update")), Allow);
    for (ty, id) in [("project", "p1"), ("experiment", "e1"), ("dataset", "d1"), ("project_log", "p2")] {
        assert_eq!(d(&p, &req('1', ty, id, "update")), PermissionDenied, "{ty} {id}");
    }
    // On an experiment: only it.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "experiment", "e1", "u1", "update"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
    for (ty, id) in [("experiment", "e2"), ("project", "p1"), ("dataset", "d1"), ("project_log", "p1")] {
        assert_eq!(d(&p, &req('1', ty, id, "update")), PermissionDenied, "{ty} {id}");
    }
    // An ACL of another user does nothing for u1.
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u2", "update"));
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), PermissionDenied);
    assert_eq!(d(&p, &req('2', "project", "p1", "update")), Allow);
}

#[test]
fn permissions_are_exact() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "project", "p1", "u1", "update"));
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), Allow);
    for perm in ["create", "read", "delete", "update_acls", "read_acls", "create_acls", "delete_acls", "write", ""] {
        assert_eq!(d(&p, &req('1', "project", "p1", perm)), PermissionDenied, "{perm}");
    }
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "project", "p1", "u1", "read_acls"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read_acls")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
}

#[test]
fn restrict_object_type_applies_to_the_requested_object() {
    let mut p = base();
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "organization", "object_id": "org-a", "user_id": "u1", "permission": "read", "restrict_object_type": "experiment"}),
    );
    push(
        &mut p,
        "acls",
        json!({"id": "a2", "object_type": "project", "object_id": "p1", "user_id": "u1", "permission": "update", "restrict_object_type": "project_log"}),
    );
    push(
        &mut p,
        "acls",
        json!({"id": "a3", "object_type": "experiment", "object_id": "e1", "user_id": "u1", "permission": "delete", "restrict_object_type": "dataset"}),
    );
    assert_eq!(d(&p, &req('1', "experiment", "e3", "read")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "dataset", "d1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "project_log", "p1", "update")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), PermissionDenied);
    // A restriction that can never match the object it sits on grants nothing.
    assert_eq!(d(&p, &req('1', "experiment", "e1", "delete")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "dataset", "d1", "delete")), PermissionDenied);
    // On the object's own type it applies.
    let mut p = base();
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u1", "permission": "read", "restrict_object_type": "project"}),
    );
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), PermissionDenied);
}

// ---------------------------------------------------------------------------
// Groups

fn group(id: &str, org: &str, users: &[&str], groups: &[&str]) -> Value {
    json!({"id": id, "org_id": org, "name": "writers", "member_users": users, "member_groups": groups})
}

fn group_acl(id: &str, object_type: &str, object_id: &str, group: &str, permission: &str) -> Value {
    json!({"id": id, "object_type": object_type, "object_id": object_id, "group_id": group, "permission": permission})
}

#[test]
fn group_membership_direct_and_nested() {
    let mut p = base();
    push(&mut p, "groups", group("g-top", "org-a", &[], &["g-mid"]));
    push(&mut p, "groups", group("g-mid", "org-a", &["u2"], &["g-leaf"]));
    push(&mut p, "groups", group("g-leaf", "org-a", &["u1"], &[]));
    push(&mut p, "acls", group_acl("a1", "project", "p1", "g-top", "update"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow, "through two levels");
    assert_eq!(d(&p, &req('2', "experiment", "e1", "update")), Allow, "through one level");
    // The member relation points down: a member of the top group is not in the leaf.
    let mut p2 = p.clone();
    set(&mut p2, "acls", "a1", "group_id", json!("g-leaf"));
    assert_eq!(d(&p2, &req('1', "experiment", "e1", "update")), Allow);
    assert_eq!(d(&p2, &req('2', "experiment", "e1", "update")), PermissionDenied);
    // Not a member.
    let mut p3 = base();
    push(&mut p3, "groups", group("g1", "org-a", &["u2"], &[]));
    push(&mut p3, "acls", group_acl("a1", "project", "p1", "g1", "update"));
    assert_eq!(d(&p3, &req('1', "project", "p1", "update")), PermissionDenied);
}

#[test]
fn group_cycles_terminate() {
    let mut p = base();
    push(&mut p, "groups", group("g1", "org-a", &[], &["g2"]));
    push(&mut p, "groups", group("g2", "org-a", &[], &["g3", "g1"]));
    push(&mut p, "groups", group("g3", "org-a", &["u2"], &["g1", "g3"]));
    push(&mut p, "acls", group_acl("a1", "project", "p1", "g1", "read"));
    assert_eq!(d(&p, &req('2', "project", "p1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(explain_invalid(&p).is_empty());
}

#[test]
fn deleted_groups_contain_nobody() {
    let mut p = base();
    push(&mut p, "groups", group("g-top", "org-a", &[], &["g-leaf"]));
    push(&mut p, "groups", group("g-leaf", "org-a", &["u1"], &[]));
    push(&mut p, "acls", group_acl("a1", "project", "p1", "g-top", "read"));
    push(&mut p, "acls", group_acl("a2", "project", "p1", "g-leaf", "update"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), Allow);
    let mut del_leaf = p.clone();
    set(&mut del_leaf, "groups", "g-leaf", "deleted_at", json!("2025-01-01T00:00:00Z"));
    assert_eq!(d(&del_leaf, &req('1', "project", "p1", "read")), PermissionDenied, "a deleted member group");
    assert_eq!(d(&del_leaf, &req('1', "project", "p1", "update")), PermissionDenied, "a deleted group");
    assert!(explain_invalid(&del_leaf).is_empty());
    let mut del_top = p.clone();
    set(&mut del_top, "groups", "g-top", "deleted_at", json!("2025-01-01T00:00:00Z"));
    assert_eq!(d(&del_top, &req('1', "project", "p1", "read")), PermissionDenied);
    assert_eq!(d(&del_top, &req('1', "project", "p1", "update")), Allow);
    let mut live = p.clone();
    set(&mut live, "groups", "g-top", "deleted_at", Value::Null);
    assert_eq!(d(&live, &req('1', "project", "p1", "read")), Allow);
}

#[test]
fn dangling_list_members_are_dropped_but_the_group_stays() {
    let mut p = base();
    push(&mut p, "groups", group("g1", "org-a", &["ghost", "u1"], &["g-ghost"]));
    push(&mut p, "groups", json!({"id": "g-bad", "org_id": "org-a", "name": "x", "oops": 1}));
    push(&mut p, "groups", group("g2", "org-a", &[], &["g-bad", "g1"]));
    push(&mut p, "acls", group_acl("a1", "project", "p1", "g2", "read"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    let why = left_out(&p);
    assert!(why.contains("groups[1]") && !why.contains("groups[0]") && !why.contains("groups[2]"), "{why}");
    // But a group whose organization is missing is left out, and so is its ACL.
    set(&mut p, "groups", "g2", "org_id", json!("org-missing"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(left_out(&p).contains("acls[0]"));
    // An ACL naming a missing group is left out.
    let mut p = base();
    push(&mut p, "acls", group_acl("a1", "project", "p1", "nobody", "read"));
    push(&mut p, "acls", user_acl("a2", "project", "p1", "u1", "read"));
    assert!(left_out(&p).contains("acls[0]"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
}

#[test]
fn cross_organization_groups_are_left_out() {
    // An ACL on an org-a object naming an org-b group.
    let mut p = base();
    push(&mut p, "groups", group("gb", "org-b", &["u1"], &[]));
    push(&mut p, "groups", group("ga", "org-a", &["u1"], &[]));
    push(&mut p, "acls", group_acl("a1", "experiment", "e1", "gb", "read"));
    push(&mut p, "acls", group_acl("a2", "experiment", "e1", "ga", "update"));
    push(&mut p, "acls", group_acl("a3", "experiment", "eb", "gb", "read"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
    assert_eq!(d(&p, &req('b', "experiment", "eb", "read")), Allow);
    let why = left_out(&p);
    assert!(why.contains("acls[0]") && !why.contains("acls[1]") && !why.contains("acls[2]"), "{why}");
    // A group listing a member group of another org is left out as a whole.
    let mut p = base();
    push(&mut p, "groups", group("gb", "org-b", &["u2"], &[]));
    push(&mut p, "groups", group("ga", "org-a", &["u1"], &["gb"]));
    push(&mut p, "acls", group_acl("a1", "project", "p1", "ga", "read"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('2', "project", "p1", "read")), PermissionDenied);
    let why = left_out(&p);
    assert!(why.contains("groups[1]") && why.contains("acls[0]") && !why.contains("groups[0]"), "{why}");
    // ... even when the member group of the other org is deleted.
    set(&mut p, "groups", "gb", "deleted_at", json!("2025-01-01T00:00:00Z"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
}

// ---------------------------------------------------------------------------
// Roles

fn role(id: &str, org: Option<&str>, perms: Value, members: &[&str]) -> Value {
    json!({"id": id, "org_id": org, "name": "editor", "member_permissions": perms, "member_roles": members})
}

fn role_acl(id: &str, object_type: &str, object_id: &str, user: &str, role: &str) -> Value {
    json!({"id": id, "object_type": object_type, "object_id": object_id, "user_id": user, "role_id": role})
}

#[test]
fn roles_grant_their_permissions() {
    let mut p = base();
    push(
        &mut p,
        "roles",
        role(
            "r1",
            Some("org-a"),
            json!([{"permission": "update"}, {"permission": "read", "restrict_object_type": "experiment"}, {"permission": "delete", "restrict_object_type": null}]),
            &[],
        ),
    );
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), Allow);
    assert_eq!(d(&p, &req('1', "dataset", "d1", "delete")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), Allow, "restricted to experiments");
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied, "restricted to experiments");
    assert_eq!(d(&p, &req('1', "dataset", "d1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "project", "p1", "create")), PermissionDenied);
    assert_eq!(d(&p, &req('2', "project", "p1", "update")), PermissionDenied, "another user");
    // A role without permissions grants nothing.
    let mut p = base();
    push(&mut p, "roles", json!({"id": "r1", "org_id": "org-a", "name": "empty"}));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(explain_invalid(&p).is_empty());
    // A group principal with a role.
    let mut p = base();
    push(&mut p, "groups", group("g1", "org-a", &["u1"], &[]));
    push(&mut p, "roles", role("r1", Some("org-a"), json!([{"permission": "create"}]), &[]));
    push(
        &mut p,
        "acls",
        json!({"id": "a1", "object_type": "organization", "object_id": "org-a", "group_id": "g1", "role_id": "r1"}),
    );
    assert_eq!(d(&p, &req('1', "project", "p2", "create")), Allow);
    assert_eq!(d(&p, &req('2', "project", "p2", "create")), PermissionDenied);
}

#[test]
fn member_roles_chain_and_cycles_terminate() {
    let mut p = base();
    push(&mut p, "roles", role("r1", Some("org-a"), json!([]), &["r2"]));
    push(&mut p, "roles", role("r2", Some("org-a"), json!([{"permission": "read"}]), &["r3", "r1"]));
    push(&mut p, "roles", role("r3", Some("org-a"), json!([{"permission": "delete"}]), &["r1", "r3", "r-ghost"]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "delete")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), PermissionDenied);
    assert!(explain_invalid(&p).is_empty());
}

#[test]
fn deleted_roles_grant_nothing() {
    let mut p = base();
    push(&mut p, "roles", role("r1", Some("org-a"), json!([{"permission": "read"}]), &["r2"]));
    push(&mut p, "roles", role("r2", Some("org-a"), json!([{"permission": "update"}]), &["r3"]));
    push(&mut p, "roles", role("r3", Some("org-a"), json!([{"permission": "delete"}]), &[]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "update")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p1", "delete")), Allow);
    let mut mid = p.clone();
    set(&mut mid, "roles", "r2", "deleted_at", json!("2025-01-01T00:00:00Z"));
    assert_eq!(d(&mid, &req('1', "project", "p1", "read")), Allow);
    assert_eq!(d(&mid, &req('1', "project", "p1", "update")), PermissionDenied, "deleted member role");
    assert_eq!(d(&mid, &req('1', "project", "p1", "delete")), PermissionDenied, "through a deleted member role");
    let mut top = p.clone();
    set(&mut top, "roles", "r1", "deleted_at", json!("2025-01-01T00:00:00Z"));
    for perm in ["read", "update", "delete"] {
        assert_eq!(d(&top, &req('1', "project", "p1", perm)), PermissionDenied, "{perm}");
    }
    assert!(explain_invalid(&top).is_empty());
}

#[test]
fn system_roles_are_usable_everywhere() {
    let mut p = base();
    push(&mut p, "roles", role("sys-viewer", None, json!([{"permission": "read"}]), &[]));
    push(&mut p, "roles", role("ra", Some("org-a"), json!([{"permission": "update"}]), &["sys-viewer"]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "sys-viewer"));
    push(&mut p, "acls", role_acl("a2", "organization", "org-b", "u1", "sys-viewer"));
    push(&mut p, "acls", role_acl("a3", "project", "p2", "u2", "ra"));
    assert_eq!(d(&p, &req('1', "experiment", "e1", "read")), Allow);
    assert_eq!(d(&p, &req('b', "experiment", "eb", "read")), Allow);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), PermissionDenied);
    assert_eq!(d(&p, &req('2', "project", "p2", "read")), Allow, "a system member role of an org role");
    assert_eq!(d(&p, &req('2', "project", "p2", "update")), Allow);
    assert!(explain_invalid(&p).is_empty(), "{}", left_out(&p));
    // A role whose org_id is missing is not a system role: it is left out.
    let mut p = base();
    push(&mut p, "roles", json!({"id": "r1", "name": "x", "member_permissions": [{"permission": "read"}]}));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(left_out(&p).contains("roles[0]: missing field `org_id`"), "{}", left_out(&p));
}

#[test]
fn cross_organization_roles_are_left_out() {
    // An ACL on an org-a object naming an org-b role.
    let mut p = base();
    push(&mut p, "roles", role("rb", Some("org-b"), json!([{"permission": "read"}]), &[]));
    push(&mut p, "roles", role("ra", Some("org-a"), json!([{"permission": "read"}]), &[]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "rb"));
    push(&mut p, "acls", role_acl("a2", "project", "pb", "u1", "rb"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert_eq!(d(&p, &req('b', "project", "pb", "read")), Allow);
    set(&mut p, "acls", "a1", "role_id", json!("ra"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    // A role listing a member role of another organization is left out.
    let mut p = base();
    push(&mut p, "roles", role("rb", Some("org-b"), json!([{"permission": "delete"}]), &[]));
    push(&mut p, "roles", role("ra", Some("org-a"), json!([{"permission": "read"}]), &["rb"]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "ra"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(left_out(&p).contains("roles[1]"));
    // A system role listing an organization's role crosses too.
    let mut p = base();
    push(&mut p, "roles", role("ra", Some("org-a"), json!([{"permission": "delete"}]), &[]));
    push(&mut p, "roles", role("sys", None, json!([{"permission": "read"}]), &["ra"]));
    push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "sys"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied);
    assert!(left_out(&p).contains("roles[1]"));
}

#[test]
fn malformed_member_permissions_leave_the_role_out() {
    for perms in [
        json!([{"permission": "write"}]),
        json!([{"permission": "read", "restrict_object_type": "experiments"}]),
        json!([{"permission": "read", "restrict_object_types": "experiment"}]),
        json!([{"restrict_object_type": "experiment"}]),
        json!(["read"]),
        json!({"permission": "read"}),
    ] {
        let mut p = base();
        push(&mut p, "roles", role("r1", Some("org-a"), perms.clone(), &[]));
        push(&mut p, "roles", role("r2", Some("org-a"), json!([{"permission": "update"}]), &["r1"]));
        push(&mut p, "acls", role_acl("a1", "project", "p1", "u1", "r2"));
        assert_eq!(d(&p, &req('1', "project", "p1", "read")), PermissionDenied, "{perms}");
        assert_eq!(d(&p, &req('1', "project", "p1", "update")), Allow, "the listing role stays: {perms}");
        assert!(left_out(&p).contains("roles[0]"));
    }
}

// ---------------------------------------------------------------------------
// Scopes

fn scoped(scope: Value) -> Value {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    push(&mut p, "acls", user_acl("a2", "organization", "org-a", "u1", "update"));
    set(&mut p, "service_tokens", "t1", "scope", scope);
    p
}

#[test]
fn scope_absent_null_or_without_grants_passes() {
    for scope in [Value::Null, json!({}), json!({"grants": null}), json!({"client_cidrs": ["0.0.0.0/0"]})] {
        let p = scoped(scope.clone());
        assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow, "{scope}");
    }
    let mut p = scoped(Value::Null);
    p["service_tokens"][0].as_object_mut().expect("token").remove("scope");
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
}

#[test]
fn scope_grants_and_ancestors() {
    let p = scoped(json!({"grants": [
        {"object_type": "project", "object_id": "p1", "permissions": ["read"]},
        {"object_type": "experiment", "object_id": "e3", "permissions": ["update", "read"]},
        {"object_type": "project_log", "object_id": "p2", "permissions": ["update"]}
    ]}));
    // Project grant covers the project, its log, experiments and datasets.
    for (ty, id) in [("project", "p1"), ("project_log", "p1"), ("experiment", "e1"), ("dataset", "d1")] {
        assert_eq!(d(&p, &req('1', ty, id, "read")), Allow, "{ty} {id}");
        assert_eq!(d(&p, &req('1', ty, id, "update")), ScopeDenied, "{ty} {id}");
    }
    assert_eq!(d(&p, &req('1', "experiment", "e3", "update")), Allow);
    assert_eq!(
        d(&p, &req('1', "project", "p2", "read")),
        ScopeDenied,
        "an experiment grant does not cover its project"
    );
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), ScopeDenied);
    assert_eq!(d(&p, &req('1', "project_log", "p2", "update")), Allow);
    assert_eq!(d(&p, &req('1', "project", "p2", "update")), ScopeDenied, "a project_log grant covers only the log");
    assert_eq!(d(&p, &req('1', "experiment", "e3", "delete")), PermissionDenied, "ACL denies and scope denies");
    assert_eq!(d(&p, &req('1', "project", "p2", "delete")), PermissionDenied);
    // An organization grant covers everything in it.
    let p = scoped(json!({"grants": [{"object_type": "organization", "object_id": "org-a", "permissions": ["read"]}]}));
    assert_eq!(d(&p, &req('1', "dataset", "d1", "read")), Allow);
    assert_eq!(d(&p, &req('1', "dataset", "d1", "update")), ScopeDenied);
    // A grant in another organization does nothing.
    let p = scoped(json!({"grants": [{"object_type": "organization", "object_id": "org-b", "permissions": ["read"]}]}));
    assert_eq!(d(&p, &req('1', "dataset", "d1", "read")), ScopeDenied);
}

#[test]
fn empty_grants_pass_nothing() {
    let p = scoped(json!({"grants": []}));
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), ScopeDenied);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), ScopeDenied);
    assert_eq!(d(&p, &req('2', "experiment", "e1", "update")), PermissionDenied);
    let p = scoped(json!({"grants": [{"object_type": "organization", "object_id": "org-a", "permissions": []}]}));
    assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), ScopeDenied);
}

#[test]
fn malformed_scopes_leave_the_token_out() {
    for scope in [
        json!({"grant": []}),
        json!({"grants": {}}),
        json!({"grants": [{"object_type": "organization", "object_id": "org-a", "permissions": ["write"]}]}),
        json!({"grants": [{"object_type": "organization", "object_id": "org-a"}]}),
        json!({"grants": [{"object_type": "organizations", "object_id": "org-a", "permissions": ["read"]}]}),
        json!({"grants": [{"object_type": "organization", "object_id": 1, "permissions": ["read"]}]}),
        json!({"grants": [{"object_type": "organization", "object_id": "org-a", "permissions": ["read"], "x": 1}]}),
        json!({"client_cidrs": ["10.0.0.0/33"]}),
        json!({"client_cidrs": ["10.0.0.0"]}),
        json!({"client_cidrs": ["2001:db8::/129"]}),
        json!({"client_cidrs": ["10.0.0.0/+8"]}),
        json!({"client_cidrs": "10.0.0.0/8"}),
        json!({"client_cidrs": [8]}),
        json!("read"),
        json!([]),
    ] {
        let p = scoped(scope.clone());
        assert_eq!(d(&p, &req('1', "organization", "org-a", "read")), Unauthenticated, "{scope}");
        assert!(left_out(&p).contains("service_tokens[0]"));
    }
}

#[test]
fn client_cidrs_v4_and_v6() {
    let p = scoped(json!({"client_cidrs": ["10.0.0.0/8", "2001:db8:1::/48", "192.168.1.7/24"]}));
    let r = req('1', "project", "p1", "read");
    for inside in ["10.1.2.3", "10.255.255.255", "2001:db8:1::5", "2001:db8:1:ffff::1", "192.168.1.200"] {
        assert_eq!(d(&p, &from(r.clone(), inside)), Allow, "{inside}");
    }
    for outside in ["11.0.0.1", "192.168.2.1", "2001:db8:2::1", "::ffff:10.1.2.3", "::1", "127.0.0.1"] {
        assert_eq!(d(&p, &from(r.clone(), outside)), ClientAddressDenied, "{outside}");
    }
    // An address check comes before the object and the ACLs.
    assert_eq!(d(&p, &from(req('1', "experiment", "nope", "read"), "8.8.8.8")), ClientAddressDenied);
    assert_eq!(d(&p, &from(req('1', "project", "p1", "delete"), "8.8.8.8")), ClientAddressDenied);
    // An empty list admits no address.
    let p = scoped(json!({"client_cidrs": []}));
    assert_eq!(d(&p, &r), ClientAddressDenied);
    // /0 and /32, /128.
    let p = scoped(json!({"client_cidrs": ["0.0.0.0/0", "2001:db8::7/128"]}));
    assert_eq!(d(&p, &from(r.clone(), "8.8.8.8")), Allow);
    assert_eq!(d(&p, &from(r.clone(), "2001:db8::7")), Allow);
    assert_eq!(d(&p, &from(r.clone(), "2001:db8::8")), ClientAddressDenied);
    let p = scoped(json!({"client_cidrs": ["::/0"]}));
    assert_eq!(d(&p, &from(r.clone(), "2001:db8::8")), Allow);
    assert_eq!(d(&p, &from(r.clone(), "10.1.2.3")), ClientAddressDenied);
}

// ---------------------------------------------------------------------------
// Derived tokens

fn derived(parent_scope: Value, child_scope: Value) -> Value {
    let mut p = scoped(parent_scope);
    push(
        &mut p,
        "service_tokens",
        json!({"id": "t-child", "name": "child", "org_id": "org-a", "service_account_id": "u1", "token_sha256": digest('c'), "parent_id": "t1", "scope": child_scope}),
    );
    p
}

#[test]
fn derived_tokens_intersect_scopes() {
    let p = derived(
        json!({"grants": [{"object_type": "project", "object_id": "p1", "permissions": ["read", "update"]}]}),
        json!({"grants": [{"object_type": "organization", "object_id": "org-a", "permissions": ["read"]}]}),
    );
    assert_eq!(d(&p, &req('c', "experiment", "e1", "read")), Allow);
    assert_eq!(d(&p, &req('c', "experiment", "e1", "update")), ScopeDenied, "the child's scope");
    assert_eq!(d(&p, &req('c', "experiment", "e3", "read")), ScopeDenied, "the parent's scope");
    assert_eq!(d(&p, &req('1', "experiment", "e1", "update")), Allow);
    // A child without a scope still has its parent's.
    let p = derived(json!({"grants": []}), Value::Null);
    assert_eq!(d(&p, &req('c', "experiment", "e1", "read")), ScopeDenied);
    // Transitively: a grandchild.
    let mut p =
        derived(json!({"grants": [{"object_type": "project", "object_id": "p1", "permissions": ["read"]}]}), json!({}));
    push(
        &mut p,
        "service_tokens",
        json!({"id": "t-grandchild", "name": "gc", "org_id": "org-a", "service_account_id": "u1", "token_sha256": digest('d'), "parent_id": "t-child"}),
    );
    assert_eq!(d(&p, &req('d', "experiment", "e1", "read")), Allow);
    assert_eq!(d(&p, &req('d', "experiment", "e3", "read")), ScopeDenied);
}

#[test]
fn derived_tokens_need_a_valid_parent() {
    let p = derived(json!({}), json!({}));
    assert_eq!(d(&p, &req('c', "project", "p1", "read")), Allow);
    let mut expired = p.clone();
    set(&mut expired, "service_tokens", "t1", "expires_at", json!("2025-06-15T15:06:40Z"));
    assert_eq!(d(&expired, &req('c', "project", "p1", "read")), Unauthenticated);
    assert_eq!(d(&expired, &at(req('c', "project", "p1", "read"), NOW - 1)), Allow);
    let mut early = p.clone();
    set(&mut early, "service_tokens", "t1", "not_before", json!("2025-06-16T00:00:00Z"));
    assert_eq!(d(&early, &req('c', "project", "p1", "read")), Unauthenticated);
    // A missing or left-out parent leaves the child out.
    let mut orphan = p.clone();
    set(&mut orphan, "service_tokens", "t-child", "parent_id", json!("t-nope"));
    assert_eq!(d(&orphan, &req('c', "project", "p1", "read")), Unauthenticated);
    let mut bad_parent = p.clone();
    set(&mut bad_parent, "service_tokens", "t1", "scope", json!({"grants": "all"}));
    assert_eq!(d(&bad_parent, &req('c', "project", "p1", "read")), Unauthenticated);
    assert!(left_out(&bad_parent).contains("service_tokens[3]"));
    // parent_id null: not derived.
    let mut null_parent = p.clone();
    set(&mut null_parent, "service_tokens", "t-child", "parent_id", Value::Null);
    set(&mut null_parent, "service_tokens", "t1", "expires_at", json!("2020-01-01T00:00:00Z"));
    assert_eq!(d(&null_parent, &req('c', "project", "p1", "read")), Allow);
}

#[test]
fn derived_tokens_intersect_client_cidrs() {
    let p =
        derived(json!({"client_cidrs": ["10.0.0.0/8"]}), json!({"client_cidrs": ["10.1.0.0/16", "192.168.1.0/24"]}));
    let r = req('c', "project", "p1", "read");
    assert_eq!(d(&p, &from(r.clone(), "10.1.2.3")), Allow);
    assert_eq!(d(&p, &from(r.clone(), "10.2.0.1")), ClientAddressDenied, "the child's list");
    assert_eq!(d(&p, &from(r.clone(), "192.168.1.1")), ClientAddressDenied, "the parent's list");
    let p = derived(json!({"client_cidrs": ["2001:db8::/32"]}), json!({}));
    assert_eq!(d(&p, &from(r.clone(), "2001:db8::1")), Allow);
    assert_eq!(d(&p, &from(r.clone(), "10.1.2.3")), ClientAddressDenied);
}

#[test]
fn parent_cycles_terminate() {
    let mut p = base();
    push(&mut p, "acls", user_acl("a1", "organization", "org-a", "u1", "read"));
    set(&mut p, "service_tokens", "t1", "parent_id", json!("t2"));
    set(&mut p, "service_tokens", "t2", "parent_id", json!("t1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
    set(&mut p, "service_tokens", "t2", "scope", json!({"grants": []}));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), ScopeDenied);
    set(&mut p, "service_tokens", "t1", "parent_id", json!("t1"));
    assert_eq!(d(&p, &req('1', "project", "p1", "read")), Allow);
}

// ---------------------------------------------------------------------------
// Order of the checks

#[test]
fn checks_come_in_order() {
    let mut p = scoped(json!({"grants": [], "client_cidrs": ["10.0.0.0/8"]}));
    set(&mut p, "service_tokens", "t1", "expires_at", json!("2026-01-01T00:00:00Z"));
    let r = req('1', "experiment", "e1", "update");
    assert_eq!(d(&p, &at(r.clone(), 1_800_000_000_000)), Unauthenticated);
    assert_eq!(d(&p, &from(r.clone(), "8.8.8.8")), ClientAddressDenied);
    assert_eq!(d(&p, &req('1', "experiment", "nope", "update")), UnknownObject);
    assert_eq!(d(&p, &req('1', "experiment", "eb", "update")), PermissionDenied);
    assert_eq!(d(&p, &req('1', "experiment", "e1", "delete")), PermissionDenied);
    assert_eq!(d(&p, &r), ScopeDenied);
    set(&mut p, "service_tokens", "t1", "scope", json!({"client_cidrs": ["10.0.0.0/8"]}));
    assert_eq!(d(&p, &r), Allow);
}

/// Projects, groups and roles keep a `description` (string or null), so a
/// description of another type leaves the entry out, as the loader does;
/// experiments and datasets drop theirs unread.
#[test]
fn a_description_must_be_a_string_where_it_is_kept() {
    let r = req('1', "organization", "org-a", "read");
    let mut p = base();
    push(&mut p, "groups", group("g1", "org-a", &["u1"], &[]));
    push(&mut p, "acls", group_acl("a1", "organization", "org-a", "g1", "read"));
    assert_eq!(d(&p, &r), Allow);
    for description in [json!("on call"), json!(null)] {
        let mut kept = p.clone();
        set(&mut kept, "groups", "g1", "description", description.clone());
        assert_eq!(d(&kept, &r), Allow, "description {description}");
    }
    let mut bad = p.clone();
    set(&mut bad, "groups", "g1", "description", json!(7));
    assert_ne!(d(&bad, &r), Allow);
    assert!(left_out(&bad).contains("groups[0]"), "{}", left_out(&bad));
}
