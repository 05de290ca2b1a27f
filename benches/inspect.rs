//! `inspect::logs3` on realistic ~1 KiB rows, against building a
//! `serde_json::Value` from the same bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

/// A span row as the SDKs send it: ids, a chat input, an output, metadata
/// and metrics; about 1 KiB serialized.
fn row(i: usize) -> Value {
    json!({
        "id": format!("5f0c2c1e-8d0b-4c55-9a4f-{i:012}"),
        "span_id": format!("a1b2c3d4-e5f6-4a7b-8c9d-{i:012}"),
        "root_span_id": "0e9d8c7b-6a59-4483-9271-605f4e3d2c1b",
        "span_parents": ["0e9d8c7b-6a59-4483-9271-605f4e3d2c1b"],
        "project_id": "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17",
        "log_id": "g",
        "created": "2026-11-25T17:59:27.123Z",
        "_is_merge": false,
        "input": {"messages": [
            {"role": "system", "content": "You are a helpful assistant that answers questions about the \
                company's internal documentation concisely."},
            {"role": "user", "content": format!("How do I rotate the API key for service #{i}? \
                Please include the CLI command and mention whether the \"old\" key keeps working.")}
        ]},
        "output": "Run `svc keys rotate --service <name>`; the old key stays valid for 24 hours \
            so deployments can roll over.\nAfter that it is revoked automatically.",
        "metadata": {"model": "gpt-4o-mini", "temperature": 0.2, "user_id": "u-1842", "env": "prod"},
        "metrics": {"start": 1764093567.123, "end": 1764093568.456, "prompt_tokens": 112,
                    "completion_tokens": 41, "tokens": 153},
        "span_attributes": {"name": "chat.completions", "type": "llm"},
        "tags": ["support", "keys"]
    })
}

fn body(rows: usize) -> Vec<u8> {
    let rows: Vec<Value> = (0..rows).map(row).collect();
    serde_json::to_vec(&json!({"rows": rows, "api_version": 2})).unwrap()
}

fn bench(c: &mut Criterion) {
    for n in [1, 100, 10_000] {
        let b = body(n);
        assert!(loggate::inspect::logs3(&b).is_ok());
        let mut g = c.benchmark_group(format!("logs3/{n}_rows"));
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function("inspect", |bench| bench.iter(|| loggate::inspect::logs3(black_box(&b))));
        g.bench_function("serde_value", |bench| {
            bench.iter(|| serde_json::from_slice::<Value>(black_box(&b)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
