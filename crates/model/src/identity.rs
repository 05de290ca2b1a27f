//! The identity a recognised token stands for.

use crate::timestamp::Timestamp;

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
    /// `None` never expires.
    pub expires_at: Option<Timestamp>,
    /// `None`: valid from the start.
    pub not_before: Option<Timestamp>,
}

impl Identity {
    /// Whether the token is outside its validity window (the caller owns
    /// the clock); `now_ms` (unix ms) is read only for a token that has one.
    pub fn expired(&self, now_ms: impl FnOnce() -> i64) -> bool {
        if self.expires_at.is_none() && self.not_before.is_none() {
            return false;
        }
        let now = Timestamp::from_unix_ms(now_ms());
        self.expires_at.is_some_and(|exp| now >= exp) || self.not_before.is_some_and(|nbf| now < nbf)
    }
}
