//! The controller's one error type.

use crate::azure::AzureError;

/// Everything a reconcile can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// Azure failed in a way the reconcile could not absorb.
    #[error("azure: {0}")]
    Azure(#[from] AzureError),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Deletion or another multi-step change is still under way; look again soon.
    #[error("in progress: {0}")]
    InProgress(String),
    /// The watch caches are not running (the controllers have not started, or stopped).
    #[error("the watch caches are not running")]
    NotStarted,
    /// An object without the name or namespace it must have.
    #[error("object without {0}")]
    MissingObjectKey(&'static str),
    /// A call to the API server that did not answer in time (its client has no read timeout
    /// of its own: a connection that stopped answering would hang for ever).
    #[error("the API server did not answer {0} within {1:?}")]
    Timeout(&'static str, std::time::Duration),
}

impl Error {
    /// The error itself, out of the finalizer helper's wrapping (an apply or a cleanup failed
    /// with it).
    pub fn cause(&self) -> &Error {
        use kube::runtime::finalizer::Error as Wrapped;
        match self {
            Error::Finalizer(wrapped) => match wrapped.as_ref() {
                Wrapped::ApplyFailed(e) | Wrapped::CleanupFailed(e) => e.cause(),
                _ => self,
            },
            _ => self,
        }
    }

    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self.cause() {
            Error::Kube(_) => "kubernetes",
            Error::Azure(e) => e.class().label(),
            Error::Finalizer(_) => "finalizer",
            Error::MissingObjectKey(_) => "missing_key",
            Error::InProgress(_) => "in_progress",
            Error::NotStarted => "not_started",
            Error::Timeout(..) => "timeout",
        }
    }
}

/// Result of controller functions.
pub type Result<T> = std::result::Result<T, Error>;
