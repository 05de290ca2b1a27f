//! loggate: a log-ingestion gateway that enforces the Braintrust permission
//! model in front of a data plane. The module tree follows the request flow
//! of contract: Request flow.

pub mod admin;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod forward;
pub mod invalidation;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod server;
pub mod telemetry;
