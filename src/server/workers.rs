//! Thread-per-core serving.
//!
//! The accept loop (on the control runtime) hands every connection to the
//! worker serving the fewest. A worker is one OS thread running a
//! current-thread tokio runtime with its own upstream connection pool, so a
//! request is read, checked, forwarded and answered on one thread: no work
//! stealing, no wake-ups across threads between the client side and the
//! upstream side of a request. The control runtime keeps everything else
//! (admin API, invalidation feeds, reloads, Postgres connections).
//!
//! Shutdown: closing the hand-off channels tells each worker to stop taking
//! connections and drain its own within `server.shutdown_grace` (hyper-util's
//! `GracefulShutdown`, one per worker; docs/decisions/graceful-drain.md).

use super::{RequestIds, Shared, WorkerContext, http_builder, idle, serve_request, tls::ReloadingTls};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// An accepted connection on its way to a worker.
pub struct Accepted {
    pub stream: std::net::TcpStream,
    pub client: SocketAddr,
    /// Its place under `server.max_connections`, held until it closes.
    pub permit: OwnedSemaphorePermit,
}

pub struct Workers {
    lanes: Vec<Lane>,
}

struct Lane {
    conns: mpsc::UnboundedSender<Accepted>,
    /// Connections this worker is serving.
    live: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Drained>,
}

/// Whether a worker's connections all finished within the grace period.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drained {
    All,
    GraceElapsed,
}

impl Workers {
    /// Starts `server.workers` worker threads.
    pub fn start(shared: &Arc<Shared>, tls: Option<Arc<ReloadingTls>>) -> anyhow::Result<Workers> {
        let count = shared.gateway.config.server.worker_threads();
        let mut lanes = Vec::with_capacity(count);
        for i in 0..count {
            let (conns, incoming) = mpsc::unbounded_channel();
            let live = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot start worker runtime: {e}"))?;
            let request_ids = RequestIds::new()?;
            let worker = Worker { shared: shared.clone(), tls: tls.clone(), live: live.clone() };
            let thread = std::thread::Builder::new()
                .name(format!("loggate-worker-{i}"))
                .spawn(move || runtime.block_on(worker.run(incoming, request_ids)))
                .map_err(|e| anyhow::anyhow!("cannot start worker thread: {e}"))?;
            lanes.push(Lane { conns, live, thread });
        }
        Ok(Workers { lanes })
    }

    /// Hands `conn` to the least busy worker.
    pub fn dispatch(&self, conn: Accepted) {
        let Some(lane) = self.lanes.iter().min_by_key(|l| l.live.load(Ordering::Relaxed)) else {
            return;
        };
        lane.live.fetch_add(1, Ordering::Relaxed);
        if lane.conns.send(conn).is_err() {
            // The worker is gone (it only stops at shutdown): the
            // connection is dropped, i.e. closed.
            lane.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stops every worker after it drained its connections (each within
    /// `server.shutdown_grace`).
    pub async fn drain(self) {
        let threads: Vec<_> = self
            .lanes
            .into_iter()
            .map(|lane| {
                drop(lane.conns);
                lane.thread
            })
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            threads.into_iter().map(|t| t.join().unwrap_or(Drained::GraceElapsed)).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        if joined.iter().all(|d| *d == Drained::All) {
            tracing::info!("all connections drained");
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    tls: Option<Arc<ReloadingTls>>,
    live: Arc<AtomicUsize>,
}

impl Worker {
    async fn run(self, mut incoming: mpsc::UnboundedReceiver<Accepted>, request_ids: RequestIds) -> Drained {
        let context = Arc::new(WorkerContext::new(&self.shared, request_ids));
        let builder = Arc::new(http_builder());
        let graceful = GracefulShutdown::new();
        while let Some(conn) = incoming.recv().await {
            self.serve(conn, &context, &builder, &graceful);
        }
        let grace = self.shared.gateway.config.server.shutdown_grace;
        tokio::select! {
            _ = graceful.shutdown() => Drained::All,
            _ = tokio::time::sleep(grace) => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace elapsed; closing remaining connections");
                Drained::GraceElapsed
            }
        }
    }

    /// Serves one connection on this worker's runtime.
    fn serve(
        &self,
        conn: Accepted,
        context: &Arc<WorkerContext>,
        builder: &Arc<auto::Builder<TokioExecutor>>,
        graceful: &GracefulShutdown,
    ) {
        let Accepted { stream, client, permit } = conn;
        let live = LiveGuard(self.live.clone());
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register an accepted connection");
                return;
            }
        };
        let config = &self.shared.gateway.config.server;
        let timeouts = idle::Timeouts { idle: config.idle_timeout, header_read: config.header_read_timeout };
        let handshake_timeout = config.header_read_timeout;
        let activity = idle::Activity::new();
        let service = {
            let (context, activity) = (context.clone(), activity.clone());
            // Boxed: hyper moves the service future into its dispatcher.
            service_fn(move |req| Box::pin(serve_request(context.clone(), req, client, activity.clone())))
        };
        let builder = builder.clone();
        match &self.tls {
            None => {
                let io = idle::TimedIo::new(stream, activity, timeouts, idle::Protocol::Unknown);
                let conn =
                    graceful.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
                tokio::spawn(async move {
                    let _held = (permit, live);
                    let _ = conn.await;
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                // Watched from before the handshake: the drain waits for it.
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _held = (permit, live);
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await else {
                        return;
                    };
                    let protocol = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => idle::Protocol::Http2,
                        Some(_) => idle::Protocol::Http1,
                        None => idle::Protocol::Unknown,
                    };
                    let io = idle::TimedIo::new(stream, activity, timeouts, protocol);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
}

/// Counts a connection as live on its worker until it closes.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
