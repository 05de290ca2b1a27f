use super::*;
use loggate_model::doc::{Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, User};
use loggate_model::{Scope, ScopeGrant, Scopes};

const LOG: ObjectType = ObjectType::ProjectLog;
const WRITABLE: [ObjectType; 3] = [ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];

/// Org `o` with projects `p1`, `p2` (experiment `e2` and dataset `d2` in
/// `p2`), a deleted project `gone`; org `x` with project `px`. User `u` is
/// in group `g`; `acls` are the grants under test.
fn policy(acls: Vec<Acl>) -> CompiledPolicy {
    let mut gone = Project::new("gone", "o", "gone");
    gone.deleted_at = Some(loggate_model::Timestamp::from_unix_ms(1));
    let mut group = Group::new("g", "o", "writers");
    group.member_users.push("u".into());
    let (policy, left_out) = CompiledPolicy::from_doc(PolicyDoc {
        organizations: vec![Organization::new("o", "acme"), Organization::new("x", "globex")],
        projects: vec![
            gone,
            Project::new("p1", "o", "one"),
            Project::new("p2", "o", "two"),
            Project::new("px", "x", "x"),
        ],
        experiments: vec![Experiment::new("e2", "p2", "baseline")],
        datasets: vec![Dataset::new("d2", "p2", "golden")],
        users: vec![User::new("u", "ci", true), User::new("v", "other", true)],
        groups: vec![group],
        acls,
        ..PolicyDoc::default()
    });
    assert!(left_out.is_empty(), "{left_out:?}");
    policy
}

fn grant(id: &str, object_type: ObjectType, object_id: &str, permission: Permission) -> Acl {
    Acl::user_permission(id, object_type, object_id, "u", permission)
}

fn restricted(mut acl: Acl, to: ObjectType) -> Acl {
    acl.restrict_object_type = Some(to);
    acl
}

fn by_group(mut acl: Acl) -> Acl {
    acl.user_id = None;
    acl.group_id = Some("g".into());
    acl
}

fn who() -> Principal {
    Principal::new("u", "o")
}

fn scoped(grants: &[(ObjectType, &str, Permission)]) -> Principal {
    let grants = grants
        .iter()
        .map(|&(object_type, id, p)| ScopeGrant { object_type, object_id: id.into(), permissions: vec![p] })
        .collect();
    Principal { scopes: Scopes::new([Scope { grants: Some(grants), client_cidrs: None }]), ..who() }
}

fn ids(objects: &[ObjectRef]) -> Vec<String> {
    objects.iter().map(|o| format!("{}:{}", o.object_type, o.id)).collect()
}

#[test]
fn a_new_project_log_is_granted_only_by_the_organization() {
    let org_wide =
        policy(vec![by_group(restricted(grant("a", ObjectType::Organization, "o", Permission::Update), LOG))]);
    assert_eq!(org_wide.decide_new(&who(), "o", LOG, Permission::Update), Decision::Allow);
    // Restricted to project logs: says nothing of experiments or projects.
    assert_eq!(
        org_wide.decide_new(&who(), "o", ObjectType::Project, Permission::Update),
        Decision::Deny(DenyReason::MissingPermission)
    );
    let per_project = policy(vec![grant("a", ObjectType::Project, "p1", Permission::Update)]);
    assert_eq!(
        per_project.decide_new(&who(), "o", LOG, Permission::Update),
        Decision::Deny(DenyReason::MissingPermission)
    );
    assert_eq!(
        org_wide.decide_new(&Principal::new("u", "x"), "o", LOG, Permission::Update),
        Decision::Deny(DenyReason::OtherOrganization)
    );
    assert_eq!(org_wide.decide_new(&who(), "nope", LOG, Permission::Update), Decision::Deny(DenyReason::UnknownObject));
}

#[test]
fn a_scope_naming_projects_cannot_name_a_new_one() {
    let p = policy(vec![grant("a", ObjectType::Organization, "o", Permission::Update)]);
    let narrow = scoped(&[(LOG, "p1", Permission::Update)]);
    assert_eq!(p.decide_new(&narrow, "o", LOG, Permission::Update), Decision::Deny(DenyReason::ScopeDenied));
    let org = scoped(&[(ObjectType::Organization, "o", Permission::Update)]);
    assert_eq!(p.decide_new(&org, "o", LOG, Permission::Update), Decision::Allow);
}

#[test]
fn candidates_follow_the_acls_naming_the_principal() {
    let none = policy(vec![Acl::user_permission("a", ObjectType::Organization, "o", "v", Permission::Update)]);
    assert!(none.candidates(&who(), &WRITABLE, 16).is_empty());

    let org = policy(vec![by_group(grant("a", ObjectType::Organization, "o", Permission::Read))]);
    assert_eq!(ids(&org.candidates(&who(), &WRITABLE, 16)), ["project_log:p1", "experiment:e2", "dataset:d2"]);

    let project = policy(vec![grant("a", ObjectType::Project, "p2", Permission::Update)]);
    assert_eq!(ids(&project.candidates(&who(), &WRITABLE, 16)), ["project_log:p2", "experiment:e2", "dataset:d2"]);
    assert_eq!(ids(&project.candidates(&who(), &[ObjectType::Dataset], 16)), ["dataset:d2"]);

    let objects = policy(vec![
        grant("a", ObjectType::Experiment, "e2", Permission::Update),
        grant("b", LOG, "p1", Permission::Update),
        grant("c", LOG, "gone", Permission::Update),
        grant("d", LOG, "px", Permission::Update),
    ]);
    assert_eq!(ids(&objects.candidates(&who(), &WRITABLE, 16)), ["project_log:p1", "experiment:e2"]);
    assert_eq!(ids(&objects.candidates(&who(), &WRITABLE, 1)), ["project_log:p1"]);
}

#[test]
fn the_objects_a_scope_names_are_candidates() {
    let p = policy(vec![grant("a", ObjectType::Organization, "o", Permission::Update)]);
    let narrow = scoped(&[(ObjectType::Dataset, "d2", Permission::Update)]);
    let found = p.candidates(&narrow, &WRITABLE, 16);
    assert_eq!(ids(&found), ["project_log:p1", "experiment:e2", "dataset:d2"]);
    // Deciding them the ordinary way finds the one the scope lets through.
    let allowed: Vec<_> =
        found.iter().filter(|o| p.decide(&narrow, o, Permission::Update).is_allow()).map(|o| o.id.as_str()).collect();
    assert_eq!(allowed, ["d2"]);
}
