//! Connection timing (contract: Configuration `server.idle_timeout`, `header_read_timeout`).
//!
//! Every accepted connection's IO is wrapped in [`TimedIo`], which closes it
//! (the next read fails with `TimedOut`) when
//! - no request is in flight and none has begun for `idle_timeout`, counted
//!   from the connection's start or from the end of its last response; or
//! - over HTTP/1, the head of a next request began arriving but is not
//!   complete within `header_read_timeout` (slowloris).
//!
//! hyper's own HTTP/1 header timer also runs while a keep-alive connection
//! waits for its next request, so it would cut idle connections at
//! `header_read_timeout`; loggate turns it off and keeps both clocks here.
//! A request in flight has its own bounds (`body_read_timeout`,
//! `upstream.timeout`), so neither clock runs while one is.
//!
//! An idle connection costs its socket, a small buffer and one timer entry;
//! there is no task per connection beyond hyper's own.

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two clocks of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub header_read: Duration,
}

/// What a connection is doing, shared by its IO and its requests.
pub struct Activity {
    state: Mutex<State>,
    /// The connection's read side, woken when its last request ends.
    reader: AtomicWaker,
}

struct State {
    in_flight: usize,
    /// When the connection last became idle (start, or end of a response).
    idle_since: Instant,
    /// HTTP/1: when bytes of the next request head began arriving.
    head_since: Option<Instant>,
}

/// Held while a request is in flight (until its response body is done).
pub struct InFlight(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(State { in_flight: 0, idle_since: Instant::now(), head_since: None }),
            reader: AtomicWaker::new(),
        })
    }

    /// A request's head was parsed: the clocks stop until it is answered.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut st = self.state.lock();
        st.in_flight += 1;
        st.head_since = None;
        InFlight(self.clone())
    }

    fn bytes_arrived(&self, http1: bool) {
        let mut st = self.state.lock();
        if http1 && st.in_flight == 0 && st.head_since.is_none() {
            st.head_since = Some(Instant::now());
        }
    }

    /// When the connection must close if nothing happens, if ever.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        let st = self.state.lock();
        if st.in_flight > 0 {
            return None;
        }
        Some(match st.head_since {
            Some(since) => since + timeouts.header_read,
            None => st.idle_since + timeouts.idle,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.in_flight -= 1;
        if st.in_flight == 0 {
            st.idle_since = Instant::now();
            drop(st);
            self.0.reader.wake();
        }
    }
}

/// Which protocol the connection speaks, as far as the clocks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Not known yet (plain TCP before its first bytes): treated as HTTP/1.
    Unknown,
    Http1,
    Http2,
}

/// A connection's IO with the idle and header-read clocks.
pub struct TimedIo<T> {
    inner: T,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    protocol: Protocol,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

impl<T> TimedIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, timeouts: Timeouts, protocol: Protocol) -> Self {
        let sleep = Box::pin(tokio::time::sleep(timeouts.idle));
        TimedIo { inner, activity, timeouts, protocol, sleep, armed: None }
    }

    fn saw_bytes(&mut self, bytes: &[u8]) {
        if self.protocol == Protocol::Unknown && bytes.len() >= 4 {
            let n = bytes.len().min(H2_PREFACE_START.len());
            self.protocol = if bytes[..n] == H2_PREFACE_START[..n] { Protocol::Http2 } else { Protocol::Http1 };
        }
        self.activity.bytes_arrived(self.protocol != Protocol::Http2);
    }

    /// Ready when the connection has been quiet past its deadline.
    ///
    /// The timer is only ever moved to an earlier deadline. A deadline that
    /// moved later (every response restarts the idle clock) is picked up
    /// when the armed timer fires early: it is re-armed then. So a
    /// connection serving requests back to back touches the timer wheel
    /// about once per idle period rather than once per request.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.activity.reader.register(cx.waker());
        let Some(deadline) = self.activity.deadline(self.timeouts) else {
            return Poll::Pending;
        };
        if self.armed.is_none_or(|armed| armed > deadline) {
            self.sleep.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    let n = (filled.len() - before).min(H2_PREFACE_START.len());
                    let mut head = [0u8; H2_PREFACE_START.len()];
                    head[..n].copy_from_slice(&filled[before..before + n]);
                    this.saw_bytes(&head[..n]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_expired(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle or request head too slow",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Timeouts = Timeouts { idle: Duration::from_millis(300), header_read: Duration::from_millis(100) };

    #[tokio::test(start_paused = true)]
    async fn idle_connection_times_out_after_idle_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = TimedIo::new(server, activity, T, Protocol::Unknown);
        let started = Instant::now();
        let mut buf = [0u8; 8];
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), T.idle);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn started_head_must_complete_within_header_read_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, Activity::new(), T, Protocol::Unknown);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let started = Instant::now();
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), T.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn no_clock_runs_while_a_request_is_in_flight() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = TimedIo::new(server, activity.clone(), T, Protocol::Http1);
        let guard = activity.begin();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = io.read(&mut buf).await;
            (r.map_err(|e| e.kind()), Instant::now())
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        let released = Instant::now();
        drop(guard);
        let (r, at) = reader.await.unwrap();
        assert_eq!(r, Err(io::ErrorKind::TimedOut));
        assert_eq!(at - released, T.idle, "idle is counted from the end of the response");
        drop(client.shutdown().await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_clock_restarts_after_each_response() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut io = TimedIo::new(server, activity.clone(), T, Protocol::Http1);
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = io.read(&mut buf).await;
            (r.map_err(|e| e.kind()), Instant::now())
        });
        // A request comes and goes at 200 ms: the timer armed for 300 ms
        // fires early and is moved to 200 + 300 ms.
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(activity.begin());
        let (r, at) = reader.await.unwrap();
        assert_eq!(r, Err(io::ErrorKind::TimedOut));
        assert_eq!(at - started, Duration::from_millis(500));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_bytes_do_not_start_the_head_clock() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, Activity::new(), T, Protocol::Unknown);
        let started = Instant::now();
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let e = io.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), T.idle);
    }
}
