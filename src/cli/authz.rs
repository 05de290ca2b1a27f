//! `loggate authz … --explain`: one decision and its evidence.

use super::load_config;
use super::policy::with_pg;
use loggate_model::TokenDigest;
use loggate_authz::{CompiledPolicy, Decision, Principal};
use crate::config::PolicySource;
use std::process::ExitCode;

pub(super) fn authz(
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
