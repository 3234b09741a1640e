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
        .filter(|r| r.method == "PUT" && r.path.to_ascii_lowercase().contains("/azurefirewalls/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_firewall_operation_is_reported_with_azures_code_and_not_rewritten_at_once() {
    let st = stage().await;
    let code = "AzureFirewallPolicyDenied";
    st.emulator.add_fault(
        FaultRule::new(FaultAction::FailOperation { code: code.into() })
            .method("PUT")
            .resource_type("Microsoft.Network/azureFirewalls"),
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
