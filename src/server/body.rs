//! Reading a request body: the declared length is checked before a byte is
//! read (413 at once), the stream is cut at `max_body_bytes`, and the whole
//! read is bounded by `body_read_timeout`.

use crate::error::GatewayError;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::BodyExt;
use std::task::Poll;
use std::time::Duration;

/// 413 for a declared `Content-Length` over `max`, before any byte is read.
pub fn check_declared_length(headers: &HeaderMap, max: usize) -> Result<(), GatewayError> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(GatewayError::PayloadTooLarge { limit: max });
    }
    Ok(())
}

/// The whole body. The caller has checked its declared length (at once,
/// before authentication: see `check_declared_length`).
pub async fn read<B>(body: B, max: usize, timeout: Duration) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // The whole body's size, when the client declared it (hyper has checked
    // the framing; `max` caps what a lying header can make us reserve).
    let expected = usize::try_from(body.size_hint().exact().unwrap_or(0)).unwrap_or(max).min(max);
    let mut collecting = std::pin::pin!(collect(body, max, expected));
    // A small body usually arrived with its head and is read at once,
    // without setting a timer.
    if let Poll::Ready(done) = futures_util::poll!(collecting.as_mut()) {
        return done;
    }
    tokio::time::timeout(timeout, collecting).await.unwrap_or(Err(GatewayError::BodyTimeout))
}

/// The body in one buffer, refused once it passes `max` bytes. A body of
/// one data frame (a small body arrives with its head: the usual case) is
/// returned as it came, without a copy or a list of frames to gather. A
/// longer one is copied once, into a buffer sized for the `expected` total
/// up front, so it never regrows (docs/decisions/body-read.md).
async fn collect<B>(body: B, max: usize, expected: usize) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut len = 0;
    let mut first = Bytes::new();
    // Used from the second non-empty piece on.
    let mut joined = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::bad_request(None, format!("could not read request body: {e}")))?;
        // Trailers carry nothing loggate forwards.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        if len > max {
            return Err(GatewayError::PayloadTooLarge { limit: max });
        }
        if first.is_empty() {
            first = data;
            continue;
        }
        if joined.is_empty() {
            joined.reserve(expected.max(len));
            joined.extend_from_slice(&first);
        }
        joined.extend_from_slice(&data);
    }
    Ok(if joined.is_empty() { first } else { joined.freeze() })
}

/// JSON routes take `application/json` (any parameters) or no Content-Type
/// at all (the Python SDK sends `/logs3` without one); anything else is 415.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), GatewayError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value.to_str().ok().map(|v| v.split(';').next().unwrap_or("").trim());
    match essence {
        Some(e) if e.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(GatewayError::UnsupportedMediaType("Content-Type must be application/json".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::Full;

    #[test]
    fn declared_oversize_is_refused() {
        let mut h = HeaderMap::new();
        assert!(check_declared_length(&h, 10).is_ok());
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert!(check_declared_length(&h, 10).is_ok());
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(check_declared_length(&h, 10).unwrap_err().code(), "payload_too_large");
    }

    #[tokio::test]
    async fn streamed_oversize_is_refused() {
        let e = read(Full::new(Bytes::from(vec![b'x'; 11])), 10, Duration::from_secs(1)).await.unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
        let ok = read(Full::new(Bytes::from(vec![b'x'; 10])), 10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(ok.len(), 10);
    }

    /// A body of the given frames (`Err` frames fail the read).
    fn frames(
        frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>>,
    ) -> http_body_util::StreamBody<impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>>>
    {
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn one_frame_is_returned_without_a_copy() {
        let data = Bytes::from(vec![b'x'; 100]);
        let got = read(Full::new(data.clone()), 100, T).await.unwrap();
        assert_eq!(got.as_ptr(), data.as_ptr());
    }

    #[tokio::test]
    async fn frames_are_joined_in_order_and_trailers_ignored() {
        let body = frames(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Ok(http_body::Frame::data(Bytes::new())),
            Ok(http_body::Frame::data(Bytes::from_static(b"cd"))),
            Ok(http_body::Frame::trailers(HeaderMap::new())),
            Ok(http_body::Frame::data(Bytes::from_static(b"e"))),
        ]);
        assert_eq!(read(body, 5, T).await.unwrap(), Bytes::from_static(b"abcde"));
        let empty_first = frames(vec![
            Ok(http_body::Frame::data(Bytes::new())),
            Ok(http_body::Frame::data(Bytes::from_static(b"z"))),
        ]);
        assert_eq!(read(empty_first, 5, T).await.unwrap(), Bytes::from_static(b"z"));
        assert_eq!(read(frames(vec![]), 5, T).await.unwrap(), Bytes::new());
    }

    /// Frames behind a declared length (hyper's `Incoming` with a
    /// Content-Length), which may lie: hyper checks the framing, not us.
    struct Declared(std::collections::VecDeque<Bytes>, u64);

    impl http_body::Body for Declared {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|d| Ok(http_body::Frame::data(d))))
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.1)
        }
    }

    #[tokio::test]
    async fn a_declared_length_sizes_the_buffer_but_never_past_the_cap() {
        let parts = || [&b"ab"[..], b"cd", b"e"].into_iter().map(Bytes::from_static).collect();
        assert_eq!(read(Declared(parts(), 5), 5, T).await.unwrap(), Bytes::from_static(b"abcde"));
        // A declared length larger than the cap reserves at most the cap,
        // and one smaller than the data grows as needed.
        assert_eq!(read(Declared(parts(), u64::MAX), 5, T).await.unwrap(), Bytes::from_static(b"abcde"));
        assert_eq!(read(Declared(parts(), 1), 5, T).await.unwrap(), Bytes::from_static(b"abcde"));
        assert_eq!(read(Declared(parts(), 5), 4, T).await.unwrap_err().code(), "payload_too_large");
    }

    #[tokio::test]
    async fn oversize_across_frames_is_refused() {
        let body = frames(vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"abc"))),
            Ok(http_body::Frame::data(Bytes::from_static(b"def"))),
        ]);
        assert_eq!(read(body, 5, T).await.unwrap_err().code(), "payload_too_large");
    }

    #[tokio::test]
    async fn a_broken_body_is_a_bad_request() {
        let body =
            frames(vec![Ok(http_body::Frame::data(Bytes::from_static(b"ab"))), Err(std::io::Error::other("reset"))]);
        let e = read(body, 5, T).await.unwrap_err();
        assert_eq!(e.code(), "bad_request");
        assert!(e.to_string().contains("could not read request body: reset"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        use futures_util::StreamExt;
        let first: Result<_, std::io::Error> = Ok(http_body::Frame::data(Bytes::from_static(b"ab")));
        let stalled = futures_util::stream::iter([first]).chain(futures_util::stream::pending());
        let e = read(http_body_util::StreamBody::new(stalled), 5, T).await.unwrap_err();
        assert_eq!(e.code(), "request_timeout");
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
