use std::io::Write;

use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::{Compress, Compression, FlushCompress};

use super::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn identity_passes_through() {
    for enc in [None, Some(""), Some("identity"), Some(" Identity ")] {
        let out = decode(b"{}", enc, 10).unwrap();
        assert!(matches!(out, Cow::Borrowed(b"{}")), "{enc:?}");
    }
    assert_eq!(decode(b"12345", None, 5).unwrap().as_ref(), b"12345");
    assert_eq!(decode(b"123456", None, 5), Err(InspectError::TooLarge { limit: 5 }));
}

#[test]
fn gzip_ok() {
    let body = br#"{"rows":[{"project_id":"p","log_id":"g"}]}"#;
    let z = gzip(body);
    for enc in ["gzip", "x-gzip", "GZIP", " gzip"] {
        assert_eq!(decode(&z, Some(enc), body.len()).unwrap().as_ref(), body, "{enc}");
    }
    assert_eq!(decode(&z, Some("gzip"), body.len() - 1), Err(InspectError::TooLarge { limit: body.len() - 1 }));
    // Concatenated members are all inflated (as the data plane would).
    let mut two = gzip(b"[1,");
    two.extend(gzip(b"2]"));
    assert_eq!(decode(&two, Some("gzip"), 100).unwrap().as_ref(), b"[1,2]");
    assert_eq!(decode(&gzip(b""), Some("gzip"), 0).unwrap().as_ref(), b"");
}

#[test]
fn gzip_output_never_exceeds_cap() {
    let data = vec![b'a'; 300_000];
    let z = gzip(&data);
    let out = gunzip_capped(&z, data.len()).unwrap();
    assert_eq!(out.len(), data.len());
    assert!(out.capacity() <= data.len(), "capacity {}", out.capacity());
    let out = gunzip_capped(&gzip(b"tiny"), 1 << 30).unwrap();
    assert!(out.capacity() <= 16 * 1024);
}

#[test]
fn gzip_bomb_is_too_large_quickly() {
    // 1 MiB of zeros compresses to ~1 KiB; 4096 members = 4 GiB inflated.
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 4096).collect();
    assert!(bomb.len() < 8 << 20);
    let started = std::time::Instant::now();
    assert_eq!(decode(&bomb, Some("gzip"), 2 << 20), Err(InspectError::TooLarge { limit: 2 << 20 }));
    // Stops at the cap: only ~2 MiB inflated, not 4 GiB.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn corrupt_gzip_is_bad_request() {
    let z = gzip(b"{\"rows\":[]}");
    let mut flipped = z.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let mut truncated = z.clone();
    truncated.truncate(z.len() - 4);
    let mut trailing = z.clone();
    trailing.extend_from_slice(b"garbage");
    for bad in [&b"{\"rows\":[]}"[..], b"", &flipped, &truncated, &trailing, &z[..5]] {
        let r = decode(bad, Some("gzip"), 1 << 20);
        assert!(matches!(r, Err(InspectError::BadRequest { .. })), "{bad:?}: {r:?}");
    }
}

#[test]
fn other_encodings_unsupported() {
    for enc in ["br", "deflate", "zstd", "gzip, gzip", "compress", "gzip;q=1"] {
        assert_eq!(
            decode(b"x", Some(enc), 100),
            Err(InspectError::UnsupportedEncoding(enc.trim().to_string())),
            "{enc}"
        );
    }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn otlp_identity_and_gzip_as_decode() {
    let body = b"\x0a\x00";
    assert!(matches!(decode_otlp(body, None, 2).unwrap(), Cow::Borrowed(_)));
    assert_eq!(decode_otlp(body, Some("identity"), 1), Err(InspectError::TooLarge { limit: 1 }));
    assert_eq!(decode_otlp(&gzip(body), Some("gzip"), 2).unwrap().as_ref(), body);
    for enc in ["br", "zstd", "deflate, gzip", "x-deflate"] {
        assert_eq!(decode_otlp(body, Some(enc), 9), Err(InspectError::UnsupportedEncoding(enc.into())), "{enc}");
    }
}

#[test]
fn otlp_deflate_is_zlib() {
    let body = br#"{"resourceSpans":[]}"#;
    let z = zlib(body);
    for enc in ["deflate", "DEFLATE", " Deflate "] {
        assert_eq!(decode_otlp(&z, Some(enc), body.len()).unwrap().as_ref(), body, "{enc}");
        // The logs3 family still refuses it.
        assert_eq!(decode(&z, Some(enc), 100), Err(InspectError::UnsupportedEncoding(enc.trim().into())));
    }
    assert_eq!(decode_otlp(&z, Some("deflate"), body.len() - 1), Err(InspectError::TooLarge { limit: body.len() - 1 }));
    assert_eq!(decode_otlp(&zlib(b""), Some("deflate"), 0).unwrap().as_ref(), b"");
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let z = zlib(&big);
    assert_eq!(decode_otlp(&z, Some("deflate"), big.len()).unwrap().as_ref(), &big[..]);
}

#[test]
fn otlp_deflate_that_is_not_one_zlib_stream_is_bad_request() {
    let body = br#"{"resourceSpans":[{"scopeSpans":[]}]}"#;
    let z = zlib(body);
    let raw = {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    };
    let mut bad_checksum = z.clone();
    *bad_checksum.last_mut().unwrap() ^= 1;
    let mut two = z.clone();
    two.extend(zlib(b"x"));
    let mut trailing = z.clone();
    trailing.push(0);
    let cases: [(&str, &[u8]); 8] = [
        ("raw deflate", &raw),
        ("gzip", &gzip(body)),
        ("plain", body),
        ("empty", b""),
        ("truncated", &z[..z.len() - 5]),
        ("bad checksum", &bad_checksum),
        ("two streams", &two),
        ("trailing byte", &trailing),
    ];
    for (what, bad) in cases {
        match decode_otlp(bad, Some("deflate"), 1 << 20) {
            Err(InspectError::BadRequest { message, .. }) => assert!(message.contains("deflate"), "{what}: {message}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Cut anywhere, the stream is refused (flate2's readers would report
    // some of these cuts as a clean end).
    for cut in 0..z.len() {
        assert!(
            matches!(decode_otlp(&z[..cut], Some("deflate"), 1 << 20), Err(InspectError::BadRequest { .. })),
            "{cut}"
        );
    }
}

#[test]
fn deflate_bomb_is_too_large_quickly() {
    // After a full flush each 1 MiB of zeros compresses to the same ~1 KiB
    // that needs no history: repeated 4096 times, 4 GiB inflated. The
    // stream never ends properly, which the cap must notice first.
    let zeros = vec![0u8; 1 << 20];
    let mut c = Compress::new(Compression::default(), true);
    let chunk = |c: &mut Compress| {
        let mut out = Vec::with_capacity(64 << 10);
        c.compress_vec(&zeros, &mut out, FlushCompress::Full).unwrap();
        out
    };
    let first = chunk(&mut c);
    let again = chunk(&mut c);
    assert_eq!(again, chunk(&mut c));
    let mut bomb = first;
    for _ in 0..4095 {
        bomb.extend_from_slice(&again);
    }
    assert!(bomb.len() < 8 << 20, "{}", bomb.len());
    let started = std::time::Instant::now();
    assert_eq!(decode_otlp(&bomb, Some("deflate"), 2 << 20), Err(InspectError::TooLarge { limit: 2 << 20 }));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
