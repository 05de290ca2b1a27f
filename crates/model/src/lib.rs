//! loggate's typed policy model: the bottom of the workspace.
//!
//! The vocabularies of the permission model (permissions, object types,
//! object references), the policy document in the Braintrust object shapes,
//! the rules an entry must keep to be loaded, and the token digest and
//! identity a request acts as. Depends on no other crate of the workspace.

pub mod compact;
pub mod doc;
pub mod identity;
pub mod load;
pub mod scope;
pub mod timestamp;
pub mod token;
pub mod types;

pub use identity::Identity;
pub use load::{Loaded, NotAPolicy, PolicyError, PolicyErrors, ValidPolicy};
pub use scope::{Cidr, Scope, ScopeGrant, Scopes};
pub use timestamp::Timestamp;
pub use token::{BearerError, TokenDigest, TokenKind, parse_authorization};
