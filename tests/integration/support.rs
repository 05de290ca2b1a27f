//! Test harness shared by the integration tests: a recording fake data plane,
//! the real `loggate` binary started against a generated config, and a policy
//! builder; `world` puts them together (the one cast-and-gateway harness of
//! the stories, `fleet` its multi-replica sibling) and `wait` polls for
//! conditions under a deadline.
#![allow(dead_code)]

pub mod admin;
pub mod feeds;
pub mod fleet;
pub mod gateway;
pub mod http;
pub mod load;
pub mod otlp;
pub mod pg;
pub mod policy;
pub mod raw;
pub mod sdk;
pub mod tls;
pub mod upstream;
pub mod wait;
pub mod world;
