//! Validation of a policy document: every rule `loggate check` enforces,
//! each violation named by its path (e.g. `acls[3].group_id`).

use std::fmt;

/// One violation: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// JSON path of the offending entry or field, e.g. `acls[3].group_id`.
    pub field: String,
    pub message: String,
}

/// Every violation found in a document (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

use std::collections::{HashMap, HashSet};

use crate::token::TokenDigest;
use crate::doc::PolicyDoc;
use crate::types::{ObjectType, Permission};

/// Checks every rule of a policy document and returns all violations.
///
/// Rules: ids are non-empty and unique per collection; every reference
/// (org, project, user, group, role) names an existing entry; permission and
/// object-type strings are members of their vocabularies; an ACL has exactly
/// one principal (`user_id`/`group_id`) and exactly one grant
/// (`permission`/`role_id`) and names an existing object when its type is
/// one the policy knows (organization, project, project_log, experiment,
/// dataset); a service token names an existing org and service account, has
/// a lower-case 64-hex-digit digest that no other token has, and an RFC 3339
/// expiry if any.
pub fn validate(doc: &PolicyDoc) -> Result<(), PolicyErrors> {
    let mut v = Validator::default();

    let orgs = v.ids("organizations", doc.organizations.iter().map(|o| o.id.as_str()));
    let projects = v.ids("projects", doc.projects.iter().map(|p| p.id.as_str()));
    let experiments = v.ids("experiments", doc.experiments.iter().map(|e| e.id.as_str()));
    let datasets = v.ids("datasets", doc.datasets.iter().map(|d| d.id.as_str()));
    let users = v.ids("users", doc.users.iter().map(|u| u.id.as_str()));
    let groups = v.ids("groups", doc.groups.iter().map(|g| g.id.as_str()));
    let roles = v.ids("roles", doc.roles.iter().map(|r| r.id.as_str()));
    v.ids("acls", doc.acls.iter().map(|a| a.id.as_str()));
    v.ids("service_tokens", doc.service_tokens.iter().map(|t| t.id.as_str()));

    for (i, p) in doc.projects.iter().enumerate() {
        v.exists(&orgs, &p.org_id, || format!("projects[{i}].org_id"), "organization");
    }
    for (i, e) in doc.experiments.iter().enumerate() {
        v.exists(&projects, &e.project_id, || format!("experiments[{i}].project_id"), "project");
    }
    for (i, d) in doc.datasets.iter().enumerate() {
        v.exists(&projects, &d.project_id, || format!("datasets[{i}].project_id"), "project");
    }
    for (i, g) in doc.groups.iter().enumerate() {
        v.exists(&orgs, &g.org_id, || format!("groups[{i}].org_id"), "organization");
        for (j, u) in g.member_users.iter().enumerate() {
            v.exists(&users, u, || format!("groups[{i}].member_users[{j}]"), "user");
        }
        for (j, h) in g.member_groups.iter().enumerate() {
            v.exists(&groups, h, || format!("groups[{i}].member_groups[{j}]"), "group");
        }
    }
    for (i, r) in doc.roles.iter().enumerate() {
        if let Some(org) = &r.org_id {
            v.exists(&orgs, org, || format!("roles[{i}].org_id"), "organization");
        }
        for (j, mp) in r.member_permissions.iter().enumerate() {
            let at = format!("roles[{i}].member_permissions[{j}]");
            v.permission(&mp.permission, || format!("{at}.permission"));
            if let Some(t) = &mp.restrict_object_type {
                v.object_type(t, || format!("{at}.restrict_object_type"));
            }
        }
        for (j, m) in r.member_roles.iter().enumerate() {
            v.exists(&roles, m, || format!("roles[{i}].member_roles[{j}]"), "role");
        }
    }
    for (i, a) in doc.acls.iter().enumerate() {
        let at = format!("acls[{i}]");
        match (&a.user_id, &a.group_id) {
            (Some(_), Some(_)) => v.push(&at, "has both user_id and group_id; exactly one is allowed"),
            (None, None) => v.push(&at, "has neither user_id nor group_id; exactly one is required"),
            _ => {}
        }
        match (&a.permission, &a.role_id) {
            (Some(_), Some(_)) => v.push(&at, "has both permission and role_id; exactly one is allowed"),
            (None, None) => v.push(&at, "has neither permission nor role_id; exactly one is required"),
            _ => {}
        }
        if let Some(u) = &a.user_id {
            v.exists(&users, u, || format!("{at}.user_id"), "user");
        }
        if let Some(g) = &a.group_id {
            v.exists(&groups, g, || format!("{at}.group_id"), "group");
        }
        if let Some(p) = &a.permission {
            v.permission(p, || format!("{at}.permission"));
        }
        if let Some(r) = &a.role_id {
            v.exists(&roles, r, || format!("{at}.role_id"), "role");
        }
        if let Some(t) = &a.restrict_object_type {
            v.object_type(t, || format!("{at}.restrict_object_type"));
        }
        let object_type = v.object_type(&a.object_type, || format!("{at}.object_type"));
        let field = || format!("{at}.object_id");
        if a.object_id.is_empty() {
            v.push(field(), "object_id must not be empty");
            continue;
        }
        match object_type {
            Some(ObjectType::Organization) => v.exists(&orgs, &a.object_id, field, "organization"),
            Some(ObjectType::Project | ObjectType::ProjectLog) => {
                v.exists(&projects, &a.object_id, field, "project")
            }
            Some(ObjectType::Experiment) => v.exists(&experiments, &a.object_id, field, "experiment"),
            Some(ObjectType::Dataset) => v.exists(&datasets, &a.object_id, field, "dataset"),
            // Objects the policy does not describe (prompts, groups, ...):
            // any id is accepted; decisions never reach them.
            _ => {}
        }
    }
    let mut digests: HashMap<&str, usize> = HashMap::new();
    for (i, t) in doc.service_tokens.iter().enumerate() {
        let at = format!("service_tokens[{i}]");
        v.exists(&orgs, &t.org_id, || format!("{at}.org_id"), "organization");
        v.exists(&users, &t.service_account_id, || format!("{at}.service_account_id"), "user");
        if TokenDigest::from_hex(&t.token_sha256).is_none() {
            // Never echo the value: it identifies a secret.
            v.push(format!("{at}.token_sha256"), "must be 64 lower-case hex digits (SHA-256 of the token)");
        } else if let Some(&first) = digests.get(t.token_sha256.as_str()) {
            v.push(
                format!("{at}.token_sha256"),
                format!("same digest as service_tokens[{first}]; digests must be unique"),
            );
        } else {
            digests.insert(&t.token_sha256, i);
        }
        if let Some(exp) = &t.expires_at
            && chrono::DateTime::parse_from_rfc3339(exp).is_err()
        {
            v.push(format!("{at}.expires_at"), format!("'{exp}' is not an RFC 3339 timestamp"));
        }
    }

    v.finish()
}

#[derive(Default)]
struct Validator {
    errors: Vec<PolicyError>,
}

impl Validator {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(PolicyError { field: field.into(), message: message.into() });
    }

    /// Checks that the ids of one collection are non-empty and unique;
    /// returns the set of (non-empty) ids for reference checks.
    fn ids<'a>(&mut self, collection: &str, ids: impl Iterator<Item = &'a str>) -> HashSet<&'a str> {
        let mut first: HashMap<&'a str, usize> = HashMap::new();
        for (i, id) in ids.enumerate() {
            if id.is_empty() {
                self.push(format!("{collection}[{i}].id"), "id must not be empty");
            } else if let Some(&j) = first.get(id) {
                self.push(
                    format!("{collection}[{i}].id"),
                    format!("duplicate id '{id}' (also {collection}[{j}].id)"),
                );
            } else {
                first.insert(id, i);
            }
        }
        first.into_keys().collect()
    }

    fn exists(&mut self, known: &HashSet<&str>, id: &str, field: impl FnOnce() -> String, what: &str) {
        if !known.contains(id) {
            self.push(field(), format!("unknown {what} '{id}'"));
        }
    }

    fn permission(&mut self, s: &str, field: impl FnOnce() -> String) -> Option<Permission> {
        let parsed = s.parse().ok();
        if parsed.is_none() {
            let known: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
            self.push(field(), format!("unknown permission '{s}' (expected one of {})", known.join(", ")));
        }
        parsed
    }

    fn object_type(&mut self, s: &str, field: impl FnOnce() -> String) -> Option<ObjectType> {
        let parsed = s.parse().ok();
        if parsed.is_none() {
            let known: Vec<_> = ObjectType::ALL.iter().map(|t| t.as_str()).collect();
            self.push(field(), format!("unknown object type '{s}' (expected one of {})", known.join(", ")));
        }
        parsed
    }

    fn finish(self) -> Result<(), PolicyErrors> {
        if self.errors.is_empty() { Ok(()) } else { Err(PolicyErrors(self.errors)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::*;

    const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn doc() -> PolicyDoc {
        PolicyDoc {
            organizations: vec![Organization { id: "o1".into(), name: "acme".into() }],
            projects: vec![Project {
                id: "p1".into(),
                org_id: "o1".into(),
                name: "checkout".into(),
                description: None,
                deleted_at: None,
            }],
            experiments: vec![Experiment { id: "e1".into(), project_id: "p1".into(), name: "exp".into() }],
            datasets: vec![Dataset { id: "d1".into(), project_id: "p1".into(), name: "ds".into() }],
            users: vec![User { id: "u1".into(), name: "ci".into(), service_account: true }],
            groups: vec![Group {
                id: "g1".into(),
                org_id: "o1".into(),
                name: "writers".into(),
                description: None,
                member_users: vec!["u1".into()],
                member_groups: vec!["g1".into()],
            }],
            roles: vec![Role {
                id: "r1".into(),
                org_id: None,
                name: "logger".into(),
                description: None,
                member_permissions: vec![RolePermission {
                    permission: "update".into(),
                    restrict_object_type: Some("project_log".into()),
                }],
                member_roles: vec!["r1".into()],
            }],
            acls: vec![
                acl("a1", "project_log", "p1", Some("u1"), None, Some("update"), None),
                acl("a2", "organization", "o1", None, Some("g1"), None, Some("r1")),
                acl("a3", "prompt", "anything", Some("u1"), None, Some("read"), None),
            ],
            service_tokens: vec![ServiceToken {
                id: "t1".into(),
                name: "ci".into(),
                org_id: "o1".into(),
                service_account_id: "u1".into(),
                token_sha256: DIGEST.into(),
                expires_at: Some("2030-01-01T00:00:00Z".into()),
            }],
        }
    }

    fn acl(
        id: &str,
        object_type: &str,
        object_id: &str,
        user_id: Option<&str>,
        group_id: Option<&str>,
        permission: Option<&str>,
        role_id: Option<&str>,
    ) -> Acl {
        Acl {
            id: id.into(),
            object_type: object_type.into(),
            object_id: object_id.into(),
            user_id: user_id.map(Into::into),
            group_id: group_id.map(Into::into),
            permission: permission.map(Into::into),
            role_id: role_id.map(Into::into),
            restrict_object_type: None,
        }
    }

    /// The fields of every violation, in order.
    fn fields(doc: &PolicyDoc) -> Vec<String> {
        match validate(doc) {
            Ok(()) => vec![],
            Err(PolicyErrors(errs)) => {
                for e in &errs {
                    assert!(!e.message.is_empty());
                }
                errs.into_iter().map(|e| e.field).collect()
            }
        }
    }

    #[test]
    fn the_fixture_is_valid() {
        assert_eq!(validate(&doc()), Ok(()));
        assert_eq!(validate(&PolicyDoc::default()), Ok(()));
    }

    #[test]
    fn ids_must_be_non_empty() {
        let mut d = doc();
        d.users[0].id.clear();
        d.acls[0].id.clear();
        let f = fields(&d);
        assert!(f.contains(&"users[0].id".to_string()), "{f:?}");
        assert!(f.contains(&"acls[0].id".to_string()), "{f:?}");
    }

    #[test]
    fn ids_must_be_unique_per_collection() {
        let mut d = doc();
        d.projects.push(d.projects[0].clone());
        d.acls[2].id = "a1".into();
        // the same id in another collection is fine
        d.datasets[0].id = "e1".into();
        assert_eq!(fields(&d), vec!["projects[1].id", "acls[2].id"]);
        let err = validate(&d).unwrap_err();
        assert!(err.0[0].message.contains("projects[0]"), "{err}");
    }

    #[test]
    fn org_references_must_exist() {
        let mut d = doc();
        d.projects[0].org_id = "nope".into();
        d.groups[0].org_id = "nope".into();
        d.service_tokens[0].org_id = "nope".into();
        d.roles[0].org_id = Some("nope".into());
        assert_eq!(
            fields(&d),
            vec!["projects[0].org_id", "groups[0].org_id", "roles[0].org_id", "service_tokens[0].org_id"]
        );
        d.roles[0].org_id = Some("o1".into());
        assert!(!fields(&d).contains(&"roles[0].org_id".to_string()));
    }

    #[test]
    fn experiments_and_datasets_need_an_existing_project() {
        let mut d = doc();
        d.experiments[0].project_id = "p9".into();
        d.datasets[0].project_id = "p9".into();
        assert_eq!(fields(&d), vec!["experiments[0].project_id", "datasets[0].project_id"]);
    }

    #[test]
    fn group_members_must_exist() {
        let mut d = doc();
        d.groups[0].member_users.push("u9".into());
        d.groups[0].member_groups.push("g9".into());
        assert_eq!(fields(&d), vec!["groups[0].member_users[1]", "groups[0].member_groups[1]"]);
    }

    #[test]
    fn role_members_and_permissions_must_be_known() {
        let mut d = doc();
        d.roles[0].member_roles.push("r9".into());
        d.roles[0].member_permissions.push(RolePermission {
            permission: "write".into(),
            restrict_object_type: Some("logs".into()),
        });
        assert_eq!(
            fields(&d),
            vec![
                "roles[0].member_permissions[1].permission",
                "roles[0].member_permissions[1].restrict_object_type",
                "roles[0].member_roles[1]",
            ]
        );
    }

    #[test]
    fn acl_needs_exactly_one_principal_and_exactly_one_grant() {
        let mut d = doc();
        d.acls[0].group_id = Some("g1".into());
        d.acls[0].role_id = Some("r1".into());
        d.acls[1].group_id = None;
        d.acls[1].role_id = None;
        let err = validate(&d).unwrap_err().0;
        let at: Vec<_> = err.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert_eq!(at.len(), 4, "{at:?}");
        assert!(at[0].0 == "acls[0]" && at[0].1.contains("both user_id and group_id"));
        assert!(at[1].0 == "acls[0]" && at[1].1.contains("both permission and role_id"));
        assert!(at[2].0 == "acls[1]" && at[2].1.contains("neither user_id nor group_id"));
        assert!(at[3].0 == "acls[1]" && at[3].1.contains("neither permission nor role_id"));
    }

    #[test]
    fn acl_vocabulary_and_references_must_be_known() {
        let mut d = doc();
        d.acls[0].object_type = "logs".into();
        d.acls[0].permission = Some("write".into());
        d.acls[0].restrict_object_type = Some("bogus".into());
        d.acls[0].user_id = Some("u9".into());
        d.acls[1].group_id = Some("g9".into());
        d.acls[1].role_id = Some("r9".into());
        assert_eq!(
            fields(&d),
            vec![
                "acls[0].user_id",
                "acls[0].permission",
                "acls[0].restrict_object_type",
                "acls[0].object_type",
                "acls[1].group_id",
                "acls[1].role_id",
            ]
        );
    }

    #[test]
    fn acl_object_must_exist_for_known_object_types() {
        for (t, ok) in [
            ("organization", "o1"),
            ("project", "p1"),
            ("project_log", "p1"),
            ("experiment", "e1"),
            ("dataset", "d1"),
        ] {
            let mut d = doc();
            d.acls[0].object_type = t.into();
            d.acls[0].object_id = ok.into();
            assert_eq!(fields(&d), Vec::<String>::new(), "{t}");
            d.acls[0].object_id = "missing".into();
            assert_eq!(fields(&d), vec!["acls[0].object_id"], "{t}");
        }
        // project_log ids are project ids, not anything else
        let mut d = doc();
        d.acls[0].object_id = "e1".into();
        assert_eq!(fields(&d), vec!["acls[0].object_id"]);
        // other object types accept any non-empty id
        let mut d = doc();
        d.acls[2].object_id.clear();
        assert_eq!(fields(&d), vec!["acls[2].object_id"]);
    }

    #[test]
    fn service_token_references_and_formats() {
        let mut d = doc();
        d.service_tokens[0].service_account_id = "u9".into();
        d.service_tokens[0].token_sha256 = DIGEST.to_uppercase();
        d.service_tokens[0].expires_at = Some("tomorrow".into());
        assert_eq!(
            fields(&d),
            vec![
                "service_tokens[0].service_account_id",
                "service_tokens[0].token_sha256",
                "service_tokens[0].expires_at",
            ]
        );
        let err = validate(&d).unwrap_err().to_string();
        assert!(!err.contains(&DIGEST.to_uppercase()), "digest echoed: {err}");
        for bad in ["", "abc", &DIGEST[..63], &format!("{DIGEST}0"), &DIGEST.replace('a', "g")] {
            let mut d = doc();
            d.service_tokens[0].token_sha256 = bad.to_string();
            assert_eq!(fields(&d), vec!["service_tokens[0].token_sha256"], "{bad}");
        }
        let mut d = doc();
        d.service_tokens[0].expires_at = Some("2030-01-01T00:00:00+02:00".into());
        assert_eq!(validate(&d), Ok(()));
    }

    #[test]
    fn service_token_digests_must_be_unique() {
        let mut d = doc();
        let mut t = d.service_tokens[0].clone();
        t.id = "t2".into();
        d.service_tokens.push(t);
        let err = validate(&d).unwrap_err().0;
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].field, "service_tokens[1].token_sha256");
        assert!(err[0].message.contains("service_tokens[0]"));
    }

    #[test]
    fn all_violations_are_collected_and_displayed() {
        let mut d = doc();
        d.projects[0].org_id = "x".into();
        d.acls[1].role_id = Some("r9".into());
        d.service_tokens[0].expires_at = Some("x".into());
        let err = validate(&d).unwrap_err();
        assert_eq!(err.0.len(), 3);
        let shown = err.to_string();
        assert!(shown.contains("projects[0].org_id: unknown organization 'x'"), "{shown}");
        assert!(shown.contains("; acls[1].role_id: unknown role 'r9'"), "{shown}");
    }
}
