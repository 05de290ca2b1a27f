//! Differential test of the pool's framing against an independent
//! reference decoder.
//!
//! Each case is a sequence of a few requests (GET, HEAD, POST, some with
//! `Expect: 100-continue`) and, for each, the bytes a scripted upstream
//! writes back: interim 1xx heads, a final head framed by a length (plain,
//! with leading zeros, as a list, in two fields, conflicting, or not a
//! number), by chunks (with extensions, odd size forms and trailers; with
//! valid and invalid transfer codings; with a length beside them) or by
//! the close; answers without a body (HEAD, 204, 304), some that send one
//! anyway; bodies with answers inside them; heads near and over the size
//! limit; and, now and then, bytes after the answer (pipelined or sent
//! while the connection sits idle), a corrupted byte, or an answer cut
//! short. The upstream writes them in pieces cut at random, pausing
//! between some, on blocking sockets on threads of its own, and tells the
//! client when an answer is all written; the client then waits for that
//! without its runtime's event loop turning (or, sometimes, letting it
//! turn), so that what the pool learns of a connection at checkout comes
//! from the socket itself.
//!
//! The reference reads the same bytes sequentially after RFC 9112 and the
//! crate's stated policy (framing that is not plain is refused; see the
//! crate's `codec` docs); it shares no code with the crate. Checked: what
//! each caller gets (status, `Content-Length` values, no
//! `Transfer-Encoding`, the body) equals the reference's answer, or is an
//! error where the reference calls the answer malformed; the size hint
//! holds; each request reaches the upstream once, whole, without `Expect`;
//! and the next request goes out on the same connection exactly when the
//! reference says the connection may carry another answer (it was kept
//! open, framed, whole, and nothing followed), else on a new one. That an
//! answer's bytes never reach another caller follows: every answer is
//! compared with the reference reading of its own bytes alone.

use bytes::Bytes;
use http::{HeaderMap, Method, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use loggate_upstream::H1Pool;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The crate's limit on an answer's heads, together (restated).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a head (restated).
const MAX_FIELDS: usize = 100;

// ---------------------------------------------------------------------------
// The reference decoder.

/// What the reference reads from an answer's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    Answer {
        status: u16,
        /// The Content-Length passed on, as one plain number.
        length: Option<u64>,
        body: Vec<u8>,
        /// The connection may carry the next request.
        reusable: bool,
    },
    Malformed(&'static str),
    /// More bytes are needed and the connection is still open.
    Incomplete,
}

struct RefHead {
    http10: bool,
    status: u16,
    /// Lowercased names, values without surrounding whitespace.
    fields: Vec<(String, Vec<u8>)>,
}

impl RefHead {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields.iter().filter(move |(n, _)| n == name).map(|(_, v)| &v[..])
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The length of the head at the start of `bytes`: up to and including
/// the first empty line after the status line. Lines end with LF, a CR
/// before it allowed (RFC 9112 §2.2); empty lines before the status line
/// are skipped, as a server skips them before a request line.
fn head_len(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    let mut seen_status = false;
    while let Some(lf) = bytes[start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[start..start + lf];
        start += lf + 1;
        let empty = line.is_empty() || line == b"\r";
        if empty && seen_status {
            return Some(start);
        }
        seen_status |= !empty;
    }
    None
}

/// A head (as `head_len` delimits it), or why it is malformed.
fn parse_head(head: &[u8]) -> Result<RefHead, &'static str> {
    let mut lines =
        head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).skip_while(|l| l.is_empty());
    let status_line = lines.next().ok_or("no status line")?;
    let rest = if let Some(r) = status_line.strip_prefix(b"HTTP/1.1 ") {
        (false, r)
    } else if let Some(r) = status_line.strip_prefix(b"HTTP/1.0 ") {
        (true, r)
    } else {
        return Err("not HTTP/1.x");
    };
    let (http10, rest) = rest;
    if rest.len() < 3 || !rest[..3].iter().all(u8::is_ascii_digit) {
        return Err("status code");
    }
    let status = rest[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if status < 100 {
        return Err("status code");
    }
    match &rest[3..] {
        [] => {}
        [b' ', reason @ ..] if reason.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f) => {}
        _ => return Err("reason phrase"),
    }
    let mut fields = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':').ok_or("field without colon")?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("field name");
        }
        if !value.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f) {
            return Err("field value");
        }
        fields.push((String::from_utf8_lossy(name).to_ascii_lowercase(), value.to_vec()));
    }
    if fields.len() > MAX_FIELDS {
        return Err("too many fields");
    }
    Ok(RefHead { http10, status, fields })
}

/// The chunk size of a chunk line, if the line follows
/// `1*HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn chunk_line(line: &[u8]) -> Option<u64> {
    let hex = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex == 0 {
        return None;
    }
    let mut size = 0u64;
    for &b in &line[..hex] {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        size = size.checked_mul(16)?.checked_add(u64::from(digit))?;
    }
    // A small state machine over the extensions.
    #[derive(PartialEq)]
    enum S {
        /// Before a ";" (or the end).
        Semi,
        /// After ";": whitespace, then a name.
        Name,
        /// In a name, or whitespace after it: "=" or ";" or the end.
        AfterName {
            ws: bool,
        },
        /// After "=": whitespace, then a value.
        Value,
        InToken,
        InQuoted,
        Escaped,
    }
    let mut state = S::Semi;
    for &b in &line[hex..] {
        let ws = b == b' ' || b == b'\t';
        state = match state {
            S::Semi if ws => S::Semi,
            S::Semi if b == b';' => S::Name,
            S::Name if ws => S::Name,
            S::Name if is_tchar(b) => S::AfterName { ws: false },
            S::AfterName { ws: false } if is_tchar(b) => S::AfterName { ws: false },
            S::AfterName { .. } if ws => S::AfterName { ws: true },
            S::AfterName { .. } if b == b'=' => S::Value,
            S::AfterName { .. } if b == b';' => S::Name,
            S::Value if ws => S::Value,
            S::Value if b == b'"' => S::InQuoted,
            S::Value if is_tchar(b) => S::InToken,
            S::InToken if is_tchar(b) => S::InToken,
            S::InToken if ws => S::Semi,
            S::InToken if b == b';' => S::Name,
            S::InQuoted if b == b'"' => S::Semi,
            S::InQuoted if b == b'\\' => S::Escaped,
            S::InQuoted | S::Escaped if b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80 => {
                S::InQuoted
            }
            _ => return None,
        };
    }
    // Whitespace is only allowed before ";" or "=", never at the end.
    let ends_clean = match state {
        S::Semi => line.last().is_none_or(|&b| b != b' ' && b != b'\t'),
        S::AfterName { ws } => !ws,
        S::InToken => true,
        _ => false,
    };
    ends_clean.then_some(size)
}

/// The next CRLF-ended line at `at`: (the line, where the next one starts).
fn crlf_line(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = bytes[at..].windows(2).position(|w| w == b"\r\n")?;
    Some((&bytes[at..at + end], at + end + 2))
}

enum Short {
    Malformed(&'static str),
    /// The bytes end before the message does.
    Short,
}

/// A chunked body from `at`: the data and where the message ends.
fn dechunk(wire: &[u8], mut at: usize) -> Result<(Vec<u8>, usize), Short> {
    let mut body = Vec::new();
    loop {
        let (line, next) = crlf_line(wire, at).ok_or(Short::Short)?;
        let size = chunk_line(line).ok_or(Short::Malformed("chunk line"))?;
        at = next;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).map_err(|_| Short::Short)?;
        if wire.len() - at < size {
            return Err(Short::Short);
        }
        body.extend_from_slice(&wire[at..at + size]);
        at += size;
        if wire.len() - at < 2 {
            return Err(Short::Short);
        }
        if &wire[at..at + 2] != b"\r\n" {
            return Err(Short::Malformed("no CRLF after chunk data"));
        }
        at += 2;
    }
    // Trailer lines, dropped, until an empty one.
    loop {
        let (line, next) = crlf_line(wire, at).ok_or(Short::Short)?;
        at = next;
        if line.is_empty() {
            return Ok((body, at));
        }
    }
}

/// How the pool should answer a request of `method` to which the
/// upstream wrote `wire`, closing the connection after it if `closed`.
fn reference(method: &Method, wire: &[u8], closed: bool) -> Ref {
    let short = |why| if closed { Ref::Malformed(why) } else { Ref::Incomplete };
    let (mut at, mut head_bytes) = (0, 0);
    let head = loop {
        let rest = &wire[at..];
        let Some(len) = head_len(rest) else {
            // All that is left is a head that has not ended.
            if head_bytes + rest.len() >= MAX_HEAD {
                return Ref::Malformed("head too large");
            }
            return short("closed in a head");
        };
        head_bytes += len;
        if head_bytes > MAX_HEAD {
            return Ref::Malformed("head too large");
        }
        let head = match parse_head(&rest[..len]) {
            Ok(head) => head,
            Err(why) => return Ref::Malformed(why),
        };
        at += len;
        match head.status {
            101 => return Ref::Malformed("upgrade"),
            100..=199 => continue,
            _ => break head,
        }
    };
    let has = |name, token: &str| {
        head.values(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
    };
    let keep_alive = if head.http10 { has("connection", "keep-alive") } else { !has("connection", "close") };
    let codings: Vec<&[u8]> = head.values("transfer-encoding").collect();
    let chunked = match codings[..] {
        [] => false,
        [coding] if trim_ows(coding).eq_ignore_ascii_case(b"chunked") => true,
        _ => return Ref::Malformed("transfer-encoding"),
    };
    if chunked && head.http10 {
        return Ref::Malformed("transfer-encoding in HTTP/1.0");
    }
    let mut length = None;
    for value in head.values("content-length") {
        for item in value.split(|&b| b == b',').map(trim_ows) {
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Ref::Malformed("content-length");
            }
            let Ok(n) = std::str::from_utf8(item).unwrap().parse::<u64>() else {
                return Ref::Malformed("content-length");
            };
            if length.is_some_and(|l| l != n) {
                return Ref::Malformed("content-lengths differ");
            }
            length = Some(n);
        }
    }
    if chunked && length.is_some() {
        return Ref::Malformed("content-length and chunked");
    }
    let bodyless = *method == Method::HEAD || head.status == 204 || head.status == 304;
    let (body, end, until_close) = if bodyless {
        (Vec::new(), at, false)
    } else if chunked {
        match dechunk(wire, at) {
            Ok((body, end)) => (body, end, false),
            Err(Short::Malformed(why)) => return Ref::Malformed(why),
            Err(Short::Short) => return short("closed in a chunked body"),
        }
    } else if let Some(n) = length {
        match usize::try_from(n) {
            Ok(n) if wire.len() - at >= n => (wire[at..at + n].to_vec(), at + n, false),
            _ => return short("closed in a body"),
        }
    } else if closed {
        (wire[at..].to_vec(), wire.len(), true)
    } else {
        return Ref::Incomplete;
    };
    let reusable = keep_alive && !until_close && end == wire.len() && !closed;
    Ref::Answer { status: head.status, length, body, reusable }
}

// ---------------------------------------------------------------------------
// What the upstream sends.

const METHODS: [Method; 5] = [Method::GET, Method::GET, Method::GET, Method::HEAD, Method::POST];
const INTERIM: [&str; 4] = [
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n",
    "HTTP/1.1 102 Processing\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
];
const STATUSES: [(u16, &str); 8] = [
    (200, "OK"),
    (200, "OK"),
    (201, "Created"),
    (204, "No Content"),
    (304, "Not Modified"),
    (404, "Not Found"),
    (500, "Internal Server Error"),
    (299, ""),
];
const CONNECTION: [&str; 5] = ["", "", "connection: close", "Connection: keep-alive", "connection: Keep-Alive, x-hop"];
/// `N` stands for the body length.
const JUNK_LENGTHS: [&str; 9] = ["", "N x", "+N", "0xN", "-1", "N,", "N, , N", "99999999999999999999999", "N;"];
const CODINGS: [&[&str]; 10] = [
    &["transfer-encoding: chunked"],
    &["transfer-encoding: chunked"],
    &["Transfer-Encoding: Chunked"],
    &["transfer-encoding:   CHUNKED  "],
    &["transfer-encoding: gzip, chunked"],
    &["transfer-encoding: chunked, gzip"],
    &["transfer-encoding: identity"],
    &["transfer-encoding: chunked, chunked"],
    &["transfer-encoding: chunked", "Transfer-Encoding: chunked"],
    &["transfer-encoding: "],
];
const EXTENSIONS: [&str; 16] = [
    "",
    "",
    "",
    "",
    ";a=b",
    ";a",
    " ; name=\"q;\\\"v\"",
    ";a=b;c=d",
    "\t;x = y",
    ";",
    "; =b",
    ";a=\"open",
    "x",
    " ",
    ";a=b c",
    ";a ",
];
const TRAILERS: [&str; 3] = ["", "x-t: 1\r\n", "x-t: 1\r\nX-U: a b\r\n"];
/// Bytes a corruption writes (all ASCII: a corrupted field stays text).
const CORRUPTIONS: &[u8] = b"\r\n \t0109aF;,:\"x\x00";

#[derive(Debug, Clone)]
enum LengthForm {
    Plain,
    Zeros(usize),
    List(usize, bool),
    TwoFields,
    Differ,
    Junk(usize),
}

impl LengthForm {
    fn lines(&self, n: usize) -> Vec<String> {
        match self {
            LengthForm::Plain => vec![format!("Content-Length: {n}")],
            LengthForm::Zeros(k) => vec![format!("content-length: {}{n}", "0".repeat(*k))],
            LengthForm::List(k, spaced) => {
                vec![format!("content-length: {}", vec![n.to_string(); *k].join(if *spaced { " , " } else { "," }))]
            }
            LengthForm::TwoFields => vec![format!("content-length: {n}"), format!("Content-Length: 0{n}")],
            LengthForm::Differ => vec![format!("content-length: {n}, {}", n + 1)],
            LengthForm::Junk(i) => vec![format!("content-length: {}", JUNK_LENGTHS[*i].replace('N', &n.to_string()))],
        }
    }
}

fn length_form() -> impl Strategy<Value = LengthForm> {
    prop_oneof![
        8 => Just(LengthForm::Plain),
        1 => (1..4usize).prop_map(LengthForm::Zeros),
        1 => (2..4usize, any::<bool>()).prop_map(|(k, s)| LengthForm::List(k, s)),
        1 => Just(LengthForm::TwoFields),
        1 => Just(LengthForm::Differ),
        1 => (0..JUNK_LENGTHS.len()).prop_map(LengthForm::Junk),
    ]
}

#[derive(Debug, Clone)]
struct ChunkedSpec {
    coding: usize,
    splits: Vec<Index>,
    extensions: Vec<usize>,
    size_forms: Vec<usize>,
    last: (usize, usize),
    trailers: usize,
    with_length: Option<LengthForm>,
}

#[derive(Debug, Clone)]
enum FramingSpec {
    Length(LengthForm),
    Chunked(ChunkedSpec),
    Close,
}

fn framing_spec() -> impl Strategy<Value = FramingSpec> {
    let chunked = (
        prop_oneof![6 => Just(0usize), 1 => 0..CODINGS.len()],
        vec(any::<Index>(), 0..5),
        vec(prop_oneof![6 => Just(0usize), 1 => 0..EXTENSIONS.len()], 1..4),
        vec(0..4usize, 1..4),
        (prop_oneof![6 => Just(0usize), 1 => 0..EXTENSIONS.len()], 0..4usize),
        0..TRAILERS.len(),
        prop::option::weighted(0.08, length_form()),
    )
        .prop_map(|(coding, splits, extensions, size_forms, last, trailers, with_length)| {
            FramingSpec::Chunked(ChunkedSpec { coding, splits, extensions, size_forms, last, trailers, with_length })
        });
    prop_oneof![
        5 => length_form().prop_map(FramingSpec::Length),
        4 => chunked,
        1 => Just(FramingSpec::Close),
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => vec(any::<u8>(), 0..24),
        1 => Just(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nFAKE".to_vec()),
        1 => Just(b"0\r\n\r\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
    ];
    prop_oneof![
        12 => vec(piece, 0..4).prop_map(|p| p.concat()),
        1 => vec(any::<u8>(), 3000..9000),
    ]
}

/// One request and the upstream's answer to it, as random choices.
#[derive(Debug, Clone)]
struct Spec {
    method: usize,
    expect: bool,
    interim: Vec<usize>,
    http10: bool,
    status: usize,
    connection: usize,
    framing: FramingSpec,
    body: Vec<u8>,
    /// Answers without a body (HEAD, 204, 304) send theirs anyway.
    body_anyway: bool,
    /// 0: none; 1: a head near the limit; 2: over it; 3: interim and
    /// final heads each under it, together over it.
    pad: usize,
    /// Bytes after the answer, and whether a pause comes before them.
    extra: Option<(Vec<u8>, bool)>,
    corrupt: Option<(Index, usize)>,
    truncate: Option<Index>,
    close: bool,
    /// Write boundaries, each with whether a pause comes before it.
    cuts: Vec<(Index, bool)>,
    /// Let the client's event loop turn after the answer was written.
    turn: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    let request = (0..METHODS.len(), prop::bool::weighted(0.2));
    let head = (
        prop_oneof![6 => Just(vec![]), 3 => vec(0..3usize, 1..3), 1 => vec(0..INTERIM.len(), 1..3)],
        prop::bool::weighted(0.1),
        0..STATUSES.len(),
        0..CONNECTION.len(),
        prop_oneof![40 => Just(0usize), 1 => 1..4usize],
    );
    let body = (framing_spec(), body_bytes(), prop::bool::weighted(0.15));
    let extra = prop::option::weighted(
        0.12,
        (
            prop_oneof![
                Just(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nWRONG".to_vec()),
                Just(b"\r\n".to_vec()),
                vec(any::<u8>(), 1..8),
            ],
            any::<bool>(),
        ),
    );
    let damage = (
        prop::option::weighted(0.1, (any::<Index>(), 0..CORRUPTIONS.len())),
        prop::option::weighted(0.08, any::<Index>()),
        prop::bool::weighted(0.15),
    );
    let delivery = (vec((any::<Index>(), prop::bool::weighted(0.25)), 0..4), prop::bool::weighted(0.3));
    (request, head, body, extra, damage, delivery).prop_map(
        |(
            (method, expect),
            (interim, http10, status, connection, pad),
            (framing, body, body_anyway),
            extra,
            (corrupt, truncate, close),
            (cuts, turn),
        )| Spec {
            method,
            expect,
            interim,
            http10,
            status,
            connection,
            framing,
            body,
            body_anyway,
            pad,
            extra,
            corrupt,
            truncate,
            close,
            cuts,
            turn,
        },
    )
}

fn chunk_size_text(n: usize, form: usize) -> String {
    match form {
        0 => format!("{n:x}"),
        1 => format!("{n:X}"),
        2 => format!("00{n:x}"),
        // More digits than a u64 has, all but the last few zeros.
        _ => format!("{n:0>20x}"),
    }
}

fn chunked_body(spec: &ChunkedSpec, body: &[u8]) -> Vec<u8> {
    let mut cuts: Vec<usize> = spec.splits.iter().map(|i| i.index(body.len() + 1)).collect();
    cuts.extend([0, body.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for (k, w) in cuts.windows(2).enumerate() {
        let data = &body[w[0]..w[1]];
        let size = chunk_size_text(data.len(), spec.size_forms[k % spec.size_forms.len()]);
        let extension = EXTENSIONS[spec.extensions[k % spec.extensions.len()]];
        out.extend_from_slice(format!("{size}{extension}\r\n").as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    let last = chunk_size_text(0, spec.last.1);
    out.extend_from_slice(format!("{last}{}\r\n{}\r\n", EXTENSIONS[spec.last.0], TRAILERS[spec.trailers]).as_bytes());
    out
}

/// One request, the upstream's answer, and what the reference reads.
#[derive(Debug)]
struct Exchange {
    method: Method,
    expect: bool,
    /// The answer in the pieces it is written in, each with whether a
    /// pause comes before it.
    pieces: Vec<(Vec<u8>, bool)>,
    close: bool,
    turn: bool,
    reference: Ref,
}

fn render(spec: &Spec) -> Exchange {
    let method = METHODS[spec.method].clone();
    let (status, reason) = STATUSES[spec.status];
    let mut wire = Vec::new();
    let pad = |n: usize| format!("x-pad: {}\r\n", "p".repeat(n));
    for &i in &spec.interim {
        wire.extend_from_slice(INTERIM[i].as_bytes());
    }
    if spec.pad == 3 {
        wire.extend_from_slice(format!("HTTP/1.1 103 Early Hints\r\n{}\r\n", pad(40_000)).as_bytes());
    }
    let mut lines = vec![format!("HTTP/1.{} {status} {reason}", if spec.http10 { 0 } else { 1 })];
    if !CONNECTION[spec.connection].is_empty() {
        lines.push(CONNECTION[spec.connection].to_owned());
    }
    lines.push("content-type: application/octet-stream".to_owned());
    let body = match &spec.framing {
        FramingSpec::Length(form) => {
            lines.extend(form.lines(spec.body.len()));
            spec.body.clone()
        }
        FramingSpec::Chunked(chunked) => {
            lines.extend(CODINGS[chunked.coding].iter().map(|s| s.to_string()));
            if let Some(form) = &chunked.with_length {
                lines.extend(form.lines(spec.body.len()));
            }
            chunked_body(chunked, &spec.body)
        }
        FramingSpec::Close => spec.body.clone(),
    };
    lines.push("x-request: 1".to_owned());
    let mut head = lines.join("\r\n") + "\r\n";
    match spec.pad {
        1 => head += &pad(MAX_HEAD - 400 - head.len()),
        2 => head += &pad(MAX_HEAD + 10),
        3 => head += &pad(30_000),
        _ => {}
    }
    wire.extend_from_slice(head.as_bytes());
    wire.extend_from_slice(b"\r\n");
    let bodyless = method == Method::HEAD || status == 204 || status == 304;
    if !bodyless || spec.body_anyway {
        wire.extend_from_slice(&body);
    }
    let mut cuts: Vec<(usize, bool)> = Vec::new();
    if let Some((extra, pause)) = &spec.extra {
        cuts.push((wire.len(), *pause));
        wire.extend_from_slice(extra);
    }
    if let Some((at, byte)) = &spec.corrupt {
        let at = at.index(wire.len());
        wire[at] = CORRUPTIONS[*byte];
    }
    let mut close = spec.close;
    if let Some(at) = &spec.truncate {
        wire.truncate(at.index(wire.len() + 1));
        close = true;
    }
    let mut reference = reference(&method, &wire, close);
    if reference == Ref::Incomplete {
        // The answer needs the close to end (or never ends): close it.
        close = true;
        reference = self::reference(&method, &wire, close);
    }
    assert_ne!(reference, Ref::Incomplete);
    cuts.extend(spec.cuts.iter().map(|(at, pause)| (at.index(wire.len() + 1), *pause)));
    cuts.retain(|&(at, _)| at > 0 && at < wire.len());
    cuts.sort_unstable();
    cuts.dedup_by_key(|c| c.0);
    let mut pieces = Vec::new();
    let mut start = (0, false);
    for cut in cuts {
        pieces.push((wire[start.0..cut.0].to_vec(), start.1));
        start = cut;
    }
    pieces.push((wire[start.0..].to_vec(), start.1));
    Exchange { method, expect: spec.expect, pieces, close, turn: spec.turn, reference }
}

// ---------------------------------------------------------------------------
// The scripted upstream: blocking sockets, a thread per connection.

/// An upstream's report that it has written (or given up writing) an answer.
#[derive(Debug)]
struct Served {
    index: usize,
    conn: usize,
    method: String,
    expect: bool,
    /// More bytes came after the request (a pipelined request).
    pipelined: bool,
}

struct Upstream {
    port: u16,
    served: mpsc::Receiver<Served>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

/// Reads one request (head, and body by its length); `None` at the end.
fn read_request(s: &mut TcpStream) -> Option<(String, bool, bool)> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let method = head.split(' ').next().unwrap_or_default().to_uppercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("the pool sends a plain content-length"));
    while got.len() < head_end + length {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some((method, head.contains("\r\nexpect:"), got.len() > head_end + length))
}

impl Upstream {
    fn start(script: Arc<Vec<Exchange>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, served) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, threads) = (stop.clone(), threads.clone());
            std::thread::spawn(move || {
                for (conn, stream) in listener.incoming().enumerate() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut s) = stream else { continue };
                    s.set_nodelay(true).unwrap();
                    let (script, next, tx) = (script.clone(), next.clone(), tx.clone());
                    threads.lock().unwrap().push(std::thread::spawn(move || {
                        while let Some((method, expect, pipelined)) = read_request(&mut s) {
                            let index = next.fetch_add(1, Ordering::SeqCst);
                            let Some(exchange) = script.get(index) else { return };
                            let mut whole = true;
                            for (piece, pause) in &exchange.pieces {
                                if *pause {
                                    std::thread::sleep(Duration::from_millis(1));
                                }
                                if s.write_all(piece).is_err() {
                                    whole = false;
                                    break;
                                }
                            }
                            if exchange.close || !whole {
                                let _ = s.shutdown(Shutdown::Both);
                            }
                            let _ = tx.send(Served { index, conn, method, expect, pipelined });
                            if exchange.close || !whole {
                                return;
                            }
                        }
                    }));
                }
            })
        };
        Upstream { port, served, stop, threads, acceptor }
    }

    /// Ends the acceptor, and every connection thread once the pool's
    /// connections are closed.
    fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.acceptor.join().unwrap();
        for thread in self.threads.lock().unwrap().drain(..) {
            thread.join().unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// The client side and the comparison.

/// What a caller got.
#[derive(Debug, PartialEq, Eq)]
struct Got {
    status: u16,
    lengths: Vec<String>,
    transfer_encoding: bool,
    body: Vec<u8>,
}

async fn call(pool: &H1Pool, port: u16, exchange: &Exchange) -> Result<Result<Got, String>, TestCaseError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, format!("127.0.0.1:{port}").parse().unwrap());
    if exchange.expect {
        headers.insert(header::EXPECT, "100-continue".parse().unwrap());
    }
    let body = if exchange.method == Method::POST { Bytes::from_static(b"{\"rows\":[]}") } else { Bytes::new() };
    let response = match pool.send(&exchange.method, "/t", &headers, &body).await {
        Ok(response) => response,
        Err(e) => return Ok(Err(e.0)),
    };
    let status = response.status().as_u16();
    let lengths = response.headers().get_all(header::CONTENT_LENGTH).iter();
    let lengths = lengths.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    let transfer_encoding = response.headers().contains_key(header::TRANSFER_ENCODING);
    let body = response.into_body();
    let hint = body.size_hint();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(e) => return Ok(Err(e.to_string())),
    };
    let len = body.len() as u64;
    prop_assert!(
        hint.lower() <= len && hint.upper().is_none_or(|upper| len <= upper),
        "size hint {hint:?} for a body of {len} bytes"
    );
    Ok(Ok(Got { status, lengths, transfer_encoding, body }))
}

async fn run_case(specs: Vec<Spec>) -> Result<(), TestCaseError> {
    let script: Arc<Vec<Exchange>> = Arc::new(specs.iter().map(render).collect());
    let upstream = Upstream::start(script.clone());
    let pool = H1Pool::new("127.0.0.1", upstream.port, 4, Duration::from_secs(2));
    let result = async {
        // The previous answer's connection, and whether it may carry this request.
        let mut previous: Option<(usize, bool)> = None;
        for (i, exchange) in script.iter().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(5), call(&pool, upstream.port, exchange))
                .await
                .map_err(|_| TestCaseError::fail(format!("request {i} hung")))??;
            // Blocking on purpose (unless `turn`): the event loop does not
            // see what the upstream did meanwhile.
            let served = upstream
                .served
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| TestCaseError::fail(format!("request {i} never reached the upstream; got {got:?}")))?;
            std::thread::sleep(Duration::from_micros(200));
            if exchange.turn {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            prop_assert_eq!(served.index, i);
            prop_assert_eq!(&served.method, exchange.method.as_str());
            prop_assert!(!served.expect, "request {} went out with Expect", i);
            prop_assert!(!served.pipelined, "request {} had bytes after it", i);
            if let Some((conn, reusable)) = previous {
                if reusable {
                    prop_assert_eq!(served.conn, conn, "request {} should have reused the connection", i);
                } else {
                    prop_assert_ne!(served.conn, conn, "request {} reused a connection it must not", i);
                }
            }
            match &exchange.reference {
                Ref::Answer { status, length, body, reusable } => {
                    let expected = Got {
                        status: *status,
                        lengths: length.iter().map(u64::to_string).collect(),
                        transfer_encoding: false,
                        body: body.clone(),
                    };
                    prop_assert_eq!(got, Ok(expected), "answer {}", i);
                    previous = Some((served.conn, *reusable));
                }
                Ref::Malformed(why) => {
                    prop_assert!(got.is_err(), "answer {} is malformed ({}) but the pool gave {:?}", i, why, got);
                    previous = Some((served.conn, false));
                }
                Ref::Incomplete => unreachable!("render closes incomplete answers"),
            }
        }
        Ok(())
    }
    .await;
    drop(pool);
    upstream.finish();
    result
}

#[test]
fn the_pool_reads_every_answer_as_the_reference_does() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let config = Config { cases, max_shrink_iters: 512, failure_persistence: None, ..Config::default() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&vec(spec(), 1..=5), |specs| runtime.block_on(run_case(specs)));
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("{cases} cases in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// The reference itself, on known answers.

#[test]
fn the_reference_reads_known_answers() {
    let ok = |status, length: Option<u64>, body: &[u8], reusable| Ref::Answer {
        status,
        length,
        body: body.to_vec(),
        reusable,
    };
    let get = Method::GET;
    for (method, wire, closed, expected) in [
        (&get, &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"[..], false, ok(200, Some(2), b"ok", true)),
        (&get, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokX", false, ok(200, Some(2), b"ok", false)),
        (&get, b"HTTP/1.1 200 OK\r\ncontent-length: 02, 2\r\n\r\nok", false, ok(200, Some(2), b"ok", true)),
        (&get, b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok", false, Ref::Malformed("content-lengths differ")),
        (&get, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok", false, Ref::Incomplete),
        (&get, b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok", true, Ref::Malformed("closed in a body")),
        (&get, b"HTTP/1.1 200 OK\r\n\r\nok", false, Ref::Incomplete),
        (&get, b"HTTP/1.1 200 OK\r\n\r\nok", true, ok(200, None, b"ok", false)),
        (&Method::HEAD, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", false, ok(200, Some(2), b"", true)),
        (&get, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 2\r\n\r\nok", false, ok(304, Some(2), b"", false)),
        (&get, b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", false, ok(200, Some(2), b"ok", false)),
        (
            &get,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2;a=\"b\"\r\nok\r\n0\r\nt: 1\r\n\r\n",
            false,
            ok(200, None, b"ok", true),
        ),
        (
            &get,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            false,
            Ref::Malformed("transfer-encoding"),
        ),
        (
            &get,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
            false,
            Ref::Malformed("content-length and chunked"),
        ),
        (
            &get,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2 \r\nok\r\n0\r\n\r\n",
            false,
            Ref::Malformed("chunk line"),
        ),
        (&get, b"HTTP/1.1 101 Switching\r\n\r\n", false, Ref::Malformed("upgrade")),
        (&get, b"HTTP/1.1 200 OK\r\nbad line\r\n\r\n", false, Ref::Malformed("field without colon")),
    ] {
        assert_eq!(reference(method, wire, closed), expected, "{}", String::from_utf8_lossy(wire));
    }
    for (line, size) in [
        (&b"a"[..], Some(10)),
        (b"A;x", Some(10)),
        (b"0000000000000000000001", Some(1)),
        (b"1 ; a = \"b\\\"\" ; c", Some(1)),
        (b"1;a=b", Some(1)),
        (b"1;a=", None),
        (b"1;", None),
        (b"1 ", None),
        (b"1;a ", None),
        (b"1;a=b ", None),
        (b"1;a=\"b\" ", None),
        (b"10000000000000000", None),
    ] {
        assert_eq!(chunk_line(line), size, "{}", String::from_utf8_lossy(line));
    }
}
