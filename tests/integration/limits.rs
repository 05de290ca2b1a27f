//! Limits of the real binary: rate limits per token and per organization
//! (429 `rate_limited` + Retry-After, counted in `loggate_rate_limited_total`),
//! the failed-authentication budget per address, the request and connection
//! caps (503 `overloaded`), and the connection clocks: `idle_timeout`,
//! `header_read_timeout`, `body_read_timeout`, with thousands of idle sockets.

use crate::support::gateway::{Gateway, GatewayBuilder};
use crate::support::minimal::{World, world};
use crate::support::raw::RawConn;
use crate::support::upstream::{Fault, Upstream};
use serde_json::Value;
use std::time::{Duration, Instant};

async fn start(w: &World, builder: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> (Upstream, Gateway) {
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let gw = builder(GatewayBuilder::new(&upstream.url)).start(&w.policy).await;
    (upstream, gw)
}

async fn logs3(gw: &Gateway, token: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/logs3", gw.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn expect_rate_limited(r: reqwest::Response) {
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

/// Sends as `token` until a 429 comes back (at most `max` tries); returns
/// how many passed before it. The limiters refill while the test runs, so
/// under load a few more than the burst may pass, never fewer.
async fn send_until_limited(gw: &Gateway, token: &str, body: &str, max: usize) -> usize {
    for passed in 0..max {
        let r = logs3(gw, token, body).await;
        if r.status() == 429 {
            expect_rate_limited(r).await;
            return passed;
        }
        assert_eq!(r.status(), 200);
    }
    panic!("no 429 within {max} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rate_limit_allows_its_burst_then_429_with_retry_after() {
    let mut w = world();
    let other = w.policy.service_token(&w.org_id, "other-writer");
    w.policy.grant_user(&other.user_id, "update", "project_log", &w.project_id);
    let (upstream, gw) = start(&w, |b| b.extra_toml("[limits]\nper_token_rps = 1\nper_token_burst = 3\n")).await;
    let passed = send_until_limited(&gw, &w.writer.raw, &w.logs3_body(), 8).await;
    assert!(passed >= 3, "the burst of 3 was not granted: {passed}");
    assert_eq!(upstream.requests_to("/logs3").len(), passed, "a rate-limited batch was forwarded");
    // Another token has its own budget.
    assert_eq!(logs3(&gw, &other.raw, &w.logs3_body()).await.status(), 200);
    assert_eq!(metric(&gw.metrics().await, "loggate_rate_limited_total"), 1.0);
    // The bucket refills at the configured rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(logs3(&gw, &w.writer.raw, &w.logs3_body()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_rate_limit_is_shared_by_the_org_tokens() {
    let mut w = world();
    let other = w.policy.service_token(&w.org_id, "other-writer");
    w.policy.grant_user(&other.user_id, "update", "project_log", &w.project_id);
    let (_upstream, gw) = start(&w, |b| b.extra_toml("[limits]\nper_org_rps = 1\nper_org_burst = 2\n")).await;
    assert_eq!(logs3(&gw, &w.writer.raw, &w.logs3_body()).await.status(), 200);
    // No per-token limit is set: a 429 for the other token proves the org
    // bucket is shared (the writer took half of it).
    let passed = send_until_limited(&gw, &other.raw, &w.logs3_body(), 6).await;
    assert!(passed >= 1, "the org burst of 2 was not granted");
    assert_eq!(metric(&gw.metrics().await, "loggate_rate_limited_total"), 1.0);
    let denials = gw.metrics().await;
    assert!(
        denials.lines().any(|l| l.starts_with("loggate_denials_total{") && l.contains("reason=\"rate_limited\"")),
        "{denials}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_budget_blocks_the_address() {
    let w = world();
    let (upstream, gw) = start(&w, |b| b.extra_toml("[limits]\nauth_failures_per_minute = 3\n")).await;
    for _ in 0..3 {
        assert_eq!(logs3(&gw, &w.unknown, &w.logs3_body()).await.status(), 401);
    }
    expect_rate_limited(logs3(&gw, &w.unknown, &w.logs3_body()).await).await;
    // The address is blocked, whatever token it now presents.
    expect_rate_limited(logs3(&gw, &w.writer.raw, &w.logs3_body()).await).await;
    assert!(upstream.requests_to("/logs3").is_empty());
    assert!(metric(&gw.metrics().await, "loggate_rate_limited_total") >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cap_sheds_with_503_overloaded() {
    let w = world();
    let (upstream, gw) = start(&w, |b| b.env("LOGGATE_SERVER__MAX_CONCURRENT_REQUESTS", "1")).await;
    upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_secs(2)), 1);
    let slow = {
        let (url, token, body) = (gw.url.clone(), w.writer.raw.clone(), w.logs3_body());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/logs3"))
                .bearer_auth(token)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.requests_to("/logs3").is_empty() {
        assert!(Instant::now() < deadline, "the slow request never reached the data plane");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = logs3(&gw, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(shed.json::<Value>().await.unwrap()["error"]["code"], "overloaded");
    assert_eq!(slow.await.unwrap(), 200, "the request in flight must complete");
    assert_eq!(logs3(&gw, &w.writer.raw, &w.logs3_body()).await.status(), 200, "capacity is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_with_503_and_recovers() {
    let w = world();
    let (_upstream, gw) = start(&w, |b| b.env("LOGGATE_SERVER__MAX_CONNECTIONS", "2")).await;
    let held = [RawConn::connect(gw.addr).await, RawConn::connect(gw.addr).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = RawConn::connect(gw.addr).await;
    let r = refused.response(Duration::from_secs(5)).await.expect("a 503 before the close");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("\"overloaded\""), "{}", r.body);
    assert!(refused.closed_within(Duration::from_secs(5)).await);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = RawConn::connect(gw.addr).await;
        c.get("/version", &w.writer.raw).await.unwrap();
        match c.response(Duration::from_secs(5)).await {
            Some(r) if r.status == 200 => break,
            other => assert!(Instant::now() < deadline, "slots never freed: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_live_until_idle_timeout_not_header_timeout() {
    let w = world();
    let (_upstream, gw) =
        start(&w, |b| b.env("LOGGATE_SERVER__IDLE_TIMEOUT", "3s").env("LOGGATE_SERVER__HEADER_READ_TIMEOUT", "1s"))
            .await;
    let mut c = RawConn::connect(gw.addr).await;
    c.get("/version", &w.writer.raw).await.unwrap();
    assert_eq!(c.response(Duration::from_secs(5)).await.unwrap().status, 200);
    // Idle for longer than the header timeout, shorter than the idle timeout.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(c.is_open(), "an idle keep-alive connection was closed before idle_timeout");
    c.get("/version", &w.writer.raw).await.unwrap();
    assert_eq!(c.response(Duration::from_secs(5)).await.unwrap().status, 200, "the kept-alive connection was reused");
    // Then idle past idle_timeout: closed.
    let idle_from = Instant::now();
    assert!(c.closed_within(Duration::from_secs(6)).await, "idle connection not closed");
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(2500) && idle < Duration::from_millis(4500), "closed after {idle:?}");

    // A connection that never sends anything is idle from the start.
    let mut silent = RawConn::connect(gw.addr).await;
    assert!(silent.closed_within(Duration::from_secs(6)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_at_header_read_timeout() {
    let w = world();
    let (_upstream, gw) =
        start(&w, |b| b.env("LOGGATE_SERVER__IDLE_TIMEOUT", "60s").env("LOGGATE_SERVER__HEADER_READ_TIMEOUT", "1s"))
            .await;
    let mut c = RawConn::connect(gw.addr).await;
    let started = Instant::now();
    c.send(b"GET /version HTTP/1.1\r\nhost: loggate\r\n").await.unwrap();
    // Dribbling more header bytes does not extend the deadline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = c.send(b"x-slow: 1\r\n").await;
    }
    assert!(c.closed_within(Duration::from_secs(5)).await, "slowloris connection kept open");
    assert!(started.elapsed() < Duration::from_secs(3), "closed only after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408() {
    let w = world();
    let (upstream, gw) = start(&w, |b| b.env("LOGGATE_SERVER__BODY_READ_TIMEOUT", "1s")).await;
    let mut c = RawConn::connect(gw.addr).await;
    let head = format!(
        "POST /logs3 HTTP/1.1\r\nhost: loggate\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"rows\":[",
        w.writer.raw
    );
    c.send(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    // Closed without an answer is allowed too.
    if let Some(r) = c.response(Duration::from_secs(5)).await {
        assert_eq!(r.status, 408, "{r:?}");
        assert!(r.body.contains("\"error\""), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(upstream.requests_to("/logs3").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_sockets_are_held_and_requests_still_pass() {
    const IDLE: usize = 2000;
    let w = world();
    let (upstream, gw) = start(&w, |b| b.env("LOGGATE_SERVER__MAX_CONNECTIONS", "3000")).await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(tokio::net::TcpStream::connect(gw.addr).await.unwrap());
    }
    let started = Instant::now();
    let r = logs3(&gw, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a request behind {IDLE} idle sockets took {:?}",
        started.elapsed()
    );
    assert_eq!(upstream.requests_to("/logs3").len(), 1);
    let mut b = [0u8; 1];
    let closed = idle
        .iter()
        .filter(|s| !matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(closed, 0, "{closed} idle sockets were closed or answered within the connection cap");
}
