//! The OTLP/JSON walk: spellings, duplicates, nulls, types, levels, and
//! agreement with the protobuf walk on the same requests.

use prost::Message;

use super::scan;
use crate::InspectError;
use crate::otel::fixtures::{event, int, json_of, kv, link, nested, parent, placements, request, span};
use crate::otel::{MAX_VALUE_LEVELS, OtelSpans, proto};

fn ok(body: &str) -> OtelSpans {
    scan(body.as_bytes()).unwrap_or_else(|e| panic!("{e:?}: {body}"))
}

fn refused(body: &str) -> (Option<String>, String) {
    match scan(body.as_bytes()) {
        Err(InspectError::BadRequest { field, message }) => (field, message),
        other => panic!("expected a 400, got {other:?}: {body}"),
    }
}

fn field(body: &str) -> Option<String> {
    refused(body).0
}

fn spans(parents: &[&str], spans: usize, unparented: usize) -> OtelSpans {
    OtelSpans { parents: parents.iter().map(|p| p.to_string()).collect(), spans, unparented }
}

/// `{"resourceSpans":[{"scopeSpans":[{"spans":[SPANS]}]}]}`.
fn body(spans: &[&str]) -> String {
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#, spans.join(","))
}

const P1: &str = r#"{"key":"braintrust.parent","value":{"stringValue":"project_id:p1"}}"#;

#[test]
fn same_answer_as_the_protobuf_walk() {
    let mut s = span(vec![parent("project_id:p1"), kv("gen_ai.usage.input_tokens", int(12))]);
    s.events.push(event(vec![kv("m", nested(3, true))]));
    s.links.push(link(vec![kv("m", nested(2, false))]));
    let req = request(vec![s, span(vec![]), span(vec![parent("experiment_id:e"), parent("project_id:p1")])]);
    let from_json = scan(&json_of(&req)).unwrap();
    assert_eq!(from_json, proto::scan(&req.encode_to_vec()).unwrap());
    assert_eq!(from_json, spans(&["project_id:p1", "experiment_id:e"], 3, 1));
}

#[test]
fn both_spellings_of_every_field() {
    let snake = r#"{"resource_spans":[{"resource":{"attributes":[]},"scope_spans":[{"scope":{"name":"s"},"spans":[
        {"trace_id":"00","attributes":[{"key":"braintrust.parent","value":{"string_value":"project_name:x"}},
         {"key":"m","value":{"kvlist_value":{"values":[{"key":"a","value":{"array_value":{"values":[]}}}]}}}],
         "events":[{"time_unix_nano":"1","attributes":[]}],"links":[{"span_id":"00","attributes":[]}]}]}]}]}"#;
    assert_eq!(ok(snake), spans(&["project_name:x"], 1, 0));
    let mixed = r#"{"resourceSpans":[{"scope_spans":[{"spans":[{"attributes":[
        {"key":"braintrust.parent","value":{"stringValue":"project_id:a"}}]}]}]}]}"#;
    assert_eq!(ok(mixed), spans(&["project_id:a"], 1, 0));
    // Escapes in keys are decoded before matching.
    let escaped =
        body(&[r#"{"attributes":[{"key":"braintrust\u002eparent","value":{"string\u005fvalue":"p\u003a"}}]}"#]);
    assert_eq!(ok(&escaped), spans(&["p:"], 1, 0));
}

#[test]
fn a_field_given_twice_in_any_spelling_is_refused() {
    let cases = [
        (r#"{"resourceSpans":[],"resource_spans":[]}"#, "resource_spans"),
        (r#"{"resourceSpans":[],"resourceSpans":[]}"#, "resourceSpans"),
        (r#"{"x":1,"x":2}"#, "x"),
        (&body(&[r#"{"attributes":[],"attributes":[]}"#]), "resourceSpans[0].scopeSpans[0].spans[0].attributes"),
        (
            &body(&[r#"{"attributes":[{"key":"braintrust.parent","key":"x","value":{"stringValue":"p"}}]}"#]),
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].key",
        ),
        (
            &body(&[r#"{"attributes":[{"key":"k","value":{"stringValue":"a","string_value":"b"}}]}"#]),
            "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.string_value",
        ),
        (&body(&[r#"{"traceId":"00","trace_id":"01"}"#]), "resourceSpans[0].scopeSpans[0].spans[0].trace_id"),
        (
            r#"{"resourceSpans":[{"resource":{"entityRefs":[],"entity_refs":[]}}]}"#,
            "resourceSpans[0].resource.entity_refs",
        ),
    ];
    for (b, want) in cases {
        let (f, message) = refused(b);
        assert_eq!(f.as_deref(), Some(want), "{b}");
        assert!(message.contains("given twice"), "{message}");
    }
}

#[test]
fn a_value_sets_one_member() {
    let b = body(&[r#"{"attributes":[{"key":"k","value":{"stringValue":"a","intValue":"1"}}]}"#]);
    assert_eq!(field(&b).as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.intValue"));
    // A null member is no member.
    let b = body(&[r#"{"attributes":[{"key":"braintrust.parent","value":{"intValue":null,"stringValue":"p"}}]}"#]);
    assert_eq!(ok(&b), spans(&["p"], 1, 0));
}

#[test]
fn null_is_absent() {
    assert_eq!(ok(r#"{"resourceSpans":null}"#), OtelSpans::default());
    assert_eq!(ok(r#"{}"#), OtelSpans::default());
    assert_eq!(ok(r#"{"resourceSpans":[{"resource":null,"scopeSpans":null}]}"#), OtelSpans::default());
    let b = r#"{"resourceSpans":[{"scopeSpans":[{"scope":null,"spans":null}]}]}"#;
    assert_eq!(ok(b), OtelSpans::default());
    let b = body(&[r#"{"attributes":null,"events":null,"links":null,"status":null}"#]);
    assert_eq!(ok(&b), spans(&[], 1, 1));
    let b = body(&[r#"{"attributes":[{"key":null,"value":null},{"key":"k","value":{"kvlistValue":null}},
        {"key":"k","value":{"arrayValue":{"values":null}}},{"key":"k","value":{"stringValue":null}}]}"#]);
    assert_eq!(ok(&b), spans(&[], 1, 1));
    // A parent whose value is null, empty or unset is not a string.
    for v in ["null", "{}", r#"{"stringValue":null}"#, r#"{"intValue":"3"}"#, r#"{"kvlistValue":{}}"#] {
        let b = body(&[&format!(r#"{{"attributes":[{{"key":"braintrust.parent","value":{v}}}]}}"#)]);
        let (f, message) = refused(&b);
        assert_eq!(f.as_deref(), Some("braintrust.parent"), "{v}");
        assert!(message.contains("resourceSpans[0].scopeSpans[0].spans[0].attributes[0]"), "{message}");
    }
    // Elements of lists may not be null.
    assert_eq!(field(&body(&["null"])).as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0]"));
}

#[test]
fn wrong_types_where_the_walk_reads() {
    let cases = [
        (r#"[]"#, None),
        (r#"{"resourceSpans":{}}"#, Some("resourceSpans")),
        (r#"{"resourceSpans":[{"scopeSpans":[{"spans":{}}]}]}"#, Some("resourceSpans[0].scopeSpans[0].spans")),
        (r#"{"resourceSpans":[{"scopeSpans":[{"spans":[[]]}]}]}"#, Some("resourceSpans[0].scopeSpans[0].spans[0]")),
        (r#"{"resourceSpans":[{"resource":[]}]}"#, Some("resourceSpans[0].resource")),
        (r#"{"resourceSpans":[{"resource":{"attributes":"x"}}]}"#, Some("resourceSpans[0].resource.attributes")),
        (&body(&[r#"{"attributes":[{"key":5}]}"#]), Some("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].key")),
        (
            &body(&[r#"{"attributes":[{"key":"k","value":{"stringValue":5}}]}"#]),
            Some("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.stringValue"),
        ),
        (
            &body(&[r#"{"attributes":[{"key":"k","value":{"kvlistValue":{"values":[1]}}}]}"#]),
            Some("resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.kvlistValue.values[0]"),
        ),
        (
            &body(&[r#"{"events":[{"attributes":{}}]}"#]),
            Some("resourceSpans[0].scopeSpans[0].spans[0].events[0].attributes"),
        ),
    ];
    for (b, want) in cases {
        assert_eq!(field(b).as_deref(), want, "{b}");
    }
    // Fields the walk does not read keep any (valid) JSON value.
    let b = body(&[r#"{"traceId":5,"name":{"a":[1]},"status":"x","kind":"SPAN_KIND_CLIENT"}"#]);
    assert_eq!(ok(&b), spans(&[], 1, 1));
}

#[test]
fn value_levels_16_and_24_pass_25_is_refused_everywhere() {
    for kvlist in [true, false] {
        for levels in [0, 1, 16, MAX_VALUE_LEVELS] {
            for (req, _) in placements(nested(levels, kvlist)) {
                assert_eq!(scan(&json_of(&req)).unwrap().spans, 1, "{levels} {kvlist}");
            }
        }
        for (req, path) in placements(nested(MAX_VALUE_LEVELS + 1, kvlist)) {
            match scan(&json_of(&req)) {
                Err(InspectError::BadRequest { field, message }) => {
                    assert_eq!(field.as_deref(), Some(path));
                    assert!(message.contains("deeper than 24 levels"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn the_whole_body_is_checked() {
    let deep = "[".repeat(129) + &"]".repeat(129);
    for b in [
        String::new(),
        body(&[r#"{"status":{"message":"a",}}"#]),
        body(&[r#"{"name":"\ud800"}"#]),
        format!(r#"{{"resourceSpans":[],"ignored":{deep}}}"#),
        body(&[P1]) + " x",
        body(&[&format!(r#"{{"attributes":[{P1}],}}"#)]),
    ] {
        let (_, message) = refused(&b);
        assert!(message.starts_with("invalid JSON"), "{message}: {b}");
    }
    let (f, message) = match scan(b"{\"resourceSpans\":[\xff]}") {
        Err(InspectError::BadRequest { field, message }) => (field, message),
        other => panic!("{other:?}"),
    };
    assert_eq!(f, None);
    assert!(message.contains("UTF-8"), "{message}");
    // 128 levels of JSON nesting in an ignored field still pass.
    let deep = "[".repeat(126) + &"]".repeat(126);
    assert_eq!(ok(&format!(r#"{{"x":{deep},"resourceSpans":[]}}"#)), OtelSpans::default());
    let s = format!(r#"{{"attributes":[{P1}]}}"#);
    assert_eq!(ok(&body(&[&s, &s])), spans(&["project_id:p1"], 2, 0));
}
