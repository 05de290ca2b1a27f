//! The admin listener: `/metrics`, `/healthz`, `/readyz` (open, for scrapers
//! and probes) and, behind the admin bearer token, the `/v1/` admin API.

pub mod api;

use crate::config::Feed;
use crate::error::GatewayError;
use crate::forward::{Body, full};
use crate::metrics::Metrics;
use crate::policy::{PolicyStore, Store};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the admin listener reads of the running gateway.
pub struct Admin {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    feed: Feed,
    /// False once shutdown began: `/readyz` turns not-ready at once.
    accepting: Arc<AtomicBool>,
    /// SHA-256 of the admin token; `None` turns the admin API off.
    token_digest: Option<[u8; 32]>,
}

impl Admin {
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        feed: Feed,
        accepting: Arc<AtomicBool>,
        token: Option<String>,
    ) -> Self {
        let token_digest = token.map(|t| loggate_model::TokenDigest::of(&t).0);
        Admin { store, metrics, feed, accepting, token_digest }
    }

    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
        let path = request.uri().path();
        match (request.method(), path) {
            (&Method::GET, "/metrics") => {
                let mut r = Response::new(full(self.metrics.render()));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                Ok(r)
            }
            (&Method::GET, "/healthz") => Ok(json(StatusCode::OK, serde_json::json!({"status": "ok"}))),
            (&Method::GET, "/readyz") => {
                let accepting = self.accepting.load(Ordering::SeqCst);
                let store_ready = self.store.ready().await;
                let ready = accepting && store_ready;
                let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                Ok(json(
                    status,
                    serde_json::json!({
                        "ready": ready,
                        "accepting": accepting,
                        "policy_store": if store_ready { "ok" } else { "unreachable" },
                        "policy_revision": self.store.revision(),
                        // Informational too: left-out entries fail closed.
                        "policy_invalid_entries": self.store.invalid_entries(),
                        // Informational: a feed that is down alone keeps the gateway ready.
                        "invalidation_feed": self.feed_state(),
                    }),
                ))
            }
            (_, "/metrics" | "/healthz" | "/readyz") => {
                Err(GatewayError::MethodNotAllowed(request.method().to_string()))
            }
            (_, p) if p.starts_with("/v1/") => {
                let Some(expected) = &self.token_digest else {
                    return Err(GatewayError::NotFound(
                        "the admin API is off: admin.token_env is unset or empty".into(),
                    ));
                };
                self.check_admin_token(&request, expected)?;
                let Store::Postgres(pg) = &*self.store else {
                    return Err(GatewayError::NotFound(
                        "the admin API serves the postgres policy store; with policy.source = \"file\" the policy is the file".into(),
                    ));
                };
                let (parts, body) = request.into_parts();
                let body = read_body(body).await?;
                let path = parts.uri.path();
                let segments = path["/v1/".len()..].split('/').filter(|s| !s.is_empty()).collect();
                let api_request = api::ApiRequest {
                    method: &parts.method,
                    segments,
                    query: api::Query::parse(parts.uri.query()),
                    body,
                };
                let value = api::handle(pg, api_request).await?;
                Ok(json(StatusCode::OK, value))
            }
            _ => Err(GatewayError::NotFound(format!("no admin route {}", path.chars().take(100).collect::<String>()))),
        }
    }

    fn feed_state(&self) -> &'static str {
        match self.feed {
            Feed::None => "none",
            _ if self.metrics.invalidation_feed_up.get() == 1 => "up",
            _ => "down",
        }
    }

    fn check_admin_token(&self, request: &Request<Incoming>, expected: &[u8; 32]) -> Result<(), GatewayError> {
        let mut values = request.headers().get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(GatewayError::Unauthenticated("admin API needs exactly one Authorization: Bearer header"));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or(GatewayError::Unauthenticated("admin API needs Authorization: Bearer <admin token>"))?;
        let digest = loggate_model::TokenDigest::of(token.trim()).0;
        if bool::from(digest.ct_eq(expected)) {
            Ok(())
        } else {
            Err(GatewayError::Unauthenticated("wrong admin token"))
        }
    }
}

/// Admin request bodies (e.g. a large `batch_update`) are capped at this.
const MAX_ADMIN_BODY: usize = 16 * 1024 * 1024;

async fn read_body(body: Incoming) -> Result<Bytes, GatewayError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_ADMIN_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::PayloadTooLarge { limit: MAX_ADMIN_BODY })
        }
        Err(e) => Err(GatewayError::bad_request(None, format!("could not read request body: {e}"))),
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(serde_json::to_vec(&v).expect("json"))));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Serves the admin listener until `shutdown` fires.
pub async fn serve(admin: Arc<Admin>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move {
                    let response = match admin.handle(req).await {
                        Ok(r) => r,
                        Err(e) => e.to_response("admin").map(full),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
