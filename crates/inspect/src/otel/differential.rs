//! The protobuf scan against prost decoding `ExportTraceServiceRequest`
//! (the generated types of the `opentelemetry-proto` crate), on random
//! bodies and on mutations of them:
//!
//! `scan accepts` ⇔ `prost accepts, no attribute value is nested deeper
//! than MAX_VALUE_LEVELS in the decoded struct, and every span attribute
//! braintrust.parent holds a string`; on acceptance the parents, spans and
//! unparented counts are those of the decoded struct. Accepted bodies are
//! also converted to OTLP/JSON (random spelling of each field) and must
//! give the same answer there.
//!
//! Bodies are written field by field from the schema (not by prost's
//! encoder), so they hold what prost's encoder never writes: fields in any
//! order, scalars, strings and messages given several times (last wins or
//! merge), oneof members set several times, unknown fields of every wire
//! type including groups, known fields with a wrong wire type, invalid
//! UTF-8, and attribute values nested around the level limit, as well as
//! discarded deep values that hit prost's recursion limit.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use proptest::prelude::*;
use prost::Message;

use super::fixtures::{Rng, ToJson, put_key, put_len, put_varint};

use super::{MAX_VALUE_LEVELS, OtelSpans, OtlpEncoding, PARENT_KEY, otel_traces};
use crate::InspectError;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Varint,
    Fixed32,
    Fixed64,
    Bytes,
    Str,
    M(Msg),
}

/// The schema, as in `proto.rs` and `proto/value.rs`.
fn schema(m: Msg) -> &'static [(u32, Ty)] {
    use Ty::*;
    match m {
        Msg::Request => &[(1, M(Msg::ResourceSpans))],
        Msg::ResourceSpans => &[(1, M(Msg::Resource)), (2, M(Msg::ScopeSpans)), (3, Str)],
        Msg::Resource => &[(1, M(Msg::KeyValue)), (2, Varint), (3, M(Msg::EntityRef))],
        Msg::EntityRef => &[(1, Str), (2, Str), (3, Str), (4, Str)],
        Msg::ScopeSpans => &[(1, M(Msg::Scope)), (2, M(Msg::Span)), (3, Str)],
        Msg::Scope => &[(1, Str), (2, Str), (3, M(Msg::KeyValue)), (4, Varint)],
        Msg::Span => &[
            (1, Bytes),
            (2, Bytes),
            (3, Str),
            (4, Bytes),
            (16, Fixed32),
            (5, Str),
            (6, Varint),
            (7, Fixed64),
            (8, Fixed64),
            (9, M(Msg::KeyValue)),
            (10, Varint),
            (11, M(Msg::Event)),
            (12, Varint),
            (13, M(Msg::Link)),
            (14, Varint),
            (15, M(Msg::Status)),
        ],
        Msg::Event => &[(1, Fixed64), (2, Str), (3, M(Msg::KeyValue)), (4, Varint)],
        Msg::Link => &[(1, Bytes), (2, Bytes), (3, Str), (4, M(Msg::KeyValue)), (5, Varint), (6, Fixed32)],
        Msg::Status => &[(2, Str), (3, Varint)],
        Msg::KeyValue => &[(1, Str), (2, M(Msg::AnyValue)), (3, Varint)],
        Msg::AnyValue => &[
            (1, Str),
            (2, Varint),
            (3, Varint),
            (4, Fixed64),
            (5, M(Msg::ArrayValue)),
            (6, M(Msg::KvList)),
            (7, Bytes),
            (8, Varint),
        ],
        Msg::ArrayValue => &[(1, M(Msg::AnyValue))],
        Msg::KvList => &[(1, M(Msg::KeyValue))],
    }
}

/// Writes random messages; `nodes` bounds the size of one body.
struct Gen {
    rng: Rng,
    nodes: u32,
}

const PARENTS: &[&str] =
    &["project_id:p1", "project_name:default-otel-project", "experiment_id:e1", "", "project_id:p1"];

impl Gen {
    fn string(&mut self, m: Msg, tag: u32) -> Vec<u8> {
        if self.rng.chance(1) {
            return vec![b'a', 0xc3, 0x28];
        }
        if m == Msg::KeyValue && tag == 1 {
            return self.rng.pick(&[PARENT_KEY, PARENT_KEY, "gen_ai.prompt", "k", ""]).as_bytes().to_vec();
        }
        if m == Msg::AnyValue {
            return self.rng.pick(PARENTS).as_bytes().to_vec();
        }
        self.rng.pick(&["", "x", "naïve — ünïcode", "line\nbreak", "\u{1F600}"]).as_bytes().to_vec()
    }

    /// One message's fields. `chain > 0` makes an AnyValue/KeyValue lead a
    /// chain of containers that deep (to reach the level limit and, with
    /// some more, prost's recursion limit).
    fn message(&mut self, m: Msg, depth: u32, chain: u32) -> Vec<u8> {
        let mut out = Vec::new();
        if m == Msg::KeyValue && chain == 0 && self.rng.chance(40) {
            // The usual shape: a key and a string value.
            let key = self.rng.pick(&[PARENT_KEY, PARENT_KEY, "gen_ai.prompt"]);
            put_len(&mut out, 1, key.as_bytes());
            let mut value = Vec::new();
            put_len(&mut value, 1, self.rng.pick(PARENTS).as_bytes());
            put_len(&mut out, 2, &value);
            return out;
        }
        let fields = schema(m);
        let max = match m {
            Msg::Request | Msg::ResourceSpans | Msg::ScopeSpans => 4,
            Msg::Span => 8,
            Msg::KeyValue => 3,
            Msg::AnyValue => 2,
            _ => 3,
        };
        let mut n = if depth > 40 || self.nodes > 400 { 0 } else { self.rng.below(max + 1) };
        if chain > 0 {
            // Mostly the link alone, sometimes a field beside it (which may
            // replace the container, cutting the chain).
            n = 1 + u64::from(self.rng.chance(15));
        }
        let chain_at = if chain > 0 { self.rng.below(n) } else { u64::MAX };
        for i in 0..n {
            self.nodes += 1;
            if i == chain_at {
                self.chain_link(m, &mut out, depth, chain);
                continue;
            }
            if self.rng.chance(6) {
                self.unknown(&mut out, fields, depth);
                continue;
            }
            let (tag, ty) = match m {
                // Favour what the scan reads.
                Msg::Request => (1, Ty::M(Msg::ResourceSpans)),
                Msg::ResourceSpans | Msg::ScopeSpans if self.rng.chance(50) => (2, fields[1].1),
                Msg::Span if self.rng.chance(40) => (9, Ty::M(Msg::KeyValue)),
                Msg::KeyValue if self.rng.chance(50) => (2, Ty::M(Msg::AnyValue)),
                Msg::AnyValue if self.rng.chance(40) => (1, Ty::Str),
                _ => self.rng.pick(fields),
            };
            self.field(m, &mut out, tag, ty, depth);
        }
        out
    }

    fn chain_link(&mut self, m: Msg, out: &mut Vec<u8>, depth: u32, chain: u32) {
        match m {
            Msg::KeyValue => {
                let inner = self.message(Msg::AnyValue, depth + 1, chain);
                put_len(out, 2, &inner);
            }
            Msg::AnyValue => {
                let (tag, list, elem) = if self.rng.chance(50) { (5, 1, Msg::AnyValue) } else { (6, 1, Msg::KeyValue) };
                let child = if chain > 1 { self.message(elem, depth + 2, chain - 1) } else { Vec::new() };
                let mut container = Vec::new();
                if chain > 1 || self.rng.chance(50) {
                    put_len(&mut container, list, &child);
                }
                put_len(out, tag, &container);
            }
            _ => unreachable!(),
        }
    }

    fn field(&mut self, m: Msg, out: &mut Vec<u8>, tag: u32, ty: Ty, depth: u32) {
        if self.rng.chance(1) {
            // A known field with another wire type.
            let wt = self.rng.pick(&[0u8, 1, 2, 5]);
            put_key(out, tag, wt);
            self.payload(out, wt);
            return;
        }
        match ty {
            Ty::Varint => {
                put_key(out, tag, 0);
                let v = self.rng.next() >> self.rng.below(64);
                put_varint(out, v);
            }
            Ty::Fixed32 => {
                put_key(out, tag, 5);
                out.extend_from_slice(&(self.rng.next() as u32).to_le_bytes());
            }
            Ty::Fixed64 => {
                put_key(out, tag, 1);
                out.extend_from_slice(&self.rng.next().to_le_bytes());
            }
            Ty::Bytes => {
                let b: Vec<u8> = (0..self.rng.below(20)).map(|_| self.rng.next() as u8).collect();
                put_len(out, tag, &b);
            }
            Ty::Str => {
                let s = self.string(m, tag);
                put_len(out, tag, &s);
            }
            Ty::M(inner) => {
                let chain = if matches!(inner, Msg::KeyValue) && self.rng.chance(8) {
                    // Around the level limit, sometimes far past prost's
                    // recursion limit.
                    self.rng.pick(&[16, 23, 24, 24, 25, 25, 26, 30, 36, 45, 50])
                } else {
                    0
                };
                let body = self.message(inner, depth + 1, chain);
                put_len(out, tag, &body);
            }
        }
    }

    fn payload(&mut self, out: &mut Vec<u8>, wt: u8) {
        match wt {
            0 => put_varint(out, self.rng.next() >> 7),
            1 => out.extend_from_slice(&self.rng.next().to_le_bytes()),
            5 => out.extend_from_slice(&(self.rng.next() as u32).to_le_bytes()),
            _ => {
                let n = self.rng.below(6);
                put_varint(out, n);
                out.extend((0..n).map(|_| self.rng.next() as u8));
            }
        }
    }

    /// An unknown field of any wire type (groups nest a little).
    fn unknown(&mut self, out: &mut Vec<u8>, fields: &[(u32, Ty)], depth: u32) {
        let tag = loop {
            let t = self.rng.pick(&[3u32, 7, 17, 18, 99, 1000, (1 << 29) - 1]);
            if !fields.iter().any(|&(k, _)| k == t) {
                break t;
            }
        };
        let wt = self.rng.pick(&[0u8, 1, 2, 3, 5]);
        put_key(out, tag, wt);
        if wt == 3 {
            for _ in 0..self.rng.below(3) {
                if depth < 40 && self.rng.chance(30) {
                    self.unknown(out, &[], depth + 1);
                } else {
                    let inner = self.rng.pick(&[0u8, 1, 2, 5]);
                    put_key(out, self.rng.pick(&[1u32, 2, 9]), inner);
                    self.payload(out, inner);
                }
            }
            put_key(out, tag, 4);
        } else {
            self.payload(out, wt);
        }
    }
}

fn levels(v: &AnyValue) -> u32 {
    match &v.value {
        Some(any_value::Value::ArrayValue(a)) => 1 + a.values.iter().map(levels).max().unwrap_or(0),
        Some(any_value::Value::KvlistValue(l)) => {
            1 + l.values.iter().map(|kv| kv.value.as_ref().map_or(0, levels)).max().unwrap_or(0)
        }
        _ => 0,
    }
}

fn too_deep(attributes: &[KeyValue]) -> bool {
    attributes.iter().any(|kv| kv.value.as_ref().is_some_and(|v| levels(v) > MAX_VALUE_LEVELS))
}

/// What the scan must answer, from the decoded struct.
fn expected(req: &ExportTraceServiceRequest) -> Option<OtelSpans> {
    let mut out = OtelSpans::default();
    for rs in &req.resource_spans {
        if rs.resource.as_ref().is_some_and(|r| too_deep(&r.attributes)) {
            return None;
        }
        for ss in &rs.scope_spans {
            if ss.scope.as_ref().is_some_and(|s| too_deep(&s.attributes)) {
                return None;
            }
            for span in &ss.spans {
                if too_deep(&span.attributes)
                    || span.events.iter().any(|e| too_deep(&e.attributes))
                    || span.links.iter().any(|l| too_deep(&l.attributes))
                {
                    return None;
                }
                out.spans += 1;
                let mut parents = 0;
                for kv in span.attributes.iter().filter(|kv| kv.key == PARENT_KEY) {
                    parents += 1;
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => {
                            if !out.parents.contains(s) {
                                out.parents.push(s.clone());
                            }
                        }
                        _ => return None,
                    }
                }
                if parents == 0 {
                    out.unparented += 1;
                }
            }
        }
    }
    Some(out)
}

fn mutate(body: &mut Vec<u8>, how: &[(u8, u32, u32)]) {
    for &(kind, at, val) in how {
        if body.is_empty() {
            return;
        }
        let i = at as usize % body.len();
        match kind % 4 {
            0 => body[i] ^= 1 << (val % 8),
            1 => body.truncate(i),
            2 => {
                // Splice a copy of another stretch in.
                let from = val as usize % body.len();
                let len = (val as usize >> 8) % 16;
                let piece: Vec<u8> = body[from..(from + len).min(body.len())].to_vec();
                body.splice(i..i, piece);
            }
            _ => body[i] = val as u8,
        }
    }
}

fn check(seed: u64, mutations: &[(u8, u32, u32)]) {
    let mut g = Gen { rng: Rng(seed), nodes: 0 };
    let mut body = g.message(Msg::Request, 0, 0);
    mutate(&mut body, mutations);
    let theirs = ExportTraceServiceRequest::decode(&body[..]);
    let want = theirs.as_ref().ok().and_then(expected);
    let got = otel_traces(&body, OtlpEncoding::Protobuf);
    match (&got, &want) {
        (Ok(g), Some(w)) => assert_eq!(g, w, "seed {seed}"),
        (Err(InspectError::BadRequest { .. }), None) => {}
        _ => panic!("seed {seed}: scan {got:?}, prost {:?}, expected {want:?}", theirs.map(|_| ())),
    }
    if let Ok(req) = &theirs {
        let json = ToJson(Some(Rng(seed ^ 0x5eed))).request(req);
        let text = serde_json::to_vec(&json).unwrap();
        let got_json = otel_traces(&text, OtlpEncoding::Json);
        match (&got_json, &want) {
            (Ok(g), Some(w)) => assert_eq!(g, w, "seed {seed} (JSON)"),
            (Err(InspectError::BadRequest { .. }), None) => {}
            _ => panic!("seed {seed}: JSON scan {got_json:?}, expected {want:?}: {}", String::from_utf8_lossy(&text)),
        }
    }
}

proptest! {
    // 2,000 cases for CI; PROPTEST_CASES=100000 searches longer.
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(2000), ..ProptestConfig::default() })]

    #[test]
    fn scan_agrees_with_prost(
        seed in any::<u64>(),
        mutations in prop_oneof![
            Just(Vec::new()),
            prop::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 1..4),
        ],
    ) {
        check(seed, &mutations);
    }
}

/// The deepest attribute value of a decoded request.
fn max_levels(req: &ExportTraceServiceRequest) -> u32 {
    let deepest = |kvs: &[KeyValue]| kvs.iter().filter_map(|kv| kv.value.as_ref()).map(levels).max().unwrap_or(0);
    let mut max = 0;
    for rs in &req.resource_spans {
        max = max.max(rs.resource.as_ref().map_or(0, |r| deepest(&r.attributes)));
        for ss in &rs.scope_spans {
            max = max.max(ss.scope.as_ref().map_or(0, |s| deepest(&s.attributes)));
            for span in &ss.spans {
                max = max.max(deepest(&span.attributes));
                max = span.events.iter().fold(max, |m, e| m.max(deepest(&e.attributes)));
                max = span.links.iter().fold(max, |m, l| m.max(deepest(&l.attributes)));
            }
        }
    }
    max
}

/// How often the generator hits each outcome: the property must not pass
/// by refusing (or accepting) nearly everything, and must meet both sides
/// of the level limit and prost's recursion limit.
#[test]
fn generator_covers_both_outcomes() {
    let (mut accepted, mut parents, mut malformed, mut recursion) = (0, 0, 0, 0);
    let (mut at_limit, mut past_limit) = (0, 0);
    for seed in 0..2000u64 {
        let mut g = Gen { rng: Rng(seed), nodes: 0 };
        let body = g.message(Msg::Request, 0, 0);
        match ExportTraceServiceRequest::decode(&body[..]) {
            Ok(req) => {
                match max_levels(&req) {
                    MAX_VALUE_LEVELS => at_limit += 1,
                    l if l > MAX_VALUE_LEVELS => past_limit += 1,
                    _ => {}
                }
                if let Some(s) = expected(&req) {
                    accepted += 1;
                    parents += usize::from(!s.parents.is_empty());
                }
            }
            Err(e) => {
                malformed += 1;
                recursion += usize::from(e.to_string().contains("recursion limit"));
            }
        }
        check(seed, &[]);
    }
    let counts = [accepted, parents, malformed, recursion, at_limit, past_limit];
    eprintln!(
        "accepted, with parents, malformed, over prost's recursion limit, at the level limit, past it: {counts:?}"
    );
    assert!(counts.iter().all(|&n| n >= 10), "{counts:?}");
}
