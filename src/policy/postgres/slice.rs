//! The slice of the policy one decision needs, loaded with a few indexed
//! queries: the object and its ancestors, the principal's transitive groups,
//! the ACLs on those (at most three) scopes naming the principal or one of
//! its groups, and the transitive roles those ACLs grant. The result is a
//! small, valid `PolicyDoc` on which the pure evaluator gives the same
//! answer as on the whole policy.

use super::column::instant;
use super::doc::{acl, role_permissions};
use chrono::{DateTime, Utc};
use loggate_authz::Principal;
use loggate_model::Timestamp;
use loggate_model::doc::{Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, Role, User};
use loggate_model::types::{ObjectRef, ObjectType};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::{Client, Error};

/// The object and its ancestors, as far as the store knows them.
struct Located {
    org: Organization,
    project: Option<Project>,
    /// `(id, name, deleted_at)` of the experiment or dataset asked about.
    child: Option<(String, String, Option<Timestamp>)>,
}

/// Loads the slice for `(principal, object)`. An unknown object (or a type
/// the policy does not describe) gives a document without it, which the
/// evaluator denies as unknown.
pub async fn load(client: &Client, principal: &Principal, object: &ObjectRef) -> Result<PolicyDoc, Error> {
    let (located, edges) = tokio::try_join!(locate(client, object), group_edges(client, &principal.user_id))?;
    let Some(located) = located else {
        return Ok(PolicyDoc::default());
    };
    let org_id = located.org.id.clone();
    let mut scopes: Vec<(&str, &str)> = Vec::with_capacity(3);
    if let Some((id, _, _)) = &located.child {
        scopes.push((object.object_type.as_str(), id));
    }
    if let Some(p) = &located.project {
        if object.object_type == ObjectType::ProjectLog {
            scopes.push(("project_log", &p.id));
        }
        scopes.push(("project", &p.id));
    }
    scopes.push(("organization", &org_id));

    // Groups: every group reachable upwards from the user, with the edges
    // between them (enough for the evaluator and for explanations).
    let known: BTreeMap<&str, &GroupRow> = edges.iter().map(|e| (e.group.as_str(), e)).collect();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let group = |groups: &mut BTreeMap<String, Group>, id: &str| {
        groups.entry(id.to_owned()).or_insert_with(|| {
            let row = known.get(id);
            Group {
                id: id.to_owned(),
                org_id: row.map_or_else(|| org_id.clone(), |r| r.org_id.clone()),
                name: row.map_or_else(|| id.to_owned(), |r| r.name.clone()),
                description: None,
                member_users: Vec::new(),
                member_groups: Vec::new(),
                deleted_at: row.and_then(|r| r.deleted_at),
            }
        });
    };
    for GroupRow { group: g, member: child, .. } in &edges {
        group(&mut groups, g);
        match child {
            None => groups.get_mut(g).expect("inserted").member_users.push(principal.user_id.clone()),
            Some(h) => {
                group(&mut groups, h);
                groups.get_mut(g).expect("inserted").member_groups.push(h.clone());
            }
        }
    }
    let group_ids: Vec<&str> = groups.keys().map(String::as_str).collect();

    let (types, ids): (Vec<&str>, Vec<&str>) = scopes.iter().copied().unzip();
    // One branch per kind of principal, each answered exactly by its
    // (principal, object) index (migrations/0005); an ACL names exactly one
    // kind, so the branches never return the same row.
    let rows = client
        .query(
            "SELECT a.id, a.object_type, a.object_id, a.user_id, a.group_id, a.permission, a.role_id, a.restrict_object_type
               FROM unnest($1::text[], $2::text[]) AS s (t, i)
               JOIN acls a ON a.user_id = $3 AND a.object_type = s.t AND a.object_id = s.i
             UNION ALL
             SELECT a.id, a.object_type, a.object_id, a.user_id, a.group_id, a.permission, a.role_id, a.restrict_object_type
               FROM unnest($1::text[], $2::text[]) AS s (t, i)
               JOIN acls a ON a.group_id = ANY ($4::text[]) AND a.object_type = s.t AND a.object_id = s.i
             ORDER BY 1",
            &[&types, &ids, &principal.user_id, &group_ids],
        )
        .await?;
    let acls: Vec<Acl> = rows.iter().map(acl).collect::<Result<_, _>>()?;
    let role_ids: BTreeSet<&str> = acls.iter().filter_map(|a| a.role_id.as_deref()).collect();
    let roles =
        if role_ids.is_empty() { Vec::new() } else { roles(client, &role_ids.into_iter().collect::<Vec<_>>()).await? };

    let Located { org, project, child } = located;
    // Groups and roles of other organizations come with their organization,
    // so that the loader's organization rules see them for what they are
    // (and leave out what crosses), as they would in the whole policy.
    let mut organizations = vec![org];
    let foreign: BTreeSet<String> = groups
        .values()
        .map(|g| g.org_id.clone())
        .chain(roles.iter().filter_map(|r| r.org_id.clone()))
        .filter(|o| *o != org_id)
        .collect();
    organizations.extend(foreign.into_iter().map(|o| Organization { name: o.clone(), id: o, creator_grants: true }));
    let mut doc = PolicyDoc {
        organizations,
        users: vec![User { id: principal.user_id.clone(), name: String::new(), service_account: true }],
        groups: groups.into_values().collect(),
        roles,
        acls,
        ..PolicyDoc::default()
    };
    if let Some(project) = project {
        if let Some((id, name, deleted_at)) = child {
            let project_id = project.id.clone();
            match object.object_type {
                ObjectType::Experiment => doc.experiments.push(Experiment { id, project_id, name, deleted_at }),
                _ => doc.datasets.push(Dataset { id, project_id, name, deleted_at }),
            }
        }
        doc.projects.push(project);
    }
    Ok(doc)
}

/// Finds the object, its project and organization.
async fn locate(client: &Client, object: &ObjectRef) -> Result<Option<Located>, Error> {
    let id = &object.id;
    let project_cols = "p.id, p.name, p.description, p.deleted_at, o.id, o.name, o.creator_grants";
    let (sql, child) = match object.object_type {
        ObjectType::Organization => {
            let row =
                client.query_opt("SELECT id, name, creator_grants FROM organizations WHERE id = $1", &[id]).await?;
            return Ok(row.map(|r| Located {
                org: Organization { id: r.get(0), name: r.get(1), creator_grants: r.get(2) },
                project: None,
                child: None,
            }));
        }
        ObjectType::Project | ObjectType::ProjectLog => (
            format!("SELECT {project_cols} FROM projects p JOIN organizations o ON o.id = p.org_id WHERE p.id = $1"),
            false,
        ),
        ObjectType::Experiment => (
            format!(
                "SELECT {project_cols}, c.name, c.deleted_at FROM experiments c JOIN projects p ON p.id = c.project_id
                   JOIN organizations o ON o.id = p.org_id WHERE c.id = $1"
            ),
            true,
        ),
        ObjectType::Dataset => (
            format!(
                "SELECT {project_cols}, c.name, c.deleted_at FROM datasets c JOIN projects p ON p.id = c.project_id
                   JOIN organizations o ON o.id = p.org_id WHERE c.id = $1"
            ),
            true,
        ),
        _ => return Ok(None),
    };
    let Some(r) = client.query_opt(&sql, &[id]).await? else {
        return Ok(None);
    };
    let org = Organization { id: r.get(4), name: r.get(5), creator_grants: r.get(6) };
    let project = Project {
        id: r.get(0),
        org_id: org.id.clone(),
        name: r.get(1),
        description: r.get(2),
        deleted_at: instant(r.get(3)),
    };
    let child =
        child.then(|| (object.id.clone(), r.get::<_, String>(7), instant(r.get::<_, Option<DateTime<Utc>>>(8))));
    Ok(Some(Located { org, project: Some(project), child }))
}

/// One edge upwards from the user: `group` contains `member` (`None`: the
/// user itself), with the group's own columns.
struct GroupRow {
    group: String,
    member: Option<String>,
    name: String,
    org_id: String,
    deleted_at: Option<Timestamp>,
}

/// The edges upwards from the user. UNION (not ALL) makes cycles terminate.
async fn group_edges(client: &Client, user_id: &str) -> Result<Vec<GroupRow>, Error> {
    let rows = client
        .query(
            "WITH RECURSIVE e (group_id, member) AS (
                 SELECT group_id, NULL::text FROM group_member_users WHERE user_id = $1
                 UNION
                 SELECT m.group_id, m.member_group_id
                   FROM group_member_groups m JOIN e ON m.member_group_id = e.group_id
             )
             SELECT e.group_id, e.member, g.name, g.org_id, g.deleted_at FROM e JOIN groups g ON g.id = e.group_id",
            &[&user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| GroupRow {
            group: r.get(0),
            member: r.get(1),
            name: r.get(2),
            org_id: r.get(3),
            deleted_at: instant(r.get(4)),
        })
        .collect())
}

/// The roles `ids` and, transitively, their member roles.
async fn roles(client: &Client, ids: &[&str]) -> Result<Vec<Role>, Error> {
    let rows = client
        .query(
            "WITH RECURSIVE r (id) AS (
                 SELECT unnest($1::text[])
                 UNION
                 SELECT m.member_role_id FROM role_member_roles m JOIN r ON m.role_id = r.id
             )
             SELECT x.id, x.name, x.org_id, x.deleted_at,
                    ARRAY(SELECT p.permission FROM role_permissions p WHERE p.role_id = x.id
                           ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
                    ARRAY(SELECT p.restrict_object_type FROM role_permissions p WHERE p.role_id = x.id
                           ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
                    ARRAY(SELECT m.member_role_id FROM role_member_roles m WHERE m.role_id = x.id ORDER BY 1)
               FROM roles x JOIN r ON r.id = x.id
              ORDER BY x.id",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Role {
                id: r.get(0),
                org_id: r.get(2),
                name: r.get(1),
                description: None,
                member_permissions: role_permissions(r.try_get(4)?, r.try_get(5)?),
                member_roles: r.get(6),
                deleted_at: instant(r.get(3)),
            })
        })
        .collect()
}
