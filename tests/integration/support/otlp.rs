//! OTLP/HTTP trace exports for `POST /otel/v1/traces`: bodies built with
//! opentelemetry-proto's messages, encoded as protobuf (prost) or as
//! OTLP/JSON (lowerCamelCase, ids in hex, 64-bit integers as strings),
//! compressed as the exporters do (gzip, deflate = zlib), and read back: the
//! spans of a body as the data plane would see them.

use flate2::Compression;
use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};
use std::io::{Read, Write};

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";
/// The attribute naming a span's own parent.
pub const PARENT_ATTRIBUTE: &str = "braintrust.parent";

/// How an export body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub const BOTH: [Encoding; 2] = [Encoding::Protobuf, Encoding::Json];

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }

    /// `req` in this encoding.
    pub fn encode(self, req: &ExportTraceServiceRequest) -> Vec<u8> {
        match self {
            Encoding::Protobuf => req.encode_to_vec(),
            Encoding::Json => to_json(req).to_string().into_bytes(),
        }
    }
}

pub fn string(v: &str) -> AnyValue {
    AnyValue { value: Some(V::StringValue(v.to_owned())) }
}

pub fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(value), ..Default::default() }
}

pub fn str_attr(key: &str, v: &str) -> KeyValue {
    kv(key, string(v))
}

/// `braintrust.parent = parent`.
pub fn parent_attr(parent: &str) -> KeyValue {
    str_attr(PARENT_ATTRIBUTE, parent)
}

/// An attribute value `levels` deep: `kvlistValue` and `arrayValue`
/// alternating around a string (`levels` containers, then the leaf).
pub fn nested(levels: usize) -> AnyValue {
    let mut v = string("leaf");
    for i in 0..levels {
        v = if i % 2 == 0 {
            AnyValue { value: Some(V::KvlistValue(KeyValueList { values: vec![kv("k", v)] })) }
        } else {
            AnyValue { value: Some(V::ArrayValue(ArrayValue { values: vec![v] })) }
        };
    }
    v
}

fn random_bytes<const N: usize>() -> Vec<u8> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("OS RNG");
    b.to_vec()
}

/// A span of a fresh trace with these attributes.
pub fn span(name: &str, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: random_bytes::<16>(),
        span_id: random_bytes::<8>(),
        name: name.to_owned(),
        kind: 1,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes,
        ..Default::default()
    }
}

/// A child of `parent` (same trace).
pub fn child(parent: &Span, name: &str, attributes: Vec<KeyValue>) -> Span {
    Span { trace_id: parent.trace_id.clone(), parent_span_id: parent.span_id.clone(), ..span(name, attributes) }
}

/// One export: a resource (`service.name`), one scope, these spans.
pub fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_attr("service.name", "loggate-test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "loggate.test".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A typical batch: a root span and a child with a few attributes; a
/// `braintrust.parent` on both when `parent` is given.
pub fn batch(parent: Option<&str>) -> ExportTraceServiceRequest {
    let stamp = |mut attrs: Vec<KeyValue>| {
        if let Some(p) = parent {
            attrs.push(parent_attr(p));
        }
        attrs
    };
    let root = span(
        "chat",
        stamp(vec![
            str_attr("gen_ai.prompt", "What is 2+2?"),
            str_attr("gen_ai.completion", "4"),
            kv("gen_ai.usage.input_tokens", AnyValue { value: Some(V::IntValue(7)) }),
        ]),
    );
    let tool = child(
        &root,
        "tool-call",
        stamp(vec![kv(
            "tool.args",
            AnyValue { value: Some(V::ArrayValue(ArrayValue { values: vec![string("a"), string("b")] })) },
        )]),
    );
    export(vec![root, tool])
}

// ---------------------------------------------------------------------------
// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding)

/// `req` as OTLP/JSON.
pub fn to_json(req: &ExportTraceServiceRequest) -> Value {
    json!({"resourceSpans": req.resource_spans.iter().map(|rs| json!({
        "resource": {"attributes": attrs_json(rs.resource.as_ref().map(|r| &r.attributes[..]).unwrap_or(&[]))},
        "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
            "scope": ss.scope.as_ref().map(|s| json!({"name": s.name, "version": s.version})),
            "spans": ss.spans.iter().map(span_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

fn span_json(s: &Span) -> Value {
    let mut v = json!({
        "traceId": hex::encode(&s.trace_id),
        "spanId": hex::encode(&s.span_id),
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
        "attributes": attrs_json(&s.attributes),
    });
    if !s.parent_span_id.is_empty() {
        v["parentSpanId"] = json!(hex::encode(&s.parent_span_id));
    }
    v
}

fn attrs_json(attrs: &[KeyValue]) -> Value {
    Value::Array(attrs.iter().map(|a| json!({"key": a.key, "value": any_json(a.value.as_ref())})).collect())
}

fn any_json(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => json!({}),
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        Some(V::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(V::DoubleValue(d)) => json!({"doubleValue": d}),
        Some(V::BytesValue(b)) => {
            use base64::Engine;
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
        Some(V::ArrayValue(a)) => {
            json!({"arrayValue": {"values": a.values.iter().map(|v| any_json(Some(v))).collect::<Vec<_>>()}})
        }
        Some(V::KvlistValue(l)) => json!({"kvlistValue": {"values": attrs_json(&l.values)}}),
        Some(other) => panic!("no OTLP/JSON form for {other:?} in these tests"),
    }
}

// ---------------------------------------------------------------------------
// Compression, as the exporters' `Content-Encoding`.

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// `Content-Encoding: deflate` as the exporters send it: zlib (RFC 1950).
pub fn deflate(b: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// The body with its `Content-Encoding` undone (`None`/`identity`: as is).
pub fn decompress(body: &[u8], content_encoding: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    match content_encoding {
        None | Some("identity") => return body.to_vec(),
        Some("gzip") => GzDecoder::new(body).read_to_end(&mut out),
        Some("deflate") => ZlibDecoder::new(body).read_to_end(&mut out),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    .expect("body decompresses as its Content-Encoding says");
    out
}

// ---------------------------------------------------------------------------
// Reading an export back.

/// A span as an export carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanSeen {
    pub name: String,
    /// Hex, as in OTLP/JSON.
    pub trace_id: String,
    pub span_id: String,
    /// Its `braintrust.parent` attribute, if any.
    pub parent: Option<String>,
}

/// The spans of an export body, given its `Content-Type` and `Content-Encoding`.
pub fn spans_of(body: &[u8], content_type: Option<&str>, content_encoding: Option<&str>) -> Vec<SpanSeen> {
    let raw = decompress(body, content_encoding);
    let ct = content_type.unwrap_or_default();
    if ct.starts_with(PROTOBUF) {
        let req = ExportTraceServiceRequest::decode(&raw[..]).expect("a protobuf ExportTraceServiceRequest");
        req.resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| SpanSeen {
                name: s.name.clone(),
                trace_id: hex::encode(&s.trace_id),
                span_id: hex::encode(&s.span_id),
                parent: s.attributes.iter().find(|a| a.key == PARENT_ATTRIBUTE).and_then(|a| {
                    match a.value.as_ref()?.value.as_ref()? {
                        V::StringValue(s) => Some(s.clone()),
                        _ => None,
                    }
                }),
            })
            .collect()
    } else if ct.starts_with(JSON) {
        let v: Value = serde_json::from_slice(&raw).expect("an OTLP/JSON export");
        let mut out = Vec::new();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let parent = s["attributes"].as_array().into_iter().flatten().find_map(|a| {
                        (a["key"] == PARENT_ATTRIBUTE).then(|| a["value"]["stringValue"].as_str().map(str::to_owned))?
                    });
                    out.push(SpanSeen {
                        name: s["name"].as_str().unwrap_or_default().to_owned(),
                        trace_id: s["traceId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        span_id: s["spanId"].as_str().unwrap_or_default().to_ascii_lowercase(),
                        parent,
                    });
                }
            }
        }
        out
    } else {
        panic!("not an OTLP Content-Type: {content_type:?}")
    }
}
