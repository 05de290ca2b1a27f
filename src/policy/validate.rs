//! Validation of a policy document: every rule `loggate check` enforces,
//! each violation named by its path (e.g. `acls[3].group_id`).

use std::fmt;

/// One violation: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// JSON path of the offending entry or field, e.g. `acls[3].group_id`.
    pub field: String,
    pub message: String,
}

/// Every violation found in a document (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}
