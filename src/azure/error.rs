//! ARM errors, classified by what the caller should do about them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a caller should do with a failed ARM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// 404: the resource (or its group/parent) is not there.
    NotFound,
    /// A conflict ARM documents as transient (`AnotherOperationInProgress`, `RetryableError…`):
    /// retry soon.
    ConflictRetryable,
    /// 412: the ETag no longer matches; re-read and decide again.
    PreconditionFailed,
    /// 429: retry after the given delay, and slow the whole subscription down.
    Throttled,
    /// 5xx, timeouts, dropped connections: retry with backoff.
    Transient,
    /// Invalid request, authorization, policy denial: will not succeed as is. Still retried
    /// slowly, because some (a policy exemption, a role assignment) clear by themselves.
    Terminal,
}

impl ErrorClass {
    /// Label for metrics and conditions.
    pub fn label(self) -> &'static str {
        match self {
            ErrorClass::NotFound => "not_found",
            ErrorClass::ConflictRetryable => "conflict",
            ErrorClass::PreconditionFailed => "precondition_failed",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Terminal => "terminal",
        }
    }

    /// How long to wait before trying again, when the server gave no `Retry-After`.
    pub fn default_retry(self) -> Duration {
        match self {
            ErrorClass::NotFound | ErrorClass::PreconditionFailed => Duration::from_secs(1),
            ErrorClass::ConflictRetryable => Duration::from_secs(5),
            ErrorClass::Throttled => Duration::from_secs(10),
            ErrorClass::Transient => Duration::from_secs(5),
            ErrorClass::Terminal => Duration::from_secs(30 * 60),
        }
    }
}

/// 409 codes ARM documents as transient.
const RETRYABLE_CONFLICTS: [&str; 4] = [
    "AnotherOperationInProgress",
    "OperationNotAllowed",
    "ResourceGroupBeingDeleted",
    "Conflict",
];

/// Codes the network provider answers (with a 400 as often as a 409) while something the
/// request depends on is still being written: the same request succeeds once that ends, so it
/// is retried soon, not held back as a refusal. `ReferencedResourceNotProvisioned` is on
/// record as a detail of a `429 RetryableError` (hashicorp/terraform#7986); the firewall
/// policy codes are named in issue #22 from observed failures and not found in Microsoft's
/// documentation. Were one of them permanent after all, the cost is a retry per poll period
/// (reads and a refused write), never a wrong write.
const WAIT_FOR_DEPENDENCY: [&str; 3] = [
    "FirewallPolicyUpdateNotAllowedWhenUpdatingOrDeleting",
    "FirewallPolicyRuleCollectionGroupUpdateNotAllowedWhenUpdatingOrDeleting",
    "ReferencedResourceNotProvisioned",
];

/// Classifies an ARM answer by status and error code.
pub fn classify(status: u16, code: &str) -> ErrorClass {
    match status {
        404 => ErrorClass::NotFound,
        412 => ErrorClass::PreconditionFailed,
        400 | 409 | 429 if WAIT_FOR_DEPENDENCY.contains(&code) => ErrorClass::ConflictRetryable,
        // One resource not ready for the request, not the subscription's throttling.
        429 if code.starts_with("Retryable") => ErrorClass::ConflictRetryable,
        429 => ErrorClass::Throttled,
        409 if RETRYABLE_CONFLICTS.contains(&code) || code.starts_with("Retryable") => {
            ErrorClass::ConflictRetryable
        }
        408 | 500..=599 => ErrorClass::Transient,
        _ if code.starts_with("Retryable") || code == "AnotherOperationInProgress" => {
            ErrorClass::ConflictRetryable
        }
        _ => ErrorClass::Terminal,
    }
}

/// An error answered by ARM (or by the transport, as `Transient`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error(
    "{method} {resource}: {status} {code}: {message}{}",
    .request_id.as_deref().map(|id| format!(" (x-ms-request-id {id})")).unwrap_or_default()
)]
pub struct ArmError {
    /// Method of the failed request (or `POLL` for a failed long-running operation).
    pub method: String,
    /// Resource id (or URL) it addressed.
    pub resource: String,
    /// HTTP status (0 for transport failures).
    pub status: u16,
    /// ARM error code.
    pub code: String,
    /// ARM error message.
    pub message: String,
    /// `x-ms-request-id` of the answer, for support tickets and logs.
    pub request_id: Option<String>,
    /// What to do about it.
    pub class: ErrorClass,
    /// Server-requested delay.
    pub retry_after: Option<Duration>,
}

impl ArmError {
    /// When to try again.
    pub fn retry_in(&self) -> Duration {
        self.retry_after
            .unwrap_or_else(|| self.class.default_retry())
    }
}

/// Everything the ARM engine can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AzureError {
    /// ARM answered with an error, or the transport failed.
    #[error(transparent)]
    Arm(Box<ArmError>),
    /// No token could be had.
    #[error("credential: {0}")]
    Credential(String),
    /// A long-running operation ended `Failed` (or `Canceled`).
    #[error("operation on {resource} failed: {code}: {message}")]
    OperationFailed {
        /// The resource.
        resource: String,
        /// ARM error code of the operation.
        code: String,
        /// Its message.
        message: String,
    },
    /// The engine was given something it cannot send.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A write not sent: the budget would have held it longer than the caller's patience (see
    /// `with_patience`).
    #[error("waits for ARM's write budget")]
    Deferred(std::time::Duration),
}

impl From<ArmError> for AzureError {
    fn from(e: ArmError) -> AzureError {
        AzureError::Arm(Box::new(e))
    }
}

impl AzureError {
    /// The class of the error, for requeue decisions and metrics.
    pub fn class(&self) -> ErrorClass {
        match self {
            AzureError::Arm(e) => e.class,
            AzureError::Credential(_) => ErrorClass::Transient,
            AzureError::OperationFailed { code, .. } => classify(400, code),
            AzureError::Invalid(_) => ErrorClass::Terminal,
            AzureError::Deferred(_) => ErrorClass::Throttled,
        }
    }

    /// When to try again: Azure's Retry-After where it gave one, else the class's pace.
    pub fn retry_in(&self) -> Duration {
        match self {
            AzureError::Arm(e) => e.retry_in(),
            AzureError::Deferred(wait) => *wait,
            other => other.class().default_retry(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(404, "ResourceNotFound"), ErrorClass::NotFound);
        assert_eq!(
            classify(409, "AnotherOperationInProgress"),
            ErrorClass::ConflictRetryable
        );
        assert_eq!(
            classify(409, "RetryableErrorDueToAnotherOperation"),
            ErrorClass::ConflictRetryable
        );
        assert_eq!(
            classify(409, "InvalidResourceReference"),
            ErrorClass::Terminal
        );
        assert_eq!(
            classify(412, "PreconditionFailed"),
            ErrorClass::PreconditionFailed
        );
        assert_eq!(
            classify(429, "SubscriptionRequestsThrottled"),
            ErrorClass::Throttled
        );
        assert_eq!(classify(503, "ServiceUnavailable"), ErrorClass::Transient);
        assert_eq!(classify(400, "InvalidRequestContent"), ErrorClass::Terminal);
        assert_eq!(
            classify(400, "FirewallPolicyUpdateNotAllowedWhenUpdatingOrDeleting"),
            ErrorClass::ConflictRetryable
        );
        assert_eq!(
            classify(400, "ReferencedResourceNotProvisioned"),
            ErrorClass::ConflictRetryable
        );
        assert_eq!(
            classify(429, "RetryableError"),
            ErrorClass::ConflictRetryable
        );
        assert_eq!(classify(403, "AuthorizationFailed"), ErrorClass::Terminal);
        assert_eq!(
            classify(403, "RequestDisallowedByPolicy"),
            ErrorClass::Terminal
        );
        assert_eq!(
            ErrorClass::Terminal.default_retry(),
            Duration::from_secs(1800)
        );
    }
}
