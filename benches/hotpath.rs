//! The gateway's hot path, piece by piece, on a generated policy of the
//! size the issue names (10k ACLs, 1k groups nested 5 deep, 100 roles):
//!
//! - `token`: `TokenDigest::of` + `CompiledPolicy::identity`
//! - `decision/cached_hit`: `DecisionCache::decision` when the key is cached
//! - `decision/uncached`: `CompiledPolicy::decide` (the cache's miss path)
//! - `decision/scoped_*`: the same for a token with a scope (four grants,
//!   the one that matches last, and two client CIDR blocks): the cached
//!   path is a hit plus the per-request address check
//! - `policy/compile`: validate + compile the whole document
//! - `logs3/N_rows`: `inspect::logs3` then a cached decision per target
//!   (what the gateway does before forwarding), beside
//!   `serde_json::from_slice::<Value>` of the same bytes for scale.
//!   The inspector alone is `benches/inspect.rs`.
//! - `body/llm_100_rows`: `server::body::read` gathering a 100-row LLM
//!   batch that arrives as 16 KiB frames (as hyper delivers a body of that
//!   size), with the declared length known (the buffer is sized once) and
//!   unknown (chunked: it grows), beside `inspect::logs3` on the same bytes:
//!   what the one copy costs next to the scan.
//!
//! Run: `cargo bench --bench hotpath`.

#[path = "common/policy_gen.rs"]
mod policy_gen;
#[path = "common/rows.rs"]
mod rows;
#[path = "../crates/inspect/benches/common/rows.rs"]
mod shapes;

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use loggate::cache::{DecisionCache, WorkerCache};
use loggate_authz::{CompiledPolicy, Decision, Principal};
use loggate_inspect::{self as inspect, Logs3};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest};
use policy_gen::{Shape, generate, project_id, writable_project};

struct Fixture {
    policy: CompiledPolicy,
    token: String,
    identity: Arc<Identity>,
    principal: Principal,
    object: ObjectRef,
    /// The same policy with the bench token scoped (see `scoped`).
    scoped: Scoped,
}

struct Scoped {
    policy: CompiledPolicy,
    identity: Arc<Identity>,
    principal: Principal,
}

/// `doc` with token `t` narrowed to three other projects and, last, the
/// project it writes, and to two address blocks.
fn scoped(mut doc: loggate_model::doc::PolicyDoc, t: usize, project: &str) -> Scoped {
    let grant = |id: String| loggate_model::ScopeGrant {
        object_type: ObjectType::Project,
        object_id: id,
        permissions: vec![Permission::Read, Permission::Update],
    };
    let mut grants: Vec<_> = (0..3).map(|i| grant(project_id(900 + i))).collect();
    grants.push(grant(project.to_owned()));
    doc.service_tokens[t].scope = Some(loggate_model::Scope {
        grants: Some(grants),
        client_cidrs: Some(vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.0/8".parse().unwrap()]),
    });
    let digest = doc.service_tokens[t].token_sha256;
    let (policy, left_out) = CompiledPolicy::from_doc(doc);
    assert!(left_out.is_empty(), "{left_out:?}");
    let identity = Arc::new(policy.identity(&digest).expect("token is known"));
    let principal = Principal::from(&*identity);
    Scoped { policy, identity, principal }
}

fn fixture() -> Fixture {
    let shape = Shape::LARGE;
    let generated = generate(shape);
    let doc = generated.doc.clone();
    let (policy, left_out) = CompiledPolicy::from_doc(generated.doc);
    assert!(left_out.is_empty(), "generated policy is valid: {left_out:?}");
    let t = 123;
    let token = generated.tokens[t].clone();
    let identity = Arc::new(policy.identity(&TokenDigest::of(&token)).expect("token is known"));
    let principal = Principal::from(&*identity);
    let object = ObjectRef::new(ObjectType::ProjectLog, project_id(writable_project(shape, t)));
    assert_eq!(policy.decide(&principal, &object, Permission::Update), Decision::Allow, "bench token must be allowed");
    let scoped = scoped(doc, t, &object.id);
    assert_eq!(scoped.policy.decide(&scoped.principal, &object, Permission::Update), Decision::Allow);
    Fixture { policy, token, identity, principal, object, scoped }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn cache() -> DecisionCache {
    DecisionCache::new(100_000, Duration::from_secs(300), Duration::from_secs(5), Duration::from_secs(10))
}

/// One decision through the cache, as `Gateway::decide` asks it.
async fn cached_decide(
    cache: &DecisionCache,
    f: &Fixture,
    digest: &TokenDigest,
    object: &ObjectRef,
    permission: Permission,
) -> Decision {
    let key = loggate::cache::DecisionKey::new(*digest, object, permission);
    let (decision, _) = cache
        .decision(key, &f.identity, object, || async {
            Ok::<_, Infallible>(f.policy.decide(&f.principal, object, permission))
        })
        .await
        .expect("infallible");
    decision
}

fn token(c: &mut Criterion, f: &Fixture) {
    c.bench_function("token/digest_and_identity", |b| {
        b.iter(|| f.policy.identity(&TokenDigest::of(black_box(&f.token))))
    });
}

fn decision(c: &mut Criterion, f: &Fixture) {
    let rt = runtime();
    let cache = cache();
    let digest = TokenDigest::of(&f.token);
    rt.block_on(cached_decide(&cache, f, &digest, &f.object, Permission::Update));
    let mut g = c.benchmark_group("decision");
    g.bench_function("cached_hit", |b| {
        b.iter(|| rt.block_on(cached_decide(&cache, f, &digest, black_box(&f.object), Permission::Update)))
    });
    // What a worker's request asks: its own front first (see cache/worker.rs).
    let worker = WorkerCache::new(Arc::new(crate::cache()));
    let worker_decide = || async {
        let key = loggate::cache::DecisionKey::new(digest, black_box(&f.object), Permission::Update);
        let principal = || async { Ok::<_, Infallible>(f.policy.decide(&f.principal, &f.object, Permission::Update)) };
        worker.decision(key, &f.identity, &f.object, principal).await.expect("infallible").0
    };
    assert!(rt.block_on(worker_decide()).is_allow());
    g.bench_function("worker_cache_hit", |b| b.iter(|| rt.block_on(worker_decide())));
    g.bench_function("uncached", |b| {
        b.iter(|| f.policy.decide(&f.principal, black_box(&f.object), Permission::Update))
    });
    let s = &f.scoped;
    let scoped_cache = crate::cache();
    let client: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let scoped_decide = || async {
        let key = loggate::cache::DecisionKey::new(digest, black_box(&f.object), Permission::Update);
        let compute = || async { Ok::<_, Infallible>(s.policy.decide(&s.principal, &f.object, Permission::Update)) };
        let (decision, _) = scoped_cache.decision(key, &s.identity, &f.object, compute).await.expect("infallible");
        decision.is_allow() && s.identity.admits(black_box(client))
    };
    assert!(rt.block_on(scoped_decide()));
    g.bench_function("scoped_cached_hit_and_address", |b| b.iter(|| rt.block_on(scoped_decide())));
    g.bench_function("scoped_uncached", |b| {
        b.iter(|| s.policy.decide(&s.principal, black_box(&f.object), Permission::Update))
    });
    g.finish();
}

fn compile(c: &mut Criterion) {
    let doc = generate(Shape::LARGE).doc;
    let json = serde_json::to_vec(&doc).expect("serializable");
    let mut g = c.benchmark_group("policy");
    g.sample_size(10);
    g.bench_function("compile_10k_acls", |b| {
        b.iter_batched(|| doc.clone(), |d| CompiledPolicy::from_doc(d).0, BatchSize::LargeInput)
    });
    g.bench_function("parse_and_compile_10k_acls", |b| {
        b.iter(|| {
            let text = std::str::from_utf8(black_box(&json)).expect("UTF-8");
            CompiledPolicy::compile(loggate_model::load::from_json(text).expect("a policy").policy)
        })
    });
    g.finish();
}

fn logs3(c: &mut Criterion, f: &Fixture) {
    let rt = runtime();
    let cache = cache();
    let digest = TokenDigest::of(&f.token);
    for n in [1usize, 100, 10_000] {
        let body = rows::logs3_body(n, &f.object.id);
        let mut g = c.benchmark_group(format!("logs3/{n}_rows"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        if n >= 10_000 {
            g.sample_size(20);
        }
        let inspect_and_authorize = |body: &[u8]| {
            let Ok(Logs3::Rows(targets)) = inspect::logs3(body) else { panic!("valid body") };
            for t in &targets.targets {
                let d = rt.block_on(cached_decide(&cache, f, &digest, &t.object, t.permission));
                assert!(d.is_allow());
            }
            targets.rows
        };
        assert_eq!(inspect_and_authorize(&body), n);
        g.bench_function("inspect_authorize", |b| b.iter(|| inspect_and_authorize(black_box(&body))));
        g.bench_function("serde_value", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("valid"))
        });
        g.finish();
    }
}

/// A request body that arrives as `frames`, declaring its total length or not.
struct Framed {
    frames: std::collections::VecDeque<bytes::Bytes>,
    declared: Option<u64>,
}

impl http_body::Body for Framed {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.frames.pop_front().map(|d| Ok(http_body::Frame::data(d))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.declared.map_or_else(http_body::SizeHint::default, http_body::SizeHint::with_exact)
    }
}

fn body(c: &mut Criterion) {
    let rt = runtime();
    let whole =
        bytes::Bytes::from(shapes::logs3_shaped(shapes::Shape::Llm, 100, "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17"));
    let frames = || -> std::collections::VecDeque<bytes::Bytes> {
        (0..whole.len()).step_by(16 * 1024).map(|at| whole.slice(at..whole.len().min(at + 16 * 1024))).collect()
    };
    let read = |declared: Option<u64>| {
        let body = Framed { frames: frames(), declared };
        rt.block_on(loggate::server::body::read(body, 6 << 20, Duration::from_secs(5))).expect("read")
    };
    assert_eq!(read(Some(whole.len() as u64)), whole);
    let mut g = c.benchmark_group("body/llm_100_rows");
    g.throughput(Throughput::Bytes(whole.len() as u64));
    g.bench_function("read_declared_length", |b| b.iter(|| read(black_box(Some(whole.len() as u64)))));
    g.bench_function("read_chunked", |b| b.iter(|| read(black_box(None))));
    g.bench_function("inspect", |b| b.iter(|| inspect::logs3(black_box(&whole))));
    g.finish();
}

fn benches(c: &mut Criterion) {
    body(c);
    let f = fixture();
    token(c, &f);
    decision(c, &f);
    compile(c);
    logs3(c, &f);
}

criterion_group! {
    name = hotpath;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(hotpath);
