//! The listeners: accept (connection cap, optional TLS), HTTP/1.1 and HTTP/2
//! with header-read timeouts, per-request load shedding, the gateway
//! pipeline, one access-log line and metrics per request, and graceful
//! shutdown on SIGTERM.

mod attachment;
pub mod body;
mod client_addr;
mod derive;
mod idle;
mod otel;
pub mod pipeline;
mod query;
mod register;
mod rewrite;
pub mod routes;
pub mod tls;
mod workers;

use crate::admin::Admin;
use crate::audit::{Audit, AuditRecord};
use crate::cache::{DecisionCache, WorkerCache};
use crate::config::{Config, Feed};
use crate::error::GatewayError;
use crate::forward::{Body, Forwarder};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::policy::Store;
use crate::policy::file::{FileStore, Reload};
use crate::policy::postgres::PgStore;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use pipeline::{Gateway, RequestFacts};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Everything a running gateway shares across connections.
pub struct Shared {
    pub gateway: Gateway,
    /// `server.max_concurrent_requests`, across all workers.
    pub inflight: Arc<Semaphore>,
    pub connections: Arc<Semaphore>,
    /// False once shutdown began: `/readyz` turns not-ready at once.
    pub accepting: Arc<AtomicBool>,
}

/// What the requests of one worker thread use: its own gateway (upstream
/// pool, metric copies) and request ids, and the process-wide request cap.
/// Nothing here but the cap is written by another worker.
pub struct WorkerContext {
    pub gateway: Gateway,
    inflight: Arc<Semaphore>,
    request_ids: RequestIds,
}

impl WorkerContext {
    /// Made by the worker itself: the gateway it takes has its own upstream pool.
    pub fn new(shared: &Shared, request_ids: RequestIds) -> Self {
        WorkerContext { gateway: shared.gateway.for_worker(), inflight: shared.inflight.clone(), request_ids }
    }
}

/// Request ids of one worker: 12 hex digits of its random seed, then 8 of
/// a counter (unique per worker until the counter wraps at 2^32; workers'
/// seeds are drawn independently).
pub struct RequestIds {
    seed: u64,
    seq: AtomicU64,
}

impl RequestIds {
    pub fn new() -> anyhow::Result<Self> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS random number generator: {e}"))?;
        Ok(RequestIds { seed: u64::from_le_bytes(seed) & 0xffff_ffff_ffff, seq: AtomicU64::new(0) })
    }

    fn next(&self) -> RequestId {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        RequestId::new(self.seed, n & 0xffff_ffff)
    }
}

/// 20 lowercase hex digits, built without the formatting machinery (this
/// runs once per request).
struct RequestId([u8; 20]);

impl RequestId {
    fn new(seed: u64, seq: u64) -> Self {
        let mut raw = [0u8; 10];
        raw[..6].copy_from_slice(&seed.to_be_bytes()[2..]);
        raw[6..].copy_from_slice(&seq.to_be_bytes()[4..]);
        let mut id = [0u8; 20];
        hex::encode_to_slice(raw, &mut id).expect("20 digits for 10 bytes");
        RequestId(id)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

/// Opens the configured policy store; for postgres, migrates first when
/// `policy.migrate_on_start` says so. An unreachable Postgres is not fatal
/// (the gateway starts not ready and fails closed) unless migrations were asked for.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(match config.policy.source {
        crate::config::PolicySource::File => Store::File(FileStore::open(&config.policy.file)?),
        crate::config::PolicySource::Postgres => {
            let url = config.policy.postgres_url.as_deref().unwrap_or_default();
            let store = PgStore::open(url, config.policy.timeout)?;
            if config.policy.migrate_on_start {
                let applied = store.migrate().await.map_err(|e| anyhow::anyhow!("policy.migrate_on_start: {e}"))?;
                tracing::info!(applied = ?applied, "postgres migrations up to date");
            }
            match store.revision().await {
                Ok(revision) => tracing::info!(revision, "postgres policy store reachable"),
                Err(e) => {
                    tracing::warn!(error = %e, "postgres policy store unreachable; failing closed until it answers")
                }
            }
            Store::Postgres(store)
        }
    })
}

/// Builds the gateway from its configuration: store, cache, forwarder.
pub async fn build(config: Config, upstream_token: Option<String>) -> anyhow::Result<Arc<Shared>> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new(config.invalidation.feed != Feed::None));
    let store = open_store(&config).await?;
    metrics.policy_loaded(crate::policy::PolicyStore::revision(&store));
    metrics.policy_invalid_entries.set(store.invalid_entries() as i64);
    let cache = Arc::new(DecisionCache::new(
        config.cache.max_decisions,
        config.cache.ttl,
        config.cache.negative_ttl,
        config.invalidation.max_staleness,
    ));
    if matches!(store, Store::Postgres(_)) && config.invalidation.feed == Feed::None {
        // Nothing pushes postgres changes: bound every cached answer's age
        // by `invalidation.max_staleness` instead.
        cache.set_push_healthy(false);
    }
    let forwarder = Forwarder::new(&config.upstream, upstream_token.as_deref())?;
    let limits = Arc::new(Limits::new(&config.limits));
    let audit = Audit::start(&config.audit, metrics.audit_records.clone(), metrics.audit_dropped.clone())
        .map_err(|e| anyhow::anyhow!("starting the audit writer: {e}"))?;
    Ok(Arc::new(Shared {
        inflight: Arc::new(Semaphore::new(config.server.max_concurrent_requests)),
        connections: Arc::new(Semaphore::new(config.server.max_connections)),
        gateway: Gateway {
            config,
            store: Arc::new(store),
            worker_cache: WorkerCache::new(cache.clone()),
            cache,
            forwarder,
            request_metrics: metrics.request.clone(),
            metrics,
            limits,
            audit,
        },
        accepting: Arc::new(AtomicBool::new(true)),
    }))
}

/// One request, start to finish: route, pipeline, metrics, access log.
async fn serve_request(
    worker: Arc<WorkerContext>,
    request: Request<Incoming>,
    client: SocketAddr,
    activity: Arc<idle::Activity>,
) -> Result<Response<Body>, Infallible> {
    let in_flight = activity.begin();
    let started = Instant::now();
    let gw = &worker.gateway;
    let id = worker.request_ids.next();
    let request_id = id.as_str();
    let method = request.method().clone();
    let route = gw.route(&method, request.uri().path());
    let label = route.as_ref().map(|r| r.label()).unwrap_or(routes::UNMATCHED);
    let mut facts = RequestFacts { decision: "none", ..RequestFacts::default() };
    let resolved = client_addr::resolve(client.ip(), request.headers(), &gw.config.server.trusted_proxies);
    let client_ip = resolved.as_ref().map_or(client.ip(), |ip| *ip);
    let result = match (route, resolved) {
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(route), Ok(_)) => match worker.inflight.try_acquire() {
            Err(_) => Err(GatewayError::Overloaded),
            Ok(_permit) => gw.handle(&route, request, client_ip, &mut facts).await,
        },
    };
    let status = Gateway::status_of(&result);
    let metrics = &gw.request_metrics;
    metrics.requests.with_label_values(&[label, status.as_str()]).inc();
    let elapsed = started.elapsed();
    metrics.request_seconds.with_label_values(&[label]).observe(elapsed.as_secs_f64());
    let error_code = result.as_ref().err().map(GatewayError::code);
    if let Err(e) = &result
        && !matches!(e, GatewayError::UpstreamUnavailable(_) | GatewayError::UpstreamTimeout(_))
    {
        let object_type = e.object().map(|(o, _)| o.object_type.as_str()).unwrap_or("");
        metrics
            .denials
            .with_label_values(&[e.code(), object_type, facts.identity.as_ref().map_or("", |i| i.org_id.as_str())])
            .inc();
    }
    let identity = facts.identity.as_deref();
    if facts.reached_auth && gw.audit.enabled() {
        gw.audit.record(AuditRecord {
            ts: std::time::SystemTime::now(),
            request_id: request_id.to_owned(),
            route: label,
            client_addr: client_ip,
            identity: facts.identity.clone(),
            decision: match facts.decision {
                "allow" | "shadow_allow" if result.is_ok() => facts.decision,
                _ => "deny",
            },
            status: status.as_u16(),
            reason: error_code.or(facts.shadow_reason),
            targets: std::mem::take(&mut facts.targets),
            rows: facts.rows,
            policy_revision: crate::policy::PolicyStore::revision(&*gw.store),
            latency_us: elapsed.as_micros() as u64,
        });
    }
    crate::telemetry::AccessRecord {
        request_id,
        method: method.as_str(),
        route: label,
        client: client_ip,
        status: status.as_u16(),
        error: error_code,
        token_id: identity.map(|i| i.token_id.as_str()),
        token_name: identity.map(|i| i.token_name.as_str()),
        org: identity.map(|i| i.org_id.as_str()),
        decision: facts.decision,
        rows: facts.rows,
        latency_us: elapsed.as_micros() as u64,
    }
    .log();
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if let GatewayError::UpstreamUnavailable(detail) = &e {
                tracing::warn!(request_id = %request_id, detail = %detail, "data plane unreachable");
            }
            e.to_response(request_id).map(crate::forward::full)
        }
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    // The connection counts as busy until the response body is done.
    Ok(response.map(|body| {
        use http_body_util::BodyExt;
        body.map_err(move |e| {
            let _ = &in_flight;
            e
        })
        .boxed()
    }))
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's header timer also runs while a keep-alive connection waits
        // for its next request; `idle::TimedIo` keeps both clocks instead.
        .header_read_timeout(None)
        .keep_alive(true)
        // A request being served runs to its end even if the caller shuts
        // its side: the batch is then forwarded whole or not at all rather
        // than cut off wherever the upstream exchange happened to be. It
        // also spares hyper a read (and a fresh 8 KiB read buffer, the old
        // one still holding this request's head) per request while the
        // answer is pending.
        .half_close(true)
        .writev(false)
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(256);
    builder
}

/// A plain-TCP refusal for connections beyond `max_connections`: the
/// `overloaded` error of `GatewayError`, serialized by hand because no HTTP
/// connection is served for it.
fn overloaded_response() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let response = GatewayError::Overloaded.to_response("none");
        let status = response.status();
        let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
        for (name, value) in response.headers() {
            out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
        out.push_str(&format!("connection: close\r\ncontent-length: {}\r\n\r\n", response.body().len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(response.body());
        bytes
    })
}

/// Serves the gateway listener until `shutdown` fires, then drains: the
/// accept loop runs here and hands connections to the workers.
pub async fn serve_gateway(
    shared: Arc<Shared>,
    listener: TcpListener,
    workers: workers::Workers,
    tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, client) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            refuse_connection(stream, tls);
            continue;
        };
        let _ = stream.set_nodelay(true);
        match stream.into_std() {
            Ok(stream) => workers.dispatch(workers::Accepted { stream, client, permit }),
            Err(e) => tracing::warn!(error = %e, "cannot hand over an accepted connection"),
        }
    }
    drop(listener);
    workers.drain().await;
}

fn refuse_connection(stream: TcpStream, tls: bool) {
    tokio::spawn(async move {
        if !tls {
            use tokio::io::AsyncWriteExt;
            let mut stream = stream;
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(overloaded_response())).await;
            let _ = stream.shutdown().await;
        }
    });
}

/// Starts the invalidation feed subscriber (`invalidation.feed != "none"`)
/// and, for a store with a change log, the bridge that publishes to it.
pub async fn spawn_invalidation(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let gw = &shared.gateway;
    crate::invalidation::spawn(&gw.config.invalidation, gw.cache.clone(), gw.metrics.clone(), Some(gw.store.clone()))?;
    crate::invalidation::bridge::spawn(&gw.config, gw.store.clone()).await?;
    Ok(())
}

/// Background upkeep: file policy reloads (file store only; postgres
/// changes arrive through the invalidation feed), TLS reloads, limiter pruning.
pub fn spawn_upkeep(shared: &Arc<Shared>, tls: Option<Arc<tls::ReloadingTls>>) {
    let gw = shared.clone();
    let file_store = matches!(&*gw.gateway.store, Store::File(_));
    if file_store {
        tokio::spawn(async move {
            let Store::File(store) = &*gw.gateway.store else {
                return;
            };
            let mut tick = tokio::time::interval(crate::policy::file::POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut changes = store.subscribe();
            loop {
                tokio::select! {
                    _ = tick.tick() => match tokio::task::block_in_place(|| store.reload_if_changed()) {
                        Reload::Unchanged => {}
                        Reload::Reloaded { left_out, .. } => {
                            gw.gateway.metrics.policy_invalid_entries.set(left_out as i64);
                        }
                        Reload::Failed(e) => {
                            gw.gateway.metrics.policy_reload_failures.inc();
                            tracing::error!(error = %e, "policy reload refused; the last good policy stays in force");
                        }
                    },
                    changed = changes.changed() => {
                        if changed.is_err() { break; }
                        let revision = *changes.borrow_and_update();
                        gw.gateway.cache.invalidate_all();
                        gw.gateway.metrics.invalidations.with_label_values(&["flush"]).inc();
                        if gw.gateway.config.invalidation.feed == Feed::None {
                            gw.gateway.metrics.policy_loaded(revision);
                        } else {
                            // With a feed, `loggate_policy_revision` is the feed's.
                            gw.gateway.metrics.policy_refreshed();
                        }
                        tracing::info!(revision, "policy reloaded");
                    }
                }
            }
        });
    }
    let limits_owner = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            limits_owner.gateway.limits.prune();
        }
    });
    if let Some(tls) = tls {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(tls::RELOAD_INTERVAL);
            loop {
                tick.tick().await;
                match tls.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "TLS certificate reload refused; keeping the last good pair")
                    }
                }
            }
        });
    }
}

/// Runs loggate until SIGTERM/SIGINT: binds both listeners, announces
/// them, serves, then drains within `server.shutdown_grace`.
pub async fn run(config: Config, upstream_token: Option<String>, admin_token: Option<String>) -> anyhow::Result<()> {
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::ReloadingTls::open(cert, key)?)),
        _ => None,
    };
    let listen = config.server.listen;
    let admin_listen = config.admin.listen;
    let shared = build(config, upstream_token).await?;
    #[cfg(feature = "bench-authz-off")]
    tracing::warn!(
        "BENCHMARK BUILD (feature bench-authz-off): authentication and authorization are OFF; never deploy this binary"
    );
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("server.listen {listen}: {e}"))?;
    let admin_listener =
        TcpListener::bind(admin_listen).await.map_err(|e| anyhow::anyhow!("admin.listen {admin_listen}: {e}"))?;
    if admin_token.is_none() {
        tracing::info!(
            token_env = %shared.gateway.config.admin.token_env,
            "admin API is off: its env var is unset or empty (health and metrics stay on)"
        );
    }
    let gw = &shared.gateway;
    let admin = Arc::new(Admin::new(
        gw.store.clone(),
        gw.metrics.clone(),
        gw.config.invalidation.feed,
        shared.accepting.clone(),
        admin_token,
    ));
    spawn_invalidation(&shared).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        admin_addr = %admin_listener.local_addr()?,
        tls = tls.is_some(),
        policy_revision = crate::policy::PolicyStore::revision(&*shared.gateway.store),
        "listening"
    );
    spawn_upkeep(&shared, tls.clone());
    if gw.config.audit.sink == crate::config::AuditSink::File {
        spawn_audit_reopen(gw.audit.clone())?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // The admin listener keeps answering while the gateway drains, so that
    // probes see `/readyz` 503 rather than a refused connection.
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = tokio::spawn(crate::admin::serve(admin, admin_listener, admin_stop_rx));
    let workers = workers::Workers::start(&shared, tls.clone())?;
    let gateway_task = tokio::spawn(serve_gateway(shared.clone(), listener, workers, tls.is_some(), stop_rx));
    wait_for_signal().await;
    tracing::info!("shutdown requested: not ready, draining in-flight requests");
    shared.accepting.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    let _ = gateway_task.await;
    let _ = admin_stop_tx.send(true);
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP (logrotate's `postrotate`) reopens the audit file.
fn spawn_audit_reopen(audit: Audit) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| anyhow::anyhow!("SIGHUP handler: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening the audit file");
            audit.reopen();
        }
    });
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_seed_then_counter_in_hex() {
        assert_eq!(super::RequestId::new(0xabc_def0_1234, 0x1f).as_str(), "0abcdef012340000001f");
        assert_eq!(super::RequestId::new(0xffff_ffff_ffff, 0xffff_ffff).as_str(), "ffffffffffffffffffff");
        let id = super::RequestId::new(0x0123_4567_89ab, 0x0102_0304);
        assert_eq!(id.as_str(), format!("{:012x}{:08x}", 0x0123_4567_89abu64, 0x0102_0304u64));
    }

    #[test]
    fn refusal_is_a_well_framed_overloaded_error() {
        let bytes = super::overloaded_response();
        let text = std::str::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        assert!(head.contains("retry-after: 1"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "overloaded");
    }
}
