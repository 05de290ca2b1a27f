//! HTTP/1.1 messages on an upstream connection (RFC 9112): the request
//! head written, the response head parsed (by `httparse`), and how the
//! response body is framed and de-chunked. Pure: bytes in, bytes out; the
//! pool does the I/O.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use std::mem::MaybeUninit;

/// Most header fields a response head may carry (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section (read and dropped).
const MAX_TRAILERS: usize = 64 * 1024;
/// Body pieces up to this size are copied out of the read buffer, so that
/// the buffer stays unshared and is reused for the next read instead of
/// being reallocated (a data plane's answers are mostly this small).
const COPY_AT_MOST: usize = 4 * 1024;

/// The data plane's answer broke HTTP/1.1; the connection is not reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid response: {0}")]
pub(super) struct ProtocolError(pub &'static str);

/// Appends the request head. `headers` must not frame the body: any
/// Content-Length or Transfer-Encoding in them is left out and the length
/// of the (whole, in-memory) body is written instead.
pub(super) fn encode_head(method: &Method, target: &str, headers: &HeaderMap, body_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // An empty GET or DELETE says nothing about a body, as clients do; the
    // methods that carry one always give its length.
    if body_len > 0 || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed final response head.
#[derive(Debug)]
pub(super) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub reusable: bool,
}

/// Parses the final response head at the front of `buf` and removes it
/// (interim 1xx heads are dropped on the way); `None` until it is whole.
pub(super) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, ProtocolError> {
    loop {
        let Some(head) = parse_one(buf, method)? else {
            return Ok(None);
        };
        match head.status.as_u16() {
            101 => return Err(ProtocolError("protocol upgrades are not supported")),
            100..=199 => continue,
            _ => return Ok(Some(head)),
        }
    }
}

fn parse_one(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, ProtocolError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(ProtocolError("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProtocolError("too many header fields"));
        }
        Err(_) => return Err(ProtocolError("malformed response head")),
    };
    let status = StatusCode::from_u16(response.code.unwrap_or(0)).map_err(|_| ProtocolError("invalid status code"))?;
    let version = if response.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // The head is copied out whole (one allocation) and the header values
    // share it, rather than pinning the connection's read buffer.
    let bytes = Bytes::copy_from_slice(&buf[..len]);
    // Room for the few headers the gateway adds (request id) without a rehash.
    let mut headers = HeaderMap::with_capacity(response.headers.len() + 4);
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| ProtocolError("invalid header name"))?;
        let start = offset_of(buf, field.value);
        let value = HeaderValue::from_maybe_shared(bytes.slice(start..start + field.value.len()))
            .map_err(|_| ProtocolError("invalid header value"))?;
        headers.append(name, value);
    }
    buf.advance(len);
    let (framing, reusable) = framing_of(method, status, version, &headers)?;
    Ok(Some(Head { status, version, headers, framing, reusable }))
}

/// Where `part` (a slice of `buf`) starts in it.
fn offset_of(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

/// How the response body ends (RFC 9112 §6.3), and whether the connection
/// outlives it.
fn framing_of(
    method: &Method,
    status: StatusCode,
    version: Version,
    headers: &HeaderMap,
) -> Result<(Framing, bool), ProtocolError> {
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(headers, header::CONNECTION, "close"),
        _ => has_token(headers, header::CONNECTION, "keep-alive"),
    };
    if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Length(0), keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // A length beside it is ignored, and the connection not trusted again.
        let reusable = keep_alive && !headers.contains_key(header::CONTENT_LENGTH);
        return Ok(match last_token(headers, header::TRANSFER_ENCODING) {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => (Framing::Chunked(Chunked::default()), reusable),
            _ => (Framing::UntilClose, false),
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.to_str().map_err(|_| ProtocolError("invalid content-length"))?.split(',') {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ProtocolError("invalid content-length"));
            }
            let n: u64 = item.parse().map_err(|_| ProtocolError("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ProtocolError("conflicting content-length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::UntilClose, false),
    })
}

fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

fn last_token(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    tokens(headers, name).filter(|t| !t.is_empty()).last()
}

/// How much of the response body is still to come.
#[derive(Debug)]
pub(super) enum Framing {
    /// This many bytes.
    Length(u64),
    Chunked(Chunked),
    /// Everything until the data plane closes the connection.
    UntilClose,
}

/// What the buffered bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    /// Nothing yet: read more.
    NeedMore,
    /// The body is complete.
    End,
}

impl Framing {
    /// Takes the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        match self {
            Framing::Length(0) => Ok(Step::End),
            Framing::Length(remaining) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(buf.len());
                *remaining -= n as u64;
                Ok(Step::Data(take(buf, n)))
            }
            Framing::Chunked(chunked) => chunked.decode(buf),
            Framing::UntilClose if buf.is_empty() => Ok(Step::NeedMore),
            Framing::UntilClose => Ok(Step::Data(take(buf, buf.len()))),
        }
    }

    /// The whole body when it is all in `buf` and framed by its length.
    pub fn take_whole(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        match *self {
            Framing::Length(n) if n <= buf.len() as u64 => {
                *self = Framing::Length(0);
                Some(take(buf, n as usize))
            }
            _ => None,
        }
    }

    /// The body is known to be complete without reading further.
    pub fn is_end(&self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunked { state: ChunkState::Done }))
    }

    /// The body's exact remaining length, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Framing::Length(n) => Some(*n),
            _ if self.is_end() => Some(0),
            _ => None,
        }
    }
}

fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n <= COPY_AT_MOST {
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        bytes
    } else {
        buf.split_to(n).freeze()
    }
}

/// The chunked transfer coding, decoded incrementally.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting `size[;ext]CRLF`.
    #[default]
    Size,
    /// Inside a chunk: this many data bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines (dropped), this many bytes so far, until an empty line.
    Trailers(usize),
    Done,
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Step::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 { ChunkState::Trailers(0) } else { ChunkState::Data(size) };
                }
                ChunkState::Data(remaining) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(buf.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) };
                    return Ok(Step::Data(take(buf, n)));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers(seen) => {
                    let Some(line) = line(buf, MAX_TRAILERS.saturating_sub(seen))? else {
                        return Ok(Step::NeedMore);
                    };
                    self.state =
                        if line.is_empty() { ChunkState::Done } else { ChunkState::Trailers(seen + line.len() + 2) };
                }
                ChunkState::Done => return Ok(Step::End),
            }
        }
    }
}

/// The next CRLF-terminated line (without it), removed from `buf`.
fn line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, ProtocolError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) if end <= max => {
            let line = buf.split_to(end);
            buf.advance(2);
            Ok(Some(line))
        }
        Some(_) => Err(ProtocolError("chunk line or trailers too long")),
        None if buf.len() > max => Err(ProtocolError("chunk line or trailers too long")),
        None => Ok(None),
    }
}

/// `1*HEXDIG [ BWS ";" chunk-ext ]`.
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let rest_ok = rest.is_empty() || rest.iter().find(|b| !matches!(b, b' ' | b'\t')) == Some(&b';');
    if digits == 0 || digits > 16 || !rest_ok {
        return Err(ProtocolError("invalid chunk size"));
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| ProtocolError("invalid chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| ProtocolError("invalid chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<Head>, ProtocolError> {
        parse_head(&mut BytesMut::from(bytes), &Method::POST)
    }

    /// The whole body of `framing` fed from `wire` in pieces of `step` bytes.
    fn body(mut framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, usize), ProtocolError> {
        let (mut buf, mut out, mut fed) = (BytesMut::new(), Vec::new(), 0);
        loop {
            match framing.decode(&mut buf)? {
                Step::Data(d) => out.extend_from_slice(&d),
                Step::End => return Ok((out, buf.len() + wire.len() - fed)),
                Step::NeedMore if fed == wire.len() => {
                    return Err(ProtocolError("test: wire ended"));
                }
                Step::NeedMore => {
                    let n = step.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn a_request_head_carries_the_body_length_and_not_the_callers_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("up:8000"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        encode_head(&Method::POST, "/logs3?x=1", &headers, 12, &mut out);
        assert_eq!(out, b"POST /logs3?x=1 HTTP/1.1\r\nhost: up:8000\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 12\r\n\r\n");
        out.clear();
        encode_head(&Method::GET, "/v", &HeaderMap::new(), 0, &mut out);
        assert_eq!(out, b"GET /v HTTP/1.1\r\n\r\n");
        out.clear();
        encode_head(&Method::POST, "/v", &HeaderMap::new(), 0, &mut out);
        assert_eq!(out, b"POST /v HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn a_head_is_parsed_once_whole_and_leaves_the_body_in_the_buffer() {
        let wire = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\n{}";
        for cut in 0..wire.len() - 2 {
            assert!(head(&wire[..cut]).unwrap().is_none(), "partial at {cut}");
        }
        let mut buf = BytesMut::from(&wire[..]);
        let h = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!((h.status, h.version, h.reusable), (StatusCode::CREATED, Version::HTTP_11, true));
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert!(matches!(h.framing, Framing::Length(2)));
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn interim_answers_are_skipped_and_upgrades_refused() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
        let h = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert!(!h.headers.contains_key("link") && buf.is_empty());
        assert!(head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2").unwrap().is_none());
        assert_eq!(
            head(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n").unwrap_err().0,
            "protocol upgrades are not supported"
        );
    }

    #[test]
    fn malformed_or_oversized_heads_are_errors() {
        for (wire, why) in [
            (&b"HTTP/1.1 abc OK\r\n\r\n"[..], "malformed response head"),
            (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "malformed response head"),
            (b"SMTP 200 OK\r\n\r\n", "malformed response head"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n", "conflicting content-length values"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n", "conflicting content-length values"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "invalid content-length"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\n", "invalid content-length"),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n", "invalid content-length"),
        ] {
            assert_eq!(head(wire).unwrap_err().0, why, "{}", String::from_utf8_lossy(wire));
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(head(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes()).unwrap_err().0, "too many header fields");
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(long.as_bytes()).unwrap_err().0, "response head too large");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let parsed = |method: Method, wire: &[u8]| {
            let h = parse_head(&mut BytesMut::from(wire), &method).unwrap().unwrap();
            (format!("{:?}", h.framing), h.reusable)
        };
        let cases: [(Method, &[u8], &str, bool); 10] = [
            (Method::HEAD, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", "Length(0)", true),
            (Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n", "Length(0)", true),
            (Method::GET, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n", "Length(0)", true),
            (
                Method::GET,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n",
                "Chunked(Chunked { state: Size })",
                true,
            ),
            (
                Method::GET,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
                "Chunked(Chunked { state: Size })",
                false,
            ),
            (Method::GET, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", "UntilClose", false),
            (Method::GET, b"HTTP/1.1 200 OK\r\n\r\n", "UntilClose", false),
            (Method::GET, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n", "Length(3)", false),
            (Method::GET, b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n", "Length(3)", false),
            (
                Method::GET,
                b"HTTP/1.0 200 OK\r\ncontent-length: 3, 3\r\nconnection: Keep-Alive\r\n\r\n",
                "Length(3)",
                true,
            ),
        ];
        for (method, wire, framing, reusable) in cases {
            assert_eq!(parsed(method, wire), (framing.to_owned(), reusable), "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn bodies_decode_the_same_whatever_the_read_sizes() {
        let chunked = b"4;name=\"v\"\r\nabcd\r\n3 ; x\r\nefg\r\n10\r\n0123456789abcdef\r\n0\r\ntrailer: t\r\n\r\nNEXT";
        for step in 1..=chunked.len() {
            let (body_out, left) = body(Framing::Chunked(Chunked::default()), chunked, step).unwrap();
            assert_eq!(body_out, b"abcdefg0123456789abcdef", "step {step}");
            assert_eq!(left, 4, "the next message's bytes stay unread");
            let (body_out, left) = body(Framing::Length(5), b"hello!", step).unwrap();
            assert_eq!((&body_out[..], left), (&b"hello"[..], 1));
        }
        let big = vec![7u8; 3 * COPY_AT_MOST];
        assert_eq!(body(Framing::Length(big.len() as u64), &big, big.len()).unwrap().0, big);
    }

    #[test]
    fn broken_chunking_is_an_error() {
        for wire in [&b"x\r\n"[..], b"\r\n", b"4\r\nabcdXY", b"4 x\r\nabcd\r\n", b"11111111111111111\r\n", b"-1\r\n"] {
            assert!(body(Framing::Chunked(Chunked::default()), wire, 64).is_err(), "{}", String::from_utf8_lossy(wire));
        }
        let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        assert_eq!(
            body(Framing::Chunked(Chunked::default()), long_ext.as_bytes(), 64).unwrap_err().0,
            "chunk line or trailers too long"
        );
        let trailers = format!("0\r\n{}\r\n", "t: v\r\n".repeat(MAX_TRAILERS / 3));
        assert_eq!(
            body(Framing::Chunked(Chunked::default()), trailers.as_bytes(), 4096).unwrap_err().0,
            "chunk line or trailers too long"
        );
    }

    #[test]
    fn small_pieces_are_copied_and_leave_the_read_buffer_unshared() {
        let mut buf = BytesMut::with_capacity(8192);
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        let start = buf.as_ptr();
        let mut h = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.framing.decode(&mut buf).unwrap(), Step::Data(Bytes::from_static(b"{}")));
        assert!(h.framing.is_end() && buf.is_empty());
        // The same allocation takes the next answer: nothing else holds it.
        buf.reserve(8192);
        assert_eq!(buf.as_ptr(), start);
    }
}
