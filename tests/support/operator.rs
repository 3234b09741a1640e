//! `stamp-operator run` as a separate process, the way it runs in a cluster: under the chart's
//! ServiceAccount (a kubeconfig with its token), holding the chart's leader-election Lease, and
//! against the ARM emulator.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use stamp_operator::azure::{ArmClient, ArmConfig, ArmMetrics, CredentialConfig, TokenSource};

/// A running operator; dropping it kills it.
pub struct Operator {
    child: Child,
    log: PathBuf,
}

/// Timings sped up for tests.
pub const FAST: [&str; 14] = [
    "--poll-seconds",
    "1",
    "--progress-interval-seconds",
    "1",
    "--inline-wait-seconds",
    "2",
    "--min-poll-seconds",
    "0.05",
    "--resync-seconds",
    "30",
    "--drain-seconds",
    "1",
    "--lease-seconds",
    "4",
];

impl Operator {
    /// Starts the operator with `kubeconfig` against `arm_url`, logging to `dir/<name>.log`.
    pub fn start(
        kubeconfig: &Path,
        arm_url: &str,
        dir: &Path,
        name: &str,
        metrics_addr: &str,
        extra: &[&str],
    ) -> Operator {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stamp-operator"))
            .args(["run", "--arm-endpoint", arm_url, "--credential", "static"])
            .args(["--token", "test", "--metrics-addr", metrics_addr])
            .args(FAST)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Operator { child, log }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it at once (SIGKILL: no cleanup, no lease release), as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it as Kubernetes does (SIGTERM) and waits for it to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback address for /metrics.
pub fn free_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// An ARM client for the emulator at `url`, for assertions.
pub fn arm_client(url: &str) -> ArmClient {
    let mut config = ArmConfig::for_endpoint(url, "scope");
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
