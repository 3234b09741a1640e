//! The operator end to end: a real kube-apiserver, the ARM emulator with a (sped-up) realistic
//! latency profile, and `stamp-operator run` as a separate process. `kubectl apply` of the
//! examples makes the GlobalPlane, a stamp and its PrivateEndpointSets Ready with truthful
//! status; `kubectl delete` leaves nothing the operator created in Azure.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use stamp_operator::azure::*;
use stamp_operator::emulator::{EmulatorConfig, LatencyProfile, RunningEmulator};
use support::controlplane::ControlPlane;

const SUB: &str = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn client(emulator: &RunningEmulator) -> ArmClient {
    let mut config = ArmConfig::for_endpoint(&emulator.url(), "scope");
    config.min_poll_interval = Duration::from_millis(5);
    ArmClient::new(
        config,
        TokenSource::new(
            CredentialConfig::Static("t".into()).build().unwrap(),
            "scope",
        ),
        ArmMetrics::default(),
    )
    .unwrap()
}

/// PaaS services and AKS's internal load balancer, as they exist before the operator runs.
async fn seed(arm: &ArmClient) -> BTreeSet<String> {
    let mut ids = Vec::new();
    for group in ["rg-prod-weu", "rg-prod-data", "mc-weu-blue"] {
        ids.push((
            format!("/subscriptions/{SUB}/resourceGroups/{group}"),
            "2024-03-01",
            json!({ "location": "westeurope" }),
        ));
    }
    for (group, path) in [
        ("rg-prod-weu", "Microsoft.KeyVault/vaults/kv-prod-weu"),
        (
            "rg-prod-data",
            "Microsoft.ContainerRegistry/registries/acrprod",
        ),
        (
            "rg-prod-data",
            "Microsoft.DocumentDB/databaseAccounts/cosmos-prod",
        ),
        ("rg-prod-weu", "Microsoft.EventHub/namespaces/evh-prod-weu"),
        ("rg-prod-weu", "Microsoft.Storage/storageAccounts/stprodweu"),
    ] {
        ids.push((
            format!("/subscriptions/{SUB}/resourceGroups/{group}/providers/{path}"),
            "2023-01-01",
            json!({ "location": "westeurope", "properties": {} }),
        ));
    }
    let lb = json!({ "location": "westeurope", "properties": { "frontendIPConfigurations": [{ "name": "ingress", "properties": { "privateIPAddress": "10.10.8.196" } }] } });
    ids.push((format!("/subscriptions/{SUB}/resourceGroups/mc-weu-blue/providers/Microsoft.Network/loadBalancers/kubernetes-internal"), "2024-05-01", lb));
    for (id, api, body) in &ids {
        if let PutOutcome::Started(op) = arm.put(id, api, body, None).await.unwrap() {
            arm.wait(&op).await.unwrap();
        }
    }
    ids.into_iter()
        .map(|(id, _, _)| id.to_ascii_lowercase())
        .collect()
}

/// The examples, with PaaS targets moved to a group the operator does not own and only the
/// objects of the West Europe stamp.
fn manifests(dir: &Path) -> PathBuf {
    let mut docs = Vec::new();
    for file in [
        "globalplane.yaml",
        "stamp-westeurope.yaml",
        "privateendpointsets.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("deploy/examples").join(file))
            .unwrap()
            .replace(
                "rg-prod-global/providers/Microsoft.ContainerRegistry",
                "rg-prod-data/providers/Microsoft.ContainerRegistry",
            )
            .replace(
                "rg-prod-global/providers/Microsoft.DocumentDB",
                "rg-prod-data/providers/Microsoft.DocumentDB",
            );
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            if value["metadata"]["name"].as_str() != Some("neu-blue-paas") {
                docs.push(serde_yaml::to_string(&value).unwrap());
            }
        }
    }
    let path = dir.join("objects.yaml");
    std::fs::write(&path, docs.join("---\n")).unwrap();
    path
}

/// A control plane with the CRDs and namespace `prod`, and an emulator with Azure's latencies
/// sped up 500x (the firewall takes ~0.7 s, Front Door origins ~0.24 s), seeded.
async fn stage() -> (ControlPlane, RunningEmulator, ArmClient, BTreeSet<String>) {
    let cp = ControlPlane::with_crds(&["prod"]);
    let emulator = RunningEmulator::start(EmulatorConfig {
        latency: LatencyProfile::realistic(0.002),
        ..Default::default()
    })
    .await
    .unwrap();
    let arm = client(&emulator);
    let seeded = seed(&arm).await;
    (cp, emulator, arm, seeded)
}

fn json_of(cp: &ControlPlane, args: &[&str]) -> Value {
    serde_json::from_str(&cp.kubectl_ok(args)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_become_ready_and_deletion_leaves_nothing_behind() {
    let (cp, emulator, arm, seeded) = stage().await;

    let work = tempfile::tempdir().unwrap();
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let _operator = start_operator(&cp, &emulator, work.path(), &metrics_addr);
    let objects = manifests(work.path());
    cp.kubectl_ok(&["apply", "-f", objects.to_str().unwrap()]);
    let waited = cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "globalplane/prod",
        "-n",
        "prod",
        "stamp/weu-blue",
        "privateendpointset/weu-blue-paas",
        "privateendpointset/ops-weu-build",
        "--timeout=180s",
    ]);
    if !waited.status.success() {
        let status = cp.kubectl(&["get", "gp,st,pes", "-A", "-o", "yaml"]);
        panic!(
            "not Ready: {}\n{}\noperator log:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            String::from_utf8_lossy(&status.stdout),
            std::fs::read_to_string(work.path().join("operator.log")).unwrap_or_default()
        );
    }

    // Ready stays Ready: give the operator a few more reconciles (PrivateEndpointSet updates
    // trigger the stamp) before reading the status.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Truthful status.
    let stamp = json_of(
        &cp,
        &["get", "stamp", "weu-blue", "-n", "prod", "-o", "json"],
    );
    let status = &stamp["status"];
    assert_eq!(
        status["phase"],
        "Ready",
        "{status:#}\noperator log:\n{}",
        std::fs::read_to_string(work.path().join("operator.log")).unwrap_or_default()
    );
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
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str())
        .collect();
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
        assert!(types.contains(&t), "condition {t} is not True: {status}");
    }
    let table = cp.kubectl_ok(&["get", "stamps", "-n", "prod"]);
    assert!(
        table.contains("weu-blue") && table.contains("True") && table.contains("10.10.8.132"),
        "{table}"
    );
    let set = json_of(
        &cp,
        &["get", "pes", "weu-blue-paas", "-n", "prod", "-o", "json"],
    );
    assert_eq!(set["status"]["endpointsReady"], "5/5");
    assert!(set["status"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["privateIp"].as_str().unwrap().starts_with("10.10.8.")));
    assert_eq!(
        set["metadata"]["ownerReferences"][0]["name"], "weu-blue",
        "the set is owned by its stamp"
    );
    let global = json_of(&cp, &["get", "gp", "prod", "-o", "json"]);
    assert!(global["status"]["frontDoorHostName"]
        .as_str()
        .unwrap()
        .ends_with(".azurefd.net"));
    let mut global = global;
    for _ in 0..50 {
        if global["status"]["stampCount"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        global = json_of(&cp, &["get", "gp", "prod", "-o", "json"]);
    }
    assert_eq!(
        global["status"]["stampCount"], 1,
        "the GlobalPlane lists the stamp's origin: {}",
        global["status"]
    );

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
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    // Drift: a rule deleted behind the operator's back is put back, and an Event says so.
    let nsg = emulator
        .inventory()
        .into_iter()
        .find(|id| id.ends_with("-app") && id.contains("/networkSecurityGroups/nsg-weu-blue"))
        .unwrap();
    assert!(emulator.mutate(&nsg, |body| body["properties"]["securityRules"] = json!([])));
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
        let live = arm.get(&nsg, "2024-05-01").await.unwrap().unwrap();
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

    // Delete everything; Azure must hold only what existed before.
    cp.kubectl_ok(&[
        "delete",
        "-f",
        objects.to_str().unwrap(),
        "--wait=true",
        "--timeout=180s",
    ]);
    let left: Vec<String> = emulator
        .inventory()
        .into_iter()
        .filter(|id| !seeded.contains(&id.to_ascii_lowercase()))
        .collect();
    assert!(
        left.is_empty(),
        "leaked: {left:#?}\noperator log:\n{}",
        std::fs::read_to_string(work.path().join("operator.log")).unwrap_or_default()
    );
}

/// Starts `stamp-operator run` against `cp` and `emulator`, logging into `dir`.
fn start_operator(
    cp: &ControlPlane,
    emulator: &RunningEmulator,
    dir: &Path,
    metrics_addr: &str,
) -> Operator {
    let log = std::fs::File::create(dir.join("operator.log")).unwrap();
    Operator(
        Command::new(env!("CARGO_BIN_EXE_stamp-operator"))
            .args([
                "run",
                "--arm-endpoint",
                &emulator.url(),
                "--credential",
                "static",
                "--token",
                "test",
            ])
            .args([
                "--poll-seconds",
                "1",
                "--inline-wait-seconds",
                "2",
                "--min-poll-seconds",
                "0.05",
                "--resync-seconds",
                "30",
                "--drain-seconds",
                "1",
                "--metrics-addr",
                metrics_addr,
            ])
            .env("KUBECONFIG", cp.kubeconfig())
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn puts_under(emulator: &RunningEmulator, fragment: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.to_ascii_lowercase().contains(fragment))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_only_changes_and_orphan_are_honoured() {
    let (cp, emulator, arm, seeded) = stage().await;
    let work = tempfile::tempdir().unwrap();
    let _operator = start_operator(&cp, &emulator, work.path(), "127.0.0.1:0");
    let dump = || std::fs::read_to_string(work.path().join("operator.log")).unwrap_or_default();

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
        puts_under(&emulator, "/resourcegroups/rg-weu-blue-"),
        0,
        "ObserveOnly wrote to Azure"
    );

    // Manage: it converges; a weight change reaches the Front Door origin.
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"managementPolicy":"Manage"}}"#,
    ]);
    let ready = cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "stamp/weu-blue",
        "-n",
        "prod",
        "--timeout=120s",
    ]);
    assert!(ready.status.success(), "{}", dump());
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"frontDoor":{"weight":10}}}"#,
    ]);
    let origin = emulator
        .inventory()
        .into_iter()
        .find(|id| id.contains("/originGroups/stamps/origins/"))
        .unwrap();
    let mut weight = Value::Null;
    for _ in 0..100 {
        weight = arm.get(&origin, "2024-09-01").await.unwrap().unwrap().body["properties"]
            ["weight"]
            .clone();
        if weight == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(weight, 10, "the weight change did not reach Front Door");

    // Orphan: deleting the stamp leaves its Azure resources in place.
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
    ]);
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
