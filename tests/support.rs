//! Test harness shared by the integration tests: a recording fake data plane,
//! the real `loggate` binary started against a generated config, and a policy
//! builder. Include it from a test file with `mod support;`.
//!
//! Cargo also builds this file as a test target of its own (it has only the
//! harness's self-checks).
#![allow(dead_code)]

#[path = "support/feeds.rs"]
pub mod feeds;
#[path = "support/fleet.rs"]
pub mod fleet;
#[path = "support/reference.rs"]
pub mod reference;
#[path = "support/gateway.rs"]
pub mod gateway;
#[path = "support/http.rs"]
pub mod http;
#[path = "support/pg.rs"]
pub mod pg;
#[path = "support/policy.rs"]
pub mod policy;
#[path = "support/raw.rs"]
pub mod raw;
#[path = "support/sdk.rs"]
pub mod sdk;
#[path = "support/tls.rs"]
pub mod tls;
#[path = "support/upstream.rs"]
pub mod upstream;
#[path = "support/minimal.rs"]
pub mod minimal;
#[path = "support/world.rs"]
pub mod world;
