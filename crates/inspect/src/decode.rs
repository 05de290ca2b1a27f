//! `Content-Encoding`: identity passes through; gzip is inflated for
//! inspection with a hard cap on the inflated size.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::MultiGzDecoder;

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

/// Inflates every gzip member of `body`, refusing more than `max` bytes.
/// The output never has capacity beyond `max`.
pub(crate) fn gunzip_capped(body: &[u8], max: usize) -> Result<Vec<u8>, InspectError> {
    let corrupt =
        |e: std::io::Error| InspectError::BadRequest { field: None, message: format!("body is not valid gzip: {e}") };
    if body.is_empty() {
        return Err(InspectError::BadRequest { field: None, message: "body is not valid gzip: empty".into() });
    }
    let mut decoder = MultiGzDecoder::new(body);
    let mut out: Vec<u8> = Vec::with_capacity(body.len().saturating_mul(4).max(CHUNK).min(max));
    let mut buf = [0u8; CHUNK];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(e)),
        };
        let need = out.len() + n;
        if need > max {
            return Err(InspectError::TooLarge { limit: max });
        }
        if need > out.capacity() {
            // Grow geometrically, but never past the cap.
            let target = need.max(out.capacity().saturating_mul(2)).min(max);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&buf[..n]);
    }
}
