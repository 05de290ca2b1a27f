//! A worker's own pool of HTTP/1.1 connections to a plain-http upstream.
//!
//! hyper-util's general client (kept for https, where ALPN may pick HTTP/2)
//! costs per request a pool keyed by scheme and authority, a connector
//! clone and a boxed 6.8 KiB future. With one pool per worker thread and a
//! single upstream address, none of that is needed: a request takes the
//! most recently used idle connection (or opens one) and hands the
//! connection back once the response head arrived. A connection still
//! streaming a response body is not ready and is skipped until it is.
//!
//! A request that a reused connection could not even start (it closed
//! while idle) is retried on another connection; one that was sent is
//! never retried.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

use super::describe;

pub(super) struct H1Pool {
    host: String,
    port: u16,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    max_idle: usize,
    connect_timeout: Duration,
}

/// Why a request got no response: a transport failure, for the 502.
#[derive(Debug)]
pub(super) struct SendError(pub String);

impl H1Pool {
    pub fn new(host: &str, port: u16, max_idle: usize, connect_timeout: Duration) -> Self {
        // `Uri::host` keeps an IPv6 literal's brackets; a socket address does not want them.
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        H1Pool { host, port, idle: Mutex::new(Vec::new()), max_idle, connect_timeout }
    }

    /// Sends `request` (origin-form URI, `Host` set) and waits for the
    /// response head.
    pub async fn send(&self, mut request: Request<Full<Bytes>>) -> Result<Response<Incoming>, SendError> {
        while let Some(mut sender) = self.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin(sender);
                    return Ok(response);
                }
                Err(mut e) => match e.take_message() {
                    // Never started on that connection: try another.
                    Some(unsent) => request = unsent,
                    None => return Err(SendError(describe("request failed", &e.into_error()))),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await.map_err(|e| SendError(describe("request failed", &e)))?;
        self.checkin(sender);
        Ok(response)
    }

    /// The most recently used ready connection; closed ones are dropped.
    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock();
        idle.retain(|s| !s.is_closed());
        let ready = idle.iter().rposition(|s| s.is_ready())?;
        Some(idle.swap_remove(ready))
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => return Err(SendError("connect timed out".into())),
            Ok(Err(e)) => return Err(SendError(format!("connect: {e}"))),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError(describe("handshake", &e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that answers one request per connection, then closes it.
    async fn one_shot_upstream() -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                drop(s);
            }
        });
        (port, task)
    }

    fn get(port: u16) -> Request<Full<Bytes>> {
        Request::builder().uri("/x").header("host", format!("127.0.0.1:{port}")).body(Full::new(Bytes::new())).unwrap()
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_not_a_failed_request() {
        let (port, upstream) = one_shot_upstream().await;
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        for _ in 0..5 {
            let response = pool.send(get(port)).await.expect("answered");
            let body = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        upstream.abort();
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_send_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pool = H1Pool::new("127.0.0.1", port, 8, Duration::from_secs(1));
        let e = pool.send(get(port)).await.unwrap_err();
        assert!(e.0.starts_with("connect:"), "{}", e.0);
    }

    #[test]
    fn ipv6_literals_lose_their_brackets() {
        assert_eq!(H1Pool::new("[::1]", 80, 1, Duration::from_secs(1)).host, "::1");
    }
}
