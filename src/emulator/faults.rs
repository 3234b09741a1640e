//! Fault injection: errors, dropped connections, failing long-running operations, extra latency,
//! matched by method and resource type or path, for a number of requests or every n-th one.

use serde::{Deserialize, Serialize};

/// What a matching request suffers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum FaultAction {
    /// Answer with this status and error code (429 carries `Retry-After: retryAfterSeconds`).
    Status {
        /// HTTP status (429, 500, 503, …).
        status: u16,
        /// ARM error code.
        code: String,
        /// Retry-After seconds for 429/503.
        #[serde(default)]
        retry_after_seconds: Option<u64>,
    },
    /// Close the connection without answering.
    DropConnection,
    /// Accept the write, then end its long-running operation `Failed` with this code.
    FailOperation {
        /// ARM error code of the failed operation.
        code: String,
    },
    /// Answer normally, this many milliseconds later.
    Delay {
        /// Extra latency.
        millis: u64,
    },
}

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Resource type to match, case-insensitive (`Microsoft.Network/virtualNetworks`).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// Substring of the path to match.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// Apply to this many matching requests, then retire (forever when absent).
    #[serde(default)]
    pub times: Option<u32>,
    /// Apply to every n-th matching request only (1 = all).
    #[serde(default)]
    pub every: Option<u32>,
    #[serde(skip)]
    seen: u32,
}

impl FaultRule {
    /// A rule applying `action` to every request.
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            method: None,
            resource_type: None,
            path_contains: None,
            action,
            times: None,
            every: None,
            seen: 0,
        }
    }
    /// Only `method`.
    pub fn method(mut self, method: &str) -> FaultRule {
        self.method = Some(method.to_string());
        self
    }
    /// Only `resource_type`.
    pub fn resource_type(mut self, resource_type: &str) -> FaultRule {
        self.resource_type = Some(resource_type.to_string());
        self
    }
    /// Only requests whose path contains `part` (case-insensitive).
    pub fn path_contains(mut self, part: &str) -> FaultRule {
        self.path_contains = Some(part.to_string());
        self
    }
    /// Only `times` requests.
    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = Some(times);
        self
    }

    fn matches(&self, method: &str, resource_type: Option<&str>, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .resource_type
                .as_deref()
                .is_none_or(|t| resource_type.is_some_and(|rt| rt.eq_ignore_ascii_case(t)))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.to_ascii_lowercase().contains(&p.to_ascii_lowercase()))
            && self.times != Some(0)
    }
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    /// Adds a rule.
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The first action that applies to this request, consuming one use of its rule.
    pub fn take(
        &mut self,
        method: &str,
        resource_type: Option<&str>,
        path: &str,
    ) -> Option<FaultAction> {
        for rule in self
            .rules
            .iter_mut()
            .filter(|r| r.matches(method, resource_type, path))
        {
            rule.seen += 1;
            if rule
                .every
                .is_some_and(|n| n > 1 && !rule.seen.is_multiple_of(n))
            {
                continue;
            }
            if let Some(left) = rule.times.as_mut() {
                *left -= 1;
            }
            return Some(rule.action.clone());
        }
        None
    }
}
