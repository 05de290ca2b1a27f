//! The generator: deterministic for a tape, well-formed when asked to be,
//! and producing every outcome over a few hundred random tapes.

use loggate_policy_reference::generator::{NOW_MS, Tape, policy, requests};
use loggate_policy_reference::reference::{decide, explain_invalid, load};
use loggate_policy_reference::{GenOptions, Outcome};
use std::collections::HashMap;

const ALL_OPTIONS: [GenOptions; 4] = [
    GenOptions { scopes: false, invalid_entries: false, not_before: false },
    GenOptions { scopes: true, invalid_entries: false, not_before: false },
    GenOptions { scopes: false, invalid_entries: true, not_before: false },
    GenOptions { scopes: true, invalid_entries: true, not_before: false },
];

#[test]
fn tape_helpers() {
    let mut t = Tape::new(vec![7, 99, 150, 3]);
    assert_eq!(t.below(5), 2);
    assert!(t.chance(1), "99 is in the top 1%");
    assert!(!t.chance(49), "150 % 100 = 50 is not in the top 49%");
    assert_eq!(*t.pick(&["a", "b", "c"]), "a");
    // Past the end: zeros, which mean "no" and "the first".
    assert_eq!(t.next_u32(), 0);
    assert!(!t.chance(99));
    assert!(t.chance(100));
    assert_eq!(t.below(10), 0);
    assert_eq!(*t.pick(&[5, 6]), 5);
    assert_eq!(t.below(0), 0);
    assert_eq!(t.position(), 10);
}

#[test]
fn deterministic_for_a_tape() {
    for opts in ALL_OPTIONS {
        for seed in 0..50 {
            let data = Tape::from_seed(seed, 3000);
            let (mut a, mut b) = (data.clone(), data.clone());
            let pa = policy(&mut a, &opts);
            let pb = policy(&mut b, &opts);
            assert_eq!(pa, pb);
            assert_eq!(requests(&mut a, &pa, 40, &opts), requests(&mut b, &pb, 40, &opts));
            assert_eq!(a.position(), b.position());
        }
    }
}

#[test]
fn an_empty_tape_gives_the_smallest_valid_policy() {
    for opts in ALL_OPTIONS {
        let mut t = Tape::new(Vec::new());
        let p = policy(&mut t, &opts);
        assert!(explain_invalid(&p).is_empty(), "{:?}", explain_invalid(&p));
        for key in ["organizations", "projects", "users", "acls", "service_tokens"] {
            assert_eq!(p[key].as_array().map(Vec::len), Some(1), "{key}: {p}");
        }
        let reqs = requests(&mut t, &p, 5, &opts);
        assert_eq!(reqs.len(), 5);
        assert!(reqs.iter().all(|r| r.now_ms == NOW_MS));
    }
}

#[test]
fn valid_mode_policies_load_whole() {
    for opts in &ALL_OPTIONS[..2] {
        for seed in 0..300 {
            let mut t = Tape::from_seed(1_000 + seed, 4000);
            let p = policy(&mut t, opts);
            let why = explain_invalid(&p);
            assert!(why.is_empty(), "seed {seed} {opts:?}: {why:?}\n{p:#}");
        }
    }
}

#[test]
fn policies_stay_small() {
    let mut most = 0;
    for opts in ALL_OPTIONS {
        for seed in 0..300 {
            let mut t = Tape::from_seed(seed, 4000);
            let p = policy(&mut t, &opts);
            let entries: usize =
                p.as_object().map_or(0, |o| o.values().filter_map(|v| v.as_array()).map(Vec::len).sum());
            most = most.max(entries);
        }
    }
    println!("largest policy: {most} entries");
    assert!(most <= 80, "{most}");
}

fn tally(opts: &GenOptions, tapes: u64, per_policy: usize) -> (HashMap<Outcome, usize>, usize, usize) {
    let mut mix: HashMap<Outcome, usize> = HashMap::new();
    let mut left_out = 0;
    let mut not_policies = 0;
    for seed in 0..tapes {
        let mut t = Tape::from_seed(0xC0FFEE + seed, 6000);
        let p = policy(&mut t, opts);
        match load(&p) {
            Ok(l) => left_out += l.left_out().len(),
            Err(_) => not_policies += 1,
        }
        for r in requests(&mut t, &p, per_policy, opts) {
            *mix.entry(decide(&p, &r)).or_default() += 1;
        }
    }
    (mix, left_out, not_policies)
}

#[test]
fn every_outcome_over_a_few_hundred_tapes() {
    for opts in ALL_OPTIONS {
        let (mix, left_out, not_policies) = tally(&opts, 300, 40);
        let total: usize = mix.values().sum();
        let line: Vec<String> = Outcome::ALL
            .iter()
            .map(|o| {
                let n = mix.get(o).copied().unwrap_or(0);
                format!("{o:?} {n} ({:.1}%)", 100.0 * n as f64 / total as f64)
            })
            .collect();
        println!(
            "{opts:?}: {total} requests: {}; entries left out: {left_out}; not a policy: {not_policies}",
            line.join(", ")
        );
        let expected: &[Outcome] = if opts.scopes {
            &Outcome::ALL
        } else {
            &[Outcome::Allow, Outcome::Unauthenticated, Outcome::UnknownObject, Outcome::PermissionDenied]
        };
        for o in expected {
            assert!(mix.get(o).copied().unwrap_or(0) > 0, "{opts:?}: no {o:?}");
        }
        if !opts.scopes {
            assert!(!mix.contains_key(&Outcome::ScopeDenied) && !mix.contains_key(&Outcome::ClientAddressDenied));
        }
        assert!(mix[&Outcome::Allow] * 25 >= total, "{opts:?}: Allow under 4%");
        if opts.invalid_entries {
            assert!(left_out > 0 && not_policies > 0);
        } else {
            assert_eq!((left_out, not_policies), (0, 0));
        }
    }
}
