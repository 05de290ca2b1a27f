//! loggate's former graceful drain (`src/server/drain.rs` until it gave
//! way to hyper-util's `GracefulShutdown` on 2026-12-05), kept as the
//! reference `benches/drain.rs` measures the crate against. Not compiled
//! into loggate. Why it was dropped: docs/decisions/graceful-drain.md.
//!
//! A connection reads one atomic flag per poll and takes the lock only
//! when it registers its waker: on its first poll, and again only if its
//! task's waker ever changes. `start` sets the flag before it takes the
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
    shared: Arc<DrainState>,
}

#[derive(Default)]
struct DrainState {
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
    shared: Arc<DrainState>,
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
