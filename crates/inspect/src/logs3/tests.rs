use super::*;
use crate::{MAX_DEPTH, Target};
use loggate_model::types::{ObjectRef, ObjectType, Permission};

fn rows(body: &str) -> Targets {
    match logs3(body.as_bytes()) {
        Ok(Logs3::Rows(t)) => t,
        other => panic!("{body}: {other:?}"),
    }
}

/// The refused field of a body (and that it is a 400).
fn refused(body: &str) -> Option<String> {
    match logs3(body.as_bytes()) {
        Err(InspectError::BadRequest { field, .. }) => field,
        other => panic!("{body}: expected a 400, got {other:?}"),
    }
}

fn t(object_type: ObjectType, id: &str, permission: Permission) -> Target {
    Target { object: ObjectRef::new(object_type, id), permission }
}

fn body(rows: &[&str]) -> String {
    format!(r#"{{"rows":[{}],"api_version":2}}"#, rows.join(","))
}

const PL: &str = r#"{"project_id":"p1","log_id":"g","input":"hi"}"#;

#[test]
fn targets_of_each_kind_in_first_seen_order() {
    let b = body(&[
        PL,
        r#"{"experiment_id":"e1","output":{"x":[1,2]}}"#,
        r#"{"dataset_id":"d1","_object_delete":true}"#,
        PL,
        r#"{"experiment_id":"e1","_object_delete":false}"#,
        r#"{"experiment_id":"e1","_object_delete":null,"project_id":"p1"}"#,
    ]);
    let got = rows(&b);
    assert_eq!(got.rows, 6);
    assert_eq!(
        got.targets,
        [
            t(ObjectType::ProjectLog, "p1", Permission::Update),
            t(ObjectType::Experiment, "e1", Permission::Update),
            t(ObjectType::Dataset, "d1", Permission::Delete),
        ]
    );
}

#[test]
fn escaped_keys_and_ids_are_decoded() {
    let b = body(&[r#"{"project\u005fid":"p\u0031","log_id":"\u0067"}"#]);
    assert_eq!(rows(&b).targets, [t(ObjectType::ProjectLog, "p1", Permission::Update)]);
    // An escaped duplicate is still a duplicate.
    let b = body(&[r#"{"experiment_id":"a","experiment\u005fid":"b"}"#]);
    assert_eq!(refused(&b).as_deref(), Some("rows[0].experiment_id"));
}

#[test]
fn empty_rows_and_key_order() {
    assert_eq!(rows(r#"{"rows":[]}"#), Targets::default());
    let got = rows(r#"{"api_version":2,"extra":{"a":[null]},"rows":[{"dataset_id":"d"}]}"#);
    assert_eq!(got.rows, 1);
}

#[test]
fn overflow_reference() {
    let r = logs3(br#"{"rows":{"type":"logs3_overflow","key":"k/1","size_bytes":10},"api_version":2}"#);
    assert_eq!(r, Ok(Logs3::OverflowRef { key: "k/1".into() }));
    let r = logs3(br#"{"rows":{"key":"k","type":"logs3_overflow"}}"#);
    assert_eq!(r, Ok(Logs3::OverflowRef { key: "k".into() }));
    assert_eq!(refused(r#"{"rows":{"type":"logs3_overflow","key":5}}"#).as_deref(), Some("rows.key"));
    assert_eq!(refused(r#"{"rows":{"type":"logs3_overflow"}}"#).as_deref(), Some("rows.key"));
    assert_eq!(refused(r#"{"rows":{"type":"other","key":"k"}}"#).as_deref(), Some("rows.type"));
    assert_eq!(refused(r#"{"rows":{"key":"k"}}"#).as_deref(), Some("rows.type"));
    let dup = r#"{"rows":{"type":"logs3_overflow","key":"a","key":"b"}}"#;
    assert_eq!(refused(dup).as_deref(), Some("rows.key"));
    // Ignored members of the reference are still checked.
    assert!(refused(r#"{"rows":{"type":"logs3_overflow","key":"k","size_bytes":01}}"#).is_some());
}

#[test]
fn rows_missing_wrong_type_or_repeated() {
    assert_eq!(refused(r#"{"api_version":2}"#).as_deref(), Some("rows"));
    assert_eq!(refused(r#"{"rows":null}"#).as_deref(), Some("rows"));
    assert_eq!(refused(r#"{"rows":"x"}"#).as_deref(), Some("rows"));
    assert_eq!(refused(r#"{"rows":[],"rows":[]}"#).as_deref(), Some("rows"));
    assert_eq!(refused(r#"[]"#), None);
    assert_eq!(refused(r#""rows""#), None);
    assert_eq!(refused(&body(&["5"])).as_deref(), Some("rows[0]"));
    assert_eq!(refused(&body(&[PL, "[]"])).as_deref(), Some("rows[1]"));
}

#[test]
fn duplicate_target_keys() {
    for key in ["project_id", "log_id", "experiment_id", "dataset_id", "_object_delete"] {
        let value = if key == "_object_delete" { "false" } else { r#""x""# };
        let row = format!(r#"{{"experiment_id":"e","{key}":{value},"{key}":{value}}}"#);
        let row = row.replacen(r#""experiment_id":"e","#, "", usize::from(key == "experiment_id"));
        let b = body(&[PL, PL, &row]);
        assert_eq!(refused(&b), Some(format!("rows[2].{key}")), "{b}");
    }
    // Other keys may repeat (as JSON allows).
    assert_eq!(rows(&body(&[r#"{"dataset_id":"d","input":1,"input":2}"#])).rows, 1);
}

#[test]
fn wrong_types_of_target_fields() {
    for (row, field) in [
        (r#"{"dataset_id":"d","_object_delete":"true"}"#, "rows[0]._object_delete"),
        (r#"{"dataset_id":"d","_object_delete":1}"#, "rows[0]._object_delete"),
        (r#"{"dataset_id":"d","_object_delete":[]}"#, "rows[0]._object_delete"),
        (r#"{"project_id":5,"log_id":"g"}"#, "rows[0].project_id"),
        (r#"{"project_id":"p","log_id":null}"#, "rows[0].log_id"),
        (r#"{"experiment_id":{"id":"e"}}"#, "rows[0].experiment_id"),
        (r#"{"dataset_id":["d"]}"#, "rows[0].dataset_id"),
        (r#"{"dataset_id":true}"#, "rows[0].dataset_id"),
    ] {
        assert_eq!(refused(&body(&[row])).as_deref(), Some(field), "{row}");
    }
}

#[test]
fn two_targets_or_none() {
    for (row, field) in [
        (r#"{"experiment_id":"e","dataset_id":"d"}"#, "rows[0]"),
        (r#"{"project_id":"p","log_id":"g","experiment_id":"e"}"#, "rows[0]"),
        (r#"{"project_id":"p","log_id":"g","dataset_id":"d"}"#, "rows[0]"),
        (r#"{"input":"no target"}"#, "rows[0]"),
        (r#"{}"#, "rows[0]"),
        (r#"{"project_id":"p"}"#, "rows[0]"),
        (r#"{"project_id":"p","log_id":"x"}"#, "rows[0].log_id"),
        (r#"{"log_id":"g"}"#, "rows[0].log_id"),
        (r#"{"experiment_id":"e","log_id":"g"}"#, "rows[0].log_id"),
        (r#"{"prompt_session_id":"s","log_id":"x"}"#, "rows[0].prompt_session_id"),
        (r#"{"prompt_session_id":"s","experiment_id":"e"}"#, "rows[0].prompt_session_id"),
    ] {
        assert_eq!(refused(&body(&[PL, row])).map(|f| f.replace("[1]", "[0]")).as_deref(), Some(field), "{row}");
    }
    // project_id without log_id is only the parent project.
    let got = rows(&body(&[r#"{"project_id":"p","experiment_id":"e"}"#]));
    assert_eq!(got.targets, [t(ObjectType::Experiment, "e", Permission::Update)]);
}

/// A row at structural depth 3 (`{` `[` `{`) with an ignored member nested
/// so the deepest container is at depth `total`.
fn nested_in_ignored(total: usize) -> String {
    let inner = total - 3;
    format!(r#"{{"rows":[{{"project_id":"p","log_id":"g","input":{}}}]}}"#, "[".repeat(inner) + &"]".repeat(inner))
}

#[test]
fn depth_inside_ignored_fields() {
    assert_eq!(rows(&nested_in_ignored(64)).rows, 1);
    assert_eq!(rows(&nested_in_ignored(MAX_DEPTH)).rows, 1);
    assert_eq!(refused(&nested_in_ignored(MAX_DEPTH + 1)).as_deref(), Some("rows[0].input"));
    // Also deep inside an ignored top-level member, and inside the
    // overflow reference.
    let deep = "[".repeat(128) + &"]".repeat(128);
    assert_eq!(refused(&format!(r#"{{"x":{deep},"rows":[]}}"#)).as_deref(), Some("x"));
    let ok = "[".repeat(127) + &"]".repeat(127);
    assert!(logs3(format!(r#"{{"x":{ok},"rows":[]}}"#).as_bytes()).is_ok());
    let r = format!(r#"{{"rows":{{"type":"logs3_overflow","key":"k","m":{deep}}}}}"#);
    assert_eq!(refused(&r).as_deref(), Some("rows.m"));
}

#[test]
fn invalid_json_inside_ignored_fields() {
    for bad in [
        "[1,]",
        "{\"a\" 1}",
        "tru",
        "01",
        "1.",
        "\"\\x\"",
        "\"\\ud800\"",
        "\"a\u{1}\"",
        "[}",
        "{\"a\":1,}",
        "nul",
        "-",
        "1e999",
        "'s'",
    ] {
        let row = format!(r#"{{"project_id":"p","log_id":"g","input":{{"deep":[{bad}]}}}}"#);
        assert_eq!(refused(&body(&[&row])).as_deref(), Some("rows[0].input"), "{row}");
    }
}

#[test]
fn bad_utf8_inside_ignored_string() {
    let mut b = body(&[r#"{"project_id":"p","log_id":"g","input":"abcdef"}"#]).into_bytes();
    let at = b.windows(6).position(|w| w == b"abcdef").unwrap();
    b[at + 2] = 0xc3;
    b[at + 3] = 0x28; // 0xc3 followed by a non-continuation byte
    assert!(matches!(logs3(&b), Err(InspectError::BadRequest { .. })));
}

#[test]
fn trailing_garbage_and_truncation() {
    let good = body(&[PL]);
    for tail in ["x", "{}", ",", "]", "\0", " 1"] {
        assert_eq!(refused(&format!("{good}{tail}")), None, "{tail:?}");
    }
    assert!(logs3(format!(" \n{good}\r\n\t ").as_bytes()).is_ok());
    for cut in 0..good.len() {
        assert!(logs3(&good.as_bytes()[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn huge_strings_in_rows() {
    let big = "y".repeat(4 << 20);
    let row = format!(r#"{{"project_id":"p","log_id":"g","input":"{big}","{big}":1}}"#);
    assert_eq!(rows(&body(&[&row])).rows, 1);
    let id = "i".repeat(1 << 20);
    let got = rows(&body(&[&format!(r#"{{"dataset_id":"{id}"}}"#)]));
    assert_eq!(got.targets[0].object.id.len(), 1 << 20);
}

#[test]
fn ten_thousand_rows() {
    let rows_json: Vec<String> = (0..10_000)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"id":"{i}","project_id":"p{}","log_id":"g","input":{{"a":[{i}]}}}}"#, i % 3),
            1 => format!(r#"{{"id":"{i}","experiment_id":"e","_object_delete":{}}}"#, i % 8 == 1),
            2 => format!(r#"{{"id":"{i}","dataset_id":"d{}"}}"#, i % 5),
            _ => r#"{"project_id":"p0","log_id":"g"}"#.to_string(),
        })
        .collect();
    let refs: Vec<&str> = rows_json.iter().map(String::as_str).collect();
    let got = rows(&body(&refs));
    assert_eq!(got.rows, 10_000);
    // p0..p2, e update+delete, d0..d4
    assert_eq!(got.targets.len(), 3 + 2 + 5);
    assert_eq!(got.targets[0], t(ObjectType::ProjectLog, "p0", Permission::Update));
}
