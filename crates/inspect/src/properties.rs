//! Property tests: no input makes an inspector panic, and validity agrees
//! with `serde_json::from_slice::<Value>` wherever depth (serde refuses at
//! 128, we at 129) and duplicate keys play no part.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use loggate_model::types::ObjectType;

fn serde_valid(b: &[u8]) -> bool {
    serde_json::from_slice::<Value>(b).is_ok()
}

fn is_syntax(e: &InspectError) -> bool {
    match e {
        InspectError::BadRequest { message, .. } => message.starts_with("invalid JSON") || message.contains("UTF-8"),
        _ => false,
    }
}

/// Every inspector on `b`: never panics; refuses whatever serde_json
/// refuses; refuses serde-valid input only for shape reasons.
fn check_all(b: &[u8]) {
    let valid = serde_valid(b);
    assert_eq!(validate_json(b).is_ok(), valid, "validate_json vs serde on {:?}", String::from_utf8_lossy(b));
    let object = ObjectRef::new(ObjectType::Experiment, "e");
    let results = [
        logs3(b).map(|_| ()),
        events(b, &object).map(|_| ()),
        feedback(b, &object).map(|_| ()),
        cross_object_insert(b).map(|_| ()),
        overflow_request(b).map(|_| ()),
    ];
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(()) => assert!(valid, "inspector {i} accepted invalid JSON {:?}", String::from_utf8_lossy(b)),
            Err(e) if valid => assert!(!is_syntax(e), "inspector {i}: {e} on valid {:?}", String::from_utf8_lossy(b)),
            Err(_) => {}
        }
    }
}

/// Arbitrary JSON values, shallow enough to stay clear of the depth edge.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,8}".boxed(),
                    prop::sample::select(vec![
                        "project_id",
                        "log_id",
                        "experiment_id",
                        "dataset_id",
                        "_object_delete",
                        "rows",
                        "events",
                        "feedback",
                        "type",
                        "key",
                        "object_ids",
                        "is_delete",
                    ])
                    .prop_map(String::from)
                    .boxed(),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Realistic valid bodies for every route, with arbitrary payloads.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let payload = value();
    (0usize..6, payload, any::<bool>()).prop_map(|(kind, payload, del)| {
        let v = match kind {
            0 => json!({"rows": [
                {"project_id": "p", "log_id": "g", "input": payload, "_object_delete": del},
                {"experiment_id": "e", "output": "x"},
            ], "api_version": 2}),
            1 => json!({"rows": {"type": "logs3_overflow", "key": "k", "size_bytes": payload}}),
            2 => json!({"events": [{"input": payload, "_object_delete": del}, {"id": "x"}]}),
            3 => json!({"feedback": [{"id": "r", "scores": payload}]}),
            4 => json!({"experiment": {"e": {"events": [{"input": payload}], "feedback": []}},
                        "dataset": null}),
            _ => json!({"content_type": "application/json", "size_bytes": 1, "rows": [
                {"object_ids": {"dataset_id": "d"}, "is_delete": del,
                 "input_row": {"byte_size": payload}},
            ]}),
        };
        serde_json::to_vec(&v).unwrap()
    })
}

/// Tokens that sit on the edges of the grammar.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\"",
    "\\",
    "\\u",
    "d83d",
    "\\ude00",
    "\\ud800",
    "00e9",
    "\\n",
    "\\x",
    "0",
    "-",
    "1",
    "01",
    ".",
    "e",
    "E+",
    "1e400",
    "9999",
    "true",
    "fals",
    "null",
    "\"a\"",
    "\"rows\"",
    "\"project_id\"",
    "\"log_id\"",
    "\"g\"",
    "\u{1}",
    "é",
    "\u{7f}",
];

/// One edit to a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), prop::sample::select(TOKENS)).prop_map(|(i, t)| Edit::Insert(i, t.into())),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize| if b.is_empty() { 0 } else { i % (b.len() + 1) };
        match e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] = *x;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, t) => {
                let i = at(*i);
                b.splice(i..i, t.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i);
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => {
                let i = at(*i);
                b.truncate(i);
            }
        }
    }
    b
}

/// The scanner's verdict on `b`, with the `memchr` string search of
/// control-free bodies and, when `b` is control-free, also with the checking
/// search of other bodies: both must agree to the byte and the message.
fn scan_both_ways(b: &[u8]) {
    let Ok(src) = std::str::from_utf8(b) else { return };
    let run = |mut sc: json::Scanner<'_>| sc.skip_value().and_then(|()| sc.end());
    let fast = run(json::Scanner::new(src));
    let checked = run(json::Scanner::with_control_checks(src));
    assert_eq!(fast, checked, "string searches disagree on {src:?}");
}

/// Text as LLM spans carry it: non-ASCII (accents, CJK, emoji outside the
/// BMP), quotes, backslashes, newlines and tabs.
const TEXTS: &[&str] = &[
    "Résume ce ticket « plateforme » :\n- échec à 03:12",
    "以下のログを要約してください。\n再試行: 3 回 🚀",
    "Why does `SELECT * FROM t WHERE s = \"open\"` take 4 s?\tEXPLAIN ✅",
    "    let path = \"C:\\build\\out\";\n",
    "Übersetze: „Bereitschaft“ 😊",
    "plain ascii text of some length, long enough to pass a few words",
    "",
];

/// A realistic `/logs3` body (LLM span rows), serialized compactly either
/// with raw UTF-8 (as `JSON.stringify`) or with every non-ASCII character
/// as `\uXXXX` escapes, astral ones as surrogate pairs (as Python's
/// `json.dumps`).
fn realistic_body() -> impl Strategy<Value = Vec<u8>> {
    let text = prop::sample::select(TEXTS);
    let row = (text.clone(), text, any::<u32>(), any::<f64>().prop_filter("finite", |f| f.is_finite()), any::<bool>())
        .prop_map(|(prompt, completion, i, x, del)| {
            json!({
                "id": format!("5f0c2c1e-{i:08}"), "span_parents": ["0e9d8c7b"],
                "project_id": "p", "log_id": "g", "created": "2026-11-25T17:59:27.123Z",
                "input": {"messages": [{"role": "user", "content": prompt}]},
                "output": completion,
                "metadata": {"model": "gpt-4o", "temperature": x, "seed": i,
                             "request": {"tools": [{"args": {"k": 5, "filters": {"lang": ["fr", "ja"]}}}]}},
                "metrics": {"start": 1764093567.123, "cost_usd": 1.25e-3, "tokens": i % 1000},
                "_object_delete": del,
            })
        });
    (prop::collection::vec(row, 1..4), any::<bool>()).prop_map(|(rows, ascii_only)| {
        let text = serde_json::to_string(&json!({"rows": rows, "api_version": 2})).unwrap();
        if !ascii_only {
            return text.into_bytes();
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
        out.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn realistic_bodies_accepted_and_both_searches_agree(b in realistic_body()) {
        prop_assert!(logs3(&b).is_ok(), "refused {}", String::from_utf8_lossy(&b));
        check_all(&b);
        scan_both_ways(&b);
    }

    #[test]
    fn mutated_realistic_bodies_agree_with_serde(b in realistic_body(), edits in prop::collection::vec(edit(), 1..4)) {
        let b = apply(b, &edits);
        check_all(&b);
        scan_both_ways(&b);
    }

    #[test]
    fn both_searches_agree_on_values_and_soup(
        v in value(),
        tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40),
        edits in prop::collection::vec(edit(), 0..3),
    ) {
        scan_both_ways(&apply(serde_json::to_vec(&v).unwrap(), &edits));
        scan_both_ways(tokens.concat().as_bytes());
    }

    #[test]
    fn inspect_fuzz_arbitrary_bytes(b in prop::collection::vec(any::<u8>(), 0..200)) {
        check_all(&b);
    }

    #[test]
    fn inspect_fuzz_token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..40)) {
        check_all(tokens.concat().as_bytes());
    }

    #[test]
    fn inspect_fuzz_valid_values(v in value()) {
        let b = serde_json::to_vec(&v).unwrap();
        prop_assert!(validate_json(&b).is_ok());
        check_all(&b);
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        prop_assert!(validate_json(&pretty).is_ok());
    }

    #[test]
    fn inspect_fuzz_valid_bodies_accepted(b in body()) {
        prop_assert!(logs3(&b).is_ok() || events(&b, &ObjectRef::new(ObjectType::Experiment, "e")).is_ok()
            || feedback(&b, &ObjectRef::new(ObjectType::Experiment, "e")).is_ok()
            || cross_object_insert(&b).is_ok() || overflow_request(&b).is_ok(),
            "no inspector accepted {}", String::from_utf8_lossy(&b));
        check_all(&b);
    }

    #[test]
    fn inspect_fuzz_mutated_bodies(b in body(), edits in prop::collection::vec(edit(), 1..4)) {
        check_all(&apply(b, &edits));
    }

    #[test]
    fn inspect_fuzz_gzip_never_panics(b in prop::collection::vec(any::<u8>(), 0..100), max in 0usize..64) {
        let _ = decode(&b, Some("gzip"), max);
        let mut z = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&b).unwrap();
            e.finish().unwrap()
        };
        match decode(&z, Some("gzip"), max) {
            Ok(out) => prop_assert_eq!(out.as_ref(), &b[..]),
            Err(e) => prop_assert_eq!(e, InspectError::TooLarge { limit: max }),
        }
        if !z.is_empty() {
            let i = b.len() % z.len();
            z[i] ^= 0x5a;
            let _ = decode(&z, Some("gzip"), max);
        }
    }
}
