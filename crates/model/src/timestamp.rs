//! Instants of the policy (`deleted_at`, `expires_at`, `not_before`): RFC 3339
//! in the document, kept to the nanosecond once parsed (a validity window
//! is compared exactly, never rounded towards a longer life).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A point in time: seconds since the Unix epoch and the nanoseconds past
/// them (ordered by both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    pub fn from_unix_ms(ms: i64) -> Self {
        Timestamp { secs: ms.div_euclid(1000), nanos: ms.rem_euclid(1000) as u32 * 1_000_000 }
    }

    /// Milliseconds since the Unix epoch, rounded down.
    pub fn unix_ms(self) -> i64 {
        self.secs.saturating_mul(1000).saturating_add(i64::from(self.nanos / 1_000_000))
    }

    /// Parses an RFC 3339 timestamp (`2026-12-31T00:00:00Z`).
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidTimestamp> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() })
            .map_err(|_| InvalidTimestamp(s.to_owned()))
    }

    /// RFC 3339 in UTC, with fractional seconds only when there are any.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp(self.secs, self.nanos) {
            Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            None => format!("{}s", self.secs),
        }
    }
}

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an RFC 3339 timestamp")]
pub struct InvalidTimestamp(pub String);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-12-31T00:00:00Z").unwrap();
        assert_eq!(t.unix_ms(), 1_798_675_200_000);
        assert_eq!(t.to_rfc3339(), "2026-12-31T00:00:00Z");
        let offset = Timestamp::parse_rfc3339("2026-12-31T01:00:00.250+01:00").unwrap();
        assert_eq!(offset.unix_ms(), 1_798_675_200_250);
        assert_eq!(serde_json::to_string(&offset).unwrap(), "\"2026-12-31T00:00:00.250Z\"");
    }

    #[test]
    fn keeps_what_a_millisecond_would_round_away() {
        let t = Timestamp::parse_rfc3339("2026-12-31T00:00:00.0005Z").unwrap();
        assert!(t > Timestamp::from_unix_ms(1_798_675_200_000));
        assert!(t < Timestamp::from_unix_ms(1_798_675_200_001));
        assert_eq!(t.unix_ms(), 1_798_675_200_000);
        assert_eq!(Timestamp::from_unix_ms(-1).unix_ms(), -1);
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in ["", "2026-12-31", "tomorrow", "2026-12-31 00:00:00"] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Timestamp>("1798675200").is_err());
    }
}
