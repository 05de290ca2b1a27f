//! The per-request access line.
//!
//! In JSON mode the line is formatted here, straight into the access
//! buffer, in the shape tracing-subscriber's JSON formatter gives every
//! other line (`timestamp`, `level`, `message`, the fields, `target`).
//! Going through a tracing event instead cost about 23k instructions per
//! request (a fifth of loggate's user CPU on a small /logs3 batch): field
//! visitors, `Debug` formatting, serde, a timestamp formatted from scratch.
//! In pretty mode, or when `RUST_LOG` filters the line out, the tracing
//! event is used (or nothing is written), as for any other line.

use super::{ACCESS_TARGET, LogFormat};
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `,"name":"` for a string field, as one literal: the line is built from
/// as few pieces as it can be (each piece is a call to copy it in).
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":\"")
    };
}

/// What one request did.
pub struct AccessRecord<'a> {
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

impl AccessRecord<'_> {
    /// Writes the line (buffered; see `telemetry`).
    pub fn log(&self) {
        if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
            return;
        }
        if super::format() != Some(LogFormat::Json) {
            return self.log_event();
        }
        thread_local! {
            static LINE: RefCell<(String, Clock)> = RefCell::new((String::with_capacity(512), Clock::default()));
        }
        LINE.with_borrow_mut(|(line, clock)| {
            line.clear();
            self.write_json(line, clock.now());
            super::append_access(line.as_bytes());
        });
    }

    fn write_json(&self, out: &mut String, timestamp: &str) {
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

    fn log_event(&self) {
        tracing::info!(
            target: "loggate::access",
            request_id = self.request_id,
            method = self.method,
            route = self.route,
            status = self.status,
            error = self.error,
            token_id = self.token_id,
            token_name = self.token_name,
            org = self.org,
            decision = self.decision,
            rows = self.rows,
            latency_ms = self.latency_us as f64 / 1000.0,
            "request"
        );
    }
}

/// `key` (from `key!`) then the JSON-escaped value and its closing quote,
/// or nothing for `None`.
fn field_str(out: &mut String, key: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    out.push_str(key);
    escape_into(out, value);
    out.push('"');
}

/// JSON string escaping (RFC 8259 §7): quote, backslash and control
/// characters; everything else is copied as is, in runs found a word at a
/// time (the values are ids and names: usually one run).
fn escape_into(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    loop {
        let i = loggate_inspect::find_special(b, start);
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

/// `n` in decimal, zero-padded to at least `width` digits (itoa, not `fmt`:
/// this runs several times per request).
fn push_decimal(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(digits);
}

/// RFC 3339 UTC timestamps with microseconds, the date and time of day
/// formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
    text: String,
}

impl Clock {
    fn now(&mut self) -> &str {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if now.as_secs() != self.second || self.prefix.is_empty() {
            self.second = now.as_secs();
            self.prefix = chrono::DateTime::from_timestamp(now.as_secs() as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string();
        }
        self.text.clear();
        self.text.push_str(&self.prefix);
        self.text.push('.');
        push_decimal(&mut self.text, now.subsec_micros().into(), 6);
        self.text.push('Z');
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            request_id: "abc123",
            method: "POST",
            route: "logs3",
            status: 403,
            error: Some("permission_denied"),
            token_id: Some("t1"),
            token_name: Some("ci \"writer\"\\\n\u{1}é"),
            org: None,
            decision: "deny",
            rows: 2,
            latency_us: 12_034,
        }
    }

    #[test]
    fn the_line_is_one_json_object_with_every_field() {
        let mut line = String::new();
        record().write_json(&mut line, "2026-11-25T20:48:33.753353Z");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2026-11-25T20:48:33.753353Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["target"], "loggate::access");
        assert_eq!(v["status"], 403);
        assert_eq!(v["error"], "permission_denied");
        assert_eq!(v["token_name"], "ci \"writer\"\\\n\u{1}é");
        assert!(v.get("org").is_none(), "absent fields are left out");
        assert_eq!(v["rows"], 2);
        assert_eq!(v["latency_ms"], 12.034);
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let mut clock = Clock::default();
        let first = clock.now().to_owned();
        assert_eq!(first.len(), "2026-11-25T20:48:33.753353Z".len(), "{first}");
        assert!(chrono::DateTime::parse_from_rfc3339(&first).is_ok(), "{first}");
        let second = clock.now().to_owned();
        assert!(second >= first);
    }

    #[test]
    fn escaping_round_trips_every_byte_class() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}€𝄞 long run without specials, then \"end\"");
        for s in [all.as_str(), "", "plain", "\"", "\\\\", "\u{1f}x"] {
            let mut out = String::from("\"");
            escape_into(&mut out, s);
            out.push('"');
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
            assert!(!out[1..out.len() - 1].bytes().any(|b| b < 0x20), "{out:?}");
        }
    }

    #[test]
    fn decimals_are_zero_padded_to_their_width() {
        let text = |n, w| {
            let mut s = String::new();
            push_decimal(&mut s, n, w);
            s
        };
        assert_eq!(text(0, 1), "0");
        assert_eq!(text(7, 3), "007");
        assert_eq!(text(12_034, 1), "12034");
        assert_eq!(text(999_999, 6), "999999");
        assert_eq!(text(u64::MAX, 1), u64::MAX.to_string());
    }
}
