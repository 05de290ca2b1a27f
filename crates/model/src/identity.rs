//! The identity a recognised token stands for.

use std::net::IpAddr;
use std::sync::Arc;

use crate::doc::ServiceToken;
use crate::scope::Scopes;
use crate::timestamp::Timestamp;

/// Who a request is acting as, once its token has been recognised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The service token's id (safe to log).
    pub token_id: String,
    /// The service token's name (safe to log).
    pub token_name: String,
    /// The organization the token is confined to.
    pub org_id: String,
    /// The service account (a user id) ACLs name.
    pub user_id: String,
    /// The earliest end of the token's and its ancestors' windows; `None`
    /// never expires.
    pub expires_at: Option<Timestamp>,
    /// The latest start of those windows; `None`: valid from the start.
    pub not_before: Option<Timestamp>,
    /// The token's scope and its ancestors'.
    pub scopes: Scopes,
    /// The ids of the tokens it was derived from, parent first: a change to
    /// any of them is a change to this one.
    pub lineage: Arc<[String]>,
}

impl Identity {
    /// The identity of `token`, derived from `ancestors` (parent first;
    /// empty for a token of its own).
    pub fn of(token: &ServiceToken, ancestors: &[&ServiceToken]) -> Self {
        let chain = || std::iter::once(token).chain(ancestors.iter().copied());
        Identity {
            token_id: token.id.clone(),
            token_name: token.name.clone(),
            org_id: token.org_id.clone(),
            user_id: token.service_account_id.clone(),
            expires_at: chain().filter_map(|t| t.expires_at).min(),
            not_before: chain().filter_map(|t| t.not_before).max(),
            scopes: Scopes::new(chain().filter_map(|t| t.scope.clone())),
            lineage: ancestors.iter().map(|t| t.id.clone()).collect(),
        }
    }

    /// Whether the token is outside its validity window (the caller owns
    /// the clock); `now_ms` (unix ms) is read only for a token that has one.
    pub fn expired(&self, now_ms: impl FnOnce() -> i64) -> bool {
        if self.expires_at.is_none() && self.not_before.is_none() {
            return false;
        }
        let now = Timestamp::from_unix_ms(now_ms());
        self.expires_at.is_some_and(|exp| now >= exp) || self.not_before.is_some_and(|nbf| now < nbf)
    }

    /// Whether a request from `addr` may use the token (`client_cidrs` of
    /// the token and its ancestors).
    pub fn admits(&self, addr: IpAddr) -> bool {
        self.scopes.admit(addr)
    }

    /// Whether a change to token `token_id` touches this identity.
    pub fn depends_on(&self, token_id: &str) -> bool {
        self.token_id == token_id || self.lineage.iter().any(|t| t == token_id)
    }
}

/// The ancestors of `token` in `tokens` (parent first), each once: a loop
/// of parents is walked once around. `None` when a parent is missing.
pub fn ancestors<'a>(
    token: &ServiceToken,
    find: impl Fn(&str) -> Option<&'a ServiceToken>,
) -> Option<Vec<&'a ServiceToken>> {
    let mut chain: Vec<&'a ServiceToken> = Vec::new();
    let mut next = token.parent_id.as_deref();
    while let Some(id) = next {
        if id == token.id || chain.iter().any(|t| t.id == id) {
            break;
        }
        let parent = find(id)?;
        chain.push(parent);
        next = parent.parent_id.as_deref();
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;
    use crate::token::TokenDigest;

    fn token(id: &str, parent: Option<&str>, exp_ms: Option<i64>) -> ServiceToken {
        let mut t = ServiceToken::new(id, id, "o", "u", TokenDigest::of(id));
        t.parent_id = parent.map(Into::into);
        t.expires_at = exp_ms.map(Timestamp::from_unix_ms);
        t.scope = Some(Scope { grants: Some(vec![]), client_cidrs: None });
        t
    }

    #[test]
    fn a_child_takes_the_tightest_window_and_every_scope_of_its_lineage() {
        let tokens = [token("a", None, Some(1_000)), token("b", Some("a"), Some(5_000)), token("c", Some("b"), None)];
        let find = |id: &str| tokens.iter().find(|t| t.id == id);
        let chain = ancestors(&tokens[2], find).unwrap();
        let id = Identity::of(&tokens[2], &chain);
        assert_eq!(id.expires_at, Some(Timestamp::from_unix_ms(1_000)));
        assert_eq!(id.scopes.iter().count(), 3);
        assert!(id.depends_on("a") && id.depends_on("c") && !id.depends_on("d"));
        assert!(id.expired(|| 1_000) && !id.expired(|| 999));
    }

    #[test]
    fn a_loop_of_parents_is_walked_once_and_a_missing_parent_is_none() {
        let tokens = [token("a", Some("b"), None), token("b", Some("a"), None)];
        let find = |id: &str| tokens.iter().find(|t| t.id == id);
        assert_eq!(ancestors(&tokens[0], find).unwrap().len(), 1);
        let orphan = token("c", Some("zz"), None);
        assert!(ancestors(&orphan, find).is_none());
    }
}
