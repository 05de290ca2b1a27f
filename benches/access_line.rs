//! The access line: serde's writer (`AccessRecord::write_json`, what
//! loggate uses) against the former hand-written one
//! (`common/access_line_handwritten.rs`), ns per line into a reused
//! buffer, timestamp given (its clock is the same for both).
//!
//! - `access_line/plain`: ids, names and a route without anything to escape;
//! - `access_line/escapes`: an error and a token name with quotes,
//!   backslashes and control characters.
//!
//! Decision and figures: docs/decisions/access-log-writer.md.
//! Run: `cargo bench --bench access_line`, or `-- --paired` for the
//! variants in alternation (see `common/paired.rs`).

#[path = "common/access_line_handwritten.rs"]
mod handwritten;
#[path = "common/paired.rs"]
mod paired;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use loggate::telemetry::AccessRecord;

const TIMESTAMP: &str = "2026-12-05T11:02:17.402118Z";

struct Case {
    name: &'static str,
    error: Option<&'static str>,
    token_name: &'static str,
    status: u16,
    decision: &'static str,
}

const CASES: [Case; 2] = [
    Case { name: "plain", error: None, token_name: "ci-writer", status: 200, decision: "allow" },
    Case {
        name: "escapes",
        error: Some("permission_denied: \"update\" on project_log\tp1"),
        token_name: "ci \"writer\" \\ prod\n\u{1}",
        status: 403,
        decision: "deny",
    },
];

fn new(c: &Case) -> AccessRecord<'static> {
    AccessRecord {
        request_id: "01JEC4W7Q8M2ZP3N5R6T7V8X9Y",
        method: "POST",
        route: "logs3",
        client: std::net::IpAddr::from([10, 1, 2, 3]),
        status: c.status,
        error: c.error,
        token_id: Some("3f0c2a7e-1b4d-4c8e-9a6f-5d2e8b7c1a90"),
        token_name: Some(c.token_name),
        org: Some("7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17"),
        decision: c.decision,
        rows: 10,
        latency_us: 1_234,
    }
}

fn old(c: &Case) -> handwritten::Record<'static> {
    let n = new(c);
    handwritten::Record {
        request_id: n.request_id,
        method: n.method,
        route: n.route,
        status: n.status,
        error: n.error,
        token_id: n.token_id,
        token_name: n.token_name,
        org: n.org,
        decision: n.decision,
        rows: n.rows,
        latency_us: n.latency_us,
    }
}

/// Both writers give the same JSON value for every case.
fn check() {
    for c in &CASES {
        let mut a = String::new();
        old(c).write_json(&mut a, TIMESTAMP);
        let mut b = Vec::new();
        new(c).write_json(&mut b, TIMESTAMP);
        let a: serde_json::Value = serde_json::from_str(&a).expect("old line is JSON");
        let b: serde_json::Value = serde_json::from_slice(&b).expect("new line is JSON");
        assert_eq!(a, b, "{}", c.name);
    }
}

fn criterion_benches(c: &mut Criterion) {
    for case in &CASES {
        let mut g = c.benchmark_group(format!("access_line/{}", case.name));
        let (o, n) = (old(case), new(case));
        let mut s = String::with_capacity(512);
        g.bench_function("handwritten", |b| {
            b.iter(|| {
                s.clear();
                black_box(&o).write_json(&mut s, black_box(TIMESTAMP));
                black_box(s.len())
            })
        });
        let mut v = Vec::with_capacity(512);
        g.bench_function("serde", |b| {
            b.iter(|| {
                v.clear();
                black_box(&n).write_json(&mut v, black_box(TIMESTAMP));
                black_box(v.len())
            })
        });
        g.finish();
    }
}

fn paired_rounds() {
    for case in &CASES {
        let (o, n) = (old(case), new(case));
        let (mut s, mut v) = (String::with_capacity(512), Vec::with_capacity(512));
        paired::paired(
            &format!("access_line/{}", case.name),
            30,
            200_000,
            vec![
                paired::variant("handwritten", |k| {
                    for _ in 0..k {
                        s.clear();
                        black_box(&o).write_json(&mut s, black_box(TIMESTAMP));
                        black_box(s.len());
                    }
                }),
                paired::variant("serde", |k| {
                    for _ in 0..k {
                        v.clear();
                        black_box(&n).write_json(&mut v, black_box(TIMESTAMP));
                        black_box(v.len());
                    }
                }),
            ],
        );
    }
}

fn main() {
    check();
    if paired::requested() {
        return paired_rounds();
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
