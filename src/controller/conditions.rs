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
///
/// `Reconciling` and `Stalled` follow from `phase`, the "abnormal-true" pair kstatus (Flux,
/// cli-utils) reads: Reconciling while work is under way, Stalled when only a change of spec (or
/// of Azure's mind) will help. kstatus reads `Ready` as well, but only `Stalled` lets it (and
/// Flux's health checks) report Failed instead of waiting for a timeout.
pub fn merge(
    previous: &[Condition],
    verdicts: &[Verdict],
    generation: Option<i64>,
    phase: &str,
) -> Vec<Condition> {
    let verdicts: Vec<Verdict> = verdicts
        .iter()
        .cloned()
        .chain(progress(verdicts, phase))
        .collect();
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

/// `Reconciling` and `Stalled` for an object in `phase`, explained by its first failing verdict.
fn progress(verdicts: &[Verdict], phase: &str) -> [Verdict; 2] {
    let why = verdicts
        .iter()
        .find(|v| !v.ok && v.type_ != "Ready")
        .map_or_else(
            || phase.to_string(),
            |v| format!("{}: {}", v.type_, v.message),
        );
    let stalled = matches!(phase, "InvalidSpec" | "Degraded");
    let reconciling = matches!(phase, "Pending" | "Provisioning" | "Deleting" | "Draining");
    let flag = |type_: &str, on: bool, message: &str| Verdict {
        type_: type_.into(),
        ok: on,
        reason: if on { phase.into() } else { "Idle".into() },
        message: if on { message.into() } else { phase.into() },
    };
    [
        flag("Reconciling", reconciling, &why),
        flag("Stalled", stalled, &why),
    ]
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
