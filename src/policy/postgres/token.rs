//! Service-token rows: one column list and one reader for every query that
//! brings tokens back (export, identity), so the two never disagree on what
//! a token is.

use super::column::{Parsed, instant};
use loggate_model::doc::ServiceToken;
use loggate_model::{Scope, TokenDigest};
use std::sync::LazyLock;
use tokio_postgres::types::Json;
use tokio_postgres::{Error, Row};

/// The columns `read` expects, in order (`t` is the table's alias).
pub const COLUMNS: &str =
    "t.id, t.name, t.org_id, t.service_account_id, t.token_sha256, t.expires_at, t.not_before, t.scope, t.parent_id";

/// A row selected with `COLUMNS`. A digest or scope the model cannot read
/// is an error (the store then fails closed), never a guess.
pub fn read(r: &Row) -> Result<ServiceToken, Error> {
    Ok(ServiceToken {
        id: r.get(0),
        name: r.get(1),
        org_id: r.get(2),
        service_account_id: r.get(3),
        token_sha256: r.try_get::<_, Parsed<TokenDigest>>(4)?.0,
        expires_at: instant(r.get(5)),
        not_before: instant(r.get(6)),
        scope: r.try_get::<_, Option<Json<Scope>>>(7)?.map(|j| j.0),
        parent_id: r.get(8),
    })
}

/// The token with digest `$1` and its ancestors, parent first after it;
/// a loop of parents is walked once around (`path`).
pub static CHAIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE chain AS (
             SELECT {COLUMNS}, 0 AS depth, ARRAY[t.id] AS path FROM service_tokens t WHERE t.token_sha256 = $1
             UNION ALL
             SELECT {COLUMNS}, c.depth + 1, c.path || t.id
               FROM chain c JOIN service_tokens t ON t.id = c.parent_id
              WHERE NOT t.id = ANY (c.path) AND c.depth < 64)
         SELECT {} FROM chain t ORDER BY depth",
        COLUMNS
    )
});
