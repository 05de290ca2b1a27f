use serde_json::{Value, json};

use super::*;

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const DIGEST2: &str = "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Two organizations; o1 has a project, an experiment, a dataset, a user
/// with a token, a group and a role, and ACLs using them.
fn base() -> Value {
    json!({
        "organizations": [{"id": "o1", "name": "acme"}, {"id": "o2", "name": "other"}],
        "projects": [{"id": "p1", "org_id": "o1", "name": "checkout", "created": "2026-01-01T00:00:00Z"},
                     {"id": "p2", "org_id": "o2", "name": "checkout"}],
        "experiments": [{"id": "e1", "project_id": "p1", "name": "exp"}],
        "datasets": [{"id": "d1", "project_id": "p1", "name": "ds"}],
        "users": [{"id": "u1", "name": "ci", "service_account": true}, {"id": "u2"}],
        "groups": [{"id": "g1", "org_id": "o1", "name": "writers", "member_users": ["u1"]},
                   {"id": "g2", "org_id": "o2", "name": "theirs", "member_users": ["u1"]}],
        "roles": [{"id": "r1", "org_id": "o1", "name": "logger",
                   "member_permissions": [{"permission": "update", "restrict_object_type": "project_log"}]},
                  {"id": "r2", "org_id": null, "name": "system", "member_permissions": [{"permission": "read"}]},
                  {"id": "r3", "org_id": "o2", "name": "theirs", "member_permissions": [{"permission": "delete"}]}],
        "acls": [{"id": "a1", "object_type": "project_log", "object_id": "p1", "user_id": "u1", "permission": "update"},
                 {"id": "a2", "object_type": "organization", "object_id": "o1", "group_id": "g1", "role_id": "r1"},
                 {"id": "a3", "object_type": "prompt", "object_id": "anything", "user_id": "u1", "permission": "read"}],
        "service_tokens": [{"id": "t1", "name": "ci", "org_id": "o1", "service_account_id": "u1",
                            "token_sha256": DIGEST, "expires_at": "2030-01-01T00:00:00Z"}]
    })
}

fn load(v: &Value) -> Loaded {
    from_json(&v.to_string()).expect("a policy")
}

fn left_out(v: &Value) -> Vec<String> {
    load(v).left_out.iter().map(|e| e.to_string()).collect()
}

fn ids<T>(v: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    v.iter().map(|e| id(e).to_owned()).collect()
}

#[test]
fn the_fixture_loads_whole() {
    let l = load(&base());
    assert_eq!(l.left_out, vec![]);
    assert_eq!(l.policy.to_doc().acls.len(), 3);
    assert!(from_json("{}").unwrap().left_out.is_empty());
}

#[test]
fn what_is_not_a_policy_fails_whole() {
    for bad in ["", "[]", "{\"acls\": {}}", "{\"aclz\": []}", "{\"acls\": [1,", "null"] {
        assert!(from_json(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_unknown_field_leaves_its_entry_out_and_names_it() {
    let mut v = base();
    v["acls"].as_array_mut().unwrap().push(json!({"id": "a9", "object_type": "organization", "object_id": "o1",
        "user_id": "u1", "permission": "update", "restrict_object_types": "experiment"}));
    let out = left_out(&v);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("acls[3]: unknown field `restrict_object_types`"), "{out:?}");
    assert!(!out[0].contains("line"), "no position inside the entry: {out:?}");
    assert_eq!(ids(&load(&v).policy.to_doc().acls, |a| &a.id), ["a1", "a2", "a3"]);
}

#[test]
fn fields_of_the_braintrust_schema_are_accepted_and_dropped() {
    let mut v = base();
    v["organizations"][0]["api_url"] = json!("https://api.example");
    v["users"][0]["email"] = json!("ci@example.com");
    v["acls"][0]["_object_org_id"] = json!("o1");
    v["service_tokens"][0]["preview_name"] = json!("bt-st-abcd…");
    assert_eq!(left_out(&v), Vec::<String>::new());
    let exported = serde_json::to_value(load(&v).policy.to_doc()).unwrap();
    assert!(exported["users"][0].get("email").is_none());
}

#[test]
fn wrong_types_and_vocabularies_leave_the_entry_out() {
    let mut v = base();
    v["users"][1]["service_account"] = json!("yes");
    v["roles"][0]["member_permissions"][0]["permission"] = json!("updte");
    v["service_tokens"][0]["expires_at"] = json!("next year");
    let out = left_out(&v);
    assert!(out.iter().any(|e| e.starts_with("users[1]: invalid type")), "{out:?}");
    assert!(out.iter().any(|e| e.starts_with("roles[0]: unknown permission 'updte'")), "{out:?}");
    assert!(out.iter().any(|e| e.starts_with("service_tokens[0]: 'next year' is not an RFC 3339")), "{out:?}");
    // r1 went, so the ACL granting it goes too.
    assert!(out.iter().any(|e| e == "acls[1]: role_id: unknown role 'r1'"), "{out:?}");
}

#[test]
fn a_role_names_its_organization_or_null() {
    let mut v = base();
    v["roles"][1].as_object_mut().unwrap().remove("org_id");
    let out = left_out(&v);
    assert_eq!(out, ["roles[1]: missing field `org_id` (write null for none)"]);
}

#[test]
fn a_digest_is_never_echoed() {
    let mut v = base();
    v["service_tokens"][0]["token_sha256"] = json!("SECRET-LOOKING-VALUE");
    let out = left_out(&v);
    assert!(out[0].contains("64 lower-case hex"), "{out:?}");
    assert!(!out.iter().any(|e| e.contains("SECRET")), "{out:?}");
}

#[test]
fn a_removed_user_takes_its_token_and_acls_with_it() {
    let mut v = base();
    v["users"].as_array_mut().unwrap().remove(0);
    let l = load(&v);
    let out: Vec<String> = l.left_out.iter().map(|e| e.to_string()).collect();
    assert!(l.policy.to_doc().service_tokens.is_empty(), "{out:?}");
    assert!(out.contains(&"service_tokens[0]: service_account_id: unknown user 'u1'".to_string()), "{out:?}");
    assert!(out.contains(&"groups[0].member_users[0]: unknown user 'u1' (removed)".to_string()), "{out:?}");
    assert_eq!(ids(&l.policy.to_doc().acls, |a| &a.id), ["a2"]);
    // The group stays, with its other members.
    assert_eq!(ids(&l.policy.to_doc().groups, |g| &g.id), ["g1", "g2"]);
}

#[test]
fn principals_never_cross_organizations() {
    let mut v = base();
    let acls = v["acls"].as_array_mut().unwrap();
    acls.push(
        json!({"id": "x1", "object_type": "project", "object_id": "p1", "group_id": "g2", "permission": "delete"}),
    );
    acls.push(json!({"id": "x2", "object_type": "project", "object_id": "p1", "user_id": "u1", "role_id": "r3"}));
    acls.push(json!({"id": "x3", "object_type": "project", "object_id": "p1", "user_id": "u1", "role_id": "r2"}));
    v["groups"][0]["member_groups"] = json!(["g2"]);
    v["roles"][0]["member_roles"] = json!(["r3"]);
    let l = load(&v);
    let out: Vec<String> = l.left_out.iter().map(|e| e.to_string()).collect();
    assert!(
        out.iter().any(|e| e.starts_with("acls[3]: group_id: group 'g2' belongs to another organization")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|e| e.starts_with("acls[4]: role_id: role 'r3' belongs to another organization")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|e| e.starts_with("groups[0]: member group 'g2' belongs to another organization")),
        "{out:?}"
    );
    assert!(out.iter().any(|e| e.starts_with("roles[0]: member role 'r3' belongs to another organization")), "{out:?}");
    // g1 and r1 went, and with them a2 (which needs both); the system role
    // r2 is usable anywhere.
    assert_eq!(ids(&l.policy.to_doc().acls, |a| &a.id), ["a1", "a3", "x3"]);
}

#[test]
fn a_role_grant_carries_no_restriction() {
    let mut v = base();
    v["acls"][1]["restrict_object_type"] = json!("project_log");
    let out = left_out(&v);
    assert_eq!(out, ["acls[1]: has role_id and restrict_object_type; a role grant carries no restriction"]);
}

#[test]
fn acls_need_exactly_one_principal_and_one_grant() {
    let mut v = base();
    v["acls"][0]["group_id"] = json!("g1");
    v["acls"][2]["permission"] = Value::Null;
    let out = left_out(&v);
    assert_eq!(
        out,
        [
            "acls[0]: has both user_id and group_id; exactly one is allowed",
            "acls[2]: has neither permission nor role_id; exactly one is required"
        ]
    );
}

#[test]
fn ids_are_unique_and_digests_too() {
    let mut v = base();
    v["projects"].as_array_mut().unwrap().push(json!({"id": "p1", "org_id": "o1", "name": "again"}));
    let tokens = v["service_tokens"].as_array_mut().unwrap();
    tokens.push(json!({"id": "t2", "name": "dup", "org_id": "o1", "service_account_id": "u2", "token_sha256": DIGEST}));
    tokens.push(json!({"id": "t3", "name": "ok", "org_id": "o1", "service_account_id": "u2", "token_sha256": DIGEST2}));
    let out = left_out(&v);
    assert!(out.contains(&"projects[2]: duplicate id 'p1' (also projects[0])".to_string()), "{out:?}");
    assert!(out.iter().any(|e| e.starts_with("service_tokens[1]: token_sha256 is the same")), "{out:?}");
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn missing_parents_take_their_children() {
    let mut v = base();
    v["projects"][0]["org_id"] = json!("o9");
    let l = load(&v);
    assert!(l.policy.to_doc().experiments.is_empty() && l.policy.to_doc().datasets.is_empty());
    assert_eq!(ids(&l.policy.to_doc().acls, |a| &a.id), ["a2", "a3"]);
}

#[test]
fn deleted_entries_stay_loaded_with_their_time() {
    let mut v = base();
    for (k, i) in [("groups", 0), ("roles", 0), ("experiments", 0), ("datasets", 0), ("projects", 1)] {
        v[k][i]["deleted_at"] = json!("2026-11-01T00:00:00Z");
    }
    let l = load(&v);
    assert!(l.left_out.is_empty(), "{:?}", l.left_out);
    assert!(l.policy.to_doc().groups[0].deleted_at.is_some() && l.policy.to_doc().experiments[0].deleted_at.is_some());
}

#[test]
fn strict_refuses_any_left_out_entry() {
    let mut v = base();
    v["acls"][0]["user_id"] = json!("nobody");
    let errors = load(&v).strict().unwrap_err();
    assert_eq!(errors.to_string(), "acls[0]: user_id: unknown user 'nobody'");
    assert!(load(&base()).strict().is_ok());
}

#[test]
fn reading_from_a_reader_is_reading_the_text() {
    let mut v = base();
    v["acls"].as_array_mut().unwrap().push(json!({"id": "a9", "object_type": "project", "object_id": "p1",
                                                  "user_id": "u1", "permission": "read", "extra": 1}));
    let text = format!("  \n{v}");
    let from_text = from_json(&text).unwrap();
    let from_reader = from_reader(std::io::BufReader::with_capacity(7, text.as_bytes())).unwrap();
    assert_eq!(from_reader.policy, from_text.policy);
    assert_eq!(from_reader.left_out, from_text.left_out);
    assert_eq!(from_reader.left_out.len(), 1);
    for bad in [
        "",
        "  ",
        "[]",
        "{\"acls\": {}}",
        "{\"aclz\": []}",
        "{\"acls\": [1,",
        "null",
        "{} x",
        "{\"acls\": [],}",
        "{\"acls\": [1,]}",
        "{\"acls\": [{]}",
        "{\"acls\": null}",
        "{\"acls\": [] \"users\": []}",
        "{\"acls\": [], \"acls\": []}",
        "{acls: []}",
        "{\"acls\" []}",
        "{\"acls\": [{\"id\": \"a\"}",
        "{\"acls\": [\"]\"",
        "{\"acls\": [1 2]}",
        "\u{c}{}",
        "{\"acls\": [{\"id\": \"\\u12\"}]}",
    ] {
        assert!(super::from_reader(bad.as_bytes()).is_err(), "{bad}");
        assert!(from_json(bad).is_err(), "{bad}");
    }
    for good in [
        "{}",
        " { } ",
        "{\"acls\":[]}",
        "{\"acls\": [1, \"x\", null, [], {\"a\": \"]}\\\"\"}]}",
        "{\"users\": [{\"id\": \"u\\\"]\"}, {\"id\": \"v\", \"name\": \"{\"}], \"acls\": [true]}\n",
    ] {
        let a = super::from_reader(std::io::BufReader::with_capacity(3, good.as_bytes())).unwrap();
        let b = from_json(good).unwrap();
        assert_eq!((a.policy, a.left_out), (b.policy, b.left_out), "{good}");
    }
}
