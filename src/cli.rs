//! The command line (design §9): `serve`, `check`, `token new`, `authz`,
//! `migrate`, `policy export|import`.
//! Each command returns an exit code; `main.rs` only calls `run`.

use crate::auth::TokenDigest;
use crate::authz::{CompiledPolicy, Decision, Principal};
use crate::config::{Config, PolicySource};
use crate::policy::model::PolicyDoc;
use crate::policy::postgres::{ImportError, PgStore};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "loggate", version, about = "Log-ingestion gateway enforcing the Braintrust permission model")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
    },
    /// Validate the configuration and the policy; exit non-zero naming the problem.
    Check {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
    },
    /// Apply the embedded postgres schema migrations (idempotent).
    Migrate {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
    },
    /// Export or import the policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Service token utilities.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Decide one question against the policy: `allow` or `deny` first, then why.
    /// Exit 0 allow, 1 deny, 2 error.
    Authz {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
        /// The service token's id in the policy.
        #[arg(long, conflicts_with = "token", required_unless_present = "token")]
        token_id: Option<String>,
        /// The raw token (hashed at once; never printed).
        #[arg(long)]
        token: Option<String>,
        /// `TYPE:ID`, e.g. `project_log:5d1e…`.
        #[arg(long)]
        object: String,
        #[arg(long, default_value = "update")]
        permission: String,
        /// Print the evidence after the decision.
        #[arg(long)]
        explain: bool,
    },
    /// Probe a health endpoint (for container HEALTHCHECKs, which have no
    /// curl): exit 0 on a 2xx answer within the timeout, 1 otherwise.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9787/healthz")]
        url: String,
        #[arg(long, default_value = "3s", value_parser = crate::config::parse_duration)]
        timeout: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the policy as a policy file (JSON) on stdout; logs go to stderr.
    Export {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
    },
    /// Upsert a policy file into the postgres store by id, in one transaction
    /// (one revision). Idempotent.
    Import {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
        /// The policy file (design §7 shape).
        file: PathBuf,
        /// Also delete everything the file does not contain.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a fresh bt-st- token, its SHA-256, and a policy entry.
    New {
        #[arg(long, default_value = "service-token")]
        name: String,
        #[arg(long, default_value = "ORG_ID")]
        org_id: String,
        #[arg(long, default_value = "SERVICE_ACCOUNT_USER_ID")]
        service_account_id: String,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Migrate { config } => migrate(&config),
        Command::Policy { command: PolicyCommand::Export { config } } => export(&config),
        Command::Policy { command: PolicyCommand::Import { config, file, replace } } => import(&config, &file, replace),
        Command::Token { command: TokenCommand::New { name, org_id, service_account_id } } => {
            token_new(&name, &org_id, &service_account_id)
        }
        Command::Authz { config, token_id, token, object, permission, explain } => {
            authz(&config, token_id.as_deref(), token.as_deref(), &object, &permission, explain)
        }
        Command::Healthcheck { url, timeout } => healthcheck(&url, timeout),
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("loggate: config {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::telemetry::init(config.log.format);
    let env = |k: &str| std::env::var(k).ok();
    let upstream_token = match config.upstream_token(env) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("loggate: {e}");
            return ExitCode::from(2);
        }
    };
    let admin_token = config.admin_token(env);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loggate: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(crate::server::run(config, upstream_token, admin_token)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "loggate stopped");
            eprintln!("loggate: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = config.upstream_token(|k| std::env::var(k).ok()) {
        eprintln!("loggate: {e}");
        return ExitCode::from(2);
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
            Ok(policy) => {
                let doc = policy.doc();
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

/// Runs `f` on a postgres store opened from `config` (no migrations).
fn with_pg<T>(
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

fn migrate(path: &std::path::Path) -> ExitCode {
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

fn export(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let doc = match config.policy.source {
        PolicySource::File => crate::policy::file::load(&config.policy.file).map(|p| p.doc().clone()).map_err(|e| e.to_string()),
        PolicySource::Postgres => with_pg(&config, async |store| store.load_doc().await),
    };
    match doc {
        Ok(doc) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("json")).and_then(|()| out.flush()) {
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

fn import(path: &std::path::Path, file: &std::path::Path, replace: bool) -> ExitCode {
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

fn token_new(name: &str, org_id: &str, service_account_id: &str) -> ExitCode {
    let token = crate::auth::token::generate();
    let digest = TokenDigest::of(&token).to_hex();
    let entry = serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": name,
        "org_id": org_id,
        "service_account_id": service_account_id,
        "token_sha256": digest,
        "expires_at": null,
    });
    println!("token:  {token}");
    println!("sha256: {digest}");
    println!("service_tokens entry:\n{}", serde_json::to_string_pretty(&entry).expect("json"));
    ExitCode::SUCCESS
}

fn authz(
    path: &std::path::Path,
    token_id: Option<&str>,
    token: Option<&str>,
    object: &str,
    permission: &str,
    explain: bool,
) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("loggate: {msg}");
        ExitCode::from(2)
    };
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let object = match object.parse() {
        Ok(o) => o,
        Err(_) => return fail(format!("--object '{object}' is not TYPE:ID with a known object type")),
    };
    let permission = match permission.parse() {
        Ok(p) => p,
        Err(_) => return fail(format!("--permission '{permission}' is not a known permission")),
    };
    let policy: CompiledPolicy = match config.policy.source {
        PolicySource::File => match crate::policy::file::load(&config.policy.file) {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        },
        PolicySource::Postgres => {
            let doc = match with_pg(&config, async |store| store.load_doc().await) {
                Ok(d) => d,
                Err(e) => return fail(e),
            };
            match CompiledPolicy::compile(doc) {
                Ok(p) => p,
                Err(e) => return fail(format!("the postgres policy is inconsistent: {e}")),
            }
        }
    };
    let identity = match (token_id, token) {
        (Some(id), _) => policy
            .doc()
            .service_tokens
            .iter()
            .find(|t| t.id == id)
            .and_then(|t| TokenDigest::from_hex(&t.token_sha256))
            .and_then(|d| policy.identity(&d)),
        (None, Some(raw)) => policy.identity(&TokenDigest::of(raw)),
        (None, None) => None,
    };
    let Some(identity) = identity else {
        return fail("no such service token in the policy".into());
    };
    let principal = Principal::from(&identity);
    let explanation = policy.explain(&principal, &object, permission);
    let allowed = explanation.decision == Decision::Allow;
    println!("{}", if allowed { "allow" } else { "deny" });
    if explain {
        println!("token {} ({}) acting as user {} in organization {}", identity.token_id, identity.token_name, identity.user_id, identity.org_id);
        for line in &explanation.lines {
            println!("  {line}");
        }
    }
    if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn healthcheck(url: &str, timeout: std::time::Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loggate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(async { tokio::time::timeout(timeout, probe(url)).await }) {
        Ok(Ok(status)) if status.is_success() => {
            println!("ok: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            eprintln!("loggate: {url} answered {status}");
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!("loggate: {url}: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("loggate: {url}: no answer within {timeout:?}");
            ExitCode::from(1)
        }
    }
}

/// One plain-HTTP GET (the admin listener has no TLS).
async fn probe(url: &str) -> anyhow::Result<http::StatusCode> {
    let uri: http::Uri = url.parse()?;
    anyhow::ensure!(uri.scheme_str() == Some("http"), "only http:// URLs can be probed");
    let host = uri.host().ok_or_else(|| anyhow::anyhow!("URL has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(http::header::HOST, uri.authority().map(|a| a.as_str()).unwrap_or(host))
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}
