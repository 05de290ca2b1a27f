//! Paired timing for a shared, noisy machine: the variants run in
//! alternation, round after round, each for the same number of
//! iterations; per variant the fastest and the median round are reported
//! in ns per iteration. Another process taking the CPU slows a round
//! down, never speeds it up, so the fastest rounds are the ones to
//! compare; the median shows how much noise there was.

use std::time::Instant;

pub struct Variant<'a> {
    pub name: &'static str,
    /// Runs `n` iterations.
    pub run: Box<dyn FnMut(u64) + 'a>,
}

pub fn variant<'a>(name: &'static str, run: impl FnMut(u64) + 'a) -> Variant<'a> {
    Variant { name, run: Box::new(run) }
}

/// Runs `rounds` rounds of `iters` iterations of every variant (the order
/// rotating from round to round) and prints `group/name: min .. median`.
/// Returns (name, min, median) in ns per iteration.
pub fn paired(group: &str, rounds: usize, iters: u64, mut variants: Vec<Variant<'_>>) -> Vec<(&'static str, f64, f64)> {
    let n = variants.len();
    for v in variants.iter_mut() {
        (v.run)(iters / 10 + 1); // warm up
    }
    let mut times = vec![Vec::with_capacity(rounds); n];
    for r in 0..rounds {
        for k in 0..n {
            let i = (r + k) % n;
            let start = Instant::now();
            (variants[i].run)(iters);
            times[i].push(start.elapsed().as_nanos() as f64 / iters as f64);
        }
    }
    let mut out = Vec::new();
    for (v, t) in variants.iter().zip(times.iter_mut()) {
        t.sort_by(f64::total_cmp);
        let (min, median) = (t[0], t[t.len() / 2]);
        println!("{group}/{:<24} min {min:9.1} ns   median {median:9.1} ns   ({rounds} rounds x {iters})", v.name);
        out.push((v.name, min, median));
    }
    out
}

/// Whether the bench binary was asked for paired rounds (`-- --paired`);
/// `cargo bench -- --list` and criterion's own arguments pass through.
pub fn requested() -> bool {
    std::env::args().any(|a| a == "--paired")
}
