//! loggate: a log-ingestion gateway that enforces the Braintrust permission
//! model in front of a data plane. The module tree follows the request flow
//! of design §1.

pub mod auth;
pub mod authz;
pub mod inspect;
pub mod policy;
