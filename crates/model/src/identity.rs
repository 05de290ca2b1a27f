//! The identity a recognised token stands for.

/// Who a request is acting as, once its token has been recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The service token's id (safe to log).
    pub token_id: String,
    /// The service token's name (safe to log).
    pub token_name: String,
    /// The organization the token is confined to.
    pub org_id: String,
    /// The service account (a user id) ACLs name.
    pub user_id: String,
    /// Expiry as milliseconds since the Unix epoch; `None` never expires.
    pub expires_at_ms: Option<i64>,
}

impl Identity {
    /// Whether the token has expired (the caller owns the clock); `now_ms`
    /// (unix ms) is read only for a token that has an expiry.
    pub fn expired(&self, now_ms: impl FnOnce() -> i64) -> bool {
        self.expires_at_ms.is_some_and(|exp| now_ms() >= exp)
    }
}
