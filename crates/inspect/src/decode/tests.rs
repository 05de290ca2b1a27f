use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

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
