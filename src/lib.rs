//! loggate: a log-ingestion gateway that enforces the Braintrust permission
//! model in front of a data plane. The module tree follows the request flow
//! of design §1.

pub mod policy;
pub mod config;
pub mod error;
pub mod metrics;
pub mod cache;
pub mod invalidation;
pub mod forward;
pub mod limits;
pub mod admin;
pub mod server;
pub mod telemetry;
pub mod cli;
