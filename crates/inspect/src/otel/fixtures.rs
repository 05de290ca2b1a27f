//! Building OTLP trace requests for tests: prost values, raw protobuf
//! fields, and the OTLP/JSON form of a request.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::{Value as Json, json};

/// SplitMix64: a small deterministic generator, seeded by proptest.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_key(out: &mut Vec<u8>, tag: u32, wt: u8) {
    put_varint(out, u64::from(tag) << 3 | u64::from(wt));
}

pub(super) fn put_len(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    put_key(out, tag, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The same request in OTLP/JSON, each field name in a random spelling.
/// With `None`, every name in lowerCamelCase.
pub(super) struct ToJson(pub Option<Rng>);

impl ToJson {
    fn name(&mut self, camel: &str, snake: &str) -> String {
        let snake_case = self.0.as_mut().is_some_and(|r| r.chance(50));
        if snake_case { snake } else { camel }.to_owned()
    }

    fn object(&mut self, fields: Vec<((&str, &str), Json)>) -> Json {
        let mut map = serde_json::Map::new();
        for ((camel, snake), v) in fields {
            let k = self.name(camel, snake);
            map.insert(k, v);
        }
        Json::Object(map)
    }

    pub fn request(&mut self, req: &ExportTraceServiceRequest) -> Json {
        let rs: Vec<Json> = req
            .resource_spans
            .iter()
            .map(|rs| {
                let resource = rs.resource.as_ref().map(|r| {
                    let attrs = self.attributes(&r.attributes);
                    self.object(vec![
                        (("attributes", "attributes"), attrs),
                        (("droppedAttributesCount", "dropped_attributes_count"), json!(r.dropped_attributes_count)),
                    ])
                });
                let ss: Vec<Json> = rs
                    .scope_spans
                    .iter()
                    .map(|ss| {
                        let scope = ss.scope.as_ref().map(|s| {
                            let attrs = self.attributes(&s.attributes);
                            self.object(vec![(("name", "name"), json!(s.name)), (("attributes", "attributes"), attrs)])
                        });
                        let spans: Vec<Json> = ss
                            .spans
                            .iter()
                            .map(|span| {
                                let attrs = self.attributes(&span.attributes);
                                let events: Vec<Json> = span
                                    .events
                                    .iter()
                                    .map(|e| {
                                        let attrs = self.attributes(&e.attributes);
                                        self.object(vec![
                                            (("timeUnixNano", "time_unix_nano"), json!(e.time_unix_nano.to_string())),
                                            (("name", "name"), json!(e.name)),
                                            (("attributes", "attributes"), attrs),
                                        ])
                                    })
                                    .collect();
                                let links: Vec<Json> = span
                                    .links
                                    .iter()
                                    .map(|l| {
                                        let attrs = self.attributes(&l.attributes);
                                        self.object(vec![
                                            (("traceId", "trace_id"), json!(hex(&l.trace_id))),
                                            (("attributes", "attributes"), attrs),
                                        ])
                                    })
                                    .collect();
                                self.object(vec![
                                    (("traceId", "trace_id"), json!(hex(&span.trace_id))),
                                    (("name", "name"), json!(span.name)),
                                    (("kind", "kind"), json!(span.kind)),
                                    (("attributes", "attributes"), attrs),
                                    (("events", "events"), Json::Array(events)),
                                    (("links", "links"), Json::Array(links)),
                                    (("status", "status"), json!({"code": 0})),
                                ])
                            })
                            .collect();
                        self.object(vec![
                            (("scope", "scope"), scope.unwrap_or(Json::Null)),
                            (("spans", "spans"), Json::Array(spans)),
                            (("schemaUrl", "schema_url"), json!(ss.schema_url)),
                        ])
                    })
                    .collect();
                self.object(vec![
                    (("resource", "resource"), resource.unwrap_or(Json::Null)),
                    (("scopeSpans", "scope_spans"), Json::Array(ss)),
                ])
            })
            .collect();
        self.object(vec![(("resourceSpans", "resource_spans"), Json::Array(rs))])
    }

    fn attributes(&mut self, kvs: &[KeyValue]) -> Json {
        Json::Array(kvs.iter().map(|kv| self.key_value(kv)).collect())
    }

    fn key_value(&mut self, kv: &KeyValue) -> Json {
        let value = kv.value.as_ref().map_or(Json::Null, |v| self.any_value(v));
        self.object(vec![(("key", "key"), json!(kv.key)), (("value", "value"), value)])
    }

    fn any_value(&mut self, v: &AnyValue) -> Json {
        use any_value::Value::*;
        let member = match &v.value {
            None => return json!({}),
            Some(StringValue(s)) => (("stringValue", "string_value"), json!(s)),
            Some(BoolValue(b)) => (("boolValue", "bool_value"), json!(b)),
            Some(IntValue(i)) => (("intValue", "int_value"), json!(i.to_string())),
            Some(DoubleValue(d)) => {
                (("doubleValue", "double_value"), if d.is_finite() { json!(d) } else { json!("NaN") })
            }
            Some(BytesValue(b)) => (("bytesValue", "bytes_value"), json!(hex(b))),
            Some(StringValueStrindex(i)) => (("stringValueStrindex", "string_value_strindex"), json!(i)),
            Some(ArrayValue(a)) => {
                let values: Vec<Json> = a.values.iter().map(|v| self.any_value(v)).collect();
                (("arrayValue", "array_value"), json!({ "values": values }))
            }
            Some(KvlistValue(l)) => {
                let values: Vec<Json> = l.values.iter().map(|kv| self.key_value(kv)).collect();
                (("kvlistValue", "kvlist_value"), json!({ "values": values }))
            }
        };
        self.object(vec![member])
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn string(s: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(s.into())) }
}

pub(super) fn int(i: i64) -> AnyValue {
    AnyValue { value: Some(any_value::Value::IntValue(i)) }
}

pub(super) fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue { key: key.into(), value: Some(value), ..Default::default() }
}

pub(super) fn parent(p: &str) -> KeyValue {
    kv(super::PARENT_KEY, string(p))
}

/// A value `levels` deep (kvlists or arrays), a string at the bottom.
pub(super) fn nested(levels: u32, kvlist: bool) -> AnyValue {
    if levels == 0 {
        return string("leaf");
    }
    let inner = nested(levels - 1, kvlist);
    let value = if kvlist {
        any_value::Value::KvlistValue(KeyValueList { values: vec![kv("k", inner)] })
    } else {
        any_value::Value::ArrayValue(ArrayValue { values: vec![inner] })
    };
    AnyValue { value: Some(value) }
}

pub(super) fn span(attributes: Vec<KeyValue>) -> Span {
    Span { name: "llm".into(), attributes, ..Default::default() }
}

pub(super) fn event(attributes: Vec<KeyValue>) -> Event {
    Event { name: "e".into(), attributes, ..Default::default() }
}

pub(super) fn link(attributes: Vec<KeyValue>) -> Link {
    Link { attributes, ..Default::default() }
}

/// One resource with one scope holding `spans`.
pub(super) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// The OTLP/JSON text of `req`, lowerCamelCase.
pub(super) fn json_of(req: &ExportTraceServiceRequest) -> Vec<u8> {
    serde_json::to_vec(&ToJson(None).request(req)).unwrap()
}

/// Where an attribute list may sit, with the path of its first attribute.
pub(super) fn placements(value: AnyValue) -> Vec<(ExportTraceServiceRequest, &'static str)> {
    let attrs = || vec![kv("deep", value.clone())];
    let mut out = Vec::new();
    let mut r = request(vec![span(vec![])]);
    r.resource_spans[0].resource = Some(Resource { attributes: attrs(), ..Default::default() });
    out.push((r, "resourceSpans[0].resource.attributes[0]"));
    let mut r = request(vec![span(vec![])]);
    r.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope { attributes: attrs(), ..Default::default() });
    out.push((r, "resourceSpans[0].scopeSpans[0].scope.attributes[0]"));
    out.push((request(vec![span(attrs())]), "resourceSpans[0].scopeSpans[0].spans[0].attributes[0]"));
    let mut s = span(vec![]);
    s.events.push(event(attrs()));
    out.push((request(vec![s]), "resourceSpans[0].scopeSpans[0].spans[0].events[0].attributes[0]"));
    let mut s = span(vec![]);
    s.links.push(link(attrs()));
    out.push((request(vec![s]), "resourceSpans[0].scopeSpans[0].spans[0].links[0].attributes[0]"));
    out
}
