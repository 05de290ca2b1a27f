//! Learning beside a compiled policy (`CompiledPolicy::learn`) against
//! compiling the document with the learned entries added (what the file
//! store did before): every decision, explanation, candidate list and name
//! lookup must be the same.

use loggate_authz::{CompiledPolicy, Learning, Principal};
use loggate_model::doc::{
    Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, Role, RolePermission, User,
};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Scope, ScopeGrant, Scopes};

fn base() -> PolicyDoc {
    let mut writers = Group::new("g1", "o1", "writers");
    writers.member_users = vec!["u2".into()];
    let mut theirs = Group::new("g2", "o2", "theirs");
    theirs.member_users = vec!["u1".into()];
    let mut logger = Role::new("r1", Some("o1".into()), "logger");
    logger.member_permissions =
        vec![RolePermission { permission: Permission::Update, restrict_object_type: Some(ObjectType::ProjectLog) }];
    let mut gone = Project::new("p9", "o1", "gone");
    gone.deleted_at = Some(loggate_model::Timestamp::from_unix_ms(0));
    PolicyDoc {
        organizations: vec![Organization::new("o1", "acme"), Organization::new("o2", "other")],
        projects: vec![Project::new("p1", "o1", "checkout"), gone, Project::new("q1", "o2", "theirs")],
        experiments: vec![Experiment::new("e1", "p1", "exp")],
        users: vec![User::new("u1", "ci", true), User::new("u2", "dev", false)],
        groups: vec![writers, theirs],
        roles: vec![logger],
        acls: vec![Acl::user_permission("a1", ObjectType::Project, "p1", "u1", Permission::Read)],
        ..PolicyDoc::default()
    }
}

fn group_role(id: &str, object_type: ObjectType, object_id: &str, group: &str, role: &str) -> Acl {
    Acl {
        id: id.into(),
        object_type,
        object_id: object_id.into(),
        user_id: None,
        group_id: Some(group.into()),
        permission: None,
        role_id: Some(role.into()),
        restrict_object_type: None,
    }
}

fn learning() -> Learning {
    Learning {
        projects: vec![
            Project::new("p2", "o1", "new"),
            Project::new("p1", "o1", "shadowed"), // known: the document wins
            Project::new("p3", "nowhere", "orphan"),
            Project::new("p4", "o1", "checkout"), // a name the document has
        ],
        experiments: vec![
            Experiment::new("e2", "p2", "exp"),
            Experiment::new("e3", "p1", "exp"), // a name the document has in p1
            Experiment::new("e4", "p1", "other"),
            Experiment::new("e5", "p9", "in a deleted project"),
            Experiment::new("e6", "p404", "orphan"),
        ],
        datasets: vec![Dataset::new("d2", "p2", "ds"), Dataset::new("d3", "p1", "ds")],
        acls: vec![
            Acl::user_permission("l1", ObjectType::Project, "p2", "u1", Permission::Update),
            Acl::user_permission("l2", ObjectType::Experiment, "e4", "u1", Permission::Delete),
            Acl::user_permission("l3", ObjectType::Dataset, "d3", "u404", Permission::Read),
            group_role("l4", ObjectType::ProjectLog, "p2", "g1", "r1"),
            group_role("l5", ObjectType::Experiment, "e2", "g2", "r1"), // a group of another organization
            Acl::user_permission("l6", ObjectType::Dataset, "d2", "u2", Permission::Create),
        ],
    }
}

/// The document with the learned entries added, each whose id it lacks.
fn added(mut doc: PolicyDoc, l: &Learning) -> PolicyDoc {
    for p in &l.projects {
        if !doc.projects.iter().any(|x| x.id == p.id) {
            doc.projects.push(p.clone());
        }
    }
    for e in &l.experiments {
        if !doc.experiments.iter().any(|x| x.id == e.id) {
            doc.experiments.push(e.clone());
        }
    }
    for d in &l.datasets {
        if !doc.datasets.iter().any(|x| x.id == d.id) {
            doc.datasets.push(d.clone());
        }
    }
    doc.acls.extend(l.acls.iter().cloned());
    doc
}

#[test]
fn learning_beside_the_policy_is_compiling_it_in() {
    let (compiled, left_out) = CompiledPolicy::from_doc(base());
    assert!(left_out.is_empty(), "{left_out:?}");
    // In two steps, as discoveries come one at a time.
    let l = learning();
    let first = Learning { projects: l.projects.clone(), ..Learning::default() };
    let overlay = compiled.learn(&first).learn(&l);
    let (whole, _) = CompiledPolicy::from_doc(added(base(), &l));

    let scoped = {
        let grant = ScopeGrant {
            object_type: ObjectType::Project,
            object_id: "p2".into(),
            permissions: vec![Permission::Update, Permission::Read],
        };
        let mut p = Principal::new("u1", "o1");
        p.scopes = Scopes::new([Scope { grants: Some(vec![grant]), client_cidrs: None }]);
        p
    };
    let principals = [
        Principal::new("u1", "o1"),
        Principal::new("u2", "o1"),
        Principal::new("u1", "o2"),
        Principal::new("u404", "o1"),
        scoped,
    ];
    let mut objects = Vec::new();
    for id in ["p1", "p2", "p3", "p4", "p9", "q1", "o1"] {
        for t in [ObjectType::Project, ObjectType::ProjectLog, ObjectType::Organization] {
            objects.push(ObjectRef::new(t, id));
        }
    }
    for id in ["e1", "e2", "e3", "e4", "e5", "e6"] {
        objects.push(ObjectRef::new(ObjectType::Experiment, id));
    }
    for id in ["d2", "d3", "d404"] {
        objects.push(ObjectRef::new(ObjectType::Dataset, id));
    }
    let mut allowed = 0;
    for who in &principals {
        for object in &objects {
            for permission in Permission::ALL {
                let d = overlay.decide(who, object, permission);
                assert_eq!(d, whole.decide(who, object, permission), "{who:?} {object} {permission}");
                assert_eq!(
                    overlay.explain(who, object, permission),
                    whole.explain(who, object, permission),
                    "{who:?} {object} {permission}"
                );
                allowed += usize::from(d.is_allow());
            }
            assert_eq!(overlay.object_org(object), whole.object_org(object), "{object}");
        }
        let types = [ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
        assert_eq!(overlay.candidates(who, &types, 100), whole.candidates(who, &types, 100), "{who:?}");
    }
    assert!(allowed > 10, "the learned grants allow something: {allowed}");
    for (org, name) in [("o1", "new"), ("o1", "checkout"), ("o1", "shadowed"), ("o2", "new")] {
        assert_eq!(overlay.project_by_name(org, name), whole.project_by_name(org, name), "{org} {name}");
    }
    for (project, name) in [("p1", "exp"), ("p1", "other"), ("p2", "exp"), ("p9", "in a deleted project")] {
        assert_eq!(overlay.experiment_by_name(project, name), whole.experiment_by_name(project, name));
    }
    for (project, name) in [("p1", "ds"), ("p2", "ds")] {
        assert_eq!(overlay.dataset_by_name(project, name), whole.dataset_by_name(project, name));
    }
    assert!(overlay.knows(ObjectType::Project, "p2") && !overlay.knows(ObjectType::Project, "p3"));
    assert!(!compiled.knows(ObjectType::Project, "p2"), "the policy learned from is unchanged");
}
