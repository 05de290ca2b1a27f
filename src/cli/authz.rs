//! `loggate authz … --explain`: one decision and its evidence; and the
//! pieces `policy test` and `policy diff` decide with too (the configured
//! store's policy, a token by id, the validity window, a verdict for a token).

use super::load_config;
use super::policy::with_pg;
use crate::config::{Config, PolicySource};
use loggate_authz::{CompiledPolicy, Explanation, Principal};
use loggate_model::doc::ServiceToken;
use loggate_model::types::{ObjectRef, Permission};
use loggate_model::{Identity, PolicyError, TokenDigest};
use std::process::ExitCode;

pub(super) fn authz(
    path: &std::path::Path,
    token_id: Option<&str>,
    token: Option<&str>,
    object: &str,
    permission: &str,
    client_addr: Option<std::net::IpAddr>,
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
    let policy = match configured_policy(&config) {
        Ok((policy, _)) => policy,
        Err(e) => return fail(e),
    };
    let identity = match (token_id, token) {
        (Some(id), _) => token_identity(&policy, id),
        (None, Some(raw)) => policy.identity(&TokenDigest::of(raw)),
        (None, None) => None,
    };
    let Some(identity) = identity else {
        return fail("no such service token in the policy".into());
    };
    // Every side that denies is named: validity and address (checked when
    // serving before the policy is asked), then the ACLs and the scope.
    let window = outside_validity(&identity, now_ms());
    let address_denied = client_addr.is_some_and(|a| !identity.admits(a));
    let explanation = policy.explain(&Principal::from(&identity), &object, permission);
    let mut denied_by: Vec<&str> = Vec::new();
    denied_by.extend(window.is_some().then_some("validity"));
    denied_by.extend(address_denied.then_some("address"));
    denied_by.extend(explanation.denied_by.iter().copied());
    let allowed = denied_by.is_empty();
    println!("{}", if allowed { "allow" } else { "deny" });
    if explain {
        if !allowed {
            println!("denied by: {}", denied_by.join(", "));
        }
        println!(
            "token {} ({}) acting as user {} in organization {}",
            identity.token_id, identity.token_name, identity.user_id, identity.org_id
        );
        if let Some(window) = window {
            println!("  validity: the token is outside its validity window ({window})");
        }
        if let Some(addr) = client_addr.filter(|_| address_denied) {
            println!("  address: {addr} is outside the token's client_cidrs");
        }
        for line in &explanation.lines {
            println!("  {line}");
        }
    }
    if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// The configured store's policy as `serve` would load it (entries that
/// break a rule left out, and returned beside it).
pub(super) fn configured_policy(config: &Config) -> Result<(CompiledPolicy, Vec<PolicyError>), String> {
    match config.policy.source {
        PolicySource::File => match crate::policy::file::load(&config.policy.file) {
            Ok(loaded) => Ok((loaded.policy, loaded.left_out)),
            Err(e) => Err(e.to_string()),
        },
        PolicySource::Postgres => with_pg(config, async |store| store.load_doc().await).map(CompiledPolicy::from_doc),
    }
}

/// The identity of the service token with id `token_id`, as a request
/// bearing that token would be recognised.
pub(super) fn token_identity(policy: &CompiledPolicy, token_id: &str) -> Option<Identity> {
    recognised(policy, policy.to_doc().service_tokens.iter().find(|t| t.id == token_id)?)
}

/// The identity a request bearing `token` (an entry of `policy`) acts as.
pub(super) fn recognised(policy: &CompiledPolicy, token: &ServiceToken) -> Option<Identity> {
    policy.identity(&token.token_sha256).filter(|i| i.token_id == token.id)
}

/// The wall clock, in Unix milliseconds.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// When the token is outside its validity window at `now_ms`: the window
/// (`not before …, expires …` in RFC 3339).
pub(super) fn outside_validity(identity: &Identity, now_ms: i64) -> Option<String> {
    if !identity.expired(|| now_ms) {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(t) = identity.not_before {
        parts.push(format!("not before {t}"));
    }
    if let Some(t) = identity.expires_at {
        parts.push(format!("expires {t}"));
    }
    Some(parts.join(", "))
}

/// `name (id)`, or the id alone when the name adds nothing.
pub(super) fn token_label(name: &str, id: &str) -> String {
    if name.is_empty() || name == id { id.to_owned() } else { format!("{name} ({id})") }
}

/// A decision and its evidence, lines as `CompiledPolicy::explain` words
/// them (the first says `allow: …` or `deny: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub lines: Vec<String>,
}

impl Verdict {
    /// The evidence on one line.
    pub fn because(&self) -> String {
        self.lines.join("; ")
    }

    /// A service token with this id is not in the policy.
    pub(super) fn no_token(token_id: &str) -> Verdict {
        Verdict { allowed: false, lines: vec![format!("deny: no service token {token_id} in the policy")] }
    }

    /// The token is refused before the policy is asked.
    pub(super) fn outside_validity(identity: &Identity, window: &str) -> Verdict {
        let label = token_label(&identity.token_name, &identity.token_id);
        Verdict {
            allowed: false,
            lines: vec![format!("deny: validity: token {label} is outside its validity window ({window})")],
        }
    }
}

impl From<Explanation> for Verdict {
    fn from(e: Explanation) -> Self {
        Verdict { allowed: e.decision.is_allow(), lines: e.lines }
    }
}

/// One question for a service token, answered as `serve` answers it: the
/// token's validity window first, then the policy.
pub(super) fn token_verdict(
    policy: &CompiledPolicy,
    identity: &Identity,
    object: &ObjectRef,
    permission: Permission,
    now_ms: i64,
) -> Verdict {
    match outside_validity(identity, now_ms) {
        Some(window) => Verdict::outside_validity(identity, &window),
        None => policy.explain(&Principal::from(identity), object, permission).into(),
    }
}
