//! Forwarding to the data plane: each worker's own HTTP/1.1 pool for plain
//! http (`h1pool`), hyper-util's pooled client for https (rustls with the
//! ring provider; HTTP/2 when ALPN picks it), hop-by-hop header hygiene,
//! optional credential swap, and the mapping of transport failures to
//! 502/504. Any HTTP answer of the data plane, 5xx included, is passed back
//! unchanged.

mod tls;

use crate::config::{Credentials, PassthroughCredentials, Upstream, UpstreamConfig};
use crate::error::GatewayError;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use loggate_upstream::H1Pool;
pub use loggate_upstream::UpstreamBody;
use std::time::Duration;

pub use tls::client_tls_config;

/// Response bodies loggate sends: upstream streams or its own buffers.
pub type Body = BoxBody<Bytes, BoxError>;
pub use loggate_upstream::BoxError;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names (standard names
    // compare as integers) instead of a hashed removal per listed header.
    // Connection is in the list, so without it nothing else is named.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An upstream base URL and, for plain http (always HTTP/1.1), its `Host`
/// header made once rather than formatted by the client per request. Over
/// https the client sets it, since the connection may turn out HTTP/2.
struct Base {
    uri: Uri,
    host: Option<HeaderValue>,
    /// Plain http: this forwarder's own HTTP/1.1 pool (`h1pool`).
    h1: Option<H1Pool>,
}

impl Base {
    fn new(uri: Uri, limits: PoolLimits) -> Self {
        let (host, h1) = match (uri.scheme_str(), uri.host()) {
            (Some("http"), Some(host)) => {
                let port = uri.port_u16().unwrap_or(80);
                let value = match port {
                    80 => host.to_owned(),
                    _ => format!("{host}:{port}"),
                };
                let pool = H1Pool::new(host, port, limits.max_idle, limits.connect_timeout);
                (HeaderValue::from_str(&value).ok(), Some(pool))
            }
            _ => (None, None),
        };
        Base { uri, host, h1 }
    }

    /// The base's path joined with a request's path and query (the
    /// request's own, shared, when the base has no path).
    fn join(&self, path_and_query: &PathAndQuery) -> Result<PathAndQuery, GatewayError> {
        match self.uri.path().trim_end_matches('/') {
            "" => Ok(path_and_query.clone()),
            prefix => format!("{prefix}{path_and_query}").parse().map_err(|_| invalid_path()),
        }
    }

    /// The absolute URI on this base for a joined path and query.
    fn absolute(&self, path_and_query: PathAndQuery) -> Result<Uri, GatewayError> {
        let mut parts = self.uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|_| invalid_path())
    }
}

fn invalid_path() -> GatewayError {
    GatewayError::bad_request(None, "invalid request path")
}

/// How one request reaches the data plane.
enum Via<'a> {
    /// This worker's own HTTP/1.1 pool (plain http).
    Pool(&'a H1Pool),
    /// hyper-util's client (https), with the absolute URI.
    Client(Uri),
}

/// What every connection pool of a forwarder is sized and timed by.
#[derive(Clone, Copy)]
struct PoolLimits {
    max_idle: usize,
    connect_timeout: Duration,
}

pub struct Forwarder {
    client: Client<Connector, Full<Bytes>>,
    connector: Connector,
    limits: PoolLimits,
    api_base: Base,
    app_base: Base,
    timeout: Duration,
    /// `Some` in swap mode: the Authorization the data plane gets.
    swap_authorization: Option<HeaderValue>,
    /// `Some` when passthrough routes lend loggate's key too.
    passthrough_authorization: Option<HeaderValue>,
}

/// Whose credentials a forwarded request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credit {
    /// A route loggate authorized: loggate's own key under `credentials = "swap"`.
    Checked,
    /// A passthrough route: the caller's own, unless
    /// `passthrough_credentials = "swap"` lends loggate's key there too.
    Passthrough,
}

/// A forwarded request's response and how long the data plane took.
pub struct Forwarded {
    pub response: Response<UpstreamBody>,
    pub upstream_time: Duration,
}

impl Forwarder {
    pub fn new(config: &UpstreamConfig, upstream_token: Option<&str>) -> anyhow::Result<Self> {
        let tls = client_tls_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let limits = PoolLimits {
            max_idle: config.pool_max_idle_per_host,
            connect_timeout: config.timeout.min(Duration::from_secs(10)),
        };
        http.set_nodelay(true);
        http.set_connect_timeout(Some(limits.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = pooled_client(connector.clone(), limits.max_idle);
        let lent = |wanted: bool, setting: &str| -> anyhow::Result<Option<HeaderValue>> {
            match (wanted, upstream_token) {
                (false, _) => Ok(None),
                (true, Some(token)) => Ok(Some(
                    HeaderValue::from_str(&format!("Bearer {token}"))
                        .map_err(|_| anyhow::anyhow!("upstream token is not a valid header value"))?,
                )),
                (true, None) => anyhow::bail!("{setting} = \"swap\" needs an upstream token"),
            }
        };
        let swap_authorization = lent(config.credentials == Credentials::Swap, "credentials")?;
        let passthrough_authorization =
            lent(config.passthrough_credentials == PassthroughCredentials::Swap, "passthrough_credentials")?;
        Ok(Forwarder {
            client,
            connector,
            limits,
            api_base: Base::new(config.api_url.parse()?, limits),
            app_base: Base::new(config.app_url.parse()?, limits),
            timeout: config.timeout,
            swap_authorization,
            passthrough_authorization,
        })
    }

    /// The same forwarder with a connection pool of its own. Each worker
    /// thread takes one: a connection's socket is registered with the
    /// reactor of the runtime that opened it (and, over https, driven by a
    /// task there), so a pool shared across workers would wake other
    /// threads for every upstream answer.
    pub fn with_own_pool(&self) -> Forwarder {
        Forwarder {
            client: pooled_client(self.connector.clone(), self.limits.max_idle),
            connector: self.connector.clone(),
            limits: self.limits,
            api_base: Base::new(self.api_base.uri.clone(), self.limits),
            app_base: Base::new(self.app_base.uri.clone(), self.limits),
            timeout: self.timeout,
            swap_authorization: self.swap_authorization.clone(),
            passthrough_authorization: self.passthrough_authorization.clone(),
        }
    }

    fn base(&self, upstream: Upstream) -> &Base {
        match upstream {
            Upstream::Api => &self.api_base,
            Upstream::App => &self.app_base,
        }
    }

    /// The URI on `upstream` for a request's path and query.
    pub fn target_uri(&self, upstream: Upstream, path_and_query: &str) -> Result<Uri, GatewayError> {
        let base = self.base(upstream);
        let path_and_query = path_and_query.parse().map_err(|_| invalid_path())?;
        base.absolute(base.join(&path_and_query)?)
    }

    /// Sends a request with an already read body; waits for the response
    /// headers at most `upstream.timeout`.
    pub async fn send(
        &self,
        upstream: Upstream,
        credit: Credit,
        method: Method,
        path_and_query: &PathAndQuery,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Forwarded, GatewayError> {
        let base = self.base(upstream);
        let target = base.join(path_and_query)?;
        // Plain http goes straight to the origin over HTTP/1.1: the request
        // line carries the path and query only. https takes the absolute
        // URI (the connection may turn out HTTP/2).
        let via = match &base.h1 {
            Some(pool) => Via::Pool(pool),
            None => Via::Client(base.absolute(target.clone())?),
        };
        strip_hop_by_hop(&mut headers);
        match &base.host {
            Some(host) => headers.insert(header::HOST, host.clone()),
            None => headers.remove(header::HOST),
        };
        headers.remove(header::CONTENT_LENGTH);
        let lent = match credit {
            Credit::Checked => &self.swap_authorization,
            Credit::Passthrough => &self.passthrough_authorization,
        };
        if let Some(auth) = lent {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        // One clock read for both the timeout and `upstream_time`.
        let started = tokio::time::Instant::now();
        let exchange = async {
            match via {
                Via::Pool(pool) => pool.send(&method, target.as_str(), &headers, &body).await.map_err(|e| e.0),
                Via::Client(uri) => {
                    let mut request = Request::new(Full::new(body));
                    *request.method_mut() = method;
                    *request.uri_mut() = uri;
                    *request.headers_mut() = headers;
                    match self.client.request(request).await {
                        Ok(response) => Ok(response.map(UpstreamBody::driven_elsewhere)),
                        Err(e) => Err(describe("request failed", &e)),
                    }
                }
            }
        };
        match tokio::time::timeout_at(started + self.timeout, exchange).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(self.timeout)),
            Ok(Err(detail)) => Err(GatewayError::UpstreamUnavailable(detail)),
            Ok(Ok(mut response)) => {
                strip_hop_by_hop(response.headers_mut());
                Ok(Forwarded { response, upstream_time: started.elapsed() })
            }
        }
    }

    /// Reads a whole upstream response body (small JSON answers loggate
    /// rewrites or learns from), bounded in size and time.
    pub async fn read_body(&self, body: UpstreamBody, limit: usize) -> Result<Bytes, GatewayError> {
        let limited = http_body_util::Limited::new(body, limit);
        match tokio::time::timeout(self.timeout, limited.collect()).await {
            Err(_) => Err(GatewayError::UpstreamTimeout(self.timeout)),
            Ok(Err(e)) => Err(GatewayError::UpstreamUnavailable(format!("reading response body: {e}"))),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

fn pooled_client(connector: Connector, max_idle_per_host: usize) -> Client<Connector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle_per_host)
        .http1_writev(false)
        .timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

/// An error and its chain of causes, for the 502 message (connection-level
/// errors: no secrets).
fn describe(what: &str, e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{what}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Streams an upstream body back to the caller; a body that stalls longer
/// than `idle` between frames is cut off (the connection then closes).
pub fn stream_body(body: UpstreamBody, idle: Duration) -> Body {
    IdleTimeoutBody { inner: body, idle, stall: None, armed: false }.boxed()
}

/// The stall clock is set only when the body has to wait (a small answer
/// usually arrives with its head, so most responses never set it) and is
/// re-armed at the first wait after each frame.
struct IdleTimeoutBody<B = UpstreamBody> {
    inner: B,
    idle: Duration,
    stall: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Whether `stall` runs from the current wait (not an earlier one).
    armed: bool,
}

impl<B> http_body::Body for IdleTimeoutBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(|e| -> BoxError { e.into() })))
            }
            Poll::Pending => {
                let deadline = || tokio::time::Instant::now() + this.idle;
                let stall = match &mut this.stall {
                    Some(stall) if this.armed => stall,
                    Some(stall) => {
                        stall.as_mut().reset(deadline());
                        stall
                    }
                    None => this.stall.insert(Box::pin(tokio::time::sleep_until(deadline()))),
                };
                this.armed = true;
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err("upstream response body stalled".into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_is_cut_only_after_idle_without_a_frame() {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let frames = tokio_stream_of(rx).map(|b| Ok::<_, std::io::Error>(http_body::Frame::data(b)));
        let idle = Duration::from_millis(100);
        let mut body =
            IdleTimeoutBody { inner: http_body_util::StreamBody::new(frames), idle, stall: None, armed: false };
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tx);
        });
        for _ in 0..3 {
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), "x");
        }
        assert_eq!(started.elapsed(), Duration::from_millis(180), "waits shorter than idle pass, each timed anew");
        let cut = body.frame().await.unwrap();
        assert!(cut.is_err(), "a stall longer than idle ends the body with an error");
        assert_eq!(started.elapsed(), Duration::from_millis(280));
    }

    fn tokio_stream_of(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn headers_without_hop_by_hop_ones_are_kept_as_they_are() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("x-custom", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert!(!h.contains_key(header::UPGRADE));
    }

    #[test]
    fn target_uri_without_a_base_path_is_the_request_path() {
        let cfg = UpstreamConfig { api_url: "http://127.0.0.1:9".into(), ..UpstreamConfig::default() };
        let f = Forwarder::new(&cfg, None).unwrap();
        assert_eq!(f.target_uri(Upstream::Api, "/logs3?x=1").unwrap().to_string(), "http://127.0.0.1:9/logs3?x=1");
        assert!(f.target_uri(Upstream::Api, "/bad path").is_err());
    }

    #[test]
    fn plain_http_bases_carry_their_host_header() {
        let limits = PoolLimits { max_idle: 1, connect_timeout: Duration::from_secs(1) };
        let host = |url: &str| Base::new(url.parse().unwrap(), limits).host.map(|h| h.to_str().unwrap().to_owned());
        assert_eq!(host("http://127.0.0.1:9/base").as_deref(), Some("127.0.0.1:9"));
        assert_eq!(host("http://dataplane.internal").as_deref(), Some("dataplane.internal"));
        assert_eq!(host("http://dataplane.internal:80/").as_deref(), Some("dataplane.internal"));
        assert_eq!(host("https://api.braintrust.dev"), None, "https: the client sets it (HTTP/2 may be negotiated)");
    }

    #[test]
    fn target_uri_keeps_base_path_and_query() {
        let cfg = UpstreamConfig { api_url: "http://127.0.0.1:9/base/".into(), ..UpstreamConfig::default() };
        let f = Forwarder::new(&cfg, None).unwrap();
        assert_eq!(f.target_uri(Upstream::Api, "/logs3?x=1").unwrap().to_string(), "http://127.0.0.1:9/base/logs3?x=1");
        assert!(
            f.target_uri(Upstream::App, "/api/apikey/login")
                .unwrap()
                .to_string()
                .starts_with("https://www.braintrust.dev/api")
        );
    }
}
