//! The command line (design §9): `serve`, `check`, `token new`, `authz`.
//! Each command returns an exit code; `main.rs` only calls `run`.

use crate::auth::TokenDigest;
use crate::authz::{CompiledPolicy, Decision, Principal};
use crate::config::{Config, PolicySource};
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
        Command::Token { command: TokenCommand::New { name, org_id, service_account_id } } => {
            token_new(&name, &org_id, &service_account_id)
        }
        Command::Authz { config, token_id, token, object, permission, explain } => {
            authz(&config, token_id.as_deref(), token.as_deref(), &object, &permission, explain)
        }
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
    let result = runtime.block_on(crate::server::run(config, upstream_token, admin_token));
    crate::telemetry::flush();
    match result {
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
            println!("ok: config {} is valid (policy in postgres)", path.display());
            ExitCode::SUCCESS
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
        PolicySource::Postgres => return fail("authz reads the file policy; export the postgres policy first".into()),
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
