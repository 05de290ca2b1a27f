//! Writing a derived token (contract: "Scoped and derived tokens"): the
//! child of an authenticated token, no wider and no longer-lived than it.

use super::PgStore;
use super::column::timestamptz;
use crate::policy::store::StoreError;
use loggate_model::types::ObjectType;
use loggate_model::{Identity, Scope, Timestamp, TokenDigest};
use std::collections::HashMap;
use tokio_postgres::Error;
use tokio_postgres::types::Json;

/// What the caller asks for, already checked.
pub struct Request<'a> {
    pub name: &'a str,
    pub scope: Option<&'a Scope>,
    /// The requested end of life (now + ttl); the parent's end wins if earlier.
    pub until: Timestamp,
    /// The new token, and what of it is shown (its preview).
    pub key: &'a str,
    pub preview: &'a str,
}

/// The child as written.
pub struct Derived {
    pub id: String,
    pub expires_at: Timestamp,
    /// The effective scope: the parent's (and its ancestors') intersected
    /// with the requested one; `None` when nothing narrows it.
    pub scope: Option<Scope>,
}

impl PgStore {
    /// Writes a child of `parent`. `None` when the parent is gone (deleted
    /// since it was recognised): the caller answers as for an unknown token.
    pub async fn derive(&self, parent: &Identity, request: Request<'_>) -> Result<Option<Derived>, StoreError> {
        self.bounded(self.timeout, self.write_child(parent, request)).await
    }

    async fn write_child(&self, parent: &Identity, request: Request<'_>) -> Result<Option<Derived>, Error> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        // Holds the parent (and so the child's foreign key) until commit.
        let live = tx.query_opt("SELECT 1 FROM service_tokens WHERE id = $1 FOR SHARE", &[&parent.token_id]).await?;
        if live.is_none() {
            return Ok(None);
        }
        let asked = request.scope.cloned().unwrap_or_default();
        let projects = projects_of(&tx, parent.scopes.iter().chain([&asked])).await?;
        let is_ancestor = |a: (ObjectType, &str), b: (ObjectType, &str)| {
            a == b
                || (a.0 == ObjectType::Organization && a.1 == parent.org_id)
                || (a.0 == ObjectType::Project
                    && match b.0 {
                        ObjectType::ProjectLog => b.1 == a.1,
                        ObjectType::Experiment | ObjectType::Dataset => projects.get(b.1).is_some_and(|p| p == a.1),
                        _ => false,
                    })
        };
        let effective = parent.scopes.iter().fold(asked, |scope, p| p.intersect(&scope, is_ancestor));
        let scope = (effective != Scope::default()).then_some(effective);
        let expires_at = parent.expires_at.map_or(request.until, |p| p.min(request.until));
        let id = uuid::Uuid::new_v4().to_string();
        tx.execute(
            "INSERT INTO service_tokens
                 (id, name, org_id, service_account_id, token_sha256, preview_name, expires_at, scope, parent_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &request.name,
                &parent.org_id,
                &parent.user_id,
                &TokenDigest::of(request.key).to_hex(),
                &request.preview,
                &timestamptz(Some(expires_at)),
                &scope.as_ref().map(Json),
                &parent.token_id,
            ],
        )
        .await?;
        tx.commit().await?;
        conn.release();
        Ok(Some(Derived { id, expires_at, scope }))
    }
}

/// The project of every experiment and dataset the scopes name.
async fn projects_of<'s>(
    tx: &tokio_postgres::Transaction<'_>,
    scopes: impl Iterator<Item = &'s Scope>,
) -> Result<HashMap<String, String>, Error> {
    let ids: Vec<&str> = scopes
        .flat_map(|s| s.grants.iter().flatten())
        .filter(|g| matches!(g.object_type, ObjectType::Experiment | ObjectType::Dataset))
        .map(|g| g.object_id.as_str())
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT id, project_id FROM experiments WHERE id = ANY ($1)
             UNION ALL SELECT id, project_id FROM datasets WHERE id = ANY ($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
