//! Numbers: the JSON grammar, and (like serde_json) refusal of values that
//! do not fit an `f64`.

use super::{JsonError, Scanner};

/// A number this long without an exponent could still overflow an `f64`.
const LONG: usize = 300;

/// A number below `10^MAX_MAGNITUDE` fits an `f64` (whose largest finite
/// value is about 1.8e308); one that may be larger is parsed to find out.
const MAX_MAGNITUDE: i64 = 308;

impl Scanner<'_> {
    /// Checks the number at the cursor.
    #[inline]
    pub(super) fn skip_number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        let int_digits = (self.pos - int_start) as i64;
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        // Whether the value may be 10^308 or more: then (only then) it is
        // parsed, as serde_json does, to see whether it overflows.
        let mut may_overflow = self.pos - start > LONG;
        if let Some(b'e' | b'E') = self.b.get(self.pos) {
            self.pos += 1;
            let negative = self.b.get(self.pos) == Some(&b'-');
            if let Some(b'+' | b'-') = self.b.get(self.pos) {
                self.pos += 1;
            }
            let exp_start = self.pos;
            self.required_digits()?;
            // The integer part has `int_digits` digits (no leading zeros
            // but a lone `0`), so the value is below 10^(int_digits + e).
            let e =
                self.b[exp_start..self.pos].iter().fold(0i64, |e, &d| (e * 10 + i64::from(d - b'0')).min(1_000_000));
            may_overflow = int_digits + if negative { -e } else { e } >= MAX_MAGNITUDE;
        }
        if may_overflow && !self.src[start..self.pos].parse::<f64>().is_ok_and(f64::is_finite) {
            self.pos = start;
            return Err(self.err("number out of range"));
        }
        Ok(())
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn required_digits(&mut self) -> Result<(), JsonError> {
        match self.b.get(self.pos) {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            _ => Err(self.err("invalid number")),
        }
    }
}
