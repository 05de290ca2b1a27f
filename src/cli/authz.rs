//! `loggate authz … --explain`: one decision and its evidence.

use super::load_config;
use super::policy::with_pg;
use crate::config::PolicySource;
use loggate_authz::{CompiledPolicy, Decision, Principal};
use loggate_model::TokenDigest;
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
        Err(_) => {
            return fail(format!("--object '{object}' is not TYPE:ID with a known object type"));
        }
    };
    let permission = match permission.parse() {
        Ok(p) => p,
        Err(_) => {
            return fail(format!("--permission '{permission}' is not a known permission"));
        }
    };
    // Decided on what `serve` would load: entries that break a rule are
    // left out here too.
    let policy: CompiledPolicy = match config.policy.source {
        PolicySource::File => match crate::policy::file::load(&config.policy.file) {
            Ok(loaded) => loaded.policy,
            Err(e) => return fail(e.to_string()),
        },
        PolicySource::Postgres => match with_pg(&config, async |store| store.load_doc().await) {
            Ok(doc) => CompiledPolicy::from_doc(doc).0,
            Err(e) => return fail(e),
        },
    };
    let identity = match (token_id, token) {
        (Some(id), _) => {
            policy.doc().service_tokens.iter().find(|t| t.id == id).and_then(|t| policy.identity(&t.token_sha256))
        }
        (None, Some(raw)) => policy.identity(&TokenDigest::of(raw)),
        (None, None) => None,
    };
    let Some(identity) = identity else {
        return fail("no such service token in the policy".into());
    };
    // The token's own validity applies first, as it does when serving.
    let now_ms = chrono::Utc::now().timestamp_millis();
    if identity.expired(|| now_ms) {
        println!("deny");
        if explain {
            println!("token {} ({}) is outside its validity window", identity.token_id, identity.token_name);
            println!("  denied by: validity ({})", validity_window(&identity));
        }
        return ExitCode::from(1);
    }
    let principal = Principal::from(&identity);
    let explanation = policy.explain(&principal, &object, permission);
    let allowed = explanation.decision == Decision::Allow;
    println!("{}", if allowed { "allow" } else { "deny" });
    if explain {
        println!(
            "token {} ({}) acting as user {} in organization {}",
            identity.token_id, identity.token_name, identity.user_id, identity.org_id
        );
        if !allowed {
            println!("  denied by: acl");
        }
        for line in &explanation.lines {
            println!("  {line}");
        }
    }
    if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// `not before …, expires …` in RFC 3339.
fn validity_window(identity: &loggate_model::Identity) -> String {
    let mut parts = Vec::new();
    if let Some(t) = identity.not_before {
        parts.push(format!("not before {t}"));
    }
    if let Some(t) = identity.expires_at {
        parts.push(format!("expires {t}"));
    }
    parts.join(", ")
}
