//! `/v1/acl`: create (idempotent), list by object, get, delete (by id or by
//! content), `batch_update`, `list_org`.

use super::{
    ApiRequest, Fields, Filter, Query, bad, body_object, in_transaction, limit_sql, lock_name, new_id, not_allowed,
    not_found, resolve_org, truncate, ts,
};
use crate::error::GatewayError;
use crate::policy::postgres::PgStore;
use http::Method;
use loggate_model::types::{ObjectType, Permission};
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};

const COLUMNS: &str =
    "id, object_type, object_id, user_id, group_id, permission, role_id, restrict_object_type, object_org_id, created";

fn to_json(r: &Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "object_type": r.get::<_, String>(1),
        "object_id": r.get::<_, String>(2),
        "user_id": r.get::<_, Option<String>>(3),
        "group_id": r.get::<_, Option<String>>(4),
        "permission": r.get::<_, Option<String>>(5),
        "role_id": r.get::<_, Option<String>>(6),
        "restrict_object_type": r.get::<_, Option<String>>(7),
        "_object_org_id": r.get::<_, Option<String>>(8).unwrap_or_default(),
        "created": ts(r.get(9)),
    })
}

/// An `AclItem` of the spec, checked for shape.
struct Item {
    object_type: ObjectType,
    object_id: String,
    user_id: Option<String>,
    group_id: Option<String>,
    permission: Option<Permission>,
    role_id: Option<String>,
    restrict_object_type: Option<ObjectType>,
    /// The organization an ACL on an untracked object type (a prompt…) is
    /// stored under; may be omitted when the store holds one organization.
    org_name: Option<String>,
    /// `add_acls[3].` etc.
    prefix: String,
}

impl Item {
    fn parse(f: &Fields<'_>) -> Result<Item, GatewayError> {
        let object_type = f
            .opt_enum::<ObjectType>("object_type", "AclObjectType")?
            .ok_or_else(|| bad(f.field("object_type"), "object_type is required"))?;
        let object_id = f.req_str("object_id")?;
        let user_id = f.opt_nonempty("user_id")?;
        let group_id = f.opt_nonempty("group_id")?;
        let permission = f.opt_enum::<Permission>("permission", "Permission")?;
        let role_id = f.opt_nonempty("role_id")?;
        let restrict_object_type = f.opt_enum::<ObjectType>("restrict_object_type", "AclObjectType")?;
        match (&user_id, &group_id) {
            (Some(_), Some(_)) => {
                return Err(bad(f.field("group_id"), "exactly one of user_id and group_id is allowed; both are set"));
            }
            (None, None) => {
                return Err(bad(f.field("user_id"), "exactly one of user_id and group_id is required"));
            }
            _ => {}
        }
        match (&permission, &role_id) {
            (Some(_), Some(_)) => {
                return Err(bad(f.field("role_id"), "exactly one of permission and role_id is allowed; both are set"));
            }
            (None, None) => {
                return Err(bad(f.field("permission"), "exactly one of permission and role_id is required"));
            }
            _ => {}
        }
        if role_id.is_some() && restrict_object_type.is_some() {
            return Err(bad(f.field("restrict_object_type"), "restrict_object_type cannot be set alongside role_id"));
        }
        Ok(Item {
            object_type,
            object_id,
            user_id,
            group_id,
            permission,
            role_id,
            restrict_object_type,
            org_name: f.opt_str("org_name")?,
            prefix: f.prefix.clone(),
        })
    }

    fn params(&self) -> [Option<&str>; 5] {
        [
            self.user_id.as_deref(),
            self.group_id.as_deref(),
            self.permission.map(|p| p.as_str()),
            self.role_id.as_deref(),
            self.restrict_object_type.map(|t| t.as_str()),
        ]
    }

    /// Checks every referenced id; returns the object's organization.
    async fn check(&self, c: &impl GenericClient) -> Result<Option<String>, GatewayError> {
        let field = |name: &str| format!("{}{name}", self.prefix);
        let id = &self.object_id;
        let org_sql = match self.object_type {
            ObjectType::Organization | ObjectType::OrgMember | ObjectType::OrgProject | ObjectType::OrgAuditLogs => {
                Some("SELECT id FROM organizations WHERE id = $1")
            }
            ObjectType::Project | ObjectType::ProjectLog => {
                Some("SELECT org_id FROM projects WHERE id = $1 AND deleted_at IS NULL")
            }
            ObjectType::Experiment => Some(
                "SELECT p.org_id FROM experiments e JOIN projects p ON p.id = e.project_id
                  WHERE e.id = $1 AND e.deleted_at IS NULL AND p.deleted_at IS NULL",
            ),
            ObjectType::Dataset => Some(
                "SELECT p.org_id FROM datasets d JOIN projects p ON p.id = d.project_id
                  WHERE d.id = $1 AND d.deleted_at IS NULL AND p.deleted_at IS NULL",
            ),
            ObjectType::Group => Some("SELECT org_id FROM groups WHERE id = $1 AND deleted_at IS NULL"),
            ObjectType::Role => Some("SELECT coalesce(org_id, '') FROM roles WHERE id = $1 AND deleted_at IS NULL"),
            // Prompts are not described by the policy: any id is accepted.
            ObjectType::Prompt | ObjectType::PromptSession => None,
        };
        let org = match org_sql {
            Some(sql) => {
                let row = c.query_opt(sql, &[id]).await?.ok_or_else(|| {
                    bad(field("object_id"), format!("unknown {} '{}'", self.object_type, truncate(id)))
                })?;
                Some(row.get::<_, String>(0)).filter(|o| !o.is_empty())
            }
            // Untracked objects are stored under the named (or only) org.
            None => Some(resolve_org(c, self.org_name.as_deref()).await?.0),
        };
        if let Some(u) = &self.user_id
            && c.query_opt("SELECT 1 FROM users WHERE id = $1", &[u]).await?.is_none()
        {
            return Err(bad(field("user_id"), format!("unknown user '{}'", truncate(u))));
        }
        // A group or a (non-system) role grants only in its own
        // organization: naming one of another is refused, as the loader
        // leaves such an ACL out.
        for (name, table, value) in [("group_id", "groups", &self.group_id), ("role_id", "roles", &self.role_id)] {
            let Some(v) = value else { continue };
            let what = &name[..name.len() - 3];
            let row = c
                .query_opt(&format!("SELECT org_id FROM {table} WHERE id = $1 AND deleted_at IS NULL"), &[v])
                .await?
                .ok_or_else(|| bad(field(name), format!("unknown {what} '{}'", truncate(v))))?;
            let owner: Option<String> = row.get(0);
            if let (Some(owner), Some(org)) = (&owner, &org)
                && owner != org
            {
                return Err(bad(
                    field(name),
                    format!("{what} '{}' belongs to another organization than the object", truncate(v)),
                ));
            }
        }
        Ok(org)
    }

    /// The identical existing ACLs.
    async fn find(&self, c: &impl GenericClient) -> Result<Vec<Row>, GatewayError> {
        let [u, g, p, r, t] = self.params();
        Ok(c.query(
            &format!(
                "SELECT {COLUMNS} FROM acls WHERE object_type = $1 AND object_id = $2
                   AND user_id IS NOT DISTINCT FROM $3 AND group_id IS NOT DISTINCT FROM $4
                   AND permission IS NOT DISTINCT FROM $5 AND role_id IS NOT DISTINCT FROM $6
                   AND restrict_object_type IS NOT DISTINCT FROM $7
                 ORDER BY created, id"
            ),
            &[&self.object_type.as_str(), &self.object_id, &u, &g, &p, &r, &t],
        )
        .await?)
    }

    /// Returns the identical existing ACL, or creates it.
    async fn add(&self, c: &impl GenericClient) -> Result<Value, GatewayError> {
        let org = self.check(c).await?;
        // Serialize concurrent creates of ACLs on one object (idempotency).
        lock_name(c, &format!("acl:{}:{}", self.object_type, self.object_id)).await?;
        if let Some(existing) = self.find(c).await?.first() {
            return Ok(to_json(existing));
        }
        let [u, g, p, r, t] = self.params();
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO acls (id, object_type, object_id, user_id, group_id, permission, role_id,
                                       restrict_object_type, object_org_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
                ),
                &[&new_id(), &self.object_type.as_str(), &self.object_id, &u, &g, &p, &r, &t, &org],
            )
            .await?;
        Ok(to_json(&row))
    }

    /// Deletes the identical ACLs; returns them.
    async fn remove(&self, c: &impl GenericClient) -> Result<Vec<Value>, GatewayError> {
        let mut removed = Vec::new();
        for row in self.find(c).await? {
            let id: String = row.get(0);
            c.execute("DELETE FROM acls WHERE id = $1", &[&id]).await?;
            removed.push(to_json(&row));
        }
        Ok(removed)
    }
}

pub async fn route(pg: &PgStore, req: &ApiRequest<'_>, rest: &[&str]) -> Result<Value, GatewayError> {
    let m = req.method;
    match rest {
        [] if m == Method::POST => {
            let body = body_object(&req.body)?;
            let item = Item::parse(&Fields::new(&body))?;
            in_transaction(pg, async |tx| item.add(tx).await).await
        }
        [] if m == Method::GET => list(pg, &req.query).await,
        [] if m == Method::DELETE => {
            let body = body_object(&req.body)?;
            let item = Item::parse(&Fields::new(&body))?;
            let removed = in_transaction(pg, async |tx| item.remove(tx).await).await?;
            removed.into_iter().next().ok_or_else(|| GatewayError::NotFound("no such ACL".into()))
        }
        ["batch_update"] if m == Method::POST => batch_update(pg, &req.body).await,
        ["list_org"] if m == Method::GET || m == Method::POST => {
            let body = if m == Method::POST { body_object(&req.body)? } else { Default::default() };
            list_org(pg, &req.query, &Fields::new(&body)).await
        }
        ["batch_update" | "list_org"] => Err(not_allowed(m)),
        [id] if m == Method::GET => {
            let conn = pg.conn().await?;
            let row = conn.query_opt(&format!("SELECT {COLUMNS} FROM acls WHERE id = $1"), &[id]).await?;
            conn.release();
            row.map(|r| to_json(&r)).ok_or_else(|| not_found("acl", id))
        }
        [id] if m == Method::DELETE => {
            let conn = pg.conn().await?;
            let row = conn.query_opt(&format!("DELETE FROM acls WHERE id = $1 RETURNING {COLUMNS}"), &[id]).await?;
            conn.release();
            row.map(|r| to_json(&r)).ok_or_else(|| not_found("acl", id))
        }
        [] | [_] => Err(not_allowed(m)),
        _ => Err(GatewayError::NotFound("no such admin API route".into())),
    }
}

/// Filters shared by the list endpoints.
fn filters(f: &mut Filter, q: &Query) -> Result<(), GatewayError> {
    f.eq("user_id", q.get("user_id").map(str::to_owned));
    f.eq("group_id", q.get("group_id").map(str::to_owned));
    f.eq("role_id", q.get("role_id").map(str::to_owned));
    f.eq("permission", q.opt_enum::<Permission>("permission", "Permission")?.map(|p| p.as_str().to_owned()));
    f.eq(
        "restrict_object_type",
        q.opt_enum::<ObjectType>("restrict_object_type", "AclObjectType")?.map(|t| t.as_str().to_owned()),
    );
    f.ids("id", q.all("ids"));
    Ok(())
}

/// `GET /v1/acl?object_type=…&object_id=…`: both are required (spec).
async fn list(pg: &PgStore, q: &Query) -> Result<Value, GatewayError> {
    let object_type = q
        .opt_enum::<ObjectType>("object_type", "AclObjectType")?
        .ok_or_else(|| bad("object_type", "query parameter object_type is required"))?;
    let object_id = q
        .get("object_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("object_id", "query parameter object_id is required"))?;
    let mut f = Filter::default();
    f.eq("object_type", Some(object_type.as_str().to_owned()));
    f.eq("object_id", Some(object_id.to_owned()));
    filters(&mut f, q)?;
    let sql = format!("SELECT {COLUMNS} FROM acls WHERE {} ORDER BY created, id{}", f.sql(), limit_sql(q.limit()?));
    let conn = pg.conn().await?;
    let rows = conn.query(&sql, &f.params()).await?;
    conn.release();
    Ok(json!({ "objects": rows.iter().map(to_json).collect::<Vec<_>>() }))
}

/// `list_org`: every ACL of one organization, optionally filtered; the
/// response is a bare array (spec). Parameters come from the query string,
/// or from a JSON body for `POST`.
async fn list_org(pg: &PgStore, q: &Query, body: &Fields<'_>) -> Result<Value, GatewayError> {
    let mut pairs = Vec::new();
    for key in
        ["org_name", "object_type", "object_id", "user_id", "group_id", "permission", "restrict_object_type", "role_id"]
    {
        if let Some(v) = body.opt_str(key)? {
            pairs.push((key.to_owned(), v));
        }
    }
    for id in body.str_list("ids")? {
        pairs.push(("ids".to_owned(), id));
    }
    if let Some(limit) = body.map.get("limit").filter(|v| !v.is_null()) {
        pairs.push(("limit".to_owned(), limit.as_u64().map(|n| n.to_string()).unwrap_or_else(|| "invalid".into())));
    }
    let q = if pairs.is_empty() { q } else { &Query(pairs) };
    let conn = pg.conn().await?;
    let (org, _) = resolve_org(&*conn, q.get("org_name")).await?;
    let mut f = Filter::default();
    f.eq("object_org_id", Some(org));
    f.eq("object_type", q.opt_enum::<ObjectType>("object_type", "AclObjectType")?.map(|t| t.as_str().to_owned()));
    f.eq("object_id", q.get("object_id").map(str::to_owned));
    filters(&mut f, q)?;
    let sql = format!("SELECT {COLUMNS} FROM acls WHERE {} ORDER BY created, id{}", f.sql(), limit_sql(q.limit()?));
    let rows = conn.query(&sql, &f.params()).await?;
    conn.release();
    Ok(Value::Array(rows.iter().map(to_json).collect()))
}

/// `batch_update`: removes and adds in ONE transaction (one revision).
async fn batch_update(pg: &PgStore, body: &bytes::Bytes) -> Result<Value, GatewayError> {
    let body = body_object(body)?;
    let fields = Fields::new(&body);
    let parse = |name: &str| -> Result<Vec<Item>, GatewayError> {
        fields
            .object_list(name)?
            .into_iter()
            .enumerate()
            .map(|(i, m)| Item::parse(&Fields::nested(m, format!("{name}[{i}]."))))
            .collect()
    };
    let (add, remove) = (parse("add_acls")?, parse("remove_acls")?);
    let (added, removed) = in_transaction(pg, async |tx| {
        let mut added = Vec::with_capacity(add.len());
        for item in &add {
            added.push(item.add(tx).await?);
        }
        let mut removed = Vec::new();
        for item in &remove {
            removed.extend(item.remove(tx).await?);
        }
        Ok((added, removed))
    })
    .await?;
    Ok(json!({ "added_acls": added, "removed_acls": removed }))
}
