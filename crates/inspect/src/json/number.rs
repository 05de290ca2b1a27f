//! Numbers: the JSON grammar, and (like serde_json) refusal of values that
//! do not fit an `f64`.

use super::{JsonError, Scanner};

/// A number this long without an exponent could still overflow an `f64`.
const LONG: usize = 300;

impl Scanner<'_> {
    /// Checks the number at the cursor.
    #[inline]
    pub(super) fn skip_number(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.required_digits()?;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.b.get(self.pos) {
            exponent = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.b.get(self.pos) {
                self.pos += 1;
            }
            self.required_digits()?;
        }
        if (exponent || self.pos - start > LONG) && !self.src[start..self.pos].parse::<f64>().is_ok_and(f64::is_finite)
        {
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
