//! End-to-end with real SDKs: OpenTelemetry exports and attachments.
//!
//! - Python `braintrust[otel]`'s `BraintrustSpanProcessor`, the plain
//!   OpenTelemetry OTLP/HTTP exporters (protobuf and JSON), and JS
//!   `@braintrust/otel` on the OpenTelemetry JS SDK export a small span tree
//!   (`tests/sdk/python_otel.py`, `js_otel.mjs`); every request the exporter
//!   put on the wire is compared with what reached the data plane: the same
//!   bytes, `Content-Type`, `Content-Encoding` and `x-bt-parent`.
//! - Python `braintrust.Attachment` in a logged row, and `Attachment.upload()`
//!   alone (`tests/sdk/python_attachment.py`): `/attachment`, the upload to
//!   the signed URL (straight to the object store, here the fake) and
//!   `/attachment/status`.
//!
//! The `fake_upstream_*` cases run the same scripts against the fake data
//! plane alone, so that a failure of the gateway cases is loggate's.
//! Missing SDKs skip, or fail under `CI` (see `support/sdk.rs`).

use crate::support::otlp;
use crate::support::sdk::{self, Sdk, SdkRun};
use crate::support::upstream::Upstream;
use crate::support::world::{Cast, PROJECT_NAME, World, cast};

const PATH: &str = "/otel/v1/traces";
const PY_OTEL: &[&str] = &[
    "braintrust.otel",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.json.http.trace_exporter",
];
const JS_OTEL: &[&str] =
    &["@braintrust/otel", "@opentelemetry/sdk-trace-base", "@opentelemetry/exporter-trace-otlp-http"];
/// What `python_attachment.py` uploads.
const ATTACHMENT_CONTENT: &str = "loggate attachment test: receipt #42\n";

async fn fake_upstream(c: &Cast) -> Upstream {
    Upstream::start(c.policy.upstream_orgs()).await
}

/// Runs an OTel script: `exporter` is `braintrust`, `otlp-proto` or
/// `otlp-json` for Python (ignored by JS), `api_url` where it exports to.
async fn otel(sdk: Sdk, exporter: &str, token: &str, api_url: &str, env: &[(&str, &str)]) -> SdkRun {
    let script = match sdk {
        Sdk::Python => "python_otel.py",
        Sdk::Js => "js_otel.mjs",
    };
    let mut all = vec![("LOGGATE_TEST_OTEL_EXPORTER", exporter)];
    all.extend_from_slice(env);
    sdk::run_script(sdk, script, token, api_url, Some(api_url), PROJECT_NAME, &all).await
}

async fn attachment(token: &str, url: &str, mode: &str, env: &[(&str, &str)]) -> SdkRun {
    let mut all = vec![("LOGGATE_TEST_ATTACHMENT_MODE", mode)];
    all.extend_from_slice(env);
    sdk::run_script(Sdk::Python, "python_attachment.py", token, url, Some(url), PROJECT_NAME, &all).await
}

/// With `LOGGATE_TEST_ECHO` set, prints the script's output and what
/// reached the data plane (run with `--no-capture`).
fn trace(run: &SdkRun, upstream: &Upstream) {
    if std::env::var_os("LOGGATE_TEST_ECHO").is_none() {
        return;
    }
    eprintln!("{}", run.describe());
    for w in run.wire() {
        eprintln!("<< sent {} {:?} {} bytes", w.url, w.headers, w.body.len());
    }
    for r in upstream.requests() {
        eprintln!(">> {} {} {:?} {} bytes", r.method, r.path, r.headers, r.body.len());
    }
}

/// The export(s) the SDK sent reached the data plane unchanged: as many, in
/// order, each with the same body bytes and the same `Content-Type`,
/// `Content-Encoding`, `x-bt-parent` and bearer token; and they hold the
/// spans the script made. Returns the spans that arrived.
fn assert_exports_arrived_unchanged(run: &SdkRun, upstream: &Upstream, token: &str) -> Vec<otlp::SpanSeen> {
    trace(run, upstream);
    assert!(run.success(), "{}", run.describe());
    assert!(run.report["exports"].as_array().is_some_and(|e| !e.is_empty()), "{}", run.describe());
    let sent = run.wire();
    let got = upstream.requests_to(PATH);
    assert!(!sent.is_empty(), "the script recorded nothing on the wire; {}", run.describe());
    assert_eq!(got.len(), sent.len(), "exports sent vs arrived; {}", run.describe());
    let mut spans = Vec::new();
    for (s, g) in sent.iter().zip(&got) {
        assert!(s.url.ends_with(PATH), "the SDK posted to {}", s.url);
        assert_eq!(g.body, s.body, "the export's bytes changed on the way");
        for h in ["content-type", "content-encoding", "x-bt-parent"] {
            assert_eq!(g.header(h), s.header(h), "{h} changed on the way");
        }
        assert_eq!(g.bearer(), Some(token), "the caller's token is forwarded (passthrough credentials)");
        spans.extend(otlp::spans_of(&g.body, g.header("content-type"), g.header("content-encoding")));
    }
    for want in run.report["spans"].as_array().expect("report.spans") {
        let id = want["span_id"].as_str().unwrap();
        assert!(
            spans.iter().any(|s| s.span_id == id && s.name == want["name"].as_str().unwrap()),
            "span {want} did not arrive; arrived: {spans:?}"
        );
    }
    spans
}

/// The export was refused: the script reports the failure (403), and
/// nothing reached the data plane.
fn assert_export_refused(run: &SdkRun, upstream: &Upstream, status: &str) {
    trace(run, upstream);
    assert!(!run.success(), "the export should have failed; {}", run.describe());
    assert!(run.report["exports"].as_array().is_some_and(|e| e.iter().all(|r| r == "FAILURE")), "{}", run.describe());
    assert!(run.errors().contains(status), "the SDK should report the {status}; {}", run.describe());
    assert!(upstream.requests_to(PATH).is_empty(), "a refused export reached the data plane");
    assert!(!run.wire().is_empty(), "the SDK sent nothing at all; {}", run.describe());
}

// ---------------------------------------------------------------------------
// The fake data plane alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_satisfies_python_otel_exporters() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let c = cast();
    let project = format!("project_id:{}", c.project);
    // (exporter, its environment, the Content-Type it sends, the x-bt-parent it sends)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        ("braintrust", &[("LOGGATE_TEST_OTEL_PARENT_ARG", &project)], otlp::PROTOBUF, &project),
        ("braintrust", &[("BRAINTRUST_PARENT", "project_name:checkout")], otlp::PROTOBUF, "project_name:checkout"),
        ("otlp-proto", &[("LOGGATE_TEST_OTEL_HEADER_PARENT", &project)], otlp::PROTOBUF, &project),
        ("otlp-json", &[("LOGGATE_TEST_OTEL_HEADER_PARENT", &project)], otlp::JSON, &project),
    ];
    for (exporter, env, content_type, parent) in cases {
        let upstream = fake_upstream(&c).await;
        let run = otel(Sdk::Python, exporter, &c.writer.raw, &upstream.url, env).await;
        assert_exports_arrived_unchanged(&run, &upstream, &c.writer.raw);
        let got = &upstream.requests_to(PATH)[0];
        assert_eq!(got.header("content-type"), Some(content_type), "{exporter}");
        assert_eq!(got.header("x-bt-parent"), Some(parent), "{exporter}");
        assert_eq!(got.header("content-encoding"), None, "{exporter}: no compression unless configured");
        assert_eq!(upstream.requests().len(), 1, "{exporter}: the export is the only request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_satisfies_js_braintrust_otel() {
    if !sdk::require_with(Sdk::Js, JS_OTEL) {
        return;
    }
    let c = cast();
    let upstream = fake_upstream(&c).await;
    let run = otel(Sdk::Js, "", &c.writer.raw, &upstream.url, &[("BRAINTRUST_PARENT", "project_name:checkout")]).await;
    assert_exports_arrived_unchanged(&run, &upstream, &c.writer.raw);
    let got = &upstream.requests_to(PATH)[0];
    assert_eq!(got.header("content-type"), Some(otlp::JSON));
    assert_eq!(got.header("x-bt-parent"), Some("project_name:checkout"));
    assert_eq!(upstream.requests().len(), 1, "the export is the only request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_satisfies_python_attachments() {
    if !sdk::require(Sdk::Python) {
        return;
    }
    let c = cast();
    let upstream = fake_upstream(&c).await;
    let run = attachment(&c.writer.raw, &upstream.url, "log", &[]).await;
    assert_attachment_logged(&run, &upstream, &c);
}

/// A `log` run of `python_attachment.py`: the row reached `/logs3` holding
/// the attachment's reference; the blob was uploaded to the signed URL
/// without credentials; the status says done; the SDK read it back.
fn assert_attachment_logged(run: &SdkRun, upstream: &Upstream, c: &Cast) {
    trace(run, upstream);
    assert!(run.success(), "{}", run.describe());
    let reference = &run.report["reference"];
    let key = reference["key"].as_str().expect("reference.key");
    assert_eq!(reference["type"], "braintrust_attachment");
    let row_id = &run.logged()[0]["id"];
    let rows = upstream.logs3_rows();
    let row = rows.iter().find(|r| &r["id"] == row_id).unwrap_or_else(|| panic!("row {row_id} missing: {rows:#?}"));
    assert_eq!(row["project_id"], c.project.as_str());
    assert_eq!(&row["input"]["receipt"], reference, "the row references the attachment: {row:#}");

    let asked = upstream.requests_to("/attachment");
    let post = asked.iter().find(|r| r.method == hyper::Method::POST).expect("POST /attachment");
    let body = post.json();
    assert_eq!(body["key"], key);
    assert_eq!(body["org_id"], c.org.as_str(), "the SDK names its organization");
    assert_eq!(body["filename"], "receipt.txt");
    assert_eq!(body["content_type"], "text/plain");
    let put = upstream.requests_to(&format!("/_upload/{key}"));
    let put = put.iter().find(|r| r.method == hyper::Method::PUT).expect("the upload to the signed URL");
    assert_eq!(put.body, ATTACHMENT_CONTENT.as_bytes());
    assert_eq!(put.header("content-type"), Some("text/plain"), "the headers of the signed URL's answer");
    assert!(put.header("authorization").is_none(), "the upload to the object store carries no token");
    assert_eq!(upstream.uploaded(key).as_deref(), Some(ATTACHMENT_CONTENT.as_bytes()));
    let status = upstream.requests_to("/attachment/status");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].json()["status"]["upload_status"], "done");
    assert_eq!(status[0].json()["org_id"], c.org.as_str());
    assert_eq!(upstream.attachment_status(key).unwrap()["upload_status"], "done");
    assert!(asked.iter().any(|r| r.method == hyper::Method::GET), "the read-back GET /attachment");
    assert_eq!(run.report["read_back"], ATTACHMENT_CONTENT);
    assert_eq!(run.report["upload_status"]["upload_status"], "done");
}

// ---------------------------------------------------------------------------
// Python braintrust[otel] through loggate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_processor_with_a_project_id_parent_exports_unchanged() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    let parent = format!("project_id:{}", w.project);
    let run =
        otel(Sdk::Python, "braintrust", &w.writer.raw, &w.gw.url, &[("LOGGATE_TEST_OTEL_PARENT_ARG", &parent)]).await;
    let spans = assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
    let got = &w.upstream.requests_to(PATH)[0];
    assert_eq!(got.header("x-bt-parent"), Some(parent.as_str()));
    assert_eq!(got.header("content-type"), Some(otlp::PROTOBUF));
    assert!(spans.iter().all(|s| s.parent.is_none()), "no stamps without a parent in the context: {spans:?}");
    let m = w.gw.metric(r#"loggate_otel_spans_total{outcome="forwarded"}"#).await;
    assert_eq!(m, spans.len() as f64);
    w.gw.assert_output_free_of(&w.secrets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_processor_with_a_project_name_parent_from_the_environment_exports_unchanged() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    let parent = format!("project_name:{PROJECT_NAME}");
    let run = otel(Sdk::Python, "braintrust", &w.writer.raw, &w.gw.url, &[("BRAINTRUST_PARENT", &parent)]).await;
    assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
    assert_eq!(w.upstream.requests_to(PATH)[0].header("x-bt-parent"), Some(parent.as_str()));
    // gzip, as OTEL_EXPORTER_OTLP_TRACES_COMPRESSION asks of the processor's exporter.
    w.upstream.clear();
    let env = [("BRAINTRUST_PARENT", parent.as_str()), ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")];
    let run = otel(Sdk::Python, "braintrust", &w.writer.raw, &w.gw.url, &env).await;
    assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
    assert_eq!(w.upstream.requests_to(PATH)[0].header("content-encoding"), Some("gzip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_processor_create_only_token_gets_403_and_nothing_is_forwarded() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    let parent = format!("project_id:{}", w.project);
    for token in [&w.log_creator, &w.reader] {
        let run =
            otel(Sdk::Python, "braintrust", &token.raw, &w.gw.url, &[("LOGGATE_TEST_OTEL_PARENT_ARG", &parent)]).await;
        assert_export_refused(&run, &w.upstream, "403");
    }
    // The exporter does not retry a 403: one request each.
    assert_eq!(w.gw.metric(r#"loggate_requests_total{route="otel_traces",status="403"}"#).await, 2.0);
    assert!(w.gw.metric(r#"loggate_otel_spans_total{outcome="denied"}"#).await >= 4.0);
    w.gw.assert_output_free_of(&w.secrets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_processor_spans_stamped_through_baggage_are_authorized_on_their_stamp() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    let allowed = format!("project_id:{}", w.project);
    let forbidden = format!("project_id:{}", w.other_project);
    // The header names checkout; the processor stamps every span with the
    // parent it finds in the baggage: a project the writer may not write.
    let env = [("BRAINTRUST_PARENT", allowed.as_str()), ("LOGGATE_TEST_OTEL_STAMP", forbidden.as_str())];
    let run = otel(Sdk::Python, "braintrust", &w.writer.raw, &w.gw.url, &env).await;
    assert_export_refused(&run, &w.upstream, "403");
    let sent = run.wire();
    let stamped = otlp::spans_of(&sent[0].body, sent[0].header("content-type"), sent[0].header("content-encoding"));
    assert!(stamped.iter().all(|s| s.parent.as_deref() == Some(forbidden.as_str())), "{stamped:?}");

    // The reverse: a header naming the forbidden project, every span stamped
    // with checkout: no span uses the header.
    let env = [("BRAINTRUST_PARENT", forbidden.as_str()), ("LOGGATE_TEST_OTEL_STAMP", allowed.as_str())];
    let run = otel(Sdk::Python, "braintrust", &w.writer.raw, &w.gw.url, &env).await;
    let spans = assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
    assert!(spans.iter().all(|s| s.parent.as_deref() == Some(allowed.as_str())), "{spans:?}");
    assert_eq!(w.upstream.requests_to(PATH)[0].header("x-bt-parent"), Some(forbidden.as_str()));
}

// ---------------------------------------------------------------------------
// The plain OpenTelemetry exporters (Python) through loggate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plain_otlp_exporters_protobuf_and_json_plain_gzip_and_deflate() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    let parent = format!("project_id:{}", w.project);
    for (exporter, content_type) in [("otlp-proto", otlp::PROTOBUF), ("otlp-json", otlp::JSON)] {
        for compression in ["none", "gzip", "deflate"] {
            w.upstream.clear();
            let env = [
                ("LOGGATE_TEST_OTEL_HEADER_PARENT", parent.as_str()),
                ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression),
            ];
            let run = otel(Sdk::Python, exporter, &w.writer.raw, &w.gw.url, &env).await;
            assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
            let got = &w.upstream.requests_to(PATH)[0];
            assert_eq!(got.header("content-type"), Some(content_type), "{exporter} {compression}");
            let want_ce = (compression != "none").then_some(compression);
            assert_eq!(got.header("content-encoding"), want_ce, "{exporter} {compression}");
            assert_eq!(got.header("x-bt-parent"), Some(parent.as_str()));
        }
    }
    // Spans stamped with their own parent need no header.
    w.upstream.clear();
    let run = otel(Sdk::Python, "otlp-json", &w.writer.raw, &w.gw.url, &[("LOGGATE_TEST_OTEL_STAMP", &parent)]).await;
    let spans = assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
    assert!(spans.iter().all(|s| s.parent.as_deref() == Some(parent.as_str())));
    assert_eq!(w.upstream.requests_to(PATH)[0].header("x-bt-parent"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plain_otlp_exporter_without_a_parent_gets_400_once() {
    if !sdk::require_with(Sdk::Python, PY_OTEL) {
        return;
    }
    let w = World::start().await;
    for exporter in ["otlp-proto", "otlp-json"] {
        let run = otel(Sdk::Python, exporter, &w.writer.raw, &w.gw.url, &[]).await;
        assert_export_refused(&run, &w.upstream, "400");
    }
    assert_eq!(w.gw.metric(r#"loggate_requests_total{route="otel_traces",status="400"}"#).await, 2.0, "no retries");
    // A writer's token on a project it may not write: 403, not retried either.
    let forbidden = format!("project_id:{}", w.other_project);
    let run =
        otel(Sdk::Python, "otlp-proto", &w.writer.raw, &w.gw.url, &[("LOGGATE_TEST_OTEL_HEADER_PARENT", &forbidden)])
            .await;
    assert_export_refused(&run, &w.upstream, "403");
    assert_eq!(w.gw.metric(r#"loggate_requests_total{route="otel_traces",status="403"}"#).await, 1.0);
}

// ---------------------------------------------------------------------------
// JS @braintrust/otel through loggate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_braintrust_otel_exports_unchanged() {
    if !sdk::require_with(Sdk::Js, JS_OTEL) {
        return;
    }
    let w = World::start().await;
    let by_name = format!("project_name:{PROJECT_NAME}");
    let by_id = format!("project_id:{}", w.project);
    for (env, parent) in [
        ([("BRAINTRUST_PARENT", by_name.as_str())], &by_name),
        ([("LOGGATE_TEST_OTEL_PARENT_ARG", by_id.as_str())], &by_id),
    ] {
        w.upstream.clear();
        let run = otel(Sdk::Js, "", &w.writer.raw, &w.gw.url, &env).await;
        let spans = assert_exports_arrived_unchanged(&run, &w.upstream, &w.writer.raw);
        let got = &w.upstream.requests_to(PATH)[0];
        assert_eq!(got.header("x-bt-parent"), Some(parent.as_str()));
        assert_eq!(got.header("content-type"), Some(otlp::JSON));
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"checkout-request") && names.contains(&"price-lookup"), "{names:?}");
    }
    w.gw.assert_output_free_of(&w.secrets());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_braintrust_otel_create_only_token_gets_403_and_nothing_is_forwarded() {
    if !sdk::require_with(Sdk::Js, JS_OTEL) {
        return;
    }
    let w = World::start().await;
    let parent = format!("project_id:{}", w.project);
    let run = otel(Sdk::Js, "", &w.log_creator.raw, &w.gw.url, &[("BRAINTRUST_PARENT", &parent)]).await;
    assert_export_refused(&run, &w.upstream, "403");
    assert_eq!(w.gw.metric(r#"loggate_requests_total{route="otel_traces",status="403"}"#).await, 1.0);
}

// ---------------------------------------------------------------------------
// Python attachments through loggate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_attachment_in_a_logged_row_uploads_through_loggate() {
    if !sdk::require(Sdk::Python) {
        return;
    }
    let w = World::start().await;
    // The writer logs and uploads; it may not read, so the script's
    // read-back (GET /attachment) is refused and everything before it went
    // through.
    let run = attachment(&w.writer.raw, &w.gw.url, "log", &[]).await;
    trace(&run, &w.upstream);
    assert!(run.errors().contains("403"), "the writer's read-back should be 403; {}", run.describe());
    let key = run.report["reference"]["key"].as_str().expect("reference.key").to_owned();
    assert_eq!(run.report["upload_status"]["upload_status"], "done", "{}", run.describe());
    assert_eq!(w.upstream.uploaded(&key).as_deref(), Some(ATTACHMENT_CONTENT.as_bytes()));
    assert_eq!(w.upstream.attachment_status(&key).unwrap()["upload_status"], "done");
    let m = |route: &str, status: u16| format!(r#"loggate_requests_total{{route="{route}",status="{status}"}}"#);
    assert_eq!(w.gw.metric(&m("attachment", 200)).await, 1.0);
    assert_eq!(w.gw.metric(&m("attachment_status", 200)).await, 1.0);
    assert_eq!(w.gw.metric(&m("attachment_get", 403)).await, 1.0);

    // A token that may write and read does the whole round trip.
    let mut c = cast();
    let org = c.org.clone();
    let project = c.project.clone();
    let both = c.policy.service_token(&org, "ci-writer-reader");
    c.policy.grant_user(&both.user_id, "update", "project_log", &project);
    c.policy.grant_user(&both.user_id, "read", "project_log", &project);
    let w2 = World::builder_for(c).start().await;
    let run = attachment(&both.raw, &w2.gw.url, "log", &[]).await;
    assert_attachment_logged(&run, &w2.upstream, &w2);
    // metadata(), then .data asks for the metadata again before downloading.
    assert_eq!(w2.gw.metric(&m("attachment_get", 200)).await, 2.0);
    w2.gw.assert_output_free_of(&[both.raw.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_attachment_upload_by_a_create_only_token_is_403() {
    if !sdk::require(Sdk::Python) {
        return;
    }
    let w = World::start().await;
    let run = attachment(&w.log_creator.raw, &w.gw.url, "upload", &[]).await;
    trace(&run, &w.upstream);
    assert!(!run.success(), "{}", run.describe());
    assert!(run.errors().contains("403"), "the SDK should report the 403; {}", run.describe());
    assert!(w.upstream.requests_to("/attachment").is_empty(), "a denied /attachment was forwarded");
    assert!(w.upstream.requests_to("/attachment/status").is_empty(), "a denied status was forwarded");
    assert!(!w.upstream.requests().iter().any(|r| r.path.starts_with("/_upload/")), "something was uploaded");
    let m = |route: &str| format!(r#"loggate_requests_total{{route="{route}",status="403"}}"#);
    assert_eq!(w.gw.metric(&m("attachment")).await, 1.0);
    assert_eq!(w.gw.metric(&m("attachment_status")).await, 1.0, "the SDK reports the error status, refused too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_attachment_upload_to_another_organization_is_403() {
    if !sdk::require(Sdk::Python) {
        return;
    }
    let w = World::start().await;
    // Control: the writer, in its own organization, uploads.
    let run = attachment(&w.writer.raw, &w.gw.url, "upload", &[("BRAINTRUST_ORG_NAME", "acme")]).await;
    trace(&run, &w.upstream);
    assert_eq!(run.report["upload_status"]["upload_status"], "done", "{}", run.describe());
    let sent = w.upstream.requests_to("/attachment");
    assert_eq!(sent[0].json()["org_id"], w.org.as_str());
    w.upstream.clear();
    let m = |route: &str| format!(r#"loggate_requests_total{{route="{route}",status="403"}}"#);
    let mut before = Vec::new();
    for route in ["attachment", "attachment_status", "attachment_get"] {
        before.push(w.gw.metric(&m(route)).await);
    }

    // The SDK picks globex from the login answer and sends its id as org_id.
    let run = attachment(&w.writer.raw, &w.gw.url, "upload", &[("BRAINTRUST_ORG_NAME", "globex")]).await;
    trace(&run, &w.upstream);
    assert!(!run.success(), "{}", run.describe());
    assert!(run.errors().contains("403"), "the SDK should report the 403; {}", run.describe());
    let forwarded: Vec<String> = w.upstream.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(forwarded, ["POST /api/apikey/login"], "only the login may pass");
    // One refusal each: the upload, the error status the SDK then reports,
    // the metadata read.
    for (route, before) in ["attachment", "attachment_status", "attachment_get"].into_iter().zip(before) {
        assert_eq!(w.gw.metric(&m(route)).await, before + 1.0, "{route}");
    }
}
