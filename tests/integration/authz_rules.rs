//! Table tests: every rule of the permission model (contract: Permission model, seeds 000 and
//! 004) on small hand-written policies.

use loggate_authz::{CompiledPolicy, Decision, DenyReason, Principal};
use loggate_model::TokenDigest;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use serde_json::{Value, json};

use Decision::{Allow, Deny};
use DenyReason::{MissingPermission, OtherOrganization, UnknownObject};
use ObjectType::{Dataset, Experiment, Organization, Project, ProjectLog};
use Permission::{Create, Delete, Read, Update};

/// Two orgs: acme (o1: projects p1, p2, deleted pdel) and other (o2: q1).
fn base() -> Value {
    json!({
        "organizations": [{"id": "o1", "name": "acme"}, {"id": "o2", "name": "other"}],
        "projects": [
            {"id": "p1", "org_id": "o1", "name": "checkout"},
            {"id": "p2", "org_id": "o1", "name": "search"},
            {"id": "pdel", "org_id": "o1", "name": "old", "deleted_at": "2026-01-01T00:00:00Z"},
            {"id": "q1", "org_id": "o2", "name": "checkout"}
        ],
        "experiments": [
            {"id": "e1", "project_id": "p1", "name": "exp"},
            {"id": "e2", "project_id": "p2", "name": "exp"},
            {"id": "edel", "project_id": "pdel", "name": "exp"},
            {"id": "eq", "project_id": "q1", "name": "exp"}
        ],
        "datasets": [
            {"id": "d1", "project_id": "p1", "name": "ds"},
            {"id": "d2", "project_id": "p2", "name": "ds"},
            {"id": "dq", "project_id": "q1", "name": "ds"}
        ],
        "users": [
            {"id": "u", "name": "ci-writer", "service_account": true},
            {"id": "v", "name": "someone-else"}
        ],
        "groups": [], "roles": [], "acls": [], "service_tokens": []
    })
}

/// `base()` with the given groups, roles and ACLs.
fn policy(groups: Value, roles: Value, acls: Value) -> CompiledPolicy {
    let mut doc = base();
    doc["groups"] = groups;
    doc["roles"] = roles;
    doc["acls"] = acls;
    compiled(&doc)
}

/// Loads a policy file's JSON that keeps every rule.
fn compiled(doc: &Value) -> CompiledPolicy {
    let loaded = loggate_model::load::from_json(&doc.to_string()).expect("a policy");
    assert!(loaded.left_out.is_empty(), "{:?}", loaded.left_out);
    CompiledPolicy::compile(loaded.policy)
}

/// A policy whose only ACL is `acl` (principal user `u` unless it says).
fn one_acl(acl: Value) -> CompiledPolicy {
    let mut acl = acl;
    acl["id"] = json!("a1");
    if acl.get("group_id").is_none() && acl.get("user_id").is_none() {
        acl["user_id"] = json!("u");
    }
    policy(json!([]), json!([]), json!([acl]))
}

fn u() -> Principal {
    Principal::new("u", "o1")
}

fn obj(t: ObjectType, id: &str) -> ObjectRef {
    ObjectRef::new(t, id)
}

/// Every object of org o1 that is live, with its type.
fn o1_objects() -> Vec<ObjectRef> {
    vec![
        obj(Organization, "o1"),
        obj(Project, "p1"),
        obj(ProjectLog, "p1"),
        obj(Experiment, "e1"),
        obj(Dataset, "d1"),
        obj(Project, "p2"),
        obj(ProjectLog, "p2"),
        obj(Experiment, "e2"),
        obj(Dataset, "d2"),
    ]
}

/// Asserts which o1 objects allow `perm` for `who`; all others must deny
/// with `MissingPermission`.
fn assert_allowed_exactly(p: &CompiledPolicy, who: &Principal, perm: Permission, allowed: &[ObjectRef]) {
    for o in o1_objects() {
        let want = if allowed.contains(&o) { Allow } else { Deny(MissingPermission) };
        assert_eq!(p.decide(who, &o, perm), want, "{perm} on {o}");
        assert_eq!(p.explain(who, &o, perm).decision, want, "explain {perm} on {o}");
    }
}

#[test]
fn update_on_project_log_allows_logging_and_nothing_else() {
    let p = one_acl(json!({"object_type": "project_log", "object_id": "p1", "permission": "update"}));
    assert_allowed_exactly(&p, &u(), Update, &[obj(ProjectLog, "p1")]);
    for perm in [Create, Read, Delete] {
        assert_allowed_exactly(&p, &u(), perm, &[]);
    }
}

#[test]
fn create_alone_never_allows_a_log_write() {
    let p = one_acl(json!({"object_type": "project_log", "object_id": "p1", "permission": "create"}));
    assert_eq!(p.decide(&u(), &obj(ProjectLog, "p1"), Update), Deny(MissingPermission));
    assert_eq!(p.decide(&u(), &obj(ProjectLog, "p1"), Create), Allow);
    let p = one_acl(json!({"object_type": "project", "object_id": "p1", "permission": "create"}));
    assert_allowed_exactly(&p, &u(), Update, &[]);
}

#[test]
fn update_on_a_project_cascades_to_everything_in_it() {
    let p = one_acl(json!({"object_type": "project", "object_id": "p1", "permission": "update"}));
    let in_p1 = [obj(Project, "p1"), obj(ProjectLog, "p1"), obj(Experiment, "e1"), obj(Dataset, "d1")];
    assert_allowed_exactly(&p, &u(), Update, &in_p1);
}

#[test]
fn acls_on_experiments_and_datasets_apply_to_that_object_only() {
    let p = one_acl(json!({"object_type": "experiment", "object_id": "e1", "permission": "update"}));
    assert_allowed_exactly(&p, &u(), Update, &[obj(Experiment, "e1")]);
    let p = one_acl(json!({"object_type": "dataset", "object_id": "d2", "permission": "delete"}));
    assert_allowed_exactly(&p, &u(), Delete, &[obj(Dataset, "d2")]);
}

#[test]
fn organization_acls_cascade_to_every_project_and_object() {
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update"}));
    assert_allowed_exactly(&p, &u(), Update, &o1_objects());
    // ...but not into another organization's objects
    assert_eq!(p.decide(&u(), &obj(ProjectLog, "q1"), Update), Deny(OtherOrganization));
}

#[test]
fn permissions_imply_nothing_but_themselves() {
    for granted in Permission::ALL {
        let p = one_acl(json!({"object_type": "project", "object_id": "p1", "permission": granted.as_str()}));
        for asked in Permission::ALL {
            let want = if asked == granted { Allow } else { Deny(MissingPermission) };
            assert_eq!(p.decide(&u(), &obj(ProjectLog, "p1"), asked), want, "{granted} -> {asked}");
        }
    }
}

#[test]
fn read_does_not_imply_update_and_update_not_delete_or_create() {
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "read"}));
    assert_allowed_exactly(&p, &u(), Update, &[]);
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update"}));
    assert_allowed_exactly(&p, &u(), Delete, &[]);
    assert_allowed_exactly(&p, &u(), Create, &[]);
    assert_allowed_exactly(&p, &u(), Read, &[]);
}

#[test]
fn org_level_update_restricted_to_project_log() {
    let logs = [obj(ProjectLog, "p1"), obj(ProjectLog, "p2")];
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update",
                           "restrict_object_type": "project_log"}));
    assert_allowed_exactly(&p, &u(), Update, &logs);
    // the same restriction on the role's permission entry
    let roles = json!([{"id": "r", "org_id": null, "name": "logger",
        "member_permissions": [{"permission": "update", "restrict_object_type": "project_log"}]}]);
    let acls = json!([{"id": "a", "object_type": "organization", "object_id": "o1", "user_id": "u", "role_id": "r"}]);
    let p = policy(json!([]), roles.clone(), acls);
    assert_allowed_exactly(&p, &u(), Update, &logs);
    // a role grant carries no restriction of its own: such an ACL is left
    // out (it grants nothing), whatever it would have restricted to
    let mut doc = base();
    doc["roles"] = roles;
    doc["acls"] = json!([
        {"id": "a", "object_type": "organization", "object_id": "o1", "user_id": "u", "role_id": "r",
         "restrict_object_type": "project_log"}
    ]);
    let loaded = loggate_model::load::from_json(&doc.to_string()).unwrap();
    assert_eq!(loaded.left_out.len(), 1, "{:?}", loaded.left_out);
    let p = CompiledPolicy::compile(loaded.policy);
    assert_allowed_exactly(&p, &u(), Update, &[]);
}

#[test]
fn restriction_to_the_project_type_does_not_cascade() {
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update",
                           "restrict_object_type": "project"}));
    assert_allowed_exactly(&p, &u(), Update, &[obj(Project, "p1"), obj(Project, "p2")]);
}

#[test]
fn nested_groups_three_deep() {
    // g1 contains g2 contains g3 contains u
    let groups = json!([
        {"id": "g1", "org_id": "o1", "name": "all", "member_groups": ["g2"]},
        {"id": "g2", "org_id": "o1", "name": "eng", "member_groups": ["g3"]},
        {"id": "g3", "org_id": "o1", "name": "ci", "member_users": ["u"]},
        {"id": "g4", "org_id": "o1", "name": "top", "member_users": ["v"], "member_groups": ["g1"]}
    ]);
    let acls = json!([
        {"id": "a1", "object_type": "project_log", "object_id": "p1", "group_id": "g1", "permission": "update"},
        {"id": "a4", "object_type": "project_log", "object_id": "p2", "group_id": "g4", "permission": "update"},
    ]);
    let p = policy(groups, json!([]), acls);
    // u is in g3 ⊂ g2 ⊂ g1 ⊂ g4
    assert_allowed_exactly(&p, &u(), Update, &[obj(ProjectLog, "p1"), obj(ProjectLog, "p2")]);
    // membership does not flow downwards: v (in g4 only) is not in g1
    let v = Principal::new("v", "o1");
    assert_allowed_exactly(&p, &v, Update, &[obj(ProjectLog, "p2")]);
    let e = p.explain(&u(), &obj(ProjectLog, "p1"), Update);
    assert_eq!(e.decision, Allow);
    assert!(e.lines.iter().any(|l| l.contains("acl a1")), "{:?}", e.lines);
    assert!(e.lines.iter().any(|l| l == "group chain: u -> ci (g3) -> eng (g2) -> all (g1)"), "{:?}", e.lines);
}

#[test]
fn group_cycles_terminate_and_share_members() {
    let groups = json!([
        {"id": "g1", "org_id": "o1", "name": "a", "member_groups": ["g2"]},
        {"id": "g2", "org_id": "o1", "name": "b", "member_users": ["u"], "member_groups": ["g3"]},
        {"id": "g3", "org_id": "o1", "name": "c", "member_groups": ["g1", "g3"]},
        {"id": "g5", "org_id": "o1", "name": "unrelated", "member_groups": ["g5"]}
    ]);
    let acls = json!([
        {"id": "a1", "object_type": "project", "object_id": "p1", "group_id": "g1", "permission": "update"},
        {"id": "a3", "object_type": "project", "object_id": "p2", "group_id": "g3", "permission": "update"},
        {"id": "a5", "object_type": "organization", "object_id": "o1", "group_id": "g5", "permission": "update"},
    ]);
    let p = policy(groups, json!([]), acls);
    let want: Vec<_> = o1_objects().into_iter().filter(|o| o.object_type != Organization).collect();
    assert_allowed_exactly(&p, &u(), Update, &want);
    let e = p.explain(&u(), &obj(Project, "p2"), Update);
    assert!(e.lines.iter().any(|l| l == "group chain: u -> b (g2) -> a (g1) -> c (g3)"), "{:?}", e.lines);
}

#[test]
fn roles_inherit_member_roles_transitively_and_cycles_terminate() {
    let roles = json!([
        {"id": "writer", "org_id": null, "name": "writer", "member_roles": ["logger"]},
        {"id": "logger", "org_id": null, "name": "logger", "member_roles": ["base", "writer"],
         "member_permissions": [{"permission": "update", "restrict_object_type": "project_log"}]},
        {"id": "base", "org_id": null, "name": "base", "member_roles": ["base"],
         "member_permissions": [{"permission": "read"}]},
    ]);
    let acls = json!([{"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u", "role_id": "writer"}]);
    let p = policy(json!([]), roles, acls);
    assert_allowed_exactly(&p, &u(), Update, &[obj(ProjectLog, "p1")]);
    let in_p1 = [obj(Project, "p1"), obj(ProjectLog, "p1"), obj(Experiment, "e1"), obj(Dataset, "d1")];
    assert_allowed_exactly(&p, &u(), Read, &in_p1);
    assert_allowed_exactly(&p, &u(), Delete, &[]);
    let e = p.explain(&u(), &obj(ProjectLog, "p1"), Update);
    assert!(
        e.lines.iter().any(|l| l.starts_with(
            "role chain: writer -> logger (role logger holds update restricted to project_log)"
        )),
        "{:?}",
        e.lines
    );
    let e = p.explain(&u(), &obj(Experiment, "e1"), Read);
    assert!(e.lines.iter().any(|l| l.starts_with("role chain: writer -> logger -> base")), "{:?}", e.lines);
}

#[test]
fn a_token_never_reaches_another_organization() {
    // u is granted everything on o2 too, but its token is confined to o1
    let acls = json!([
        {"id": "a1", "object_type": "organization", "object_id": "o2", "user_id": "u", "permission": "update"},
        {"id": "a2", "object_type": "project", "object_id": "q1", "user_id": "u", "permission": "update"},
        {"id": "a3", "object_type": "organization", "object_id": "o1", "user_id": "u", "permission": "update"},
    ]);
    let p = policy(json!([]), json!([]), acls);
    for o in
        [obj(Organization, "o2"), obj(Project, "q1"), obj(ProjectLog, "q1"), obj(Experiment, "eq"), obj(Dataset, "dq")]
    {
        assert_eq!(p.decide(&u(), &o, Update), Deny(OtherOrganization), "{o}");
        let e = p.explain(&u(), &o, Update);
        assert!(e.lines[0].contains("confined to organization o1"), "{:?}", e.lines);
    }
    let in_o2 = Principal::new("u", "o2");
    assert_eq!(p.decide(&in_o2, &obj(ProjectLog, "q1"), Update), Allow);
    assert_eq!(p.decide(&in_o2, &obj(ProjectLog, "p1"), Update), Deny(OtherOrganization));
    let nowhere = Principal::new("u", "o9");
    assert_eq!(p.decide(&nowhere, &obj(ProjectLog, "p1"), Update), Deny(OtherOrganization));
}

#[test]
fn deleted_projects_and_their_objects_are_unknown() {
    let acls = json!([
        {"id": "a1", "object_type": "organization", "object_id": "o1", "user_id": "u", "permission": "update"},
        {"id": "a2", "object_type": "project", "object_id": "pdel", "user_id": "u", "permission": "update"},
    ]);
    let p = policy(json!([]), json!([]), acls);
    for o in [obj(Project, "pdel"), obj(ProjectLog, "pdel"), obj(Experiment, "edel")] {
        assert_eq!(p.decide(&u(), &o, Update), Deny(UnknownObject), "{o}");
        assert_eq!(p.object_org(&o), None);
    }
    assert_eq!(p.project_by_name("o1", "old"), None);
    assert_eq!(p.experiment_by_name("pdel", "exp"), None);
}

#[test]
fn unknown_objects_are_denied_as_unknown() {
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update"}));
    for o in [
        obj(ProjectLog, "nope"),
        obj(Project, "e1"),
        obj(Experiment, "p1"),
        obj(Dataset, "e1"),
        obj(Organization, "p1"),
        obj(ObjectType::Prompt, "x"),
        obj(ObjectType::Group, "g1"),
    ] {
        assert_eq!(p.decide(&u(), &o, Update), Deny(UnknownObject), "{o}");
        let e = p.explain(&u(), &o, Update);
        assert!(e.lines[0].contains("unknown"), "{:?}", e.lines);
    }
}

#[test]
fn unknown_principals_hold_nothing() {
    let p = one_acl(json!({"object_type": "organization", "object_id": "o1", "permission": "update"}));
    let ghost = Principal::new("ghost", "o1");
    assert_allowed_exactly(&p, &ghost, Update, &[]);
}

#[test]
fn explain_a_denial_lists_what_is_held_and_what_is_missing() {
    let acls = json!([
        {"id": "a1", "object_type": "project", "object_id": "p1", "user_id": "u", "permission": "read"},
        {"id": "a2", "object_type": "project_log", "object_id": "p1", "user_id": "u", "permission": "create"},
    ]);
    let p = policy(json!([]), json!([]), acls);
    let e = p.explain(&u(), &obj(ProjectLog, "p1"), Update);
    assert_eq!(e.decision, Deny(MissingPermission));
    assert_eq!(
        e.lines,
        vec![
            "deny: user u does not hold update on project_log:p1".to_string(),
            "holds on project_log:p1: create, read".to_string(),
            "missing: update".to_string(),
        ]
    );
    let e = p.explain(&u(), &obj(Project, "p1"), Read);
    assert_eq!(e.decision, Allow);
    assert_eq!(
        e.lines,
        vec![
            "allow: acl a1 on project:p1 grants read on project:p1".to_string(),
            "principal: user u is named by the acl".to_string(),
            "grant: permission read set on the acl".to_string(),
        ]
    );
}

#[test]
fn identities_by_token_digest() {
    let token = "bt-st-abcdefghijklmnopqrstuvwxyz012345";
    let other = "bt-st-abcdefghijklmnopqrstuvwxyz999999";
    let mut doc = base();
    doc["service_tokens"] = json!([
        {"id": "t1", "name": "ci", "org_id": "o1", "service_account_id": "u",
         "token_sha256": TokenDigest::of(token).to_hex(), "expires_at": "2030-01-01T00:00:01+01:00"},
        {"id": "t2", "name": "forever", "org_id": "o2", "service_account_id": "v",
         "token_sha256": TokenDigest::of(other).to_hex()}
    ]);
    let p = compiled(&doc);
    let id = p.identity(&TokenDigest::of(token)).expect("known token");
    assert_eq!((id.token_id.as_str(), id.token_name.as_str()), ("t1", "ci"));
    assert_eq!((id.org_id.as_str(), id.user_id.as_str()), ("o1", "u"));
    assert_eq!(id.expires_at.map(|t| t.unix_ms()), Some(1_893_456_001_000 - 3_600_000));
    let id2 = p.identity(&TokenDigest::of(other)).expect("known token");
    assert_eq!((id2.token_id.as_str(), id2.org_id.as_str(), id2.expires_at), ("t2", "o2", None));
    assert_eq!(p.identity(&TokenDigest::of("bt-st-unknownunknownunknownunknown00")), None);
    // same bucket (first 8 bytes), different digest
    let mut near = TokenDigest::of(token);
    near.0[31] ^= 1;
    assert_eq!(p.identity(&near), None);
    assert_eq!(Principal::from(&id), Principal::new("u", "o1"));
}

#[test]
fn name_lookups() {
    let p = policy(json!([]), json!([]), json!([]));
    assert_eq!(p.org_by_name("acme"), Some("o1"));
    assert_eq!(p.org_by_name("nope"), None);
    assert_eq!(p.project_by_name("o1", "checkout"), Some("p1"));
    assert_eq!(p.project_by_name("o2", "checkout"), Some("q1"));
    assert_eq!(p.project_by_name("o2", "search"), None);
    assert_eq!(p.project_by_name("o9", "checkout"), None);
    assert_eq!(p.experiment_by_name("p2", "exp"), Some("e2"));
    assert_eq!(p.dataset_by_name("p1", "ds"), Some("d1"));
    assert_eq!(p.dataset_by_name("p1", "exp"), None);
    assert_eq!(p.object_org(&obj(Experiment, "eq")), Some("o2"));
    assert_eq!(p.object_org(&obj(ProjectLog, "p2")), Some("o1"));
    assert_eq!(p.object_org(&obj(Organization, "o2")), Some("o2"));
    assert_eq!(p.to_doc().projects.len(), 4);
}

#[test]
fn invalid_entries_are_left_out_and_named() {
    let mut doc = base();
    doc["acls"] = json!([
        {"id": "a1", "object_type": "project_log", "object_id": "p1", "user_id": "u", "group_id": "g", "permission": "update"},
        {"id": "a2", "object_type": "project_log", "object_id": "p9", "user_id": "u"}
    ]);
    let loaded = loggate_model::load::from_json(&doc.to_string()).expect("a policy");
    let named: Vec<String> = loaded.left_out.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        named,
        [
            "acls[0]: has both user_id and group_id; exactly one is allowed",
            "acls[1]: has neither permission nor role_id; exactly one is required"
        ]
    );
    assert!(CompiledPolicy::compile(loaded.policy).to_doc().acls.is_empty());
}
