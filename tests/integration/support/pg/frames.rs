//! Counts what a Postgres client asks, by reading the frontend side of the
//! wire protocol as it passes through the [`Relay`](super::Relay):
//! - statements: every simple `Query` ('Q') and extended-protocol
//!   `Execute` ('E') runs one;
//! - round trips: every `Query` and every `Sync` ('S') ends one, and
//!   outside an explicit transaction (all the store's lookups) each is one
//!   implicit transaction: what `pg_stat_database.xact_commit` counts (a
//!   lookup is two, `tokio_postgres` preparing its statement first).
//!
//! Exact and at once, unlike `pg_stat_database`, whose counters an idle
//! backend may report up to 10 s late.

/// The protocol version of a `StartupMessage`; anything else before it
/// (`SSLRequest`, `GSSENCRequest`) is another untyped message.
const PROTOCOL_3: u32 = 0x0003_0000;

/// A reader of one connection's frontend byte stream, fed in whatever
/// chunks the socket yields.
#[derive(Debug)]
pub struct FrameCounter {
    /// Still before the `StartupMessage`: messages carry no type byte.
    startup: bool,
    header: Vec<u8>,
    /// Bytes of the current message's body still to pass by.
    skip: usize,
}

impl Default for FrameCounter {
    fn default() -> Self {
        FrameCounter { startup: true, header: Vec::with_capacity(8), skip: 0 }
    }
}

impl FrameCounter {
    /// Reads `data`; returns what it asked.
    pub fn feed(&mut self, mut data: &[u8]) -> Counts {
        let mut counts = Counts::default();
        while !data.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
                continue;
            }
            let need = if self.startup { 8 } else { 5 };
            let k = (need - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.header.len() < need {
                break;
            }
            let word = |at: usize| u32::from_be_bytes(self.header[at..at + 4].try_into().expect("4 bytes")) as usize;
            if self.startup {
                // Int32 length (itself included), Int32 code, body.
                let (len, code) = (word(0), word(4));
                self.startup = code != PROTOCOL_3 as usize;
                self.skip = len.saturating_sub(8);
            } else {
                // Byte1 type, Int32 length (itself included), body.
                counts.statements += u64::from(matches!(self.header[0], b'Q' | b'E'));
                counts.round_trips += u64::from(matches!(self.header[0], b'Q' | b'S'));
                self.skip = word(1).saturating_sub(4);
            }
            self.header.clear();
        }
        counts
    }
}

/// Statements and round trips (see the module).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub statements: u64,
    pub round_trips: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn untyped(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        m.extend(code.to_be_bytes());
        m.extend(body);
        m
    }

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend(((4 + body.len()) as u32).to_be_bytes());
        m.extend(body);
        m
    }

    fn session() -> Vec<u8> {
        let mut s = untyped(80_877_103, b""); // SSLRequest
        s.extend(untyped(PROTOCOL_3, b"user\0postgres\0\0"));
        s.extend(typed(b'p', b"secret\0"));
        s.extend(typed(b'Q', b"SELECT 1\0"));
        for _ in 0..3 {
            s.extend(typed(b'P', b"\0SELECT $1\0\0\0"));
            s.extend(typed(b'B', b"\0\0\0\0\0\0\0\0"));
            s.extend(typed(b'E', b"\0\0\0\0\0"));
            s.extend(typed(b'S', b""));
        }
        s.extend(typed(b'X', b""));
        s
    }

    #[test]
    fn counts_simple_queries_and_executes_whatever_the_chunking() {
        let bytes = session();
        for chunk in [1, 2, 3, 7, 64, bytes.len()] {
            let mut c = FrameCounter::default();
            let (mut statements, mut round_trips) = (0, 0);
            for b in bytes.chunks(chunk) {
                let counts = c.feed(b);
                statements += counts.statements;
                round_trips += counts.round_trips;
            }
            assert_eq!((statements, round_trips), (4, 4), "chunks of {chunk}");
        }
    }
}
