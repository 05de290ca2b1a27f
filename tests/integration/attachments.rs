//! The attachment routes over raw HTTP (contract: OpenTelemetry traces and
//! attachments): `POST /attachment` and `POST /attachment/status` need
//! `update` on some project log, experiment or dataset of the caller's own
//! organization, `GET /attachment` needs `read` on some object of it;
//! `org_id` is the token's organization (empty or missing: the same),
//! another is 403; the data plane's answer (a signed URL) passes through.

use crate::support::http::{self, Resp};
use crate::support::policy::new_id;
use crate::support::world::World;
use serde_json::{Value, json};

fn upload_body(key: &str, org_id: Option<&str>) -> Value {
    let mut b = json!({"key": key, "filename": "receipt.txt", "content_type": "text/plain"});
    if let Some(o) = org_id {
        b["org_id"] = json!(o);
    }
    b
}

fn status_body(key: &str, org_id: Option<&str>, status: Value) -> Value {
    let mut b = json!({"key": key, "status": status});
    if let Some(o) = org_id {
        b["org_id"] = json!(o);
    }
    b
}

async fn get_attachment(w: &World, token: &str, query: &str) -> Resp {
    w.get(&format!("/attachment?{query}"), token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_uploads_and_reports_status_in_its_own_organization() {
    let w = World::start().await;
    for org_id in [Some(w.org.as_str()), Some(""), None] {
        let key = new_id();
        let body = upload_body(&key, org_id);
        let r = w.post_json("/attachment", &w.writer, &body).await;
        assert_eq!(r.status, 200, "org_id {org_id:?}: {}", r.text());
        // The data plane's signed URL, unchanged: it points at the object
        // store (here the fake), never at loggate.
        assert_eq!(
            r.json(),
            json!({"signedUrl": format!("{}/_upload/{key}", w.upstream.url), "headers": {"Content-Type": "text/plain"}})
        );
        let got = w.upstream.requests_to("/attachment").pop().unwrap();
        assert_eq!(got.body, body.to_string().as_bytes(), "the body is forwarded as received");
        assert_eq!(got.bearer(), Some(w.writer.raw.as_str()));

        for status in [
            json!({"upload_status": "done"}),
            json!({"upload_status": "error", "error_message": "object store said no"}),
        ] {
            let body = status_body(&key, org_id, status.clone());
            let r = w.post_json("/attachment/status", &w.writer, &body).await;
            assert_eq!(r.status, 200, "org_id {org_id:?} {status}: {}", r.text());
            assert_eq!(r.json(), json!({}));
            assert_eq!(w.upstream.attachment_status(&key), Some(status));
        }
    }
    // Every kind of writer passes: the experiment's, the dataset's only,
    // and org-level `update` (which reaches every project log).
    let mut c = crate::support::world::cast();
    let org = c.org.clone();
    let (exp, ds) = (c.experiment.clone(), c.dataset.clone());
    let exp_writer = c.policy.service_token(&org, "experiment-writer");
    c.policy.grant_user(&exp_writer.user_id, "update", "experiment", &exp);
    let ds_writer = c.policy.service_token(&org, "dataset-writer");
    c.policy.grant_user(&ds_writer.user_id, "update", "dataset", &ds);
    let w2 = World::builder_for(c).start().await;
    for token in [&exp_writer, &ds_writer, &w2.creator] {
        let r = w2.post_json("/attachment", token, &upload_body(&new_id(), Some(&w2.org))).await;
        assert_eq!(r.status, 200, "{}: {}", token.name, r.text());
        let body = status_body(&new_id(), None, json!({"upload_status": "done"}));
        let r = w2.post_json("/attachment/status", token, &body).await;
        assert_eq!(r.status, 200, "{}: {}", token.name, r.text());
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_is_403_on_every_attachment_route() {
    let w = World::start().await;
    let key = new_id();
    let foreign = Some(w.other_org.as_str());
    let r = w.post_json("/attachment", &w.writer, &upload_body(&key, foreign)).await;
    w.error(&r, 403, "permission_denied");
    let r = w
        .post_json("/attachment/status", &w.writer, &status_body(&key, foreign, json!({"upload_status": "done"})))
        .await;
    w.error(&r, 403, "permission_denied");
    let r = get_attachment(&w, &w.reader.raw, &format!("key={key}&org_id={}", w.other_org)).await;
    w.error(&r, 403, "permission_denied");
    // An organization nobody knows, too.
    let r = w.post_json("/attachment", &w.writer, &upload_body(&key, Some(&new_id()))).await;
    w.error(&r, 403, "permission_denied");
    // A globex token whose ACL (wrongly) names acme's project log may not
    // store blobs in acme.
    let r = w.post_json("/attachment", &w.outsider, &upload_body(&key, Some(&w.org))).await;
    w.error(&r, 403, "permission_denied");
    // org_id given twice in the query.
    let r = get_attachment(&w, &w.reader.raw, &format!("key={key}&org_id={}&org_id={}", w.org, w.other_org)).await;
    assert!(r.status == 400 || r.status == 403, "a second org_id must not be ignored: {} {}", r.status, r.text());
    for path in ["/attachment", "/attachment/status"] {
        assert_eq!(w.forwarded(path), 0, "{path} reached the data plane");
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_only_and_read_only_tokens_store_nothing() {
    let w = World::start().await;
    for token in [&w.log_creator, &w.project_creator, &w.reader, &w.nobody] {
        let key = new_id();
        let r = w.post_json("/attachment", token, &upload_body(&key, Some(&w.org))).await;
        let e = w.error(&r, 403, "permission_denied");
        assert_eq!(e["missing_permission"], "update", "{}: {e}", token.name);
        let r = w.post_json("/attachment", token, &upload_body(&key, None)).await;
        w.error(&r, 403, "permission_denied");
        let body = status_body(&key, Some(&w.org), json!({"upload_status": "done"}));
        let r = w.post_json("/attachment/status", token, &body).await;
        w.error(&r, 403, "permission_denied");
    }
    for (token, status) in [(w.unknown.as_str(), 401), (w.expired.raw.as_str(), 401)] {
        let r = w.post_json("/attachment", token, &upload_body(&new_id(), None)).await;
        w.error(&r, status, "unauthenticated");
        let r = get_attachment(&w, token, "key=k").await;
        w.error(&r, status, "unauthenticated");
    }
    for path in ["/attachment", "/attachment/status"] {
        assert_eq!(w.forwarded(path), 0, "{path} reached the data plane");
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_must_be_an_object_saying_done_or_error() {
    let w = World::start().await;
    let key = new_id();
    let org = Some(w.org.as_str());
    for bad in [
        json!("done"),
        json!(null),
        json!(["done"]),
        json!({}),
        json!({"upload_status": "uploading"}),
        json!({"upload_status": "DONE"}),
        json!({"upload_status": 1}),
    ] {
        let r = w.post_json("/attachment/status", &w.writer, &status_body(&key, org, bad.clone())).await;
        assert_eq!(r.status, 400, "status {bad}: {}", r.text());
        w.error(&r, 400, "bad_request");
    }
    let r = w.post_json("/attachment/status", &w.writer, &json!({"key": key, "org_id": w.org})).await;
    w.error(&r, 400, "bad_request");
    // key is required on both write routes.
    let r = w.post_json("/attachment", &w.writer, &json!({"filename": "a", "content_type": "text/plain"})).await;
    w.error(&r, 400, "bad_request");
    let r = w.post_json("/attachment/status", &w.writer, &json!({"status": {"upload_status": "done"}})).await;
    w.error(&r, 400, "bad_request");
    // Not JSON, not an object.
    for body in ["{\"key\":", "[]", "\"key\""] {
        for path in ["/attachment", "/attachment/status"] {
            let r = http::send(
                w.request(reqwest::Method::POST, path, &w.writer.raw)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            w.error(&r, 400, "bad_request");
        }
    }
    for path in ["/attachment", "/attachment/status"] {
        assert_eq!(w.forwarded(path), 0, "{path} reached the data plane");
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_needs_read_somewhere_in_the_organization() {
    let w = World::start().await;
    let key = new_id();
    for query in [
        format!("key={key}&org_id={}", w.org),
        format!("key={key}"),
        format!("key={key}&org_id="),
        format!("filename=receipt.txt&content_type=text%2Fplain&key={key}&org_id={}", w.org),
    ] {
        let r = get_attachment(&w, &w.reader.raw, &query).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"downloadUrl": format!("{}/_upload/{key}", w.upstream.url), "status": {"upload_status": "uploading"}}),
            "the data plane's answer, unchanged"
        );
        let got = w.upstream.requests_to("/attachment").pop().unwrap();
        assert_eq!(got.query.as_deref(), Some(query.as_str()), "the query is forwarded as received");
    }
    // `update` alone is not `read`; create-only and no grant neither.
    for token in [&w.writer, &w.log_creator, &w.nobody] {
        let r = get_attachment(&w, &token.raw, &format!("key={key}&org_id={}", w.org)).await;
        let e = w.error(&r, 403, "permission_denied");
        assert_eq!(e["missing_permission"], "read", "{}: {e}", token.name);
    }
    assert_eq!(w.forwarded("/attachment"), 4);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_requests_are_counted_under_their_own_routes() {
    let w = World::start().await;
    let key = new_id();
    assert_eq!(w.post_json("/attachment", &w.writer, &upload_body(&key, None)).await.status, 200);
    let done = status_body(&key, None, json!({"upload_status": "done"}));
    assert_eq!(w.post_json("/attachment/status", &w.writer, &done).await.status, 200);
    assert_eq!(get_attachment(&w, &w.reader.raw, &format!("key={key}")).await.status, 200);
    w.error(&w.post_json("/attachment", &w.log_creator, &upload_body(&key, None)).await, 403, "permission_denied");
    w.error(&get_attachment(&w, &w.writer.raw, &format!("key={key}")).await, 403, "permission_denied");

    let text = w.gw.metrics().await;
    let m = |s: &str| crate::support::gateway::metric_value(&text, s);
    assert_eq!(m(r#"loggate_requests_total{route="attachment",status="200"}"#), 1.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="attachment",status="403"}"#), 1.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="attachment_status",status="200"}"#), 1.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="attachment_get",status="200"}"#), 1.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="attachment_get",status="403"}"#), 1.0, "{text}");
    assert!(!text.contains("bt-st-"), "token text in /metrics");
}
