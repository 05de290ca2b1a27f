//! The command line (contract: Configuration): `serve`, `check`, `token new`, `authz`,
//! `migrate`, `policy export|import|test|diff`.
//! Each command returns an exit code; `main.rs` only calls `run`.

mod authz;
mod check;
mod healthcheck;
mod policy;
pub mod policy_diff;
mod policy_test;
mod serve;
mod token;

use crate::config::Config;
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
    /// Export, import, test or diff the policy.
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
        /// The client address to judge the token's client_cidrs by.
        #[arg(long)]
        client_addr: Option<std::net::IpAddr>,
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
        /// The policy file (contract: Policy file shape).
        file: PathBuf,
        /// Also delete everything the file does not contain.
        #[arg(long)]
        replace: bool,
    },
    /// Check expectations against the configured store: one `FAIL` line
    /// per expectation that does not hold, then a summary.
    /// Exit 0 all hold, 1 some fail, 2 error.
    Test {
        #[arg(long, default_value = "config/loggate.toml")]
        config: PathBuf,
        /// A JSON array of `{"token_id"|"user_id": "…", "object": "TYPE:ID",
        /// "permission": "…", "expect": "allow"|"deny"}`.
        expectations: PathBuf,
    },
    /// Every (token, object, permission) whose decision differs between two
    /// policies: `OLD.json NEW.json`, or `--config C NEW.json` (the configured
    /// store against a file). Exit 0 nothing differs, 1 something does, 2 error.
    Diff {
        /// Compare the store this config names (instead of OLD.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// `OLD.json NEW.json`, or `NEW.json` with `--config`.
        #[arg(num_args = 1..=2, required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
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
        /// A scope grant, `TYPE:ID:PERM[,PERM…]` (e.g. `project_log:5d1e…:update`); repeatable.
        #[arg(long = "scope", value_name = "GRANT")]
        scope: Vec<String>,
        /// A client address block the token may be used from, `addr/len`; repeatable.
        #[arg(long = "cidr", value_name = "CIDR")]
        cidr: Vec<String>,
        /// Life of the token from now (`24h`, `30m`); none: it does not expire.
        #[arg(long)]
        ttl: Option<String>,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve::serve(&config),
        Command::Check { config } => check::check(&config),
        Command::Migrate { config } => policy::migrate(&config),
        Command::Policy { command: PolicyCommand::Export { config } } => policy::export(&config),
        Command::Policy { command: PolicyCommand::Import { config, file, replace } } => {
            policy::import(&config, &file, replace)
        }
        Command::Policy { command: PolicyCommand::Test { config, expectations } } => {
            policy_test::policy_test(&config, &expectations)
        }
        Command::Policy { command: PolicyCommand::Diff { config, files } } => {
            policy_diff::policy_diff(config.as_deref(), &files)
        }
        Command::Token { command: TokenCommand::New { name, org_id, service_account_id, scope, cidr, ttl } } => {
            token::token_new(&token::NewToken { name, org_id, service_account_id, scope, cidr, ttl })
        }
        Command::Authz { config, token_id, token, object, permission, client_addr, explain } => {
            authz::authz(&config, token_id.as_deref(), token.as_deref(), &object, &permission, client_addr, explain)
        }
        Command::Healthcheck { url, timeout } => healthcheck::healthcheck(&url, timeout),
    }
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("loggate: config {}: {e}", path.display());
        ExitCode::from(2)
    })
}
