//! Packaging: the Helm chart (lint, render, values schema, hardening, least-privilege RBAC), the
//! kustomize base (one source with the chart, accepted by `kubectl apply -k`), and the status
//! readers GitOps tools use — kstatus (Flux) and Argo CD's Lua health checks — on the operator's
//! conditions. Helm, kstatus and gopher-lua are the pinned builds from `make controlplane`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::controlplane::ControlPlane;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let path = root().join("target/controlplane/bin").join(name);
    assert!(
        path.exists(),
        "{name} is not built: run `make controlplane` (tests/controlplane/build.sh)"
    );
    path
}

fn run(name: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(tool(name))
        .args(args)
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chart() -> String {
    root().join("charts/stamp-operator").display().to_string()
}

fn render(extra: &[&str]) -> Vec<serde_yaml::Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "stamp-operator",
        &chart[..],
        "-n",
        "stamp-system",
    ];
    args.extend_from_slice(extra);
    let text = ok(run("helm", &args, None), "helm template");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml::Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("the chart renders no {kind}"))
}

#[test]
fn the_chart_lints_and_renders_a_hardened_least_privilege_operator() {
    ok(
        run("helm", &["lint", "--strict", &chart()], None),
        "helm lint",
    );
    let docs = render(&[
        "--set",
        "azure.clientId=11111111-2222-3333-4444-555555555555",
    ]);

    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["azure.workload.identity/use"], "true",
        "workload identity needs the pod label"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &spec["containers"][0];
    let hardening = &container["securityContext"];
    assert_eq!(hardening["readOnlyRootFilesystem"], true);
    assert_eq!(hardening["allowPrivilegeEscalation"], false);
    assert_eq!(hardening["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--leader-election-lease=stamp-system/stamp-operator"),
        "{args:?}"
    );
    assert!(args.contains(&"--credential=workload-identity"));

    let account = find(&docs, "ServiceAccount");
    assert_eq!(
        account["metadata"]["annotations"]["azure.workload.identity/client-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(
        find(&docs, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
    let policy = find(&docs, "NetworkPolicy");
    let egress_ports: Vec<i64> = policy["spec"]["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["ports"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|p| p["port"].as_i64())
        .collect();
    assert_eq!(
        egress_ports,
        vec![53, 53, 443, 6443, 443],
        "egress: DNS, API server, ARM"
    );

    // No wildcard anywhere, and nothing beyond what the operator uses.
    for kind in ["ClusterRole", "Role"] {
        for rule in find(&docs, kind)["rules"].as_sequence().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                for item in rule[field].as_sequence().unwrap() {
                    assert_ne!(item.as_str(), Some("*"), "{kind} has a wildcard {field}");
                }
            }
            for verb in rule["verbs"].as_sequence().unwrap() {
                assert!(
                    ["get", "list", "watch", "patch", "create", "update"]
                        .contains(&verb.as_str().unwrap()),
                    "{kind} grants {verb:?}"
                );
            }
        }
    }
    assert!(
        !serde_yaml::to_string(find(&docs, "ClusterRole"))
            .unwrap()
            .contains("secrets"),
        "the operator never reads Secrets"
    );
    assert!(
        render(&[
            "--set",
            "serviceMonitor.enabled=true",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor"
        ])
        .iter()
        .any(|d| d["kind"] == "ServiceMonitor"),
        "the ServiceMonitor renders where its CRD exists"
    );
}

#[test]
fn bad_values_fail_at_install_with_a_clear_message() {
    for (set, says) in [
        ("replicaCount=two", "replicaCount"),
        ("azure.credential=password", "credential"),
        ("azure.clientId=not-a-guid", "clientId"),
        ("image.digest=latest", "digest"),
        (
            "networkPolicy.azureCIDRs={management.azure.com}",
            "azureCIDRs",
        ),
        ("leaderElection.leaseSeconds=1", "leaseSeconds"),
        ("unknownKey=1", "unknownKey"),
        ("azure.credential=client-secret", "clientSecretName"),
    ] {
        let out = run("helm", &["template", "t", &chart(), "--set", set], None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(
            stderr.contains(says),
            "{set}: the error does not name {says}: {stderr}"
        );
    }
    let out = run(
        "helm",
        &[
            "template",
            "t",
            &chart(),
            "--set",
            "serviceMonitor.enabled=true",
        ],
        None,
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("ServiceMonitor CRD"),
        "a ServiceMonitor without its CRD must be refused"
    );
}

#[test]
fn chart_crds_and_the_kustomize_base_are_one_source() {
    let mut crds: Vec<PathBuf> = std::fs::read_dir(root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crds.sort();
    let mut concatenated = String::new();
    for path in &crds {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        concatenated.push_str(&format!("---\n{text}"));
        let copy = root().join("charts/stamp-operator/crds").join(&name);
        assert_eq!(
            text,
            std::fs::read_to_string(&copy).unwrap_or_default(),
            "charts/stamp-operator/crds/{name} differs from crds/: run `make crds`"
        );
    }
    let base_crds =
        std::fs::read_to_string(root().join("deploy/kustomize/base/crds.yaml")).unwrap();
    assert!(
        base_crds.ends_with(&concatenated),
        "deploy/kustomize/base/crds.yaml is not crds/: run `make kustomize-base`"
    );
    let rendered = ok(
        run(
            "helm",
            &[
                "template",
                "stamp-operator",
                &chart(),
                "--namespace",
                "stamp-system",
                "--skip-crds",
            ],
            None,
        ),
        "helm template",
    );
    let base =
        std::fs::read_to_string(root().join("deploy/kustomize/base/stamp-operator.yaml")).unwrap();
    assert!(
        base.ends_with(&rendered),
        "deploy/kustomize/base/stamp-operator.yaml is not the rendered chart: run `make kustomize-base`"
    );
}

#[test]
fn kstatus_and_argo_cd_read_the_operator_s_status() {
    let samples = std::fs::read_to_string(root().join("tests/status-samples.yaml")).unwrap();
    let expected: Vec<(String, String, String)> = serde_yaml::Deserializer::from_str(&samples)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            let a = &v["metadata"]["annotations"];
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                a["expect-kstatus"].as_str().unwrap().to_string(),
                a["expect-argocd"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let kstatus = ok(run("kstatus-check", &[], Some(&samples)), "kstatus-check");
    let script = root().join("deploy/gitops/argocd/health.lua");
    let argo = ok(
        run("lua-health", &[script.to_str().unwrap()], Some(&samples)),
        "lua-health",
    );
    let kstatus: Vec<&str> = kstatus.lines().collect();
    let argo: Vec<&str> = argo.lines().collect();
    assert_eq!(kstatus.len(), expected.len());
    assert_eq!(argo.len(), expected.len());
    for ((name, want_k, want_a), (k, a)) in expected.iter().zip(kstatus.iter().zip(&argo)) {
        let k: Vec<&str> = k.split('\t').collect();
        let a: Vec<&str> = a.split('\t').collect();
        assert!(k[0].ends_with(&format!("/{name}")), "{k:?}");
        assert_eq!(k[1], want_k, "kstatus on {name}: {k:?}");
        assert_eq!(a[0], name);
        assert_eq!(a[1], want_a, "Argo CD health of {name}: {a:?}");
        assert!(!a[2].is_empty(), "Argo CD health of {name} has no message");
    }

    // argocd-cm carries health.lua verbatim for each kind.
    let cm: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("deploy/gitops/argocd/argocd-cm.yaml")).unwrap(),
    )
    .unwrap();
    let lua = std::fs::read_to_string(&script).unwrap();
    for kind in ["GlobalPlane", "Stamp", "PrivateEndpointSet"] {
        let key = format!("resource.customizations.health.missioncritical.dev_{kind}");
        assert_eq!(cm["data"][&key].as_str(), Some(lua.as_str()), "{key}");
    }
}

#[test]
fn gitops_examples_point_at_what_exists() {
    for file in [
        "deploy/gitops/flux/operator-helmrelease.yaml",
        "deploy/gitops/flux/stamps-kustomization.yaml",
        "deploy/gitops/argocd/applications.yaml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
            assert!(
                v["apiVersion"].is_string() && v["kind"].is_string(),
                "{file}"
            );
            let path = v["spec"]["path"]
                .as_str()
                .or(v["spec"]["source"]["path"].as_str())
                .or(v["spec"]["chart"]["spec"]["chart"].as_str());
            if let Some(path) = path {
                assert!(
                    root().join(path.trim_start_matches("./")).is_dir(),
                    "{file} points at {path}, which does not exist"
                );
            }
            if v["kind"] == "Kustomization" && v["spec"]["healthChecks"].is_sequence() {
                let kinds: Vec<&str> = v["spec"]["healthChecks"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(|h| h["kind"].as_str())
                    .collect();
                for kind in ["GlobalPlane", "Stamp", "PrivateEndpointSet"] {
                    assert!(kinds.contains(&kind), "{file}: no health check on {kind}");
                }
            }
        }
    }
}

/// The chart installs into a real API server; `kubectl apply -k` accepts the kustomize base;
/// the chart's ServiceAccount may do exactly what the operator needs and no more.
#[test]
fn chart_and_kustomize_install_into_the_api_server_with_least_privilege() {
    let cp = ControlPlane::with_crds(&["prod"]);
    let sa_kubeconfig = cp.install_chart();
    assert!(cp
        .helm_ok(&["status", "stamp-operator", "-n", "stamp-system"])
        .contains("STATUS: deployed"));
    let applied = cp.kubectl_ok(&[
        "apply",
        "-k",
        root().join("deploy/kustomize/base").to_str().unwrap(),
    ]);
    assert!(
        applied.contains("deployment.apps/stamp-operator"),
        "{applied}"
    );
    let can = |verb: &str, resource: &str, ns: &str| -> bool {
        let out = Command::new(cp.tool("kubectl"))
            .arg("--kubeconfig")
            .arg(&sa_kubeconfig)
            .args(["auth", "can-i", verb, resource, "-n", ns])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for (verb, resource, ns) in [
        ("watch", "stamps.missioncritical.dev", "prod"),
        ("patch", "stamps.missioncritical.dev", "prod"),
        ("patch", "stamps.missioncritical.dev/status", "prod"),
        ("list", "privateendpointsets.missioncritical.dev", "prod"),
        (
            "patch",
            "privateendpointsets.missioncritical.dev/status",
            "prod",
        ),
        ("get", "globalplanes.missioncritical.dev", ""),
        ("patch", "globalplanes.missioncritical.dev/status", ""),
        ("create", "events.events.k8s.io", "prod"),
        ("create", "leases.coordination.k8s.io", "stamp-system"),
        (
            "update",
            "leases.coordination.k8s.io/stamp-operator",
            "stamp-system",
        ),
    ] {
        assert!(
            can(verb, resource, ns),
            "the chart's RBAC does not allow {verb} {resource}"
        );
    }
    for (verb, resource, ns) in [
        ("delete", "stamps.missioncritical.dev", "prod"),
        ("create", "stamps.missioncritical.dev", "prod"),
        ("get", "secrets", "prod"),
        ("get", "secrets", "stamp-system"),
        ("update", "leases.coordination.k8s.io/other", "stamp-system"),
        ("create", "leases.coordination.k8s.io", "prod"),
        ("list", "pods", "prod"),
    ] {
        assert!(
            !can(verb, resource, ns),
            "the chart's RBAC allows {verb} {resource} in {ns}"
        );
    }
}
