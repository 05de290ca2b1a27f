//! Embedded schema migrations, applied in order, each once, in one
//! transaction (all or nothing), under an advisory lock (replicas starting together with
//! `migrate_on_start` serialize instead of racing).

use tokio_postgres::Client;

/// `(version, sql)`, in the order they apply.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_schema", include_str!("../../../migrations/0001_schema.sql")),
    ("0002_revisions", include_str!("../../../migrations/0002_revisions.sql")),
    ("0003_deletion_and_validity", include_str!("../../../migrations/0003_deletion_and_validity.sql")),
    ("0004_scoped_tokens", include_str!("../../../migrations/0004_scoped_tokens.sql")),
    ("0005_principal_indexes", include_str!("../../../migrations/0005_principal_indexes.sql")),
    ("0006_statement_triggers", include_str!("../../../migrations/0006_statement_triggers.sql")),
    ("0007_slice_covering_indexes", include_str!("../../../migrations/0007_slice_covering_indexes.sql")),
];

/// An arbitrary constant naming loggate's migration lock.
const LOCK_KEY: i64 = 0x6c67_6d69_6772_6174; // "lgmigrat"

/// Applies what is missing; returns the versions applied now.
pub async fn migrate(client: &mut Client) -> Result<Vec<&'static str>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    text PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let done = tx.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?.is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
            applied.push(*version);
        }
    }
    tx.commit().await?;
    Ok(applied)
}
