//! Shared by the crate's benches.

pub mod rows;
