//! A real kube-apiserver + etcd for tests, started by `tests/controlplane/start.sh` from the
//! binaries `tests/controlplane/build.sh` pinned and built. Never a fake: if the binaries are
//! missing the test fails and says how to build them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running control plane; dropping it stops etcd and the API server (by PID, via the script).
pub struct ControlPlane {
    script: Child,
    state: tempfile::TempDir,
    bin: PathBuf,
}

impl ControlPlane {
    /// Starts a fresh control plane and waits until `/readyz` answers.
    pub fn start() -> ControlPlane {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bin = root.join("target/controlplane/bin");
        assert!(
            bin.join("kube-apiserver").exists() && bin.join("etcd").exists() && bin.join("kubectl").exists(),
            "the test control plane is not built: run `make controlplane` (tests/controlplane/build.sh)"
        );
        let state = tempfile::Builder::new()
            .prefix("stamp-cp")
            .tempdir()
            .expect("temporary directory");
        let script = Command::new(root.join("tests/controlplane/start.sh"))
            .arg(state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/controlplane/start.sh");
        let mut cp = ControlPlane { script, state, bin };
        let deadline = Instant::now() + Duration::from_secs(150);
        while !cp.state.path().join("ready").exists() {
            if let Ok(Some(status)) = cp.script.try_wait() {
                panic!(
                    "control plane exited during startup ({status}); logs in {}",
                    cp.state.path().display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "control plane not ready in time; logs in {}",
                cp.state.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cp
    }

    /// A fresh control plane with this project's CRDs established and `namespaces` created.
    pub fn with_crds(namespaces: &[&str]) -> ControlPlane {
        let cp = ControlPlane::start();
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        cp.kubectl_ok(&["apply", "-f", crds.to_str().expect("utf-8 path")]);
        cp.kubectl_ok(&[
            "wait",
            "--for",
            "condition=established",
            "crd",
            "--all",
            "--timeout=60s",
        ]);
        for ns in namespaces {
            cp.kubectl_ok(&["create", "namespace", ns]);
        }
        cp
    }

    /// The process id of the running kube-apiserver (it changes when the API server restarts).
    #[allow(dead_code)] // the scale bench's; the tests share this file
    pub fn apiserver_pid(&self) -> u32 {
        std::fs::read_to_string(self.state.path().join("kube-apiserver.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse().ok())
            .expect("start.sh records the API server's pid")
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.path().join("kubeconfig")
    }

    /// Runs the pinned kubectl as admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.bin.join("kubectl"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// A pinned tool built with the control plane (helm, kstatus-check, lua-health).
    #[allow(dead_code)]
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs the pinned helm against this control plane and insists on success.
    #[allow(dead_code)]
    pub fn helm_ok(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("helm"))
            .env("KUBECONFIG", self.kubeconfig())
            .env("HELM_CACHE_HOME", self.state.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.state.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.state.path().join("helm/data"))
            .args(args)
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs `charts/stamp-operator` as release `stamp-operator` in `stamp-system` (CRDs are
    /// expected to be there already) and returns a kubeconfig that authenticates as the chart's
    /// ServiceAccount, with a token from `kubectl create token`: the operator then runs with
    /// exactly the chart's RBAC.
    #[allow(dead_code)]
    pub fn install_chart(&self) -> PathBuf {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/stamp-operator");
        self.helm_ok(&[
            "install",
            "stamp-operator",
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            "stamp-system",
            "--create-namespace",
            "--skip-crds",
        ]);
        self.service_account_kubeconfig("stamp-system", "stamp-operator")
    }

    /// A kubeconfig for ServiceAccount `namespace/name`.
    #[allow(dead_code)]
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration=2h"]);
        let admin = std::fs::read_to_string(self.kubeconfig()).expect("admin kubeconfig");
        let cluster: String = admin
            .lines()
            .take_while(|l| !l.starts_with("users:"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = format!(
            "{cluster}\nusers:\n- name: {name}\n  user:\n    token: {}\ncontexts:\n- name: sa\n  context:\n    cluster: test\n    user: {name}\n    namespace: {namespace}\ncurrent-context: sa\n",
            token.trim()
        );
        let path = self
            .state
            .path()
            .join(format!("kubeconfig-{namespace}-{name}"));
        std::fs::write(&path, config).expect("write kubeconfig");
        path
    }

    /// Stops the API server and starts it again on the same port (etcd keeps the data), and
    /// waits until it is ready: clients see their watches break and must re-establish them.
    #[allow(dead_code)]
    pub fn restart_api_server(&self) {
        let count = || {
            std::fs::read_to_string(self.state.path().join("restarts"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        let before = count();
        let _ = Command::new("kill")
            .arg("-USR1")
            .arg(self.script.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while count() == before {
            assert!(Instant::now() < deadline, "the API server did not restart");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs kubectl and insists on success; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // SIGTERM lets the script's trap stop etcd and the API server by PID.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.script.id().to_string())
            .status();
        let _ = self.script.wait();
    }
}
