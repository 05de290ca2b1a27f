//! The slice of the policy one decision needs, loaded with a few indexed
//! queries: the object and its ancestors, the principal's transitive groups,
//! the ACLs on those (at most three) scopes naming the principal or one of
//! its groups, and the transitive roles those ACLs grant. The result is a
//! small, valid `PolicyDoc` on which the pure evaluator gives the same
//! answer as on the whole policy.

use super::column::instant;
use super::doc::{acl_at, role_permissions};
use super::pool::Conn;
use chrono::{DateTime, Utc};
use loggate_authz::Principal;
use loggate_model::Timestamp;
use loggate_model::doc::{Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, Role, User};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};

/// The object and its ancestors, as far as the store knows them.
struct Located {
    org: Organization,
    project: Option<Project>,
    /// `(id, name, deleted_at)` of the experiment or dataset asked about.
    child: Option<(String, String, Option<Timestamp>)>,
}

/// Which ACLs a slice needs: every ACL of the principal on the object's
/// scopes (explanations, decisions about new objects), or only those that
/// can grant one permission on the object's type (decisions), or the
/// first few of those.
#[derive(Debug, Clone, Copy)]
pub enum Wanted {
    All,
    /// ACLs whose own permission is this one (unrestricted, or restricted
    /// to the object's type), and ACLs granting a role that has it (by
    /// itself or through its member roles, restricted likewise). A
    /// superset of what can grant it: deleted roles, and roles the loader
    /// leaves out, still come along, and the evaluator weighs them as it
    /// would in the whole policy. Every other ACL cannot grant the
    /// permission, so the decision is the same without it.
    Granting(Permission),
    /// At most [`FIRST_FEW`] of `Granting`'s ACLs, the principal's own and
    /// those on the object and its project first (the cheapest to find).
    /// One ACL that grants is enough for the evaluator to allow, and an
    /// allow on a slice with fewer ACLs is an allow on one with more (an
    /// ACL only ever adds grants; whether the loader keeps it depends on
    /// its own fields and on groups and roles, which come whole either
    /// way). The grants of a group on the organization grow with the
    /// policy (187 ACLs for a token's 31 groups at a million ACLs), one
    /// decides: this reads one or two of them instead of all.
    ///
    /// What it does not settle is a deny on a slice that was cut short
    /// ([`Slice::complete`] false): that takes `Granting`.
    FirstGranting(Permission),
}

/// How many ACLs [`Wanted::FirstGranting`] loads. One would do when the
/// first ACL grants (as it almost always does: the superset only adds
/// deleted or broken roles and groups); a few more keep such an ACL from
/// costing a second round.
pub const FIRST_FEW: usize = 4;

/// A slice and whether it holds every ACL it asked for.
pub struct Slice {
    pub doc: PolicyDoc,
    /// False when [`Wanted::FirstGranting`] stopped at [`FIRST_FEW`] ACLs:
    /// more may exist.
    pub complete: bool,
}

/// Loads the slice for `(principal, object)`. An unknown object (or a type
/// the policy does not describe) gives a document without it, which the
/// evaluator denies as unknown.
///
/// Three prepared statements, sent together (one round trip): the object,
/// the principal's group edges, and the ACLs with the roles they grant (the
/// ACL statement finds the scopes and groups itself, so it need not wait
/// for the other two).
pub async fn load(conn: &mut Conn, principal: &Principal, object: &ObjectRef, wanted: Wanted) -> Result<Slice, Error> {
    let whole = |doc| Slice { doc, complete: true };
    let locate_sql = match object.object_type {
        ObjectType::Organization => Some(LOCATE_ORG),
        ObjectType::Project | ObjectType::ProjectLog => Some(LOCATE_PROJECT),
        ObjectType::Experiment => Some(LOCATE_EXPERIMENT),
        ObjectType::Dataset => Some(LOCATE_DATASET),
        _ => None,
    };
    let Some(locate_sql) = locate_sql else {
        return Ok(whole(PolicyDoc::default()));
    };
    let locate_stmt = conn.prepared(locate_sql).await?;
    let edges_stmt = conn.prepared(GROUP_EDGES).await?;
    let (permission, limited) = match wanted {
        Wanted::All => (None, false),
        Wanted::Granting(p) => (Some(p.as_str()), false),
        Wanted::FirstGranting(p) => (Some(p.as_str()), true),
    };
    let acls_sql = if limited { FIRST_ACLS_AND_ROLES.as_str() } else { ALL_ACLS_AND_ROLES.as_str() };
    let acls_stmt = conn.prepared(acls_sql).await?;
    let client: &Client = conn;
    let object_type = object.object_type.as_str();
    let locate_params: [&(dyn ToSql + Sync); 1] = [&object.id];
    let edges_params: [&(dyn ToSql + Sync); 1] = [&principal.user_id];
    let acls_params: [&(dyn ToSql + Sync); 4] = [&object_type, &object.id, &principal.user_id, &permission];
    let (located, edges, rows) = tokio::try_join!(
        client.query_opt(&locate_stmt, &locate_params),
        client.query(&edges_stmt, &edges_params),
        client.query(&acls_stmt, &acls_params),
    )?;
    let Some(located) = located.map(|r| locate(object, &r)) else {
        return Ok(whole(PolicyDoc::default()));
    };
    let edges: Vec<GroupRow> = edges.iter().map(group_row).collect();
    let org_id = located.org.id.clone();

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

    let mut acls: Vec<Acl> = Vec::new();
    let mut roles: Vec<Role> = Vec::new();
    for r in &rows {
        if r.get::<_, bool>(0) {
            roles.push(Role {
                id: r.get(1),
                org_id: r.get(10),
                name: r.get(9),
                description: None,
                member_permissions: role_permissions(r.try_get(12)?, r.try_get(13)?),
                member_roles: r.get(14),
                deleted_at: instant(r.get(11)),
            });
        } else {
            acls.push(acl_at(r, 1)?);
        }
    }

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
    let complete = !limited || doc.acls.len() < FIRST_FEW;
    Ok(Slice { doc, complete })
}

/// The object by id, with its project and organization (`locate` reads
/// the row). One statement per type, each answered by primary keys.
const LOCATE_ORG: &str = "SELECT o.id, o.name, o.creator_grants FROM organizations o WHERE o.id = $1";
const LOCATE_PROJECT: &str = "SELECT o.id, o.name, o.creator_grants, p.id, p.name, p.description, p.deleted_at
       FROM projects p JOIN organizations o ON o.id = p.org_id WHERE p.id = $1";
const LOCATE_EXPERIMENT: &str =
    "SELECT o.id, o.name, o.creator_grants, p.id, p.name, p.description, p.deleted_at, c.name, c.deleted_at
       FROM experiments c JOIN projects p ON p.id = c.project_id JOIN organizations o ON o.id = p.org_id
      WHERE c.id = $1";
const LOCATE_DATASET: &str =
    "SELECT o.id, o.name, o.creator_grants, p.id, p.name, p.description, p.deleted_at, c.name, c.deleted_at
       FROM datasets c JOIN projects p ON p.id = c.project_id JOIN organizations o ON o.id = p.org_id
      WHERE c.id = $1";

/// Reads a row of one of the `LOCATE_*` statements.
fn locate(object: &ObjectRef, r: &Row) -> Located {
    let org = Organization { id: r.get(0), name: r.get(1), creator_grants: r.get(2) };
    if object.object_type == ObjectType::Organization {
        return Located { org, project: None, child: None };
    }
    let project = Project {
        id: r.get(3),
        org_id: org.id.clone(),
        name: r.get(4),
        description: r.get(5),
        deleted_at: instant(r.get(6)),
    };
    let child = matches!(object.object_type, ObjectType::Experiment | ObjectType::Dataset)
        .then(|| (object.id.clone(), r.get::<_, String>(7), instant(r.get::<_, Option<DateTime<Utc>>>(8))));
    Located { org, project: Some(project), child }
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

/// The edges upwards from user `$1`. UNION (not ALL) makes cycles terminate.
const GROUP_EDGES: &str = "WITH RECURSIVE e (group_id, member) AS (
         SELECT group_id, NULL::text FROM group_member_users WHERE user_id = $1
         UNION
         SELECT m.group_id, m.member_group_id
           FROM group_member_groups m JOIN e ON m.member_group_id = e.group_id
     )
     SELECT e.group_id, e.member, g.name, g.org_id, g.deleted_at FROM e JOIN groups g ON g.id = e.group_id";

fn group_row(r: &Row) -> GroupRow {
    GroupRow { group: r.get(0), member: r.get(1), name: r.get(2), org_id: r.get(3), deleted_at: instant(r.get(4)) }
}

/// The ACLs of user `$3` and of its groups on the scopes of object
/// (`$1` type, `$2` id): the object itself (experiment, dataset, project
/// log), its project, its organization; with `$4` a permission, only
/// those that can grant it (see [`Wanted::Granting`]); in
/// `FIRST_ACLS_AND_ROLES`, only the first [`FIRST_FEW`] of them. Then the
/// roles those ACLs grant and, transitively, their member roles. Rows: `false` and an ACL
/// (`acl_at(row, 1)`), or `true` and a role (columns 1, 9..=14), ACLs
/// first, each kind by id.
///
/// The user's ACLs by its (user, object) index, once per scope; its
/// groups' ACLs on a scope with few ACLs by the object index (one probe,
/// kept for the groups), on a scope with many (the organization, a
/// tenth of all ACLs in the bench) by the (group, object) index once per
/// group (migrations/0007, all index-only). An ACL names exactly one kind
/// of principal and a scope is either small or not, so the branches never
/// return the same row.
/// `OFFSET 0` keeps each lookup a subquery of its own: joined with the
/// scopes, the planner (which cannot know that the organization holds a
/// tenth of all ACLs) reads every ACL of the object by `acls_object`
/// instead, 90,000 at a million ACLs, to keep the principal's few.
/// A `LIMIT` stops the branches, run in the order written, once it has
/// its rows: the organization's per-group probes, last, are then mostly
/// not run at all (see [`Wanted::FirstGranting`]).
const ACLS_AND_ROLES: &str = "WITH RECURSIVE
     g (group_id) AS (
         SELECT group_id FROM group_member_users WHERE user_id = $3
         UNION
         SELECT m.group_id FROM group_member_groups m JOIN g ON m.member_group_id = g.group_id),
     proj (id) AS (
         SELECT CASE $1::text
                    WHEN 'project' THEN $2::text
                    WHEN 'project_log' THEN $2::text
                    WHEN 'experiment' THEN (SELECT project_id FROM experiments WHERE id = $2::text)
                    WHEN 'dataset' THEN (SELECT project_id FROM datasets WHERE id = $2::text)
                END),
     scope (t, i) AS (
         SELECT $1::text, $2::text WHERE $1::text IN ('experiment', 'dataset', 'project_log')
         UNION ALL
         SELECT 'project', proj.id FROM proj WHERE proj.id IS NOT NULL
         UNION ALL
         SELECT 'organization', CASE WHEN $1::text = 'organization' THEN $2::text
                                     ELSE (SELECT p.org_id FROM projects p WHERE p.id = proj.id) END
           FROM proj),
     grantor (id) AS (
         SELECT role_id FROM role_permissions
          WHERE permission = $4::text AND (restrict_object_type IS NULL OR restrict_object_type = $1::text)
         UNION
         SELECT m.role_id FROM role_member_roles m JOIN grantor ON m.member_role_id = grantor.id),
     -- Whether a scope has few ACLs (of anyone): those are read once and
     -- kept for the principal's groups; a scope with many (the
     -- organization) is probed once per group instead.
     sized (t, i, small) AS (
         SELECT s.t, s.i,
                (SELECT count(*) FROM (SELECT 1 FROM acls a WHERE a.object_type = s.t AND a.object_id = s.i
                                        LIMIT 256) n) < 256
           FROM scope s),
     granting AS (
         SELECT a.* FROM scope s, LATERAL (
             SELECT a.id, a.object_type, a.object_id, a.user_id, NULL::text AS group_id, a.permission, a.role_id,
                    a.restrict_object_type
               FROM acls a
              WHERE a.user_id = $3 AND a.object_type = s.t AND a.object_id = s.i
                AND ($4::text IS NULL
                     OR (a.permission = $4::text AND (a.restrict_object_type IS NULL OR a.restrict_object_type = $1::text))
                     OR a.role_id IN (SELECT id FROM grantor))
             OFFSET 0) a
         UNION ALL
         SELECT a.* FROM sized s, LATERAL (
             SELECT a.id, a.object_type, a.object_id, NULL::text AS user_id, a.group_id, a.permission, a.role_id,
                    a.restrict_object_type
               FROM acls a
              WHERE a.object_type = s.t AND a.object_id = s.i AND a.group_id IN (SELECT group_id FROM g)
                AND ($4::text IS NULL
                     OR (a.permission = $4::text AND (a.restrict_object_type IS NULL OR a.restrict_object_type = $1::text))
                     OR a.role_id IN (SELECT id FROM grantor))
             OFFSET 0) a
          WHERE s.small
         UNION ALL
         SELECT a.* FROM sized s CROSS JOIN g, LATERAL (
             SELECT a.id, a.object_type, a.object_id, NULL::text AS user_id, a.group_id, a.permission, a.role_id,
                    a.restrict_object_type
               FROM acls a
              WHERE a.group_id = g.group_id AND a.object_type = s.t AND a.object_id = s.i
                AND ($4::text IS NULL
                     OR (a.permission = $4::text AND (a.restrict_object_type IS NULL OR a.restrict_object_type = $1::text))
                     OR a.role_id IN (SELECT id FROM grantor))
             OFFSET 0) a
          WHERE NOT s.small
         {limit}),
     r (id) AS (
         SELECT role_id FROM granting WHERE role_id IS NOT NULL
         UNION
         SELECT m.member_role_id FROM role_member_roles m JOIN r ON m.role_id = r.id)
     SELECT false, id, object_type, object_id, user_id, group_id, permission, role_id, restrict_object_type,
            NULL::text, NULL::text, NULL::timestamptz, NULL::text[], NULL::text[], NULL::text[]
       FROM granting
     UNION ALL
     SELECT true, x.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, x.name, x.org_id, x.deleted_at,
            ARRAY(SELECT p.permission FROM role_permissions p WHERE p.role_id = x.id
                   ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
            ARRAY(SELECT p.restrict_object_type FROM role_permissions p WHERE p.role_id = x.id
                   ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
            ARRAY(SELECT m.member_role_id FROM role_member_roles m WHERE m.role_id = x.id ORDER BY 1)
       FROM roles x JOIN r ON r.id = x.id
      ORDER BY 1, 2";

/// Where `ACLS_AND_ROLES` takes its limit, if any. Written into the text
/// rather than bound: with `LIMIT $5`, Postgres's generic plan (for a
/// limit it cannot know) looked costlier than each custom plan, so every
/// execution was planned anew (0.8 ms at a million ACLs, more than the
/// execution); with the number in the text it keeps the generic plan.
const LIMIT: &str = "{limit}";
static ALL_ACLS_AND_ROLES: LazyLock<String> = LazyLock::new(|| ACLS_AND_ROLES.replace(LIMIT, ""));
static FIRST_ACLS_AND_ROLES: LazyLock<String> =
    LazyLock::new(|| ACLS_AND_ROLES.replace(LIMIT, &format!("LIMIT {FIRST_FEW}")));
