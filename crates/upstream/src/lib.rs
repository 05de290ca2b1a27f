//! A worker's own pool of HTTP/1.1 connections to a plain-http upstream.
//!
//! hyper-util's general client (kept for https, where ALPN may pick HTTP/2)
//! costs per request a pool keyed by scheme and authority, a connector
//! clone and a boxed 6.8 KiB future; under it, hyper's connection state
//! machine takes each request through a channel, answers through a
//! callback, with a dispatcher in between. perf put 12% of loggate's CPU
//! at 20,000 req/s there (about 4 µs per request), the largest single part
//! of what it spent in user space; with this pool the CPU per request fell
//! by 2.1 µs (22.4 -> 20.3, paired closed-loop runs). A proxy that forwards
//! whole, already read bodies needs none of that.
//!
//! A request here takes the most recently used idle connection of its
//! worker (or opens one), writes its head and body in one write, and reads
//! the answer's head on the same task; the body is read by whoever reads
//! the response, and a connection whose body is complete goes back to the
//! pool. The message format itself is in `codec` (heads parsed by
//! `httparse`).
//!
//! A request that a reused connection could not even start (not a byte
//! was written) is retried on another connection; one that was sent is
//! never retried: the data plane may have acted on it.

mod codec;

use bytes::{Bytes, BytesMut};
use codec::{Framing, Head, Step};
use http::{HeaderMap, Method, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The error type of response bodies: the caller's body stack boxes errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bodies up to this size go out in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Free room a read asks for; and the buffer size past which an idle
/// connection's buffers are given back rather than kept.
const READ_ROOM: usize = 8 * 1024;
const KEEP_BUFFER: usize = 64 * 1024;

pub struct H1Pool {
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
    conns: Mutex<Vec<Box<Conn>>>,
    max: usize,
}

/// One upstream connection and its buffers, kept for the next request.
struct Conn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
}

/// Why a request got no response: a transport failure, for the 502.
#[derive(Debug)]
pub struct SendError(pub String);

impl H1Pool {
    pub fn new(host: &str, port: u16, max_idle: usize, connect_timeout: Duration) -> Self {
        // `Uri::host` keeps an IPv6 literal's brackets; a socket address does not want them.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let idle = Arc::new(Idle { conns: Mutex::new(Vec::new()), max: max_idle });
        H1Pool { host, port, idle, connect_timeout }
    }

    /// Sends a request (`target` in origin form, `headers` with `Host` and
    /// without framing) and waits for the response head.
    pub async fn send(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response<UpstreamBody>, SendError> {
        loop {
            let (mut conn, reused) = match self.idle.checkout() {
                Some(conn) => (conn, true),
                // Boxed: connecting is rare, and its state need not be
                // part of every request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            match conn.write_request(method, target, headers, body).await {
                Ok(()) => {}
                // Never started on a connection that closed while idle: try another.
                Err(Unsent::Nothing(_)) if reused => continue,
                Err(Unsent::Nothing(e) | Unsent::Part(e)) => {
                    return Err(SendError(format!("writing the request: {e}")));
                }
            }
            let head = conn.read_head(method).await?;
            return Ok(self.idle.attach(head, conn));
        }
    }

    async fn connect(&self) -> Result<Box<Conn>, SendError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => return Err(SendError("connect timed out".into())),
            Ok(Err(e)) => return Err(SendError(format!("connect: {e}"))),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Box::new(Conn { stream, read: BytesMut::new(), write: Vec::new() }))
    }
}

impl Idle {
    /// The most recently used connection still open.
    fn checkout(&self) -> Option<Box<Conn>> {
        loop {
            let conn = self.conns.lock().pop()?;
            if conn.quiet() {
                return Some(conn);
            }
        }
    }

    /// Puts a connection whose exchange is complete back, if it can take
    /// another request: the answer did not end it (`reusable`) and sent no
    /// more than it framed (anything left over would be read as the next
    /// answer).
    fn checkin(&self, mut conn: Box<Conn>, reusable: bool) {
        if !reusable || !conn.read.is_empty() {
            return;
        }
        if conn.read.capacity() > KEEP_BUFFER {
            conn.read = BytesMut::new();
        }
        if conn.write.capacity() > KEEP_BUFFER {
            conn.write = Vec::new();
        }
        let mut conns = self.conns.lock();
        if conns.len() < self.max {
            conns.push(conn);
        }
    }

    /// The response, with a body that reads the rest from `conn`. A body
    /// that came whole with the head frees the connection at once.
    fn attach(self: &Arc<Self>, head: Head, mut conn: Box<Conn>) -> Response<UpstreamBody> {
        let Head { status, version, headers, mut framing, reusable } = head;
        match framing.take_whole(&mut conn.read) {
            Some(data) => {
                self.checkin(conn, reusable);
                response(status, version, headers, UpstreamBody(Inner::Whole((!data.is_empty()).then_some(data))))
            }
            // Not all here yet: the body reads the rest.
            None => {
                let streaming = Streaming { conn: Some(conn), framing, reusable, idle: self.clone() };
                response(status, version, headers, UpstreamBody(Inner::Streaming(streaming)))
            }
        }
    }
}

fn response(
    status: http::StatusCode,
    version: http::Version,
    headers: HeaderMap,
    body: UpstreamBody,
) -> Response<UpstreamBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    response
}

/// A failed request write: whether any of it went out.
enum Unsent {
    Nothing(io::Error),
    Part(io::Error),
}

impl Conn {
    /// An idle connection the data plane has neither closed nor written
    /// to. The socket's readiness says so without a system call: the last
    /// read, short of its buffer, cleared it (tokio), so only a close or
    /// unasked bytes since then make this read the socket.
    fn quiet(&self) -> bool {
        matches!(self.stream.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    async fn write_request(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(), Unsent> {
        self.write.clear();
        codec::encode_head(method, target, headers, body.len(), &mut self.write);
        let inline = body.len() <= INLINE_BODY;
        if inline {
            self.write.extend_from_slice(body);
        }
        let first = match self.stream.write(&self.write).await {
            Ok(0) => return Err(Unsent::Nothing(io::ErrorKind::WriteZero.into())),
            Ok(n) => n,
            Err(e) => return Err(Unsent::Nothing(e)),
        };
        self.stream.write_all(&self.write[first..]).await.map_err(Unsent::Part)?;
        if !inline {
            self.stream.write_all(body).await.map_err(Unsent::Part)?;
        }
        Ok(())
    }

    async fn read_head(&mut self, method: &Method) -> Result<Head, SendError> {
        loop {
            if !self.read.is_empty()
                && let Some(head) = codec::parse_head(&mut self.read, method).map_err(|e| SendError(e.to_string()))?
            {
                return Ok(head);
            }
            make_room(&mut self.read);
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => {
                    return Err(SendError("connection closed before the response head".into()));
                }
                Ok(_) => {}
                Err(e) => return Err(SendError(format!("reading the response head: {e}"))),
            }
        }
    }
}

fn make_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_ROOM / 2 {
        buf.reserve(READ_ROOM);
    }
}

/// A response body from the data plane.
pub struct UpstreamBody(Inner);

enum Inner {
    /// Read with the head (or there is none).
    Whole(Option<Bytes>),
    /// Still arriving on a connection of this pool.
    Streaming(Streaming),
    /// From hyper-util's client (https): its connection has a task of its own.
    Hyper(Incoming),
}

/// A body being read from its connection, which goes back to the pool
/// once the body is complete (and is closed if the body is dropped before).
struct Streaming {
    /// `None` once the body ended or failed.
    conn: Option<Box<Conn>>,
    framing: Framing,
    reusable: bool,
    idle: Arc<Idle>,
}

impl UpstreamBody {
    pub fn driven_elsewhere(inner: Incoming) -> Self {
        UpstreamBody(Inner::Hyper(inner))
    }
}

impl Streaming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing.decode(&mut conn.read) {
                Ok(Step::Data(data)) => {
                    if self.framing.is_end() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => return self.fail(e.into()),
            }
            make_room(&mut conn.read);
            match ready!(tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.read)) {
                Ok(0) if matches!(self.framing, Framing::UntilClose) => {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return self.fail("connection closed before the end of the body".into()),
                Ok(_) => {}
                Err(e) => return self.fail(e.into()),
            }
        }
    }

    /// The body is complete: its connection may take the next request.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.idle.checkin(conn, self.reusable);
        }
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Whole(data) => f.debug_tuple("Whole").field(&data.as_ref().map(Bytes::len)).finish(),
            Inner::Streaming(s) => f.debug_tuple("Streaming").field(&s.framing).finish(),
            Inner::Hyper(inner) => f.debug_tuple("Hyper").field(inner).finish(),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Inner::Whole(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inner::Streaming(streaming) => streaming.poll_frame(cx),
            Inner::Hyper(inner) => Pin::new(inner).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Whole(data) => data.is_none(),
            Inner::Streaming(s) => s.conn.is_none(),
            Inner::Hyper(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Whole(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Streaming(s) => s.framing.remaining().map_or_else(SizeHint::default, SizeHint::with_exact),
            Inner::Hyper(inner) => inner.size_hint(),
        }
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

    fn pool_on(port: u16) -> H1Pool {
        H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1))
    }

    async fn get(pool: &H1Pool, port: u16) -> Result<Response<UpstreamBody>, SendError> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, format!("127.0.0.1:{port}").parse().unwrap());
        pool.send(&Method::GET, "/x", &headers, &Bytes::new()).await
    }

    async fn read_all(pool: &H1Pool, port: u16) -> Bytes {
        let response = get(pool, port).await.expect("answered");
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_not_a_failed_request() {
        let (port, accepted) = upstream(OK, 1).await;
        let pool = pool_on(port);
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
        let pool = pool_on(port);
        for _ in 0..5 {
            assert_eq!(&read_all(&pool, port).await[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_are_driven_by_the_requests_not_by_tasks() {
        let (port, _) = upstream(OK, usize::MAX).await;
        let pool = pool_on(port);
        let metrics = tokio::runtime::Handle::current().metrics();
        let response = get(&pool, port).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The upstream's accept loop and its one connection; none for ours.
        assert_eq!(metrics.num_alive_tasks(), 2, "no task for the client side of the connection");
        assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
    }

    #[tokio::test]
    async fn a_body_arriving_in_pieces_is_read_whole_and_frees_its_connection() {
        for parts in [
            vec![&b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nab"[..], b"cd", b"ef"],
            vec![
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"[..],
                b"3\r\ndef\r\n",
                b"0\r\n\r\n",
            ],
        ] {
            let parts = parts.into_iter().map(Bytes::from_static).collect();
            let (port, accepted) = scripted_upstream(parts, usize::MAX).await;
            let pool = pool_on(port);
            for _ in 0..3 {
                // Each later piece wakes the reader through the connection it polls.
                assert_eq!(&read_all(&pool, port).await[..], b"abcdef");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused after each whole body");
        }
    }

    #[tokio::test]
    async fn a_body_larger_than_any_read_buffer_streams_through_whole() {
        // Many frames, each read as the reader polls for it.
        let body: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        let (port, accepted) = scripted_upstream(vec![Bytes::from(head), Bytes::from(body.clone())], usize::MAX).await;
        let pool = pool_on(port);
        for _ in 0..2 {
            let response = get(&pool, port).await.unwrap();
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
        let pool = pool_on(port);
        for _ in 0..2 {
            let response = get(&pool, port).await.unwrap();
            drop(response);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a half-read connection is never reused");
    }

    #[tokio::test]
    async fn an_answer_without_a_body_frees_its_connection_at_once() {
        let (port, accepted) = upstream(b"HTTP/1.1 204 No Content\r\n\r\n", usize::MAX).await;
        let pool = pool_on(port);
        for _ in 0..3 {
            let response = get(&pool, port).await.unwrap();
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
        let pool = pool_on(port);
        let e = get(&pool, port).await.unwrap_err();
        assert!(e.0.starts_with("connect:"), "{}", e.0);
    }

    #[tokio::test]
    async fn the_request_goes_out_as_one_message_with_its_body_length() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"{\"rows\":[]}") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(OK).await.unwrap();
            got
        });
        let pool = pool_on(port);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "up".parse().unwrap());
        headers.insert(http::header::AUTHORIZATION, "Bearer t".parse().unwrap());
        let response =
            pool.send(&Method::POST, "/logs3?a=1", &headers, &Bytes::from_static(b"{\"rows\":[]}")).await.unwrap();
        assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
        let wire = received.await.unwrap();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "POST /logs3?a=1 HTTP/1.1\r\nhost: up\r\nauthorization: Bearer t\r\ncontent-length: 11\r\n\r\n{\"rows\":[]}"
        );
    }

    #[tokio::test]
    async fn a_whole_small_answer_frees_its_connection_before_the_body_is_read() {
        let (port, accepted) = upstream(OK, usize::MAX).await;
        let pool = pool_on(port);
        let first = get(&pool, port).await.unwrap();
        let second = get(&pool, port).await.unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "the first answer's connection took the second request");
        for response in [first, second] {
            assert_eq!(response.body().size_hint().exact(), Some(2));
            assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
        }
    }

    #[tokio::test]
    async fn answers_that_end_their_connection_are_read_whole_and_it_is_not_reused() {
        for (answer, body) in [
            (&b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"[..], &b"ok"[..]),
            // Framed by the close itself; the upstream closes after one answer.
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", b"until the end"),
            (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", b"ok"),
            // More than the framing said: the next answer would be garbage.
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA", b"ok"),
        ] {
            let (port, accepted) = upstream(answer, 1).await;
            let pool = pool_on(port);
            for _ in 0..2 {
                assert_eq!(&read_all(&pool, port).await[..], body, "{}", String::from_utf8_lossy(answer));
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 2, "{}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn a_broken_answer_is_a_send_error_and_the_next_request_gets_a_fresh_connection() {
        for (answer, error) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"[..], "invalid response: invalid content-length"),
            (b"garbage\r\n\r\n", "invalid response: malformed response head"),
            (b"HTTP/1.1 20", "connection closed before the response head"),
            (b"", "connection closed before the response head"),
        ] {
            let (port, accepted) = upstream(answer, 1).await;
            let pool = pool_on(port);
            for round in 1..=2 {
                let e = get(&pool, port).await.unwrap_err();
                assert_eq!(e.0, error);
                assert_eq!(accepted.load(Ordering::SeqCst), round);
            }
        }
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_when_read() {
        let (port, _) = upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", 1).await;
        let pool = pool_on(port);
        let body = get(&pool, port).await.unwrap().into_body();
        let e = body.collect().await.unwrap_err();
        assert_eq!(e.to_string(), "connection closed before the end of the body");
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(H1Pool::new("[::1]", 80, 1, Duration::from_secs(1)).host, "::1");
    }
}
