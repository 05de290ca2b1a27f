//! Limits of the real binary: rate limits per token and per organization
//! (429 `rate_limited` + Retry-After, counted in `loggate_rate_limited_total`),
//! the failed-authentication budget per address, the request and connection
//! caps (503 `overloaded`), and the connection clocks: `idle_timeout`,
//! `header_read_timeout`, `body_read_timeout`, with thousands of idle sockets.

use crate::support::gateway::Gateway;
use crate::support::raw::RawConn;
use crate::support::upstream::Fault;
use crate::support::wait;
use crate::support::world::World;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `per_token_rps = 1`: one more request is granted after a second (plus
/// slack). Waiting for the bucket to refill is the behaviour under test.
const ONE_TOKEN_REFILLS: Duration = Duration::from_millis(1100);

/// Longer than `header_read_timeout` (1 s), shorter than `idle_timeout`
/// (3 s): an idle keep-alive connection must outlive this.
const IDLE_BETWEEN_TIMEOUTS: Duration = Duration::from_millis(1800);

/// A slowloris client's pause between header lines (three of them add up to
/// less than `header_read_timeout`, each one resets nothing).
const DRIBBLE: Duration = Duration::from_millis(300);

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
    let w = World::builder()
        .writers(1)
        .gateway(|b| b.extra_toml("[limits]\nper_token_rps = 1\nper_token_burst = 3\n"))
        .start()
        .await;
    let (gw, other) = (&w.gw, &w.writers[0].token);
    let passed = send_until_limited(gw, &w.writer.raw, &w.logs3_body(), 8).await;
    assert!(passed >= 3, "the burst of 3 was not granted: {passed}");
    assert_eq!(w.forwarded("/logs3"), passed, "a rate-limited batch was forwarded");
    // Another token has its own budget.
    assert_eq!(logs3(gw, &other.raw, &w.logs3_body()).await.status(), 200);
    assert_eq!(metric(&gw.metrics().await, "loggate_rate_limited_total"), 1.0);
    // The bucket refills at the configured rate.
    tokio::time::sleep(ONE_TOKEN_REFILLS).await;
    assert_eq!(logs3(gw, &w.writer.raw, &w.logs3_body()).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_rate_limit_is_shared_by_the_org_tokens() {
    let w = World::builder()
        .writers(1)
        .gateway(|b| b.extra_toml("[limits]\nper_org_rps = 1\nper_org_burst = 2\n"))
        .start()
        .await;
    let (gw, other) = (&w.gw, &w.writers[0].token);
    assert_eq!(logs3(gw, &w.writer.raw, &w.logs3_body()).await.status(), 200);
    // No per-token limit is set: a 429 for the other token proves the org
    // bucket is shared (the writer took half of it).
    let passed = send_until_limited(gw, &other.raw, &w.logs3_body(), 6).await;
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
    let w = World::start_with(|b| b.extra_toml("[limits]\nauth_failures_per_minute = 3\n")).await;
    let gw = &w.gw;
    for _ in 0..3 {
        assert_eq!(logs3(gw, &w.unknown, &w.logs3_body()).await.status(), 401);
    }
    expect_rate_limited(logs3(gw, &w.unknown, &w.logs3_body()).await).await;
    // The address is blocked, whatever token it now presents.
    expect_rate_limited(logs3(gw, &w.writer.raw, &w.logs3_body()).await).await;
    assert_eq!(w.forwarded("/logs3"), 0);
    assert!(metric(&gw.metrics().await, "loggate_rate_limited_total") >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cap_sheds_with_503_overloaded() {
    let w = World::start_with(|b| b.env("LOGGATE_SERVER__MAX_CONCURRENT_REQUESTS", "1")).await;
    let gw = &w.gw;
    w.upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_secs(2)), 1);
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
    wait::until("the slow request reached the data plane", Duration::from_secs(10), async || w.forwarded("/logs3") > 0)
        .await;
    let shed = logs3(gw, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(shed.json::<Value>().await.unwrap()["error"]["code"], "overloaded");
    assert_eq!(slow.await.unwrap(), 200, "the request in flight must complete");
    assert_eq!(logs3(gw, &w.writer.raw, &w.logs3_body()).await.status(), 200, "capacity is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_with_503_and_recovers() {
    let w = World::start_with(|b| b.env("LOGGATE_SERVER__MAX_CONNECTIONS", "2")).await;
    let gw = &w.gw;
    let mut held = [RawConn::connect(gw.addr).await, RawConn::connect(gw.addr).await];
    // Each held connection is served once: loggate has accepted it, and it
    // keeps its slot while it stays open.
    for c in &mut held {
        c.get("/version", &w.writer.raw).await.unwrap();
        assert_eq!(c.response(Duration::from_secs(5)).await.expect("a held connection is served").status, 200);
    }
    let mut refused = RawConn::connect(gw.addr).await;
    let r = refused.response(Duration::from_secs(5)).await.expect("a 503 before the close");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("\"overloaded\""), "{}", r.body);
    assert!(refused.closed_within(Duration::from_secs(5)).await);
    drop(held);
    wait::until_every("the slots freed", Duration::from_secs(5), Duration::from_millis(100), async || {
        let mut c = RawConn::connect(gw.addr).await;
        c.get("/version", &w.writer.raw).await.unwrap();
        match c.response(Duration::from_secs(5)).await {
            Some(r) if r.status == 200 => Ok(()),
            other => Err(other),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_live_until_idle_timeout_not_header_timeout() {
    let w = World::start_with(|b| {
        b.env("LOGGATE_SERVER__IDLE_TIMEOUT", "3s").env("LOGGATE_SERVER__HEADER_READ_TIMEOUT", "1s")
    })
    .await;
    let gw = &w.gw;
    let mut c = RawConn::connect(gw.addr).await;
    c.get("/version", &w.writer.raw).await.unwrap();
    assert_eq!(c.response(Duration::from_secs(5)).await.unwrap().status, 200);
    // Idle for longer than the header timeout, shorter than the idle timeout.
    tokio::time::sleep(IDLE_BETWEEN_TIMEOUTS).await;
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
    let w = World::start_with(|b| {
        b.env("LOGGATE_SERVER__IDLE_TIMEOUT", "60s").env("LOGGATE_SERVER__HEADER_READ_TIMEOUT", "1s")
    })
    .await;
    let mut c = RawConn::connect(w.gw.addr).await;
    let started = Instant::now();
    c.send(b"GET /version HTTP/1.1\r\nhost: loggate\r\n").await.unwrap();
    // Dribbling more header bytes does not extend the deadline.
    for _ in 0..3 {
        tokio::time::sleep(DRIBBLE).await;
        let _ = c.send(b"x-slow: 1\r\n").await;
    }
    assert!(c.closed_within(Duration::from_secs(5)).await, "slowloris connection kept open");
    assert!(started.elapsed() < Duration::from_secs(3), "closed only after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408() {
    let w = World::start_with(|b| b.env("LOGGATE_SERVER__BODY_READ_TIMEOUT", "1s")).await;
    let mut c = RawConn::connect(w.gw.addr).await;
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
    assert_eq!(w.forwarded("/logs3"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_sockets_are_held_and_requests_still_pass() {
    const IDLE: usize = 2000;
    let w = World::start_with(|b| b.env("LOGGATE_SERVER__MAX_CONNECTIONS", "3000")).await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(tokio::net::TcpStream::connect(w.gw.addr).await.unwrap());
    }
    let started = Instant::now();
    let r = logs3(&w.gw, &w.writer.raw, &w.logs3_body()).await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a request behind {IDLE} idle sockets took {:?}",
        started.elapsed()
    );
    assert_eq!(w.forwarded("/logs3"), 1);
    let mut b = [0u8; 1];
    let closed = idle
        .iter()
        .filter(|s| !matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(closed, 0, "{closed} idle sockets were closed or answered within the connection cap");
}
