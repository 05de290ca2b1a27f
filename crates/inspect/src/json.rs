//! A validating, single-pass, zero-copy JSON scanner.
//!
//! The inspectors walk the parts of a body they care about with the
//! structural calls (`begin_object`, `next_key`, `begin_array`, `next_elem`,
//! `string`, `boolean`) and hand everything else to [`Scanner::skip_value`],
//! which checks it just as strictly without building anything.
//!
//! Acceptance matches `serde_json::from_slice::<serde_json::Value>` (strings
//! must be valid UTF-8 with well-formed `\u` surrogate pairs, no control
//! characters; numbers must fit an `f64`), except for nesting: here depth is
//! the number of arrays/objects open at a point, and [`MAX_DEPTH`] (128) is
//! the deepest allowed level. serde_json's own `Value` refuses at 128
//! already, and its `IgnoredAny` path does not limit depth at all.
//!
//! The input is a `&str`: UTF-8 is checked once, up front (by `simdutf8`,
//! in `walk::body`), so string contents need no further UTF-8 work. A
//! second up-front pass (`clean::has_control`) finds out whether the body
//! holds any byte below 0x20; in the usual compact body it holds none, and
//! strings are then searched for `"` and `\` alone, with SIMD (`memchr`).

mod clean;
mod number;
mod skip;
mod string;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use super::MAX_DEPTH;

/// A syntax error: what went wrong and where (byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonError {
    pub pos: usize,
    pub kind: &'static str,
}

pub(crate) const TOO_DEEP: &str = "nesting deeper than 128 levels";

/// The type of the value at the cursor, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Object => "an object",
            Kind::Array => "an array",
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Null => "null",
        }
    }
}

pub(crate) struct Scanner<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    /// Arrays/objects currently open through the structural calls.
    depth: usize,
    /// No byte of the body is below 0x20, so strings need no check for
    /// raw control characters (see `clean`).
    clean: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner that checks strings for control characters even when the
    /// body holds none, to compare the two string searches in tests.
    #[cfg(test)]
    pub fn with_control_checks(src: &'a str) -> Self {
        Scanner { clean: false, ..Scanner::new(src) }
    }

    pub fn new(src: &'a str) -> Self {
        let b = src.as_bytes();
        Scanner { src, b, pos: 0, depth: 0, clean: !clean::has_control(b) }
    }

    #[inline]
    fn err(&self, kind: &'static str) -> JsonError {
        JsonError { pos: self.pos, kind }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    fn peek(&mut self) -> Result<u8, JsonError> {
        // Compact bodies have no whitespace between tokens: one compare
        // (every token starts above b' ') decides.
        match self.b.get(self.pos) {
            Some(&c) if c > b' ' => Ok(c),
            _ => self.peek_past_ws(),
        }
    }

    fn peek_past_ws(&mut self) -> Result<u8, JsonError> {
        self.ws();
        self.b.get(self.pos).copied().ok_or_else(|| self.err("unexpected end of input"))
    }

    /// The kind of the next value (whitespace skipped, nothing consumed).
    pub fn kind(&mut self) -> Result<Kind, JsonError> {
        Ok(match self.peek()? {
            b'{' => Kind::Object,
            b'[' => Kind::Array,
            b'"' => Kind::String,
            b'-' | b'0'..=b'9' => Kind::Number,
            b't' | b'f' => Kind::Bool,
            b'n' => Kind::Null,
            _ => return Err(self.err("expected a value")),
        })
    }

    #[inline]
    fn open(&mut self, c: u8) -> Result<(), JsonError> {
        if self.peek()? != c {
            return Err(self.err(if c == b'{' { "expected '{'" } else { "expected '['" }));
        }
        if self.depth >= MAX_DEPTH {
            return Err(self.err(TOO_DEEP));
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    pub fn begin_object(&mut self) -> Result<(), JsonError> {
        self.open(b'{')
    }

    pub fn begin_array(&mut self) -> Result<(), JsonError> {
        self.open(b'[')
    }

    /// The next key of the object opened by `begin_object` (cursor left on
    /// its value), or `None` once the closing brace is consumed. `first` is
    /// true on the first call for that object.
    #[inline(always)]
    pub fn next_key(&mut self, first: bool) -> Result<Option<Cow<'a, str>>, JsonError> {
        let c = self.peek()?;
        if c == b'}' {
            // `{}`, or the end after a member (`,}` is caught below).
            self.close();
            return Ok(None);
        }
        if !first {
            if c != b',' {
                return Err(self.err("expected ',' or '}'"));
            }
            self.pos += 1;
            if self.peek()? != b'"' {
                return Err(self.err("expected a key"));
            }
        } else if c != b'"' {
            return Err(self.err("expected a key or '}'"));
        }
        let key = self.string()?;
        if self.peek()? != b':' {
            return Err(self.err("expected ':'"));
        }
        self.pos += 1;
        Ok(Some(key))
    }

    /// True when another element of the array opened by `begin_array`
    /// follows (cursor left on it), false once `]` is consumed.
    #[inline]
    pub fn next_elem(&mut self, first: bool) -> Result<bool, JsonError> {
        let c = self.peek()?;
        if c == b']' {
            self.close();
            return Ok(false);
        }
        if !first {
            if c != b',' {
                return Err(self.err("expected ',' or ']'"));
            }
            self.pos += 1;
            if self.peek()? == b']' {
                return Err(self.err("trailing comma"));
            }
        }
        Ok(true)
    }

    #[inline]
    fn close(&mut self) {
        self.pos += 1;
        self.depth -= 1;
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool, JsonError> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => Err(self.err("expected a boolean")),
        }
    }

    /// Reads `null`.
    pub fn null(&mut self) -> Result<(), JsonError> {
        self.ws();
        self.literal(b"null")
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// After the single top-level value: only whitespace may follow.
    pub fn end(&mut self) -> Result<(), JsonError> {
        self.ws();
        if self.pos == self.b.len() { Ok(()) } else { Err(self.err("trailing characters after the JSON value")) }
    }
}
