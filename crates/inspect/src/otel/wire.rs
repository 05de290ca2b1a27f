//! The protobuf wire format as prost 0.14 decodes it: varints, field keys,
//! length-delimited payloads, fixed-width scalars, and skipping unknown
//! fields (groups included) under prost's recursion budget.
//!
//! Every rule here mirrors a check of prost's `encoding` module, so that a
//! body this reader accepts is one `prost::Message::decode` accepts too:
//! - a varint has at most 10 bytes and the 10th is 0 or 1 (no overflow past
//!   64 bits); overlong encodings (`0x80 0x00`) are fine;
//! - a key fits a `u32`, its wire type is 0..=5 and its tag is not 0;
//! - a length or a fixed-width value must fit in what is left of the
//!   enclosing message;
//! - an unknown field is skipped after its framing is checked; a group
//!   (wire type 3) is skipped up to the end-group key of the same tag, and a
//!   stray end-group key is an error;
//! - the recursion budget (prost's `RECURSION_LIMIT`, 100) goes down by one
//!   per nested message and per nested group, and prost refuses to enter a
//!   message or skip any unknown field once it is 0.

#[cfg(test)]
mod tests;

/// prost's `RECURSION_LIMIT`: the budget of the top-level message's fields.
pub(super) const RECURSION_LIMIT: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// What went wrong and at which byte of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WireError {
    pub pos: usize,
    pub kind: &'static str,
}

pub(super) const TOO_DEEP: &str = "messages nested deeper than the protobuf recursion limit (100)";

/// A cursor over one message: `b` is the whole body (so positions in
/// errors are body offsets), the message's bytes are `pos..end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// The top-level message: the whole body.
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0, end: b.len() }
    }

    #[inline]
    fn err(&self, kind: &'static str) -> WireError {
        WireError { pos: self.pos, kind }
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// A base-128 varint.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        match self.b[..self.end].get(self.pos) {
            Some(&byte) if byte < 0x80 => {
                self.pos += 1;
                Ok(u64::from(byte))
            }
            Some(_) => self.varint_multi(),
            None => Err(self.err("truncated varint")),
        }
    }

    fn varint_multi(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for count in 0..10 {
            let Some(&byte) = self.b[..self.end].get(self.pos + count) else {
                return Err(self.err("truncated varint"));
            };
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                // The 10th byte holds bit 63 only.
                if count == 9 && byte > 1 {
                    return Err(self.err("varint overflows 64 bits"));
                }
                self.pos += count + 1;
                return Ok(value);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// The next field's tag and wire type, or `None` at the end of the
    /// message.
    #[inline]
    pub fn next_key(&mut self) -> Result<Option<(u32, WireType)>, WireError> {
        if self.pos == self.end {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let fail = |kind| Err(WireError { pos: start, kind });
        if key > u64::from(u32::MAX) {
            return fail("field key does not fit 32 bits");
        }
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return fail("invalid wire type"),
        };
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return fail("field number 0");
        }
        Ok(Some((tag, wire_type)))
    }

    /// Refuses a known field sent with another wire type than its own.
    #[inline]
    fn expect(&self, actual: WireType, expected: WireType) -> Result<(), WireError> {
        if actual == expected { Ok(()) } else { Err(self.err("wrong wire type for a known field")) }
    }

    /// `n` bytes, which must be there.
    #[inline]
    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        if n > self.remaining() as u64 {
            return Err(self.err("length runs past the end of its message"));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.b[start..self.pos])
    }

    /// A length-delimited payload.
    #[inline]
    pub fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        self.take(n)
    }

    /// A known `bytes` field.
    #[inline]
    pub fn bytes_field(&mut self, wt: WireType) -> Result<(), WireError> {
        self.expect(wt, WireType::Len)?;
        self.len_delimited().map(|_| ())
    }

    /// A known `string` field: its bytes must be UTF-8.
    ///
    /// The check is most of the scan's time on LLM text, and `simdutf8`
    /// (a safe API over SIMD, same verdict as `std::str::from_utf8`) is
    /// about 3x faster there (see docs/decisions/otlp-wire-scan.md); std
    /// only locates the error once there is one.
    #[inline]
    pub fn string_field(&mut self, wt: WireType) -> Result<&'a str, WireError> {
        self.expect(wt, WireType::Len)?;
        let bytes = self.len_delimited()?;
        simdutf8::basic::from_utf8(bytes).map_err(|_| {
            let valid = std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to());
            WireError { pos: self.pos - bytes.len() + valid, kind: "string field is not valid UTF-8" }
        })
    }

    /// A known varint field (`uint32`, `int32`, `int64`, `bool`, enums:
    /// prost truncates, it does not range-check).
    #[inline]
    pub fn varint_field(&mut self, wt: WireType) -> Result<(), WireError> {
        self.expect(wt, WireType::Varint)?;
        self.varint().map(|_| ())
    }

    /// A known `fixed32` field.
    #[inline]
    pub fn fixed32_field(&mut self, wt: WireType) -> Result<(), WireError> {
        self.expect(wt, WireType::Fixed32)?;
        self.take(4).map(|_| ())
    }

    /// A known `fixed64`/`double` field.
    #[inline]
    pub fn fixed64_field(&mut self, wt: WireType) -> Result<(), WireError> {
        self.expect(wt, WireType::Fixed64)?;
        self.take(8).map(|_| ())
    }

    /// A known message field whose own fields get `budget - 1`: the reader
    /// over its bytes (this reader moves past them).
    #[inline]
    pub fn message(&mut self, wt: WireType, budget: u32) -> Result<Reader<'a>, WireError> {
        self.expect(wt, WireType::Len)?;
        if budget == 0 {
            return Err(self.err(TOO_DEEP));
        }
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(self.err("length runs past the end of its message"));
        }
        let inner = Reader { b: self.b, pos: self.pos, end: self.pos + n as usize };
        self.pos = inner.end;
        Ok(inner)
    }

    /// Skips an unknown field (its key just read) as prost's `skip_field`
    /// does, `budget` being that of the message it appears in.
    pub fn skip(&mut self, tag: u32, wt: WireType, budget: u32) -> Result<(), WireError> {
        if budget == 0 {
            return Err(self.err(TOO_DEEP));
        }
        match wt {
            WireType::Varint => self.varint().map(|_| ()),
            WireType::Fixed64 => self.take(8).map(|_| ()),
            WireType::Fixed32 => self.take(4).map(|_| ()),
            WireType::Len => self.len_delimited().map(|_| ()),
            WireType::StartGroup => loop {
                let Some((inner, inner_wt)) = self.next_key()? else {
                    return Err(self.err("group without its end-group key"));
                };
                if inner_wt == WireType::EndGroup {
                    if inner != tag {
                        return Err(self.err("end-group key of another field"));
                    }
                    return Ok(());
                }
                self.skip(inner, inner_wt, budget - 1)?;
            },
            WireType::EndGroup => Err(self.err("end-group key outside a group")),
        }
    }
}
