//! The admin API (contract: Admin API): Braintrust-shaped CRUD over the postgres
//! policy store, under `/v1/` on the admin listener. Every write is one
//! transaction, hence one policy revision (the triggers announce it).
//!
//! Input is checked field by field so that every bad input is a 400 naming
//! `error.field`; unknown ids in the path are 404; the store not answering
//! within `policy.timeout` is 503 `policy_unavailable`.

mod acl;
mod group;
mod project;
mod role;
mod service_token;

use crate::error::GatewayError;
use crate::policy::postgres::{PgStore, timestamp};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{Map, Value};
use std::str::FromStr;
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

/// One admin API request, as the handlers see it.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    /// The path segments after `/v1/`.
    pub segments: Vec<&'a str>,
    pub query: Query,
    pub body: Bytes,
}

/// Serves one `/v1/…` request; `Ok` is the JSON to answer with 200.
pub async fn handle(pg: &PgStore, request: ApiRequest<'_>) -> Result<Value, GatewayError> {
    let segments = request.segments.clone();
    let Some((&resource, rest)) = segments.split_first() else {
        return Err(GatewayError::NotFound("no admin API route /v1/".into()));
    };
    let work = async {
        match resource {
            "acl" => acl::route(pg, &request, rest).await,
            "group" => group::route(pg, &request, rest).await,
            "role" => role::route(pg, &request, rest).await,
            "service_token" => service_token::route(pg, &request, rest).await,
            "project" => project::route(pg, &request, rest).await,
            _ => Err(GatewayError::NotFound(format!("no admin API resource '{}'", truncate(resource)))),
        }
    };
    match tokio::time::timeout(pg.timeout(), work).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::PolicyUnavailable),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// 405 for a method a route does not serve.
fn not_allowed(method: &Method) -> GatewayError {
    GatewayError::MethodNotAllowed(method.to_string())
}

/// 404 for an unknown id in the path.
fn not_found(what: &str, id: &str) -> GatewayError {
    GatewayError::NotFound(format!("no {what} with id '{}'", truncate(id)))
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(Some(field.into()), message)
}

/// A fresh id for a created object.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(timestamp(&t)))
}

/// The request body as a JSON object (an empty body is an empty object).
fn body_object(body: &Bytes) -> Result<Map<String, Value>, GatewayError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::bad_request(None, "the request body must be a JSON object")),
        Err(e) => Err(GatewayError::bad_request(None, format!("the request body is not valid JSON: {e}"))),
    }
}

/// Typed access to the fields of one JSON object; errors name the field
/// (with `prefix`, e.g. `add_acls[2].`).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map, prefix: String::new() }
    }

    fn nested(map: &'a Map<String, Value>, prefix: String) -> Self {
        Fields { map, prefix }
    }

    fn field(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A string or null/absent.
    fn opt_str(&self, name: &str) -> Result<Option<String>, GatewayError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(self.field(name), format!("{} must be a string", self.field(name)))),
        }
    }

    /// A non-empty string.
    fn req_str(&self, name: &str) -> Result<String, GatewayError> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(bad(self.field(name), format!("{} must not be empty", self.field(name)))),
            None => Err(bad(self.field(name), format!("{} is required", self.field(name)))),
        }
    }

    /// A value of the model's type `T`: absent (`None`), null (`Some(None)`)
    /// or given; a value that does not read as `T` is 400 naming the field.
    fn typed<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<Option<T>>, GatewayError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => T::deserialize(v)
                .map(|t| Some(Some(t)))
                .map_err(|e| bad(self.field(name), format!("{}: {}", self.field(name), truncate(&e.to_string())))),
        }
    }

    /// A non-empty string, if present.
    fn opt_nonempty(&self, name: &str) -> Result<Option<String>, GatewayError> {
        match self.opt_str(name)? {
            Some(s) if s.is_empty() => Err(bad(self.field(name), format!("{} must not be empty", self.field(name)))),
            other => Ok(other),
        }
    }

    /// A member of a closed vocabulary (`Permission`, `ObjectType`).
    fn opt_enum<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, GatewayError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| bad(self.field(name), format!("'{}' is not a valid {what}", truncate(&s)))),
        }
    }

    /// An array of strings, or null/absent (empty).
    fn str_list(&self, name: &str) -> Result<Vec<String>, GatewayError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(bad(format!("{}[{i}]", self.field(name)), "must be a string id")),
                })
                .collect(),
            Some(_) => Err(bad(self.field(name), format!("{} must be an array of ids", self.field(name)))),
        }
    }

    /// An array of objects, or null/absent (empty).
    fn object_list(&self, name: &str) -> Result<Vec<&'a Map<String, Value>>, GatewayError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(bad(format!("{}[{i}]", self.field(name)), "must be an object")),
                })
                .collect(),
            Some(_) => Err(bad(self.field(name), format!("{} must be an array", self.field(name)))),
        }
    }
}

/// Query-string parameters (percent-decoded; repeated keys kept).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%'
                    && i + 2 < bytes.len()
                    && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        Query(
            query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name || k == &format!("{name}[]")).map(|(_, v)| v.clone()).collect()
    }

    fn opt_enum<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, GatewayError> {
        self.get(name)
            .map(|s| s.parse().map_err(|_| bad(name, format!("'{}' is not a valid {what}", truncate(s)))))
            .transpose()
    }

    /// `limit`, a non-negative integer.
    fn limit(&self) -> Result<Option<i64>, GatewayError> {
        self.get("limit")
            .map(|s| s.parse::<u32>().map(i64::from).map_err(|_| bad("limit", "limit must be a non-negative integer")))
            .transpose()
    }
}

/// A WHERE clause built from optional filters, with its parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    fn push(&mut self, clause: impl FnOnce(usize) -> String, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.clauses.push(clause(self.params.len()));
    }

    /// A condition without a parameter.
    fn always(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    fn eq(&mut self, column: &str, value: Option<String>) {
        if let Some(v) = value {
            self.push(|n| format!("{column} = ${n}"), v);
        }
    }

    fn ids(&mut self, column: &str, ids: Vec<String>) {
        if !ids.is_empty() {
            self.push(|n| format!("{column} = ANY (${n}::text[])"), ids);
        }
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() { "TRUE".into() } else { self.clauses.join(" AND ") }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

fn limit_sql(limit: Option<i64>) -> String {
    limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
}

/// The organization an admin request acts in: `org_name`, or the only
/// organization of the store. `(id, name)`.
async fn resolve_org(client: &impl GenericClient, org_name: Option<&str>) -> Result<(String, String), GatewayError> {
    match org_name {
        Some(name) => {
            let row = client
                .query_opt("SELECT id, name FROM organizations WHERE name = $1 ORDER BY id LIMIT 1", &[&name])
                .await?;
            row.map(|r| (r.get(0), r.get(1)))
                .ok_or_else(|| bad("org_name", format!("no organization named '{}'", truncate(name))))
        }
        None => {
            let rows = client.query("SELECT id, name FROM organizations ORDER BY id LIMIT 2", &[]).await?;
            match rows.as_slice() {
                [only] => Ok((only.get(0), only.get(1))),
                [] => Err(bad("org_name", "the policy store holds no organization")),
                _ => Err(bad("org_name", "org_name is required: the policy store holds more than one organization")),
            }
        }
    }
}

/// An org filter for lists: `org_name` must name an existing organization.
async fn org_filter(client: &impl GenericClient, query: &Query) -> Result<Option<String>, GatewayError> {
    match query.get("org_name") {
        None => Ok(None),
        Some(name) => Ok(Some(resolve_org(client, Some(name)).await?.0)),
    }
}

/// Runs `work` in one transaction (hence one policy revision): committed
/// and the connection returned to the pool on success; on an error the
/// transaction is dropped, i.e. rolled back, and the connection closed.
async fn in_transaction<T>(
    pg: &PgStore,
    work: impl AsyncFnOnce(&tokio_postgres::Transaction<'_>) -> Result<T, GatewayError>,
) -> Result<T, GatewayError> {
    let mut conn = pg.conn().await?;
    let tx = conn.transaction().await?;
    let out = work(&tx).await?;
    tx.commit().await?;
    conn.release();
    Ok(out)
}

/// Serializes writers of one name (e.g. `group:{org}:{name}`) until the
/// transaction ends, so that concurrent idempotent creates make one row.
async fn lock_name(client: &impl GenericClient, key: &str) -> Result<(), GatewayError> {
    client.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key]).await?;
    Ok(())
}

/// Create-by-name for org-scoped `table` (groups, roles): locks the name,
/// then the id of the oldest row of that name in `org`, if any.
async fn existing_by_name(
    client: &impl GenericClient,
    table: &str,
    org: &str,
    name: &str,
) -> Result<Option<String>, GatewayError> {
    lock_name(client, &format!("{table}:{org}:{name}")).await?;
    let sql = format!(
        "SELECT id FROM {table} WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL ORDER BY created, id LIMIT 1"
    );
    Ok(client.query_opt(&sql, &[&org, &name]).await?.map(|r| r.get(0)))
}

/// Lookup-or-create by name for org-scoped `table` (groups, roles): the
/// oldest object of that name in `org` as it is, or a new row whose members
/// `add_members` checks and adds (an error there rolls the transaction back).
async fn existing_or_insert(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    org: &str,
    name: &str,
    description: &Option<String>,
    add_members: impl AsyncFnOnce(&str) -> Result<(), GatewayError>,
) -> Result<String, GatewayError> {
    if let Some(id) = existing_by_name(tx, table, org, name).await? {
        return Ok(id);
    }
    let id = new_id();
    let sql = format!("INSERT INTO {table} (id, org_id, name, description) VALUES ($1, $2, $3, $4)");
    tx.execute(&sql, &[&id, &org, &name, description]).await?;
    add_members(&id).await?;
    Ok(id)
}

/// Checks that every id in `ids` is a live group or role (`table`) that may
/// be a member of one in organization `org`: of the same organization, or,
/// for roles, a system role. Names the first one that is not by `field(i)`.
async fn check_members(
    client: &impl GenericClient,
    table: &str,
    org: &str,
    ids: &[String],
    field: impl Fn(usize) -> String,
    what: &str,
) -> Result<(), GatewayError> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!("SELECT id, org_id FROM {table} WHERE id = ANY ($1::text[]) AND deleted_at IS NULL");
    let rows = client.query(&sql, &[&ids]).await?;
    let found: std::collections::HashMap<String, Option<String>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (i, id) in ids.iter().enumerate() {
        match found.get(id) {
            None => return Err(bad(field(i), format!("unknown {what} '{}'", truncate(id)))),
            Some(Some(other)) if other != org => {
                return Err(bad(field(i), format!("{what} '{}' belongs to another organization", truncate(id))));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Soft-deletes a live group or role (`table`); false when there is none.
async fn soft_delete(client: &impl GenericClient, table: &str, id: &str) -> Result<bool, GatewayError> {
    let sql = format!("UPDATE {table} SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL");
    Ok(client.execute(&sql, &[&id]).await? == 1)
}

/// Checks that every id in `ids` exists in `table`; names the first
/// missing one by `field(i)`.
async fn check_ids(
    client: &impl GenericClient,
    table: &str,
    ids: &[String],
    field: impl Fn(usize) -> String,
    what: &str,
) -> Result<(), GatewayError> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = client.query(&format!("SELECT id FROM {table} WHERE id = ANY ($1::text[])"), &[&ids]).await?;
    let found: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    match ids.iter().position(|id| !found.contains(id)) {
        Some(i) => Err(bad(field(i), format!("unknown {what} '{}'", truncate(&ids[i])))),
        None => Ok(()),
    }
}
