//! `loggate check`: validate config, TLS material and the policy.

use super::load_config;
use super::policy::with_pg;
use crate::config::PolicySource;
use std::process::ExitCode;

pub(super) fn check(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = config.upstream_token(|k| std::env::var(k).ok()) {
        eprintln!("loggate: {e}");
        return ExitCode::from(2);
    }
    for warning in config.warnings() {
        eprintln!("loggate: {warning}");
    }
    if let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key)
        && let Err(e) = crate::server::tls::load_server_config(cert, key)
    {
        eprintln!("loggate: {e:#}");
        return ExitCode::from(2);
    }
    if let Err(e) = crate::forward::client_tls_config(&config.upstream) {
        eprintln!("loggate: upstream TLS: {e:#}");
        return ExitCode::from(2);
    }
    match config.policy.source {
        PolicySource::File => match crate::policy::file::load(&config.policy.file) {
            Ok(loaded) if !loaded.left_out.is_empty() => {
                for e in &loaded.left_out {
                    eprintln!("loggate: policy entry left out: {e}");
                }
                eprintln!(
                    "loggate: policy {}: {} entries left out (serve would load the rest)",
                    config.policy.file.display(),
                    loaded.left_out.len()
                );
                ExitCode::from(1)
            }
            Ok(loaded) => {
                let doc = loaded.policy.to_doc();
                println!(
                    "ok: config {} and policy {} are valid ({} organizations, {} projects, {} ACLs, {} service tokens)",
                    path.display(),
                    config.policy.file.display(),
                    doc.organizations.len(),
                    doc.projects.len(),
                    doc.acls.len(),
                    doc.service_tokens.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("loggate: {e}");
                ExitCode::from(2)
            }
        },
        PolicySource::Postgres => {
            let result = with_pg(&config, async |store| {
                let revision = store.revision().await?;
                let doc_counts = store.counts().await?;
                Ok((revision, doc_counts))
            });
            match result {
                Ok((revision, counts)) => {
                    println!(
                        "ok: config {} is valid; postgres policy store reachable at revision {revision} ({counts})",
                        path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("loggate: policy store: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
