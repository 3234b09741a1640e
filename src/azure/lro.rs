//! Long-running operations as plain, serialisable state: the controller persists an `LroState`
//! in status and a restarted operator resumes polling it instead of starting the write again.

use serde::{Deserialize, Serialize};

/// Create/update or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LroKind {
    /// A PUT.
    Put,
    /// A DELETE.
    Delete,
}

/// Which header the poll URL came from; they answer differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PollStyle {
    /// `Azure-AsyncOperation`: 200 with `{"status": …}`.
    AsyncOperation,
    /// `Location`: 202 while running, then 200/204 (or the error).
    Location,
}

/// An operation in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LroState {
    /// The resource it acts on.
    pub resource_id: String,
    /// Put or delete.
    pub kind: LroKind,
    /// URL to poll.
    pub poll_url: String,
    /// How to read the poll.
    pub style: PollStyle,
    /// Seconds since the epoch when it was started.
    pub started_at: u64,
}

/// One poll's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LroStatus {
    /// Still running; poll again after this many seconds.
    Running(std::time::Duration),
    /// Done.
    Succeeded,
    /// Ended with ARM's error code and message.
    Failed {
        /// Code.
        code: String,
        /// Message.
        message: String,
    },
}
