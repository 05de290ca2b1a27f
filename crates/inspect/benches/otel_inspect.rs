//! OTLP trace export inspection: the validating wire scan (`otel_traces`)
//! against prost decoding the whole `ExportTraceServiceRequest` and walking
//! the struct for parents and value levels, on batches of 100 and 1,000
//! LLM spans; the OTLP/JSON scan of the same batches; and, for scale,
//! inflating the gzip-compressed protobuf body (`decode_otlp`), which the
//! gateway does first for compressed exports.
//!
//! `cargo bench -p loggate-inspect --bench otel_inspect`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use loggate_inspect::{MAX_VALUE_LEVELS, OtlpEncoding, decode_otlp, otel_traces};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{Value as Json, json};

fn s(v: &str) -> AnyValue {
    AnyValue { value: Some(Value::StringValue(v.into())) }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.into(), value: Some(value), ..Default::default() }
}

fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(Value::IntValue(i)) }
}

fn kvlist(values: Vec<KeyValue>) -> AnyValue {
    AnyValue { value: Some(Value::KvlistValue(KeyValueList { values })) }
}

/// About `n` bytes of chat text: words of several languages picked by a
/// small generator (so the batch compresses like real text, not like one
/// repeated line), punctuation, newlines, ~15% non-ASCII.
fn text(seed: usize, n: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "user",
        "asked",
        "about",
        "login",
        "failures",
        "after",
        "SSO",
        "rotation",
        "ticket",
        "401",
        "token",
        "expired",
        "refresh",
        "customer",
        "Zürich",
        "Grüße",
        "réponse",
        "français",
        "s'il",
        "vous",
        "plaît",
        "東京",
        "時間",
        "données",
        "café",
        "naïve",
        "résumé",
        "assistant:",
        "user:",
        "{\"role\":",
        "\"content\":",
        "—",
        "please",
        "summarize",
        "the",
        "conversation",
        "and",
        "include",
        "steps",
        "to",
        "reproduce",
        "the",
        "issue",
        "with",
        "version",
        "2.14.3",
        "on",
        "eu-west-1",
        "Kubernetes",
        "pod",
        "restarted",
        "at",
        "14:05",
        "UTC",
    ];
    let mut state = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = String::with_capacity(n + 32);
    let mut words = 0;
    while out.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        words += 1;
        out.push(if words % 14 == 0 { '\n' } else { ' ' });
    }
    out
}

fn span(i: usize) -> Span {
    let parent = if i.is_multiple_of(10) {
        "experiment_id:7f3c9e2a-1b4d-4e5f-8a6b-0c1d2e3f4a5b"
    } else {
        "project_name:support-bot"
    };
    let metadata = kvlist(vec![
        kv("user", kvlist(vec![kv("id", s(&format!("u-{i}"))), kv("plan", s("enterprise"))])),
        kv("tags", AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: vec![s("prod"), s("eu-west-1")] })) }),
        kv("retry", int(0)),
    ]);
    Span {
        trace_id: (0..16).map(|b| (b * 7 + i) as u8).collect(),
        span_id: (0..8).map(|b| (b * 13 + i) as u8).collect(),
        parent_span_id: (0..8).map(|b| (b * 3 + i) as u8).collect(),
        name: "chat gpt-4o-mini".into(),
        kind: 3,
        start_time_unix_nano: 1_764_000_000_000_000_000 + i as u64,
        end_time_unix_nano: 1_764_000_000_900_000_000 + i as u64,
        attributes: vec![
            kv("gen_ai.system", s("openai")),
            kv("gen_ai.operation.name", s("chat")),
            kv("gen_ai.request.model", s("gpt-4o-mini")),
            kv("gen_ai.response.model", s("gpt-4o-mini-2024-07-18")),
            kv("gen_ai.request.temperature", AnyValue { value: Some(Value::DoubleValue(0.2)) }),
            kv("gen_ai.prompt", s(&text(i, 1024))),
            kv("gen_ai.completion", s(&text(i + 2, 1024))),
            kv("braintrust.input_json", s(&format!(r#"[{{"role":"user","content":{:?}}}]"#, text(i, 400)))),
            kv("braintrust.output_json", s(&format!(r#"{{"role":"assistant","content":{:?}}}"#, text(i + 1, 300)))),
            kv("gen_ai.usage.prompt_tokens", int(812 + i as i64)),
            kv("gen_ai.usage.completion_tokens", int(164)),
            kv("gen_ai.usage.total_tokens", int(976 + i as i64)),
            kv("braintrust.metadata", metadata),
            kv("braintrust.parent", s(parent)),
        ],
        events: vec![
            Event {
                time_unix_nano: 1_764_000_000_100_000_000,
                name: "gen_ai.content.prompt".into(),
                attributes: vec![kv("gen_ai.prompt", s(&text(i + 3, 200)))],
                ..Default::default()
            },
            Event {
                time_unix_nano: 1_764_000_000_800_000_000,
                name: "gen_ai.content.completion".into(),
                attributes: vec![kv("gen_ai.completion", s(&text(i + 1, 200)))],
                ..Default::default()
            },
        ],
        status: Some(Status { code: 1, ..Default::default() }),
        ..Default::default()
    }
}

fn batch(n: usize) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("support-bot")),
                    kv("telemetry.sdk.language", s("python")),
                    kv("telemetry.sdk.version", s("1.38.0")),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "braintrust".into(),
                    version: "0.48.1".into(),
                    ..Default::default()
                }),
                spans: (0..n).map(span).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn levels(v: &AnyValue) -> u32 {
    match &v.value {
        Some(Value::ArrayValue(a)) => 1 + a.values.iter().map(levels).max().unwrap_or(0),
        Some(Value::KvlistValue(l)) => {
            1 + l.values.iter().filter_map(|kv| kv.value.as_ref()).map(levels).max().unwrap_or(0)
        }
        _ => 0,
    }
}

/// What the scan answers, the prost way: decode everything, then walk.
fn prost_inspect(body: &[u8]) -> Option<(Vec<String>, usize)> {
    let req = ExportTraceServiceRequest::decode(body).ok()?;
    let too_deep =
        |kvs: &[KeyValue]| kvs.iter().filter_map(|kv| kv.value.as_ref()).any(|v| levels(v) > MAX_VALUE_LEVELS);
    let (mut parents, mut spans) = (Vec::<String>::new(), 0);
    for rs in &req.resource_spans {
        if rs.resource.as_ref().is_some_and(|r| too_deep(&r.attributes)) {
            return None;
        }
        for ss in &rs.scope_spans {
            if ss.scope.as_ref().is_some_and(|s| too_deep(&s.attributes)) {
                return None;
            }
            for span in &ss.spans {
                spans += 1;
                if too_deep(&span.attributes) || span.events.iter().any(|e| too_deep(&e.attributes)) {
                    return None;
                }
                for kv in span.attributes.iter().filter(|kv| kv.key == "braintrust.parent") {
                    let Some(Value::StringValue(p)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
                        return None;
                    };
                    if !parents.contains(p) {
                        parents.push(p.clone());
                    }
                }
            }
        }
    }
    Some((parents, spans))
}

/// The same batch in OTLP/JSON (lowerCamelCase, ids in hex).
fn json_of(req: &ExportTraceServiceRequest) -> Vec<u8> {
    fn any(v: &AnyValue) -> Json {
        match &v.value {
            Some(Value::StringValue(s)) => json!({ "stringValue": s }),
            Some(Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
            Some(Value::DoubleValue(d)) => json!({ "doubleValue": d }),
            Some(Value::ArrayValue(a)) => {
                json!({ "arrayValue": { "values": a.values.iter().map(any).collect::<Vec<_>>() } })
            }
            Some(Value::KvlistValue(l)) => json!({ "kvlistValue": { "values": attrs(&l.values) } }),
            _ => json!({}),
        }
    }
    fn attrs(kvs: &[KeyValue]) -> Json {
        kvs.iter().map(|kv| json!({ "key": kv.key, "value": kv.value.as_ref().map(any) })).collect()
    }
    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }
    let rs: Vec<Json> = req
        .resource_spans
        .iter()
        .map(|rs| {
            let ss: Vec<Json> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let spans: Vec<Json> = ss
                        .spans
                        .iter()
                        .map(|sp| {
                            json!({
                                "traceId": hex(&sp.trace_id), "spanId": hex(&sp.span_id),
                                "parentSpanId": hex(&sp.parent_span_id), "name": sp.name, "kind": sp.kind,
                                "startTimeUnixNano": sp.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": sp.end_time_unix_nano.to_string(),
                                "attributes": attrs(&sp.attributes),
                                "events": sp.events.iter().map(|e| json!({
                                    "timeUnixNano": e.time_unix_nano.to_string(), "name": e.name,
                                    "attributes": attrs(&e.attributes),
                                })).collect::<Vec<_>>(),
                                "status": { "code": 1 },
                            })
                        })
                        .collect();
                    let scope = ss.scope.as_ref().map(|s| json!({ "name": s.name, "version": s.version }));
                    json!({ "scope": scope, "spans": spans })
                })
                .collect();
            let resource = rs.resource.as_ref().map(|r| json!({ "attributes": attrs(&r.attributes) }));
            json!({ "resource": resource, "scopeSpans": ss })
        })
        .collect();
    serde_json::to_vec(&json!({ "resourceSpans": rs })).unwrap()
}

fn bench(c: &mut Criterion) {
    for n in [100, 1_000] {
        let req = batch(n);
        let body = req.encode_to_vec();
        let scanned = otel_traces(&body, OtlpEncoding::Protobuf).unwrap();
        assert_eq!(scanned.spans, n);
        assert_eq!(prost_inspect(&body), Some((scanned.parents.clone(), n)));
        let text = json_of(&req);
        assert_eq!(otel_traces(&text, OtlpEncoding::Json).unwrap(), scanned);

        let mut g = c.benchmark_group(format!("otel_{n}_spans"));
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("protobuf_wire_scan", |b| b.iter(|| otel_traces(black_box(&body), OtlpEncoding::Protobuf)));
        g.bench_function("protobuf_prost_decode_and_walk", |b| b.iter(|| prost_inspect(black_box(&body))));
        let mut z = GzEncoder::new(Vec::new(), Compression::default());
        z.write_all(&body).unwrap();
        let gz = z.finish().unwrap();
        g.bench_function("gzip_inflate_protobuf", |b| b.iter(|| decode_otlp(black_box(&gz), Some("gzip"), 64 << 20)));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("json_scan", |b| b.iter(|| otel_traces(black_box(&text), OtlpEncoding::Json)));
        g.finish();
        eprintln!("otel_{n}_spans: protobuf {} bytes ({} gzipped), JSON {} bytes", body.len(), gz.len(), text.len());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
