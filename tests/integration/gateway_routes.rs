//! Every route of contract: Routes and every error code of §5, over real HTTP
//! against the real binary and a recording fake data plane. Each test is a
//! short story; most end by checking that the gateway still serves a good
//! request and never printed a token.

use crate::support::http::{self, assert_error_body, raw_exchange, raw_request};
use crate::support::policy::new_id;
use crate::support::upstream::Fault;
use crate::support::wait;
use crate::support::world::{
    DATASET_NAME, EXPERIMENT_NAME, ORG_NAME, PROJECT_NAME, World, dataset_row, experiment_row, log_row,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write;
use std::time::{Duration, Instant};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn logs3_body(rows: Vec<Value>) -> Vec<u8> {
    json!({"rows": rows, "api_version": 2}).to_string().into_bytes()
}

// ---- /logs3 -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_rows_reach_the_data_plane_byte_for_byte_with_their_headers() {
    let w = World::start().await;
    // Odd spacing and key order: a re-serializing gateway would change them.
    let body = format!(
        "{{ \"api_version\" : 2,\n \"rows\" : [ {{\"log_id\":\"g\", \"project_id\":\"{p}\", \"id\":\"r1\", \"input\": {{\"b\":1,\"a\":[1.50, 2e3]}} }} ] }}",
        p = w.project
    );
    let r = http::send(
        w.request(reqwest::Method::POST, "/logs3", &w.writer.raw)
            .header("content-type", "application/json; charset=utf-8")
            .header("x-bt-parent", "kept-as-is")
            .body(body.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-request-id").is_some(), "every answer carries x-request-id");
    let got = w.upstream.requests_to("/logs3");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body.as_bytes(), "body changed on the way");
    assert_eq!(got[0].header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(got[0].header("x-bt-parent"), Some("kept-as-is"));
    assert_eq!(got[0].bearer(), Some(w.writer.raw.as_str()), "passthrough credentials");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stop_at_the_gateway() {
    let w = World::start().await;
    let body = logs3_body(vec![log_row(&w.project)]);
    let auth = format!("Authorization: Bearer {}", w.writer.raw);
    let len = format!("Content-Length: {}", body.len());
    let req = raw_request(
        "POST",
        "/logs3",
        &[
            auth.as_bytes(),
            b"Content-Type: application/json",
            b"Connection: close, x-hop-secret",
            b"X-Hop-Secret: do-not-forward",
            b"Keep-Alive: timeout=5",
            b"Proxy-Authorization: Basic Zm9vOmJhcg==",
            b"TE: trailers",
            b"X-End-To-End: forward-me",
            len.as_bytes(),
        ],
        &body,
    );
    let out = raw_exchange(w.gw.addr, &req, Duration::from_secs(10)).await;
    assert_eq!(out.status(), 200, "{out:?}");
    let got = &w.upstream.requests_to("/logs3")[0];
    assert_eq!(got.header("x-end-to-end"), Some("forward-me"));
    for hop in ["x-hop-secret", "keep-alive", "proxy-authorization", "te"] {
        assert!(got.header(hop).is_none(), "{hop} was forwarded");
    }
    assert_ne!(got.header("connection"), Some("close, x-hop-secret"));
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_denied_row_refuses_the_whole_batch_and_forwards_nothing() {
    let w = World::start().await;
    let rows = vec![log_row(&w.project), log_row(&w.project), log_row(&w.other_project), log_row(&w.project)];
    let r = w.logs3(&w.writer, rows).await;
    let e = w.error(&r, 403, "permission_denied");
    assert_eq!(e["missing_permission"], "update");
    assert_eq!(e["object_type"], "project_log");
    assert_eq!(e["object_id"], w.other_project.as_str());
    assert!(e["message"].as_str().unwrap().contains("update"), "{e}");
    assert_eq!(w.forwarded("/logs3"), 0, "a partially denied batch reached the data plane");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_rows_need_delete_not_just_update() {
    let w = World::start().await;
    let mut row = log_row(&w.project);
    row["_object_delete"] = json!(true);
    let r = w.logs3(&w.writer, vec![row.clone()]).await;
    let e = w.error(&r, 403, "permission_denied");
    assert_eq!(e["missing_permission"], "delete");
    assert_eq!(w.forwarded("/logs3"), 0);

    let r = w.logs3(&w.deleter, vec![row.clone(), log_row(&w.project)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(w.upstream.logs3_rows().iter().any(|r| r["id"] == row["id"] && r["_object_delete"] == true));
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_and_dataset_rows_are_authorized_on_their_own_objects() {
    let w = World::start().await;
    let r = w.logs3(&w.writer, vec![experiment_row(&w.experiment), dataset_row(&w.dataset), log_row(&w.project)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.upstream.logs3_rows().len(), 3);

    let r = w.logs3(&w.reader, vec![experiment_row(&w.experiment)]).await;
    let e = w.error(&r, 403, "permission_denied");
    assert_eq!((e["object_type"].as_str(), e["object_id"].as_str()), (Some("experiment"), Some(w.experiment.as_str())));
    let r = w.logs3(&w.project_creator, vec![dataset_row(&w.dataset)]).await;
    let e = w.error(&r, 403, "permission_denied");
    assert_eq!(e["object_type"], "dataset");
    assert_eq!(w.forwarded("/logs3"), 1);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_reaches_another_organization_whatever_the_acls_say() {
    let w = World::start().await;
    // The globex token has an ACL on acme's project log, and is still refused.
    let r = w.logs3(&w.outsider, vec![log_row(&w.project)]).await;
    w.error(&r, 403, "permission_denied");
    assert_eq!(w.forwarded("/logs3"), 0);
    // In its own organization it works.
    let r = w.logs3(&w.outsider, vec![log_row(&w.foreign_project)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // And acme's writer cannot reach globex.
    let r = w.logs3(&w.writer, vec![log_row(&w.foreign_project)]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(w.forwarded("/logs3"), 1);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_policy_does_not_know_is_403_unknown_object() {
    let w = World::start().await;
    let ghost = new_id();
    let r = w.logs3(&w.writer, vec![log_row(&ghost)]).await;
    let e = w.error(&r, 403, "unknown_object");
    assert_eq!(e["object_id"], ghost.as_str());
    let r = w.logs3(&w.writer, vec![experiment_row(&new_id())]).await;
    w.error(&r, 403, "unknown_object");
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_without_exactly_one_well_typed_target_are_400_naming_the_field() {
    let w = World::start().await;
    let p = &w.project;
    let cases: Vec<(&str, String, &str)> = vec![
        ("no target", r#"{"rows":[{"id":"a","input":1}]}"#.to_string(), "rows[0]"),
        (
            "second row has no target",
            format!(r#"{{"rows":[{{"project_id":"{p}","log_id":"g"}},{{"id":"b"}}]}}"#),
            "rows[1]",
        ),
        (
            "two targets",
            format!(r#"{{"rows":[{{"project_id":"{p}","log_id":"g","experiment_id":"{}"}}]}}"#, w.experiment),
            "rows[0]",
        ),
        (
            "duplicate project_id",
            format!(r#"{{"rows":[{{"project_id":"{p}","log_id":"g","project_id":"{}"}}]}}"#, w.other_project),
            "rows[0].project_id",
        ),
        (
            "duplicate _object_delete",
            format!(r#"{{"rows":[{{"project_id":"{p}","log_id":"g","_object_delete":false,"_object_delete":true}}]}}"#),
            "rows[0]._object_delete",
        ),
        (
            "string _object_delete",
            format!(r#"{{"rows":[{{"project_id":"{p}","log_id":"g","_object_delete":"true"}}]}}"#),
            "rows[0]._object_delete",
        ),
        ("numeric project_id", r#"{"rows":[{"project_id":5,"log_id":"g"}]}"#.to_string(), "rows[0].project_id"),
        ("rows not an array", r#"{"rows":"nope"}"#.to_string(), "rows"),
        ("no rows", r#"{"api_version":2}"#.to_string(), "rows"),
    ];
    for (story, body, field) in cases {
        let r = http::send(
            w.request(reqwest::Method::POST, "/logs3", &w.deleter.raw)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        let e = w.error(&r, 400, "bad_request");
        assert_eq!(e["field"], field, "{story}: {e}");
    }
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_bad_utf8_and_deep_nesting_are_400() {
    let w = World::start().await;
    let post = |body: Vec<u8>| {
        http::send(
            w.request(reqwest::Method::POST, "/logs3", &w.writer.raw)
                .header("content-type", "application/json")
                .body(body),
        )
    };
    for bad in [&b"{\"rows\":["[..], b"", b"not json", b"{\"rows\":[]} trailing", b"{\"rows\":[],}"] {
        let r = post(bad.to_vec()).await;
        w.error(&r, 400, "bad_request");
    }
    // Invalid UTF-8 inside a string no inspector reads.
    let mut body = format!(r#"{{"rows":[{{"project_id":"{}","log_id":"g","input":""#, w.project).into_bytes();
    body.extend_from_slice(&[0xff, 0xfe, b'x']);
    body.extend_from_slice(b"\"}]}");
    w.error(&post(body).await, 400, "bad_request");

    // Depth counts every open array/object: {rows:[{input: nested}]} is 3 + n.
    let deep = |total: usize| {
        let n = total - 3;
        let mut row = log_row(&w.project);
        row["input"] = json!("X");
        let s = row.to_string().replace("\"X\"", &format!("{}{}", "[".repeat(n), "]".repeat(n)));
        format!("{{\"rows\":[{s}]}}").into_bytes()
    };
    assert_eq!(post(deep(64)).await.status, 200, "depth 64 must pass");
    assert_eq!(post(deep(128)).await.status, 200, "depth 128 must pass");
    let r = post(deep(129)).await;
    w.error(&r, 400, "bad_request");
    // Deep nesting in a member nobody inspects is still refused.
    let sneaky = format!("{{\"meta\":{}{},\"rows\":[]}}", "{\"a\":".repeat(140), "1".to_string() + &"}".repeat(140));
    w.error(&post(sneaky.into_bytes()).await, 400, "bad_request");
    assert_eq!(w.forwarded("/logs3"), 2);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_must_be_json_or_absent() {
    let w = World::start().await;
    let body = || logs3_body(vec![log_row(&w.project)]);
    for ct in
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"]
    {
        let r = http::send(
            w.request(reqwest::Method::POST, "/logs3", &w.writer.raw).header("content-type", ct).body(body()),
        )
        .await;
        w.error(&r, 415, "unsupported_media_type");
    }
    assert_eq!(w.forwarded("/logs3"), 0);
    // The Python SDK sends /logs3 without a Content-Type.
    let r = http::send(w.request(reqwest::Method::POST, "/logs3", &w.writer.raw).body(body())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &w.upstream.requests_to("/logs3")[0];
    assert!(got.header("content-type").is_none(), "the gateway invented a Content-Type");
    let r = http::send(
        w.request(reqwest::Method::POST, "/logs3", &w.writer.raw)
            .header("content-type", "Application/JSON; charset=UTF-8")
            .body(body()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_inspected_and_forwarded_still_compressed() {
    let w = World::start().await;
    let gz = gzip(&logs3_body(vec![log_row(&w.project), experiment_row(&w.experiment)]));
    let send = |body: Vec<u8>, enc: &'static str| {
        http::send(
            w.request(reqwest::Method::POST, "/logs3", &w.writer.raw)
                .header("content-type", "application/json")
                .header("content-encoding", enc)
                .body(body),
        )
    };
    let r = send(gz.clone(), "gzip").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = &w.upstream.requests_to("/logs3")[0];
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    assert_eq!(got.body, gz, "the gzip body must be forwarded as received");

    // Inspection really looks inside: a denied row in a gzip body is refused.
    let r = send(gzip(&logs3_body(vec![log_row(&w.other_project)])), "gzip").await;
    w.error(&r, 403, "permission_denied");
    // A body that is not what its encoding says.
    w.error(&send(b"{\"rows\":[]}".to_vec(), "gzip").await, 400, "bad_request");
    // Other encodings are refused.
    for enc in ["br", "deflate", "zstd", "gzip, gzip"] {
        let r = send(gz.clone(), enc).await;
        w.error(&r, 415, "unsupported_media_type");
    }
    assert_eq!(w.forwarded("/logs3"), 1);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversize_body_is_413_before_it_is_sent() {
    let w = World::start_with(|b| b.max_body_bytes(1024 * 1024)).await;
    let auth = format!("Authorization: Bearer {}", w.writer.raw);
    // Headers only: the body is never sent, so the answer must not wait for it.
    let req = raw_request(
        "POST",
        "/logs3",
        &[auth.as_bytes(), b"Content-Type: application/json", b"Content-Length: 50000000"],
        b"",
    );
    let out = raw_exchange(w.gw.addr, &req, Duration::from_secs(5)).await;
    let resp = out.response();
    assert_error_body(resp.status, &resp.body, 413, "payload_too_large", &w.secrets());
    assert!(resp.after < Duration::from_secs(3), "413 took {:?}", resp.after);
    // Also without credentials: the size check comes first (contract: Request flow).
    let req = raw_request("POST", "/logs3", &[b"Content-Length: 50000000"], b"");
    assert_eq!(raw_exchange(w.gw.addr, &req, Duration::from_secs(5)).await.status(), 413);
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_413() {
    use tokio::io::AsyncWriteExt;
    let limit = 1024 * 1024;
    let w = World::start_with(|b| b.max_body_bytes(limit)).await;
    let stream = tokio::net::TcpStream::connect(w.gw.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /logs3 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        w.writer.raw
    );
    let project = w.project.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let start = format!(r#"{{"rows":[{{"project_id":"{project}","log_id":"g","input":""#);
        wr.write_all(format!("{:x}\r\n{start}\r\n", start.len()).as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(2 * limit as usize / chunk.len()) {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
        }
        wr.write_all(b"5\r\n\"}]}\n\r\n0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut buf = Vec::new();
    let started = Instant::now();
    let mut chunk = [0u8; 8192];
    use tokio::io::AsyncReadExt;
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") || !buf.ends_with(b"}}") {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = writer.await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "want 413 after {:?}, got: {text}", started.elapsed());
    let body = &buf[buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert_error_body(413, body, 413, "payload_too_large", &w.secrets());
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

// ---- overflow (§6) ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_is_never_advertised_and_never_accepted() {
    let w = World::start().await;
    w.upstream.set_payload_max_bytes(Some(1024));
    let r = w.get("/version", &w.writer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["version"], "fake-upstream-1");
    assert!(v.get("logs3_payload_max_bytes").is_none(), "overflow advertised: {v}");
    w.error(&http::send(w.http.get(w.url("/version"))).await, 401, "unauthenticated");

    let overflow_request = json!({
        "content_type": "application/json", "size_bytes": 100,
        "rows": [{"object_ids": {"project_id": w.project, "log_id": "g"}, "is_delete": false, "input_row": {"byte_size": 100}}],
    });
    let r = w.post_json("/logs3/overflow", &w.writer, &overflow_request).await;
    w.error(&r, 403, "permission_denied");
    assert_eq!(w.forwarded("/logs3/overflow"), 0);

    for reference in [
        json!({"rows": {"type": "logs3_overflow", "key": "k1", "size_bytes": 100}, "api_version": 2}),
        json!({"rows": {"type": "logs3_overflow", "key": "k1"}}),
    ] {
        let r = w.post_json("/logs3", &w.writer, &reference).await;
        w.error(&r, 403, "permission_denied");
    }
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

// ---- /v1 object routes -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_logs_insert_and_feedback() {
    let w = World::start().await;
    let path = format!("/v1/project_logs/{}/insert", w.project);
    let event = || json!({"id": new_id(), "input": "q", "output": "a"});
    let r = w.post_json(&path, &w.writer, &json!({"events": [event(), event()]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["row_ids"].as_array().unwrap().len(), 2);

    let delete = json!({"events": [{"id": "old", "_object_delete": true}]});
    let e = w.error(&w.post_json(&path, &w.writer, &delete).await, 403, "permission_denied");
    assert_eq!(e["missing_permission"], "delete");
    assert_eq!(w.post_json(&path, &w.deleter, &delete).await.status, 200);

    // An event naming another project than the route's is refused outright.
    let sneaky = json!({"events": [{"id": "x", "project_id": w.other_project, "log_id": "g"}]});
    let e = w.error(&w.post_json(&path, &w.writer, &sneaky).await, 400, "bad_request");
    assert_eq!(e["field"], "events[0].project_id");
    let other = format!("/v1/project_logs/{}/insert", w.other_project);
    w.error(&w.post_json(&other, &w.writer, &json!({"events": [event()]})).await, 403, "permission_denied");

    let feedback = format!("/v1/project_logs/{}/feedback", w.project);
    let fb = json!({"feedback": [{"id": "r1", "scores": {"good": 1}, "comment": "nice"}]});
    assert_eq!(w.post_json(&feedback, &w.writer, &fb).await.status, 200);
    w.error(&w.post_json(&feedback, &w.reader, &fb).await, 403, "permission_denied");
    assert_eq!(w.forwarded(&path), 2);
    assert_eq!(w.forwarded(&feedback), 1);
    assert_eq!(w.forwarded(&other), 0);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_and_dataset_insert_and_feedback() {
    let w = World::start().await;
    for (kind, id) in [("experiment", &w.experiment), ("dataset", &w.dataset)] {
        let insert = format!("/v1/{kind}/{id}/insert");
        let body = json!({"events": [{"id": new_id(), "input": 1, "expected": 2}]});
        assert_eq!(w.post_json(&insert, &w.writer, &body).await.status, 200, "{kind}");
        let e = w.error(&w.post_json(&insert, &w.nobody, &body).await, 403, "permission_denied");
        assert_eq!(e["object_type"], kind);
        let feedback = format!("/v1/{kind}/{id}/feedback");
        let fb = json!({"feedback": [{"id": "r", "scores": {"s": 0.5}}]});
        assert_eq!(w.post_json(&feedback, &w.writer, &fb).await.status, 200, "{kind} feedback");
        w.error(&w.post_json(&feedback, &w.reader, &fb).await, 403, "permission_denied");
        assert_eq!(w.forwarded(&insert), 1);
        assert_eq!(w.forwarded(&feedback), 1);
    }
    let ghost = format!("/v1/experiment/{}/insert", new_id());
    w.error(&w.post_json(&ghost, &w.writer, &json!({"events": [{"id": "x"}]})).await, 403, "unknown_object");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_object_insert_is_all_or_nothing() {
    let w = World::start().await;
    let ev = || json!({"events": [{"id": new_id(), "input": "i"}]});
    let mut body = json!({
        "experiment": {w.experiment.clone(): ev()},
        "dataset": {w.dataset.clone(): ev()},
        "project_logs": {w.project.clone(): ev()},
    });
    let r = w.post_json("/v1/insert", &w.writer, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.forwarded("/v1/insert"), 1);

    body["project_logs"][w.other_project.clone()] = ev();
    let e = w.error(&w.post_json("/v1/insert", &w.writer, &body).await, 403, "permission_denied");
    assert_eq!(e["object_id"], w.other_project.as_str());
    let e = w.error(&w.post_json("/v1/insert", &w.writer, &json!({"prompt": {}})).await, 400, "bad_request");
    assert_eq!(e["field"], "prompt");
    assert_eq!(w.forwarded("/v1/insert"), 1, "nothing of the denied request may be forwarded");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_needs_read() {
    let w = World::start().await;
    for (kind, id) in [("project_logs", &w.project), ("experiment", &w.experiment), ("dataset", &w.dataset)] {
        let path = format!("/v1/{kind}/{id}/fetch");
        assert_eq!(w.get(&format!("{path}?limit=10"), &w.reader).await.status, 200, "GET {kind}");
        assert_eq!(w.post_json(&path, &w.reader, &json!({"limit": 10})).await.status, 200, "POST {kind}");
        let e = w.error(&w.get(&path, &w.writer).await, 403, "permission_denied");
        assert_eq!(e["missing_permission"], "read");
        w.error(&w.post_json(&path, &w.writer, &json!({})).await, 403, "permission_denied");
        assert_eq!(w.forwarded(&path), 2, "{kind}");
    }
    let q = &w.upstream.requests_to(&format!("/v1/project_logs/{}/fetch", w.project))[0];
    assert_eq!(q.query.as_deref(), Some("limit=10"), "query string forwarded");
    w.still_serves().await;
}

// ---- login, version ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_point_sdks_back_at_the_gateway() {
    let w = World::start().await;
    // The JS SDK sends an empty body with a JSON Content-Type.
    let r = http::send(
        w.request(reqwest::Method::POST, "/api/apikey/login", &w.writer.raw).header("content-type", "application/json"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let orgs = r.json()["org_info"].as_array().unwrap().clone();
    assert!(!orgs.is_empty());
    for org in &orgs {
        assert_eq!(org["api_url"], w.gw.public_url.as_str(), "{org}");
        assert_eq!(org["proxy_url"], w.gw.public_url.as_str(), "{org}");
    }
    assert!(!r.text().contains(&w.upstream.url), "the data plane's URL leaked: {}", r.text());
    assert_eq!(w.forwarded("/api/apikey/login"), 1);
    w.error(&http::send(w.http.post(w.url("/api/apikey/login"))).await, 401, "unauthenticated");
    w.error(
        &http::send(w.request(reqwest::Method::POST, "/api/apikey/login", &w.unknown)).await,
        401,
        "unauthenticated",
    );
    assert_eq!(w.forwarded("/api/apikey/login"), 1);
    w.still_serves().await;
}

// ---- lookup-or-create ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_project_lookup_or_create_and_discovery() {
    let w = World::start().await;
    let existing = json!({"name": PROJECT_NAME, "org_name": ORG_NAME});
    let r = w.post_json("/v1/project", &w.writer, &existing).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], w.project.as_str());
    // `read` on the project log is "any permission" too.
    assert_eq!(w.post_json("/v1/project", &w.reader, &existing).await.status, 200);
    w.error(&w.post_json("/v1/project", &w.nobody, &existing).await, 403, "permission_denied");

    let fresh = json!({"name": "brand-new", "org_name": ORG_NAME});
    let e = w.error(&w.post_json("/v1/project", &w.writer, &fresh).await, 403, "permission_denied");
    assert_eq!((e["missing_permission"].as_str(), e["object_type"].as_str()), (Some("create"), Some("organization")));
    assert!(w.upstream.created_projects().is_empty(), "a denied create reached the data plane");
    let other_org = json!({"name": PROJECT_NAME, "org_name": "globex"});
    w.error(&w.post_json("/v1/project", &w.writer, &other_org).await, 403, "permission_denied");
    w.error(&w.post_json("/v1/project", &w.creator, &other_org).await, 403, "permission_denied");
    assert_eq!(w.forwarded("/v1/project"), 2);

    // Unknown rows are refused until the project exists...
    let r = w.post_json("/v1/project", &w.creator, &fresh).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new_id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(w.upstream.created_projects()[0].1, new_id);
    // ...then the gateway knows it, and org-level `update` covers its log.
    let r = w.logs3(&w.creator, vec![log_row(&new_id)]).await;
    assert_eq!(r.status, 200, "a discovered project's rows are authorized by org-level update: {}", r.text());
    // A token of the same org without a grant is still refused there.
    w.error(&w.logs3(&w.writer, vec![log_row(&new_id)]).await, 403, "permission_denied");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_project_register_lookup_or_create_and_discovery() {
    let w = World::start().await;
    let path = "/api/project/register";
    let existing = json!({"project_name": PROJECT_NAME, "org_id": w.org});
    let r = w.post_json(path, &w.writer, &existing).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["project"]["id"], w.project.as_str());
    w.error(&w.post_json(path, &w.nobody, &existing).await, 403, "permission_denied");
    let fresh = json!({"project_name": "js-new", "org_id": w.org});
    w.error(&w.post_json(path, &w.writer, &fresh).await, 403, "permission_denied");
    let foreign = json!({"project_name": PROJECT_NAME, "org_id": w.other_org});
    w.error(&w.post_json(path, &w.creator, &foreign).await, 403, "permission_denied");
    assert_eq!(w.forwarded(path), 1);

    // A row for a project nobody has created yet is unknown...
    let r = w.post_json(path, &w.creator, &fresh).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["project"]["id"].as_str().unwrap().to_owned();
    let r = w.logs3(&w.creator, vec![log_row(&id), log_row(&id)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Lookup by id of the discovered project works for the creator.
    assert_eq!(w.get(&format!("/v1/project/{id}"), &w.creator).await.status, 200);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_lookup_by_id_needs_any_permission() {
    let w = World::start().await;
    let v1 = format!("/v1/project/{}", w.project);
    let r = w.get(&v1, &w.writer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], PROJECT_NAME);
    assert_eq!(w.get(&v1, &w.reader).await.status, 200);
    w.error(&w.get(&v1, &w.nobody).await, 403, "permission_denied");
    w.error(&w.get(&v1, &w.outsider).await, 403, "permission_denied");
    w.error(&w.get(&format!("/v1/project/{}", new_id()), &w.writer).await, 403, "unknown_object");

    let api = format!("/api/project?id={}", w.project);
    let r = w.get(&api, &w.writer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["project"]["id"], w.project.as_str());
    w.error(&w.get(&api, &w.nobody).await, 403, "permission_denied");
    let e = w.error(&w.get("/api/project", &w.writer).await, 400, "bad_request");
    assert_eq!(e["field"], "id");
    assert_eq!(w.forwarded(&v1), 2);
    assert_eq!(w.forwarded("/api/project"), 1);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_and_dataset_register_existing_needs_update_new_needs_create() {
    let w = World::start().await;
    for (kind, name_field, existing_name) in
        [("experiment", "experiment_name", EXPERIMENT_NAME), ("dataset", "dataset_name", DATASET_NAME)]
    {
        let path = format!("/api/{kind}/register");
        let existing = json!({"project_id": w.project, name_field: existing_name});
        assert_eq!(w.post_json(&path, &w.writer, &existing).await.status, 200, "{kind} existing, writer");
        let e = w.error(&w.post_json(&path, &w.reader, &existing).await, 403, "permission_denied");
        assert_eq!((e["missing_permission"].as_str(), e["object_type"].as_str()), (Some("update"), Some(kind)));

        let fresh = json!({"project_id": w.project, name_field: "run-42"});
        let e = w.error(&w.post_json(&path, &w.writer, &fresh).await, 403, "permission_denied");
        assert_eq!((e["missing_permission"].as_str(), e["object_type"].as_str()), (Some("create"), Some("project")));
        let r = w.post_json(&path, &w.project_creator, &fresh).await;
        assert_eq!(r.status, 200, "{kind} new, creator: {}", r.text());
        assert_eq!(r.json()[kind]["name"], "run-42");
        // By project name, too.
        let by_name = json!({"project_name": PROJECT_NAME, name_field: existing_name});
        assert_eq!(w.post_json(&path, &w.writer, &by_name).await.status, 200, "{kind} by project name");
        let foreign = json!({"project_id": w.foreign_project, name_field: "x"});
        w.error(&w.post_json(&path, &w.writer, &foreign).await, 403, "permission_denied");
        assert_eq!(w.forwarded(&path), 3, "{kind}");
    }
    w.still_serves().await;
}

// ---- routing -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let w = World::start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/v1/acl"),
        (reqwest::Method::POST, "/v1/prompt/x/insert"),
        (reqwest::Method::GET, "/metrics"),
        (reqwest::Method::GET, "/healthz"),
        (reqwest::Method::POST, "/btql"),
        (reqwest::Method::GET, "/"),
    ] {
        let r = http::send(w.request(method.clone(), path, &w.writer.raw)).await;
        w.error(&r, 404, "route_not_allowed");
    }
    for (method, path) in [
        (reqwest::Method::GET, "/logs3"),
        (reqwest::Method::PUT, "/logs3"),
        (reqwest::Method::DELETE, &*format!("/v1/project/{}", w.project)),
        (reqwest::Method::POST, "/version"),
        (reqwest::Method::GET, &*format!("/v1/experiment/{}/insert", w.experiment)),
    ] {
        let r = http::send(w.request(method.clone(), path, &w.writer.raw)).await;
        w.error(&r, 405, "method_not_allowed");
    }
    assert!(w.upstream.requests().is_empty(), "{:?}", w.upstream.requests());
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_prefixes_are_authenticated_and_forwarded_as_is() {
    let w = World::start_with(|b| b.passthrough_prefixes(&["/v1/function", "/api/extra/"])).await;
    let r = http::send(w.request(reqwest::Method::POST, "/v1/function/abc/invoke?x=1", &w.nobody.raw).body("raw text"))
        .await;
    // The fake does not know the path: its own 404 comes back unchanged.
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not found: /v1/function/abc/invoke");
    let got = &w.upstream.requests_to("/v1/function/abc/invoke")[0];
    assert_eq!(got.body, "raw text");
    assert_eq!(got.query.as_deref(), Some("x=1"));
    assert_eq!(w.get("/api/extra/thing", &w.writer).await.status, 404);
    assert_eq!(w.forwarded("/api/extra/thing"), 1);
    w.error(&http::send(w.http.get(w.url("/v1/function/abc"))).await, 401, "unauthenticated");
    assert_eq!(w.forwarded("/v1/function/abc"), 0);
    // Not covered by a prefix: still 404 route_not_allowed.
    w.error(&w.get("/v1/prompt", &w.writer).await, 404, "route_not_allowed");
    w.still_serves().await;
}

// ---- upstream failures ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_http_errors_are_passed_back_unchanged() {
    let w = World::start().await;
    for (status, body) in [(500, r#"{"error":"boom","detail":[1,2]}"#), (503, "not json at all"), (429, r#"{"e":1}"#)] {
        w.upstream.set_fault_times("/logs3", Fault::Status(status, body.into()), 1);
        let r = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
        assert_eq!(r.status, status);
        assert_eq!(r.text(), body);
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_data_plane_is_502_upstream_unavailable() {
    let w = World::start().await;
    w.upstream.set_fault_times("/logs3", Fault::Reset, 1);
    let r = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    w.error(&r, 502, "upstream_unavailable");
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_slower_than_the_timeout_is_504() {
    let w = World::start_with(|b| b.upstream_timeout("1s")).await;
    w.upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_secs(4)), 1);
    let started = Instant::now();
    let r = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    w.error(&r, 504, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "504 took {:?}", started.elapsed());
    w.still_serves().await;
}

// ---- authentication ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_401_json_and_never_echoed() {
    let w = World::start().await;
    let body = || logs3_body(vec![log_row(&w.project)]);
    let sk_key = format!("sk-{}", &w.unknown["bt-st-".len()..]);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("expired", Some(format!("Bearer {}", w.expired.raw))),
        ("unknown", Some(format!("Bearer {}", w.unknown))),
        ("sk- key (off by default)", Some(format!("Bearer {sk_key}"))),
        ("Basic", Some(format!("Basic {}", w.writer.raw))),
        ("no scheme", Some(w.writer.raw.clone())),
        ("lowercase bearer, unknown token", Some(format!("bearer {}", w.unknown))),
        ("garbage", Some("garbage".into())),
        ("bare Bearer", Some("Bearer ".into())),
        ("short token", Some("Bearer bt-st-short".into())),
        ("bad characters", Some(format!("Bearer {}!!", w.unknown))),
        ("token plus junk", Some(format!("Bearer {} extra", w.writer.raw))),
        ("other prefix", Some(format!("Bearer xx-{}", &w.writer.raw[3..]))),
    ];
    for (story, auth) in cases {
        let mut req = w.http.post(w.url("/logs3")).header("content-type", "application/json").body(body());
        if let Some(a) = &auth {
            req = req.header("authorization", a);
        }
        let r = http::send(req).await;
        w.error(&r, 401, "unauthenticated");
        if let Some(a) = auth.as_ref().filter(|a| a.len() > 20) {
            assert!(!r.text().contains(a.trim()), "{story}: header echoed");
        }
    }
    // Two Authorization headers, even two good ones, are 401.
    let b = body();
    let one = format!("Authorization: Bearer {}", w.writer.raw);
    let len = format!("Content-Length: {}", b.len());
    let req = raw_request(
        "POST",
        "/logs3",
        &[one.as_bytes(), one.as_bytes(), b"Content-Type: application/json", len.as_bytes()],
        &b,
    );
    let resp = raw_exchange(w.gw.addr, &req, Duration::from_secs(5)).await;
    let resp = resp.response();
    assert_error_body(resp.status, &resp.body, 401, "unauthenticated", &w.secrets());
    assert_eq!(w.forwarded("/logs3"), 0);
    w.still_serves().await;
}

/// RFC 9110 §11.1: the authentication scheme is case-insensitive, so a valid
/// token after `bearer` is accepted (a contract choice worth knowing: some
/// HTTP clients lower-case the scheme).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let w = World::start().await;
    let r = http::send(
        w.http
            .post(w.url("/logs3"))
            .header("authorization", format!("bearer {}", w.writer.raw))
            .body(logs3_body(vec![log_row(&w.project)])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sk_keys_are_off_by_default_and_unknown_ones_stay_401_when_on() {
    let w = World::start_with(|b| b.extra_toml("[auth]\naccept_api_keys = true")).await;
    let sk_key = format!("sk-{}", &w.unknown["bt-st-".len()..]);
    let r = http::send(w.request(reqwest::Method::POST, "/logs3", &sk_key).body(logs3_body(vec![log_row(&w.project)])))
        .await;
    let e = w.error(&r, 401, "unauthenticated");
    assert!(!e.to_string().contains(&sk_key));
    assert!(!w.gw.output().contains(&sk_key));
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_carry_distinct_request_ids_matching_the_header() {
    let w = World::start().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = w.logs3(&w.nobody, vec![log_row(&w.project)]).await;
        let e = w.error(&r, 403, "permission_denied");
        let id = e["request_id"].as_str().unwrap().to_owned();
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
        assert!(seen.insert(id));
    }
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_tokens_never_reach_loggates_output() {
    let w = World::start_with(|b| b.env("LOGGATE_TEST_RUST_LOG", "debug").env("RUST_LOG", "debug")).await;
    // A mix of allowed, denied, unauthenticated and failed requests.
    let _ = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    let _ = w.logs3(&w.nobody, vec![log_row(&w.project)]).await;
    let _ = w.logs3(&w.expired, vec![log_row(&w.project)]).await;
    let _ = http::send(w.request(reqwest::Method::POST, "/logs3", &w.unknown).body("{")).await;
    w.upstream.set_fault_times("/logs3", Fault::Reset, 1);
    let _ = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    let _ = w.post_json("/api/apikey/login", &w.writer, &json!({})).await;
    // Access lines are written in batches: wait until all six are out.
    wait::until("an access log line for each of the 6 requests", Duration::from_secs(5), async || {
        let lines = w.gw.log_lines().iter().filter(|l| l["message"] == "request").count();
        if lines >= 6 { Ok(()) } else { Err(format!("{lines} access lines")) }
    })
    .await;
    w.gw.assert_output_free_of(&w.secrets());
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_lookup_naming_two_ids_is_refused_not_half_checked() {
    let w = World::start().await;
    // The gateway must not authorize one id while the data plane may read
    // the other (parameter pollution, also through an encoded key name).
    for q in [
        format!("id={}&id={}", w.project, w.other_project),
        format!("id={}&i%64={}", w.project, w.other_project),
        format!("id={}&%69d={}", w.project, w.other_project),
    ] {
        let r = w.get(&format!("/api/project?{q}"), &w.writer).await;
        let e = w.error(&r, 400, "bad_request");
        assert_eq!(e["field"], "id", "{q}");
    }
    assert_eq!(w.forwarded("/api/project"), 0);
    let r = w.get(&format!("/api/project?other=1&id={}", w.project), &w.writer).await;
    assert_eq!(r.status, 200, "{}", r.text());
    w.still_serves().await;
}
