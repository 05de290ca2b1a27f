//! A worker's own pool of HTTP/1.1 connections to a plain-http upstream.
//!
//! hyper-util's general client (kept for https, where ALPN may pick HTTP/2)
//! costs per request a pool keyed by scheme and authority, a connector
//! clone and a boxed future; under it, hyper's connection state machine
//! takes each request through a channel, answers through a callback, with
//! a dispatcher in between. A proxy that forwards whole, already read
//! bodies needs none of that. (What was measured is in
//! docs/decisions/upstream-h1-codec.md.)
//!
//! A request here takes the most recently used idle connection of its
//! worker (or opens one), writes its head and body in one write, and reads
//! the answer's head on the same task; the body is read by whoever reads
//! the response, and a connection whose body is complete goes back to the
//! pool. The message format itself is in `codec` (heads parsed by
//! `httparse`); it refuses any answer whose framing is not plain, and
//! passes headers on framed as the body is handed over (see its docs).
//!
//! A connection carries one answer at a time and never hands one answer's
//! bytes to the next caller: it goes back to the pool only when its answer
//! was whole, kept it open, and was followed by nothing; and a connection
//! taken from the pool is first asked, with a peek at its socket that does
//! not wait, whether the data plane closed it or sent anything while it sat
//! idle. The event loop's last word on the socket is not enough: bytes or a
//! close that came since may not have been seen by it yet. Such a
//! connection is closed and the request goes to another.
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
    /// The same socket (a duplicate descriptor, non-blocking as well), to
    /// peek at it directly: tokio's own reads go by the readiness its
    /// event loop last saw, and may not reach the socket at all.
    probe: std::net::TcpStream,
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
    /// without framing; any `Expect` is not sent) and waits for the final
    /// response head. The response's headers are the data plane's, but for
    /// framing: no `Transfer-Encoding` (the body is decoded) and at most one
    /// plain `Content-Length`. An answer whose framing is not plain is an
    /// error (see `codec`), and its connection is closed.
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
        let probe = probe_of(&stream).map_err(|e| SendError(format!("connect: {e}")))?;
        Ok(Box::new(Conn { stream, probe, read: BytesMut::new(), write: Vec::new() }))
    }
}

/// A second descriptor of `stream`'s socket, for [`Conn::quiet`].
#[cfg(unix)]
fn probe_of(stream: &TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn probe_of(stream: &TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::windows::io::AsSocket;
    Ok(std::net::TcpStream::from(stream.as_socket().try_clone_to_owned()?))
}

impl Idle {
    /// The most recently used connection still open and silent; the others
    /// on the way are closed.
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
    /// to, asked of the socket itself: a peek (one system call) that finds
    /// nothing to read and does not wait. Data (an answer nobody asked
    /// for), a close (0) or an error all mean the connection is done.
    /// tokio's `try_read` would not do: a short read cleared the socket's
    /// readiness, and until the event loop turns again it answers
    /// "would block" without asking the socket.
    fn quiet(&self) -> bool {
        matches!(self.probe.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
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
        // Bytes of the interim heads so far: all heads count toward one limit.
        let mut interim = 0;
        loop {
            if !self.read.is_empty()
                && let Some(head) =
                    codec::parse_head(&mut self.read, method, &mut interim).map_err(|e| SendError(e.to_string()))?
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

    /// What a caller got: the status, every Content-Length value, whether
    /// a Transfer-Encoding came along, and the body; or the error.
    async fn outcome(
        pool: &H1Pool,
        method: Method,
        headers: &HeaderMap,
    ) -> Result<(u16, Vec<String>, bool, Bytes), String> {
        let response = pool.send(&method, "/x", headers, &Bytes::new()).await.map_err(|e| e.0)?;
        let status = response.status().as_u16();
        let lengths = response.headers().get_all(http::header::CONTENT_LENGTH).iter();
        let lengths = lengths.map(|v| v.to_str().unwrap().to_owned()).collect();
        let te = response.headers().contains_key(http::header::TRANSFER_ENCODING);
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, lengths, te, body))
    }

    fn host(port: u16) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, format!("127.0.0.1:{port}").parse().unwrap());
        headers
    }

    /// Every request on a connection that stays open gets `answer`: a
    /// connection the pool must not reuse shows as a new one.
    async fn refused_on_every_connection(answer: String, error: &str) {
        let (port, accepted) = scripted_upstream(vec![Bytes::from(answer.clone())], usize::MAX).await;
        let pool = pool_on(port);
        for round in 1..=2 {
            let got = outcome(&pool, Method::GET, &host(port)).await;
            assert_eq!(got, Err(error.to_owned()), "{answer:?}");
            assert_eq!(accepted.load(Ordering::SeqCst), round, "never reused: {answer:?}");
        }
    }

    #[tokio::test]
    async fn an_answer_framed_both_by_length_and_by_chunks_is_refused_and_its_connection_dropped() {
        for head in [
            "content-length: 3\r\ntransfer-encoding: chunked",
            "transfer-encoding: chunked\r\ncontent-length: 100",
            "Transfer-Encoding: chunked\r\nContent-Length: 3, 3",
        ] {
            let answer = format!("HTTP/1.1 200 OK\r\n{head}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
            refused_on_every_connection(answer, "invalid response: both content-length and transfer-encoding").await;
        }
    }

    #[tokio::test]
    async fn a_content_length_list_of_one_value_or_with_leading_zeros_passes_on_as_one_plain_number() {
        for lengths in ["2, 2", "2,2", "002", " 2 ,  02 ", "2\r\ncontent-length: 2", "2\r\nContent-Length: 0002, 2"] {
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {lengths}\r\n\r\nok");
            let (port, accepted) = scripted_upstream(vec![Bytes::from(answer)], usize::MAX).await;
            let pool = pool_on(port);
            for _ in 0..2 {
                let got = outcome(&pool, Method::GET, &host(port)).await;
                assert_eq!(got, Ok((200, vec!["2".to_owned()], false, Bytes::from_static(b"ok"))), "{lengths:?}");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "a valid length keeps the connection: {lengths:?}");
        }
        // A plain value is passed on as it came (no new header value made).
        let (port, _) = upstream(OK, usize::MAX).await;
        let got = outcome(&pool_on(port), Method::HEAD, &host(port)).await;
        assert_eq!(got, Ok((200, vec!["2".to_owned()], false, Bytes::new())));
    }

    #[tokio::test]
    async fn content_lengths_that_differ_or_are_not_numbers_are_refused() {
        for (lengths, error) in [
            ("2, 3", "conflicting content-length values"),
            ("2\r\ncontent-length: 3", "conflicting content-length values"),
            ("2, 02, 3", "conflicting content-length values"),
            ("2,", "invalid content-length"),
            (", 2", "invalid content-length"),
            ("2, , 2", "invalid content-length"),
            ("", "invalid content-length"),
            ("2 2", "invalid content-length"),
            ("0x2", "invalid content-length"),
            ("+2", "invalid content-length"),
            ("2\r\ncontent-length: x", "invalid content-length"),
            ("18446744073709551616", "invalid content-length"),
        ] {
            let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {lengths}\r\n\r\nok");
            refused_on_every_connection(answer, &format!("invalid response: {error}")).await;
        }
    }

    #[tokio::test]
    async fn transfer_codings_other_than_chunked_alone_are_refused() {
        let body = "3\r\nabc\r\n0\r\n\r\n";
        for (head, error) in [
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked", "unsupported transfer-encoding"),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip", "unsupported transfer-encoding"),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip", "unsupported transfer-encoding"),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: identity", "unsupported transfer-encoding"),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, chunked", "unsupported transfer-encoding"),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked",
                "unsupported transfer-encoding",
            ),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: ", "unsupported transfer-encoding"),
            ("HTTP/1.1 204 No Content\r\ntransfer-encoding: gzip", "unsupported transfer-encoding"),
            ("HTTP/1.0 200 OK\r\ntransfer-encoding: chunked", "transfer-encoding in an HTTP/1.0 response"),
        ] {
            refused_on_every_connection(format!("{head}\r\n\r\n{body}"), &format!("invalid response: {error}")).await;
        }
    }

    #[tokio::test]
    async fn a_chunked_answer_passes_on_decoded_and_without_its_transfer_encoding() {
        for coding in ["chunked", "Chunked", "CHUNKED  "] {
            let answer =
                format!("HTTP/1.1 200 OK\r\ntransfer-encoding: {coding}\r\n\r\n3;a=b\r\nabc\r\n0\r\nt: 1\r\n\r\n");
            let (port, accepted) = scripted_upstream(vec![Bytes::from(answer)], usize::MAX).await;
            let pool = pool_on(port);
            for _ in 0..2 {
                let got = outcome(&pool, Method::GET, &host(port)).await;
                assert_eq!(got, Ok((200, vec![], false, Bytes::from_static(b"abc"))), "{coding:?}");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
    }

    /// Reads one request head from a blocking socket (requests here have
    /// no body); false once the client closed it.
    fn read_request_blocking(s: &mut std::net::TcpStream) -> bool {
        let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match std::io::Read::read(s, &mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// The first connection answers once, then (once the client has read
    /// that answer) either sends an unrequested answer or closes; later
    /// connections answer every request with "right". The upstream runs on
    /// a thread of its own, so that the client can wait for it without its
    /// runtime's event loop turning: the pool then learns of those bytes
    /// (or that close) only by asking the socket.
    #[tokio::test(flavor = "current_thread")]
    async fn bytes_or_a_close_while_idle_are_seen_at_checkout_even_before_the_event_loop_sees_them() {
        for close in [false, true] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
            let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
            let accepted = Arc::new(AtomicUsize::new(0));
            let count = accepted.clone();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for s in listener.incoming() {
                    let mut s = s.unwrap();
                    s.set_nodelay(true).unwrap();
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        assert!(read_request_blocking(&mut s));
                        std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
                            .unwrap();
                        read_rx.recv().unwrap();
                        if close {
                            drop(s);
                        } else {
                            let wrong = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nWRONG";
                            std::io::Write::write_all(&mut s, wrong).unwrap();
                            kept.push(s);
                        }
                        sent_tx.send(()).unwrap();
                    } else {
                        std::thread::spawn(move || {
                            while read_request_blocking(&mut s) {
                                let right = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nright";
                                if std::io::Write::write_all(&mut s, right).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                }
            });
            let pool = pool_on(port);
            assert_eq!(&read_all(&pool, port).await[..], b"first");
            read_tx.send(()).unwrap();
            // Blocking on purpose: the runtime does not turn meanwhile.
            sent_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let got = outcome(&pool, Method::GET, &host(port)).await;
            assert_eq!(got, Ok((200, vec!["5".to_owned()], false, Bytes::from_static(b"right"))), "close: {close}");
            assert_eq!(accepted.load(Ordering::SeqCst), 2, "close: {close}");
        }
    }

    #[tokio::test]
    async fn bytes_after_a_whole_answer_poison_its_connection() {
        for (method, answer, body) in [
            (Method::GET, &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA"[..], &b"ok"[..]),
            (Method::GET, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n\r\n", b"ok"),
            // A body after answers that have none.
            (Method::HEAD, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b""),
            (Method::GET, b"HTTP/1.1 204 No Content\r\ncontent-length: 2\r\n\r\nok", b""),
            (Method::GET, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 2\r\n\r\nok", b""),
        ] {
            // Sent whole, and sent with the extra bytes a moment later.
            for parts in [vec![Bytes::from_static(answer)], {
                let at = answer.len() - 2;
                vec![Bytes::from_static(&answer[..at]), Bytes::from_static(&answer[at..])]
            }] {
                let (port, accepted) = scripted_upstream(parts, usize::MAX).await;
                let pool = pool_on(port);
                for round in 1..=2 {
                    let (_, _, _, got) = outcome(&pool, method.clone(), &host(port)).await.unwrap();
                    assert_eq!(&got[..], body, "{}", String::from_utf8_lossy(answer));
                    // Let the rest arrive before the next request.
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    assert_eq!(accepted.load(Ordering::SeqCst), round, "{}", String::from_utf8_lossy(answer));
                }
            }
        }
    }

    #[tokio::test]
    async fn a_response_head_over_the_limit_is_refused_however_it_arrives() {
        let big = |n: usize| format!("x-pad: {}\r\n", "a".repeat(n));
        let final_head = |pad: &str| format!("HTTP/1.1 200 OK\r\n{pad}content-length: 2\r\n\r\n");
        // Exactly at the limit: passes.
        let fixed = final_head("").len() + big(0).len();
        let at_limit = final_head(&big(codec::MAX_HEAD_BYTES - fixed));
        assert_eq!(at_limit.len(), codec::MAX_HEAD_BYTES);
        let (port, _) = scripted_upstream(vec![Bytes::from(at_limit + "ok")], usize::MAX).await;
        assert_eq!(&read_all(&pool_on(port), port).await[..], b"ok");
        let over = final_head(&big(100 * 1024));
        let interim = format!("HTTP/1.1 103 Early Hints\r\n{}\r\n", big(40 * 1024));
        for parts in [
            // In one write; and most of it first, then the rest in one read.
            vec![over.clone() + "ok"],
            vec![over[..61 * 1024].to_owned(), over[61 * 1024..].to_owned() + "ok"],
            // Each head under the limit, together over it.
            vec![interim.clone() + &final_head(&big(40 * 1024)) + "ok"],
            vec![interim, final_head(&big(40 * 1024)) + "ok"],
        ] {
            let (port, accepted) = scripted_upstream(parts.into_iter().map(Bytes::from).collect(), usize::MAX).await;
            let pool = pool_on(port);
            for round in 1..=2 {
                let got = outcome(&pool, Method::GET, &host(port)).await;
                assert_eq!(got, Err("invalid response: response head too large".to_owned()));
                assert_eq!(accepted.load(Ordering::SeqCst), round);
            }
        }
    }

    #[tokio::test]
    async fn expect_is_not_forwarded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
            while !got.ends_with(b"{}") {
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
        headers.insert(http::header::EXPECT, "100-continue".parse().unwrap());
        let response = pool.send(&Method::POST, "/logs3", &headers, &Bytes::from_static(b"{}")).await.unwrap();
        assert_eq!(&response.into_body().collect().await.unwrap().to_bytes()[..], b"ok");
        let wire = received.await.unwrap();
        assert_eq!(String::from_utf8(wire).unwrap(), "POST /logs3 HTTP/1.1\r\nhost: up\r\ncontent-length: 2\r\n\r\n{}");
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_however_they_arrive_and_upgrades_refused() {
        let final_answer = &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"[..];
        let interim = &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"[..];
        let whole = [interim, final_answer].concat();
        for cut in [0, 10, 25, 30, interim.len() - 2, interim.len(), interim.len() + 5] {
            let parts = vec![Bytes::copy_from_slice(&whole[..cut]), Bytes::copy_from_slice(&whole[cut..])];
            let (port, accepted) = scripted_upstream(parts, usize::MAX).await;
            let pool = pool_on(port);
            for _ in 0..2 {
                let got = outcome(&pool, Method::POST, &host(port)).await;
                assert_eq!(got, Ok((200, vec!["2".to_owned()], false, Bytes::from_static(b"ok"))), "cut at {cut}");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
        let upgrade = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n";
        refused_on_every_connection(upgrade.to_owned(), "invalid response: protocol upgrades are not supported").await;
    }

    #[tokio::test]
    async fn a_close_delimited_body_is_read_to_its_end_and_its_connection_not_reused() {
        let parts =
            vec![Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\nab"), Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n")];
        let (port, accepted) = scripted_upstream(parts, 1).await;
        let pool = pool_on(port);
        for round in 1..=2 {
            let got = outcome(&pool, Method::GET, &host(port)).await;
            assert_eq!(got, Ok((200, vec![], false, Bytes::from_static(b"abHTTP/1.1 200 OK\r\n\r\n"))));
            assert_eq!(accepted.load(Ordering::SeqCst), round);
        }
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(H1Pool::new("[::1]", 80, 1, Duration::from_secs(1)).host, "::1");
    }
}
