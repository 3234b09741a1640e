//! The operator end to end: a real kube-apiserver, the ARM emulator with a (sped-up) realistic
//! latency profile, and `stamp-operator run` as a separate process. `kubectl apply` of the
//! examples makes the GlobalPlane, a stamp and its PrivateEndpointSets Ready with truthful
//! status; `kubectl delete` leaves nothing the operator created in Azure.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::operator::free_addr;
use support::stage::{json_of, read_status, stage};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_become_ready_and_deletion_leaves_nothing_behind() {
    let st = stage().await;
    let cp = &st.cp;
    let metrics_addr = free_addr();
    let operator = st.operator("replica-a", &metrics_addr);
    let examples = root().join("deploy/examples").display().to_string();
    cp.kubectl_ok(&["apply", "-f", &examples]);
    let waited = cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "globalplanes,stamps,privateendpointsets",
        "--all",
        "-A",
        "--timeout=240s",
    ]);
    if !waited.status.success() {
        let status = cp.kubectl(&["get", "gp,st,pes", "-A", "-o", "yaml"]);
        panic!(
            "not Ready: {}\n{}\noperator log:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            String::from_utf8_lossy(&status.stdout),
            operator.log()
        );
    }

    // Ready stays Ready: give the operator a few more reconciles (PrivateEndpointSet updates
    // trigger the stamp) before reading the status.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stamp = json_of(
        cp,
        &["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"],
    );
    let status = &stamp["status"];
    assert_eq!(status["phase"], "Ready", "{status:#}\n{}", operator.log());
    assert_eq!(
        status["observedGeneration"],
        stamp["metadata"]["generation"]
    );
    assert_eq!(status["outputs"]["firewallPrivateIp"], "10.10.8.132");
    assert_eq!(status["privateLinkConnection"]["state"], "Approved");
    assert!(status["outputs"]["privateLinkServiceAlias"]
        .as_str()
        .unwrap()
        .ends_with(".azure.privatelinkservice"));
    assert!(
        status["verified"]["fingerprint"].is_string(),
        "a converged stamp records its full check: {status:#}"
    );
    let condition = |status: &Value, t: &str| -> String {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    for t in [
        "Ready",
        "AddressPlan",
        "Network",
        "Egress",
        "Ingress",
        "PrivateLink",
        "FrontDoorOrigin",
        "PrivateLinkApproved",
        "NetworkIsolated",
    ] {
        assert_eq!(condition(status, t), "True", "condition {t}: {status:#}");
    }
    assert_eq!(condition(status, "Reconciling"), "False");
    assert_eq!(condition(status, "Stalled"), "False");
    // The adopted Private Link Service of North Europe is approved too.
    let neu = json_of(
        cp,
        &["get", "stamp", "neu-blue", "-n", "prod", "-o", "json"],
    );
    assert_eq!(neu["status"]["privateLinkConnection"]["state"], "Approved");
    assert!(neu["status"]["outputs"]["privateLinkServiceId"]
        .as_str()
        .unwrap()
        .ends_with("/mc-neu-blue/providers/Microsoft.Network/privateLinkServices/pls-ingress"));

    let table = cp.kubectl_ok(&["get", "stamps", "-n", "prod"]);
    assert!(
        table.contains("weu-blue") && table.contains("neu-blue") && table.contains("10.10.8.132"),
        "{table}"
    );
    for (set, ready) in [("weu-blue-paas", "5/5"), ("neu-blue-paas", "5/5")] {
        let set = json_of(cp, &["get", "pes", set, "-n", "prod", "-o", "json"]);
        assert_eq!(set["status"]["endpointsReady"], ready, "{set:#}");
        assert!(set["status"]["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["privateIp"].as_str().unwrap().starts_with("10.")));
    }
    let set = json_of(
        cp,
        &["get", "pes", "weu-blue-paas", "-n", "prod", "-o", "json"],
    );
    assert_eq!(
        set["metadata"]["ownerReferences"][0]["name"], "weu-blue",
        "the set is owned by its stamp"
    );
    let mut global = json_of(cp, &["get", "gp", "prod", "-o", "json"]);
    assert!(global["status"]["frontDoorHostName"]
        .as_str()
        .unwrap()
        .ends_with(".azurefd.net"));
    for _ in 0..50 {
        if global["status"]["stampCount"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        global = json_of(cp, &["get", "gp", "prod", "-o", "json"]);
    }
    assert_eq!(
        global["status"]["stampCount"], 2,
        "the GlobalPlane lists both stamps' origins: {}",
        global["status"]
    );

    // What Flux (kstatus) and Argo CD (the Lua health check) conclude from the real status.
    let object = cp.kubectl_ok(&["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"]);
    let kstatus = read_status(cp, "kstatus-check", &[], &object);
    assert!(kstatus.contains("\tCurrent\t"), "kstatus: {kstatus}");
    let lua = root().join("deploy/gitops/argocd/health.lua");
    let argo = read_status(cp, "lua-health", &[lua.to_str().unwrap()], &object);
    assert!(argo.contains("\tHealthy\t"), "Argo CD: {argo}");

    // Probes and metrics, under controller-runtime's and the ARM engine's names.
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("http://{metrics_addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "controller_runtime_reconcile_total{controller=\"stamp\",result=\"success\"}",
        "controller_runtime_reconcile_time_seconds",
        "arm_requests_total",
        "arm_budget_tokens",
        "stamp_operator_time_to_ready_seconds_count{controller=\"stamp\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    // Drift: a rule deleted behind the operator's back is put back, and an Event says so.
    let nsg = st.empty_app_nsg();
    cp.kubectl_ok(&[
        "annotate",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "example.com/poke=1",
    ]);
    let mut repaired = false;
    for _ in 0..100 {
        let live = st.arm.get(&nsg, "2024-05-01").await.unwrap().unwrap();
        if live.body["properties"]["securityRules"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(repaired, "the deleted rules were not restored");
    let mut events = String::new();
    for _ in 0..50 {
        events = cp.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "prod",
            "--field-selector",
            "involvedObject.name=weu-blue",
            "-o",
            "custom-columns=REASON:.reason,NOTE:.message",
        ]);
        if events.contains("DriftRepaired") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        events.contains("DriftRepaired") && events.contains("Ready"),
        "{events}"
    );

    // Delete everything; Azure must hold only what existed before. Each stamp's origin is
    // disabled (drained) before it is deleted.
    cp.kubectl_ok(&["delete", "-f", &examples, "--wait=true", "--timeout=240s"]);
    let left = st.created();
    assert!(
        left.is_empty(),
        "leaked: {left:#?}\noperator log:\n{}",
        operator.log()
    );
    let log = st.emulator.requests();
    for stamp in ["weu-blue", "neu-blue"] {
        let origin = |r: &&stamp_operator::emulator::RequestRecord| {
            r.path.contains("/origins/") && r.path.contains(stamp)
        };
        let calls: Vec<_> = log.iter().filter(origin).collect();
        let last_put = calls.iter().rposition(|r| r.method == "PUT");
        let delete = calls.iter().position(|r| r.method == "DELETE");
        assert!(
            matches!((last_put, delete), (Some(p), Some(d)) if p < d),
            "{stamp}: the origin was not disabled before it was deleted"
        );
    }
    let events = cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "prod",
        "-o",
        "custom-columns=R:.reason",
    ]);
    assert!(events.contains("Draining"), "no Draining event: {events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_changes_and_orphan_are_honoured() {
    let st = stage().await;
    let (cp, emulator, seeded, work) = (&st.cp, &st.emulator, &st.seeded, &st.work);
    let operator = st.operator("replica-a", "127.0.0.1:0");
    let dump = || operator.log();

    // ObserveOnly: the stamp is read and reported, never written.
    cp.kubectl_ok(&[
        "apply",
        "-f",
        root()
            .join("deploy/examples/globalplane.yaml")
            .to_str()
            .unwrap(),
    ]);
    let stamp_file = work.path().join("stamp.yaml");
    let stamp =
        std::fs::read_to_string(root().join("deploy/examples/stamp-westeurope.yaml")).unwrap();
    std::fs::write(
        &stamp_file,
        stamp.replace(
            "  frontDoor:\n    enabled: true",
            "  managementPolicy: ObserveOnly\n  frontDoor:\n    enabled: true",
        ),
    )
    .unwrap();
    cp.kubectl_ok(&["apply", "-f", stamp_file.to_str().unwrap()]);
    let mut phase = String::new();
    for _ in 0..100 {
        phase = cp.kubectl_ok(&[
            "get",
            "stamp",
            "weu-blue",
            "-n",
            "prod",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        if phase == "Observing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(phase, "Observing", "{}", dump());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        st.writes_under("/resourcegroups/rg-weu-blue-"),
        0,
        "ObserveOnly wrote to Azure"
    );

    // Manage: it converges; a weight change reaches the Front Door origin.
    st.patch_stamp(r#"{"managementPolicy":"Manage"}"#);
    let ready = cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "stamp/weu-blue",
        "-n",
        "prod",
        "--timeout=120s",
    ]);
    assert!(ready.status.success(), "{}", dump());
    assert_eq!(
        st.shift_weight(10).await,
        10,
        "the weight change did not reach Front Door"
    );
    let origin = emulator
        .inventory()
        .into_iter()
        .find(|id| id.contains("/originGroups/stamps/origins/"))
        .unwrap();

    // Orphan: deleting the stamp leaves its Azure resources in place.
    st.patch_stamp(r#"{"deletionPolicy":"Orphan"}"#);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: BTreeSet<String> = emulator
        .inventory()
        .into_iter()
        .filter(|id| !seeded.contains(&id.to_ascii_lowercase()))
        .collect();
    cp.kubectl_ok(&[
        "delete",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--wait=true",
        "--timeout=60s",
    ]);
    let after: BTreeSet<String> = emulator.inventory().into_iter().collect();
    let vnet = before
        .iter()
        .find(|id| id.contains("/virtualNetworks/vnet-weu-blue"))
        .unwrap();
    assert!(after.contains(vnet), "an orphaned stamp's VNet was deleted");
    assert!(
        after.contains(&origin),
        "an orphaned stamp's origin was deleted"
    );
}
