//! The scanner against the contract and against serde_json's `Value`.

use super::string::find_special;
use super::*;
use crate::{InspectError, validate_json};

fn ok(s: &str) -> bool {
    validate_json(s.as_bytes()).is_ok()
}

fn serde_ok(s: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(s.as_bytes()).is_ok()
}

/// Same verdict as serde_json's `Value` parser.
fn agree(s: &str) {
    assert_eq!(ok(s), serde_ok(s), "disagreement on {s:?}: ours={:?}", validate_json(s.as_bytes()));
}

fn arrays(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

fn objects(depth: usize) -> String {
    "{\"a\":".repeat(depth - 1) + "{}" + &"}".repeat(depth - 1)
}

#[test]
fn depth_edges_arrays() {
    for d in [1, 2, 64, 127, 128] {
        assert!(ok(&arrays(d)), "depth {d}");
    }
    for d in [129, 130, 10_000] {
        let err = validate_json(arrays(d).as_bytes()).unwrap_err();
        assert!(format!("{err}").contains("nesting deeper than 128"), "{err}");
    }
}

#[test]
fn depth_edges_objects_and_mixed() {
    assert!(ok(&objects(64)));
    assert!(ok(&objects(128)));
    assert!(!ok(&objects(129)));
    let mixed = |d: usize| "[{\"k\":".repeat(d / 2) + "1" + &"}]".repeat(d / 2);
    assert!(ok(&mixed(128)));
    assert!(!ok(&mixed(130)));
    // The kind of the outermost of 128 open levels is still known when it
    // closes (it went through 127 shifts of the skipper's stack).
    let object_first = |d: usize| "{\"k\":[".repeat(d / 2) + "1" + &"]}".repeat(d / 2);
    assert!(ok(&object_first(128)));
    let wrong_last = object_first(128).trim_end_matches('}').to_owned() + "]";
    let err = validate_json(wrong_last.as_bytes()).unwrap_err();
    assert!(format!("{err}").contains("expected ',' or '}'"), "{err}");
    // Depth counts open containers, not scalars: a scalar at depth 128 is fine.
    assert!(ok(&("[".repeat(128) + "1" + &"]".repeat(128))));
    // Width does not count.
    let wide = format!("[{}]", vec![arrays(127); 1000].join(","));
    assert!(ok(&wide));
}

/// Why this is not serde_json's `IgnoredAny`: that path has no depth limit
/// and accepts lone surrogates; and `Value` refuses depth 128 already.
#[test]
fn serde_json_reference_behaviour() {
    use serde::de::IgnoredAny;
    assert!(serde_json::from_str::<IgnoredAny>(&arrays(10_000)).is_ok());
    assert!(serde_json::from_str::<IgnoredAny>(r#""\ud800""#).is_ok());
    assert!(serde_ok(&arrays(127)));
    assert!(!serde_ok(&arrays(128)));
    assert!(ok(&arrays(128)));
}

#[test]
fn literals_and_structure_agree_with_serde() {
    for s in [
        "",
        " ",
        "null",
        "true",
        "false",
        "nul",
        "tru",
        "falsy",
        "nulll",
        "[]",
        "{}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "[1]]",
        "[[1]",
        "{\"a\":[}]",
        "{\"a\":{]}",
        " [ 1 , 2 ] ",
        "\t\n\r[]",
        "[]x",
        "[] []",
        "{} ",
        "\u{c}[]",
        "[\"a\"\"b\"]",
        "{\"a\":1}}",
        "[true,false,null]",
        "[True]",
        "[NaN]",
        "[Infinity]",
        "[undefined]",
        "'a'",
        "[\"a\",]",
    ] {
        agree(s);
    }
}

#[test]
fn numbers_agree_with_serde() {
    for n in [
        "0",
        "-0",
        "1",
        "-1",
        "01",
        "-01",
        "00",
        "1.",
        ".1",
        "1.5",
        "-1.5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1e",
        "1e+",
        "1e-",
        "1.e5",
        "1.5e",
        "+1",
        "-",
        "--1",
        "0x10",
        "1.2.3",
        "1e5.5",
        "123456789012345678901234567890",
        "1e308",
        "1e309",
        "-1e309",
        "1e400",
        "1e-400",
        "0e999999999999",
        "1.7976931348623157e308",
        "4.9e-324",
        "18446744073709551616",
        "-9223372036854775809",
        "1_000",
        "0.0e0",
        "2e-9999999999999999999",
    ] {
        agree(n);
        agree(&format!("[{n}]"));
        agree(&format!("{{\"k\":{n}}}"));
    }
    let long = "9".repeat(400);
    agree(&long);
    agree(&format!("0.{long}"));
    agree(&format!("{long}e-300"));
}

#[test]
fn strings_agree_with_serde() {
    for s in [
        r#""""#,
        r#""abc""#,
        r#""a\"b""#,
        r#""\\""#,
        r#""\/""#,
        r#""\b\f\n\r\t""#,
        r#""\x""#,
        r#""\'""#,
        r#""\u0041""#,
        r#""\u00e9""#,
        r#""\uFFFF""#,
        r#""\u004""#,
        r#""\u00g1""#,
        r#""\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\ude00""#,
        r#""\ud83dx""#,
        r#""\ud83d\n""#,
        r#""\ud83d\u0041""#,
        r#""\ud83d\ud83d""#,
        r#""\ud83d\ude00\ude00""#,
        r#""\u0000""#,
        "\"\u{7f}\"",
        "\"a\u{0}b\"",
        "\"a\nb\"",
        "\"a\tb\"",
        "\"\u{1f}\"",
        "\"é€𝄞\"",
        "\"abc",
        "\"abc\\",
        "\"abc\\u12",
        "\"",
        "\"\\",
        r#"["a\"]"#,
    ] {
        agree(s);
        agree(&format!("{{{s}:1}}"));
    }
}

#[test]
fn bad_utf8_is_refused_anywhere() {
    let mut body = br#"{"a":"xx","b":[1]}"#.to_vec();
    body[6] = 0xff;
    let err = validate_json(&body).unwrap_err();
    assert!(matches!(err, InspectError::BadRequest { .. }));
    assert!(format!("{err}").contains("UTF-8"));
    assert!(validate_json(b"[\"\xed\xa0\x80\"]").is_err()); // encoded surrogate
    assert!(validate_json(b"[\"\xc3\"]").is_err()); // truncated sequence
}

#[test]
fn huge_strings() {
    let big = "x".repeat(8 << 20);
    assert!(ok(&format!("[\"{big}\"]")));
    assert!(!ok(&format!("[\"{big}]")));
    let escaped = "\\n".repeat(1 << 20);
    assert!(ok(&format!("{{\"{escaped}\":\"{escaped}\"}}")));
}

#[test]
fn find_special_matches_naive_scan() {
    let alphabet = [b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00, b'!', b'#', b'[', 0xdf];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let len = (seed % 40) as usize;
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        for start in 0..=len {
            let naive = (start..len).find(|&i| buf[i] == b'"' || buf[i] == b'\\' || buf[i] < 0x20).unwrap_or(len);
            assert_eq!(find_special(&buf, start), naive, "{buf:?} from {start}");
        }
    }
}

#[test]
fn string_decoding() {
    let mut sc = Scanner::new(r#" "plain" "a\u005fb\n\ud83d\ude00" "#);
    assert!(matches!(sc.string().unwrap(), Cow::Borrowed("plain")));
    let s = sc.string().unwrap();
    assert!(matches!(s, Cow::Owned(_)));
    assert_eq!(s, "a_b\n😀");
    sc.end().unwrap();
}

#[test]
fn error_positions() {
    let err = validate_json(b"[1,2,]").unwrap_err();
    assert_eq!(format!("{err}"), "invalid JSON at byte 5: expected a value");
    let err = validate_json(b"[1] x").unwrap_err();
    assert_eq!(format!("{err}"), "invalid JSON at byte 4: trailing characters after the JSON value");
}
