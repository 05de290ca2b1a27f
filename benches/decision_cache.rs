//! The decision store against moka, at 100k and 1M cached decisions, with
//! the same 128-bit key (`DecisionKey`):
//!
//! - `sharded`: loggate's `DecisionCache` (its sharded decision map,
//!   `src/cache/decisions.rs`), asked through `DecisionCache::decision`;
//! - `moka_ttl`: `moka::future::Cache<DecisionKey, u8>` with `max_capacity`
//!   and one `time_to_live` (a one-byte value: the decision alone);
//! - `moka_expiry`: the same with a per-entry `Expiry` (ttl for allows,
//!   negative ttl for denials), which replacing the store would need.
//!
//! Two measurements:
//!
//! - resident memory after filling (`-- --rss`): each (store, size) in a
//!   fresh process (this binary again), VmRSS from /proc/self/statm before
//!   and after the fill, the keys, objects and identities made before the
//!   first reading (10 decisions per token, as in `benches/memory.rs`);
//! - hit latency, single thread (criterion, or `-- --paired` for the
//!   variants in alternation, see `common/paired.rs`): one lookup of a
//!   cached key, the keys visited in a shuffled order over the whole cache,
//!   each future polled to completion without a runtime.
//!
//! Decision and figures: docs/decisions/decision-cache.md.
//! Run: `cargo bench --bench decision_cache -- --rss`, `... -- --paired`,
//! `cargo bench --bench decision_cache`.

#[path = "common/paired.rs"]
mod paired;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::Criterion;
use loggate::cache::{DecisionCache, DecisionKey, Lookup};
use loggate_authz::Decision;
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest};
use moka::Expiry;
use moka::future::Cache;

const TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(5);
const MAX_STALENESS: Duration = Duration::from_secs(10);
const PER_TOKEN: usize = 10;
const SIZES: [(usize, &str); 2] = [(100_000, "100k"), (1_000_000, "1M")];
const STORES: [&str; 3] = ["sharded", "moka_ttl", "moka_expiry"];

/// Polls `f` to completion without a runtime (every future here is ready
/// at once, or after a few polls for moka's housekeeping).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn identity(t: usize) -> Arc<Identity> {
    Arc::new(Identity {
        token_id: format!("token-{t}"),
        token_name: format!("ci-writer-{t}"),
        org_id: "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17".into(),
        user_id: format!("user-{t}"),
        ..Identity::default()
    })
}

/// `n` decisions: 10 per token, each on its own project log.
struct Universe {
    identities: Vec<Arc<Identity>>,
    objects: Vec<ObjectRef>,
    keys: Vec<DecisionKey>,
}

fn universe(n: usize) -> Universe {
    let identities: Vec<_> = (0..n.div_ceil(PER_TOKEN)).map(identity).collect();
    let objects: Vec<_> = (0..n)
        .map(|i| ObjectRef::new(ObjectType::ProjectLog, format!("0000{i:08x}-0d4e-4b8a-9f61-2e5d8c9b0a17")))
        .collect();
    let keys = (0..n)
        .map(|i| {
            let digest = TokenDigest::of(&format!("bt-st-{}", i / PER_TOKEN));
            DecisionKey::new(digest, &objects[i], Permission::Update)
        })
        .collect();
    Universe { identities, objects, keys }
}

struct ByOutcome;

impl Expiry<DecisionKey, u8> for ByOutcome {
    fn expire_after_create(&self, _: &DecisionKey, allow: &u8, _: std::time::Instant) -> Option<Duration> {
        Some(if *allow == 1 { TTL } else { NEGATIVE_TTL })
    }
}

enum Store {
    Sharded(Box<DecisionCache>),
    Moka(Cache<DecisionKey, u8>),
}

impl Store {
    fn new(kind: &str, n: usize) -> Store {
        match kind {
            "sharded" => Store::Sharded(Box::new(DecisionCache::new(n as u64, TTL, NEGATIVE_TTL, MAX_STALENESS))),
            "moka_ttl" => Store::Moka(Cache::builder().max_capacity(n as u64).time_to_live(TTL).build()),
            "moka_expiry" => Store::Moka(Cache::builder().max_capacity(n as u64).expire_after(ByOutcome).build()),
            _ => panic!("unknown store {kind}"),
        }
    }

    fn fill(&self, u: &Universe) {
        match self {
            Store::Sharded(c) => {
                for (i, key) in u.keys.iter().enumerate() {
                    let identity = &u.identities[i / PER_TOKEN];
                    now(c.decision(*key, identity, &u.objects[i], || async { Ok::<_, Infallible>(Decision::Allow) }))
                        .expect("infallible");
                }
            }
            Store::Moka(c) => {
                for key in &u.keys {
                    now(c.insert(*key, 1));
                }
                now(c.run_pending_tasks());
            }
        }
    }

    fn len(&self) -> u64 {
        match self {
            Store::Sharded(c) => c.decision_count(),
            Store::Moka(c) => c.entry_count(),
        }
    }

    /// Asks for `key`: whether it was cached. The sharded store computes
    /// and stores a missing key (as loggate does); moka just misses.
    #[inline]
    fn hit(&self, key: DecisionKey, identity: &Arc<Identity>, object: &ObjectRef) -> bool {
        match self {
            Store::Sharded(c) => {
                now(c.decision(key, identity, object, || async { Ok::<_, Infallible>(Decision::Allow) }))
                    .is_ok_and(|(_, lookup)| lookup == Lookup::Hit)
            }
            Store::Moka(c) => now(c.get(&key)) == Some(1),
        }
    }
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux only)");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

/// In a fresh process: fill one store and print its resident share.
fn rss_child(kind: &str, n: usize) {
    let u = universe(n);
    let store = Store::new(kind, n);
    let before = resident_bytes();
    let started = Instant::now();
    store.fill(&u);
    let filled_in = started.elapsed();
    let after = resident_bytes();
    let share = after.saturating_sub(before);
    println!(
        "rss {kind:<12} {n:>8} decisions: {:>8} kept, RSS {:7.1} MiB (cache share {:6.1} MiB, {:5.0} B per decision), filled in {:.2} s",
        store.len(),
        after as f64 / (1 << 20) as f64,
        share as f64 / (1 << 20) as f64,
        share as f64 / store.len().max(1) as f64,
        filled_in.as_secs_f64()
    );
    black_box(&store);
}

fn rss_all() {
    let exe = std::env::current_exe().expect("own path");
    for (n, _) in SIZES {
        for kind in STORES {
            let out = std::process::Command::new(&exe)
                .args(["--rss-child", kind, &n.to_string()])
                .output()
                .expect("child bench process");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

/// A filled store of each kind, and the keys in a shuffled order.
struct HitFixture {
    stores: Vec<(&'static str, Store)>,
    order: Vec<DecisionKey>,
    identity: Arc<Identity>,
    object: ObjectRef,
}

fn hit_fixture(n: usize) -> HitFixture {
    let u = universe(n);
    let stores: Vec<_> = STORES
        .iter()
        .map(|kind| {
            let s = Store::new(kind, n);
            s.fill(&u);
            (*kind, s)
        })
        .collect();
    let mut order = u.keys.clone();
    // A fixed shuffle (Fisher-Yates over a xorshift sequence).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let f = HitFixture { stores, order, identity: identity(0), object: u.objects[0].clone() };
    // The sharded store keeps a little less than its capacity (each shard
    // is bounded on its own), so a few of the keys miss (and are stored
    // again, evicting others): those lookups are in its figures too.
    for (kind, s) in &f.stores {
        let hits = f.order.iter().filter(|k| s.hit(**k, &f.identity, &f.object)).count();
        println!("{kind}: {:.2}% of the keys hit in one pass", 100.0 * hits as f64 / n as f64);
        assert!(hits >= n * 95 / 100, "{kind}: {hits} of {n} hit");
    }
    f
}

fn criterion_benches(c: &mut Criterion) {
    for (n, label) in SIZES {
        let f = hit_fixture(n);
        let mut g = c.benchmark_group(format!("decision_cache_hit/{label}"));
        for (kind, store) in &f.stores {
            let mut i = 0;
            g.bench_function(*kind, |b| {
                b.iter(|| {
                    i = if i + 1 == f.order.len() { 0 } else { i + 1 };
                    black_box(store.hit(f.order[i], &f.identity, &f.object))
                })
            });
        }
        g.finish();
    }
}

fn paired_rounds() {
    for (n, label) in SIZES {
        let f = hit_fixture(n);
        let variants = f
            .stores
            .iter()
            .map(|(kind, store)| {
                let f = &f;
                let mut i = 0;
                paired::variant(kind, move |k| {
                    for _ in 0..k {
                        i = if i + 1 == f.order.len() { 0 } else { i + 1 };
                        black_box(store.hit(f.order[i], &f.identity, &f.object));
                    }
                })
            })
            .collect();
        paired::paired(&format!("decision_cache_hit/{label}"), 20, 200_000, variants);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--rss-child") {
        return rss_child(&args[at + 1], args[at + 2].parse().expect("a size"));
    }
    if args.iter().any(|a| a == "--rss") {
        return rss_all();
    }
    if paired::requested() {
        return paired_rounds();
    }
    let mut c = Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
