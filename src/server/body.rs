//! Reading a request body: the declared length is checked before a byte is
//! read (413 at once), the stream is cut at `max_body_bytes`, and the whole
//! read is bounded by `body_read_timeout`.

use crate::error::GatewayError;
use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};
use std::time::Duration;

/// 413 for a declared `Content-Length` over `max`, before any byte is read.
pub fn check_declared_length(headers: &HeaderMap, max: usize) -> Result<(), GatewayError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(GatewayError::PayloadTooLarge { limit: max });
    }
    Ok(())
}

pub async fn read<B>(body: B, headers: &HeaderMap, max: usize, timeout: Duration) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    check_declared_length(headers, max)?;
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Err(_) => Err(GatewayError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge { limit: max }),
        Ok(Err(e)) => Err(GatewayError::bad_request(None, format!("could not read request body: {e}"))),
    }
}

/// JSON routes take `application/json` (any parameters) or no Content-Type
/// at all (the Python SDK sends `/logs3` without one); anything else is 415.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Ok(()) };
    let essence = value.to_str().ok().map(|v| v.split(';').next().unwrap_or("").trim());
    match essence {
        Some(e) if e.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(GatewayError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::Full;

    #[tokio::test]
    async fn declared_oversize_is_refused_before_reading() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("100"));
        let e = read(Full::new(Bytes::from_static(b"x")), &h, 10, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
    }

    #[tokio::test]
    async fn streamed_oversize_is_refused() {
        let e = read(Full::new(Bytes::from(vec![b'x'; 11])), &HeaderMap::new(), 10, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
        let ok = read(Full::new(Bytes::from(vec![b'x'; 10])), &HeaderMap::new(), 10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(ok.len(), 10);
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(check_json_content_type(&h).is_ok());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        assert!(check_json_content_type(&h).is_ok());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(check_json_content_type(&h).unwrap_err().code(), "unsupported_media_type");
    }
}
