//! Bearer token syntax, digests and constant-time comparison.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Prefix of Braintrust service tokens.
pub const SERVICE_TOKEN_PREFIX: &str = "bt-st-";
/// Prefix of Braintrust user API keys (accepted only when configured).
pub const API_KEY_PREFIX: &str = "sk-";
/// Minimum number of characters after the prefix.
const MIN_SECRET_LEN: usize = 32;
/// Longest token considered; anything longer is malformed, not hashed.
const MAX_TOKEN_LEN: usize = 512;

/// SHA-256 of the whole token string. Equality is constant time.
#[derive(Clone, Copy, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Lower-case hex, as `token_sha256` stores it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(TokenDigest(out))
    }

    /// A non-secret bucket key for hash maps: the digest's first 8 bytes.
    /// Maps are keyed by this and candidates compared with `ct_eq`, so a
    /// lookup never short-circuits on the secret-derived bytes.
    pub fn bucket(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for TokenDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.bucket());
    }
}

impl fmt::Debug for TokenDigest {
    /// Never prints the digest: it identifies a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenDigest(…)")
    }
}

impl std::str::FromStr for TokenDigest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, InvalidDigest> {
        TokenDigest::from_hex(s).ok_or(InvalidDigest)
    }
}

/// A `token_sha256` that is not 64 lower-case hex digits (the value is
/// never repeated: it identifies a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be 64 lower-case hex digits (SHA-256 of the token)")]
pub struct InvalidDigest;

/// As `token_sha256` holds it: lower-case hex.
impl serde::Serialize for TokenDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for TokenDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        // The error never repeats the value: it identifies a secret.
        TokenDigest::from_hex(&s).ok_or_else(|| serde::de::Error::custom(InvalidDigest))
    }
}

/// What kind of credential a syntactically valid bearer token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    ServiceToken,
    ApiKey,
}

/// Why an `Authorization` header was not a usable bearer token. Messages
/// never contain the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("missing Authorization header")]
    Missing,
    #[error("more than one Authorization header")]
    Repeated,
    #[error("Authorization header is not 'Bearer <token>'")]
    NotBearer,
    #[error("token is not a bt-st- service token")]
    WrongPrefix,
    #[error("token is malformed")]
    Malformed,
}

/// Parses all `Authorization` header values of a request into a token and
/// its kind. Exactly one header, `Bearer <token>`, with a known prefix and
/// at least 32 characters of `[A-Za-z0-9_-]` after it.
pub fn parse_authorization<'a, I>(values: I) -> Result<(&'a str, TokenKind), BearerError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let raw = values.next().ok_or(BearerError::Missing)?;
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let raw = std::str::from_utf8(raw).map_err(|_| BearerError::NotBearer)?;
    let (scheme, token) = raw.trim().split_once(' ').ok_or(BearerError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = token.trim_start();
    let (kind, secret) = if let Some(rest) = token.strip_prefix(SERVICE_TOKEN_PREFIX) {
        (TokenKind::ServiceToken, rest)
    } else if let Some(rest) = token.strip_prefix(API_KEY_PREFIX) {
        (TokenKind::ApiKey, rest)
    } else {
        return Err(BearerError::WrongPrefix);
    };
    let well_formed = token.len() <= MAX_TOKEN_LEN
        && secret.len() >= MIN_SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(BearerError::Malformed);
    }
    Ok((token, kind))
}

/// A fresh service token: 256 bits from the OS CSPRNG, URL-safe base64.
/// What may be shown of a token: its first 10 characters and an ellipsis
/// (`bt-st-abcd…`), as the Braintrust API's `preview_name`.
pub fn preview(token: &str) -> String {
    format!("{}…", token.chars().take(10).collect::<String>())
}

pub fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("OS random number generator unavailable");
    format!("{SERVICE_TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn preview_is_the_first_ten_characters() {
        assert_eq!(super::preview("bt-st-abcdefghijklmnopqrstuvwxyz0123456789"), "bt-st-abcd…");
    }

    use super::*;

    const GOOD: &str = "bt-st-abcdefghijklmnopqrstuvwxyz012345";

    fn parse(v: &[&str]) -> Result<(&'static str, TokenKind), BearerError> {
        let owned: Vec<&'static [u8]> =
            v.iter().map(|s| &*Box::leak(s.as_bytes().to_vec().into_boxed_slice())).collect();
        parse_authorization(owned)
    }

    #[test]
    fn accepts_a_well_formed_service_token() {
        let (tok, kind) = parse(&[&format!("Bearer {GOOD}")]).unwrap();
        assert_eq!(tok, GOOD);
        assert_eq!(kind, TokenKind::ServiceToken);
    }

    #[test]
    fn rejects_every_malformed_shape() {
        assert_eq!(parse(&[]), Err(BearerError::Missing));
        assert_eq!(parse(&[&format!("Bearer {GOOD}"), &format!("Bearer {GOOD}")]), Err(BearerError::Repeated));
        assert_eq!(parse(&[GOOD]), Err(BearerError::NotBearer));
        assert_eq!(parse(&[&format!("Basic {GOOD}")]), Err(BearerError::NotBearer));
        assert_eq!(parse(&["Bearer xx-abcdefghijklmnopqrstuvwxyz012345"]), Err(BearerError::WrongPrefix));
        assert_eq!(parse(&["Bearer bt-st-short"]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer bt-st-abcdefghijklmnopqrstuvwxyz01234!"]), Err(BearerError::Malformed));
        assert_eq!(parse(&["Bearer "]), Err(BearerError::NotBearer));
    }

    #[test]
    fn generated_tokens_are_valid_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(parse(&[&format!("Bearer {a}")]).is_ok());
    }

    #[test]
    fn digest_round_trips_through_hex_and_never_prints() {
        let d = TokenDigest::of(GOOD);
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(TokenDigest::from_hex(&d.to_hex().to_uppercase()), None);
        assert!(!format!("{d:?}").contains(&d.to_hex()[..8]));
    }
}
