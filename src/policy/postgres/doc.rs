//! The whole policy in and out: `loggate policy export` (one consistent
//! snapshot, ids sorted) and `loggate policy import` (bulk upserts by id in
//! one transaction, optionally deleting what the document lacks).

use super::column::{Parsed, instant, timestamptz};
use super::token;
use crate::policy::store::StoreError;
use chrono::{DateTime, Utc};
use loggate_model::doc::*;
use loggate_model::types::{ObjectType, Permission};
use loggate_model::{PolicyErrors, Scope, Timestamp};
use std::collections::HashMap;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, Error, IsolationLevel};

/// Why an import did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the policy document is invalid: {0}")]
    Invalid(PolicyErrors),
    #[error(transparent)]
    Store(StoreError),
}

/// Reads the whole policy in one REPEATABLE READ snapshot.
pub async fn export(client: &mut Client) -> Result<PolicyDoc, Error> {
    let tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let mut doc = PolicyDoc::default();
    for r in tx.query("SELECT id, name, creator_grants FROM organizations ORDER BY id", &[]).await? {
        doc.organizations.push(Organization { id: r.get(0), name: r.get(1), creator_grants: r.get(2) });
    }
    for r in tx.query("SELECT id, org_id, name, description, deleted_at FROM projects ORDER BY id", &[]).await? {
        doc.projects.push(Project {
            id: r.get(0),
            org_id: r.get(1),
            name: r.get(2),
            description: r.get(3),
            deleted_at: instant(r.get(4)),
        });
    }
    for r in tx.query("SELECT id, project_id, name, deleted_at FROM experiments ORDER BY id", &[]).await? {
        doc.experiments.push(Experiment {
            id: r.get(0),
            project_id: r.get(1),
            name: r.get(2),
            deleted_at: instant(r.get(3)),
        });
    }
    for r in tx.query("SELECT id, project_id, name, deleted_at FROM datasets ORDER BY id", &[]).await? {
        doc.datasets.push(Dataset {
            id: r.get(0),
            project_id: r.get(1),
            name: r.get(2),
            deleted_at: instant(r.get(3)),
        });
    }
    for r in tx.query("SELECT id, name, service_account FROM users ORDER BY id", &[]).await? {
        doc.users.push(User { id: r.get(0), name: r.get(1), service_account: r.get(2) });
    }
    let groups = tx
        .query(
            "SELECT g.id, g.org_id, g.name, g.description,
                    ARRAY(SELECT m.user_id FROM group_member_users m WHERE m.group_id = g.id ORDER BY 1),
                    ARRAY(SELECT m.member_group_id FROM group_member_groups m WHERE m.group_id = g.id ORDER BY 1),
                    g.deleted_at
               FROM groups g ORDER BY g.id",
            &[],
        )
        .await?;
    for r in groups {
        doc.groups.push(Group {
            id: r.get(0),
            org_id: r.get(1),
            name: r.get(2),
            description: r.get(3),
            member_users: r.get(4),
            member_groups: r.get(5),
            deleted_at: instant(r.get(6)),
        });
    }
    let roles = tx
        .query(
            "SELECT x.id, x.org_id, x.name, x.description,
                    ARRAY(SELECT p.permission FROM role_permissions p WHERE p.role_id = x.id
                           ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
                    ARRAY(SELECT p.restrict_object_type FROM role_permissions p WHERE p.role_id = x.id
                           ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
                    ARRAY(SELECT m.member_role_id FROM role_member_roles m WHERE m.role_id = x.id ORDER BY 1),
                    x.deleted_at
               FROM roles x ORDER BY x.id",
            &[],
        )
        .await?;
    for r in roles {
        doc.roles.push(Role {
            id: r.get(0),
            org_id: r.get(1),
            name: r.get(2),
            description: r.get(3),
            member_permissions: role_permissions(r.try_get(4)?, r.try_get(5)?),
            member_roles: r.get(6),
            deleted_at: instant(r.get(7)),
        });
    }
    let acls = tx
        .query(
            "SELECT id, object_type, object_id, user_id, group_id, permission, role_id, restrict_object_type
               FROM acls ORDER BY id",
            &[],
        )
        .await?;
    for r in acls {
        doc.acls.push(acl(&r)?);
    }
    let tokens = tx.query(&format!("SELECT {} FROM service_tokens t ORDER BY id", token::COLUMNS), &[]).await?;
    for r in &tokens {
        doc.service_tokens.push(token::read(r)?);
    }
    tx.commit().await?;
    Ok(doc)
}

/// A role's permissions from the two parallel arrays the queries select.
pub(super) fn role_permissions(
    permissions: Vec<Parsed<Permission>>,
    restricts: Vec<Option<Parsed<ObjectType>>>,
) -> Vec<RolePermission> {
    permissions
        .into_iter()
        .zip(restricts)
        .map(|(p, t)| RolePermission { permission: p.0, restrict_object_type: t.map(|t| t.0) })
        .collect()
}

/// An ACL row selected as `id, object_type, object_id, user_id, group_id,
/// permission, role_id, restrict_object_type`.
pub(super) fn acl(r: &tokio_postgres::Row) -> Result<Acl, Error> {
    acl_at(r, 0)
}

/// `acl`, with those columns from `at` on.
pub(super) fn acl_at(r: &tokio_postgres::Row, at: usize) -> Result<Acl, Error> {
    Ok(Acl {
        id: r.get(at),
        object_type: r.try_get::<_, Parsed<ObjectType>>(at + 1)?.0,
        object_id: r.get(at + 2),
        user_id: r.get(at + 3),
        group_id: r.get(at + 4),
        permission: r.try_get::<_, Option<Parsed<Permission>>>(at + 5)?.map(|p| p.0),
        role_id: r.get(at + 6),
        restrict_object_type: r.try_get::<_, Option<Parsed<ObjectType>>>(at + 7)?.map(|t| t.0),
    })
}

/// A loaded document as column arrays, ready for `unnest` upserts.
#[derive(Default)]
pub struct Rows<'a> {
    org: [Vec<&'a str>; 2],
    org_creator_grants: Vec<bool>,
    project: [Vec<&'a str>; 3],
    project_description: Vec<Option<&'a str>>,
    project_deleted: Vec<Option<DateTime<Utc>>>,
    experiment: [Vec<&'a str>; 3],
    experiment_deleted: Vec<Option<DateTime<Utc>>>,
    dataset: [Vec<&'a str>; 3],
    dataset_deleted: Vec<Option<DateTime<Utc>>>,
    user: [Vec<&'a str>; 2],
    user_service: Vec<bool>,
    group: [Vec<&'a str>; 3],
    group_description: Vec<Option<&'a str>>,
    group_deleted: Vec<Option<DateTime<Utc>>>,
    group_users: [Vec<&'a str>; 2],
    group_groups: [Vec<&'a str>; 2],
    role: [Vec<&'a str>; 2],
    role_org: Vec<Option<&'a str>>,
    role_description: Vec<Option<&'a str>>,
    role_deleted: Vec<Option<DateTime<Utc>>>,
    role_perm: (Vec<&'a str>, Vec<&'static str>, Vec<Option<&'static str>>),
    role_roles: [Vec<&'a str>; 2],
    /// id, object_type, object_id
    acl: [Vec<&'a str>; 3],
    /// user_id, group_id, permission, role_id, restrict_object_type, object_org_id
    acl_opt: [Vec<Option<&'a str>>; 6],
    /// id, name, org_id, service_account_id
    token: [Vec<&'a str>; 4],
    token_sha256: Vec<String>,
    token_expires: Vec<Option<DateTime<Utc>>>,
    token_not_before: Vec<Option<DateTime<Utc>>>,
    token_scope: Vec<Option<Json<&'a Scope>>>,
    token_parent: Vec<Option<&'a str>>,
}

impl<'a> Rows<'a> {
    /// Rows of the largest tables: enough of them make an import a bulk
    /// load, after which the store refreshes statistics and visibility.
    pub fn bulk(&self) -> bool {
        self.acl[0].len() + self.token[0].len() + self.user[0].len() + self.group_users[0].len() >= 10_000
    }

    /// Splits a loaded document (one that kept every rule) into columns.
    pub fn of(doc: &'a PolicyDoc) -> Self {
        let at = |t: Option<Timestamp>| timestamptz(t);
        let mut r = Rows::default();
        for o in &doc.organizations {
            r.org[0].push(&o.id);
            r.org[1].push(&o.name);
            r.org_creator_grants.push(o.creator_grants);
        }
        let mut project_org: HashMap<&str, &str> = HashMap::new();
        for p in &doc.projects {
            project_org.insert(&p.id, &p.org_id);
            r.project[0].push(&p.id);
            r.project[1].push(&p.org_id);
            r.project[2].push(&p.name);
            r.project_description.push(p.description.as_deref());
            r.project_deleted.push(at(p.deleted_at));
        }
        let mut child_org: HashMap<(&str, &str), &str> = HashMap::new();
        for e in &doc.experiments {
            r.experiment[0].push(&e.id);
            r.experiment[1].push(&e.project_id);
            r.experiment[2].push(&e.name);
            r.experiment_deleted.push(at(e.deleted_at));
            if let Some(o) = project_org.get(e.project_id.as_str()) {
                child_org.insert(("experiment", &e.id), o);
            }
        }
        for d in &doc.datasets {
            r.dataset[0].push(&d.id);
            r.dataset[1].push(&d.project_id);
            r.dataset[2].push(&d.name);
            r.dataset_deleted.push(at(d.deleted_at));
            if let Some(o) = project_org.get(d.project_id.as_str()) {
                child_org.insert(("dataset", &d.id), o);
            }
        }
        for u in &doc.users {
            r.user[0].push(&u.id);
            r.user[1].push(&u.name);
            r.user_service.push(u.service_account);
        }
        let mut group_org: HashMap<&str, &str> = HashMap::new();
        for g in &doc.groups {
            group_org.insert(&g.id, &g.org_id);
            r.group[0].push(&g.id);
            r.group[1].push(&g.org_id);
            r.group[2].push(&g.name);
            r.group_description.push(g.description.as_deref());
            r.group_deleted.push(at(g.deleted_at));
            for u in &g.member_users {
                r.group_users[0].push(&g.id);
                r.group_users[1].push(u);
            }
            for h in &g.member_groups {
                r.group_groups[0].push(&g.id);
                r.group_groups[1].push(h);
            }
        }
        let mut role_org: HashMap<&str, &str> = HashMap::new();
        for x in &doc.roles {
            if let Some(o) = &x.org_id {
                role_org.insert(&x.id, o);
            }
            r.role[0].push(&x.id);
            r.role[1].push(&x.name);
            r.role_org.push(x.org_id.as_deref());
            r.role_description.push(x.description.as_deref());
            r.role_deleted.push(at(x.deleted_at));
            for p in &x.member_permissions {
                r.role_perm.0.push(&x.id);
                r.role_perm.1.push(p.permission.as_str());
                r.role_perm.2.push(p.restrict_object_type.map(ObjectType::as_str));
            }
            for m in &x.member_roles {
                r.role_roles[0].push(&x.id);
                r.role_roles[1].push(m);
            }
        }
        let single_org = (doc.organizations.len() == 1).then(|| doc.organizations[0].id.as_str());
        for a in &doc.acls {
            let id = a.object_id.as_str();
            let org = match a.object_type {
                ObjectType::Organization
                | ObjectType::OrgMember
                | ObjectType::OrgProject
                | ObjectType::OrgAuditLogs => Some(id),
                ObjectType::Project | ObjectType::ProjectLog => project_org.get(id).copied(),
                ObjectType::Experiment => child_org.get(&("experiment", id)).copied(),
                ObjectType::Dataset => child_org.get(&("dataset", id)).copied(),
                ObjectType::Group => group_org.get(id).copied(),
                ObjectType::Role => role_org.get(id).copied(),
                _ => single_org,
            };
            r.acl[0].push(&a.id);
            r.acl[1].push(a.object_type.as_str());
            r.acl[2].push(id);
            r.acl_opt[0].push(a.user_id.as_deref());
            r.acl_opt[1].push(a.group_id.as_deref());
            r.acl_opt[2].push(a.permission.map(Permission::as_str));
            r.acl_opt[3].push(a.role_id.as_deref());
            r.acl_opt[4].push(a.restrict_object_type.map(ObjectType::as_str));
            r.acl_opt[5].push(org);
        }
        for t in &doc.service_tokens {
            r.token[0].push(&t.id);
            r.token[1].push(&t.name);
            r.token[2].push(&t.org_id);
            r.token[3].push(&t.service_account_id);
            r.token_sha256.push(t.token_sha256.to_hex());
            r.token_expires.push(at(t.expires_at));
            r.token_not_before.push(at(t.not_before));
            r.token_scope.push(t.scope.as_ref().map(Json));
            r.token_parent.push(t.parent_id.as_deref());
        }
        r
    }
}

/// Upserts `rows` in one transaction; returns the revision in force at commit.
pub async fn import(client: &mut Client, r: &Rows<'_>, replace: bool) -> Result<i64, Error> {
    let tx = client.transaction().await?;
    // The member-set deletes below compare against the document's pairs
    // (`NOT IN` a subquery): hashed when the pairs fit in `work_mem`, else
    // compared row by row, quadratic at a million members.
    tx.batch_execute("SET LOCAL work_mem = '256MB'").await?;
    let deferred = if r.bulk() { defer_checks(&tx).await? } else { Vec::new() };
    tx.execute(
        "INSERT INTO organizations (id, name, creator_grants) SELECT * FROM unnest($1::text[], $2::text[], $3::bool[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, creator_grants = EXCLUDED.creator_grants",
        &[&r.org[0], &r.org[1], &r.org_creator_grants],
    )
    .await?;
    tx.execute(
        "INSERT INTO projects (id, org_id, name, description, deleted_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name,
             description = EXCLUDED.description, deleted_at = EXCLUDED.deleted_at",
        &[&r.project[0], &r.project[1], &r.project[2], &r.project_description, &r.project_deleted],
    )
    .await?;
    for (table, cols, deleted) in
        [("experiments", &r.experiment, &r.experiment_deleted), ("datasets", &r.dataset, &r.dataset_deleted)]
    {
        tx.execute(
            &format!(
                "INSERT INTO {table} (id, project_id, name, deleted_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                 ON CONFLICT (id) DO UPDATE SET project_id = EXCLUDED.project_id, name = EXCLUDED.name,
                     deleted_at = EXCLUDED.deleted_at"
            ),
            &[&cols[0], &cols[1], &cols[2], deleted],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO users (id, name, service_account) SELECT * FROM unnest($1::text[], $2::text[], $3::bool[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, service_account = EXCLUDED.service_account",
        &[&r.user[0], &r.user[1], &r.user_service],
    )
    .await?;
    tx.execute(
        "INSERT INTO groups (id, org_id, name, description, deleted_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name, description = EXCLUDED.description,
             deleted_at = EXCLUDED.deleted_at",
        &[&r.group[0], &r.group[1], &r.group[2], &r.group_description, &r.group_deleted],
    )
    .await?;
    tx.execute(
        "INSERT INTO roles (id, name, org_id, description, deleted_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id, name = EXCLUDED.name, description = EXCLUDED.description,
             deleted_at = EXCLUDED.deleted_at",
        &[&r.role[0], &r.role[1], &r.role_org, &r.role_description, &r.role_deleted],
    )
    .await?;
    // Member sets of the document's groups and roles: exactly as listed.
    tx.execute(
        "DELETE FROM group_member_users m WHERE m.group_id IN (SELECT unnest($1::text[]))
           AND (m.group_id, m.user_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        &[&r.group[0], &r.group_users[0], &r.group_users[1]],
    )
    .await?;
    tx.execute(
        "INSERT INTO group_member_users (group_id, user_id) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
        &[&r.group_users[0], &r.group_users[1]],
    )
    .await?;
    tx.execute(
        "DELETE FROM group_member_groups m WHERE m.group_id IN (SELECT unnest($1::text[]))
           AND (m.group_id, m.member_group_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        &[&r.group[0], &r.group_groups[0], &r.group_groups[1]],
    )
    .await?;
    tx.execute(
        "INSERT INTO group_member_groups (group_id, member_group_id) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT DO NOTHING",
        &[&r.group_groups[0], &r.group_groups[1]],
    )
    .await?;
    tx.execute(
        "DELETE FROM role_permissions m WHERE m.role_id IN (SELECT unnest($1::text[]))
           AND (m.role_id, m.permission, coalesce(m.restrict_object_type, '')) NOT IN
               (SELECT r, p, coalesce(t, '') FROM unnest($2::text[], $3::text[], $4::text[]) AS d (r, p, t))",
        &[&r.role[0], &r.role_perm.0, &r.role_perm.1, &r.role_perm.2],
    )
    .await?;
    tx.execute(
        "INSERT INTO role_permissions (role_id, permission, restrict_object_type)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (role_id, permission, coalesce(restrict_object_type, '')) DO NOTHING",
        &[&r.role_perm.0, &r.role_perm.1, &r.role_perm.2],
    )
    .await?;
    tx.execute(
        "DELETE FROM role_member_roles m WHERE m.role_id IN (SELECT unnest($1::text[]))
           AND (m.role_id, m.member_role_id) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        &[&r.role[0], &r.role_roles[0], &r.role_roles[1]],
    )
    .await?;
    tx.execute(
        "INSERT INTO role_member_roles (role_id, member_role_id) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT DO NOTHING",
        &[&r.role_roles[0], &r.role_roles[1]],
    )
    .await?;
    tx.execute(
        "INSERT INTO acls (id, object_type, object_id, user_id, group_id, permission, role_id, restrict_object_type, object_org_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[], $9::text[])
         ON CONFLICT (id) DO UPDATE SET object_type = EXCLUDED.object_type, object_id = EXCLUDED.object_id,
             user_id = EXCLUDED.user_id, group_id = EXCLUDED.group_id, permission = EXCLUDED.permission,
             role_id = EXCLUDED.role_id, restrict_object_type = EXCLUDED.restrict_object_type,
             object_org_id = EXCLUDED.object_org_id",
        &[
            &r.acl[0], &r.acl[1], &r.acl[2], &r.acl_opt[0], &r.acl_opt[1], &r.acl_opt[2], &r.acl_opt[3], &r.acl_opt[4],
            &r.acl_opt[5],
        ],
    )
    .await?;
    if replace {
        // Tokens first: a replaced token may reuse a digest of the file.
        tx.execute("DELETE FROM service_tokens WHERE id NOT IN (SELECT unnest($1::text[]))", &[&r.token[0]]).await?;
    }
    tx.execute(
        "INSERT INTO service_tokens (id, name, org_id, service_account_id, token_sha256, expires_at, not_before, scope)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                              $7::timestamptz[], $8::jsonb[])
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, org_id = EXCLUDED.org_id,
             service_account_id = EXCLUDED.service_account_id, token_sha256 = EXCLUDED.token_sha256,
             expires_at = EXCLUDED.expires_at, not_before = EXCLUDED.not_before, scope = EXCLUDED.scope",
        &[
            &r.token[0],
            &r.token[1],
            &r.token[2],
            &r.token[3],
            &r.token_sha256,
            &r.token_expires,
            &r.token_not_before,
            &r.token_scope,
        ],
    )
    .await?;
    // Parents once every token exists: a document may list a child first.
    tx.execute(
        "UPDATE service_tokens t SET parent_id = v.parent_id
           FROM unnest($1::text[], $2::text[]) AS v (id, parent_id)
          WHERE t.id = v.id AND t.parent_id IS DISTINCT FROM v.parent_id",
        &[&r.token[0], &r.token_parent],
    )
    .await?;
    if replace {
        for (table, ids) in [
            ("acls", &r.acl[0]),
            ("roles", &r.role[0]),
            ("groups", &r.group[0]),
            ("datasets", &r.dataset[0]),
            ("experiments", &r.experiment[0]),
            ("projects", &r.project[0]),
            ("users", &r.user[0]),
            ("organizations", &r.org[0]),
        ] {
            tx.execute(&format!("DELETE FROM {table} WHERE id NOT IN (SELECT unnest($1::text[]))"), &[ids]).await?;
        }
    }
    // What `defer_checks` dropped, rebuilt from the loaded rows: each index
    // sorted once, each foreign key checked by one join (an error here,
    // a dangling reference, rolls the whole import back).
    for statement in &deferred {
        tx.batch_execute(statement).await?;
    }
    let revision: i64 = tx.query_one("SELECT revision FROM policy_revision WHERE singleton", &[]).await?.get(0);
    tx.commit().await?;
    if r.bulk() {
        // Statistics for the planner (autovacuum would take its time), and
        // the visibility map, without which the slice loader's index-only
        // scans read every ACL's heap page. Outside the transaction (VACUUM
        // cannot run in one); a failure leaves only the plans worse.
        if let Err(e) = client.batch_execute(VACUUM).await {
            tracing::warn!(error = %e, "VACUUM ANALYZE after a bulk import failed");
        }
    }
    Ok(revision)
}

/// The tables a bulk load fills (a row per token, user, ACL, membership).
const BULK_TABLES: &str = "'users', 'group_member_users', 'acls', 'service_tokens'";

/// A bulk load into a store without tokens, users, ACLs or memberships yet
/// (a new store): drops the secondary indexes and foreign keys of those
/// tables for the length of the transaction, and returns the statements
/// that restore them exactly (their definitions as the catalog has them),
/// to run after the rows are in. Maintaining them row by row is most of a
/// million-token import; building them afterwards is a sort and a join.
/// The drops lock the tables until commit; the store held nothing to
/// decide on. Otherwise (rows present) nothing is dropped.
async fn defer_checks(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<String>, Error> {
    let empty = tx
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM group_member_users)
                AND NOT EXISTS (SELECT 1 FROM acls) AND NOT EXISTS (SELECT 1 FROM service_tokens)",
            &[],
        )
        .await?
        .get::<_, bool>(0);
    if !empty {
        return Ok(Vec::new());
    }
    tx.batch_execute("SET LOCAL maintenance_work_mem = '512MB'").await?;
    // Foreign keys held by those tables (referencing others or each other).
    let keys = tx
        .query(
            &format!(
                "SELECT format('%I', c.conrelid::regclass::text), format('%I', c.conname), pg_get_constraintdef(c.oid)
                   FROM pg_constraint c
                  WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
                    AND c.conrelid::regclass::text IN ({BULK_TABLES})
                  ORDER BY 1, 2"
            ),
            &[],
        )
        .await?;
    // Indexes that back no constraint (primary keys and unique constraints
    // stay: the upserts need them).
    let indexes = tx
        .query(
            &format!(
                "SELECT format('%I', i.indexrelid::regclass::text), pg_get_indexdef(i.indexrelid)
                   FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                  WHERE t.relnamespace = current_schema()::regnamespace AND t.relname IN ({BULK_TABLES})
                    AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                  ORDER BY 1"
            ),
            &[],
        )
        .await?;
    let mut restore = Vec::new();
    for k in &keys {
        let (table, name, def): (String, String, String) = (k.get(0), k.get(1), k.get(2));
        tx.batch_execute(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}")).await?;
        restore.push(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"));
    }
    for i in &indexes {
        let (name, def): (String, String) = (i.get(0), i.get(1));
        tx.batch_execute(&format!("DROP INDEX {name}")).await?;
        restore.insert(0, def);
    }
    Ok(restore)
}

/// Every policy table, after a bulk import.
const VACUUM: &str = "VACUUM (ANALYZE) organizations, projects, experiments, datasets, users, groups,
    group_member_users, group_member_groups, roles, role_permissions, role_member_roles, acls, service_tokens,
    policy_changes";
