//! The per-request access line.
//!
//! In JSON mode the line is serialized here (serde), straight into the
//! access buffer, in the shape tracing-subscriber's JSON formatter gives
//! every other line (`timestamp`, `level`, `message`, the fields, `target`)
//! but without a tracing event: why, and what it measured, is in
//! docs/decisions/access-log-writer.md. In pretty mode, or when `RUST_LOG`
//! filters the line out, the tracing event is used (or nothing is written),
//! as for any other line.

use super::{ACCESS_TARGET, LogFormat};
use serde::Serialize;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// What one request did.
pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    /// The client address requests are judged by (see `server::client_addr`).
    pub client: std::net::IpAddr,
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
            static LINE: RefCell<(Vec<u8>, Clock)> = RefCell::new((Vec::with_capacity(512), Clock::default()));
        }
        LINE.with_borrow_mut(|(line, clock)| {
            line.clear();
            self.write_json(line, clock.now());
            super::append_access(line);
        });
    }

    /// The JSON line, newline included, appended to `out` (public for
    /// `benches/access_line.rs`).
    #[doc(hidden)]
    pub fn write_json(&self, out: &mut Vec<u8>, timestamp: &str) {
        let line = JsonLine {
            timestamp,
            level: "INFO",
            message: "request",
            request_id: self.request_id,
            method: self.method,
            route: self.route,
            client: self.client,
            status: self.status,
            error: self.error,
            token_id: self.token_id,
            token_name: self.token_name,
            org: self.org,
            decision: self.decision,
            rows: self.rows,
            latency_ms: self.latency_us as f64 / 1000.0,
            target: ACCESS_TARGET,
        };
        // Writing into a Vec cannot fail, nor can serializing these fields.
        if serde_json::to_writer(&mut *out, &line).is_ok() {
            out.push(b'\n');
        }
    }

    fn log_event(&self) {
        tracing::info!(
            target: "loggate::access",
            request_id = self.request_id,
            method = self.method,
            route = self.route,
            client = %self.client,
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

/// The access line as serialized: fields in this order, absent ones left
/// out (as tracing-subscriber's JSON formatter does).
#[derive(Serialize)]
struct JsonLine<'a> {
    timestamp: &'a str,
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    client: std::net::IpAddr,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<&'a str>,
    decision: &'a str,
    rows: usize,
    latency_ms: f64,
    target: &'static str,
}

/// `n` in decimal, zero-padded to at least `width` digits (itoa, not `fmt`:
/// this runs for every line).
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
            client: std::net::IpAddr::from([192, 0, 2, 7]),
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

    fn line(r: &AccessRecord<'_>) -> String {
        let mut out = Vec::new();
        r.write_json(&mut out, "2026-11-25T20:48:33.753353Z");
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn the_line_is_one_json_object_with_every_field() {
        let line = line(&record());
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
    fn fields_come_in_the_order_of_every_other_json_line() {
        let r = AccessRecord { token_name: Some("ci"), org: Some("o1"), ..record() };
        assert_eq!(
            line(&r),
            concat!(
                r#"{"timestamp":"2026-11-25T20:48:33.753353Z","level":"INFO","message":"request","#,
                r#""request_id":"abc123","method":"POST","route":"logs3","client":"192.0.2.7","status":403,"error":"permission_denied","#,
                r#""token_id":"t1","token_name":"ci","org":"o1","decision":"deny","rows":2,"latency_ms":12.034,"#,
                r#""target":"loggate::access"}"#,
                "\n"
            )
        );
        let r = AccessRecord { error: None, token_id: None, token_name: None, latency_us: 7, ..record() };
        assert_eq!(
            line(&r),
            concat!(
                r#"{"timestamp":"2026-11-25T20:48:33.753353Z","level":"INFO","message":"request","#,
                r#""request_id":"abc123","method":"POST","route":"logs3","client":"192.0.2.7","status":403,"decision":"deny","rows":2,"#,
                r#""latency_ms":0.007,"target":"loggate::access"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn latency_is_milliseconds_to_the_microsecond() {
        for us in [0, 1, 7, 999, 1_000, 12_034, 59_999_999, 3_600_000_001] {
            let v: serde_json::Value =
                serde_json::from_str(&line(&AccessRecord { latency_us: us, ..record() })).unwrap();
            assert_eq!(v["latency_ms"].as_f64(), Some(us as f64 / 1000.0), "{us}");
            let text = line(&AccessRecord { latency_us: us, ..record() });
            let ms = text.split("\"latency_ms\":").nth(1).unwrap().split(',').next().unwrap();
            assert!(!ms.contains('e') && ms.split('.').nth(1).is_none_or(|f| f.len() <= 3), "{us}: {ms}");
        }
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
            let text = line(&AccessRecord { token_name: Some(s), ..record() });
            assert!(!text[..text.len() - 1].bytes().any(|b| b < 0x20), "{text:?}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["token_name"], s, "{text}");
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
