//! `inspect::logs3` on the bodies of `common/rows.rs` (LLM-like spans,
//! escape-dense code completions, plain ASCII) in batches of 1, 100 and
//! 1,000 rows, against building a `serde_json::Value` from the same bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

#[path = "../crates/inspect/benches/common/rows.rs"]
mod rows;

const PROJECT: &str = "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17";

fn bench(c: &mut Criterion) {
    for shape in rows::Shape::ALL {
        for n in [1, 100, 1_000] {
            let b = rows::logs3_shaped(shape, n, PROJECT);
            assert!(loggate_inspect::logs3(&b).is_ok());
            let mut g = c.benchmark_group(format!("logs3/{}/{n}_rows", shape.name()));
            g.throughput(Throughput::Bytes(b.len() as u64));
            g.bench_function("inspect", |bench| bench.iter(|| loggate_inspect::logs3(black_box(&b))));
            g.bench_function("serde_value", |bench| bench.iter(|| serde_json::from_slice::<Value>(black_box(&b))));
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
