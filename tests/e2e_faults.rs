//! Fault survival, end to end (real API server, the chart's RBAC, the emulator): the operator
//! killed at random points of creation and deletion, Azure answering with throttling, server
//! errors, dropped connections and failed operations, the API server restarted, and two replicas
//! of which only the leader writes. Every run must converge, duplicate nothing and leak nothing.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stamp_operator::emulator::{FaultAction, FaultRule};
use support::operator::{free_addr, Operator};
use support::proxy::{api_server, SilentProxy};
use support::stage::{json_of, stage, Stage};

/// A small deterministic generator, seeded from the clock and printed on failure.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("dice seed {seed}");
        Dice(seed)
    }
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(low + self.0 % (high - low))
    }
}

/// Every id the operator created is planned or lives under a planned resource (a connection,
/// a DNS record); every planned id exists.
fn exactly_the_plan(st: &Stage, planned: &BTreeSet<String>) {
    let created: BTreeSet<String> = st
        .created()
        .iter()
        .map(|i| i.to_ascii_lowercase())
        .collect();
    let stray: Vec<&String> = created
        .iter()
        .filter(|id| {
            !planned
                .iter()
                .any(|p| *id == p || id.starts_with(&format!("{p}/")))
        })
        .collect();
    assert!(stray.is_empty(), "created outside the plan: {stray:#?}");
    let missing: Vec<&String> = planned.iter().filter(|p| !created.contains(*p)).collect();
    assert!(missing.is_empty(), "planned but missing: {missing:#?}");
}

fn wait_ready(st: &Stage, objects: &str, timeout: &str, log: &dyn Fn() -> String) {
    let out = st.cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "-f",
        objects,
        &format!("--timeout={timeout}"),
    ]);
    if !out.status.success() {
        let status = st.cp.kubectl(&["get", "-f", objects, "-o", "yaml"]);
        panic!(
            "not Ready: {}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&status.stdout),
            log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_it_converges_and_deletes_without_duplicates_or_leaks() {
    let st = stage().await;
    let objects = st.examples_named(&["prod", "weu-blue", "weu-blue-paas"]);
    let objects = objects.to_str().unwrap();
    let planned = Stage::planned_ids(std::path::Path::new(objects));
    let mut dice = Dice::new();
    let log = || std::fs::read_to_string(st.work.path().join("crashing.log")).unwrap_or_default();

    st.cp.kubectl_ok(&["apply", "-f", objects]);
    let mut kills = 0;
    for _ in 0..12 {
        let mut operator = st.solo_operator("crashing", &[]);
        tokio::time::sleep(dice.millis(300, 1500)).await;
        operator.kill();
        kills += 1;
    }
    let operator = st.solo_operator("crashing", &[]);
    wait_ready(&st, objects, "240s", &log);
    drop(operator);
    exactly_the_plan(&st, &planned);
    // One Front Door connection on the stamp's Private Link Service, not one per restart.
    let pls = st
        .created()
        .into_iter()
        .find(|id| id.contains("/privateLinkServices/"))
        .unwrap();
    let connections = st.arm.get(&pls, "2024-05-01").await.unwrap().unwrap().body["properties"]
        ["privateEndpointConnections"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(connections, 1, "duplicated private-link connections");

    st.cp.kubectl_ok(&["delete", "-f", objects, "--wait=false"]);
    for _ in 0..8 {
        let mut operator = st.solo_operator("crashing", &[]);
        tokio::time::sleep(dice.millis(200, 1200)).await;
        operator.kill();
        kills += 1;
    }
    let _operator = st.solo_operator("crashing", &[]);
    let gone = st
        .cp
        .kubectl(&["wait", "--for=delete", "-f", objects, "--timeout=240s"]);
    assert!(gone.status.success(), "not deleted: {}", log());
    assert!(kills >= 20);
    let left = st.created();
    assert!(left.is_empty(), "leaked after {kills} kills: {left:#?}");
}

/// Conditions and events seen about `objects` while faults were active.
fn observed_messages(st: &Stage) -> String {
    let mut seen = String::new();
    for kind in ["stamps", "privateendpointsets"] {
        let list = json_of(&st.cp, &["get", kind, "-n", "prod", "-o", "json"]);
        for item in list["items"].as_array().unwrap() {
            for c in item["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                seen.push_str(c["message"].as_str().unwrap_or_default());
                seen.push('\n');
            }
        }
    }
    seen.push_str(&st.cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "prod",
        "-o",
        "custom-columns=R:.reason,M:.message",
    ]));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_faults_are_survived_reported_and_never_hot_looped() {
    let st = stage().await;
    let objects = st.examples_named(&["prod", "weu-blue", "weu-blue-paas"]);
    let objects = objects.to_str().unwrap();
    let planned = Stage::planned_ids(std::path::Path::new(objects));
    // A 429 storm on writes, a burst of 500s on reads, dropped connections, and the firewall's
    // first operation ending Failed.
    st.emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 429,
            code: "TooManyRequests".into(),
            retry_after_seconds: Some(1),
        })
        .method("PUT")
        .times(15),
    );
    st.emulator.add_fault(
        FaultRule::new(FaultAction::Status {
            status: 500,
            code: "InternalServerError".into(),
            retry_after_seconds: None,
        })
        .method("GET")
        .times(20),
    );
    st.emulator.add_fault(
        FaultRule::new(FaultAction::DropConnection)
            .method("GET")
            .times(5),
    );
    st.emulator.add_fault(
        FaultRule::new(FaultAction::FailOperation {
            code: "FirewallPolicyUpdateFailed".into(),
        })
        .method("PUT")
        .resource_type("Microsoft.Network/azureFirewalls")
        .path_contains("/azureFirewalls/afw-weu-blue")
        .times(1),
    );
    let operator = st.solo_operator("faulty", &[]);
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        seen.push_str(&observed_messages(&st));
        let ready = st.cp.kubectl(&[
            "wait",
            "--for=condition=Ready",
            "-f",
            objects,
            "--timeout=1s",
        ]);
        if ready.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never converged:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    seen.push_str(&observed_messages(&st));
    exactly_the_plan(&st, &planned);
    // The failed operation was told, with Azure's own error code, in a condition or an Event.
    assert!(
        seen.contains("FirewallPolicyUpdateFailed"),
        "the failed firewall operation was never reported:\n{seen}"
    );
    // No hot loop: the requests stay within a small multiple of the graph's size, faults and
    // retries included.
    let requests = st.emulator.stats().requests;
    let bound = 12 * planned.len() as u64 + 200;
    assert!(
        requests <= bound,
        "{requests} requests for {} resources (bound {bound}): a hot loop?",
        planned.len()
    );
    // And once converged, a resync costs reads only.
    let writes = st.writes_under("");
    st.cp
        .kubectl_ok(&["annotate", "-f", objects, "example.com/poke=1"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        st.writes_under(""),
        writes,
        "a converged stamp was written again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_recover_when_the_api_server_restarts() {
    let st = stage().await;
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    let operator = st.solo_operator("watching", &[]);
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, "180s", &|| operator.log());
    st.cp.restart_api_server();
    // A change made after the restart reaches Azure: the watch came back.
    let weight = st.shift_weight(25).await;
    assert_eq!(
        weight,
        25,
        "no reconcile after the API server restarted:\n{}",
        operator.log()
    );
}

/// The Lease record: (holder, renewTime, acquireTime, leaseDurationSeconds); empty until the
/// first replica creates it.
fn lease(st: &Stage) -> (String, String, String, i64) {
    let out = st.cp.kubectl(&[
        "get",
        "lease",
        "stamp-operator",
        "-n",
        "stamp-system",
        "-o",
        "json",
    ]);
    let lease: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let spec = &lease["spec"];
    (
        spec["holderIdentity"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        spec["renewTime"].as_str().unwrap_or_default().to_string(),
        spec["acquireTime"].as_str().unwrap_or_default().to_string(),
        spec["leaseDurationSeconds"].as_i64().unwrap_or_default(),
    )
}

fn micros(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp_micros())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    let st = stage().await;
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    let mut a = st.operator("replica-a", &free_addr());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut b = st.operator("replica-b", &free_addr());
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, "180s", &|| {
        format!("{}\n{}", a.log(), b.log())
    });
    let (leader, ..) = lease(&st);
    let (leading, following): (&mut Operator, &mut Operator) = if leader == "replica-a" {
        (&mut a, &mut b)
    } else {
        assert_eq!(leader, "replica-b");
        (&mut b, &mut a)
    };
    let follower_name = if leader == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    let by = |who: &str| {
        st.emulator
            .requests()
            .iter()
            .filter(|r| r.user_agent.as_deref().is_some_and(|ua| ua.contains(who)))
            .count()
    };
    assert!(by(&leader) > 0, "the leader did not talk to Azure");
    assert_eq!(by(follower_name), 0, "the follower talked to Azure");

    // The leader dies without releasing the Lease; the follower takes over within the lease
    // duration of the last renewal (plus the follower's retry period).
    let (_, renewed, _, duration) = lease(&st);
    leading.kill();
    let mut record = lease(&st);
    for _ in 0..100 {
        if record.0 == follower_name {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        record = lease(&st);
    }
    assert_eq!(record.0, follower_name, "no failover:\n{}", following.log());
    let (_, last_renewal, acquired, _) = (record.0.clone(), renewed, record.2.clone(), 0);
    let gap = micros(&acquired) - micros(&last_renewal);
    let allowed = duration * 1_000_000 * 5 / 3;
    assert!(
        gap <= allowed,
        "failover took {gap} µs after the last renewal; the lease is {duration} s"
    );
    // The new leader works: a change converges.
    let weight = st.shift_weight(30).await;
    assert_eq!(
        weight,
        30,
        "the new leader did not converge:\n{}",
        following.log()
    );
    assert!(by(follower_name) > 0);

    // A leader stopped gracefully hands the Lease back at once.
    following.terminate();
    let (holder, ..) = lease(&st);
    assert_eq!(holder, "", "a stopped leader keeps its Lease");
}

/// The leader cut off from the API server by a partition that swallows packets (its
/// connections stay open, nothing answers: what a client without timeouts waits on for ever)
/// stops talking to Azure before the follower starts: every request of the cut-off leader comes
/// before the follower's first, even after both would have looked at Azure again on their own,
/// and the cut-off leader exits, for its pod to restart and compete again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_before_the_follower_starts() {
    let st = stage().await;
    let proxy = SilentProxy::to(api_server(&st.operator_kubeconfig)).await;
    let through_proxy = proxy.kubeconfig(&st.operator_kubeconfig, st.work.path());
    let lease_flags = ["--leader-election-lease", "stamp-system/stamp-operator"];
    let mut a = Operator::start(
        &through_proxy,
        &st.emulator.url(),
        st.work.path(),
        "replica-a",
        &free_addr(),
        &lease_flags,
    );
    for _ in 0..100 {
        if lease(&st).0 == "replica-a" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(lease(&st).0, "replica-a", "{}", a.log());
    let b = st.operator("replica-b", &free_addr());
    let objects = st.examples_named(&["prod", "weu-blue"]);
    let objects = objects.to_str().unwrap();
    st.cp.kubectl_ok(&["apply", "-f", objects]);
    wait_ready(&st, objects, "180s", &|| a.log());

    proxy.fall_silent();
    let cut = st.emulator.requests().len();
    // Azure drifts: whichever replica looks next puts it back.
    st.empty_app_nsg();
    let mut taken = false;
    for _ in 0..150 {
        if lease(&st).0 == "replica-b" {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(taken, "no failover:\n{}", b.log());
    st.cp.kubectl_ok(&[
        "annotate",
        "stamp",
        "weu-blue",
        "-n",
        "prod",
        "example.com/poke=after-the-cut",
    ]);
    let by = |who: &'static str| {
        move |r: &stamp_operator::emulator::RequestRecord| {
            r.user_agent.as_deref().is_some_and(|ua| ua.contains(who))
        }
    };
    let mut repaired = false;
    for _ in 0..150 {
        if st.emulator.requests()[cut..]
            .iter()
            .any(|r| by("replica-b")(r) && r.method == "PUT")
        {
            repaired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(repaired, "the new leader did not repair:\n{}", b.log());
    // Longer than a resync period and a half (the operators' 30 s, jittered): a cut-off leader
    // still running would have looked at Azure on its own by now.
    tokio::time::sleep(Duration::from_secs(50)).await;
    let log = st.emulator.requests()[cut..].to_vec();
    let first_b = log.iter().position(by("replica-b")).unwrap();
    let last_a = log.iter().rposition(by("replica-a"));
    assert!(
        last_a.is_none_or(|a| a < first_b),
        "the cut-off leader talked to Azure after the follower started ({} of its requests after)\n{}",
        log[first_b..].iter().filter(|r| by("replica-a")(r)).count(),
        a.log()
    );
    assert!(!a.running(), "the cut-off leader still runs:\n{}", a.log());
}
