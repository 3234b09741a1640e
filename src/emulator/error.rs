//! ARM's error shape: `{"error":{"code","message","details"}}` with an HTTP status.

use serde_json::{json, Value};

/// An error the emulator answers with, as ARM would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// HTTP status.
    pub status: u16,
    /// ARM error code (`ResourceNotFound`, `AnotherOperationInProgress`, …).
    pub code: String,
    /// Message.
    pub message: String,
}

impl ArmError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ArmError {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ArmError {
        ArmError::new(400, code, message)
    }

    /// ARM's JSON body.
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code, "message": self.message, "details": [] } })
    }
}
