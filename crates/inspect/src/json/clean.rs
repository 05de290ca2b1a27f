//! Byte searches for bodies known to be free of control characters.
//!
//! JSON allows a byte below 0x20 only as whitespace (`\t`, `\n`, `\r`)
//! between tokens, and never raw inside a string. Serializers emit compact
//! bodies with every such byte escaped, so a body usually holds none at
//! all. [`has_control`] finds that out in one vectorizable pass; when it is
//! false, no string can hold a raw control character, and the end of a
//! string (or its next escape) is simply the next `"` or `\`, which
//! `memchr2` finds with SIMD. Bodies with control bytes (pretty-printed,
//! or malformed) keep the word-at-a-time search that checks them
//! (`string::find_special`).

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `b` is below 0x20.
///
/// A reduction with no early exit, so the compiler vectorizes it
/// (`pminub`); it runs at memory speed and is paid once per body.
pub(crate) fn has_control(b: &[u8]) -> bool {
    // Blocks bound the work wasted after a hit; the common case (no hit)
    // reads every byte anyway.
    b.chunks(4096).any(|block| block.iter().fold(u8::MAX, |m, &c| m.min(c)) < 0x20)
}

/// Index of the first `"` or `\` at or after `i`, or `b.len()`. Only for
/// bodies without control bytes (see the module docs).
///
/// Most strings (keys, ids, short values) end within a word, so the first
/// eight bytes are tested in a register (the lowest flag of the
/// has-zero-byte trick is exact); longer ones go to `memchr2`.
#[inline(always)]
pub(crate) fn find_quote_or_backslash(b: &[u8], i: usize) -> usize {
    // Two words cover keys, ids, dates and the gaps between escapes; a
    // `memchr2` call costs more than that to set up.
    let mut i = i;
    for _ in 0..2 {
        let Some(chunk) = b.get(i..i + 8) else { break };
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let q = w ^ (LO * u64::from(b'"'));
        let s = w ^ (LO * u64::from(b'\\'));
        let flags = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or_default();
    memchr::memchr2(b'"', b'\\', rest).map_or(b.len(), |k| i + k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_control(b: &[u8]) -> bool {
        b.iter().any(|&c| c < 0x20)
    }

    fn naive_find(b: &[u8], i: usize) -> usize {
        (i..b.len()).find(|&k| b[k] == b'"' || b[k] == b'\\').unwrap_or(b.len())
    }

    /// Bytes biased towards the ones the searches care about.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(vec![b'"', b'\\', 0x1f, 0x20, 0x00, b'\n', 0x7f, 0x80, 0xff, b'a'])
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn has_control_matches_naive(b in prop::collection::vec(byte(), 0..300), clean_len in 0usize..9000) {
            prop_assert_eq!(has_control(&b), naive_control(&b));
            // Past one block, with the hit (if any) at the end.
            let mut long = vec![b'x'; clean_len];
            long.extend_from_slice(&b);
            prop_assert_eq!(has_control(&long), naive_control(&long));
        }

        #[test]
        fn find_quote_or_backslash_matches_naive(b in prop::collection::vec(byte(), 0..100)) {
            for i in 0..=b.len() {
                prop_assert_eq!(find_quote_or_backslash(&b, i), naive_find(&b, i), "{:?} from {}", b, i);
            }
        }
    }
}
