//! Talking to the gateway over HTTP: a response captured whole, the §5
//! error-shape check, and a raw socket client for requests no well-behaved
//! HTTP library will send (malformed framing, slow headers, odd bytes).

use bytes::Bytes;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("read response body");
        Resp { status, headers, body }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request built with reqwest and reads the whole answer.
pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    Resp::from(req.send().await.expect("request reaches the gateway")).await
}

/// Checks the §5 error contract of a status/body pair: the status, a JSON
/// body `{"error":{code,message,request_id,…}}` with `code`, and that none of
/// `secrets` appears anywhere in it. Returns the `error` object.
pub fn assert_error_body(status: u16, body: &[u8], want_status: u16, want_code: &str, secrets: &[&str]) -> Value {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, want_status, "want {want_status} {want_code}, got {status}: {text}");
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let e = v.get("error").unwrap_or_else(|| panic!("no 'error' object: {text}")).clone();
    assert_eq!(e["code"], want_code, "{text}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error.message missing: {text}");
    assert!(e["request_id"].as_str().is_some_and(|m| !m.is_empty()), "error.request_id missing: {text}");
    for s in secrets {
        assert!(!text.contains(s), "error body echoes a token: {text}");
    }
    e
}

/// [`assert_error_body`] for a captured response, also checking the
/// Content-Type is JSON.
pub fn assert_error(resp: &Resp, want_status: u16, want_code: &str, secrets: &[&str]) -> Value {
    let e = assert_error_body(resp.status, &resp.body, want_status, want_code, secrets);
    assert!(
        resp.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "error Content-Type is {:?}",
        resp.header("content-type")
    );
    e
}

/// What a raw exchange ended with.
#[derive(Debug)]
pub enum RawOutcome {
    /// A complete response (head plus a body framed by Content-Length, or
    /// read until close).
    Response(RawResponse),
    /// The server closed (or reset) the connection without answering.
    Closed { after: Duration },
    /// Nothing happened within the deadline.
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    pub after: Duration,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

impl RawOutcome {
    /// The status, panicking if there was no response.
    pub fn status(&self) -> u16 {
        match self {
            RawOutcome::Response(r) => r.status,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    pub fn response(&self) -> &RawResponse {
        match self {
            RawOutcome::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

/// Connects, writes `request` (all at once), and reads one response.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], deadline: Duration) -> RawOutcome {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    if stream.write_all(request).await.is_err() {
        return RawOutcome::Closed { after: started.elapsed() };
    }
    read_response(&mut stream, started, deadline).await
}

/// Reads one HTTP/1.1 response from `stream` before `started + deadline`.
pub async fn read_response(stream: &mut TcpStream, started: Instant, deadline: Duration) -> RawOutcome {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = started + deadline;
    let mut head_end = None;
    loop {
        if head_end.is_none() {
            head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
        if let Some(h) = head_end {
            let head = String::from_utf8_lossy(&buf[..h]).into_owned();
            let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let resp = RawResponse { status, head, body: buf[h..].to_vec(), after: started.elapsed() };
            match resp.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if resp.body.len() >= n => {
                    let mut resp = resp;
                    resp.body.truncate(n);
                    return RawOutcome::Response(resp);
                }
                _ => {}
            }
        }
        let remaining = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, stream.read(&mut chunk)).await {
            Err(_) => {
                return match head_end {
                    Some(h) => RawOutcome::Response(partial(&buf, h, started)),
                    None => RawOutcome::TimedOut,
                };
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return match head_end {
                    Some(h) => RawOutcome::Response(partial(&buf, h, started)),
                    None if buf.is_empty() => RawOutcome::Closed { after: started.elapsed() },
                    None => RawOutcome::Response(RawResponse {
                        status: 0,
                        head: String::from_utf8_lossy(&buf).into_owned(),
                        body: Vec::new(),
                        after: started.elapsed(),
                    }),
                };
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn partial(buf: &[u8], h: usize, started: Instant) -> RawResponse {
    let head = String::from_utf8_lossy(&buf[..h]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    RawResponse { status, head, body: buf[h..].to_vec(), after: started.elapsed() }
}

/// An HTTP/1.1 request head plus body, with `Connection: close` unless the
/// caller's headers say otherwise. `headers` are raw `Name: value` lines.
pub fn raw_request(method: &str, path: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: loggate.test\r\n").into_bytes();
    for h in headers {
        out.extend_from_slice(h);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
