//! The policy: its document model, validation, and the stores it is loaded
//! from (`file`, `postgres`).

pub mod discovery;
pub mod file;
pub mod postgres;
pub mod store;
pub use store::{PolicyStore, Store, StoreError};
