//! An independent reference evaluator of loggate's permission contract and a
//! random raw-JSON policy generator, for differential property tests against
//! loggate's fast path.
//!
//! The reference ([`reference::decide`]) reads the raw `serde_json::Value` of a
//! policy file with plain loops and linear look-ups by id (no typed entry
//! structs, no indexes), written from the contract text alone. The generator
//! ([`generator::policy`], [`generator::requests`]) writes raw JSON and draws
//! every choice from a [`generator::Tape`] of `u32`s supplied by the caller, so a
//! property-test framework can drive and shrink it (an exhausted tape reads as
//! zeros, which always means "the smallest, plainest choice").

pub mod generator;
pub mod reference;

/// One authorization question: may the holder of this token do `permission`
/// on (`object_type`, `object_id`) at `now_ms` from `client_addr`?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Lower-case hex SHA-256 of the presented token.
    pub token_sha256: String,
    pub object_type: String,
    pub object_id: String,
    pub permission: String,
    /// Milliseconds since the Unix epoch.
    pub now_ms: i64,
    pub client_addr: std::net::IpAddr,
}

/// The decision, in the order the contract checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allow,
    Unauthenticated,
    UnknownObject,
    PermissionDenied,
    ScopeDenied,
    ClientAddressDenied,
}

impl Outcome {
    /// Every outcome, in declaration order (handy for tallies).
    pub const ALL: [Outcome; 6] = [
        Outcome::Allow,
        Outcome::Unauthenticated,
        Outcome::UnknownObject,
        Outcome::PermissionDenied,
        Outcome::ScopeDenied,
        Outcome::ClientAddressDenied,
    ];
}

/// What the generator may produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenOptions {
    /// Generate `scope` (grants, client_cidrs), `not_before` and derived
    /// (`parent_id`) tokens.
    pub scopes: bool,
    /// Generate `not_before` on tokens (implied by `scopes`).
    pub not_before: bool,
    /// Generate rule-breaking entries (unknown fields, wrong types, dangling
    /// and cross-organization references, duplicate ids, ...), and now and
    /// then a file that is not a policy at all.
    pub invalid_entries: bool,
}
