//! The policy: its document model, validation, and the stores it is loaded
//! from (`file`, `postgres`).

pub mod model;
pub mod types;
pub mod validate;
