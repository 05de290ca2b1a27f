//! `loggate policy diff` at the size the contract promises: two generated
//! policies of 10k service tokens (10k distinct service accounts) and 1k
//! objects (250 project logs, 500 experiments, 250 datasets) that differ in
//! a few ACLs. Times `loggate::cli::policy_diff::diff_files` end to end:
//! reading and loading both files as `serve` does, every decision, the
//! explanations of the differing ones, and the printed lines. The
//! contract's bound is 10 s on a 2-core machine.
//!
//! A second pair differs in one deleted leaf group (50 service accounts lose
//! every grant through it): many differing decisions, each explained.
//!
//! Run: `cargo bench --bench policy_diff`. With `LOGGATE_BENCH_DIR=DIR` the
//! files are left in DIR (`old.json`, `acls.json`, `group.json`) for timing
//! the binary: `loggate policy diff DIR/old.json DIR/acls.json`.

#[path = "common/policy_gen.rs"]
mod policy_gen;

use loggate_authz::{CompiledPolicy, Principal};
use loggate_model::Timestamp;
use loggate_model::doc::{Acl, PolicyDoc};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use policy_gen::{Shape, generate};
use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn main() {
    let shape = Shape { projects: 250, users: 10_000, tokens: 10_000, groups: 1_000, roles: 100, acls: 10_000 };
    let old = generate(shape).doc;
    let objects = old.projects.len() + old.experiments.len() + old.datasets.len();
    println!(
        "policy_diff: {} tokens x {objects} objects x 4 permissions; {} ACLs, {} groups, {} roles",
        old.service_tokens.len(),
        old.acls.len(),
        old.groups.len(),
        old.roles.len()
    );
    let kept = std::env::var_os("LOGGATE_BENCH_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).expect("bench dir");
    let old_path = dir.join("old.json");
    write(&old_path, &old);

    for (name, new) in [("acls", edit_acls(old.clone())), ("group", delete_leaf_group(old.clone()))] {
        let new_path = dir.join(format!("{name}.json"));
        write(&new_path, &new);
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let differences = loggate::cli::policy_diff::diff_files(&old_path, &new_path).expect("diff");
            let bytes: usize = differences.iter().map(|d| d.line().len() + 1).sum();
            times.push(start.elapsed());
            if times.len() == 1 {
                println!("{name}: {} differing decisions ({bytes} bytes of output)", differences.len());
            }
        }
        times.sort();
        let runs: Vec<String> = times.iter().map(|t| format!("{:.2}", t.as_secs_f64())).collect();
        println!(
            "{name}: best {:.2} s, median {:.2} s of {RUNS} runs [{}] (bound: 10 s)",
            times[0].as_secs_f64(),
            times[RUNS / 2].as_secs_f64(),
            runs.join(", ")
        );
    }
}

/// A few ACL edits: the first project log's writer grant removed, one noise
/// ACL removed, one turned from `create` into `delete`, and two grants of
/// something the old policy denies (`delete`, `update`) to one service
/// account each.
fn edit_acls(mut doc: PolicyDoc) -> PolicyDoc {
    let compiled = CompiledPolicy::from_doc(doc.clone()).0;
    let mut grants = Vec::new();
    for permission in [Permission::Delete, Permission::Update] {
        'found: for token in doc.service_tokens.iter().skip(grants.len() * 977) {
            let who = Principal::new(token.service_account_id.clone(), token.org_id.clone());
            for d in &doc.datasets {
                let object = ObjectRef::new(ObjectType::Dataset, d.id.as_str());
                if !compiled.decide(&who, &object, permission).is_allow() {
                    grants.push((who.user_id, d.id.clone(), permission));
                    break 'found;
                }
            }
        }
    }
    doc.acls.remove(0);
    doc.acls.remove(5_000);
    let noise =
        doc.acls.iter_mut().skip(6_000).find(|a| a.permission == Some(Permission::Create)).expect("a create ACL");
    noise.permission = Some(Permission::Delete);
    for (i, (user, dataset, permission)) in grants.into_iter().enumerate() {
        let id = format!("ffffffff-0000-4000-8000-{i:012x}");
        doc.acls.push(Acl::user_permission(id, ObjectType::Dataset, dataset, user, permission));
    }
    doc
}

/// One leaf group deleted.
fn delete_leaf_group(mut doc: PolicyDoc) -> PolicyDoc {
    doc.groups.last_mut().expect("groups").deleted_at = Some(Timestamp::from_unix_ms(0));
    doc
}

fn write(path: &Path, doc: &PolicyDoc) {
    std::fs::write(path, serde_json::to_vec(doc).expect("json")).expect("write policy");
}
