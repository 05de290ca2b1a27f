//! The fast path (per-entry loading, `CompiledPolicy`, token validity) against
//! the independent reference evaluator of `loggate-policy-reference`, on
//! random raw-JSON policies (rule-breaking entries included) and requests.
//! Every (policy, request) pair must get the same outcome; above all, the
//! fast path must never allow what the reference denies.
//!
//! `differential_pairs_agree` runs in CI (about 100k pairs, shrinking on a
//! failure); `a_million_pairs_agree` is the long run:
//! `cargo test --release -p loggate-authz --test differential -- --ignored --nocapture`.

use std::collections::BTreeMap;

use loggate_authz::{CompiledPolicy, Decision, DenyReason, Principal};
use loggate_model::TokenDigest;
use loggate_model::types::{ObjectRef, Permission};
use loggate_policy_reference::generator::{self, Tape};
use loggate_policy_reference::{GenOptions, Outcome, Request, reference};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Everything the generator knows: scoped, address-bound and derived tokens,
/// validity windows, deletion and rule-breaking entries.
const OPTIONS: GenOptions = GenOptions { scopes: true, not_before: true, invalid_entries: true };
const REQUESTS_PER_POLICY: usize = 40;

/// The fast path as `serve` runs it, for one request.
fn fast(policy: Option<&CompiledPolicy>, req: &Request) -> Outcome {
    let Some(policy) = policy else { return Outcome::Unauthenticated };
    let Some(identity) = TokenDigest::from_hex(&req.token_sha256).and_then(|d| policy.identity(&d)) else {
        return Outcome::Unauthenticated;
    };
    if identity.expired(|| req.now_ms) {
        return Outcome::Unauthenticated;
    }
    if !identity.admits(req.client_addr) {
        return Outcome::ClientAddressDenied;
    }
    let Ok(object_type) = req.object_type.parse() else { return Outcome::UnknownObject };
    let object = ObjectRef::new(object_type, req.object_id.clone());
    // A permission outside the vocabulary is never granted (the gateway's
    // routes only ever ask for known ones).
    let Ok(permission) = req.permission.parse::<Permission>() else {
        return if policy.object_org(&object).is_some() { Outcome::PermissionDenied } else { Outcome::UnknownObject };
    };
    match policy.decide(&Principal::from(&identity), &object, permission) {
        Decision::Allow => Outcome::Allow,
        Decision::Deny(DenyReason::UnknownObject) => Outcome::UnknownObject,
        Decision::Deny(DenyReason::MissingPermission | DenyReason::OtherOrganization) => Outcome::PermissionDenied,
        Decision::Deny(DenyReason::ScopeDenied) => Outcome::ScopeDenied,
    }
}

/// Compares every request of one generated policy; returns the outcome mix.
fn compare(tape: &mut Tape) -> Result<BTreeMap<String, usize>, String> {
    let raw = generator::policy(tape, &OPTIONS);
    let requests = generator::requests(tape, &raw, REQUESTS_PER_POLICY, &OPTIONS);
    let text = raw.to_string();
    let compiled = loggate_model::load::from_json(&text).ok().map(|l| CompiledPolicy::compile(l.policy));
    let expected_policy = reference::load(&raw);
    let mut mix = BTreeMap::new();
    for req in &requests {
        let expected = match &expected_policy {
            Ok(loaded) => loaded.decide(req),
            Err(_) => Outcome::Unauthenticated,
        };
        let got = fast(compiled.as_ref(), req);
        if got != expected {
            let side = if got == Outcome::Allow { "FALSE ALLOW" } else { "disagreement" };
            return Err(format!(
                "{side}: fast path {got:?}, reference {expected:?}\nrequest: {req:?}\npolicy: {}\nreference left out: {:#?}",
                serde_json::to_string_pretty(&raw).unwrap(),
                reference::explain_invalid(&raw)
            ));
        }
        *mix.entry(format!("{expected:?}")).or_default() += 1;
    }
    Ok(mix)
}

#[test]
fn differential_pairs_agree() {
    let mut runner = TestRunner::new(Config { cases: 2_500, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(any::<u32>(), 0..600), |data| {
        compare(&mut Tape::new(data)).map(|_| ()).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
#[ignore = "long run: a million pairs; see the module doc"]
fn a_million_pairs_agree() {
    let policies = 1_000_000usize.div_ceil(REQUESTS_PER_POLICY);
    let mut mix: BTreeMap<String, usize> = BTreeMap::new();
    for seed in 0..policies as u64 {
        match compare(&mut Tape::from_seed(seed, 600)) {
            Ok(m) => m.into_iter().for_each(|(k, n)| *mix.entry(k).or_default() += n),
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    let total: usize = mix.values().sum();
    println!("{total} pairs over {policies} policies, zero disagreements; outcomes: {mix:?}");
    assert!(total >= 1_000_000);
}
