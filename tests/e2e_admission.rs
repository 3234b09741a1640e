//! Against a real kube-apiserver: the CRDs install, the examples are accepted, printer columns
//! and the status subresource work, transition rules hold, and the API server's verdict on every
//! manifest of the bad-input corpus agrees with the offline admission check `plan` uses.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use support::controlplane::ControlPlane;

/// One control plane for this test binary, with the CRDs installed and namespace `prod`.
fn cluster() -> &'static ControlPlane {
    static CLUSTER: OnceLock<ControlPlane> = OnceLock::new();
    CLUSTER.get_or_init(|| ControlPlane::with_crds(&["prod"]))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn corpus_verdicts_match_the_api_server() {
    let cp = cluster();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut disagreements = Vec::new();
    let mut refused_by_server = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap()
            .to_string();
        let offline_refuses = stamp_operator::api::manifest::parse_manifests(&text).is_err();
        let out = cp.kubectl(&["apply", "--dry-run=server", "-f", path_str(file)]);
        let server_refuses = !out.status.success();
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        let name = file.file_name().unwrap().to_string_lossy();
        if offline_refuses != server_refuses {
            disagreements.push(format!("{name}: offline refuses={offline_refuses}, API server refuses={server_refuses}: {said}"));
            continue;
        }
        if !server_refuses {
            continue; // a refusal only the planner can make; the operator reports it as InvalidSpec
        }
        refused_by_server += 1;
        // Where the refusal is the CRD's own validation, the server must say what we promise.
        if said.contains("is invalid") || said.contains("strict decoding error") {
            let ok = match expect.split_once(": ") {
                Some((path, message))
                    if path.starts_with("spec") || path.starts_with("metadata") =>
                {
                    said.contains(path) && said.contains(message)
                }
                _ => said.contains(&expect),
            };
            if !ok {
                disagreements.push(format!("{name}: API server did not say `{expect}`: {said}"));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(
        refused_by_server >= 25,
        "only {refused_by_server} manifests were refused at admission"
    );
}

#[test]
fn examples_are_accepted_and_printer_columns_show() {
    let cp = cluster();
    for file in [
        "globalplane.yaml",
        "stamp-westeurope.yaml",
        "stamp-northeurope.yaml",
        "privateendpointsets.yaml",
    ] {
        cp.kubectl_ok(&[
            "apply",
            "--dry-run=server",
            "-f",
            path_str(&root().join("deploy/examples").join(file)),
        ]);
    }
    cp.kubectl_ok(&[
        "apply",
        "-f",
        path_str(&root().join("deploy/examples/stamp-westeurope.yaml")),
    ]);
    let table = cp.kubectl_ok(&["get", "stamps", "-n", "prod"]);
    let header = table.lines().next().unwrap();
    for column in [
        "NAME",
        "REGION",
        "ADDRESS SPACE",
        "READY",
        "REASON",
        "FIREWALL IP",
        "AGE",
    ] {
        assert!(header.contains(column), "missing column {column}: {header}");
    }
    assert!(
        table.contains("weu-blue")
            && table.contains("westeurope")
            && table.contains("10.10.0.0/20"),
        "{table}"
    );
    // Short names and the category resolve.
    cp.kubectl_ok(&["get", "st", "-n", "prod"]);
    cp.kubectl_ok(&["get", "missioncritical", "-A"]);
}

#[test]
fn status_is_a_subresource_and_feeds_the_columns() {
    let cp = cluster();
    let stamp = r#"{"apiVersion":"missioncritical.dev/v1alpha1","kind":"Stamp","metadata":{"name":"status-probe","namespace":"prod"},
        "spec":{"globalPlaneRef":{"name":"prod"},"region":"westeurope","addressSpace":"10.40.0.0/20",
        "ingress":{"privateLinkService":{"mode":"Adopt","resourceId":"/subscriptions/6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f/resourceGroups/mc/providers/Microsoft.Network/privateLinkServices/p"}}}}"#;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), stamp).unwrap();
    cp.kubectl_ok(&["apply", "-f", path_str(file.path())]);
    let status = r#"{"status":{"observedGeneration":1,"phase":"Ready","outputs":{"firewallPrivateIp":"10.40.8.132"},
        "conditions":[{"type":"Ready","status":"True","reason":"Converged","message":"all components ready","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "status-probe",
        "-n",
        "prod",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    let row = cp.kubectl_ok(&["get", "stamp", "status-probe", "-n", "prod", "--no-headers"]);
    assert!(
        row.contains("True") && row.contains("Converged") && row.contains("10.40.8.132"),
        "{row}"
    );
    // A status written through the main resource is ignored (status subresource).
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "status-probe",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Hacked"}}"#,
    ]);
    let phase = cp.kubectl_ok(&[
        "get",
        "stamp",
        "status-probe",
        "-n",
        "prod",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    assert_eq!(phase, "Ready");
    // kubectl wait understands the Ready condition.
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Ready",
        "stamp/status-probe",
        "-n",
        "prod",
        "--timeout=10s",
    ]);
}

#[test]
fn region_and_address_space_cannot_change_on_a_live_stamp() {
    let cp = cluster();
    cp.kubectl_ok(&[
        "apply",
        "-f",
        path_str(&root().join("deploy/examples/stamp-northeurope.yaml")),
    ]);
    let out = cp.kubectl(&[
        "patch",
        "stamp",
        "neu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"addressSpace":"10.21.0.0/20"}}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("addressSpace is immutable"));
    let out = cp.kubectl(&[
        "patch",
        "stamp",
        "neu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"region":"westeurope"}}"#,
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("region is immutable"));
    // Traffic shifting is a normal update.
    cp.kubectl_ok(&[
        "patch",
        "stamp",
        "neu-blue",
        "-n",
        "prod",
        "--type=merge",
        "-p",
        r#"{"spec":{"frontDoor":{"weight":10}}}"#,
    ]);
}
