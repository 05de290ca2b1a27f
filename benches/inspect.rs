//! `inspect::logs3` on realistic ~1 KiB rows, against building a
//! `serde_json::Value` from the same bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

#[path = "common/rows.rs"]
mod rows;

fn body(n: usize) -> Vec<u8> {
    rows::logs3_body(n, "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17")
}

fn bench(c: &mut Criterion) {
    for n in [1, 100, 10_000] {
        let b = body(n);
        assert!(loggate_inspect::logs3(&b).is_ok());
        let mut g = c.benchmark_group(format!("logs3/{n}_rows"));
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function("inspect", |bench| bench.iter(|| loggate_inspect::logs3(black_box(&b))));
        g.bench_function("serde_value", |bench| bench.iter(|| serde_json::from_slice::<Value>(black_box(&b))));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
