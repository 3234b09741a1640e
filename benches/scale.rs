//! `make bench`: the operator (release build, its own process) against a real kube-apiserver and
//! the ARM emulator with Azure's realistic latencies sped up by `--factor`, for each stamp count
//! of `--sizes` (5 private endpoints per stamp; one GlobalPlane per 50 stamps, Front Door
//! Premium's limit of origins per origin group). ARM's throttling limits are sped up by the same
//! factor, in the emulator and in the operator's own budget, so time is compressed uniformly.
//!
//! Writes `target/bench/results.json` and prints a table. Not part of `make test`: numbers, not
//! verdicts.
//!
//! The default factor, 0.1, keeps Azure ten times faster than it is and still far slower than
//! this process: at 0.01 a thousand stamps need more CPU per second of Azure's clock than two
//! cores running the API server, etcd, the emulator and the operator have, which is a limit of
//! the bench machine, not of Azure. `--bounds-only` prints the lower bounds and runs nothing.
//!
//!   cargo bench --bench scale -- [--sizes 10,100] [--factor 0.1] [--resyncs 3] [--bounds-only]

#[path = "../tests/support/controlplane.rs"]
mod controlplane;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stamp_operator::azure::{
    ArmClient, ArmConfig, ArmMetrics, CredentialConfig, PutOutcome, TokenSource,
};
use stamp_operator::emulator::{
    observable_put_seconds, BucketLimit, EmulatorConfig, LatencyProfile, RunningEmulator,
    ThrottleLimits,
};

use controlplane::ControlPlane;
use futures::StreamExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use stamp_operator::api::{GlobalPlane, HasConditions, PrivateEndpointSet, Stamp};

const SUB: &str = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";
const STAMPS_PER_GLOBAL_PLANE: usize = 50;
/// The operator's default resync period, for the read-budget projection.
const DEFAULT_RESYNC_SECONDS: f64 = 300.0;
/// ARM's read refill per subscription (tokens per second).
const ARM_READ_REFILL: f64 = 25.0;

struct Args {
    sizes: Vec<usize>,
    factor: f64,
    resyncs: u32,
    /// Where to write every request of the converge window (seconds, method, status, path).
    trace: Option<std::path::PathBuf>,
    /// Print the lower bounds of each size and run nothing.
    bounds_only: bool,
}

fn args() -> Args {
    let mut out = Args {
        sizes: vec![10, 100],
        factor: 0.1,
        resyncs: 3,
        trace: None,
        bounds_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--sizes" => {
                out.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse().expect("--sizes takes numbers"))
                    .collect();
                i += 1;
            }
            "--factor" => {
                out.factor = value.parse().expect("--factor takes a number");
                i += 1;
            }
            "--resyncs" => {
                out.resyncs = value.parse().expect("--resyncs takes a number");
                i += 1;
            }
            "--bounds-only" => out.bounds_only = true,
            "--trace" => {
                out.trace = Some(value.into());
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The base address of stamp `i`'s /20 (10.0.0.0/20, 10.0.16.0/20, …; 10.100+ stays free for
/// operations networks).
fn stamp_base(i: usize) -> [u8; 3] {
    [10, (i / 16) as u8, ((i % 16) * 16) as u8]
}

fn manifests(stamps: usize) -> String {
    let global = std::fs::read_to_string(root().join("deploy/examples/globalplane.yaml")).unwrap();
    let global: Value = serde_yaml::from_str(&global).unwrap();
    let stamp =
        std::fs::read_to_string(root().join("deploy/examples/stamp-westeurope.yaml")).unwrap();
    let stamp: Value = serde_yaml::from_str(&stamp).unwrap();
    let sets =
        std::fs::read_to_string(root().join("deploy/examples/privateendpointsets.yaml")).unwrap();
    let set: Value = serde_yaml::Deserializer::from_str(&sets)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|v: &Value| v["metadata"]["name"] == "weu-blue-paas")
        .unwrap();
    let mut docs = Vec::new();
    for g in 0..stamps.div_ceil(STAMPS_PER_GLOBAL_PLANE) {
        let mut gp = global.clone();
        gp["metadata"]["name"] = json!(format!("gp{g}"));
        gp["spec"]["resourceGroup"] = json!(format!("rg-gp{g}-global"));
        gp["spec"]["frontDoor"]["endpointName"] = json!(format!("gp{g}-app"));
        // The example admits only its own namespace; the bench's objects live in `bench`.
        gp["spec"]["allowedNamespaces"] = json!({ "list": ["bench"] });
        gp["spec"]
            .as_object_mut()
            .unwrap()
            .remove("operationsNetworks");
        docs.push(gp);
    }
    for i in 0..stamps {
        let [a, b, c] = stamp_base(i);
        let name = format!("s{i}");
        let mut s = stamp.clone();
        s["metadata"] = json!({ "name": name, "namespace": "bench" });
        s["spec"]["globalPlaneRef"]["name"] = json!(format!("gp{}", i / STAMPS_PER_GLOBAL_PLANE));
        s["spec"]["addressSpace"] = json!(format!("{a}.{b}.{c}.0/20"));
        s["spec"]["ingress"]["privateLinkService"]["frontendIpConfigurationId"] = json!(format!(
            "/subscriptions/{SUB}/resourceGroups/mc-{name}/providers/Microsoft.Network/loadBalancers/kubernetes-internal/frontendIPConfigurations/ingress"
        ));
        docs.push(s);
        let mut p = set.clone();
        p["metadata"] = json!({ "name": format!("{name}-paas"), "namespace": "bench" });
        p["spec"]["target"]["stampRef"]["name"] = json!(name);
        docs.push(p);
    }
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn client(url: &str) -> ArmClient {
    let mut config = ArmConfig::for_endpoint(url, "scope");
    config.min_poll_interval = Duration::from_millis(5);
    config.budget = config.budget.refill_scaled(1000.0);
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

/// The PaaS targets of the examples, and per stamp the load balancer AKS made for its ingress.
async fn seed(emulator: &RunningEmulator, stamps: usize) {
    emulator.seed_examples().await.unwrap();
    let arm = client(&emulator.url());
    for i in 0..stamps {
        let [a, b, c] = stamp_base(i);
        let group = format!("/subscriptions/{SUB}/resourceGroups/mc-s{i}");
        let lb = json!({ "location": "westeurope", "properties": { "frontendIPConfigurations": [
            { "name": "ingress", "properties": { "privateIPAddress": format!("{a}.{b}.{}.196", c + 8) } } ] } });
        for (id, api, body) in [
            (
                group.clone(),
                "2024-03-01",
                json!({ "location": "westeurope" }),
            ),
            (
                format!("{group}/providers/Microsoft.Network/loadBalancers/kubernetes-internal"),
                "2024-05-01",
                lb,
            ),
        ] {
            if let PutOutcome::Started(op) = arm.put(&id, api, &body, None).await.unwrap() {
                arm.wait(&op).await.unwrap();
            }
        }
    }
}

/// The longest dependency chain of one stamp (its GlobalPlane first), in seconds of the
/// latency profile, an origin counted until Front Door's connection request has arrived
/// (`observable_put_seconds`): no operator can be faster.
fn critical_path(factor: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.yaml");
    std::fs::write(&file, manifests(1)).unwrap();
    let bundle = stamp_operator::cli::load_manifests(&[file]).unwrap();
    let plan = stamp_operator::plan::plan_bundle(&bundle);
    assert!(plan.errors().is_empty(), "{:?}", plan.errors());
    let graphs = plan.graphs();
    let resources: Vec<_> = graphs.iter().flat_map(|g| g.resources.iter()).collect();
    let mut finish: BTreeMap<String, f64> = BTreeMap::new();
    // Graphs come in dependency order and resources in topological order within each.
    for r in &resources {
        let start = r
            .depends_on
            .iter()
            .filter_map(|d| finish.get(&d.as_str().to_ascii_lowercase()))
            .fold(0.0_f64, |a, b| a.max(*b));
        let own = if r.ownership == stamp_operator::plan::Ownership::Managed {
            observable_put_seconds(&r.id.resource_type()) * factor
        } else {
            0.0
        };
        finish.insert(r.id.as_str().to_ascii_lowercase(), start + own);
    }
    finish.values().fold(0.0_f64, |a, b| a.max(*b))
}

/// What ARM's write budget adds to the critical path, for `stamps` stamps.
struct BudgetBound {
    /// The fewest writes any operator needs: one PUT per managed resource of the plan.
    writes: usize,
    /// Those writes beyond the bucket's burst, at its refill rate: however well they are
    /// ordered, they take at least this long.
    writes_alone: f64,
    /// The writes and the dependency chains together (always at least both of the above).
    with_chains: f64,
}

/// Lower bounds for `stamps` stamps when ARM lets at most `capacity + refill × t` writes out by
/// time `t`. A resource whose *tail* (its own typical seconds plus the longest chain of
/// resources that wait for it) is `τ` must be written by `M − τ` for everything to be done at
/// `M`; so for every `τ`, all writes with a tail of at least `τ` fit into `M − τ`:
/// `M ≥ τ + (|{tail ≥ τ}| − capacity) / refill`. The largest of these over every tail is the
/// bound; at the smallest tail it is the writes alone, at the longest the critical path.
fn budget_bound(stamps: usize, factor: f64, limit: BucketLimit) -> BudgetBound {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, manifests(stamps)).unwrap();
    let bundle = stamp_operator::cli::load_manifests(&[file]).unwrap();
    let plan = stamp_operator::plan::plan_bundle(&bundle);
    let resources: Vec<_> = plan
        .graphs()
        .iter()
        .flat_map(|g| g.resources.iter())
        .collect();
    let managed = |r: &stamp_operator::plan::DesiredResource| {
        r.ownership == stamp_operator::plan::Ownership::Managed
    };
    // Graphs come in dependency order and resources in topological order within each, so
    // walking backwards meets every resource after all that wait for it.
    let mut tails: BTreeMap<String, f64> = BTreeMap::new();
    let mut write_tails = Vec::new();
    for r in resources.iter().rev() {
        let key = r.id.as_str().to_ascii_lowercase();
        let own = if managed(r) {
            observable_put_seconds(&r.id.resource_type()) * factor
        } else {
            0.0
        };
        let tail = own + tails.get(&key).copied().unwrap_or(0.0);
        for d in &r.depends_on {
            let after = tails.entry(d.as_str().to_ascii_lowercase()).or_insert(0.0);
            *after = after.max(tail);
        }
        if managed(r) {
            write_tails.push(tail);
        }
    }
    write_tails.sort_by(|a, b| b.total_cmp(a));
    let beyond_burst = |n: usize| (n as f64 - limit.capacity).max(0.0) / limit.refill_per_second;
    let with_chains = write_tails
        .iter()
        .enumerate()
        .map(|(i, tau)| tau + beyond_burst(i + 1))
        .fold(0.0_f64, f64::max);
    BudgetBound {
        writes: write_tails.len(),
        writes_alone: beyond_burst(write_tails.len()),
        with_chains,
    }
}

/// `limit` with its refill sped up like the latencies; the burst stays ARM's.
fn sped_up(limit: BucketLimit, factor: f64) -> BucketLimit {
    BucketLimit {
        capacity: limit.capacity,
        refill_per_second: limit.refill_per_second / factor,
    }
}

struct Operator {
    child: Child,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak RSS (KiB) and CPU seconds of `pid`, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state; utime, stime are
    // the 14th and 15th fields overall.
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    (hwm, ticks / 100.0)
}

/// The whole machine's (busy, total) CPU seconds so far, from the first line of `/proc/stat`.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = ticks.iter().sum();
    // idle and iowait are the fourth and fifth.
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    ((total - idle) / 100.0, total / 100.0)
}

#[derive(Default)]
struct Counts {
    reads: u64,
    writes: u64,
    deletes: u64,
    polls: u64,
    throttled: u64,
    /// Reads (not polls) by resource type, to see where they go.
    reads_by_type: BTreeMap<String, u64>,
}

/// The resource type a request addresses (`virtualNetworks/subnets`), `resourceGroups` for a
/// group, `resources` for a group's listing.
fn request_type(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments
        .iter()
        .position(|s| s.eq_ignore_ascii_case("providers"))
    {
        Some(i) => segments[i + 2..]
            .iter()
            .step_by(2)
            .copied()
            .collect::<Vec<_>>()
            .join("/"),
        None => segments
            .get(4)
            .or(segments.get(2))
            .copied()
            .unwrap_or_default()
            .to_string(),
    }
}

fn count(emulator: &RunningEmulator, from: usize, to: usize) -> Counts {
    let mut c = Counts::default();
    for r in &emulator.requests()[from..to] {
        if r.status == 429 {
            c.throttled += 1;
        }
        // Operation URLs as each provider shapes them (see the emulator's `operation_urls`).
        let poll = [
            "/operationStatuses/",
            "/operationResults/",
            "/operations/",
            "/privateDnsOperationStatuses/",
            "/privateDnsOperationResults/",
        ]
        .iter()
        .any(|p| r.path.contains(p));
        match r.method.as_str() {
            "GET" if poll => c.polls += 1,
            "GET" => {
                c.reads += 1;
                *c.reads_by_type.entry(request_type(&r.path)).or_default() += 1;
            }
            "DELETE" => c.deletes += 1,
            _ => c.writes += 1,
        }
    }
    c
}

/// Writes requests `from..to` as `seconds since start, method, status, path` lines.
fn trace(emulator: &RunningEmulator, from: usize, to: usize, start: Instant, path: &Path) {
    let lines: String = emulator.requests()[from..to]
        .iter()
        .map(|r| {
            let at = r.at.saturating_duration_since(start).as_secs_f64();
            format!("{at:.3}\t{}\t{}\t{}\n", r.method, r.status, r.path)
        })
        .collect();
    std::fs::write(path, lines).unwrap();
    let operations: String = emulator
        .operations()
        .iter()
        .map(|(id, resource)| format!("{id}\t{resource}\n"))
        .collect();
    std::fs::write(path.with_extension("operations.tsv"), operations).unwrap();
    eprintln!("trace: {}", path.display());
}

/// The API server's own count of the requests it served, by `VERB resource[/subresource]`, from
/// `apiserver_request_total` on its `/metrics`.
fn apiserver_requests(cp: &ControlPlane) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in cp.kubectl_ok(&["get", "--raw", "/metrics"]).lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let mut key = format!("{} {}", label("verb"), label("resource"));
        let sub = label("subresource");
        if !sub.is_empty() {
            key = format!("{key}/{sub}");
        }
        *out.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    out
}

/// Readiness of every GlobalPlane, Stamp and PrivateEndpointSet, from watches held by the bench
/// itself: polling with kubectl would start a process and list everything twice a second on the
/// CPUs the operator and the control plane share, and disturb what is measured.
struct Readiness {
    globals: Store<GlobalPlane>,
    stamps: Store<Stamp>,
    sets: Store<PrivateEndpointSet>,
}

impl Readiness {
    async fn watch(cp: &ControlPlane) -> Readiness {
        let kubeconfig = Kubeconfig::read_from(cp.kubeconfig()).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        Readiness {
            globals: cache(Api::all(client.clone())),
            stamps: cache(Api::all(client.clone())),
            sets: cache(Api::all(client)),
        }
    }

    /// (Ready, total) over the three kinds.
    fn count(&self) -> (usize, usize) {
        fn of<K, S>(store: &Store<K>, status: impl Fn(&K) -> Option<&S>) -> (usize, usize)
        where
            K: kube::Resource<DynamicType = ()> + Clone + 'static,
            S: HasConditions,
        {
            let all = store.state();
            let ready = all
                .iter()
                .filter(|o| status(o).is_some_and(S::is_ready))
                .count();
            (ready, all.len())
        }
        let g = of(&self.globals, |o: &GlobalPlane| o.status.as_ref());
        let s = of(&self.stamps, |o: &Stamp| o.status.as_ref());
        let p = of(&self.sets, |o: &PrivateEndpointSet| o.status.as_ref());
        (g.0 + s.0 + p.0, g.1 + s.1 + p.1)
    }
}

fn cache<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

async fn run_size(stamps: usize, args: &Args) -> Value {
    eprintln!("== {stamps} stamps");
    let cp = ControlPlane::with_crds(&["bench"]);
    let limits = ThrottleLimits::default();
    let scaled = |b: BucketLimit| sped_up(b, args.factor);
    let bound = budget_bound(stamps, args.factor, scaled(limits.writes));
    let emulator = RunningEmulator::start(EmulatorConfig {
        latency: LatencyProfile::realistic(args.factor),
        throttle: ThrottleLimits {
            reads: scaled(limits.reads),
            writes: scaled(limits.writes),
            deletes: scaled(limits.deletes),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    seed(&emulator, stamps).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    std::fs::write(&file, manifests(stamps)).unwrap();
    let readiness = Readiness::watch(&cp).await;
    cp.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()]);

    // The resync period, sped up like everything else (300 s of Azure time), but never so short
    // that one resync of every object cannot finish inside it.
    let resync = (DEFAULT_RESYNC_SECONDS * args.factor).max(10.0);
    let log = std::fs::File::create(dir.path().join("operator.log")).unwrap();
    let apiserver = cp.apiserver_pid();
    let (_, apiserver_cpu_before) = usage(apiserver);
    let (_, bench_cpu_before) = usage(std::process::id());
    let machine_before = machine_cpu();
    let apiserver_requests_before = apiserver_requests(&cp);
    let before = emulator.requests().len();
    let started = Instant::now();
    let operator = Operator {
        child: Command::new(env!("CARGO_BIN_EXE_stamp-operator"))
            .args([
                "run",
                "--arm-endpoint",
                &emulator.url(),
                "--credential",
                "static",
            ])
            .args(["--token", "bench", "--metrics-addr", "127.0.0.1:0"])
            .args(["--resync-seconds", &format!("{}", resync as u64)])
            .args(["--poll-seconds", "1"])
            .args(["--inline-wait-seconds", &format!("{}", args.factor * 5.0)])
            .args([
                "--min-poll-seconds",
                &format!("{}", (args.factor * 10.0).max(0.05)),
            ])
            .args(["--arm-budget-scale", &format!("{}", 1.0 / args.factor)])
            .env("KUBECONFIG", cp.kubeconfig())
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let pid = operator.child.id();
    let deadline = started + Duration::from_secs(1800);
    loop {
        let (ready, total) = readiness.count();
        if total > 0 && ready == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not Ready after 30 minutes ({ready}/{total}); log in {}",
            dir.path().display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_ready = started.elapsed().as_secs_f64();
    let converged_at = emulator.requests().len();
    let converge = count(&emulator, before, converged_at);
    // The API server shares the machine's CPUs with the operator and the emulator; its share
    // shows when it, not Azure, holds convergence back.
    let apiserver_cpu = usage(apiserver).1 - apiserver_cpu_before;
    // The emulator runs in this process, next to the bench's own three watches.
    let emulator_cpu = usage(std::process::id()).1 - bench_cpu_before;
    let machine_after = machine_cpu();
    let machine_busy =
        (machine_after.0 - machine_before.0) / (machine_after.1 - machine_before.1).max(0.01);
    let mut apiserver_served = apiserver_requests(&cp);
    for (key, count) in &apiserver_requests_before {
        *apiserver_served.entry(key.clone()).or_default() -= count;
    }
    apiserver_served.retain(|_, count| *count >= 1.0);
    if let Some(path) = &args.trace {
        trace(
            &emulator,
            before,
            converged_at,
            started,
            &path.with_extension(format!("{stamps}.tsv")),
        );
    }
    let (rss_converge, cpu_converge) = usage(pid);

    // Steady state: after one and a half periods of settling (the pass after convergence that
    // records the fingerprint of what the last writes left), several resync periods.
    tokio::time::sleep(Duration::from_secs_f64(resync * 1.5)).await;
    let settled_at = emulator.requests().len();
    let window = Duration::from_secs_f64(resync * f64::from(args.resyncs));
    tokio::time::sleep(window).await;
    let steady = count(&emulator, settled_at, emulator.requests().len());
    let (rss_peak, cpu_total) = usage(pid);
    drop(operator);

    let n = stamps as f64;
    let lower_bound = critical_path(args.factor);
    let reads_per_stamp_resync = steady.reads as f64 / n / f64::from(args.resyncs);
    let max_stamps = if reads_per_stamp_resync > 0.0 {
        (ARM_READ_REFILL * DEFAULT_RESYNC_SECONDS / reads_per_stamp_resync).floor()
    } else {
        f64::INFINITY
    };
    json!({
        "stamps": stamps,
        "privateEndpointsPerStamp": 5,
        "globalPlanes": stamps.div_ceil(STAMPS_PER_GLOBAL_PLANE),
        "latencyFactor": args.factor,
        "secondsToAllReady": to_ready,
        "criticalPathSeconds": lower_bound,
        "ratioToCriticalPath": to_ready / lower_bound,
        // The critical path ignores ARM's limits; with them, writes alone may take longer.
        "writesNeeded": bound.writes,
        "armWriteBoundSeconds": bound.writes_alone,
        "ratioToMaxOfBoth": to_ready / lower_bound.max(bound.writes_alone),
        // Both at once: every write with a chain of τ seconds behind it must leave τ before
        // the end, and ARM lets only so many out by then (see `budget_bound`).
        "lowerBoundSeconds": bound.with_chains,
        "ratioToLowerBound": to_ready / bound.with_chains,
        "convergeRequestsPerStamp": {
            "reads": converge.reads as f64 / n,
            "writes": converge.writes as f64 / n,
            "deletes": converge.deletes as f64 / n,
            "polls": converge.polls as f64 / n,
            "readsByType": converge.reads_by_type.iter().map(|(t, c)| (t.clone(), json!(*c as f64 / n))).collect::<serde_json::Map<_, _>>(),
        },
        "throttled": converge.throttled + steady.throttled,
        "steadyState": {
            "resyncSeconds": resync,
            "resyncs": args.resyncs,
            "writes": steady.writes + steady.deletes,
            "readsPerStampPerResync": reads_per_stamp_resync,
            "pollsPerStampPerResync": steady.polls as f64 / n / f64::from(args.resyncs),
            "readsByType": steady.reads_by_type.iter().map(|(t, c)| (t.clone(), json!(*c as f64 / n / f64::from(args.resyncs)))).collect::<serde_json::Map<_, _>>(),
        },
        "maxStampsWithinArmReadRefillAtDefaultResync": if max_stamps.is_finite() { json!(max_stamps) } else { json!(null) },
        "operator": {
            "peakRssMiB": rss_peak as f64 / 1024.0,
            "rssAfterConvergeMiB": rss_converge as f64 / 1024.0,
            "cpuSecondsToConverge": cpu_converge,
            "cpuSecondsTotal": cpu_total,
        },
        "apiServerCpuSecondsToConverge": apiserver_cpu,
        "emulatorCpuSecondsToConverge": emulator_cpu,
        // The share of every CPU of the machine that was busy until all were Ready: near 1, the
        // run waited for CPU rather than for Azure.
        "machineCpuBusyToConverge": machine_busy,
        // Includes the bench's own watches and this count's two reads of /metrics.
        "apiServerRequestsToConverge": apiserver_served,
    })
}

fn table(results: &[Value]) -> String {
    let mut out = String::new();
    out.push_str("stamps | to Ready (s) | critical path (s) | ratio | ARM write bound (s) | lower bound: chains within the write budget (s) | ratio to it | reads/writes/deletes/polls per stamp | 429s | steady writes | steady reads/stamp/resync | max stamps (ARM reads) | peak RSS MiB | CPU s | API server CPU s to Ready | emulator CPU s to Ready | machine CPU busy to Ready\n");
    out.push_str("---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---\n");
    for r in results {
        let c = &r["convergeRequestsPerStamp"];
        out.push_str(&format!(
            "{} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {:.1}/{:.1}/{:.1}/{:.1} | {} | {} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0}%\n",
            r["stamps"],
            r["secondsToAllReady"].as_f64().unwrap_or_default(),
            r["criticalPathSeconds"].as_f64().unwrap_or_default(),
            r["ratioToCriticalPath"].as_f64().unwrap_or_default(),
            r["armWriteBoundSeconds"].as_f64().unwrap_or_default(),
            r["lowerBoundSeconds"].as_f64().unwrap_or_default(),
            r["ratioToLowerBound"].as_f64().unwrap_or_default(),
            c["reads"].as_f64().unwrap_or_default(),
            c["writes"].as_f64().unwrap_or_default(),
            c["deletes"].as_f64().unwrap_or_default(),
            c["polls"].as_f64().unwrap_or_default(),
            r["throttled"],
            r["steadyState"]["writes"],
            r["steadyState"]["readsPerStampPerResync"].as_f64().unwrap_or_default(),
            r["maxStampsWithinArmReadRefillAtDefaultResync"],
            r["operator"]["peakRssMiB"].as_f64().unwrap_or_default(),
            r["operator"]["cpuSecondsTotal"].as_f64().unwrap_or_default(),
            r["apiServerCpuSecondsToConverge"].as_f64().unwrap_or_default(),
            r["emulatorCpuSecondsToConverge"].as_f64().unwrap_or_default(),
            r["machineCpuBusyToConverge"].as_f64().unwrap_or_default() * 100.0,
        ));
    }
    out
}

fn main() {
    let args = args();
    if args.bounds_only {
        let critical = critical_path(args.factor);
        let writes = sped_up(ThrottleLimits::default().writes, args.factor);
        for &size in &args.sizes {
            let bound = budget_bound(size, args.factor, writes);
            println!(
                "{size} stamps: critical path {critical:.1} s, {} writes alone {:.1} s, chains within the write budget {:.1} s",
                bound.writes, bound.writes_alone, bound.with_chains
            );
        }
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let out: PathBuf = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let command = format!(
        "cargo bench --bench scale -- --sizes {} --factor {} --resyncs {}",
        args.sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        args.factor,
        args.resyncs
    );
    let mut results = Vec::new();
    for &size in &args.sizes {
        results.push(runtime.block_on(run_size(size, &args)));
        // Written after every size, so a long run interrupted keeps what it measured.
        let report = json!({
            "command": command,
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
            "results": results,
        });
        std::fs::write(
            out.join("results.json"),
            serde_json::to_string_pretty(&report).unwrap(),
        )
        .unwrap();
    }
    let text = table(&results);
    std::fs::write(out.join("results.md"), &text).unwrap();
    println!("{text}");
    println!("written: target/bench/results.json, target/bench/results.md");
}
