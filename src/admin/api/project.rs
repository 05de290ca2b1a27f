//! `/v1/project`: create (an existing live name in the org returns that
//! project), list, get, patch (name, description), delete = soft delete
//! (`deleted_at`; its objects stop being writable). Deleted projects are
//! gone for the API: their ids answer 404.

use super::{
    ApiRequest, Fields, Filter, bad, body_object, in_transaction, limit_sql, lock_name, new_id, not_allowed, not_found,
    org_filter, resolve_org, ts,
};
use crate::error::GatewayError;
use crate::policy::postgres::PgStore;
use http::Method;
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};

const SELECT: &str = "SELECT p.id, p.org_id, p.name, p.description, p.created, p.deleted_at FROM projects p";

fn to_json(r: &Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "org_id": r.get::<_, String>(1),
        "name": r.get::<_, String>(2),
        "description": r.get::<_, Option<String>>(3),
        "created": ts(r.get(4)),
        "deleted_at": ts(r.get(5)),
        "user_id": null,
    })
}

async fn get_live(c: &impl GenericClient, id: &str, lock: bool) -> Result<Option<Value>, GatewayError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(c.query_opt(&format!("{SELECT} WHERE p.id = $1 AND p.deleted_at IS NULL{lock}"), &[&id])
        .await?
        .map(|r| to_json(&r)))
}

pub async fn route(pg: &PgStore, req: &ApiRequest<'_>, rest: &[&str]) -> Result<Value, GatewayError> {
    let m = req.method;
    match rest {
        [] if m == Method::POST => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.req_str("name")?;
            let description = f.opt_str("description")?;
            let org_name = f.opt_str("org_name")?;
            in_transaction(pg, async |tx| {
                let (org, _) = resolve_org(tx, org_name.as_deref()).await?;
                lock_name(tx, &format!("project:{org}:{name}")).await?;
                let existing = tx
                    .query_opt(
                        &format!("{SELECT} WHERE p.org_id = $1 AND p.name = $2 AND p.deleted_at IS NULL ORDER BY p.created, p.id LIMIT 1"),
                        &[&org, &name],
                    )
                    .await?;
                let project = match existing {
                    Some(r) => to_json(&r),
                    None => {
                        let row = tx
                            .query_one(
                                "INSERT INTO projects (id, org_id, name, description) VALUES ($1, $2, $3, $4)
                                 RETURNING id, org_id, name, description, created, deleted_at",
                                &[&new_id(), &org, &name, &description],
                            )
                            .await?;
                        to_json(&row)
                    }
                };
                Ok(project)
            })
            .await
        }
        [] if m == Method::GET => {
            let conn = pg.conn().await?;
            let mut f = Filter::default();
            f.clauses.push("p.deleted_at IS NULL".into());
            f.eq("p.org_id", org_filter(&*conn, &req.query).await?);
            f.eq("p.name", req.query.get("project_name").map(str::to_owned));
            f.ids("p.id", req.query.all("ids"));
            let sql = format!("{SELECT} WHERE {} ORDER BY p.created, p.id{}", f.sql(), limit_sql(req.query.limit()?));
            let rows = conn.query(&sql, &f.params()).await?;
            conn.release();
            Ok(json!({ "objects": rows.iter().map(to_json).collect::<Vec<_>>() }))
        }
        [id] if m == Method::GET => {
            let conn = pg.conn().await?;
            let project = get_live(&*conn, id, false).await?;
            conn.release();
            project.ok_or_else(|| not_found("project", id))
        }
        [id] if m == Method::PATCH => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.opt_nonempty("name")?;
            let description = f.opt_str("description")?;
            in_transaction(pg, async |tx| {
                let current = get_live(tx, id, true).await?.ok_or_else(|| not_found("project", id))?;
                if let Some(name) = &name {
                    let org = current["org_id"].as_str().unwrap_or_default();
                    lock_name(tx, &format!("project:{org}:{name}")).await?;
                    let clash = tx
                        .query_opt(
                            "SELECT 1 FROM projects WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL AND id <> $3",
                            &[&org, name, id],
                        )
                        .await?;
                    if clash.is_some() {
                        return Err(bad("name", format!("another project of the organization is named '{}'", super::truncate(name))));
                    }
                    tx.execute("UPDATE projects SET name = $2 WHERE id = $1", &[id, name]).await?;
                }
                if body.contains_key("description") {
                    tx.execute("UPDATE projects SET description = $2 WHERE id = $1", &[id, &description]).await?;
                }
                Ok(get_live(tx, id, false).await?.expect("locked"))
            })
            .await
        }
        [id] if m == Method::DELETE => {
            let conn = pg.conn().await?;
            let row = conn
                .query_opt(
                    "UPDATE projects SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL
                     RETURNING id, org_id, name, description, created, deleted_at",
                    &[id],
                )
                .await?;
            conn.release();
            row.map(|r| to_json(&r)).ok_or_else(|| not_found("project", id))
        }
        [] | [_] => Err(not_allowed(m)),
        _ => Err(GatewayError::NotFound("no such admin API route".into())),
    }
}
