//! The stage of the operator's end-to-end tests: a real control plane with the chart installed,
//! and a seeded ARM emulator.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stamp_operator::azure::ArmClient;
use stamp_operator::emulator::{EmulatorConfig, LatencyProfile, RunningEmulator};

use super::controlplane::ControlPlane;
use super::operator::{arm_client, Operator};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A control plane with the CRDs, namespace `prod` and the Helm chart installed (the operator
/// runs under its ServiceAccount), and an emulator with Azure's latencies sped up 500x (the
/// firewall takes ~0.7 s, Front Door origins ~0.24 s), seeded with what the examples expect.
pub struct Stage {
    pub cp: ControlPlane,
    pub operator_kubeconfig: PathBuf,
    pub emulator: RunningEmulator,
    pub arm: ArmClient,
    pub seeded: BTreeSet<String>,
    pub work: tempfile::TempDir,
}

pub async fn stage() -> Stage {
    let cp = ControlPlane::with_crds(&["prod"]);
    let operator_kubeconfig = cp.install_chart();
    let emulator = RunningEmulator::start(EmulatorConfig {
        latency: LatencyProfile::realistic(0.002),
        ..Default::default()
    })
    .await
    .unwrap();
    let arm = arm_client(&emulator.url());
    let seeded = emulator.seed_examples().await.unwrap();
    Stage {
        cp,
        operator_kubeconfig,
        emulator,
        arm,
        seeded,
        work: tempfile::tempdir().unwrap(),
    }
}

impl Stage {
    /// Starts an operator replica named `name` holding the chart's Lease.
    pub fn operator(&self, name: &str, metrics_addr: &str) -> Operator {
        Operator::start(
            &self.operator_kubeconfig,
            &self.emulator.url(),
            self.work.path(),
            name,
            metrics_addr,
            &["--leader-election-lease", "stamp-system/stamp-operator"],
        )
    }

    /// Starts a single replica without leader election (a killed one is replaced at once instead
    /// of after its Lease expires), with `extra` flags.
    pub fn solo_operator(&self, name: &str, extra: &[&str]) -> Operator {
        Operator::start(
            &self.operator_kubeconfig,
            &self.emulator.url(),
            self.work.path(),
            name,
            "127.0.0.1:0",
            extra,
        )
    }

    /// The id of stamp `weu-blue`'s app subnet NSG, and empties its rules behind the
    /// operator's back (drift).
    pub fn empty_app_nsg(&self) -> String {
        let nsg = self
            .emulator
            .inventory()
            .into_iter()
            .find(|id| id.ends_with("-app") && id.contains("/networkSecurityGroups/nsg-weu-blue"))
            .expect("the app NSG of weu-blue");
        assert!(self
            .emulator
            .mutate(&nsg, |body| body["properties"]["securityRules"] =
                serde_json::json!([])));
        nsg
    }

    /// Writes (anything but GET) the emulator answered for paths containing `fragment`.
    pub fn writes_under(&self, fragment: &str) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path.to_ascii_lowercase().contains(fragment))
            .count()
    }

    /// The example objects named `names` (from every file of deploy/examples), in one file.
    pub fn examples_named(&self, names: &[&str]) -> PathBuf {
        let mut docs = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
                if names.contains(&value["metadata"]["name"].as_str().unwrap_or_default()) {
                    docs.push(serde_yaml::to_string(&value).unwrap());
                }
            }
        }
        assert_eq!(
            docs.len(),
            names.len(),
            "not every example of {names:?} exists"
        );
        let path = self.work.path().join(format!("{}.yaml", names.join("+")));
        std::fs::write(&path, docs.join("---\n")).unwrap();
        path
    }

    /// Every Azure id the planner wants for the objects in `file`, lower case.
    pub fn planned_ids(file: &Path) -> BTreeSet<String> {
        let bundle = stamp_operator::cli::load_manifests(&[file.to_path_buf()]).unwrap();
        stamp_operator::plan::plan_bundle(&bundle)
            .graphs()
            .iter()
            .flat_map(|g| g.resources.iter())
            .filter(|r| r.ownership == stamp_operator::plan::Ownership::Managed)
            .map(|r| r.id.as_str().to_ascii_lowercase())
            .collect()
    }

    /// Merges `spec` (JSON) into stamp `prod/weu-blue`'s spec.
    pub fn patch_stamp(&self, spec: &str) {
        let patch = format!(r#"{{"spec":{spec}}}"#);
        self.cp.kubectl_ok(&[
            "patch",
            "stamp",
            "weu-blue",
            "-n",
            "prod",
            "--type=merge",
            "-p",
            &patch,
        ]);
    }

    /// Sets stamp `prod/weu-blue`'s Front Door weight and returns the weight its origin in Azure
    /// shows once it matches (or the last one seen after 30 s).
    pub async fn shift_weight(&self, weight: u32) -> Value {
        let patch = format!(r#"{{"spec":{{"frontDoor":{{"weight":{weight}}}}}}}"#);
        self.cp.kubectl_ok(&[
            "patch",
            "stamp",
            "weu-blue",
            "-n",
            "prod",
            "--type=merge",
            "-p",
            &patch,
        ]);
        let origin = self
            .created()
            .into_iter()
            .find(|id| id.contains("/origins/"))
            .expect("the stamp has a Front Door origin");
        let mut seen = Value::Null;
        for _ in 0..150 {
            seen = self
                .arm
                .get(&origin, "2024-09-01")
                .await
                .unwrap()
                .unwrap()
                .body["properties"]["weight"]
                .clone();
            if seen == weight {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        seen
    }

    /// What the operator created that is still in Azure.
    pub fn created(&self) -> Vec<String> {
        self.emulator
            .inventory()
            .into_iter()
            .filter(|id| !self.seeded.contains(&id.to_ascii_lowercase()))
            .collect()
    }

    pub fn example(&self, file: &str) -> String {
        root()
            .join("deploy/examples")
            .join(file)
            .display()
            .to_string()
    }
}

pub fn json_of(cp: &ControlPlane, args: &[&str]) -> Value {
    serde_json::from_str(&cp.kubectl_ok(args)).unwrap()
}

/// Runs a pinned status reader (kstatus-check, lua-health) on one object.
pub fn read_status(cp: &ControlPlane, tool: &str, args: &[&str], object: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(cp.tool(tool))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
