//! `/v1/role`: create (an existing name in the org returns that role),
//! list, get, patch (name, description, add/remove member permissions and
//! roles), delete.

use super::{
    ApiRequest, Fields, Filter, bad, body_object, check_members, existing_or_insert, in_transaction, limit_sql,
    not_allowed, not_found, org_filter, resolve_org, soft_delete, ts,
};
use crate::error::GatewayError;
use crate::policy::postgres::PgStore;
use http::Method;
use loggate_model::types::{ObjectType, Permission};
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};

const SELECT: &str = "SELECT x.id, x.org_id, x.created, x.name, x.description,
        ARRAY(SELECT p.permission FROM role_permissions p WHERE p.role_id = x.id
               ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
        ARRAY(SELECT p.restrict_object_type FROM role_permissions p WHERE p.role_id = x.id
               ORDER BY p.permission, p.restrict_object_type NULLS FIRST),
        ARRAY(SELECT m.member_role_id FROM role_member_roles m WHERE m.role_id = x.id ORDER BY 1),
        x.deleted_at
   FROM roles x";

fn to_json(r: &Row) -> Value {
    let permissions: Vec<String> = r.get(5);
    let restricts: Vec<Option<String>> = r.get(6);
    json!({
        "id": r.get::<_, String>(0),
        "org_id": r.get::<_, Option<String>>(1),
        "user_id": null,
        "created": ts(r.get(2)),
        "name": r.get::<_, String>(3),
        "description": r.get::<_, Option<String>>(4),
        "deleted_at": ts(r.get(8)),
        "member_permissions": permissions.into_iter().zip(restricts)
            .map(|(p, t)| json!({"permission": p, "restrict_object_type": t}))
            .collect::<Vec<_>>(),
        "member_roles": r.get::<_, Vec<String>>(7),
    })
}

/// A live role.
async fn get(c: &impl GenericClient, id: &str) -> Result<Option<Value>, GatewayError> {
    Ok(c.query_opt(&format!("{SELECT} WHERE x.id = $1 AND x.deleted_at IS NULL"), &[&id]).await?.map(|r| to_json(&r)))
}

/// A role, deleted or not.
async fn get_any(c: &impl GenericClient, id: &str) -> Result<Option<Value>, GatewayError> {
    Ok(c.query_opt(&format!("{SELECT} WHERE x.id = $1"), &[&id]).await?.map(|r| to_json(&r)))
}

/// `[(permission, restrict_object_type)]` from a list of objects.
fn permissions(f: &Fields<'_>, name: &str) -> Result<(Vec<String>, Vec<Option<String>>), GatewayError> {
    let mut out = (Vec::new(), Vec::new());
    for (i, m) in f.object_list(name)?.into_iter().enumerate() {
        let item = Fields::nested(m, format!("{name}[{i}]."));
        let p = item
            .opt_enum::<Permission>("permission", "Permission")?
            .ok_or_else(|| bad(item.field("permission"), "permission is required"))?;
        let t = item.opt_enum::<ObjectType>("restrict_object_type", "AclObjectType")?;
        out.0.push(p.as_str().to_owned());
        out.1.push(t.map(|t| t.as_str().to_owned()));
    }
    Ok(out)
}

async fn add_members(
    c: &impl GenericClient,
    id: &str,
    perms: &(Vec<String>, Vec<Option<String>>),
    roles: &[String],
) -> Result<(), GatewayError> {
    c.execute(
        "INSERT INTO role_permissions (role_id, permission, restrict_object_type)
         SELECT $1, p, t FROM unnest($2::text[], $3::text[]) AS d (p, t)
         ON CONFLICT (role_id, permission, coalesce(restrict_object_type, '')) DO NOTHING",
        &[&id, &perms.0, &perms.1],
    )
    .await?;
    c.execute(
        "INSERT INTO role_member_roles (role_id, member_role_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        &[&id, &roles],
    )
    .await?;
    Ok(())
}

pub async fn route(pg: &PgStore, req: &ApiRequest<'_>, rest: &[&str]) -> Result<Value, GatewayError> {
    let m = req.method;
    match rest {
        [] if m == Method::POST => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.req_str("name")?;
            let description = f.opt_str("description")?;
            let perms = permissions(&f, "member_permissions")?;
            let roles = f.str_list("member_roles")?;
            let org_name = f.opt_str("org_name")?;
            in_transaction(pg, async |tx| {
                let (org, _) = resolve_org(tx, org_name.as_deref()).await?;
                let id = existing_or_insert(tx, "roles", &org, &name, &description, async |id| {
                    check_members(tx, "roles", &org, &roles, |i| format!("member_roles[{i}]"), "role").await?;
                    add_members(tx, id, &perms, &roles).await
                })
                .await?;
                Ok(get(tx, &id).await?.expect("just written"))
            })
            .await
        }
        [] if m == Method::GET => {
            let conn = pg.conn().await?;
            let mut f = Filter::default();
            f.always("x.deleted_at IS NULL");
            if let Some(org) = org_filter(&*conn, &req.query).await? {
                // System roles (no org) are assignable in every organization.
                f.push(|n| format!("(x.org_id = ${n} OR x.org_id IS NULL)"), org);
            }
            f.eq("x.name", req.query.get("role_name").map(str::to_owned));
            f.ids("x.id", req.query.all("ids"));
            let sql = format!("{SELECT} WHERE {} ORDER BY x.created, x.id{}", f.sql(), limit_sql(req.query.limit()?));
            let rows = conn.query(&sql, &f.params()).await?;
            conn.release();
            Ok(json!({ "objects": rows.iter().map(to_json).collect::<Vec<_>>() }))
        }
        [id] if m == Method::GET => {
            let conn = pg.conn().await?;
            let role = get(&*conn, id).await?;
            conn.release();
            role.ok_or_else(|| not_found("role", id))
        }
        [id] if m == Method::PATCH => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.opt_nonempty("name")?;
            let description = f.opt_str("description")?;
            let add_perms = permissions(&f, "add_member_permissions")?;
            let remove_perms = permissions(&f, "remove_member_permissions")?;
            let add_roles = f.str_list("add_member_roles")?;
            let remove_roles = f.str_list("remove_member_roles")?;
            in_transaction(pg, async |tx| {
                let Some(row) = tx
                    .query_opt("SELECT org_id FROM roles WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", &[id])
                    .await?
                else {
                    return Err(not_found("role", id));
                };
                // A system role (no org) may only list system roles.
                let org: Option<String> = row.get(0);
                let org = org.unwrap_or_default();
                check_members(tx, "roles", &org, &add_roles, |i| format!("add_member_roles[{i}]"), "role").await?;
                if let Some(name) = &name {
                    tx.execute("UPDATE roles SET name = $2 WHERE id = $1", &[id, name]).await?;
                }
                if body.contains_key("description") {
                    tx.execute("UPDATE roles SET description = $2 WHERE id = $1", &[id, &description]).await?;
                }
                tx.execute(
                    "DELETE FROM role_permissions r USING unnest($2::text[], $3::text[]) AS d (p, t)
                      WHERE r.role_id = $1 AND r.permission = d.p
                        AND r.restrict_object_type IS NOT DISTINCT FROM d.t",
                    &[id, &remove_perms.0, &remove_perms.1],
                )
                .await?;
                tx.execute(
                    "DELETE FROM role_member_roles WHERE role_id = $1 AND member_role_id = ANY ($2::text[])",
                    &[id, &remove_roles],
                )
                .await?;
                add_members(tx, id, &add_perms, &add_roles).await?;
                Ok(get(tx, id).await?.expect("locked"))
            })
            .await
        }
        [id] if m == Method::DELETE => {
            // Soft deletion: a deleted role grants nothing, also as a member.
            in_transaction(pg, async |tx| {
                if !soft_delete(tx, "roles", id).await? {
                    return Err(not_found("role", id));
                }
                Ok(get_any(tx, id).await?.expect("locked by the update"))
            })
            .await
        }
        [] | [_] => Err(not_allowed(m)),
        _ => Err(GatewayError::NotFound("no such admin API route".into())),
    }
}
