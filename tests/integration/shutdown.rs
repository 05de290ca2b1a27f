//! Graceful shutdown of the real binary (contract: Configuration `shutdown_grace`): on
//! SIGTERM `/readyz` turns 503 at once, new connections are refused, the
//! request in flight completes, and the process exits 0 within the grace.

use crate::support::gateway::GatewayBuilder;
use crate::support::minimal::world;
use crate::support::upstream::{Fault, Upstream};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_and_exits_0() {
    let w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let mut gw = GatewayBuilder::new(&upstream.url).env("LOGGATE_SERVER__SHUTDOWN_GRACE", "10s").start(&w.policy).await;
    upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_secs(3)), 1);
    let slow = {
        let (url, token, body) = (gw.url.clone(), w.writer.raw.clone(), w.logs3_body());
        tokio::spawn(async move {
            let r =
                reqwest::Client::new().post(format!("{url}/logs3")).bearer_auth(token).body(body).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.requests_to("/logs3").is_empty() {
        assert!(Instant::now() < deadline, "the slow request never reached the data plane");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let signalled = Instant::now();
    gw.send_sigterm();
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    loop {
        let r = client.get(format!("{}/readyz", gw.admin_url)).send().await.expect("admin must answer while draining");
        if r.status() == 503 {
            break;
        }
        assert!(signalled.elapsed() < Duration::from_millis(1500), "/readyz still {} after SIGTERM", r.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    loop {
        match tokio::net::TcpStream::connect(gw.addr).await {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
                break;
            }
            Ok(_) => assert!(signalled.elapsed() < Duration::from_millis(1500), "still accepting after SIGTERM"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "the request in flight was cut: {body}");
    let exit = gw.wait_exit(Duration::from_secs(10)).await.expect("loggate did not exit within the grace");
    assert_eq!(exit.code(), Some(0), "{}", gw.output());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(gw.output().contains("all connections drained"), "{}", gw.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_grace_does_not_hold_the_exit() {
    let w = world();
    let upstream = Upstream::start(w.policy.upstream_orgs()).await;
    let mut gw = GatewayBuilder::new(&upstream.url).env("LOGGATE_SERVER__SHUTDOWN_GRACE", "1s").start(&w.policy).await;
    upstream.set_fault("/logs3", Fault::Delay(Duration::from_secs(60)));
    let (url, token, body) = (gw.url.clone(), w.writer.raw.clone(), w.logs3_body());
    let _stuck = tokio::spawn(async move {
        reqwest::Client::new().post(format!("{url}/logs3")).bearer_auth(token).body(body).send().await
    });
    while upstream.requests_to("/logs3").is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    gw.send_sigterm();
    let exit = gw.wait_exit(Duration::from_secs(10)).await.expect("loggate did not exit");
    assert_eq!(exit.code(), Some(0));
    let took = signalled.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "exited after {took:?}");
    assert!(gw.output().contains("shutdown grace elapsed"), "{}", gw.output());
}
