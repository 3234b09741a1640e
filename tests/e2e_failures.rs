//! Failures told, not swallowed, end to end (real API server, the chart's RBAC, the emulator).

mod support;

use std::time::Duration;

use stamp_operator::emulator::{FaultAction, FaultRule};
use support::expect::{condition, events, eventually, stamp};
use support::stage::{stage, Stage};

fn firewall_puts(st: &Stage) -> usize {
    st.emulator
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PUT"
                && r.path
                    .to_ascii_lowercase()
                    .contains("/azurefirewalls/afw-weu-blue")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_firewall_operation_is_reported_with_azures_code_and_not_rewritten_at_once() {
    let st = stage().await;
    let code = "AzureFirewallPolicyDenied";
    st.emulator.add_fault(
        // The stamp's firewall, not the operations networks'.
        FaultRule::new(FaultAction::FailOperation { code: code.into() })
            .method("PUT")
            .resource_type("Microsoft.Network/azureFirewalls")
            .path_contains("/azureFirewalls/afw-weu-blue"),
    );
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    eventually(
        "the failure in the Egress condition",
        &operator,
        async || {
            let (status, reason, message) = condition(&stamp(&st), "Egress");
            status == "False" && reason == "AzureError" && message.contains(code)
        },
    )
    .await;
    let notes = events(&st, "OperationFailed");
    assert!(
        notes.iter().any(|n| n.contains(code)),
        "no OperationFailed event with the code: {notes:?}"
    );
    // The operator looks again every second (--poll-seconds 1); within the backoff it must not
    // write the same firewall again.
    let before = firewall_puts(&st);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = firewall_puts(&st);
    assert!(
        after - before <= 1,
        "{} firewall PUTs in 10 s after a failure\n{}",
        after - before,
        operator.log()
    );
    assert_eq!(condition(&stamp(&st), "Ready").0, "False");
}

fn nsg_requests(st: &Stage, method: &str) -> usize {
    st.emulator
        .requests()
        .iter()
        .filter(|r| {
            r.method == method
                && r.path
                    .to_ascii_lowercase()
                    .contains("/networksecuritygroups/nsg-weu-blue")
        })
        .count()
}

/// A policy that refuses every NSG write (403 `RequestDisallowedByPolicy`) is told — in the
/// Network condition and an Event, with Azure's code — and the refused writes are not sent again
/// at every look (the operator looks every second here): each NSG is written again only after a
/// backoff, and read no more often than that either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refusing_writes_is_told_and_the_writes_back_off() {
    let st = stage().await;
    let code = "RequestDisallowedByPolicy";
    st.emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 403,
            code: code.into(),
            retry_after_seconds: None,
        })
        .method("PUT")
        .resource_type("Microsoft.Network/networkSecurityGroups"),
    );
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    eventually(
        "the refusal in the Network condition",
        &operator,
        async || {
            let (status, reason, message) = condition(&stamp(&st), "Network");
            status == "False" && reason == "AzureError" && message.contains(code)
        },
    )
    .await;
    assert!(
        events(&st, "OperationFailed")
            .iter()
            .any(|n| n.contains(code)),
        "no Event with Azure's code"
    );
    let (puts, gets) = (nsg_requests(&st, "PUT"), nsg_requests(&st, "GET"));
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (more_puts, more_gets) = (
        nsg_requests(&st, "PUT") - puts,
        nsg_requests(&st, "GET") - gets,
    );
    // Three NSGs, each held for 30 s after its refusal: at most one more write of each.
    assert!(
        more_puts <= 3,
        "{more_puts} NSG PUTs in 20 s after the refusal\n{}",
        operator.log()
    );
    assert!(
        more_gets <= 3,
        "{more_gets} NSG GETs in 20 s after the refusal\n{}",
        operator.log()
    );
    assert_eq!(condition(&stamp(&st), "Ready").0, "False");
}
