//! Resident memory with a full decision cache: the generated policy (10k
//! ACLs, 1k groups, 100 roles) with 10k service tokens, every token's
//! identity cached and 100k cached decisions (10 objects per token).
//! Prints VmRSS/VmHWM from /proc/self/status at each step; the target is
//! at most 64 MiB with everything loaded.
//!
//! Run: `cargo bench --bench memory` (a plain binary, not criterion).

#[path = "common/policy_gen.rs"]
mod policy_gen;

use std::convert::Infallible;
use std::time::Duration;

use loggate::cache::{DecisionCache, DecisionKey};
use loggate_authz::{CompiledPolicy, Principal};
use loggate_model::TokenDigest;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use policy_gen::{Shape, dataset_id, experiment_id, generate, project_id};

const TOKENS: usize = 10_000;
const DECISIONS: usize = 100_000;
const TARGET_MIB: f64 = 64.0;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

fn report(step: &str) -> f64 {
    let rss = status_kib("VmRSS") as f64 / 1024.0;
    println!("{step:<44} VmRSS {rss:7.1} MiB   VmHWM {:7.1} MiB", status_kib("VmHWM") as f64 / 1024.0);
    rss
}

/// The `k`-th of the policy's writable-object universe (logs, experiments, datasets).
fn object(shape: Shape, k: usize) -> ObjectRef {
    let p = shape.projects;
    let k = k % (4 * p);
    match k / p {
        0 => ObjectRef::new(ObjectType::ProjectLog, project_id(k)),
        1 | 2 => ObjectRef::new(ObjectType::Experiment, experiment_id(k - p)),
        _ => ObjectRef::new(ObjectType::Dataset, dataset_id(k - 3 * p)),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks every bench target
    }
    report("start");
    let shape = Shape::LARGE.with_tokens(TOKENS);
    let generated = generate(shape);
    let (policy, left_out) = CompiledPolicy::from_doc(generated.doc);
    assert!(left_out.is_empty(), "generated policy is valid: {left_out:?}");
    let base = report("policy compiled (10k ACLs, 10k tokens)");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cache =
        DecisionCache::new(DECISIONS as u64, Duration::from_secs(300), Duration::from_secs(5), Duration::from_secs(10));
    let per_token = DECISIONS / TOKENS;
    let mut allowed = 0usize;
    rt.block_on(async {
        for (t, raw) in generated.tokens.iter().enumerate() {
            let digest = TokenDigest::of(raw);
            let (identity, _) = cache
                .identity(&digest, || async { Ok::<_, Infallible>(policy.identity(&digest)) })
                .await
                .expect("infallible");
            let identity = identity.expect("known token");
            let principal = Principal::from(&*identity);
            for k in 0..per_token {
                let object = object(shape, t * 7 + k * 401);
                let key = DecisionKey::new(digest, &object, Permission::Update);
                let (d, _) = cache
                    .decision(key, &identity, &object, || async {
                        Ok::<_, Infallible>(policy.decide(&principal, &object, Permission::Update))
                    })
                    .await
                    .expect("infallible");
                allowed += d.is_allow() as usize;
            }
        }
        cache.run_pending_tasks().await;
    });
    let full = report(&format!("{TOKENS} identities + {} decisions cached", cache.decision_count()));
    println!("allowed decisions: {allowed}; cache share: {:.1} MiB", full - base);
    let verdict = if full <= TARGET_MIB { "ok" } else { "OVER TARGET" };
    println!("RSS {full:.1} MiB (target <= {TARGET_MIB} MiB): {verdict}");
    drop(policy);
}
