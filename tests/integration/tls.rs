//! TLS on both sides of the real binary: the listener (HTTP/1.1 and HTTP/2
//! by ALPN, hot reload of the pair, a broken pair keeps the last good one,
//! no plain HTTP, `check` refuses a mismatched pair) and the data plane
//! connection (`upstream.ca_file`, client certificates).

use crate::support::gateway::loggate_bin;
use crate::support::tls::{TestCa, get, https_request};
use crate::support::wait;
use crate::support::world::{World, cast};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn post_logs3(token: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("https://localhost/logs3")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_speaks_http2_and_http1_by_alpn_and_never_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("listener CA");
    let (cert, key) = ca.server("loggate").write(dir.path(), "");
    let w = World::start_with(|b| {
        b.env("LOGGATE_SERVER__TLS_CERT", cert.to_str().unwrap()).env("LOGGATE_SERVER__TLS_KEY", key.to_str().unwrap())
    })
    .await;
    let gw = &w.gw;

    let h2 =
        https_request(gw.addr, ca.client_config(&[b"h2", b"http/1.1"]), post_logs3(&w.writer.raw, &w.logs3_body()))
            .await
            .unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert_eq!(h2.status, 200, "{:?}", h2.body);

    let h1 =
        https_request(gw.addr, ca.client_config(&[b"http/1.1"]), get("/version", Some(&w.writer.raw))).await.unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.version, http::Version::HTTP_11);
    assert_eq!(h1.status, 200, "{:?}", h1.body);

    // Denials travel over TLS like any answer.
    let denied =
        https_request(gw.addr, ca.client_config(&[b"h2"]), post_logs3(&w.reader.raw, &w.logs3_body())).await.unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(w.forwarded("/logs3"), 1, "only the writer's batch may arrive");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"GET /version HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "plain HTTP was answered: {:?}", String::from_utf8_lossy(&buf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reloads_within_10s_and_a_broken_pair_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("reload CA");
    let first = ca.server("first");
    let (cert, key) = first.write(dir.path(), "");
    let w = World::start_with(|b| {
        b.env("LOGGATE_SERVER__TLS_CERT", cert.to_str().unwrap()).env("LOGGATE_SERVER__TLS_KEY", key.to_str().unwrap())
    })
    .await;
    let gw = &w.gw;
    let served = || async {
        https_request(gw.addr, ca.client_config(&[b"h2"]), get("/version", Some(&w.writer.raw))).await.unwrap()
    };
    assert_eq!(served().await.server_cert, first.der);

    let wait_for = |want: rustls_pki_types::CertificateDer<'static>| {
        let served = &served;
        async move {
            let got = wait::until_every(
                "the new certificate served",
                Duration::from_secs(10),
                Duration::from_millis(200),
                async || Some(served().await).filter(|got| got.server_cert == want),
            )
            .await;
            assert_eq!(got.status, 200);
        }
    };
    let refusals = || gw.output().matches("TLS certificate reload refused").count();

    // A new pair is picked up within 10 s.
    let second = ca.server("second");
    second.replace(&cert, &key);
    wait_for(second.der.clone()).await;

    // A broken pair (the third certificate with the second's key) is refused:
    // the second stays in force across several reload polls.
    let third = ca.server("third");
    let before = refusals();
    std::fs::write(&cert, &third.cert_pem).unwrap();
    wait::until_every(
        "two reload polls refused the broken pair",
        Duration::from_secs(10),
        Duration::from_millis(200),
        async || refusals() >= before + 2,
    )
    .await;
    assert_eq!(served().await.server_cert, second.der, "a broken pair replaced the last good one");

    // Completing the pair makes it take effect.
    third.replace(&cert, &key);
    wait_for(third.der.clone()).await;
}

#[test]
fn check_rejects_a_key_that_does_not_match_the_certificate() {
    let w = cast();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("check CA");
    let (cert, _) = ca.server("a").write(dir.path(), "a-");
    let (_, other_key) = ca.server("b").write(dir.path(), "b-");
    let policy = dir.path().join("policy.json");
    w.policy.write(&policy);
    let config = dir.path().join("loggate.toml");
    let write_config = |key: &std::path::Path| {
        std::fs::write(
            &config,
            format!(
                "[server]\ntls_cert = {:?}\ntls_key = {:?}\n[policy]\nfile = {:?}\n",
                cert.to_str().unwrap(),
                key.to_str().unwrap(),
                policy.to_str().unwrap()
            ),
        )
        .unwrap();
    };
    write_config(&other_key);
    let out = Command::new(loggate_bin()).args(["check", "--config"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check accepted a mismatched pair");
    assert!(stderr.contains("tls_cert") && stderr.contains("tls_key"), "{stderr}");

    write_config(&dir.path().join("a-key.pem"));
    let out = Command::new(loggate_bin()).args(["check", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn send_logs3(gw_url: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{gw_url}/logs3"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_trusts_ca_file_and_not_the_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("data plane CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let w = World::builder()
        .tls_upstream(ca.server_config(&ca.server("data plane"), false))
        .gateway(|b| b.env("LOGGATE_UPSTREAM__CA_FILE", ca_file.to_str().unwrap()))
        .start()
        .await;
    assert!(w.upstream.url.starts_with("https://"));

    let (status, body) = send_logs3(&w.gw.url, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.forwarded("/logs3"), 1);

    // Without the CA file the system roots do not know this CA: 502.
    let untrusting = w.another_gateway(|b| b).await;
    let (status, body) = send_logs3(&untrusting.url, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert_eq!(w.forwarded("/logs3"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_client_certificate_is_presented() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("mtls CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (client_cert, client_key) = ca.client("loggate").write(dir.path(), "client-");
    let w = World::builder()
        .tls_upstream(ca.server_config(&ca.server("data plane"), true))
        .gateway(|b| {
            b.env("LOGGATE_UPSTREAM__CA_FILE", ca_file.to_str().unwrap())
                .env("LOGGATE_UPSTREAM__CLIENT_CERT", client_cert.to_str().unwrap())
                .env("LOGGATE_UPSTREAM__CLIENT_KEY", client_key.to_str().unwrap())
        })
        .start()
        .await;
    let (status, body) = send_logs3(&w.gw.url, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(status, 200, "{body}");

    let anonymous = w.another_gateway(|b| b.env("LOGGATE_UPSTREAM__CA_FILE", ca_file.to_str().unwrap())).await;
    let (status, body) = send_logs3(&anonymous.url, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(status, 502, "a data plane that requires a client certificate accepted none: {body}");
    assert_eq!(w.forwarded("/logs3"), 1);
}
