//! HTTP/1.1 messages on an upstream connection (RFC 9112): the request
//! head written, the response head parsed (by `httparse`), and how the
//! response body is framed and de-chunked. Pure: bytes in, bytes out; the
//! pool does the I/O.
//!
//! The framing is strict, since a caller's server frames the answer again
//! from what is passed on, and a wrong framing hands one answer's bytes to
//! another. An answer is refused ([`ProtocolError`]; the connection is
//! closed) when its framing is anything but plain:
//!
//! - `Transfer-Encoding` other than exactly one field `chunked` (any case,
//!   trimmed): other codings, `chunked` not last or twice, or in an
//!   HTTP/1.0 answer, where RFC 9112 §6.1 calls the framing faulty;
//! - `Transfer-Encoding` and `Content-Length` together (RFC 9112 §6.3
//!   allows dropping the length; refusing is safer, as nginx does);
//! - a `Content-Length` that is not digits, or a list (or several fields)
//!   whose values differ (RFC 9110 §8.6).
//!
//! These hold for answers without a body (to HEAD, 204, 304) as well,
//! whose headers are passed on all the same. What is passed on is framed
//! the way the body is handed over: `Transfer-Encoding` is removed (the
//! body is de-chunked), and a `Content-Length` list of one value or with
//! leading zeros becomes one plain number. Chunk sizes and extensions
//! follow RFC 9112 §7.1 to the letter (no whitespace but the BWS the
//! grammar allows); trailer fields are read and dropped. Interim 1xx heads
//! are skipped (101 is refused), and every head of an answer, interim ones
//! included, counts toward one limit of [`MAX_HEAD_BYTES`].

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use std::mem::MaybeUninit;

/// Most header fields a response head may carry (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// Largest response head accepted: the final head and any interim heads
/// before it, together.
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
/// of the (whole, in-memory) body is written instead. `Expect` is left out
/// too: the body is already whole and goes out with the head, and a
/// `100 Continue` asked for would only come as an interim answer.
pub(super) fn encode_head(method: &Method, target: &str, headers: &HeaderMap, body_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::EXPECT {
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
/// `interim` counts the bytes of the interim heads this answer had so far
/// (start at 0 for each answer), so that all its heads together keep
/// within [`MAX_HEAD_BYTES`] however they arrive.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    interim: &mut usize,
) -> Result<Option<Head>, ProtocolError> {
    loop {
        match parse_one(buf, method, *interim)? {
            Parsed::Partial => return Ok(None),
            Parsed::Interim(len) => {
                buf.advance(len);
                *interim += len;
            }
            Parsed::Final(head) => return Ok(Some(head)),
        }
    }
}

enum Parsed {
    Partial,
    /// A 1xx head (not 101) this long.
    Interim(usize),
    Final(Head),
}

fn parse_one(buf: &mut BytesMut, method: &Method, before: usize) -> Result<Parsed, ProtocolError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) if before + len <= MAX_HEAD_BYTES => len,
        Ok(httparse::Status::Complete(_)) => return Err(ProtocolError("response head too large")),
        // All of `buf` is head so far, and there is more to come.
        Ok(httparse::Status::Partial) if before + buf.len() >= MAX_HEAD_BYTES => {
            return Err(ProtocolError("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProtocolError("too many header fields"));
        }
        Err(_) => return Err(ProtocolError("malformed response head")),
    };
    let status = StatusCode::from_u16(response.code.unwrap_or(0)).map_err(|_| ProtocolError("invalid status code"))?;
    match status.as_u16() {
        101 => return Err(ProtocolError("protocol upgrades are not supported")),
        // Interim: no body, and nothing of it is passed on.
        100..=199 => return Ok(Parsed::Interim(len)),
        _ => {}
    }
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
    let (framing, reusable) = framing_of(method, status, version, &mut headers)?;
    Ok(Parsed::Final(Head { status, version, headers, framing, reusable }))
}

/// Where `part` (a slice of `buf`) starts in it.
fn offset_of(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

/// How the response body ends (RFC 9112 §6.3), and whether the connection
/// outlives it. Refuses framing that is not plain (see the module docs);
/// leaves `headers` framed as the body is handed over: no
/// `Transfer-Encoding`, at most one plain `Content-Length`.
fn framing_of(
    method: &Method,
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), ProtocolError> {
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(headers, header::CONNECTION, "close"),
        _ => has_token(headers, header::CONNECTION, "keep-alive"),
    };
    let chunked = chunked(headers)?;
    if chunked && version != Version::HTTP_11 {
        return Err(ProtocolError("transfer-encoding in an HTTP/1.0 response"));
    }
    let length = content_length(headers)?;
    if chunked {
        if length.is_some() {
            return Err(ProtocolError("both content-length and transfer-encoding"));
        }
        headers.remove(header::TRANSFER_ENCODING);
    }
    Ok(if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        (Framing::Length(0), keep_alive)
    } else if chunked {
        (Framing::Chunked(Chunked::default()), keep_alive)
    } else {
        match length {
            Some(n) => (Framing::Length(n), keep_alive),
            None => (Framing::UntilClose, false),
        }
    })
}

/// Whether the answer is chunked: no `Transfer-Encoding`, or exactly one
/// field that is `chunked` alone; anything else is refused.
fn chunked(headers: &HeaderMap) -> Result<bool, ProtocolError> {
    let mut fields = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(first) = fields.next() else {
        return Ok(false);
    };
    let plain = first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked");
    if !plain || fields.next().is_some() {
        return Err(ProtocolError("unsupported transfer-encoding"));
    }
    Ok(true)
}

/// The body length the `Content-Length` fields give, if any: each field a
/// comma-separated list of digits (leading zeros allowed), all of the same
/// value. Unless they were one plain number already, the fields are
/// replaced by one that is.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, ProtocolError> {
    let (mut length, mut fields, mut plain) = (None, 0, true);
    for value in headers.get_all(header::CONTENT_LENGTH) {
        fields += 1;
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(ProtocolError("invalid content-length"));
            }
            let n = item.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')));
            let n = n.ok_or(ProtocolError("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ProtocolError("conflicting content-length values"));
            }
            plain &= item.len() == value.len() && (item[0] != b'0' || item.len() == 1);
            length = Some(n);
        }
    }
    if let Some(n) = length
        && (fields > 1 || !plain)
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
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

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, leading zeros
/// allowed, for a size within u64; then the extensions (ignored, but they
/// must follow their grammar: no stray bytes, no bare CR or LF).
fn chunk_size(line: &[u8]) -> Result<u64, ProtocolError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let size = line[..digits].iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(digit))
    });
    match size {
        Some(size) if digits > 0 && extensions_valid(&line[digits..]) => Ok(size),
        _ => Err(ProtocolError("invalid chunk size")),
    }
}

/// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, a name a token, a
/// value a token or a quoted-string.
fn extensions_valid(mut rest: &[u8]) -> bool {
    while !rest.is_empty() {
        let Some(after) = skip_ws(rest).strip_prefix(b";") else {
            return false;
        };
        let after = skip_ws(after);
        let name = token_len(after);
        if name == 0 {
            return false;
        }
        rest = &after[name..];
        if let Some(value) = skip_ws(rest).strip_prefix(b"=") {
            let value = skip_ws(value);
            let len = if value.first() == Some(&b'"') { quoted_len(value) } else { token_len(value) };
            if len == 0 {
                return false;
            }
            rest = &value[len..];
        }
    }
    true
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &bytes[n..]
}

/// The length of the token at the start of `bytes` (RFC 9110 §5.6.2).
fn token_len(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|&&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)).count()
}

/// The length of the quoted-string at the start of `bytes` (RFC 9110
/// §5.6.4), or 0 if there is none.
fn quoted_len(bytes: &[u8]) -> usize {
    let text = |b: u8| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return i + 1,
            b'\\' if bytes.get(i + 1).is_some_and(|&q| text(q)) => i += 2,
            b'\\' => return 0,
            _ if text(b) => i += 1,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Result<Option<Head>, ProtocolError> {
        parse_head(&mut BytesMut::from(bytes), &Method::POST, &mut 0)
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
        let h = parse_head(&mut buf, &Method::POST, &mut 0).unwrap().unwrap();
        assert_eq!((h.status, h.version, h.reusable), (StatusCode::CREATED, Version::HTTP_11, true));
        assert_eq!(h.headers["content-type"], "application/json");
        assert_eq!(h.headers.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
        assert!(matches!(h.framing, Framing::Length(2)));
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn interim_answers_are_skipped_and_upgrades_refused() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..]);
        let h = parse_head(&mut buf, &Method::POST, &mut 0).unwrap().unwrap();
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
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2,\r\n\r\n", "invalid content-length"),
            (b"HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n", "invalid content-length"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n",
                "both content-length and transfer-encoding",
            ),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n", "unsupported transfer-encoding"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", "unsupported transfer-encoding"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\n", "unsupported transfer-encoding"),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding:\r\n\r\n", "unsupported transfer-encoding"),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
                "unsupported transfer-encoding",
            ),
            (b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "transfer-encoding in an HTTP/1.0 response"),
            // Headers of answers without a body are passed on: the same rules.
            (b"HTTP/1.1 304 Not Modified\r\ncontent-length: 1, 2\r\n\r\n", "conflicting content-length values"),
            (b"HTTP/1.1 204 No Content\r\ntransfer-encoding: gzip\r\n\r\n", "unsupported transfer-encoding"),
        ] {
            assert_eq!(head(wire).unwrap_err().0, why, "{}", String::from_utf8_lossy(wire));
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(head(format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes()).unwrap_err().0, "too many header fields");
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(long.as_bytes()).unwrap_err().0, "response head too large");
    }

    #[test]
    fn the_head_limit_is_hard_and_counts_interim_heads() {
        let padded = |status: &str, pad: usize| format!("HTTP/1.1 {status}\r\nx: {}\r\n\r\n", "a".repeat(pad));
        let fixed = padded("200 OK", 0).len();
        // Whole at once, at the limit and one byte over it.
        assert!(head(padded("200 OK", MAX_HEAD_BYTES - fixed).as_bytes()).unwrap().is_some());
        assert_eq!(
            head(padded("200 OK", MAX_HEAD_BYTES - fixed + 1).as_bytes()).unwrap_err().0,
            "response head too large"
        );
        // Interim heads count: in the same buffer, and across calls.
        let interim = padded("103 Early Hints", 40 * 1024);
        let both = interim.clone() + &padded("200 OK", 40 * 1024);
        assert_eq!(head(both.as_bytes()).unwrap_err().0, "response head too large");
        let (mut buf, mut seen) = (BytesMut::from(interim.as_bytes()), 0);
        assert!(parse_head(&mut buf, &Method::GET, &mut seen).unwrap().is_none());
        assert_eq!((buf.len(), seen), (0, interim.len()));
        buf.extend_from_slice(&padded("200 OK", 30 * 1024).as_bytes()[..20 * 1024]);
        assert!(parse_head(&mut buf, &Method::GET, &mut seen).unwrap().is_none(), "partial, still under");
        buf.extend_from_slice(&padded("200 OK", 30 * 1024).as_bytes()[20 * 1024..]);
        assert_eq!(parse_head(&mut buf, &Method::GET, &mut seen).unwrap_err().0, "response head too large");
    }

    #[test]
    fn framing_headers_are_passed_on_as_the_body_is_handed_over() {
        for (wire, length) in [
            (&b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"[..], Some("2")),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\n\r\n", Some("2")),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 002\r\n\r\n", Some("2")),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 000\r\n\r\n", Some("0")),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", Some("0")),
            (b"HTTP/1.1 304 Not Modified\r\ncontent-length: 07, 7\r\n\r\n", Some("7")),
            (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", None),
            (b"HTTP/1.1 200 OK\r\n\r\n", None),
        ] {
            let h = head(wire).unwrap().unwrap();
            let lengths: Vec<_> = h.headers.get_all(header::CONTENT_LENGTH).iter().collect();
            assert_eq!(lengths, length.into_iter().collect::<Vec<_>>(), "{}", String::from_utf8_lossy(wire));
            assert!(!h.headers.contains_key(header::TRANSFER_ENCODING));
        }
    }

    #[test]
    fn expect_is_left_out_of_the_request_head() {
        let mut headers = HeaderMap::new();
        headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let mut out = Vec::new();
        encode_head(&Method::POST, "/", &headers, 2, &mut out);
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let parsed = |method: Method, wire: &[u8]| {
            let h = parse_head(&mut BytesMut::from(wire), &method, &mut 0).unwrap().unwrap();
            (format!("{:?}", h.framing), h.reusable)
        };
        let cases: [(Method, &[u8], &str, bool); 11] = [
            (Method::HEAD, b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", "Length(0)", true),
            (Method::HEAD, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "Length(0)", true),
            (Method::GET, b"HTTP/1.1 204 No Content\r\n\r\n", "Length(0)", true),
            (Method::GET, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n", "Length(0)", true),
            (
                Method::GET,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n",
                "Chunked(Chunked { state: Size })",
                true,
            ),
            (
                Method::GET,
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                "Chunked(Chunked { state: Size })",
                false,
            ),
            (Method::GET, b"HTTP/1.1 200 OK\r\n\r\n", "UntilClose", false),
            (Method::GET, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\n", "Length(3)", false),
            (Method::GET, b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n", "Length(3)", false),
            (
                Method::GET,
                b"HTTP/1.0 200 OK\r\ncontent-length: 3, 3\r\nconnection: Keep-Alive\r\n\r\n",
                "Length(3)",
                true,
            ),
            (Method::GET, b"HTTP/1.1 200 OK\r\ncontent-length: 0003\r\n\r\n", "Length(3)", true),
        ];
        for (method, wire, framing, reusable) in cases {
            assert_eq!(parsed(method, wire), (framing.to_owned(), reusable), "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn bodies_decode_the_same_whatever_the_read_sizes() {
        let chunked = b"4;name=\"v\"\r\nabcd\r\n3 ; x\t;y = \"a;\\\"b\"\r\nefg\r\n00000000000000000010;z=1\r\n0123456789abcdef\r\n0;last\r\ntrailer: t\r\n\r\nNEXT";
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
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\r\nabcdXY",
            b"4 x\r\nabcd\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
            b" 4\r\nabcd\r\n",
            b"4 \r\nabcd\r\n",
            b"4;\r\nabcd\r\n",
            b"4;a \r\nabcd\r\n",
            b"4;a=\r\nabcd\r\n",
            b"4;=b\r\nabcd\r\n",
            b"4;a=b c\r\nabcd\r\n",
            b"4;a=\"b\r\nabcd\r\n",
            b"4;a=\"b\\\x01\"\r\nabcd\r\n",
            b"4;a\nb\r\nabcd\r\n",
            b"4\rx\r\nabcd\r\n",
            b"4\nabcd\r\n0\r\n\r\n",
        ] {
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
        let mut h = parse_head(&mut buf, &Method::POST, &mut 0).unwrap().unwrap();
        assert_eq!(h.framing.decode(&mut buf).unwrap(), Step::Data(Bytes::from_static(b"{}")));
        assert!(h.framing.is_end() && buf.is_empty());
        // The same allocation takes the next answer: nothing else holds it.
        buf.reserve(8192);
        assert_eq!(buf.as_ptr(), start);
    }
}
