//! `Content-Encoding`: identity passes through; gzip (and, for OTLP
//! bodies, deflate) is inflated for inspection with a hard cap on the
//! inflated size.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use flate2::{Decompress, FlushDecompress, Status};

use super::InspectError;

#[cfg(test)]
mod tests;

/// Read granularity while inflating.
const CHUNK: usize = 16 * 1024;

/// The bytes to inspect for a body received with `content_encoding`:
/// the body itself for identity (absent, empty or `identity`), the
/// inflated body for `gzip`/`x-gzip` (every member, as HTTP clients and
/// servers decode it). More than `max` bytes (after inflating) is
/// `TooLarge`, reported as soon as byte `max + 1` appears, with never more
/// than `max` bytes held. A body that is not valid gzip is `BadRequest`;
/// any other encoding (including stacked ones) is `UnsupportedEncoding`.
pub fn decode<'b>(body: &'b [u8], content_encoding: Option<&str>, max: usize) -> Result<Cow<'b, [u8]>, InspectError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        if body.len() > max {
            return Err(InspectError::TooLarge { limit: max });
        }
        return Ok(Cow::Borrowed(body));
    }
    if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        return gunzip_capped(body, max).map(Cow::Owned);
    }
    Err(InspectError::UnsupportedEncoding(encoding.to_owned()))
}

/// [`decode`] for OpenTelemetry (OTLP/HTTP) bodies, which may also come
/// with `Content-Encoding: deflate`, as the OTLP exporters offer it: the
/// zlib format (RFC 1950, what HTTP's `deflate` names and what exporters
/// send), one stream and nothing after it, under the same cap. A raw
/// deflate stream without the zlib header, or trailing bytes, is
/// `BadRequest`. [`decode`] itself keeps refusing `deflate` (the `/logs3`
/// family).
pub fn decode_otlp<'b>(
    body: &'b [u8],
    content_encoding: Option<&str>,
    max: usize,
) -> Result<Cow<'b, [u8]>, InspectError> {
    match content_encoding.map(str::trim) {
        Some(e) if e.eq_ignore_ascii_case("deflate") => inflate_zlib_capped(body, max).map(Cow::Owned),
        _ => decode(body, content_encoding, max),
    }
}

fn not_valid(what: &str, why: impl std::fmt::Display) -> InspectError {
    InspectError::BadRequest { field: None, message: format!("body is not valid {what}: {why}") }
}

/// Inflates every gzip member of `body`, refusing more than `max` bytes.
/// The output never has capacity beyond `max`.
pub(crate) fn gunzip_capped(body: &[u8], max: usize) -> Result<Vec<u8>, InspectError> {
    if body.is_empty() {
        return Err(not_valid("gzip", "empty"));
    }
    let mut decoder = MultiGzDecoder::new(body);
    let mut out = Capped::new(body.len(), max);
    let mut buf = [0u8; CHUNK];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return Ok(out.0),
            Ok(n) => out.push(&buf[..n], max)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(not_valid("gzip", e)),
        }
    }
}

/// Inflates the single zlib stream that `body` must be, refusing more than
/// `max` bytes. flate2's `Read` adapters report a stream cut short as a
/// plain end of input, so this drives the inflater itself and requires
/// its end-of-stream status (reached only after the Adler-32 check).
fn inflate_zlib_capped(body: &[u8], max: usize) -> Result<Vec<u8>, InspectError> {
    const WHAT: &str = "deflate (zlib)";
    let mut z = Decompress::new(true);
    let mut out = Capped::new(body.len(), max);
    let mut buf = [0u8; CHUNK];
    loop {
        let (in_before, out_before) = (z.total_in(), z.total_out());
        let status = z
            .decompress(&body[in_before as usize..], &mut buf, FlushDecompress::None)
            .map_err(|e| not_valid(WHAT, e))?;
        let n = (z.total_out() - out_before) as usize;
        out.push(&buf[..n], max)?;
        if status == Status::StreamEnd {
            break;
        }
        if n == 0 && z.total_in() == in_before {
            return Err(not_valid(WHAT, "the stream ends early"));
        }
    }
    // Bytes after the stream would be read by some decoders (as another
    // stream) and ignored by others.
    if z.total_in() != body.len() as u64 {
        return Err(not_valid(WHAT, "bytes after the end of the stream"));
    }
    Ok(out.0)
}

/// Inflated bytes, never more than the cap, never with capacity beyond it.
struct Capped(Vec<u8>);

impl Capped {
    /// Sized for a first guess from the compressed size `encoded`.
    fn new(encoded: usize, max: usize) -> Self {
        Capped(Vec::with_capacity(encoded.saturating_mul(4).max(CHUNK).min(max)))
    }

    /// Appends `bytes`, or `TooLarge` as soon as the total would pass `max`.
    fn push(&mut self, bytes: &[u8], max: usize) -> Result<(), InspectError> {
        let out = &mut self.0;
        let need = out.len() + bytes.len();
        if need > max {
            return Err(InspectError::TooLarge { limit: max });
        }
        if need > out.capacity() {
            // Grow geometrically, but never past the cap.
            let target = need.max(out.capacity().saturating_mul(2)).min(max);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(bytes);
        Ok(())
    }
}
