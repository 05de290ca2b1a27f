//! The public API end to end: a compressed export in either encoding,
//! decoded, scanned, and its parents parsed.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use prost::Message;

use super::fixtures::{event, int, json_of, kv, nested, parent, request, span, string};
use super::*;
use crate::decode_otlp;

#[test]
fn a_deflated_export_in_both_encodings() {
    let mut llm = span(vec![
        kv("gen_ai.request.model", string("gpt-4o-mini")),
        kv("gen_ai.prompt", string("Résumé:\n«bonjour» — 你好")),
        kv("gen_ai.usage.prompt_tokens", int(812)),
        kv("braintrust.metadata", nested(3, true)),
        parent("project_name:default-otel-project"),
    ]);
    llm.events.push(event(vec![kv("gen_ai.completion", string("ok"))]));
    let req = request(vec![llm, span(vec![]), span(vec![parent("experiment_id:e-7")])]);
    let want = OtelSpans {
        parents: vec!["project_name:default-otel-project".into(), "experiment_id:e-7".into()],
        spans: 3,
        unparented: 1,
    };
    for (body, encoding) in [(req.encode_to_vec(), OtlpEncoding::Protobuf), (json_of(&req), OtlpEncoding::Json)] {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&body).unwrap();
        let sent = z.finish().unwrap();
        let decoded = decode_otlp(&sent, Some("deflate"), 1 << 20).unwrap();
        let got = otel_traces(&decoded, encoding).unwrap();
        assert_eq!(got, want, "{encoding:?}");
        let targets: Vec<OtelParent> = got.parents.iter().map(|p| parse_parent(p).unwrap()).collect();
        assert_eq!(
            targets,
            [
                OtelParent::ProjectLog(ProjectRef::Name("default-otel-project".into())),
                OtelParent::Experiment("e-7".into())
            ]
        );
    }
}

#[test]
fn a_body_of_the_other_encoding_is_refused() {
    let req = request(vec![span(vec![parent("project_id:p")])]);
    assert!(matches!(otel_traces(&req.encode_to_vec(), OtlpEncoding::Json), Err(InspectError::BadRequest { .. })));
    // JSON text is no ExportTraceServiceRequest ('{' starts a group of
    // field 15 that never ends well).
    assert!(matches!(otel_traces(&json_of(&req), OtlpEncoding::Protobuf), Err(InspectError::BadRequest { .. })));
}
