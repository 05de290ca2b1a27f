//! Raw HTTP/1.1 over a plain TCP socket, for tests about connections
//! themselves (keep-alive, idle and header timeouts, connection caps) where a
//! pooled client would hide what happens to the socket.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        RawConn { stream: TcpStream::connect(addr).await.expect("connect"), buf: Vec::new() }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// A `GET path` with a bearer token on a keep-alive connection.
    pub async fn get(&mut self, path: &str, token: &str) -> std::io::Result<()> {
        let req = format!("GET {path} HTTP/1.1\r\nhost: loggate\r\nauthorization: Bearer {token}\r\n\r\n");
        self.send(req.as_bytes()).await
    }

    /// Reads one response (Content-Length framed) within `timeout`; `None`
    /// if the connection closed (or failed) first.
    pub async fn response(&mut self, timeout: Duration) -> Option<RawResponse> {
        tokio::time::timeout(timeout, self.read_response()).await.expect("no response within the timeout")
    }

    async fn read_response(&mut self) -> Option<RawResponse> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    if !self.fill().await {
                        return None;
                    }
                }
                let body = String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                self.buf.drain(..end + 4 + len);
                return Some(RawResponse { status, head, body });
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Whether the peer closes the connection within `timeout` (bytes it
    /// sends meanwhile are kept for `response`).
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async { while self.fill().await {} }).await.is_ok()
    }

    /// Whether the connection is still open right now (no EOF pending).
    pub fn is_open(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
