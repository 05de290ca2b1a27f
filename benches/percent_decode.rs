//! Query-string decoding: `percent-encoding`'s `percent_decode_str` (what
//! loggate uses, with `+` read as a space first) against the former
//! hand-written decoder (`common/percent_decode_handwritten.rs`), ns per
//! decoded key or value. Both must agree on every input of `INPUTS` and
//! on a sweep of short strings over the interesting bytes.
//!
//! Decision and figures: docs/decisions/percent-decoding.md.
//! Run: `cargo bench --bench percent_decode`, or `-- --paired` (see
//! `common/paired.rs`).

#[path = "common/percent_decode_handwritten.rs"]
mod handwritten;
#[path = "common/paired.rs"]
mod paired;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

/// What loggate's one decoded query (`GET /v1/project?id=...`) looks like:
/// the key, a plain id, and an id with escapes.
const INPUTS: [(&str, &str); 3] =
    [("key", "id"), ("uuid", "7c3f1a52-0d4e-4b8a-9f61-2e5d8c9b0a17"), ("escaped", "my%20project+%2F%20n%C3%A9%zz")];

/// The decoding loggate does (a copy of `percent_decode` in
/// `src/server/pipeline.rs`).
fn with_crate(s: &str) -> String {
    let spaced;
    let s = if s.contains('+') {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn check() {
    for (_, s) in INPUTS {
        assert_eq!(with_crate(s), handwritten::percent_decode(s), "{s}");
    }
    let alphabet = ["%", "2", "b", "B", "f", "F", "z", "+", "a", "%c3", "%a9", "%ff", "é"];
    let mut words = vec![String::new()];
    for _ in 0..4 {
        words = words.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
        for w in &words {
            assert_eq!(with_crate(w), handwritten::percent_decode(w), "{w:?}");
        }
    }
}

fn criterion_benches(c: &mut Criterion) {
    for (name, s) in INPUTS {
        let mut g = c.benchmark_group(format!("percent_decode/{name}"));
        g.bench_function("handwritten", |b| b.iter(|| handwritten::percent_decode(black_box(s))));
        g.bench_function("percent_encoding", |b| b.iter(|| with_crate(black_box(s))));
        g.finish();
    }
}

fn paired_rounds() {
    for (name, s) in INPUTS {
        paired::paired(
            &format!("percent_decode/{name}"),
            30,
            200_000,
            vec![
                paired::variant("handwritten", |k| {
                    for _ in 0..k {
                        black_box(handwritten::percent_decode(black_box(s)));
                    }
                }),
                paired::variant("percent_encoding", |k| {
                    for _ in 0..k {
                        black_box(with_crate(black_box(s)));
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
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
}
