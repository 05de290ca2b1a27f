//! loggate's integration tests, one binary: each module is a story of what
//! a user or operator does, told against real loggate servers on port 0, a
//! recording data plane, real Redis, NATS and PostgreSQL, and the real SDKs
//! (`support` is the harness they share).

mod support;

mod admin_api;
mod attachments;
mod audit_shadow;
mod authz_rules;
mod cli;
mod deploy;
mod fleet_derived;
mod fleet_otel_names;
mod fleet_outage;
mod fleet_property;
mod fleet_recovery;
mod fleet_revocation;
mod fleet_sql;
mod gateway_metrics;
mod gateway_routes;
mod invalidation_bridge;
mod invalidation_feed;
mod limits;
mod loader_fuzz;
mod otel;
mod otel_sdk;
mod policy_cli;
mod policy_integrity;
mod policy_reload;
mod postgres_store;
mod prometheus;
mod robustness;
mod scoped_tokens;
mod sdk_e2e;
mod shutdown;
mod tls;
