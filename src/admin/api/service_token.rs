//! `/v1/service_token`: create (returns the raw `bt-st-` token once, as
//! `key`; only its SHA-256 is stored), list, get, delete (by id in the
//! path, or `{"id"}` in the body; derived tokens go with their parent),
//! and PATCH of the narrowing fields (`scope`, `not_before`, `expires_at`).
//!
//! `name` and `service_account_id` are required, as the spec says; service
//! accounts themselves come with the policy (`loggate policy import`).

use super::{
    ApiRequest, Fields, Filter, bad, body_object, in_transaction, limit_sql, new_id, not_allowed, not_found,
    org_filter, resolve_org, ts,
};
use crate::error::GatewayError;
use crate::policy::postgres::PgStore;
use crate::policy::postgres::timestamptz;
use http::Method;
use loggate_model::{Scope, Timestamp, TokenDigest};
use serde_json::{Value, json};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{GenericClient, Row};

const SELECT: &str = "SELECT t.id, t.created, t.name, t.preview_name, t.service_account_id, u.name, t.org_id,
          t.expires_at, t.not_before, t.scope, t.parent_id
   FROM service_tokens t JOIN users u ON u.id = t.service_account_id";

/// The fields loggate adds to the spec's token (contract: "Scoped and
/// derived tokens"), settable on create and by PATCH.
const NARROWING: [&str; 3] = ["scope", "not_before", "expires_at"];

fn to_json(r: &Row) -> Value {
    json!({
        "id": r.get::<_, String>(0),
        "created": ts(r.get(1)),
        "name": r.get::<_, String>(2),
        "preview_name": r.get::<_, Option<String>>(3).unwrap_or_else(|| "bt-st-…".into()),
        "service_account_id": r.get::<_, String>(4),
        "service_account_email": null,
        "service_account_name": r.get::<_, String>(5),
        "org_id": r.get::<_, String>(6),
        "expires_at": ts(r.get(7)),
        "not_before": ts(r.get(8)),
        "scope": r.get::<_, Option<Value>>(9),
        "parent_id": r.get::<_, Option<String>>(10),
    })
}

/// A column to set and its value.
type Assignment = (&'static str, Box<dyn ToSql + Sync + Send>);

/// The narrowing fields present in `f`, checked, as SQL parameters:
/// `(column, value)`; null clears.
fn narrowing(f: &Fields<'_>) -> Result<Vec<Assignment>, GatewayError> {
    let mut set: Vec<Assignment> = Vec::new();
    if let Some(scope) = f.typed::<Scope>("scope")? {
        set.push(("scope", Box::new(scope.map(Json))));
    }
    for column in ["not_before", "expires_at"] {
        if let Some(t) = f.typed::<Timestamp>(column)? {
            set.push((column, Box::new(timestamptz(t))));
        }
    }
    Ok(set)
}

/// Applies `set` to token `id` (one UPDATE; the change trigger announces
/// it), and refuses a validity window that the result leaves empty (the
/// caller's transaction then rolls back): such a token could never be used,
/// which is always a mistake worth saying.
async fn narrow(
    c: &impl GenericClient,
    id: &str,
    set: &[(&'static str, Box<dyn ToSql + Sync + Send>)],
) -> Result<(), GatewayError> {
    if set.is_empty() {
        return Ok(());
    }
    let assignments: Vec<String> = set.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 2)).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
    params.extend(set.iter().map(|(_, v)| &**v as &(dyn ToSql + Sync)));
    let empty_window = c
        .query_one(
            &format!(
                "UPDATE service_tokens SET {} WHERE id = $1 RETURNING coalesce(not_before >= expires_at, false)",
                assignments.join(", ")
            ),
            &params,
        )
        .await?;
    if empty_window.get::<_, bool>(0) {
        return Err(bad("not_before", "not_before must be earlier than expires_at: the token would never be valid"));
    }
    Ok(())
}

async fn get(c: &impl GenericClient, id: &str) -> Result<Option<Value>, GatewayError> {
    Ok(c.query_opt(&format!("{SELECT} WHERE t.id = $1"), &[&id]).await?.map(|r| to_json(&r)))
}

async fn delete(pg: &PgStore, id: &str) -> Result<Value, GatewayError> {
    in_transaction(pg, async |tx| {
        let token = get(tx, id).await?.ok_or_else(|| not_found("service_token", id))?;
        tx.execute("DELETE FROM service_tokens WHERE id = $1", &[&id]).await?;
        Ok(token)
    })
    .await
}

pub async fn route(pg: &PgStore, req: &ApiRequest<'_>, rest: &[&str]) -> Result<Value, GatewayError> {
    let m = req.method;
    match rest {
        [] if m == Method::POST => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            let name = f.req_str("name")?;
            let org_name = f.opt_str("org_name")?;
            let account = f.req_str("service_account_id")?;
            if body.get("parent_id").is_some_and(|p| !p.is_null()) {
                return Err(bad(
                    "parent_id",
                    "the admin API creates root tokens only; derive a token with POST /v1/service_token/derive on the gateway, authenticated by its parent",
                ));
            }
            let set = narrowing(&f)?;
            let token = loggate_model::token::generate();
            let digest = TokenDigest::of(&token).to_hex();
            let mut created = in_transaction(pg, async |tx| {
                let (org, _) = resolve_org(tx, org_name.as_deref()).await?;
                if tx.query_opt("SELECT 1 FROM users WHERE id = $1", &[&account]).await?.is_none() {
                    return Err(bad("service_account_id", format!("unknown user '{}'", super::truncate(&account))));
                }
                let id = new_id();
                tx.execute(
                    "INSERT INTO service_tokens (id, name, org_id, service_account_id, token_sha256, preview_name)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&id, &name, &org, &account, &digest, &loggate_model::token::preview(&token)],
                )
                .await?;
                narrow(tx, &id, &set).await?;
                Ok(get(tx, &id).await?.expect("just written"))
            })
            .await?;
            created["key"] = Value::String(token);
            Ok(created)
        }
        [] if m == Method::GET => {
            let conn = pg.conn().await?;
            let mut f = Filter::default();
            f.eq("t.org_id", org_filter(&*conn, &req.query).await?);
            f.eq("t.name", req.query.get("service_token_name").map(str::to_owned));
            f.ids("t.id", req.query.all("ids"));
            let sql = format!("{SELECT} WHERE {} ORDER BY t.created, t.id{}", f.sql(), limit_sql(req.query.limit()?));
            let rows = conn.query(&sql, &f.params()).await?;
            conn.release();
            Ok(json!({ "objects": rows.iter().map(to_json).collect::<Vec<_>>() }))
        }
        [] if m == Method::DELETE => {
            let body = body_object(&req.body)?;
            let id = Fields::new(&body).req_str("id")?;
            delete(pg, &id).await
        }
        [id] if m == Method::GET => {
            let conn = pg.conn().await?;
            let token = get(&*conn, id).await?;
            conn.release();
            token.ok_or_else(|| not_found("service_token", id))
        }
        [id] if m == Method::DELETE => delete(pg, id).await,
        [id] if m == Method::PATCH => {
            let body = body_object(&req.body)?;
            let f = Fields::new(&body);
            if let Some(other) = body.keys().find(|k| !NARROWING.contains(&k.as_str())) {
                return Err(bad(
                    other,
                    format!(
                        "PATCH changes only {}; '{}' cannot be changed",
                        NARROWING.join(", "),
                        super::truncate(other)
                    ),
                ));
            }
            let set = narrowing(&f)?;
            in_transaction(pg, async |tx| {
                get(tx, id).await?.ok_or_else(|| not_found("service_token", id))?;
                narrow(tx, id, &set).await?;
                Ok(get(tx, id).await?.expect("still there"))
            })
            .await
        }
        [] | [_] => Err(not_allowed(m)),
        _ => Err(GatewayError::NotFound("no such admin API route".into())),
    }
}
