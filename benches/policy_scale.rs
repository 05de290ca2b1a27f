//! How cost grows with the policy: a generated policy of 10k, 100k and 1M
//! service tokens (as many ACLs and service accounts, a tenth as many
//! projects, 1,000 groups nested five deep, 100 roles), and for each size:
//!
//! - file store: load + compile time of the policy file (what `serve` and a
//!   reload do) and the process's peak RSS after it, measured in a child
//!   process per size so that sizes do not share a heap; with `STAGES=1`,
//!   also the time and RSS after each stage (read + rules, compile) on
//!   stderr;
//! - decision latency, p50 and p99 over random tokens and objects: uncached
//!   (the evaluator on the compiled policy), cached (a decision-cache hit),
//!   and identity lookups by digest;
//! - learning: `FileStore::learn` of a discovered project with its creator's
//!   owner grant, p50 and p99 over `LEARNS` projects, on the loaded policy;
//! - with `PG=1`, the Postgres store holding the same policy: the first
//!   request of a token never seen before (identity, then the decision's
//!   slice load), p50 and p99 over 1,000 tokens.
//!
//! Run: `cargo bench --bench policy_scale` (a plain binary, not criterion).
//! Env: `SIZES=10000,100000,1000000` (default), `PG=1`,
//! `PG_URL=postgres://postgres@127.0.0.1:5432` (a database
//! `PG_DB`, default `loggate_scale`, is created there and dropped at the
//! end; `PG_KEEP=1` keeps the last one, to EXPLAIN its queries).

#[path = "common/policy_gen.rs"]
mod policy_gen;

use std::convert::Infallible;
use std::path::Path;
use std::time::{Duration, Instant};

use loggate::cache::{DecisionCache, DecisionKey};
use loggate_authz::Principal;
use loggate_model::TokenDigest;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use policy_gen::{Shape, generate, project_id, raw_token, writable_project};

const SAMPLES: usize = 100_000;
const COLD_SAMPLES: usize = 1_000;
const LEARNS: usize = 100;

fn shape(tokens: usize) -> Shape {
    Shape { projects: (tokens / 10).max(1_000), users: tokens, tokens, groups: 1_000, roles: 100, acls: tokens }
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// p50 and p99 of `samples` (nanoseconds), as microseconds.
fn percentiles(mut samples: Vec<u64>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

/// xorshift64*, as in the generator: the same draws on every run.
struct Draw(u64);
impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// One token's request: its digest and the project log it writes to.
fn request(shape: Shape, token: usize) -> (TokenDigest, ObjectRef) {
    let log = ObjectRef::new(ObjectType::ProjectLog, project_id(writable_project(shape, token)));
    (TokenDigest::of(&raw_token(token)), log)
}

/// The child: loads one policy file as the file store does and measures.
fn child(tokens: usize, path: &Path) {
    let shape = shape(tokens);
    let before = status_mib("VmRSS");
    let started = Instant::now();
    let (policy, left_out) = if std::env::var("STAGES").is_ok_and(|v| v == "1") {
        stages(path, before)
    } else {
        let loaded = loggate::policy::file::load(path).expect("generated policy loads");
        (loaded.policy, loaded.left_out)
    };
    let load_s = started.elapsed().as_secs_f64();
    assert!(left_out.is_empty(), "generated policy is valid");
    let (rss, hwm) = (status_mib("VmRSS"), status_mib("VmHWM"));

    let mut draw = Draw(0x5851_f42d_4c95_7f2d);
    let sample: Vec<(TokenDigest, ObjectRef)> = (0..SAMPLES).map(|_| request(shape, draw.below(tokens))).collect();
    let identities: Vec<_> = sample.iter().map(|(d, _)| policy.identity(d).expect("known token")).collect();

    let mut identity_ns = Vec::with_capacity(SAMPLES);
    for (digest, _) in &sample {
        let t = Instant::now();
        std::hint::black_box(policy.identity(digest));
        identity_ns.push(t.elapsed().as_nanos() as u64);
    }
    let mut uncached_ns = Vec::with_capacity(SAMPLES);
    let mut allowed = 0;
    for ((_, object), identity) in sample.iter().zip(&identities) {
        let principal = Principal::from(identity);
        let t = Instant::now();
        let d = std::hint::black_box(policy.decide(&principal, object, Permission::Update));
        uncached_ns.push(t.elapsed().as_nanos() as u64);
        allowed += usize::from(d.is_allow());
    }
    assert_eq!(allowed, SAMPLES, "every sampled write is allowed by construction");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cache = DecisionCache::new(
        2 * SAMPLES as u64,
        Duration::from_secs(300),
        Duration::from_secs(5),
        Duration::from_secs(10),
    );
    let identities: Vec<_> = identities.into_iter().map(std::sync::Arc::new).collect();
    let cached_ns = rt.block_on(async {
        let lookup = |i: usize| {
            let (digest, object) = &sample[i];
            let identity = &identities[i];
            let key = DecisionKey::new(*digest, object, Permission::Update);
            cache.decision(key, identity, object, || async {
                Ok::<_, Infallible>(policy.decide(&Principal::from(&**identity), object, Permission::Update))
            })
        };
        for i in 0..SAMPLES {
            lookup(i).await.expect("infallible");
        }
        cache.run_pending_tasks().await;
        let mut ns = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let t = Instant::now();
            std::hint::black_box(lookup(i).await.expect("infallible"));
            ns.push(t.elapsed().as_nanos() as u64);
        }
        ns
    });

    // Learning, on the file store as `serve` runs it: the policy above is
    // dropped first, so that the two do not share the heap.
    let creator = policy_gen::user_id(0);
    drop(cache);
    drop(policy);
    let store = loggate::policy::file::FileStore::open(path).expect("store opens");
    let mut learn_ns = Vec::with_capacity(LEARNS);
    for i in 0..LEARNS {
        use loggate::policy::PolicyStore;
        use loggate::policy::discovery::{Creator, Discovery};
        let id = format!("learned-project-{i}");
        let discovery = Discovery {
            project: loggate_model::doc::Project::new(id.clone(), policy_gen::ORG_ID, format!("learned-{i}")),
            child: None,
            creator: Some(Creator {
                user_id: creator.clone(),
                created: vec![ObjectRef::new(ObjectType::Project, id.clone())],
            }),
        };
        let t = Instant::now();
        let learned = rt.block_on(store.learn(discovery)).expect("file store answers");
        learn_ns.push(t.elapsed().as_nanos() as u64);
        assert!(learned, "a new project is learned");
        let owner = Principal::new(creator.clone(), policy_gen::ORG_ID);
        let log = ObjectRef::new(ObjectType::ProjectLog, id);
        assert!(store.current().decide(&owner, &log, Permission::Update).is_allow(), "the creator owns it");
    }

    let (i50, i99) = percentiles(identity_ns);
    let (u50, u99) = percentiles(uncached_ns);
    let (c50, c99) = percentiles(cached_ns);
    let (l50, l99) = percentiles(learn_ns);
    println!(
        "| {tokens} | {} | {} | {load_s:.2} | {:.0} | {:.0} | {i50:.2} / {i99:.2} | {u50:.2} / {u99:.2} | {c50:.2} / {c99:.2} | {l50:.1} / {l99:.1} |",
        shape.acls,
        shape.projects,
        rss - before,
        hwm,
    );
}

/// The load as `file::load` does it, stage by stage (`STAGES=1`): time,
/// RSS growth and peak RSS after reading the file with the loading rules,
/// and after compiling.
fn stages(path: &Path, before: f64) -> (loggate_authz::CompiledPolicy, Vec<loggate_model::PolicyError>) {
    let t = Instant::now();
    let file = std::fs::File::open(path).expect("policy file");
    let loaded = loggate_model::load::from_reader(std::io::BufReader::with_capacity(1 << 20, file)).expect("a policy");
    eprintln!(
        "stages: read + rules {:.2} s, RSS growth {:.0} MiB, peak {:.0} MiB",
        t.elapsed().as_secs_f64(),
        status_mib("VmRSS") - before,
        status_mib("VmHWM")
    );
    let t = Instant::now();
    let left_out = loaded.left_out;
    let policy = loggate_authz::CompiledPolicy::compile(loaded.policy);
    eprintln!(
        "stages: compile {:.2} s, RSS growth {:.0} MiB, peak {:.0} MiB",
        t.elapsed().as_secs_f64(),
        status_mib("VmRSS") - before,
        status_mib("VmHWM")
    );
    (policy, left_out)
}

/// Postgres: the first request of tokens never seen, with the whole policy
/// in the store; then the same requests again (warm: connections, plans and
/// pages warm, but no decision cache: the store answers each one anew).
fn postgres(tokens: usize, doc: &loggate_model::doc::PolicyDoc) {
    use loggate::policy::PolicyStore;
    let base = std::env::var("PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db = std::env::var("PG_DB").unwrap_or_else(|_| "loggate_scale".into());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let (admin, conn) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls).await.expect("postgres");
        tokio::spawn(conn);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}")).await.expect("drop");
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.expect("create");
        // Imports are bounded by the larger of 300 s and the store timeout:
        // a million tokens (and as many users and ACLs) take longer.
        let store =
            loggate::policy::postgres::PgStore::open(&format!("{base}/{db}"), Duration::from_secs(3600)).expect("open");
        store.migrate().await.expect("migrate");
        let started = Instant::now();
        store.import(doc, false).await.expect("import");
        let import_s = started.elapsed().as_secs_f64();
        let shape = shape(tokens);
        let mut draw = Draw(0x2545_f491_4f6c_dd1d);
        let requests: Vec<_> = (0..COLD_SAMPLES).map(|_| request(shape, draw.below(tokens))).collect();
        let measure = async |requests: &[(TokenDigest, ObjectRef)]| {
            let mut ns = Vec::with_capacity(requests.len());
            for (digest, object) in requests {
                let t = Instant::now();
                let identity = store.identity(digest).await.expect("store answers").expect("known token");
                let d =
                    store.decide(&Principal::from(&identity), object, Permission::Update).await.expect("store answers");
                ns.push(t.elapsed().as_nanos() as u64);
                assert!(d.is_allow());
            }
            percentiles(ns)
        };
        let (p50, p99) = measure(&requests).await;
        let (w50, w99) = measure(&requests).await;
        println!(
            "| {tokens} | {import_s:.1} | {:.2} / {:.2} | {:.2} / {:.2} |",
            p50 / 1000.0,
            p99 / 1000.0,
            w50 / 1000.0,
            w99 / 1000.0
        );
        drop(store);
        if std::env::var("PG_KEEP").is_ok_and(|v| v == "1") {
            return; // left for EXPLAIN
        }
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await.expect("drop");
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks every bench target
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(args[i + 1].parse().expect("size"), Path::new(&args[i + 2]));
        return;
    }
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SIZES: comma-separated token counts"))
        .collect();
    let pg = std::env::var("PG").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    println!(
        "| tokens | ACLs | projects | load + compile (s) | RSS growth (MiB) | peak RSS (MiB) | identity p50 / p99 (µs) | uncached decision p50 / p99 (µs) | cached decision p50 / p99 (µs) | learn p50 / p99 (µs) |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut docs = Vec::new();
    for &tokens in &sizes {
        let generated = generate(shape(tokens));
        let path = dir.path().join(format!("policy-{tokens}.json"));
        std::fs::write(&path, serde_json::to_vec(&generated.doc).expect("serialize")).expect("write policy");
        let status = std::process::Command::new(&exe)
            .args(["--child", &tokens.to_string(), path.to_str().expect("utf-8 path")])
            .status()
            .expect("run child");
        assert!(status.success(), "child for {tokens} failed");
        std::fs::remove_file(&path).ok();
        if pg {
            docs.push((tokens, generated.doc));
        }
    }
    if pg {
        println!();
        println!(
            "| tokens (Postgres) | import (s) | first request of an unseen token p50 / p99 (ms) | the same requests again, uncached p50 / p99 (ms) |"
        );
        println!("|--:|--:|--:|--:|");
        for (tokens, doc) in &docs {
            postgres(*tokens, doc);
        }
    }
}
