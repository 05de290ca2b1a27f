//! The protobuf walk on hand-made bodies, each also decoded by prost to
//! show the two agree on what the body is.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

use super::super::fixtures::{
    event, int, kv, link, nested, parent, placements, put_key, put_len, put_varint, request, span, string,
};
use super::scan;
use crate::InspectError;
use crate::otel::{MAX_VALUE_LEVELS, OtelSpans};

fn ok(body: &[u8]) -> OtelSpans {
    assert!(ExportTraceServiceRequest::decode(body).is_ok(), "prost refuses {body:?}");
    scan(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

/// The refusal's field and message.
fn refused(body: &[u8]) -> (Option<String>, String) {
    match scan(body) {
        Err(InspectError::BadRequest { field, message }) => (field, message),
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn spans(parents: &[&str], spans: usize, unparented: usize) -> OtelSpans {
    OtelSpans { parents: parents.iter().map(|p| p.to_string()).collect(), spans, unparented }
}

#[test]
fn parents_spans_and_unparented() {
    assert_eq!(ok(b""), OtelSpans::default());
    let mut req = request(vec![
        span(vec![kv("gen_ai.system", string("openai")), parent("project_id:p1")]),
        span(vec![]),
        span(vec![parent("experiment_id:e1"), kv("n", int(3))]),
    ]);
    req.resource_spans.push(ResourceSpans {
        scope_spans: vec![
            ScopeSpans { spans: vec![span(vec![parent("project_id:p1")])], ..Default::default() },
            ScopeSpans::default(),
            ScopeSpans { spans: vec![span(vec![kv("x", string("project_id:p9"))])], ..Default::default() },
        ],
        ..Default::default()
    });
    assert_eq!(ok(&req.encode_to_vec()), spans(&["project_id:p1", "experiment_id:e1"], 5, 2));
}

#[test]
fn every_parent_attribute_of_a_span_counts() {
    let req = request(vec![span(vec![parent("project_id:a"), parent("project_id:b"), parent("project_id:a")])]);
    assert_eq!(ok(&req.encode_to_vec()), spans(&["project_id:a", "project_id:b"], 1, 0));
}

#[test]
fn only_span_attributes_name_parents() {
    let mut req = request(vec![{
        let mut s = span(vec![]);
        s.events.push(event(vec![parent("project_id:ev"), kv("braintrust.parent", int(1))]));
        s.links.push(link(vec![parent("project_id:ln")]));
        s
    }]);
    let rs = &mut req.resource_spans[0];
    rs.resource = Some(Resource {
        attributes: vec![parent("project_id:res"), kv("braintrust.parent", int(2))],
        ..Default::default()
    });
    rs.scope_spans[0].scope =
        Some(InstrumentationScope { attributes: vec![parent("project_id:sc")], ..Default::default() });
    assert_eq!(ok(&req.encode_to_vec()), spans(&[], 1, 1));
}

#[test]
fn a_parent_must_be_a_string() {
    for value in [Some(int(7)), Some(nested(1, true)), Some(Default::default()), None] {
        let mut attr = kv("braintrust.parent", string(""));
        attr.value = value.clone();
        let req = request(vec![span(vec![]), span(vec![kv("a", int(1)), attr])]);
        let (field, message) = refused(&req.encode_to_vec());
        assert_eq!(field.as_deref(), Some("braintrust.parent"), "{value:?}");
        assert!(message.contains("resourceSpans[0].scopeSpans[0].spans[1].attributes[1]"), "{message}");
    }
    // An empty string is a string: parse_parent refuses it later.
    let req = request(vec![span(vec![parent("")])]);
    assert_eq!(ok(&req.encode_to_vec()), spans(&[""], 1, 0));
}

#[test]
fn value_levels_16_and_24_pass_25_is_refused_everywhere() {
    for kvlist in [true, false] {
        for levels in [0, 1, 16, MAX_VALUE_LEVELS] {
            for (req, _) in placements(nested(levels, kvlist)) {
                assert_eq!(ok(&req.encode_to_vec()).spans, 1, "{levels} {kvlist}");
            }
        }
        for levels in [MAX_VALUE_LEVELS + 1, 30] {
            for (req, path) in placements(nested(levels, kvlist)) {
                let (field, message) = refused(&req.encode_to_vec());
                assert_eq!(field.as_deref(), Some(path));
                assert!(message.contains("deeper than 24 levels"), "{message}");
            }
        }
    }
}

// Hand-written fields, for what prost's encoder never writes.

fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, tag, bytes);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A request with one span whose fields are `span_fields`.
fn one_span(span_fields: &[u8]) -> Vec<u8> {
    field(1, &field(2, &field(2, span_fields)))
}

/// A span attribute from raw KeyValue fields.
fn attr(kv_fields: &[u8]) -> Vec<u8> {
    field(9, kv_fields)
}

fn key(k: &str) -> Vec<u8> {
    field(1, k.as_bytes())
}

/// `value` (KeyValue field 2) from raw AnyValue fields.
fn value(any_fields: &[u8]) -> Vec<u8> {
    field(2, any_fields)
}

fn string_member(s: &str) -> Vec<u8> {
    field(1, s.as_bytes())
}

fn int_member(i: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, 3, 0);
    put_varint(&mut out, i);
    out
}

/// A kvlist_value member `levels` deep.
fn kvlist_member(levels: u32) -> Vec<u8> {
    let inner = if levels <= 1 { Vec::new() } else { field(1, &cat(&[&key("k"), &value(&kvlist_member(levels - 1))])) };
    field(6, &inner)
}

#[test]
fn the_last_key_of_a_key_value_wins() {
    let body = one_span(&attr(&cat(&[&key("x"), &key("braintrust.parent"), &value(&string_member("project_id:p"))])));
    assert_eq!(ok(&body), spans(&["project_id:p"], 1, 0));
    let body = one_span(&attr(&cat(&[&key("braintrust.parent"), &value(&string_member("project_id:p")), &key("x")])));
    assert_eq!(ok(&body), spans(&[], 1, 1));
}

#[test]
fn values_given_twice_merge_and_the_last_oneof_member_wins() {
    // Two `value` fields: one AnyValue, whose last member counts.
    let p = string_member("project_id:p");
    let body = one_span(&attr(&cat(&[&key("braintrust.parent"), &value(&p), &value(&int_member(1))])));
    assert_eq!(refused(&body).0.as_deref(), Some("braintrust.parent"));
    let body = one_span(&attr(&cat(&[&key("braintrust.parent"), &value(&int_member(1)), &value(&p)])));
    assert_eq!(ok(&body), spans(&["project_id:p"], 1, 0));
    // An empty second AnyValue changes nothing.
    let body = one_span(&attr(&cat(&[&key("braintrust.parent"), &value(&p), &value(&[])])));
    assert_eq!(ok(&body), spans(&["project_id:p"], 1, 0));
    // Two string members in one AnyValue: the last.
    let body = one_span(&attr(&cat(&[
        &key("braintrust.parent"),
        &value(&cat(&[&string_member("project_id:first"), &string_member("project_id:last")])),
    ])));
    assert_eq!(ok(&body), spans(&["project_id:last"], 1, 0));
}

#[test]
fn levels_are_those_of_the_decoded_value() {
    let over = MAX_VALUE_LEVELS + 1;
    // A container replaced by a later member does not count...
    let body = one_span(&attr(&cat(&[&key("k"), &value(&cat(&[&kvlist_member(over + 5), &string_member("s")]))])));
    assert_eq!(ok(&body).spans, 1);
    let body = one_span(&attr(&cat(&[&key("k"), &value(&kvlist_member(30)), &value(&int_member(3))])));
    assert_eq!(ok(&body).spans, 1);
    // ...unless it is deep enough for prost's recursion limit (3 messages
    // per kvlist level).
    let body = one_span(&attr(&cat(&[&key("k"), &value(&cat(&[&kvlist_member(40), &string_member("s")]))])));
    assert!(ExportTraceServiceRequest::decode(&body[..]).is_err());
    assert!(refused(&body).1.contains("recursion limit"));
    // Two kvlists in a row merge: the deeper one stays.
    let body = one_span(&attr(&cat(&[&key("k"), &value(&kvlist_member(over)), &value(&kvlist_member(1))])));
    assert_eq!(refused(&body).0.as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0].attributes[0]"));
    let body = one_span(&attr(&cat(&[&key("k"), &value(&cat(&[&kvlist_member(2), &kvlist_member(over)]))])));
    assert!(refused(&body).1.contains("deeper than 24"));
    let body = one_span(&attr(&cat(&[&key("k"), &value(&kvlist_member(MAX_VALUE_LEVELS)), &value(&kvlist_member(3))])));
    assert_eq!(ok(&body).spans, 1);
    // A kvlist, an array, a kvlist again: only the last kvlist remains.
    let array = field(5, &[]);
    let body = one_span(&attr(&cat(&[&key("k"), &value(&cat(&[&kvlist_member(over), &array, &kvlist_member(2)]))])));
    assert_eq!(ok(&body).spans, 1);
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    let mut unknown = Vec::new();
    put_key(&mut unknown, 99, 0);
    put_varint(&mut unknown, 5);
    put_len(&mut unknown, 100, b"\xff\xfe not UTF-8: unknown bytes are not checked");
    put_key(&mut unknown, 101, 3);
    put_key(&mut unknown, 1, 5);
    unknown.extend_from_slice(&[1, 2, 3, 4]);
    put_key(&mut unknown, 101, 4);
    put_key(&mut unknown, 102, 1);
    unknown.extend_from_slice(&[0; 8]);
    let p = attr(&cat(&[
        &unknown,
        &key("braintrust.parent"),
        &unknown,
        &value(&cat(&[&unknown, &string_member("project_id:p")])),
    ]));
    let body = cat(&[&unknown, &one_span(&cat(&[&unknown, &p, &unknown])), &unknown]);
    assert_eq!(ok(&body), spans(&["project_id:p"], 1, 0));
}

#[test]
fn malformed_bodies_are_refused_like_prost() {
    let good = request(vec![span(vec![parent("project_id:p")])]).encode_to_vec();
    let mut bad_name = one_span(&field(5, b"\xc3\x28"));
    let stray_end_group = [0x7c];
    let mut wrong_wire_type = one_span(&[]);
    wrong_wire_type.extend_from_slice(&[0x08, 0x01]); // resource_spans as a varint
    let mut truncated = good.clone();
    truncated.pop();
    bad_name.extend_from_slice(&good);
    for (body, what) in [
        (&bad_name[..], "UTF-8"),
        (&stray_end_group, "end-group"),
        (&wrong_wire_type, "wrong wire type"),
        (&truncated, "past the end"),
        (&[0x0a, 0x80][..], "truncated varint"),
        (&[0x00][..], "field number 0"),
    ] {
        assert!(ExportTraceServiceRequest::decode(body).is_err(), "{what}");
        let (_, message) = refused(body);
        assert!(message.starts_with("malformed protobuf at byte") && message.contains(what), "{what}: {message}");
    }
    // The place is named.
    let (field, _) = refused(&one_span(&field(5, b"\xc3\x28")));
    assert_eq!(field.as_deref(), Some("resourceSpans[0].scopeSpans[0].spans[0]"));
}
