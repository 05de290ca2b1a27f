//! Checking a value without building it: an explicit stack (one bit per
//! level, object or array, the innermost in the lowest bit, so a push or a
//! pop is a one-bit shift) instead of recursion, bounded by `MAX_DEPTH`
//! counted from the structural depth at which the value starts.

use super::super::MAX_DEPTH;
use super::{JsonError, Scanner, TOO_DEEP};

impl Scanner<'_> {
    /// Checks the value at the cursor and moves past it.
    pub fn skip_value(&mut self) -> Result<(), JsonError> {
        // Bit 0 of `objects` is set when the innermost open level is an
        // object, bit 1 for the one around it, and so on.
        let mut objects: u128 = 0;
        let mut level = 0usize;
        let room = MAX_DEPTH - self.depth;
        loop {
            // A value starts here.
            let c = self.peek()?;
            match c {
                b'{' | b'[' => {
                    if level >= room {
                        return Err(self.err(TOO_DEEP));
                    }
                    let is_object = c == b'{';
                    objects = objects << 1 | u128::from(is_object);
                    level += 1;
                    self.pos += 1;
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.pos += 1;
                        objects >>= 1;
                        level -= 1;
                    } else {
                        if is_object {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(self.err("expected a value")),
            }
            // A value ended: close containers until one continues.
            loop {
                if level == 0 {
                    return Ok(());
                }
                let is_object = objects & 1 != 0;
                match self.peek()? {
                    b',' => {
                        self.pos += 1;
                        if is_object {
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if is_object => {
                        self.pos += 1;
                        objects >>= 1;
                        level -= 1;
                    }
                    b']' if !is_object => {
                        self.pos += 1;
                        objects >>= 1;
                        level -= 1;
                    }
                    _ => {
                        return Err(self.err(if is_object { "expected ',' or '}'" } else { "expected ',' or ']'" }));
                    }
                }
            }
        }
    }

    /// `"key" :` inside an object being skipped.
    #[inline(always)]
    fn member_key(&mut self) -> Result<(), JsonError> {
        if self.peek()? != b'"' {
            return Err(self.err("expected a key"));
        }
        self.skip_string()?;
        if self.peek()? != b':' {
            return Err(self.err("expected ':'"));
        }
        self.pos += 1;
        Ok(())
    }
}
