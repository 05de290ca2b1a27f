//! The identity a recognised token stands for.

use std::net::IpAddr;
use std::sync::Arc;

use crate::doc::ServiceToken;
use crate::scope::{Scope, Scopes};
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

/// The fields of a service token an identity is made of, wherever the
/// token is kept (a document entry, a compiled record).
pub trait TokenFields {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn org_id(&self) -> &str;
    fn service_account_id(&self) -> &str;
    fn expires_at(&self) -> Option<Timestamp>;
    fn not_before(&self) -> Option<Timestamp>;
    fn scope(&self) -> Option<&Scope>;
    fn parent_id(&self) -> Option<&str>;
}

impl TokenFields for ServiceToken {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn org_id(&self) -> &str {
        &self.org_id
    }
    fn service_account_id(&self) -> &str {
        &self.service_account_id
    }
    fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }
    fn not_before(&self) -> Option<Timestamp> {
        self.not_before
    }
    fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }
    fn parent_id(&self) -> Option<&str> {
        self.parent_id.as_deref()
    }
}

impl<T: TokenFields> TokenFields for &T {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn org_id(&self) -> &str {
        (**self).org_id()
    }
    fn service_account_id(&self) -> &str {
        (**self).service_account_id()
    }
    fn expires_at(&self) -> Option<Timestamp> {
        (**self).expires_at()
    }
    fn not_before(&self) -> Option<Timestamp> {
        (**self).not_before()
    }
    fn scope(&self) -> Option<&Scope> {
        (**self).scope()
    }
    fn parent_id(&self) -> Option<&str> {
        (**self).parent_id()
    }
}

impl Identity {
    /// The identity of `token`, derived from `ancestors` (parent first;
    /// empty for a token of its own).
    pub fn of<A: TokenFields>(token: &impl TokenFields, ancestors: &[A]) -> Self {
        Identity {
            token_id: token.id().to_owned(),
            token_name: token.name().to_owned(),
            org_id: token.org_id().to_owned(),
            user_id: token.service_account_id().to_owned(),
            expires_at: token.expires_at().into_iter().chain(ancestors.iter().filter_map(|t| t.expires_at())).min(),
            not_before: token.not_before().into_iter().chain(ancestors.iter().filter_map(|t| t.not_before())).max(),
            scopes: Scopes::new(token.scope().into_iter().chain(ancestors.iter().filter_map(|t| t.scope())).cloned()),
            lineage: ancestors.iter().map(|t| t.id().to_owned()).collect(),
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
pub fn ancestors<T: TokenFields>(token: &impl TokenFields, find: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let mut chain: Vec<T> = Vec::new();
    let mut next = token.parent_id().map(str::to_owned);
    while let Some(id) = next {
        if id == token.id() || chain.iter().any(|t| t.id() == id) {
            break;
        }
        let parent = find(&id)?;
        next = parent.parent_id().map(str::to_owned);
        chain.push(parent);
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
