//! Strings: a search for the next byte that needs attention (`"`, `\`,
//! or, in bodies that hold control bytes at all, a control character),
//! escape checking, and decoding when a string carries escapes.

use std::borrow::Cow;

use super::clean::find_quote_or_backslash;
use super::{JsonError, Scanner};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Index of the first `"`, `\` or byte < 0x20 at or after `i`, or `b.len()`.
///
/// Eight bytes at a time: a byte is flagged when it equals `"` or `\`, or is
/// below 0x20. The borrow trick can only raise false flags in bytes above a
/// true one, so the lowest flag is exact.
#[inline]
pub(crate) fn find_special(b: &[u8], mut i: usize) -> usize {
    // Bounded by the last whole word's start, not by `i + 8`: one compare
    // per word, and no overflow check.
    if let Some(last_word) = b.len().checked_sub(8) {
        while i <= last_word {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
            let q = w ^ (LO * b'"' as u64);
            let s = w ^ (LO * b'\\' as u64);
            let flags = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s) | (w.wrapping_sub(LO * 0x20) & !w)) & HI;
            if flags != 0 {
                return i + (flags.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The value of each ASCII hex digit, 0xFF for every other byte.
const HEX: [u8; 256] = {
    let mut t = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl<'a> Scanner<'a> {
    /// The next `"`, `\` or (only possible in bodies with control bytes)
    /// control character at or after `i`.
    #[inline]
    fn find(&self, i: usize) -> usize {
        if self.clean { find_quote_or_backslash(self.b, i) } else { find_special(self.b, i) }
    }

    /// Checks the string at the cursor (which is on its opening quote).
    #[inline(always)]
    pub(super) fn skip_string(&mut self) -> Result<(), JsonError> {
        self.pos += 1;
        loop {
            self.pos = self.find(self.pos);
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.skip_escape()?;
                    // Escapes come in runs (`\uXXXX\uXXXX`, `\n\n`):
                    // take the next one without a search.
                    while self.b.get(self.pos) == Some(&b'\\') {
                        self.skip_escape()?;
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    /// Reads the string at the cursor (after optional whitespace): borrowed
    /// from the body when it has no escapes, decoded otherwise.
    #[inline(always)]
    pub fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        if self.peek()? != b'"' {
            return Err(self.err("expected a string"));
        }
        self.pos += 1;
        let start = self.pos;
        self.pos = self.find(self.pos);
        match self.b.get(self.pos) {
            Some(b'"') => {
                self.pos += 1;
                Ok(Cow::Borrowed(&self.src[start..self.pos - 1]))
            }
            Some(b'\\') => self.string_slow(start).map(Cow::Owned),
            Some(_) => Err(self.err("control character in string")),
            None => Err(self.err("unterminated string")),
        }
    }

    #[cold]
    fn string_slow(&mut self, start: usize) -> Result<String, JsonError> {
        let mut out = String::from(&self.src[start..self.pos]);
        loop {
            match self.b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(Some(&mut out))?,
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
            let from = self.pos;
            self.pos = self.find(self.pos);
            out.push_str(&self.src[from..self.pos]);
        }
    }

    /// Checks the escape at the cursor (on `\`) without decoding it: the
    /// skipping path, where LLM text in `\uXXXX` form (Python's
    /// `ensure_ascii`) puts an escape every six bytes. Anything unusual
    /// goes to [`Self::escape`], which says what is wrong.
    #[inline(always)]
    fn skip_escape(&mut self) -> Result<(), JsonError> {
        match self.b.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let start = self.pos;
                self.pos += 2;
                match self.hex4()? {
                    0xD800..=0xDFFF => {
                        self.pos = start;
                        self.escape(None)
                    }
                    _ => Ok(()),
                }
            }
            _ => self.escape(None),
        }
    }

    /// Checks (and, with `out`, decodes) the escape at the cursor (on `\`).
    /// `\u` surrogates must come as a leading + trailing pair.
    #[inline]
    fn escape(&mut self, out: Option<&mut String>) -> Result<(), JsonError> {
        self.pos += 1;
        let c = match self.b.get(self.pos) {
            Some(&c) => c,
            None => return Err(self.err("unterminated string")),
        };
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => {
                self.pos -= 1;
                return Err(self.err("invalid escape"));
            }
        };
        if let Some(out) = out {
            out.push(ch);
        }
        Ok(())
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let n = self.hex4()?;
        let code = match n {
            0xDC00..=0xDFFF => return Err(self.err("lone trailing surrogate in \\u escape")),
            0xD800..=0xDBFF => {
                if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.err("lone leading surrogate in \\u escape"));
                }
                self.pos += 2;
                let n2 = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&n2) {
                    return Err(self.err("lone leading surrogate in \\u escape"));
                }
                0x1_0000 + (((n - 0xD800) << 10) | (n2 - 0xDC00))
            }
            _ => n,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }

    #[inline(always)]
    fn hex4(&mut self) -> Result<u32, JsonError> {
        // Four valid digits (the usual case) by table; anything else takes
        // the digit-by-digit path, which says where and why it failed.
        if let Some(&[a, b, c, d]) = self.b.get(self.pos..self.pos + 4) {
            let (a, b, c, d) = (HEX[a as usize], HEX[b as usize], HEX[c as usize], HEX[d as usize]);
            if (a | b | c | d) & 0xF0 == 0 {
                self.pos += 4;
                return Ok(u32::from(a) << 12 | u32::from(b) << 8 | u32::from(c) << 4 | u32::from(d));
            }
        }
        self.hex4_slow()
    }

    #[cold]
    fn hex4_slow(&mut self) -> Result<u32, JsonError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.b.get(self.pos) {
                Some(&c) => (c as char).to_digit(16),
                None => return Err(self.err("unterminated string")),
            };
            match d {
                Some(d) => n = n * 16 + d,
                None => return Err(self.err("invalid \\u escape")),
            }
            self.pos += 1;
        }
        Ok(n)
    }
}
