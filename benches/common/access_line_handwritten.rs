//! The access line's former hand-written JSON writer
//! (`src/telemetry/access.rs` until 2026-12-05, with the special-byte
//! search it borrowed from the body scanner, `find_special` of
//! `crates/inspect/src/json/string.rs`), kept as the reference
//! `benches/access_line.rs` measures the serde writer against. Not compiled
//! into loggate. Why it was dropped: docs/decisions/access-log-writer.md.

/// `,"name":"` for a string field, as one literal.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":\"")
    };
}

pub struct Record<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub error: Option<&'a str>,
    pub token_id: Option<&'a str>,
    pub token_name: Option<&'a str>,
    pub org: Option<&'a str>,
    pub decision: &'a str,
    pub rows: usize,
    pub latency_us: u64,
}

const ACCESS_TARGET: &str = "loggate::access";

impl Record<'_> {
    pub fn write_json(&self, out: &mut String, timestamp: &str) {
        out.push_str("{\"timestamp\":\"");
        out.push_str(timestamp);
        out.push_str("\",\"level\":\"INFO\",\"message\":\"request\"");
        field_str(out, key!("request_id"), Some(self.request_id));
        field_str(out, key!("method"), Some(self.method));
        field_str(out, key!("route"), Some(self.route));
        out.push_str(",\"status\":");
        push_decimal(out, self.status.into(), 1);
        field_str(out, key!("error"), self.error);
        field_str(out, key!("token_id"), self.token_id);
        field_str(out, key!("token_name"), self.token_name);
        field_str(out, key!("org"), self.org);
        field_str(out, key!("decision"), Some(self.decision));
        out.push_str(",\"rows\":");
        push_decimal(out, self.rows as u64, 1);
        out.push_str(",\"latency_ms\":");
        push_decimal(out, self.latency_us / 1000, 1);
        out.push('.');
        push_decimal(out, self.latency_us % 1000, 3);
        out.push_str(",\"target\":\"");
        out.push_str(ACCESS_TARGET);
        out.push_str("\"}\n");
    }
}

fn field_str(out: &mut String, key: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    out.push_str(key);
    escape_into(out, value);
    out.push('"');
}

fn escape_into(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    loop {
        let i = find_special(b, start);
        out.push_str(&s[start..i]);
        let Some(&c) = b.get(i) else { return };
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let mut code = [0u8; 2];
                hex::encode_to_slice([c], &mut code).expect("two digits for one byte");
                out.push_str("\\u00");
                out.push_str(std::str::from_utf8(&code).expect("hex digits are ASCII"));
            }
        }
        start = i + 1;
    }
}

fn push_decimal(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Index of the first `"`, `\` or byte < 0x20 at or after `i`, or `b.len()`.
#[inline]
fn find_special(b: &[u8], mut i: usize) -> usize {
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
