//! The `postgres` policy store (contract: Policy file, §8).
//!
//! Tables for every object of the policy document, created by the embedded
//! migrations (`migrations/*.sql`). Triggers give every transaction that
//! changes policy rows exactly one new revision, list each changed row in
//! `policy_changes`, and `NOTIFY loggate_policy '<revision>'`, so writes by
//! any client (admin API, `policy import`, plain SQL) are announced alike.
//!
//! Decisions load only the slice of the policy they need (see `slice`) and
//! run the pure evaluator on it. Nothing is cached here: the gateway's
//! decision cache and the invalidation feed do that. Every call is bounded
//! by `policy.timeout`; a store that does not answer in time is a
//! `StoreError`, on which the gateway fails closed.

mod candidates;
mod changelog;
mod column;
mod derive;
mod doc;
mod migrate;
mod pool;
mod slice;
mod token;

pub use changelog::{ChangeLog, Coverage, LoggedRevision};
pub use column::timestamptz;
pub use derive::{Derived, Request as DeriveRequest};
pub use doc::ImportError;
pub use migrate::MIGRATIONS;
pub use pool::{Conn, MAX_CONNECTIONS};

use super::discovery::{Child, Discovery};
use super::store::{PolicyStore, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use loggate_authz::{CompiledPolicy, Decision, DenyReason, Explanation, Principal};
use loggate_model::doc::PolicyDoc;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_postgres::Client;

/// The channel the revision triggers notify on; the payload is the revision.
pub const NOTIFY_CHANNEL: &str = "loggate_policy";

/// Bulk operations (export, import, migrations) may take longer than one
/// decision: they get at least this long.
const BULK_TIMEOUT: Duration = Duration::from_secs(300);

pub struct PgStore {
    pool: pool::Pool,
    timeout: Duration,
    /// The last revision read from the database (`PolicyStore::revision`).
    last_revision: AtomicU64,
}

/// Parses a `postgres://` URL (or key=value string) into a client config
/// whose connect timeout is `timeout`.
pub fn client_config(url: &str, timeout: Duration) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError(format!("policy.postgres_url is not a valid connection string: {e}")))?;
    config.connect_timeout(timeout);
    // JIT compiling a decision's few-row queries costs more than it saves
    // (milliseconds, on every plan the planner thinks large): off, unless
    // the URL's own options turn it back on (they come after, and win).
    let options = match config.get_options() {
        Some(own) => format!("-c jit=off {own}"),
        None => "-c jit=off".to_owned(),
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("loggate");
    }
    Ok(config)
}

/// Opens one connection outside the pool (e.g. for `LISTEN`).
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, StoreError> {
    pool::connect(config).await.map_err(db_error)
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    // The source carries the server's message (e.g. "connection refused").
    match std::error::Error::source(&e) {
        Some(source) => StoreError(format!("postgres: {e}: {source}")),
        None => StoreError(format!("postgres: {e}")),
    }
}

/// RFC 3339 in UTC with the shortest exact fraction, as exported.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl PgStore {
    /// A store for `url`. Does not connect: connections are opened on first
    /// use and re-opened after failures.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config = client_config(url, timeout)?;
        Ok(PgStore { pool: pool::Pool::new(config, MAX_CONNECTIONS), timeout, last_revision: AtomicU64::new(0) })
    }

    /// The connection settings (for a feed that wants its own `LISTEN` connection).
    pub fn client_config(&self) -> &tokio_postgres::Config {
        self.pool.config()
    }

    /// `policy.timeout`: the bound of every call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A pooled connection, for callers running their own statements (the
    /// admin API). Bound the whole use by [`timeout`](Self::timeout) and
    /// call `release` after success.
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get().await.map_err(db_error)
    }

    /// Runs `work` within `limit`; database errors and timeouts become `StoreError`.
    async fn bounded<T>(
        &self,
        limit: Duration,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result.map_err(db_error),
            Err(_) => Err(StoreError(format!("postgres did not answer within {limit:?}"))),
        }
    }

    /// Applies the embedded migrations that are missing; returns their versions.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, StoreError> {
        self.bounded(BULK_TIMEOUT.max(self.timeout), async {
            let mut conn = self.pool.get().await?;
            let applied = migrate::migrate(&mut conn).await?;
            conn.release();
            Ok(applied)
        })
        .await
    }

    /// The current revision, fresh from the database.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        let revision = self
            .bounded(self.timeout, async {
                let conn = self.pool.get().await?;
                let row = conn.query_one("SELECT revision FROM policy_revision WHERE singleton", &[]).await?;
                conn.release();
                Ok(row.get::<_, i64>(0))
            })
            .await?;
        let revision = u64::try_from(revision).unwrap_or(0);
        self.observe_revision(revision);
        Ok(revision)
    }

    /// Records a revision learned elsewhere (e.g. from a `NOTIFY`), so that
    /// `PolicyStore::revision` reports it. Never goes backwards.
    pub fn observe_revision(&self, revision: u64) {
        self.last_revision.fetch_max(revision, Ordering::SeqCst);
    }

    /// What revision `revision` changed: `(committed_at_ms, [(kind, id)])`,
    /// kinds as in docs/operations.md, caching and invalidation, sorted. An unknown revision gives `(0, [])`.
    /// `committed_at_ms` is the time of the transaction's last change
    /// (triggers cannot see the commit itself; it follows within the
    /// transaction's remaining run time).
    pub async fn changes(&self, revision: u64) -> Result<(i64, Vec<(String, String)>), StoreError> {
        let revision = i64::try_from(revision).map_err(|_| StoreError(format!("revision {revision} out of range")))?;
        self.bounded(self.timeout, async {
            let conn = self.pool.get().await?;
            let rows = conn
                .query(
                    "SELECT kind, id, (extract(epoch FROM committed_at) * 1000)::bigint
                       FROM policy_changes WHERE revision = $1 ORDER BY kind, id",
                    &[&revision],
                )
                .await?;
            conn.release();
            let committed = rows.iter().map(|r| r.get::<_, i64>(2)).max().unwrap_or(0);
            Ok((committed, rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
        })
        .await
    }

    /// Loads the slice `(principal, object)` needs (`wanted`: all of the
    /// principal's ACLs on the object's scopes, or those that can grant
    /// one permission, or the first few of those) and compiles it; with
    /// whether it holds every ACL asked for.
    async fn slice(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        wanted: slice::Wanted,
    ) -> Result<(CompiledPolicy, bool), StoreError> {
        let slice = self
            .bounded(self.timeout, async {
                let mut conn = self.pool.get().await?;
                let slice = slice::load(&mut conn, principal, object, wanted).await?;
                conn.release();
                Ok(slice)
            })
            .await?;
        // The slice goes through the same rules as a file: what breaks one
        // (a group or role of another organization, say) grants nothing.
        Ok((CompiledPolicy::from_doc(slice.doc).0, slice.complete))
    }

    /// The whole policy as a policy-file document (ids sorted), read in
    /// one consistent snapshot.
    pub async fn load_doc(&self) -> Result<PolicyDoc, StoreError> {
        self.bounded(BULK_TIMEOUT.max(self.timeout), async {
            let mut conn = self.pool.get().await?;
            let doc = doc::export(&mut conn).await?;
            conn.release();
            Ok(doc)
        })
        .await
    }

    /// Validates `doc`, then upserts it by id in one transaction (one
    /// revision, none if nothing changed); `replace` also deletes every row
    /// the document does not contain. Returns the revision in force after.
    pub async fn import(&self, doc: &PolicyDoc, replace: bool) -> Result<u64, ImportError> {
        let policy = loggate_model::load::from_doc(doc.clone()).strict().map_err(ImportError::Invalid)?.to_doc();
        let rows = doc::Rows::of(&policy);
        let revision = self
            .bounded(BULK_TIMEOUT.max(self.timeout), async {
                let mut conn = self.pool.get().await?;
                let revision = doc::import(&mut conn, &rows, replace).await?;
                conn.release();
                Ok(revision)
            })
            .await
            .map_err(ImportError::Store)?;
        let revision = u64::try_from(revision).unwrap_or(0);
        self.observe_revision(revision);
        Ok(revision)
    }

    /// Row counts of the main tables, for `loggate check`.
    pub async fn counts(&self) -> Result<String, StoreError> {
        self.bounded(self.timeout, async {
            let conn = self.pool.get().await?;
            let r = conn
                .query_one(
                    "SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM projects WHERE deleted_at IS NULL),
                            (SELECT count(*) FROM acls), (SELECT count(*) FROM service_tokens)",
                    &[],
                )
                .await?;
            conn.release();
            let n = |i| r.get::<_, i64>(i);
            Ok(format!("{} organizations, {} projects, {} ACLs, {} service tokens", n(0), n(1), n(2), n(3)))
        })
        .await
    }

    /// Runs one optional-row lookup returning a string.
    async fn lookup(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<String>, StoreError> {
        self.bounded(self.timeout, async {
            let conn = self.pool.get().await?;
            let row = conn.query_opt(sql, params).await?;
            conn.release();
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }
}

impl PolicyStore for PgStore {
    async fn identity(&self, digest: &TokenDigest) -> Result<Option<Identity>, StoreError> {
        let hex = digest.to_hex();
        let chain = self
            .bounded(self.timeout, async {
                let mut conn = self.pool.get().await?;
                let chain = conn.prepared(token::CHAIN.as_str()).await?;
                let rows = conn.query(&chain, &[&hex]).await?;
                conn.release();
                rows.iter().map(token::read).collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let Some((own, ancestors)) = chain.split_first() else { return Ok(None) };
        // The index found the row; the digests are still compared in
        // constant time before the identity is trusted.
        if own.token_sha256 != *digest {
            return Ok(None);
        }
        Ok(Some(Identity::of(own, &ancestors.iter().collect::<Vec<_>>())))
    }

    async fn decide(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        // The first few ACLs that can grant, then, only when they were cut
        // short and none granted, all of them. An allow (or a scope's deny,
        // which follows an ACL's grant) on fewer ACLs is the same on all of
        // them, and the object's and organization's denies do not depend on
        // ACLs; see `slice::Wanted::FirstGranting`.
        let (first, complete) = self.slice(principal, object, slice::Wanted::FirstGranting(permission)).await?;
        let decision = first.decide(principal, object, permission);
        if complete || decision != Decision::Deny(DenyReason::MissingPermission) {
            return Ok(decision);
        }
        let (all, _) = self.slice(principal, object, slice::Wanted::Granting(permission)).await?;
        Ok(all.decide(principal, object, permission))
    }

    async fn explain(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Explanation, StoreError> {
        Ok(self.slice(principal, object, slice::Wanted::All).await?.0.explain(principal, object, permission))
    }

    async fn decide_new(
        &self,
        principal: &Principal,
        org_id: &str,
        object_type: ObjectType,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        // The organization's slice holds every grant that can reach a new object.
        let org = ObjectRef::new(ObjectType::Organization, org_id);
        let (slice, _) = self.slice(principal, &org, slice::Wanted::All).await?;
        Ok(slice.decide_new(principal, org_id, object_type, permission))
    }

    async fn candidates(
        &self,
        principal: &Principal,
        types: &[ObjectType],
        cap: usize,
    ) -> Result<Vec<ObjectRef>, StoreError> {
        self.bounded(self.timeout, async {
            let conn = self.pool.get().await?;
            let found = candidates::load(&conn, principal, types, cap).await?;
            conn.release();
            Ok(found)
        })
        .await
    }

    async fn org_name(&self, org_id: &str) -> Result<Option<String>, StoreError> {
        self.lookup("SELECT name FROM organizations WHERE id = $1", &[&org_id]).await
    }

    async fn project_by_name(&self, org_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.lookup(
            "SELECT id FROM projects WHERE org_id = $1 AND name = $2 AND deleted_at IS NULL ORDER BY created, id LIMIT 1",
            &[&org_id, &name],
        )
        .await
    }

    async fn experiment_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.lookup(
            "SELECT e.id FROM experiments e JOIN projects p ON p.id = e.project_id
              WHERE e.project_id = $1 AND e.name = $2 AND p.deleted_at IS NULL ORDER BY e.id LIMIT 1",
            &[&project_id, &name],
        )
        .await
    }

    async fn dataset_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        self.lookup(
            "SELECT d.id FROM datasets d JOIN projects p ON p.id = d.project_id
              WHERE d.project_id = $1 AND d.name = $2 AND p.deleted_at IS NULL ORDER BY d.id LIMIT 1",
            &[&project_id, &name],
        )
        .await
    }

    /// Records what a register answer named, unless an id is known, the
    /// organization is not, or a live project of the org has the name; in
    /// the same transaction (one revision), the creator's owner grant on
    /// what this call inserted, unless the organization turned it off.
    async fn learn(&self, discovery: Discovery) -> Result<bool, StoreError> {
        self.bounded(self.timeout, async {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await?;
            let Discovery { project, child, creator } = discovery;
            let mut inserted = Vec::new();
            let n = tx
                .execute(
                    "INSERT INTO projects (id, org_id, name)
                     SELECT $1, $2, $3
                      WHERE EXISTS (SELECT 1 FROM organizations WHERE id = $2)
                        AND NOT EXISTS (SELECT 1 FROM projects WHERE org_id = $2 AND name = $3 AND deleted_at IS NULL)
                     ON CONFLICT (id) DO NOTHING",
                    &[&project.id, &project.org_id, &project.name],
                )
                .await?;
            if n == 1 {
                inserted.push(ObjectRef::new(ObjectType::Project, project.id.clone()));
            }
            if let Some(child) = &child {
                let (table, id, project_id, name) = match child {
                    Child::Experiment(e) => ("experiments", &e.id, &e.project_id, &e.name),
                    Child::Dataset(d) => ("datasets", &d.id, &d.project_id, &d.name),
                };
                let n = tx
                    .execute(
                        &format!(
                            "INSERT INTO {table} (id, project_id, name)
                             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM projects WHERE id = $2 AND org_id = $4)
                             ON CONFLICT (id) DO NOTHING"
                        ),
                        &[id, project_id, name, &project.org_id],
                    )
                    .await?;
                if n == 1 {
                    inserted.push(child.object());
                }
            }
            if let Some(mut creator) = creator {
                creator.created.retain(|o| inserted.contains(o));
                let acls = creator.owner_acls(|| uuid::Uuid::new_v4().to_string());
                let ids: Vec<&str> = acls.iter().map(|a| a.id.as_str()).collect();
                let types: Vec<&str> = acls.iter().map(|a| a.object_type.as_str()).collect();
                let objects: Vec<&str> = acls.iter().map(|a| a.object_id.as_str()).collect();
                let permissions: Vec<&str> = acls.iter().filter_map(|a| a.permission).map(|p| p.as_str()).collect();
                tx.execute(
                    "INSERT INTO acls (id, object_type, object_id, user_id, permission, object_org_id)
                     SELECT a.id, a.t, a.o, $5, a.p, org.id
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS a (id, t, o, p)
                       JOIN organizations org ON org.id = $6 AND org.creator_grants
                      WHERE EXISTS (SELECT 1 FROM users WHERE id = $5)",
                    &[&ids, &types, &objects, &permissions, &creator.user_id, &project.org_id],
                )
                .await?;
            }
            tx.commit().await?;
            conn.release();
            Ok(!inserted.is_empty())
        })
        .await
    }

    /// `SELECT 1` within the timeout (and a best-effort revision refresh).
    async fn ready(&self) -> bool {
        let ok = self
            .bounded(self.timeout, async {
                let conn = self.pool.get().await?;
                conn.query_one("SELECT 1", &[]).await?;
                conn.release();
                Ok(())
            })
            .await
            .is_ok();
        if ok {
            let _ = PgStore::revision(self).await;
        }
        ok
    }

    /// The last revision seen (see [`PgStore::revision`] for a fresh one).
    fn revision(&self) -> u64 {
        self.last_revision.load(Ordering::SeqCst)
    }
}
