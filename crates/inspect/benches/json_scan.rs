//! The validating JSON scan under `inspect::logs3` on realistic bodies
//! (LLM-like spans, escape-dense code completions, plain ASCII; 1, 100 and
//! 1,000 rows), beside the references it is judged against:
//!
//! - `serde_ignored`: `serde_json::from_slice::<IgnoredAny>`, serde_json's
//!   fastest check (no tree; but no depth limit and lone surrogates pass,
//!   so it does not meet the contract);
//! - `sonic_ignored`: the same with `sonic-rs` (SIMD, `unsafe` inside; a
//!   baseline only, see docs/decisions/json-scan-at-memory-speed.md);
//! - `utf8_only`: `simdutf8` over the body, the floor any validating scan
//!   pays.
//!
//! `cargo bench -p loggate-inspect --bench json_scan [-- <filter>]`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::de::IgnoredAny;

#[path = "common/rows.rs"]
mod rows;

const PROJECT: &str = "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17";

fn bench(c: &mut Criterion) {
    for shape in rows::Shape::ALL {
        for n in [1, 100, 1_000] {
            let b = rows::logs3_shaped(shape, n, PROJECT);
            assert!(loggate_inspect::logs3(&b).is_ok());
            assert!(sonic_rs::from_slice::<IgnoredAny>(&b).is_ok());
            let mut g = c.benchmark_group(format!("json_scan/{}/{n}_rows", shape.name()));
            g.throughput(Throughput::Bytes(b.len() as u64));
            g.bench_function("inspect", |bench| bench.iter(|| loggate_inspect::logs3(black_box(&b))));
            g.bench_function("serde_ignored", |bench| {
                bench.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&b)))
            });
            g.bench_function("sonic_ignored", |bench| bench.iter(|| sonic_rs::from_slice::<IgnoredAny>(black_box(&b))));
            g.bench_function("utf8_only", |bench| bench.iter(|| simdutf8::basic::from_utf8(black_box(&b)).is_ok()));
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
