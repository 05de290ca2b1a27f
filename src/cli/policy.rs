//! `loggate migrate` and `loggate policy export|import`.

use super::load_config;
use crate::config::{Config, PolicySource};
use crate::policy::postgres::{ImportError, PgStore};
use loggate_model::doc::PolicyDoc;
use std::process::ExitCode;

/// Runs `f` on a postgres store opened from `config` (no migrations).
pub(super) fn with_pg<T>(
    config: &Config,
    f: impl AsyncFnOnce(&PgStore) -> Result<T, crate::policy::StoreError>,
) -> Result<T, String> {
    if config.policy.source != PolicySource::Postgres {
        return Err("policy.source is not \"postgres\"".into());
    }
    let url = config.policy.postgres_url.as_deref().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let store = PgStore::open(url, config.policy.timeout).map_err(|e| e.to_string())?;
        f(&store).await.map_err(|e| e.to_string())
    })
}

pub(super) fn migrate(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match with_pg(&config, async |store| store.migrate().await) {
        Ok(applied) if applied.is_empty() => {
            eprintln!("loggate: migrations: already up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            eprintln!("loggate: migrations applied: {}", applied.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loggate: migrate: {e}");
            ExitCode::from(2)
        }
    }
}

pub(super) fn export(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let doc = match config.policy.source {
        PolicySource::File => {
            crate::policy::file::load(&config.policy.file).map(|l| l.policy.to_doc()).map_err(|e| e.to_string())
        }
        PolicySource::Postgres => with_pg(&config, async |store| store.load_doc().await),
    };
    match doc {
        Ok(doc) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if let Err(e) =
                writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("json")).and_then(|()| out.flush())
            {
                eprintln!("loggate: export: cannot write stdout: {e}");
                return ExitCode::from(2);
            }
            eprintln!(
                "loggate: exported {} organizations, {} projects, {} ACLs, {} service tokens",
                doc.organizations.len(),
                doc.projects.len(),
                doc.acls.len(),
                doc.service_tokens.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loggate: export: {e}");
            ExitCode::from(2)
        }
    }
}

pub(super) fn import(path: &std::path::Path, file: &std::path::Path, replace: bool) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if config.policy.source != PolicySource::Postgres {
        eprintln!("loggate: import needs policy.source = \"postgres\" (with the file store, the policy is the file)");
        return ExitCode::from(2);
    }
    let read = std::fs::read(file).map_err(|e| e.to_string());
    let doc: PolicyDoc = match read.and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("loggate: import: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let mut invalid = None;
    let result = with_pg(&config, async |store| match store.import(&doc, replace).await {
        Ok(revision) => Ok(revision),
        Err(ImportError::Invalid(errors)) => {
            invalid = Some(errors);
            Ok(0)
        }
        Err(ImportError::Store(e)) => Err(e),
    });
    match (result, invalid) {
        (_, Some(errors)) => {
            eprintln!("loggate: import: {} is invalid: {errors}", file.display());
            ExitCode::from(2)
        }
        (Ok(revision), None) => {
            eprintln!(
                "loggate: imported {} ({}); policy revision {revision}",
                file.display(),
                if replace { "replace" } else { "upsert" }
            );
            ExitCode::SUCCESS
        }
        (Err(e), None) => {
            eprintln!("loggate: import: {e}");
            ExitCode::from(2)
        }
    }
}
