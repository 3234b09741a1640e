//! The one error the planner returns: which field is wrong and why.

/// A spec the planner refuses. `field` is a JSON path into the object (`spec.subnets.firewall`),
/// `reason` says what Azure or the design requires, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PlanError {
    /// Path of the offending field.
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

impl PlanError {
    /// A refusal of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PlanError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result of a planner function.
pub type PlanResult<T> = Result<T, PlanError>;
