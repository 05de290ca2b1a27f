//! Fuzzing the configuration and policy loaders (proptest, bounded): any
//! input either loads or is refused with an error; nothing panics, and
//! whatever loads is internally consistent.

use loggate::config::Config;
use loggate_authz::CompiledPolicy;
use proptest::prelude::*;

const EXAMPLE_CONFIG: &str = include_str!("../../config/loggate.toml");
const EXAMPLE_POLICY: &str = include_str!("../../config/policy.json");

/// Byte-level mutations of a valid input: flips, deletions, insertions
/// and truncation, so inputs stay close to the grammar.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    prop::collection::vec((0..len, any::<u8>(), 0u8..4), 1..8).prop_map(move |edits| {
        let mut bytes = base.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match op {
                0 => bytes[at] = byte,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
            if bytes.is_empty() {
                break;
            }
        }
        bytes
    })
}

fn load_config(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, std::iter::empty(), None) {
        assert!(config.server.max_body_bytes > 0);
        assert!(config.server.max_concurrent_requests > 0);
    }
}

/// Any text either is not a policy or loads, entry by entry; what loads
/// keeps every rule (loading it again leaves nothing out) and compiles.
fn load_policy(bytes: &[u8]) {
    // The file store reads a file through a reader: it loads what the
    // text loads, and refuses what the text is refused for.
    let read = loggate_model::load::from_reader(std::io::BufReader::with_capacity(5, bytes));
    let Ok(text) = std::str::from_utf8(bytes) else {
        assert!(read.is_err(), "not UTF-8, yet read");
        return;
    };
    let from_text = loggate_model::load::from_json(text);
    match (&read, &from_text) {
        (Ok(r), Ok(t)) => assert_eq!((&r.policy, &r.left_out), (&t.policy, &t.left_out)),
        (Err(_), Err(_)) => {}
        _ => panic!("read {:?} but text {:?}", read.as_ref().err(), from_text.as_ref().err()),
    }
    let Ok(loaded) = from_text else { return };
    let again = loggate_model::load::from_doc(loaded.policy.to_doc());
    assert!(again.left_out.is_empty(), "{:?}", again.left_out);
    assert_eq!(again.policy, loaded.policy);
    let policy = CompiledPolicy::compile(loaded.policy);
    assert_eq!(policy.to_doc(), again.policy.to_doc());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn config_loader_never_panics_on_mutations(bytes in mutated(EXAMPLE_CONFIG)) {
        load_config(&bytes);
    }

    #[test]
    fn config_loader_never_panics_on_env_overrides(
        key in "[A-Z_]{1,12}__[A-Z_]{1,16}",
        value in ".{0,40}",
    ) {
        let vars = vec![(format!("LOGGATE_{key}"), value)];
        let _ = Config::from_toml(EXAMPLE_CONFIG, vars, None);
    }

    #[test]
    fn config_loader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_config(&bytes);
    }

    #[test]
    fn policy_loader_never_panics_on_mutations(bytes in mutated(EXAMPLE_POLICY)) {
        load_policy(&bytes);
    }

    #[test]
    fn policy_loader_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_policy(&bytes);
    }
}

#[test]
fn the_examples_load() {
    load_config(EXAMPLE_CONFIG.as_bytes());
    let loaded = loggate_model::load::from_json(EXAMPLE_POLICY).unwrap();
    assert!(loaded.left_out.is_empty(), "{:?}", loaded.left_out);
    CompiledPolicy::compile(loaded.policy);
}
