//! A worker's own pool of HTTP/1.1 connections to a plain-http upstream.
//!
//! hyper-util's general client (kept for https, where ALPN may pick HTTP/2)
//! costs per request a pool keyed by scheme and authority, a connector
//! clone and a boxed 6.8 KiB future. With one pool per worker thread and a
//! single upstream address, none of that is needed: a request takes the
//! most recently used idle connection (or opens one).
//!
//! No task of its own drives a connection: the request using it does.
//! hyper's connection state machine (`Connection`) is polled by the request
//! while it waits for the response head, then by the response body while
//! the caller's side reads it; once the body is complete the connection
//! goes back to the pool. So the upstream write happens in the same task
//! pass that read and checked the request, and the response is written to
//! the caller in the pass that read it from the data plane: under load a
//! request does not wait twice more behind every other ready task, as it
//! does when a spawned connection task sits between the two sides. A
//! connection whose body is dropped before its end is closed.
//!
//! A request that a reused connection could not even start (it closed
//! while idle) is retried on another connection; one that was sent is
//! never retried.

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::net::TcpStream;

use super::describe;

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

pub(super) struct H1Pool {
    host: String,
    port: u16,
    idle: Arc<Idle>,
    connect_timeout: Duration,
}

/// Connections waiting for a request, most recently used last.
struct Idle {
    // Boxed on purpose: a connection moves between this list, a request's
    // future and a response body, and should move as a pointer.
    #[allow(clippy::vec_box)]
    conns: Mutex<Vec<Box<Pooled>>>,
    max: usize,
}

/// One upstream connection: the handle requests go in by, and the state
/// machine that writes them and reads the answers, which is polled only by
/// whoever holds the connection. Boxed (it is 700 bytes): requests, bodies
/// and the pool hand it on as a pointer.
struct Pooled {
    sender: SendRequest<Full<Bytes>>,
    conn: Connection,
    /// The state machine finished (the connection closed); never poll it again.
    closed: bool,
}

/// Why a request got no response: a transport failure, for the 502.
#[derive(Debug)]
pub(super) struct SendError(pub String);

impl H1Pool {
    pub fn new(host: &str, port: u16, max_idle: usize, connect_timeout: Duration) -> Self {
        // `Uri::host` keeps an IPv6 literal's brackets; a socket address does not want them.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let idle = Arc::new(Idle { conns: Mutex::new(Vec::new()), max: max_idle });
        H1Pool { host, port, idle, connect_timeout }
    }

    /// Sends `request` (origin-form URI, `Host` set) and waits for the
    /// response head. The body drives the connection from then on.
    pub async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Response<UpstreamBody>, SendError> {
        loop {
            let (mut pooled, reused) = match self.idle.checkout() {
                Some(pooled) => (pooled, true),
                // Boxed: connecting is rare, and its state need not be
                // part of every request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            let sent = pooled.sender.try_send_request(request);
            match pooled.drive_until(sent).await {
                Ok(response) => return Ok(self.idle.attach(response, pooled)),
                Err(mut e) => match e.take_message() {
                    // Never started on a connection that closed while idle: try another.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError(describe("request failed", &e.into_error()))),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Box<Pooled>, SendError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => return Err(SendError("connect timed out".into())),
            Ok(Err(e)) => return Err(SendError(format!("connect: {e}"))),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError(describe("handshake", &e)))?;
        Ok(Box::new(Pooled { sender, conn, closed: false }))
    }
}

impl Idle {
    /// The most recently used connection still open and ready.
    fn checkout(&self) -> Option<Box<Pooled>> {
        loop {
            let mut pooled = self.conns.lock().pop()?;
            // Lets the state machine notice a close that arrived while idle.
            pooled.poll_conn(&mut Context::from_waker(Waker::noop()));
            if !pooled.closed && pooled.sender.is_ready() {
                return Some(pooled);
            }
        }
    }

    /// Puts a connection that finished its exchange back, if it can take
    /// another request.
    fn checkin(&self, mut pooled: Box<Pooled>) {
        // Also swaps the request's waker for a no-op one: an idle
        // connection wakes nobody, and holds no finished request's task.
        pooled.poll_conn(&mut Context::from_waker(Waker::noop()));
        if pooled.closed || !pooled.sender.is_ready() {
            return;
        }
        let mut conns = self.conns.lock();
        if conns.len() < self.max {
            conns.push(pooled);
        }
    }

    /// The response with a body that drives `pooled` until it has been read.
    fn attach(self: &Arc<Self>, response: Response<Incoming>, pooled: Box<Pooled>) -> Response<UpstreamBody> {
        let (parts, inner) = response.into_parts();
        let driver = if inner.is_end_stream() {
            // Nothing left to read (no body, HEAD, 204, 304): free at once.
            self.checkin(pooled);
            None
        } else {
            Some(Driver { pooled, idle: self.clone() })
        };
        Response::from_parts(parts, UpstreamBody { inner, driver })
    }
}

impl Pooled {
    fn poll_conn(&mut self, cx: &mut Context<'_>) {
        if !self.closed && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.closed = true;
        }
    }

    /// Polls `exchange` to completion, driving the connection alongside.
    async fn drive_until<F: Future>(&mut self, exchange: F) -> F::Output {
        let mut exchange = pin!(exchange);
        poll_fn(|cx| {
            // The connection first: it writes the request, reads the head
            // and hands it over, so the exchange is ready in the same pass.
            self.poll_conn(cx);
            exchange.as_mut().poll(cx)
        })
        .await
    }
}

/// A response body from the data plane. Bodies from this pool drive their
/// connection while they are read and return it when complete; bodies
/// from hyper-util's client (https) have a connection task of their own.
pub struct UpstreamBody {
    inner: Incoming,
    driver: Option<Driver>,
}

struct Driver {
    pooled: Box<Pooled>,
    idle: Arc<Idle>,
}

impl UpstreamBody {
    pub(super) fn driven_elsewhere(inner: Incoming) -> Self {
        UpstreamBody { inner, driver: None }
    }

    fn release(&mut self) {
        if let Some(Driver { pooled, idle }) = self.driver.take() {
            idle.checkin(pooled);
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody").field("inner", &self.inner).field("pooled", &self.driver.is_some()).finish()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(driver) = &mut this.driver {
            driver.pooled.poll_conn(cx);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            // Complete: the connection can take the next request.
            None => this.release(),
            Some(Ok(_)) if this.inner.is_end_stream() => this.release(),
            // Broken off: the connection is closed with the driver.
            Some(Err(_)) => this.driver = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that gives every request on a connection `answer`,
    /// closing the connection after `per_conn` of them. Counts connections.
    async fn upstream(answer: &'static [u8], per_conn: usize) -> (u16, Arc<AtomicUsize>) {
        scripted_upstream(vec![Bytes::from_static(answer)], per_conn).await
    }

    /// An upstream that answers every request with `parts`, written one by
    /// one 30 ms apart, closing the connection after `per_conn` requests.
    async fn scripted_upstream(parts: Vec<Bytes>, per_conn: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let parts = parts.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..per_conn {
                        // Requests here have no body: a head ends them.
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        for (i, part) in parts.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(30)).await;
                            }
                            if s.write_all(part).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, accepted)
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn get(port: u16) -> Request<Full<Bytes>> {
        Request::builder().uri("/x").header("host", format!("127.0.0.1:{port}")).body(Full::new(Bytes::new())).unwrap()
    }

    async fn read_all(pool: &H1Pool, port: u16) -> Bytes {
        let response = pool.send(get(port)).await.expect("answered");
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_not_a_failed_request() {
        let (port, accepted) = upstream(OK, 1).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..5 {
            assert_eq!(&read_all(&pool, port).await[..], b"ok");
            // Let the upstream's close arrive before the next checkout.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_read_body_returns_its_connection_for_the_next_request() {
        let (port, accepted) = upstream(OK, usize::MAX).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..5 {
            assert_eq!(&read_all(&pool, port).await[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_are_driven_by_the_requests_not_by_tasks() {
        let (port, _) = upstream(OK, usize::MAX).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        let metrics = tokio::runtime::Handle::current().metrics();
        let response = pool.send(get(port)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The upstream's accept loop and its one connection; none for ours.
        assert_eq!(metrics.num_alive_tasks(), 2, "no task for the client side of the connection");
        assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
    }

    #[tokio::test]
    async fn a_body_arriving_in_pieces_is_read_whole_and_frees_its_connection() {
        for parts in [
            vec![&b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nab"[..], b"cd", b"ef"],
            vec![&b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"[..], b"3\r\ndef\r\n", b"0\r\n\r\n"],
        ] {
            let parts = parts.into_iter().map(Bytes::from_static).collect();
            let (port, accepted) = scripted_upstream(parts, usize::MAX).await;
            let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
            for _ in 0..3 {
                // Each later piece wakes the reader through the connection it polls.
                assert_eq!(&read_all(&pool, port).await[..], b"abcdef");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused after each whole body");
        }
    }

    #[tokio::test]
    async fn a_body_larger_than_any_read_buffer_streams_through_whole() {
        // Many frames: each is handed over through hyper's one-chunk body
        // channel, whose room the reader's own poll frees.
        let body: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let (port, accepted) = scripted_upstream(vec![Bytes::from(head), Bytes::from(body.clone())], usize::MAX).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..2 {
            let response = pool.send(get(port)).await.unwrap();
            let mut body_in = response.into_body();
            let (mut got, mut frames) = (Vec::new(), 0);
            while let Some(frame) = body_in.frame().await {
                got.extend_from_slice(&frame.unwrap().into_data().unwrap());
                frames += 1;
            }
            assert!(got == body, "the body arrived whole and in order");
            assert!(frames > 1, "{frames} frame(s)");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (port, accepted) = upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", usize::MAX).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..2 {
            let response = pool.send(get(port)).await.unwrap();
            drop(response);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a half-read connection is never reused");
    }

    #[tokio::test]
    async fn an_answer_without_a_body_frees_its_connection_at_once() {
        let (port, accepted) = upstream(b"HTTP/1.1 204 No Content\r\n\r\n", usize::MAX).await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..3 {
            let response = pool.send(get(port)).await.unwrap();
            assert_eq!(response.status(), 204);
            // hyper's server never polls a body that is already at its end.
            assert!(response.body().is_end_stream());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_send_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        let e = pool.send(get(port)).await.unwrap_err();
        assert!(e.0.starts_with("connect:"), "{}", e.0);
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(H1Pool::new("[::1]", 80, 1, Duration::from_secs(1)).host, "::1");
    }
}
