//! Waiting for and reading what the operator reports: conditions, readiness, eventual states.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::Value;

use super::operator::Operator;
use super::stage::{json_of, Stage};

/// Waits (up to four minutes) until `done` holds; panics naming `what`, with the operator's
/// log, otherwise. A bound on waiting, not a claim about speed.
pub async fn eventually(what: &str, operator: &Operator, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(240) {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} did not happen\nlog:\n{}", operator.log());
}

/// `kubectl wait --for=condition=Ready` on the objects of `file`; panics with their status and
/// the operator's log otherwise.
pub fn ready(st: &Stage, file: &str, operator: &Operator) {
    let out = st.cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "-f",
        file,
        "--timeout=240s",
    ]);
    if !out.status.success() {
        let status = st.cp.kubectl(&["get", "-f", file, "-o", "yaml"]);
        panic!(
            "not Ready: {}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&status.stdout),
            operator.log()
        );
    }
}

/// Applies the examples `names` (in one file) and waits until they are Ready; the file's path.
pub fn applied_ready(st: &Stage, names: &[&str], operator: &Operator) -> String {
    let file = st.examples_named(names).to_str().unwrap().to_string();
    st.cp.kubectl_ok(&["apply", "-f", &file]);
    ready(st, &file, operator);
    file
}

/// The condition `kind` of `object`: `(status, reason, message)`, empty when absent.
pub fn condition(object: &Value, kind: &str) -> (String, String, String) {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .map(|c| {
            let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        })
        .unwrap_or_default()
}

/// Stamp `prod/weu-blue` as the API server has it.
pub fn stamp(st: &Stage) -> Value {
    json_of(
        &st.cp,
        &["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"],
    )
}

/// The notes of the Events with `reason` in namespace `prod`.
pub fn events(st: &Stage, reason: &str) -> Vec<String> {
    let events = json_of(
        &st.cp,
        &[
            "get",
            "events.events.k8s.io",
            "-n",
            "prod",
            "--field-selector",
            &format!("reason={reason}"),
            "-o",
            "json",
        ],
    );
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect()
}
