//! The ARM engine: credentials, transport, GET/PUT/PATCH/DELETE/list, long-running operations as
//! serialisable state, diff-before-PUT, the client-side throttle budget, error classification
//! and metrics. It knows nothing of Kubernetes.

pub mod budget;
pub mod client;
pub mod credential;
pub mod diff;
pub mod error;
pub mod lro;
pub mod metrics;

pub use budget::{BudgetLimits, RequestClass, ThrottleBudget};
pub use client::{ApplyOutcome, ArmClient, ArmConfig, DeleteOutcome, LiveResource, PutOutcome};
pub use credential::{CredentialConfig, TokenSource};
pub use error::{ArmError, AzureError, ErrorClass};
pub use lro::{LroKind, LroState, LroStatus, PollStyle};
pub use metrics::ArmMetrics;
