//! Graceful shutdown of the real binary (contract: Configuration `shutdown_grace`): on
//! SIGTERM `/readyz` turns 503 at once, new connections are refused, the
//! request in flight completes, and the process exits 0 within the grace.

use crate::support::upstream::Fault;
use crate::support::wait;
use crate::support::world::World;
use std::time::{Duration, Instant};

/// How long the gateway may take, after SIGTERM, to stop being ready and
/// to stop accepting ("at once", on a loaded machine).
const AT_ONCE: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_and_exits_0() {
    let mut w = World::start_with(|b| b.env("LOGGATE_SERVER__SHUTDOWN_GRACE", "10s")).await;
    w.upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_secs(3)), 1);
    let slow = {
        let (url, token, body) = (w.gw.url.clone(), w.writer.raw.clone(), w.logs3_body());
        tokio::spawn(async move {
            let r =
                reqwest::Client::new().post(format!("{url}/logs3")).bearer_auth(token).body(body).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        })
    };
    wait::until("the slow request reached the data plane", Duration::from_secs(10), async || w.forwarded("/logs3") > 0)
        .await;

    let signalled = Instant::now();
    w.gw.send_sigterm();
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    wait::until("/readyz 503 at once after SIGTERM", AT_ONCE, async || {
        let r =
            client.get(format!("{}/readyz", w.gw.admin_url)).send().await.expect("admin must answer while draining");
        match r.status() {
            reqwest::StatusCode::SERVICE_UNAVAILABLE => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let refused = wait::until(
        "new connections refused at once after SIGTERM",
        AT_ONCE.saturating_sub(signalled.elapsed()),
        async || tokio::net::TcpStream::connect(w.gw.addr).await.err(),
    )
    .await;
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);

    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "the request in flight was cut: {body}");
    let exit = w.gw.wait_exit(Duration::from_secs(10)).await.expect("loggate did not exit within the grace");
    assert_eq!(exit.code(), Some(0), "{}", w.gw.output());
    assert!(signalled.elapsed() < Duration::from_secs(10));
    assert!(w.gw.output().contains("all connections drained"), "{}", w.gw.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_grace_does_not_hold_the_exit() {
    let mut w = World::start_with(|b| b.env("LOGGATE_SERVER__SHUTDOWN_GRACE", "1s")).await;
    w.upstream.set_fault("/logs3", Fault::Delay(Duration::from_secs(60)));
    let (url, token, body) = (w.gw.url.clone(), w.writer.raw.clone(), w.logs3_body());
    let _stuck = tokio::spawn(async move {
        reqwest::Client::new().post(format!("{url}/logs3")).bearer_auth(token).body(body).send().await
    });
    wait::until("the stuck request reached the data plane", Duration::from_secs(10), async || {
        w.forwarded("/logs3") > 0
    })
    .await;
    let signalled = Instant::now();
    w.gw.send_sigterm();
    let exit = w.gw.wait_exit(Duration::from_secs(10)).await.expect("loggate did not exit");
    assert_eq!(exit.code(), Some(0));
    let took = signalled.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "exited after {took:?}");
    assert!(w.gw.output().contains("shutdown grace elapsed"), "{}", w.gw.output());
}
