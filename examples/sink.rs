//! A minimal data plane for load tests: answers every request with `{}`
//! after reading its body, and `GET /auth` with 200 when the request's
//! `Authorization` is `Bearer <token>` (else 401) — the token check that
//! nginx's `auth_request` calls in `benches/load.sh`.
//!
//! Usage: `sink ADDR [TOKEN]`, e.g. `sink 127.0.0.1:9901 bt-st-…`.
//! One thread: its cost is the same for every configuration measured.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;

async fn answer(req: Request<Incoming>, expected: Arc<Option<String>>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/auth" {
        let ok = match expected.as_deref() {
            None => true,
            Some(token) => req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| t == token),
        };
        let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        return Ok(Response::builder().status(status).body(Full::new(Bytes::new())).expect("response"));
    }
    let _ = req.into_body().collect().await;
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("response"))
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9901".into());
    let expected = Arc::new(args.next());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("sink listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let expected = expected.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, expected.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}
