//! The ARM engine: credentials, transport, GET/PUT/PATCH/DELETE/list, long-running operations as
//! serialisable state, diff-before-PUT, the client-side throttle budget, error classification
//! and metrics. It knows nothing of Kubernetes.
//!
//! Bodies are `serde_json::Value` built by the planner, not the `azure_mgmt_*` model types: those
//! crates stopped at 0.21 on the pre-1.0 `azure_core` (a second, unmaintained SDK stack beside
//! `azure_identity` 1.x) and lag the api-versions in `shared/azure-specs`. Conformance to
//! Microsoft's spec is checked instead: every planned body is validated against schemas derived
//! from the official OpenAPI files (`emulator::spec_schema`, tests `emulator_spec_validation`).

pub mod budget;
pub mod client;
pub mod credential;
pub mod diff;
pub mod error;
pub mod lro;
pub mod metrics;

pub use budget::{
    with_patience, with_priority, yielding_to, BudgetLimits, Contenders, RequestClass,
    ThrottleBudget,
};
pub use client::{
    ApplyOutcome, ArmClient, ArmConfig, DeleteOutcome, ListingAge, LiveResource, PutOutcome,
};
pub use credential::{CredentialConfig, TokenSource};
pub use error::{ArmError, AzureError, ErrorClass};
pub use lro::{LroKind, LroState, LroStatus, PollStyle};
pub use metrics::ArmMetrics;
