//! The primitives against prost's own (`prost::encoding`).

use proptest::prelude::*;

use super::*;

fn varint(b: &[u8]) -> Result<(u64, usize), WireError> {
    let mut r = Reader::new(b);
    let v = r.varint()?;
    Ok((v, r.pos))
}

fn prost_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut buf = b;
    let v = prost::encoding::decode_varint(&mut buf).ok()?;
    Some((v, b.len() - buf.len()))
}

#[test]
fn varint_edges() {
    assert_eq!(varint(&[0]), Ok((0, 1)));
    assert_eq!(varint(&[0x7f, 0xff]), Ok((127, 1)));
    assert_eq!(varint(&[0x80, 0x01]), Ok((128, 2)));
    // Overlong encodings are accepted, as prost does.
    assert_eq!(varint(&[0x80, 0x80, 0x00]), Ok((0, 3)));
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(varint(&max), Ok((u64::MAX, 10)));
    // Bit 64 and beyond.
    max[9] = 0x02;
    assert_eq!(varint(&max).unwrap_err().kind, "varint overflows 64 bits");
    assert_eq!(varint(&[0xff; 11]).unwrap_err().kind, "varint longer than 10 bytes");
    assert_eq!(varint(&[0x80]).unwrap_err().kind, "truncated varint");
    assert_eq!(varint(&[]).unwrap_err().kind, "truncated varint");
}

proptest! {
    #[test]
    fn varint_agrees_with_prost(b in prop::collection::vec(prop_oneof![any::<u8>(), 0x80u8..=0xff, Just(0xff)], 0..13)) {
        prop_assert_eq!(varint(&b).ok(), prost_varint(&b));
    }

    #[test]
    fn key_agrees_with_prost(b in prop::collection::vec(any::<u8>(), 0..7)) {
        let mut r = Reader::new(&b);
        let ours = r.next_key().ok().flatten().map(|(t, w)| (t, w as u8, r.pos));
        let mut buf = &b[..];
        let theirs = prost::encoding::decode_key(&mut buf).ok().map(|(t, w)| (t, w as u8, b.len() - buf.len()));
        prop_assert_eq!(ours, theirs);
    }

    /// The UTF-8 verdict (and error position) is std's.
    #[test]
    fn strings_agree_with_std(b in prop::collection::vec(prop_oneof![any::<u8>(), 0x20u8..0x7f, 0x80u8..0xc0, 0xe0u8..0xf5], 0..90)) {
        let mut field = vec![b.len() as u8];
        field.extend_from_slice(&b);
        let ours = Reader::new(&field).string_field(WireType::Len).map_err(|e| e.pos - 1);
        prop_assert_eq!(ours.ok(), std::str::from_utf8(&b).ok());
        if let Err(e) = std::str::from_utf8(&b) {
            let pos = Reader::new(&field).string_field(WireType::Len).unwrap_err().pos - 1;
            prop_assert_eq!(pos, e.valid_up_to());
        }
    }

    /// Skipping one unknown field (key included) at the top level.
    #[test]
    fn skip_agrees_with_prost(b in prop::collection::vec(prop_oneof![any::<u8>(), Just(0x0b), Just(0x0c), Just(0x13)], 0..24)) {
        let mut r = Reader::new(&b);
        let ours = match r.next_key() {
            Ok(Some((tag, wt))) => r.skip(tag, wt, RECURSION_LIMIT).ok().map(|()| r.pos),
            _ => None,
        };
        let mut buf = &b[..];
        let theirs = prost::encoding::decode_key(&mut buf).ok().and_then(|(tag, wt)| {
            prost::encoding::skip_field(wt, tag, &mut buf, prost::encoding::DecodeContext::default()).ok()
        }).map(|()| b.len() - buf.len());
        prop_assert_eq!(ours, theirs);
    }
}

#[test]
fn keys() {
    let key = |b: &[u8]| Reader::new(b).next_key();
    assert_eq!(key(&[0x08]), Ok(Some((1, WireType::Varint))));
    assert_eq!(key(&[0x82, 0x01]), Ok(Some((16, WireType::Len))));
    assert_eq!(key(&[]), Ok(None));
    assert_eq!(key(&[0x02]).unwrap_err().kind, "field number 0");
    assert_eq!(key(&[0x0e]).unwrap_err().kind, "invalid wire type");
    assert_eq!(key(&[0x0f]).unwrap_err().kind, "invalid wire type");
    assert_eq!(key(&[0x80, 0x80, 0x80, 0x80, 0x10]).unwrap_err().kind, "field key does not fit 32 bits");
    // The largest field number, 2^29 - 1.
    assert_eq!(key(&[0xf8, 0xff, 0xff, 0xff, 0x0f]), Ok(Some(((1 << 29) - 1, WireType::Varint))));
}

#[test]
fn groups_are_skipped_like_prost() {
    let skip = |b: &[u8], budget| {
        let mut r = Reader::new(b);
        let (tag, wt) = r.next_key()?.expect("a key");
        r.skip(tag, wt, budget).map(|()| r.pos)
    };
    // Group 1 holding a varint field 2 and a nested group 3.
    let g = [0x0b, 0x10, 0x01, 0x1b, 0x1c, 0x0c];
    assert_eq!(skip(&g, RECURSION_LIMIT), Ok(6));
    // The nested group needs two more levels of budget.
    assert_eq!(skip(&g, 2), Ok(6));
    assert_eq!(skip(&g, 1).unwrap_err().kind, TOO_DEEP);
    assert_eq!(skip(&[0x0b, 0x14], 9).unwrap_err().kind, "end-group key of another field");
    assert_eq!(skip(&[0x0b, 0x10, 0x01], 9).unwrap_err().kind, "group without its end-group key");
    assert_eq!(skip(&[0x0c], 9).unwrap_err().kind, "end-group key outside a group");
    // Any unknown field needs budget, even a varint.
    assert_eq!(skip(&[0x08, 0x01], 0).unwrap_err().kind, TOO_DEEP);
    assert_eq!(skip(&[0x0a, 0x01, 0x00], 1), Ok(3));
    assert_eq!(skip(&[0x0a, 0x02, 0x00], 1).unwrap_err().kind, "length runs past the end of its message");
    assert_eq!(skip(&[0x0d, 1, 2, 3], 1).unwrap_err().kind, "length runs past the end of its message");
    assert_eq!(skip(&[0x09, 1, 2, 3, 4, 5, 6, 7, 8], 1), Ok(9));
}

#[test]
fn messages_and_strings_stay_inside_their_parent() {
    // A message of 3 bytes holding a string of 1; then one of 2 bytes
    // whose string of 2 would run past its end (into the parent's bytes).
    let mut r = Reader::new(&[0x03, 0x0a, 0x01, b'h', 0x00]);
    let mut m = r.message(WireType::Len, 1).unwrap();
    assert_eq!(r.pos, 4);
    assert_eq!(m.next_key(), Ok(Some((1, WireType::Len))));
    assert_eq!(m.string_field(WireType::Len), Ok("h"));
    assert_eq!(m.next_key(), Ok(None));
    let mut r = Reader::new(&[0x02, 0x0a, 0x02, b'h', b'i']);
    let mut m = r.message(WireType::Len, 1).unwrap();
    m.next_key().unwrap();
    assert_eq!(m.string_field(WireType::Len).unwrap_err().kind, "length runs past the end of its message");
    // Wrong wire type for a known field, and no budget left for a message.
    assert_eq!(r.message(WireType::Varint, 1).unwrap_err().kind, "wrong wire type for a known field");
    assert_eq!(Reader::new(&[0]).message(WireType::Len, 0).unwrap_err().kind, TOO_DEEP);
}

#[test]
fn strings_must_be_utf8() {
    let mut r = Reader::new(&[0x03, b'a', 0xc3, 0x28]);
    let e = r.string_field(WireType::Len).unwrap_err();
    assert_eq!((e.kind, e.pos), ("string field is not valid UTF-8", 2));
    // Encoded surrogates are not UTF-8 either.
    assert!(Reader::new(&[0x03, 0xed, 0xa0, 0x80]).string_field(WireType::Len).is_err());
    assert_eq!(Reader::new(&[0x02, 0xc3, 0xa9]).string_field(WireType::Len), Ok("é"));
    // Bytes fields take anything.
    assert_eq!(Reader::new(&[0x02, 0xc3, 0x28]).bytes_field(WireType::Len), Ok(()));
}
