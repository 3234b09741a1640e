//! kstatus-style conditions: `Ready` plus one per component, each with reason, message and a
//! lastTransitionTime that only moves when the status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One condition to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Condition type.
    pub type_: String,
    /// True or False.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Verdict {
    /// A `True` condition.
    pub fn ok(type_: &str, reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            type_: type_.into(),
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }
    /// A `False` condition.
    pub fn not(type_: &str, reason: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            type_: type_.into(),
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The new condition list: `verdicts` in order, keeping each lastTransitionTime whose status did
/// not change, with `Ready` first (True only when every other verdict is True).
pub fn merge(
    previous: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
) -> Vec<Condition> {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let make = |v: &Verdict| {
        let status = if v.ok { "True" } else { "False" }.to_string();
        let since = previous
            .iter()
            .find(|c| c.type_ == v.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: v.type_.clone(),
            status,
            reason: v.reason.clone(),
            message: v.message.clone(),
            last_transition_time: since,
            observed_generation: generation,
        }
    };
    verdicts.iter().map(make).collect()
}

/// The `Ready` verdict summarising `components`: the first failing one explains it.
pub fn ready(components: &[Verdict]) -> Verdict {
    match components.iter().find(|v| !v.ok) {
        None => Verdict::ok("Ready", "Converged", "every component is ready"),
        Some(first) => Verdict::not(
            "Ready",
            &first.reason,
            format!("{}: {}", first.type_, first.message),
        ),
    }
}
