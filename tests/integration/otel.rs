//! `POST /otel/v1/traces` over raw HTTP (contract: OpenTelemetry traces and
//! attachments): OTLP/HTTP exports built with opentelemetry-proto, sent as
//! protobuf and as OTLP/JSON, plain or gzip/deflate. Every span writes to
//! its own `braintrust.parent` attribute, else to the request's
//! `x-bt-parent` header; each distinct target needs `update`; one denied
//! span refuses the export and nothing reaches the data plane; an allowed
//! export arrives byte for byte with its headers, and the data plane's
//! answer comes back unchanged.

use crate::support::http::{self, Resp};
use crate::support::otlp::{self, Encoding, child, export, kv, nested, parent_attr, span, str_attr};
use crate::support::policy::new_id;
use crate::support::upstream::Fault;
use crate::support::world::{PROJECT_NAME, World, cast};
use base64::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};

const PATH: &str = "/otel/v1/traces";

/// One `POST /otel/v1/traces`.
struct Export<'a> {
    token: &'a str,
    content_type: Option<&'a str>,
    content_encoding: Option<&'a str>,
    parent: Option<&'a str>,
    body: Vec<u8>,
}

impl<'a> Export<'a> {
    /// `req` encoded as `enc`, with `x-bt-parent: parent` when given.
    fn new(token: &'a str, enc: Encoding, parent: Option<&'a str>, req: &ExportTraceServiceRequest) -> Self {
        Export { token, content_type: Some(enc.content_type()), content_encoding: None, parent, body: enc.encode(req) }
    }

    fn raw(token: &'a str, content_type: Option<&'a str>, parent: Option<&'a str>, body: Vec<u8>) -> Self {
        Export { token, content_type, content_encoding: None, parent, body }
    }

    /// The body compressed as `encoding` says (`gzip` or `deflate`).
    fn compressed(mut self, encoding: &'a str) -> Self {
        self.body = match encoding {
            "gzip" => otlp::gzip(&self.body),
            "deflate" => otlp::deflate(&self.body),
            other => panic!("no compressor for {other}"),
        };
        self.content_encoding = Some(encoding);
        self
    }

    async fn send(&self, w: &World) -> Resp {
        let mut req = w.request(reqwest::Method::POST, PATH, self.token).body(self.body.clone());
        if let Some(ct) = self.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(ce) = self.content_encoding {
            req = req.header("content-encoding", ce);
        }
        if let Some(p) = self.parent {
            req = req.header("x-bt-parent", p);
        }
        http::send(req).await
    }
}

fn project_id(id: &str) -> String {
    format!("project_id:{id}")
}

/// A good export still goes through after whatever came before, and
/// loggate printed no token.
async fn still_serves_otel(w: &World) {
    let before = w.forwarded(PATH);
    let parent = project_id(&w.project);
    for enc in Encoding::BOTH {
        let r = Export::new(&w.writer.raw, enc, Some(&parent), &otlp::batch(None)).send(w).await;
        assert_eq!(r.status, 200, "a good {enc:?} export after the bad ones failed: {}", r.text());
    }
    assert_eq!(w.forwarded(PATH), before + 2, "the good exports did not reach the data plane");
    w.still_serves().await;
}

/// Nothing of a refused export reached the data plane.
fn nothing_forwarded(w: &World) {
    assert_eq!(w.forwarded(PATH), 0, "a refused export reached the data plane: {:?}", w.upstream.requests_to(PATH));
}

// ---- allowed exports ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_exports_reach_the_data_plane_byte_for_byte_with_their_headers() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    for (i, enc) in Encoding::BOTH.into_iter().enumerate() {
        let req = otlp::batch(None);
        let e = Export::new(&w.writer.raw, enc, Some(&parent), &req);
        let r = e.send(&w).await;
        assert_eq!(r.status, 200, "{enc:?}: {}", r.text());
        assert!(r.header("x-request-id").is_some(), "every answer carries x-request-id");
        let got = &w.upstream.requests_to(PATH)[i];
        assert_eq!(got.body, e.body, "{enc:?}: the body changed on the way");
        assert_eq!(got.header("content-type"), Some(enc.content_type()));
        assert_eq!(got.header("x-bt-parent"), Some(parent.as_str()));
        assert_eq!(got.header("content-encoding"), None);
        assert_eq!(got.bearer(), Some(w.writer.raw.as_str()), "passthrough credentials");
        // The data plane's answer, unchanged: an empty ExportTraceServiceResponse
        // for protobuf, `{}` for JSON.
        match enc {
            Encoding::Protobuf => {
                assert!(r.body.is_empty(), "protobuf answer: {:?}", r.body);
                assert_eq!(r.header("content-type"), Some(otlp::PROTOBUF));
            }
            Encoding::Json => {
                assert_eq!(r.text(), "{}");
                assert_eq!(r.header("content-type"), Some(otlp::JSON));
            }
        }
        let names: Vec<String> =
            otlp::spans_of(&got.body, got.header("content-type"), None).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["chat", "tool-call"]);
    }
    // Odd but valid protobuf (unknown fields, fields out of order) is
    // forwarded as is too: a re-encoding gateway would change it.
    let mut body = otlp::batch(None).encode_to_vec();
    body.extend_from_slice(&[0xf8, 0x07, 0x01]); // field 127, varint 1: unknown to the schema
    let r = Export::raw(&w.writer.raw, Some(otlp::PROTOBUF), Some(&parent), body.clone()).send(&w).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.upstream.requests_to(PATH)[2].body, body);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_by_project_name_experiment_id_and_serialized_span_components() {
    let w = World::start().await;
    let by_name = format!("project_name:{PROJECT_NAME}");
    let experiment = format!("experiment_id:{}", w.experiment);
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    // The SDK's span components (span_identifier_v3/v4 of the Python package).
    let v4 = |object_type: u8, tail: Value| {
        let mut b = vec![4, object_type, 0];
        b.extend_from_slice(tail.to_string().as_bytes());
        b64(b)
    };
    let v3_uuid = |object_type: u8, id: &str| {
        let mut b = vec![3, object_type, 1, 1];
        b.extend_from_slice(&hex::decode(id.replace('-', "")).unwrap());
        b64(b)
    };
    let allowed = [
        by_name.clone(),
        experiment.clone(),
        v4(2, json!({"object_id": w.project})),
        v4(1, json!({"object_id": w.experiment})),
        v4(2, json!({"compute_object_metadata_args": {"project_name": PROJECT_NAME}})),
        v4(2, json!({"compute_object_metadata_args": {"project_id": w.project}})),
        v3_uuid(2, &w.project),
        v3_uuid(1, &w.experiment),
    ];
    for (i, parent) in allowed.iter().enumerate() {
        for enc in Encoding::BOTH {
            // As the header, and as every span's own attribute.
            let r = Export::new(&w.writer.raw, enc, Some(parent), &otlp::batch(None)).send(&w).await;
            assert_eq!(r.status, 200, "parent #{i} {parent} as header, {enc:?}: {}", r.text());
            let r = Export::new(&w.writer.raw, enc, None, &otlp::batch(Some(parent))).send(&w).await;
            assert_eq!(r.status, 200, "parent #{i} {parent} as attribute, {enc:?}: {}", r.text());
        }
    }
    assert_eq!(w.forwarded(PATH), allowed.len() * 4);
    let last = w.upstream.requests_to(PATH).pop().unwrap();
    assert_eq!(last.header("x-bt-parent"), None, "no header was sent, none may be invented");

    // The same grammar pointing at what the writer may not write.
    w.upstream.clear();
    let denied = [
        (project_id(&w.other_project), "permission_denied"),
        (v4(2, json!({"object_id": w.other_project})), "permission_denied"),
        (project_id(&new_id()), "unknown_object"),
        (format!("experiment_id:{}", new_id()), "unknown_object"),
        (v4(1, json!({"object_id": new_id()})), "unknown_object"),
        // Playground logs (prompt sessions) are not described by the policy.
        (v4(3, json!({"object_id": new_id()})), "unknown_object"),
        // Another organization's project, whatever its ACLs.
        (project_id(&w.foreign_project), ""),
    ];
    for (parent, code) in &denied {
        for enc in Encoding::BOTH {
            let r = Export::new(&w.writer.raw, enc, Some(parent), &otlp::batch(None)).send(&w).await;
            assert_eq!(r.status, 403, "{parent} {enc:?}: {}", r.text());
            if !code.is_empty() {
                w.error(&r, 403, code);
            }
        }
    }
    let r = Export::new(&w.writer.raw, Encoding::Json, Some(&experiment), &otlp::batch(None)).send(&w).await;
    assert_eq!(r.status, 200);
    let r = Export::new(&w.reader.raw, Encoding::Json, Some(&experiment), &otlp::batch(None)).send(&w).await;
    let e = w.error(&r, 403, "permission_denied");
    assert_eq!(e["object_type"], "experiment");
    assert_eq!(e["object_id"], w.experiment.as_str());
    assert_eq!(e["missing_permission"], "update");
    assert_eq!(w.forwarded(PATH), 1);
    still_serves_otel(&w).await;
}

// ---- denials ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_and_read_only_tokens_are_denied_and_nothing_is_forwarded() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    for token in [&w.log_creator, &w.project_creator, &w.reader, &w.nobody, &w.outsider] {
        for enc in Encoding::BOTH {
            let r = Export::new(&token.raw, enc, Some(&parent), &otlp::batch(None)).send(&w).await;
            let e = w.error(&r, 403, "permission_denied");
            assert_eq!(e["missing_permission"], "update", "{}: {e}", token.name);
            if token.org_id == w.org {
                assert_eq!(e["object_type"], "project_log", "{}: {e}", token.name);
                assert_eq!(e["object_id"], w.project.as_str(), "{}: {e}", token.name);
            }
        }
    }
    for (token, status) in [(w.unknown.as_str(), 401), (w.expired.raw.as_str(), 401)] {
        let r = Export::new(token, Encoding::Protobuf, Some(&parent), &otlp::batch(None)).send(&w).await;
        w.error(&r, status, "unauthenticated");
    }
    nothing_forwarded(&w);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_stamped_with_a_forbidden_parent_refuses_the_whole_export() {
    let w = World::start().await;
    let allowed = project_id(&w.project);
    let forbidden = project_id(&w.other_project);
    for enc in Encoding::BOTH {
        // The header names checkout; the root span has no stamp of its own,
        // the child's stamp names a project the writer may not write.
        let root = span("chat", vec![str_attr("gen_ai.prompt", "hi")]);
        let tool = child(&root, "tool-call", vec![parent_attr(&forbidden)]);
        let r = Export::new(&w.writer.raw, enc, Some(&allowed), &export(vec![root, tool])).send(&w).await;
        let e = w.error(&r, 403, "permission_denied");
        assert_eq!(e["object_id"], w.other_project.as_str(), "{enc:?}: the denial names the stamped project: {e}");
        assert_eq!(e["missing_permission"], "update");
        // Many allowed spans around one forbidden one, stamped in the middle
        // of its attributes, the batch split over two resources.
        let mut req = export((0..20).map(|i| span(&format!("ok-{i}"), vec![parent_attr(&allowed)])).collect());
        let mut second = export(vec![
            span("ok-unstamped", vec![]),
            span("bad", vec![str_attr("a", "1"), parent_attr(&forbidden), str_attr("b", "2")]),
            span("ok-last", vec![parent_attr(&allowed)]),
        ]);
        req.resource_spans.append(&mut second.resource_spans);
        let r = Export::new(&w.writer.raw, enc, Some(&allowed), &req).send(&w).await;
        w.error(&r, 403, "permission_denied");
    }
    nothing_forwarded(&w);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_header_only_matters_to_spans_without_a_stamp() {
    let w = World::start().await;
    let allowed = project_id(&w.project);
    let forbidden = project_id(&w.other_project);
    for (i, enc) in Encoding::BOTH.into_iter().enumerate() {
        // Every span carries an allowed parent: the header is used by none.
        let e = Export::new(&w.writer.raw, enc, Some(&forbidden), &otlp::batch(Some(&allowed)));
        let r = e.send(&w).await;
        assert_eq!(r.status, 200, "{enc:?}: {}", r.text());
        let got = &w.upstream.requests_to(PATH)[i];
        assert_eq!(got.body, e.body);
        assert_eq!(got.header("x-bt-parent"), Some(forbidden.as_str()), "the header is forwarded as received");

        // One span without a stamp falls back to the forbidden header.
        let root = span("chat", vec![parent_attr(&allowed)]);
        let unstamped = child(&root, "tool-call", vec![str_attr("gen_ai.prompt", "hi")]);
        let r = Export::new(&w.writer.raw, enc, Some(&forbidden), &export(vec![root, unstamped])).send(&w).await;
        let err = w.error(&r, 403, "permission_denied");
        assert_eq!(err["object_id"], w.other_project.as_str(), "{err}");
    }
    assert_eq!(w.forwarded(PATH), 2);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_project_name_needs_org_level_create_and_update() {
    let mut c = cast();
    let org = c.org.clone();
    // `create` on the organization, nothing to write with.
    let create_only = c.policy.service_token(&org, "org-create-only");
    c.policy.grant_user(&create_only.user_id, "create", "organization", &org);
    // `update` on every project log of the organization, no `create`.
    let update_only = c.policy.service_token(&org, "org-log-update-only");
    c.policy.acl(Some(&update_only.user_id), None, Some("update"), None, "organization", &org, Some("project_log"));
    // Both, the update restricted to project logs: what a new project needs.
    let log_creator = c.policy.service_token(&org, "org-log-creator");
    c.policy.grant_user(&log_creator.user_id, "create", "organization", &org);
    c.policy.acl(Some(&log_creator.user_id), None, Some("update"), None, "organization", &org, Some("project_log"));
    let w = World::builder_for(c).start().await;
    for enc in Encoding::BOTH {
        let parent = format!("project_name:brand-new-{}", new_id());
        // The writer's grants are on checkout only: it could not write to a
        // project the data plane creates for it.
        for token in [&w.writer, &w.project_creator, &w.log_creator, &create_only, &update_only] {
            let r = Export::new(&token.raw, enc, Some(&parent), &otlp::batch(None)).send(&w).await;
            let e = w.error(&r, 403, "permission_denied");
            assert_eq!(e["missing_permission"], "create", "{}: {e}", token.name);
            assert_eq!(e["object_type"], "organization", "{}: {e}", token.name);
        }
        // The same as a span's stamp under an allowed header.
        let r =
            Export::new(&w.writer.raw, enc, Some(&project_id(&w.project)), &otlp::batch(Some(&parent))).send(&w).await;
        w.error(&r, 403, "permission_denied");
        assert_eq!(w.forwarded(PATH), 0);
        // `create` and `update` on the organization: allowed.
        for token in [&w.creator, &log_creator] {
            let parent = format!("project_name:brand-new-{}", new_id());
            let e = Export::new(&token.raw, enc, Some(&parent), &otlp::batch(None));
            let r = e.send(&w).await;
            assert_eq!(r.status, 200, "{} {enc:?}: {}", token.name, r.text());
            let got = w.upstream.requests_to(PATH).pop().unwrap();
            assert_eq!(got.body, e.body);
            assert_eq!(got.header("x-bt-parent"), Some(parent.as_str()));
        }
        w.upstream.clear();
    }
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_that_excludes_the_target_is_scope_denied() {
    let mut c = cast();
    let scope =
        json!({"grants": [{"object_type": "experiment", "object_id": c.experiment, "permissions": ["update"]}]});
    let writer_user = c.writer.user_id.clone();
    let org = c.org.clone();
    let scoped = c.policy.scoped_token(&org, "otel-experiment-only", &writer_user, scope);
    let w = World::builder_for(c).start().await;
    let r =
        Export::new(&scoped.raw, Encoding::Protobuf, Some(&project_id(&w.project)), &otlp::batch(None)).send(&w).await;
    w.error(&r, 403, "scope_denied");
    nothing_forwarded(&w);
    let experiment = format!("experiment_id:{}", w.experiment);
    let r = Export::new(&scoped.raw, Encoding::Protobuf, Some(&experiment), &otlp::batch(None)).send(&w).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A span stamped with the project inside an export to the experiment.
    let req = export(vec![span("a", vec![]), span("b", vec![parent_attr(&project_id(&w.project))])]);
    let r = Export::new(&scoped.raw, Encoding::Json, Some(&experiment), &req).send(&w).await;
    w.error(&r, 403, "scope_denied");
    assert_eq!(w.forwarded(PATH), 1);
}

// ---- malformed input ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_without_a_parent_are_400_naming_x_bt_parent() {
    let w = World::start().await;
    for enc in Encoding::BOTH {
        let r = Export::new(&w.writer.raw, enc, None, &otlp::batch(None)).send(&w).await;
        let e = w.error(&r, 400, "bad_request");
        assert_eq!(e["field"], "x-bt-parent", "{enc:?}: {e}");
        // Stamped spans and one without: still no parent for that one.
        let req = export(vec![span("a", vec![parent_attr(&project_id(&w.project))]), span("b", vec![])]);
        let r = Export::new(&w.writer.raw, enc, None, &req).send(&w).await;
        let e = w.error(&r, 400, "bad_request");
        assert_eq!(e["field"], "x-bt-parent", "{enc:?}: {e}");
    }
    // Parents that do not parse, as the header or as a stamp.
    let junk =
        ["checkout", "project_id:", "project_name:", "experiment_id:", "dataset_id:x", "bogus:1", "Zm9vYmFy", ""];
    for parent in junk {
        for enc in Encoding::BOTH {
            let r = Export::new(&w.writer.raw, enc, Some(parent), &otlp::batch(None)).send(&w).await;
            w.error(&r, 400, "bad_request");
            if parent.is_empty() {
                continue; // an empty header is as good as none; an empty stamp is left undecided here
            }
            let r = Export::new(&w.writer.raw, enc, Some(&project_id(&w.project)), &otlp::batch(Some(parent)))
                .send(&w)
                .await;
            w.error(&r, 400, "bad_request");
        }
    }
    // A braintrust.parent that is not a string.
    let req = export(vec![span("a", vec![kv("braintrust.parent", nested(1))])]);
    for enc in Encoding::BOTH {
        let r = Export::new(&w.writer.raw, enc, Some(&project_id(&w.project)), &req).send(&w).await;
        w.error(&r, 400, "bad_request");
    }
    nothing_forwarded(&w);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_must_be_protobuf_or_json() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    let body = otlp::batch(None).encode_to_vec();
    for ct in [None, Some("text/plain"), Some("application/octet-stream"), Some("application/grpc"), Some("x/y")] {
        let r = Export::raw(&w.writer.raw, ct, Some(&parent), body.clone()).send(&w).await;
        w.error(&r, 415, "unsupported_media_type");
    }
    nothing_forwarded(&w);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_deflate_bodies_are_inspected_and_forwarded_as_received() {
    let w = World::start().await;
    let allowed = project_id(&w.project);
    let forbidden = project_id(&w.other_project);
    let mut n = 0;
    for enc in Encoding::BOTH {
        for ce in ["gzip", "deflate"] {
            let e = Export::new(&w.writer.raw, enc, Some(&allowed), &otlp::batch(None)).compressed(ce);
            let r = e.send(&w).await;
            assert_eq!(r.status, 200, "{enc:?} {ce}: {}", r.text());
            let got = &w.upstream.requests_to(PATH)[n];
            n += 1;
            assert_eq!(got.body, e.body, "{enc:?} {ce}: forwarded as received, still compressed");
            assert_eq!(got.header("content-encoding"), Some(ce));
            assert_eq!(got.header("content-type"), Some(enc.content_type()));
            assert_eq!(got.header("x-bt-parent"), Some(allowed.as_str()));
            let spans = otlp::spans_of(&got.body, got.header("content-type"), Some(ce));
            assert_eq!(spans.len(), 2);

            // Inspection looks inside: a forbidden stamp in a compressed body.
            let r = Export::new(&w.writer.raw, enc, Some(&allowed), &otlp::batch(Some(&forbidden)))
                .compressed(ce)
                .send(&w)
                .await;
            w.error(&r, 403, "permission_denied");
            // A body that is not what its encoding says.
            let mut lie = Export::new(&w.writer.raw, enc, Some(&allowed), &otlp::batch(None));
            lie.content_encoding = Some(ce);
            w.error(&lie.send(&w).await, 400, "bad_request");
        }
        // Other encodings are refused.
        for ce in ["br", "zstd", "compress", "gzip, gzip", "x-gzip-not"] {
            let mut e = Export::new(&w.writer.raw, enc, Some(&allowed), &otlp::batch(None)).compressed("gzip");
            e.content_encoding = Some(ce);
            w.error(&e.send(&w).await, 415, "unsupported_media_type");
        }
    }
    assert_eq!(w.forwarded(PATH), 4);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_over_the_size_limit_once_decompressed_is_413() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    // A valid export of 12 MiB (max_body_bytes is 8 MiB) that compresses to
    // a few KiB: only the decompressed size can tell.
    let big = "a".repeat(12 * 1024 * 1024);
    let req = export(vec![span("bomb", vec![str_attr("gen_ai.prompt", &big)])]);
    for enc in Encoding::BOTH {
        for ce in ["gzip", "deflate"] {
            let e = Export::new(&w.writer.raw, enc, Some(&parent), &req).compressed(ce);
            assert!(e.body.len() < 64 * 1024, "the bomb should be small on the wire: {}", e.body.len());
            w.error(&e.send(&w).await, 413, "payload_too_large");
        }
    }
    // Below the limit once decompressed: fine.
    let fits = export(vec![span("fits", vec![str_attr("gen_ai.prompt", &"a".repeat(4 * 1024 * 1024))])]);
    let r = Export::new(&w.writer.raw, Encoding::Protobuf, Some(&parent), &fits).compressed("gzip").send(&w).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.forwarded(PATH), 1);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_and_json_are_400() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    let good = otlp::batch(None).encode_to_vec();
    // Truncated inside a length-delimited field.
    let truncated = good[..good.len() / 2].to_vec();
    // Field 1 with wire type 7 (no such wire type).
    let mut bad_wire_type = vec![0x0f, 0x01];
    bad_wire_type.extend_from_slice(&good);
    // A length prefix pointing past the end.
    let mut overlong = good.clone();
    overlong.extend_from_slice(&[0x0a, 0x7f, 0x01]);
    // Invalid UTF-8 in a span name, same length as the placeholder.
    let marked = export(vec![span("NAME-XX", vec![])]).encode_to_vec();
    let at = marked.windows(7).position(|s| s == b"NAME-XX").unwrap();
    let mut bad_utf8 = marked.clone();
    bad_utf8[at..at + 3].copy_from_slice(&[0xff, 0xfe, 0xc3]);
    // Invalid UTF-8 in an attribute string nobody reads for authorization.
    let marked = export(vec![span("ok", vec![str_attr("gen_ai.prompt", "VALUE-X")])]).encode_to_vec();
    let at = marked.windows(7).position(|s| s == b"VALUE-X").unwrap();
    let mut bad_utf8_attr = marked.clone();
    bad_utf8_attr[at + 2] = 0x80;
    // A varint that never ends.
    let endless_varint = vec![0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    for (what, body) in [
        ("truncated", truncated),
        ("bad wire type", bad_wire_type),
        ("length past the end", overlong),
        ("invalid UTF-8 span name", bad_utf8),
        ("invalid UTF-8 attribute", bad_utf8_attr),
        ("endless varint", endless_varint),
    ] {
        let r = Export::raw(&w.writer.raw, Some(otlp::PROTOBUF), Some(&parent), body).send(&w).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        w.error(&r, 400, "bad_request");
    }

    let json_good = otlp::to_json(&otlp::batch(None)).to_string();
    let mut json_bad_utf8 = json_good.clone().into_bytes();
    let at = json_bad_utf8.windows(4).position(|s| s == b"chat").unwrap();
    json_bad_utf8[at] = 0xff;
    for (what, body) in [
        ("truncated", json_good.as_bytes()[..json_good.len() / 2].to_vec()),
        ("not JSON", b"resourceSpans".to_vec()),
        ("trailing garbage", format!("{json_good} x").into_bytes()),
        ("trailing comma", br#"{"resourceSpans":[],}"#.to_vec()),
        ("empty", Vec::new()),
        ("invalid UTF-8", json_bad_utf8),
        ("spans not an array", br#"{"resourceSpans":[{"scopeSpans":[{"spans":{"name":"x"}}]}]}"#.to_vec()),
    ] {
        let r = Export::raw(&w.writer.raw, Some(otlp::JSON), Some(&parent), body).send(&w).await;
        assert_eq!(r.status, 400, "JSON {what}: {}", r.text());
        w.error(&r, 400, "bad_request");
    }
    nothing_forwarded(&w);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_values_nested_deeper_than_24_levels_are_400_and_16_pass() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    for enc in Encoding::BOTH {
        let ok = export(vec![span("deep-16", vec![kv("meta", nested(16))])]);
        let e = Export::new(&w.writer.raw, enc, Some(&parent), &ok);
        let r = e.send(&w).await;
        assert_eq!(r.status, 200, "{enc:?}: 16 levels must pass: {}", r.text());
        assert_eq!(w.upstream.requests_to(PATH).pop().unwrap().body, e.body);

        let deep = export(vec![span("deep-25", vec![kv("meta", nested(25))])]);
        let r = Export::new(&w.writer.raw, enc, Some(&parent), &deep).send(&w).await;
        assert_eq!(r.status, 400, "{enc:?}: 25 levels in a span attribute: {}", r.text());
        w.error(&r, 400, "bad_request");

        // In a resource attribute, and far deeper, compressed.
        let mut deep = otlp::batch(None);
        deep.resource_spans[0].resource.as_mut().unwrap().attributes.push(kv("meta", nested(25)));
        let r = Export::new(&w.writer.raw, enc, Some(&parent), &deep).send(&w).await;
        assert_eq!(r.status, 400, "{enc:?}: 25 levels in a resource attribute: {}", r.text());
        let deeper = export(vec![span("deep-200", vec![kv("meta", nested(200))])]);
        let r = Export::new(&w.writer.raw, enc, Some(&parent), &deeper).compressed("gzip").send(&w).await;
        assert_eq!(r.status, 400, "{enc:?}: 200 levels: {}", r.text());
    }
    assert_eq!(w.forwarded(PATH), 2, "only the 16-level exports");
    still_serves_otel(&w).await;
}

// ---- the data plane's answer and the metrics ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_plane_answer_comes_back_unchanged() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    let down = r#"{"error":"otel ingestion unavailable","retry":true}"#;
    w.upstream.set_fault_times(PATH, Fault::Status(503, down.into()), 1);
    let r = Export::new(&w.writer.raw, Encoding::Protobuf, Some(&parent), &otlp::batch(None)).send(&w).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), down, "the data plane's 503 body, unchanged");
    // An OTLP partial success.
    let partial = r#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"span 2 too old"}}"#;
    w.upstream.set_fault_times(PATH, Fault::Status(200, partial.into()), 1);
    let r = Export::new(&w.writer.raw, Encoding::Json, Some(&parent), &otlp::batch(None)).send(&w).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), partial);
    // A data plane 400 too.
    w.upstream.set_fault_times(PATH, Fault::Status(400, r#"{"error":"bad span"}"#.into()), 1);
    let r = Export::new(&w.writer.raw, Encoding::Json, Some(&parent), &otlp::batch(None)).send(&w).await;
    assert_eq!((r.status, r.text().as_str()), (400, r#"{"error":"bad span"}"#));
    assert_eq!(w.forwarded(PATH), 3);
    still_serves_otel(&w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_forwarded_and_denied_spans_denials_and_requests() {
    let w = World::start().await;
    let parent = project_id(&w.project);
    // Forwarded: 2 + 3 spans. Denied: 2 spans (create-only), 4 spans (one
    // forbidden stamp), 2 spans (unknown project). Bad request: 2 spans.
    let three = export(vec![span("a", vec![]), span("b", vec![]), span("c", vec![])]);
    assert_eq!(
        Export::new(&w.writer.raw, Encoding::Protobuf, Some(&parent), &otlp::batch(None)).send(&w).await.status,
        200
    );
    assert_eq!(Export::new(&w.writer.raw, Encoding::Json, Some(&parent), &three).send(&w).await.status, 200);
    let r = Export::new(&w.log_creator.raw, Encoding::Protobuf, Some(&parent), &otlp::batch(None)).send(&w).await;
    w.error(&r, 403, "permission_denied");
    let four = export(vec![
        span("a", vec![]),
        span("b", vec![]),
        span("c", vec![parent_attr(&project_id(&w.other_project))]),
        span("d", vec![]),
    ]);
    let r = Export::new(&w.writer.raw, Encoding::Json, Some(&parent), &four).send(&w).await;
    w.error(&r, 403, "permission_denied");
    let ghost = project_id(&new_id());
    let r = Export::new(&w.writer.raw, Encoding::Protobuf, Some(&ghost), &otlp::batch(None)).send(&w).await;
    w.error(&r, 403, "unknown_object");
    let r = Export::new(&w.writer.raw, Encoding::Protobuf, None, &otlp::batch(None)).send(&w).await;
    w.error(&r, 400, "bad_request");

    let text = w.gw.metrics().await;
    let m = |s: &str| crate::support::gateway::metric_value(&text, s);
    assert_eq!(m(r#"loggate_otel_spans_total{outcome="forwarded"}"#), 5.0, "{text}");
    assert_eq!(m(r#"loggate_otel_spans_total{outcome="denied"}"#), 8.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="otel_traces",status="200"}"#), 2.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="otel_traces",status="403"}"#), 3.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="otel_traces",status="400"}"#), 1.0, "{text}");
    let org = &w.org;
    assert_eq!(
        m(&format!(r#"loggate_denials_total{{reason="permission_denied",object_type="project_log",org="{org}"}}"#)),
        2.0,
        "{text}"
    );
    assert_eq!(
        m(&format!(r#"loggate_denials_total{{reason="unknown_object",object_type="project_log",org="{org}"}}"#)),
        1.0,
        "{text}"
    );
    assert!(!text.contains("bt-st-"), "token text in /metrics");
    assert_eq!(w.forwarded(PATH), 2);
    still_serves_otel(&w).await;
}
