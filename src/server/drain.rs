//! Graceful shutdown of one worker's connections.
//!
//! hyper-util's `GracefulShutdown` does the same job, but its connection
//! wrapper polls a `watch` channel on every poll of the connection, which
//! takes the channel's lock each time (about 900 instructions per proxied
//! request, measured with callgrind: 1.7% of loggate's user-space work).
//! Here a connection reads one atomic flag per poll and takes the lock only
//! when it registers its waker: on its first poll, and again only if its
//! task's waker ever changes.
//!
//! Order that makes it race-free: `start` sets the flag before it takes the
//! lock to wake the registered connections, and a connection looks at the
//! flag again under the lock right after registering; so a connection
//! either sees the flag or is woken.

use hyper_util::server::graceful::GracefulConnection;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

/// The drain signal of one worker, shared by its connections.
#[derive(Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Wakers of the live connections that have been polled, by id.
    wakers: HashMap<u64, Waker>,
    next_id: u64,
    /// Tickets not yet dropped (a watched connection holds its ticket
    /// until it finishes).
    live: usize,
    /// The task waiting in `drained`.
    waiting: Option<Waker>,
}

impl Drain {
    pub fn new() -> Self {
        Drain::default()
    }

    /// A place among this worker's connections, taken before the
    /// connection is ready to serve (a TLS handshake may come first):
    /// `drained` waits for it from now on.
    pub fn ticket(&self) -> Ticket {
        let id = {
            let mut state = self.shared.state.lock();
            state.live += 1;
            state.next_id += 1;
            state.next_id
        };
        Ticket { shared: self.shared.clone(), id }
    }

    /// Wraps `conn`: it runs as is until `start`, then is told to finish
    /// its in-flight requests and close.
    pub fn watch<C: GracefulConnection>(&self, conn: C) -> Watched<C> {
        self.ticket().watch(conn)
    }

    /// Tells every watched connection, now and later, to finish.
    pub fn start(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.shared.state.lock().wakers.drain().map(|(_, w)| w).collect();
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Resolves once every ticket and watched connection is gone.
    pub fn drained(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.shared.state.lock();
            if state.live == 0 {
                return Poll::Ready(());
            }
            state.waiting = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

/// One connection's place under a [`Drain`], until dropped.
pub struct Ticket {
    shared: Arc<Shared>,
    id: u64,
}

impl Ticket {
    pub fn watch<C: GracefulConnection>(self, conn: C) -> Watched<C> {
        Watched { conn: Box::pin(conn), ticket: self, registered: None, told: false }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        state.wakers.remove(&self.id);
        state.live -= 1;
        if state.live == 0
            && let Some(waiting) = state.waiting.take()
        {
            waiting.wake();
        }
    }
}

/// A connection under a [`Drain`].
pub struct Watched<C> {
    conn: Pin<Box<C>>,
    ticket: Ticket,
    /// The waker last registered (to notice a change without the lock).
    registered: Option<Waker>,
    /// `graceful_shutdown` was called.
    told: bool,
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = Result<(), C::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.told {
            let shared = &this.ticket.shared;
            let mut draining = shared.draining.load(Ordering::Acquire);
            if !draining && !this.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                let mut state = shared.state.lock();
                state.wakers.insert(this.ticket.id, cx.waker().clone());
                this.registered = Some(cx.waker().clone());
                draining = shared.draining.load(Ordering::Acquire);
            }
            if draining {
                this.told = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use std::time::Duration;
    use tokio::sync::oneshot;

    type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

    /// A request's way through the handler: it says it has arrived, then
    /// waits to be released.
    struct Hold {
        arrived: oneshot::Sender<()>,
        release: oneshot::Receiver<()>,
    }

    /// A real HTTP/1 server connection under `drain` whose handler, given a
    /// `Hold`, holds the first request until released, and a client for it.
    async fn connection(drain: &Drain, hold: Option<Hold>) -> (Sender, tokio::task::JoinHandle<bool>) {
        let (client, server) = tokio::io::duplex(4096);
        let hold = std::sync::Mutex::new(hold);
        let service = service_fn(move |_: Request<hyper::body::Incoming>| {
            let hold = hold.lock().unwrap().take();
            async move {
                if let Some(Hold { arrived, release }) = hold {
                    let _ = arrived.send(());
                    let _ = release.await;
                }
                Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server), service);
        let watched = drain.watch(conn);
        let served = tokio::spawn(async move { watched.await.is_ok() });
        let (sender, client_conn) = hyper::client::conn::http1::handshake(TokioIo::new(client)).await.unwrap();
        tokio::spawn(client_conn);
        (sender, served)
    }

    const SOON: Duration = Duration::from_secs(5);
    const A_WHILE: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn idle_connections_close_and_drained_resolves() {
        let drain = Drain::new();
        let (mut sender, served) = connection(&drain, None).await;
        assert_eq!(sender.send_request(Request::new(Empty::new())).await.unwrap().status(), 200);
        assert!(tokio::time::timeout(A_WHILE, drain.drained()).await.is_err(), "a live connection holds the drain");
        drain.start();
        tokio::time::timeout(SOON, drain.drained()).await.expect("drained after start");
        assert!(served.await.unwrap(), "closed cleanly");
    }

    #[tokio::test]
    async fn a_request_in_flight_is_answered_before_the_connection_closes() {
        let drain = Drain::new();
        let (arrived, has_arrived) = oneshot::channel();
        let (release, wait) = oneshot::channel();
        let (mut sender, served) = connection(&drain, Some(Hold { arrived, release: wait })).await;
        let answer =
            tokio::spawn(async move { sender.send_request(Request::new(Empty::new())).await.map(|r| r.status()) });
        has_arrived.await.unwrap();
        drain.start();
        assert!(tokio::time::timeout(A_WHILE, drain.drained()).await.is_err(), "waits for the request in flight");
        release.send(()).unwrap();
        assert_eq!(answer.await.unwrap().unwrap(), 200);
        tokio::time::timeout(SOON, drain.drained()).await.expect("drained once answered");
        assert!(served.await.unwrap());
    }

    #[tokio::test]
    async fn a_connection_watched_after_start_is_told_at_once() {
        let drain = Drain::new();
        drain.start();
        let (_sender, served) = connection(&drain, None).await;
        tokio::time::timeout(SOON, drain.drained()).await.expect("drained");
        assert!(served.await.unwrap());
    }

    #[tokio::test]
    async fn a_ticket_holds_the_drain_until_dropped() {
        let drain = Drain::new();
        let ticket = drain.ticket();
        drain.start();
        assert!(tokio::time::timeout(A_WHILE, drain.drained()).await.is_err());
        drop(ticket);
        tokio::time::timeout(SOON, drain.drained()).await.expect("drained");
    }
}
