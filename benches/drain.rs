//! Graceful drain: what wrapping a connection costs while nobody is
//! shutting down, for hyper-util's `GracefulShutdown` (what loggate uses)
//! against loggate's former hand-written drain (`common/drain_rs.rs`, a
//! frozen copy of `src/server/drain.rs` as it was), beside the bare
//! connection. Both wrappers only accept hyper connections, so the
//! connection is a real HTTP/1 server connection over an in-memory pipe:
//!
//! - `drain/poll_idle`: one poll of an idle keep-alive connection (the
//!   wrapper's check, then hyper finds nothing to read);
//! - `drain/request`: one request and its answer on a kept-alive
//!   connection (client and server on one current-thread runtime).
//!
//! Decision and figures: docs/decisions/graceful-drain.md.
//! Run: `cargo bench --bench drain` (criterion), or
//! `cargo bench --bench drain -- --paired` (the variants in alternation,
//! fastest and median round: see `common/paired.rs`).

#[allow(dead_code)]
#[path = "common/drain_rs.rs"]
mod drain;
#[path = "common/paired.rs"]
mod paired;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

type Conn = Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>;
type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

#[derive(Clone, Copy, Debug)]
enum Wrapper {
    Bare,
    DrainRs,
    HyperUtil,
}

/// Keeps whichever drain signal a wrapper needs alive for the bench.
#[allow(dead_code)]
enum Signal {
    None,
    DrainRs(drain::Drain),
    HyperUtil(GracefulShutdown),
}

/// A server connection wrapped as `w`, and the client end of its pipe.
fn connection(w: Wrapper) -> (Conn, tokio::io::DuplexStream, Signal) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let service = service_fn(|_: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service);
    match w {
        Wrapper::Bare => (Box::pin(conn), client, Signal::None),
        Wrapper::DrainRs => {
            let d = drain::Drain::new();
            (Box::pin(d.watch(conn)), client, Signal::DrainRs(d))
        }
        Wrapper::HyperUtil => {
            let g = GracefulShutdown::new();
            (Box::pin(g.watch(conn)), client, Signal::HyperUtil(g))
        }
    }
}

const WRAPPERS: [(Wrapper, &str); 3] =
    [(Wrapper::Bare, "bare"), (Wrapper::DrainRs, "drain_rs"), (Wrapper::HyperUtil, "hyper_util")];

fn poll_idle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _entered = rt.enter();
    let mut g = c.benchmark_group("drain/poll_idle");
    for (w, name) in WRAPPERS {
        let (mut conn, _client, _signal) = connection(w);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(conn.as_mut().poll(&mut cx).is_pending());
        g.bench_function(name, |b| b.iter(|| black_box(conn.as_mut().poll(&mut cx).is_pending())));
    }
    g.finish();
}

fn request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut g = c.benchmark_group("drain/request");
    for (w, name) in WRAPPERS {
        let (mut sender, signal, served) = rt.block_on(async {
            let (conn, client, signal) = connection(w);
            let served = tokio::spawn(conn);
            let (sender, client_conn): (Sender, _) =
                hyper::client::conn::http1::handshake(TokioIo::new(client)).await.expect("handshake");
            tokio::spawn(client_conn);
            (sender, signal, served)
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = sender.send_request(Request::new(Empty::new())).await.expect("answered");
                    assert_eq!(r.status(), 200);
                })
            })
        });
        drop((sender, signal));
        served.abort();
    }
    g.finish();
}

fn paired_rounds() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let _entered = rt.enter();
    let conns: Vec<_> = WRAPPERS.iter().map(|(w, _)| connection(*w)).collect();
    let variants = WRAPPERS
        .iter()
        .zip(conns)
        .map(|((_, name), (mut conn, client, signal))| {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(conn.as_mut().poll(&mut cx).is_pending());
            paired::variant(name, move |n| {
                let _held = (&client, &signal);
                let mut cx = Context::from_waker(Waker::noop());
                for _ in 0..n {
                    black_box(conn.as_mut().poll(&mut cx).is_pending());
                }
            })
        })
        .collect();
    paired::paired("drain/poll_idle", 30, 200_000, variants);

    let mut ends = Vec::new();
    for (w, _) in WRAPPERS {
        ends.push(rt.block_on(async {
            let (conn, client, signal) = connection(w);
            let served = tokio::spawn(conn);
            let (sender, client_conn): (Sender, _) =
                hyper::client::conn::http1::handshake(TokioIo::new(client)).await.expect("handshake");
            tokio::spawn(client_conn);
            (sender, signal, served)
        }));
    }
    let rt = &rt;
    let variants = WRAPPERS
        .iter()
        .zip(ends.iter_mut())
        .map(|((_, name), (sender, _, _))| {
            paired::variant(name, move |n| {
                rt.block_on(async {
                    for _ in 0..n {
                        let r = sender.send_request(Request::new(Empty::new())).await.expect("answered");
                        assert_eq!(r.status(), 200);
                    }
                })
            })
        })
        .collect();
    paired::paired("drain/request", 30, 20_000, variants);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = poll_idle, request
}
fn main() {
    if paired::requested() {
        return paired_rounds();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
