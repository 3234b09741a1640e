//! Converging Azure to a desired graph: resume operations still in flight, then apply resources
//! wave by wave (independent ones in parallel, writes sharing a lock one after another), waiting
//! a bounded time for each operation and handing back what is still running so it can be
//! persisted in status and resumed — never started twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::azure::{
    ApplyOutcome, ArmClient, AzureError, DeleteOutcome, LroKind, LroState, LroStatus, PutOutcome,
};
use crate::plan::{Component, DesiredGraph, DesiredResource, Ownership, ResourceKind};

/// Whether the operator may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Converge: create, update.
    Manage,
    /// Read and report only (`ObserveOnly`, `paused`).
    Observe,
}

impl Mode {
    /// The mode an object's `paused` and `managementPolicy` allow.
    pub fn of(paused: bool, policy: crate::api::ManagementPolicy) -> Mode {
        if paused || policy == crate::api::ManagementPolicy::ObserveOnly {
            Mode::Observe
        } else {
            Mode::Manage
        }
    }
}

/// What one pass achieved.
#[derive(Debug, Default)]
pub struct Convergence {
    /// Ids (lower case) of resources that exist and match.
    pub ready: BTreeSet<String>,
    /// Live bodies by lower-case id.
    pub live: BTreeMap<String, Value>,
    /// Operations still running.
    pub in_flight: Vec<LroState>,
    /// Per component, the first problem seen.
    pub problems: BTreeMap<Component, String>,
    /// Per component, drift that was repaired (`id: path`).
    pub repaired: Vec<String>,
    /// Whether any problem is an Azure refusal that retrying will not fix soon.
    pub terminal: Vec<AzureError>,
    /// PUTs sent.
    pub writes: usize,
}

impl Convergence {
    /// Whether every resource of the graph is ready.
    pub fn complete(&self, graph: &DesiredGraph) -> bool {
        graph.resources.iter().all(|r| self.ready.contains(&key(r)))
    }

    /// The live body of `id`.
    pub fn live_of(&self, id: &str) -> Option<&Value> {
        self.live.get(&id.to_ascii_lowercase())
    }

    /// The condition summarising `components`: Ready, Provisioning, or AzureError with the
    /// first problem seen.
    pub fn verdict(&self, condition: &str, components: &[Component]) -> super::conditions::Verdict {
        use super::conditions::Verdict;
        match components.iter().find_map(|c| self.problems.get(c)) {
            None => Verdict::ok(condition, "Ready", "provisioned and matching the spec"),
            Some(p)
                if p.contains("being provisioned")
                    || p.contains("waits for")
                    || p.contains("busy") =>
            {
                Verdict::not(condition, "Provisioning", p.clone())
            }
            Some(p) => Verdict::not(condition, "AzureError", p.clone()),
        }
    }

    fn problem(&mut self, component: Component, message: String) {
        self.problems.entry(component).or_insert(message);
    }
}

fn key(r: &DesiredResource) -> String {
    r.id.as_str().to_ascii_lowercase()
}

enum Step {
    Ready(Option<Value>),
    Running(LroState),
    Repaired(String, Option<Value>),
    Blocked(String),
    Failed(AzureError),
}

async fn settle(arm: &ArmClient, op: LroState, inline_wait: Duration) -> Result<bool, AzureError> {
    match tokio::time::timeout(inline_wait, arm.wait(&op)).await {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(false),
    }
}

async fn step(
    arm: &ArmClient,
    r: &DesiredResource,
    mode: Mode,
    inline_wait: Duration,
    known: Option<Option<Value>>,
) -> (Step, Option<LroState>) {
    let api = r.kind.api_version();
    let id = r.id.as_str();
    if let Some(body) = known {
        // Matched at a previous pass, and the listing shows no change since.
        return (Step::Ready(body), None);
    }
    if r.ownership == Ownership::Observed || mode == Mode::Observe {
        return match arm.get(id, api).await {
            Ok(Some(live)) => match (
                r.ownership,
                crate::azure::diff::first_difference(&r.body, &live.body),
            ) {
                (Ownership::Managed, Some(path)) => (
                    Step::Blocked(format!(
                        "{id} drifted at {path} (not repaired: writes are off)"
                    )),
                    None,
                ),
                _ => (Step::Ready(Some(live.body)), None),
            },
            Ok(None) => (Step::Blocked(format!("{id} does not exist")), None),
            Err(e) => (Step::Failed(e), None),
        };
    }
    match arm.apply(id, api, &r.body).await {
        Ok(ApplyOutcome::Unchanged(live)) => (Step::Ready(Some(live.body)), None),
        Ok(ApplyOutcome::Busy(_)) => (
            Step::Blocked(format!("{id} is busy with another operation")),
            None,
        ),
        Ok(ApplyOutcome::Written {
            difference,
            outcome,
        }) => {
            let repaired = |live| match &difference {
                Some(path) => Step::Repaired(format!("{id}: {path}"), live),
                None => Step::Ready(live),
            };
            match outcome {
                PutOutcome::Done(body) => (repaired(Some(body)), None),
                PutOutcome::Started(op) => match settle(arm, op.clone(), inline_wait).await {
                    Ok(true) => (
                        repaired(arm.get(id, api).await.ok().flatten().map(|l| l.body)),
                        None,
                    ),
                    Ok(false) => (Step::Running(op.clone()), Some(op)),
                    Err(e) => (Step::Failed(e), None),
                },
            }
        }
        Err(e) => (Step::Failed(e), None),
    }
}

/// One pass over `graph`, resuming `in_flight` first. A resource `known` to have matched at an
/// earlier pass, whose `changedTime` in the listing taken before this pass is the one it had
/// then, is not read again.
pub async fn converge(
    arm: &ArmClient,
    graph: &DesiredGraph,
    in_flight: &[LroState],
    mode: Mode,
    inline_wait: Duration,
    known: &Known,
) -> Convergence {
    let mut out = Convergence::default();
    let mut running: BTreeSet<String> = BTreeSet::new();
    for op in in_flight.iter().filter(|op| op.kind == LroKind::Put) {
        // Succeeded, failed (the next apply writes a Failed resource again) or forgotten by ARM
        // (the next apply reads the truth): only a running operation holds its resource back.
        if let Ok(LroStatus::Running(_)) = arm.poll(op).await {
            running.insert(op.resource_id.to_ascii_lowercase());
            out.in_flight.push(op.clone());
        }
    }
    for external in &graph.requires {
        match arm.get(external.as_str(), "2024-09-01").await {
            Ok(Some(_)) => {
                out.ready.insert(external.as_str().to_ascii_lowercase());
            }
            Ok(None) => {}
            Err(e) => out.problem(Component::FrontDoor, e.to_string()),
        }
    }
    let waves = graph.waves();
    let last = waves.iter().copied().max().unwrap_or(0);
    for wave in 0..=last {
        let due: Vec<&DesiredResource> = graph
            .resources
            .iter()
            .zip(&waves)
            .filter(|(r, w)| **w == wave && !running.contains(&key(r)))
            .map(|(r, _)| r)
            .collect();
        let (go, blocked): (Vec<&DesiredResource>, Vec<&DesiredResource>) =
            due.into_iter().partition(|r| {
                r.depends_on
                    .iter()
                    .all(|d| out.ready.contains(&d.as_str().to_ascii_lowercase()))
            });
        for r in blocked {
            let missing: Vec<&str> = r
                .depends_on
                .iter()
                .filter(|d| !out.ready.contains(&d.as_str().to_ascii_lowercase()))
                .map(|d| d.name())
                .collect();
            out.problem(
                r.component,
                format!("{} waits for {}", r.id.name(), missing.join(", ")),
            );
        }
        // Writes sharing a lock go one after another; groups run in parallel.
        let mut groups: BTreeMap<String, Vec<&DesiredResource>> = BTreeMap::new();
        for r in go {
            let lock = r
                .lock
                .as_ref()
                .map_or_else(|| key(r), |l| l.as_str().to_ascii_lowercase());
            groups.entry(lock).or_default().push(r);
        }
        let results = join_all(groups.into_values().map(|group| async move {
            let mut steps = Vec::new();
            for r in group {
                let (s, _) = step(arm, r, mode, inline_wait, known.lookup(r)).await;
                steps.push((r, s));
            }
            steps
        }))
        .await;
        for (r, s) in results.into_iter().flatten() {
            let k = key(r);
            match s {
                Step::Ready(live) => {
                    out.ready.insert(k.clone());
                    if let Some(live) = live {
                        out.live.insert(k, live);
                    }
                }
                Step::Repaired(what, live) => {
                    out.writes += 1;
                    out.repaired.push(what);
                    out.ready.insert(k.clone());
                    if let Some(live) = live {
                        out.live.insert(k, live);
                    }
                }
                Step::Running(op) => {
                    out.writes += 1;
                    out.in_flight.push(op);
                    out.problem(r.component, format!("{} is being provisioned", r.id.name()));
                }
                Step::Blocked(why) => out.problem(r.component, why),
                Step::Failed(e) => {
                    out.problem(r.component, e.to_string());
                    if e.class() == crate::azure::ErrorClass::Terminal {
                        out.terminal.push(e);
                    }
                }
            }
        }
    }
    out
}

/// Deletes the managed resources of `graph` in reverse dependency order (404 counts as gone),
/// waiting a bounded time for each. `Ok(true)` when everything is gone.
pub async fn tear_down(
    arm: &ArmClient,
    graph: &DesiredGraph,
    only: impl Fn(&DesiredResource) -> bool,
    inline_wait: Duration,
) -> Result<bool, AzureError> {
    for r in graph
        .resources
        .iter()
        .rev()
        .filter(|r| r.ownership == Ownership::Managed && only(r))
    {
        match arm.delete(r.id.as_str(), r.kind.api_version()).await? {
            DeleteOutcome::Gone => {}
            DeleteOutcome::Started(op) => {
                if !settle(arm, op, inline_wait).await? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// Whether an object's last full check still holds.
#[derive(Debug)]
pub enum Freshness {
    /// The plan and the group listing are as they were at the last full check: nothing to do.
    Verified,
    /// A full pass is due; the fingerprint to record if it converges (taken before the pass, so
    /// a change made during the pass shows up at the next resync), and the listing's
    /// `changedTime` per resource of the graph.
    Stale(Option<String>, Changed),
}

/// Lower-case resource id → the `changedTime` that covers it in its group's listing (its own,
/// or that of the tracked ancestor a proxy child rolls up to).
pub type Changed = BTreeMap<String, String>;

/// Kinds whose live body the reconcilers read for status (addresses, aliases, subnets, routes):
/// kept by `Known`; for the rest, knowing they matched is enough.
const BODY_KEPT: [ResourceKind; 8] = [
    ResourceKind::VirtualNetwork,
    ResourceKind::RouteTable,
    ResourceKind::PublicIpAddress,
    ResourceKind::AzureFirewall,
    ResourceKind::PrivateLinkService,
    ResourceKind::PrivateEndpoint,
    ResourceKind::FrontDoorEndpoint,
    ResourceKind::FrontDoorOrigin,
];

/// What the passes of one object learned: per resource, the `changedTime` at which it matched
/// (and its body, for the kinds status reads), to skip reading it while it stays unchanged.
/// Kept only while the object converges.
#[derive(Debug, Default, Clone)]
pub struct Known {
    changed: Changed,
    matched: BTreeMap<String, (String, Option<String>)>,
}

impl Known {
    /// What `previous` passes learned, valid against the listing `changed` taken now.
    pub fn new(previous: Option<Known>, changed: Changed) -> Known {
        Known {
            matched: previous.map(|p| p.matched).unwrap_or_default(),
            changed,
        }
    }

    /// `Some(body)` when `r` matched at a `changedTime` the listing still shows.
    fn lookup(&self, r: &DesiredResource) -> Option<Option<Value>> {
        let id = key(r);
        let now = self.changed.get(&id).filter(|t| !t.is_empty())?;
        let (then, body) = self.matched.get(&id)?;
        if then != now {
            return None;
        }
        Some(body.as_deref().and_then(|b| serde_json::from_str(b).ok()))
    }

    /// Learns from a pass: what is ready matched at the `changedTime` listed before it. (A
    /// resource written during the pass has a later one, so it is read again next time.)
    pub fn learn(&mut self, graph: &DesiredGraph, pass: &Convergence) {
        for r in &graph.resources {
            let id = key(r);
            match (pass.ready.contains(&id), self.changed.get(&id)) {
                (true, Some(t)) if !t.is_empty() => {
                    let body = BODY_KEPT
                        .contains(&r.kind)
                        .then(|| pass.live.get(&id).map(Value::to_string))
                        .flatten();
                    self.matched.insert(id, (t.clone(), body));
                }
                _ => {
                    self.matched.remove(&id);
                }
            }
        }
    }
}

/// FNV-1a, 64 bit: stable across processes, so a restarted operator trusts a recorded check.
fn fnv1a64(hash: u64, input: &str) -> u64 {
    input.bytes().fold(hash, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A hash stable across processes and releases.
pub fn stable_hash(input: &str) -> u64 {
    fnv1a64(FNV_OFFSET, input)
}

/// Hash of what the graph asks for.
fn graph_hash(graph: &DesiredGraph) -> u64 {
    graph.resources.iter().fold(FNV_OFFSET, |h, r| {
        let h = fnv1a64(h, r.id.as_str());
        let h = fnv1a64(h, &format!("{:?}", r.ownership));
        fnv1a64(h, &r.body.to_string())
    })
}

/// The fingerprint of `graph` in Azure: the graph's hash and the `changedTime` of each of its
/// resources (or of the tracked ancestor a proxy child rolls up to) in the listing of their
/// resource groups — one read per group, usually one per object.
/// A listing up to `max_age` old may be reused (see `ArmClient::list_group_recent`).
pub async fn fingerprint(
    arm: &ArmClient,
    graph: &DesiredGraph,
    max_age: Duration,
) -> Result<String, AzureError> {
    listed(arm, graph, max_age).await.map(|(f, _)| f)
}

/// The fingerprint, and the `changedTime` covering each resource of the graph.
pub async fn listed(
    arm: &ArmClient,
    graph: &DesiredGraph,
    max_age: Duration,
) -> Result<(String, Changed), AzureError> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut groups: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &graph.resources {
        groups.insert((
            r.id.subscription().to_ascii_lowercase(),
            r.id.resource_group_name().to_ascii_lowercase(),
        ));
        let mut id = Some(r.id.clone());
        while let Some(current) = id {
            wanted.insert(key_of(current.as_str()));
            id = current.parent();
        }
    }
    let mut hash = graph_hash(graph);
    let mut by_id: Changed = BTreeMap::new();
    for (subscription, group) in groups {
        let mut listed: Vec<(String, String)> = arm
            .list_group_recent(&subscription, &group, max_age)
            .await?
            .into_iter()
            .filter_map(|e| {
                let id = key_of(e["id"].as_str()?);
                let changed = e["changedTime"].as_str().unwrap_or_default().to_string();
                wanted.contains(&id).then_some((id, changed))
            })
            .collect();
        listed.sort();
        hash = fnv1a64(hash, &group);
        for (id, changed) in listed {
            hash = fnv1a64(fnv1a64(hash, &id), &changed);
            by_id.insert(id, changed);
        }
    }
    let mut changed = Changed::new();
    for r in &graph.resources {
        let mut id = Some(r.id.clone());
        while let Some(current) = id {
            if let Some(t) = by_id.get(&key_of(current.as_str())) {
                changed.insert(key(r), t.clone());
                break;
            }
            id = current.parent();
        }
    }
    Ok((format!("{hash:016x}"), changed))
}

fn key_of(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Decides whether a full pass is due. `settled`: the status describes the current generation,
/// is Ready and has nothing in flight. A recorded check older than `max_age` is redone anyway
/// (the safety net for any change a listing cannot show).
pub async fn freshness(
    arm: &ArmClient,
    graph: &DesiredGraph,
    recorded: Option<&crate::api::Verification>,
    settled: bool,
    max_age: Duration,
    listing_age: Duration,
) -> Freshness {
    let (current, changed) = match listed(arm, graph, listing_age).await {
        Ok(found) => found,
        // Without a listing, read every resource: correctness before thrift.
        Err(_) => return Freshness::Stale(None, Changed::new()),
    };
    let young = recorded
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v.at).ok())
        .is_some_and(|at| {
            let age = chrono::Utc::now().signed_duration_since(at);
            age.to_std().is_ok_and(|age| age < max_age)
        });
    match recorded {
        Some(v) if settled && young && v.fingerprint == current => Freshness::Verified,
        _ => Freshness::Stale(Some(current), changed),
    }
}
