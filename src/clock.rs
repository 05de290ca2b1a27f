//! The wall clock, in the unit the policy and the invalidation feed use.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. A clock set before 1970 is broken:
/// it reads as the end of time, so that everything that expires has
/// expired (fail closed) rather than nothing.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(i64::MAX, |d| d.as_millis() as i64)
}
