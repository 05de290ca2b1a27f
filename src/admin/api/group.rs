//! `/v1/group`: create (an existing name in the org returns that group),
//! list, get, patch (name, description, add/remove member users/groups),
//! delete.

use super::{
    ApiRequest, Fields, Filter, body_object, check_ids, check_members, existing_or_insert, in_transaction, limit_sql,
    not_allowed, not_found, org_filter, resolve_org, soft_delete, ts,
};
use crate::error::GatewayError;
use crate::policy::postgres::PgStore;
use http::Method;
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};

const SELECT: &str = "SELECT g.id, g.org_id, g.created, g.name, g.description,
        ARRAY(SELECT m.user_id FROM group_member_users m WHERE m.group_id = g.id ORDER BY 1),
        ARRAY(SELECT m.member_group_id FROM group_member_groups m WHERE m.group_id = g.id ORDER BY 1),
        g.deleted_at
   FROM groups g";

fn to_json(r: &Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "org_id": r.get::<_, String>(1),
        "user_id": null,
        "created": ts(r.get(2)),
        "name": r.get::<_, String>(3),
        "description": r.get::<_, Option<String>>(4),
        "deleted_at": ts(r.get(7)),
        "member_users": r.get::<_, Vec<String>>(5),
        "member_groups": r.get::<_, Vec<String>>(6),
    })
}

/// A live group.
async fn get(c: &impl GenericClient, id: &str) -> Result<Option<Value>, GatewayError> {
    Ok(c.query_opt(&format!("{SELECT} WHERE g.id = $1 AND g.deleted_at IS NULL"), &[&id]).await?.map(|r| to_json(&r)))
}

/// A group, deleted or not.
async fn get_any(c: &impl GenericClient, id: &str) -> Result<Option<Value>, GatewayError> {
    Ok(c.query_opt(&format!("{SELECT} WHERE g.id = $1"), &[&id]).await?.map(|r| to_json(&r)))
}

async fn add_members(
    c: &impl GenericClient,
    id: &str,
    users: &[String],
    groups: &[String],
) -> Result<(), GatewayError> {
    c.execute(
        "INSERT INTO group_member_users (group_id, user_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        &[&id, &users],
    )
    .await?;
    c.execute(
        "INSERT INTO group_member_groups (group_id, member_group_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        &[&id, &groups],
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
            let users = f.str_list("member_users")?;
            let groups = f.str_list("member_groups")?;
            let org_name = f.opt_str("org_name")?;
            in_transaction(pg, async |tx| {
                let (org, _) = resolve_org(tx, org_name.as_deref()).await?;
                let id = existing_or_insert(tx, "groups", &org, &name, &description, async |id| {
                    check_ids(tx, "users", &users, |i| format!("member_users[{i}]"), "user").await?;
                    check_members(tx, "groups", &org, &groups, |i| format!("member_groups[{i}]"), "group").await?;
                    add_members(tx, id, &users, &groups).await
                })
                .await?;
                Ok(get(tx, &id).await?.expect("just written"))
            })
            .await
        }
        [] if m == Method::GET => {
            let conn = pg.conn().await?;
            let mut f = Filter::default();
            f.always("g.deleted_at IS NULL");
            f.eq("g.org_id", org_filter(&*conn, &req.query).await?);
            f.eq("g.name", req.query.get("group_name").map(str::to_owned));
            f.ids("g.id", req.query.all("ids"));
            let sql = format!("{SELECT} WHERE {} ORDER BY g.created, g.id{}", f.sql(), limit_sql(req.query.limit()?));
            let rows = conn.query(&sql, &f.params()).await?;
            conn.release();
            Ok(json!({ "objects": rows.iter().map(to_json).collect::<Vec<_>>() }))
        }
        [id] if m == Method::GET => {
            let conn = pg.conn().await?;
            let group = get(&*conn, id).await?;
            conn.release();
            group.ok_or_else(|| not_found("group", id))
        }
        [id] if m == Method::PATCH => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.opt_nonempty("name")?;
            let description = f.opt_str("description")?;
            let add_users = f.str_list("add_member_users")?;
            let remove_users = f.str_list("remove_member_users")?;
            let add_groups = f.str_list("add_member_groups")?;
            let remove_groups = f.str_list("remove_member_groups")?;
            in_transaction(pg, async |tx| {
                let Some(row) = tx
                    .query_opt("SELECT org_id FROM groups WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", &[id])
                    .await?
                else {
                    return Err(not_found("group", id));
                };
                let org: String = row.get(0);
                check_ids(tx, "users", &add_users, |i| format!("add_member_users[{i}]"), "user").await?;
                check_members(tx, "groups", &org, &add_groups, |i| format!("add_member_groups[{i}]"), "group").await?;
                if let Some(name) = &name {
                    tx.execute("UPDATE groups SET name = $2 WHERE id = $1", &[id, name]).await?;
                }
                if body.contains_key("description") {
                    tx.execute("UPDATE groups SET description = $2 WHERE id = $1", &[id, &description]).await?;
                }
                tx.execute(
                    "DELETE FROM group_member_users WHERE group_id = $1 AND user_id = ANY ($2::text[])",
                    &[id, &remove_users],
                )
                .await?;
                tx.execute(
                    "DELETE FROM group_member_groups WHERE group_id = $1 AND member_group_id = ANY ($2::text[])",
                    &[id, &remove_groups],
                )
                .await?;
                add_members(tx, id, &add_users, &add_groups).await?;
                Ok(get(tx, id).await?.expect("locked"))
            })
            .await
        }
        [id] if m == Method::DELETE => {
            // Soft deletion: a deleted group contains nobody and grants nothing.
            in_transaction(pg, async |tx| {
                if !soft_delete(tx, "groups", id).await? {
                    return Err(not_found("group", id));
                }
                Ok(get_any(tx, id).await?.expect("locked by the update"))
            })
            .await
        }
        [] | [_] => Err(not_allowed(m)),
        _ => Err(GatewayError::NotFound("no such admin API route".into())),
    }
}
