//! Converging Azure to a desired graph: resume operations still in flight, then apply resources
//! wave by wave (independent ones in parallel, writes sharing a lock one after another), waiting
//! a bounded time for each operation and handing back what is still running so it can be
//! persisted in status and resumed — never started twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::azure::{
    with_patience, with_priority, ApplyOutcome, ArmClient, AzureError, DeleteOutcome, ListingAge,
    LroKind, LroState, LroStatus, PutOutcome,
};
use crate::plan::{Component, DesiredGraph, DesiredResource, Ownership, ResourceKind};

use super::contents;

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
    /// Drift repaired, or whose repair was written (`id: path`).
    pub repaired: Vec<String>,
    /// Whether any problem is an Azure refusal that retrying will not fix soon.
    pub terminal: Vec<AzureError>,
    /// Whether something other than this object's own running operations holds it back (a
    /// resource another object provides, a lock another operation holds, an error): then only
    /// looking again tells when it moves, not the end of an operation.
    pub held_by_others: bool,
    /// Whether something the graph requires, which another object provides (the subnet a set
    /// uses, the origin group a stamp joins), is missing.
    pub awaits_required: bool,
    /// Ids (lower case) of resources written and seen to match within this pass.
    pub written: BTreeSet<String>,
    /// Ids (lower case) of resources this pass wrote, or whose operation, started by an
    /// earlier pass, it found ended: what this operator itself may have moved in the listing.
    pub touched: BTreeSet<String>,
    /// The operations this pass started, by poll URL, with the hash of the body each writes.
    pub started: BTreeMap<String, u64>,
    /// Ids (lower case) of resources Azure changes as a side effect of a write this pass made,
    /// started or saw end (see `DesiredResource::moves`): what was known of them before does
    /// not hold.
    pub moved: BTreeSet<String>,
    /// Ids (lower case) of resources this pass wrote, or started writing, where the listing
    /// showed nothing: their proxy children cannot exist unless this operator writes them.
    pub created: BTreeSet<String>,
    /// The typical seconds of the longest chain of resources neither ready nor being written
    /// (see `DesiredGraph::tails`): how much the object's next pass can hold its completion
    /// back, and so how urgent it is (see `slots`).
    pub unstarted_tail: u32,
    /// Writes not sent because the budget would have held the pass (see `with_patience`): the
    /// longest wait it foresaw, when the next pass should come.
    pub deferred: Option<Duration>,
    /// Poll URLs of the operations of earlier passes that this pass polled and found running:
    /// their Retry-After did not tell their end, so their watchers poll (see `Wakeups::after`).
    pub polled: BTreeSet<String>,
    /// Ids of what the owner created that left the spec, deleted by this pass (see
    /// `lifecycle`).
    pub removed: Vec<String>,
    /// Ids of what left the spec that is still being deleted: the object is not converged
    /// until they are gone.
    pub removing: Vec<String>,
    /// Why removing what left the spec failed.
    pub removal_error: Option<String>,
    /// Per resource (lower-case id), a write Azure refused in this pass — its operation ended
    /// `Failed` (or an earlier pass's, found failed now), or the request itself was refused
    /// for good (a policy's 403, a 400) — with the hash of the body it wanted.
    pub failed_writes: BTreeMap<String, (u64, AzureError)>,
    /// The soonest a resource held back after a refusal may be written again (see
    /// `RETRY_FAILED_WRITE`): looking sooner would only hold it back again.
    pub held_for: Option<Duration>,
    /// Per resource read in full (see `contents`), the digest of what this pass read of it, or
    /// what an earlier pass read when it matched (`Known`).
    pub digests: BTreeMap<String, String>,
}

impl Convergence {
    /// Whether every resource of the graph is ready.
    pub fn complete(&self, graph: &DesiredGraph) -> bool {
        graph.resources.iter().all(|r| self.ready.contains(&key(r)))
    }

    /// Whether all that keeps the object from converging is its own running operations, whose
    /// ends wake it (`Wakeups`), or — when `requirements_followed` — what it requires of the
    /// objects it follows, whose changes wake it (`follow`): looking again before then would
    /// read nothing new.
    pub fn waits_only_on_wakeups(&self, requirements_followed: bool) -> bool {
        let waiting = !self.in_flight.is_empty() || self.awaits_required;
        let woken = !self.awaits_required || requirements_followed;
        waiting && woken && !self.held_by_others && self.terminal.is_empty()
    }

    /// Records that removing what left the spec failed: the object is held back until it
    /// succeeds.
    pub fn removal_failed(&mut self, why: String) {
        self.held_by_others = true;
        self.removal_error.get_or_insert(why);
    }

    /// The `Removal` condition: what left the spec and is still being removed.
    pub fn removal_verdict(&self) -> super::conditions::Verdict {
        use super::conditions::Verdict;
        match (&self.removal_error, self.removing.as_slice()) {
            (Some(why), _) => Verdict::not("Removal", "RemovalFailed", why.clone()),
            (None, []) => Verdict::ok(
                "Removal",
                "NothingLeft",
                "nothing the spec dropped is left in Azure",
            ),
            (None, ids) => Verdict::not(
                "Removal",
                "Removing",
                format!("removing what left the spec: {}", ids.join(", ")),
            ),
        }
    }

    /// Whether what depends on `id` may be looked at: `id` is ready, or, when only reading,
    /// exists though it drifted (reading what depends on it harms nothing, and the checks of
    /// the live network need it).
    fn stands(&self, id: &crate::plan::ArmId, mode: Mode) -> bool {
        let k = id.as_str().to_ascii_lowercase();
        self.ready.contains(&k) || (mode == Mode::Observe && self.live.contains_key(&k))
    }

    /// The body of `id` as Azure holds it, as far as this pass knows: what it read (drift
    /// included), or the planned body where it found Azure matching the plan.
    pub fn held_body(&self, graph: &DesiredGraph, id: &str) -> Option<Value> {
        self.live_of(id).cloned().or_else(|| {
            if !self.ready.contains(&id.to_ascii_lowercase()) {
                return None;
            }
            graph
                .resources
                .iter()
                .find(|r| r.id.as_str().eq_ignore_ascii_case(id))
                .map(|r| r.body.clone())
        })
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
            Some(p) if is_progress(p) => Verdict::not(condition, "Provisioning", p.clone()),
            Some(p) => Verdict::not(condition, "AzureError", p.clone()),
        }
    }

    /// Keeps the first problem of `component`, unless an error comes after mere progress:
    /// the error is what the status should show.
    fn problem(&mut self, component: Component, message: String) {
        match self.problems.get(&component) {
            Some(seen) if !is_progress(seen) || is_progress(&message) => {}
            _ => {
                self.problems.insert(component, message);
            }
        }
    }

    /// Records that `r` was written, or its operation seen to end, and with it what it moves.
    fn touch(&mut self, r: &DesiredResource) {
        self.touched.insert(key(r));
        for m in &r.moves {
            self.touched.insert(key_of(m.as_str()));
            self.moved.insert(key_of(m.as_str()));
        }
    }

    /// Records what one step found.
    fn record(&mut self, r: &DesiredResource, s: Step) {
        let k = key(r);
        if contents::read_in_full(r.kind) {
            if let Step::Ready(Some(live)) | Step::Written(_, Some(live)) = &s {
                self.digests
                    .insert(k.clone(), contents::digest(r.kind, live));
            }
        }
        match s {
            Step::Known(live) | Step::Ready(live) => {
                self.ready.insert(k.clone());
                if let Some(live) = live {
                    self.live.insert(k, live);
                }
            }
            Step::Written(repaired, live) => {
                self.repaired.extend(repaired);
                self.written.insert(k.clone());
                self.touch(r);
                self.ready.insert(k.clone());
                if let Some(live) = live {
                    self.live.insert(k, live);
                }
            }
            Step::Running(op, repairing) => {
                // Told when the write goes out: its operation may outlast this pass.
                self.repaired.extend(repairing);
                self.moved
                    .extend(r.moves.iter().map(|m| key_of(m.as_str())));
                self.started.insert(op.poll_url.clone(), body_hash(r));
                self.in_flight.push(op);
                self.problem(r.component, being_provisioned(r));
            }
            Step::Blocked(why) => {
                self.held_by_others = true;
                self.problem(r.component, why);
            }
            Step::Drifted(why, live) => {
                self.held_by_others = true;
                self.problem(r.component, why);
                self.live.insert(k, live);
            }
            Step::Failed(AzureError::Deferred(wait)) => {
                self.deferred = Some(self.deferred.map_or(wait, |w| w.max(wait)));
                self.problem(
                    r.component,
                    format!("{} {}", r.id.name(), AzureError::Deferred(wait)),
                );
            }
            Step::Failed(e) => {
                // Refused for good: written again only after a backoff (or with another body),
                // not at every look.
                // (A conflict Azure means as transient — `AnotherOperationInProgress`, a
                // `RetryableError` — is written again at the next look.)
                if e.class() == crate::azure::ErrorClass::Terminal {
                    self.failed_writes.insert(k, (body_hash(r), e.clone()));
                }
                self.held_by_others = true;
                self.problem(r.component, e.to_string());
                if e.class() == crate::azure::ErrorClass::Terminal {
                    self.terminal.push(e);
                }
            }
            Step::HeldAfterFailure(e, left) => {
                self.held_by_others = true;
                self.held_for = Some(self.held_for.map_or(left, |h| h.min(left)));
                self.problem(
                    r.component,
                    format!(
                        "{e} (written again in {}s at the earliest)",
                        left.as_secs().max(1)
                    ),
                );
                if e.class() == crate::azure::ErrorClass::Terminal {
                    self.terminal.push(e);
                }
            }
        }
    }
}

/// Hash of the body `r` asks for.
pub fn body_hash(r: &DesiredResource) -> u64 {
    fnv1a64(FNV_OFFSET, &r.body.to_string())
}

fn being_provisioned(r: &DesiredResource) -> String {
    format!("{} is being provisioned", r.id.name())
}

/// Whether a problem only says that work is under way (not that something went wrong).
fn is_progress(problem: &str) -> bool {
    problem.contains("being provisioned")
        || problem.contains("waits for")
        || problem.contains("busy")
}

pub(super) fn key(r: &DesiredResource) -> String {
    r.id.as_str().to_ascii_lowercase()
}

enum Step {
    /// Matched at an earlier pass, and unchanged since.
    Known(Option<Value>),
    Ready(Option<Value>),
    /// Written and matching now (`Some(path)`: drift repaired at `path`).
    Written(Option<String>, Option<Value>),
    /// Its write is running (`Some(path)`: drift being repaired at `path`).
    Running(LroState, Option<String>),
    Blocked(String),
    /// Differs from the plan and is not written (writes are off): what Azure holds, kept for
    /// the checks that judge the live network.
    Drifted(String, Value),
    Failed(AzureError),
    /// Not written: the same body's last operation failed, and its backoff has not passed.
    HeldAfterFailure(AzureError, Duration),
}

/// What this process already knows of an operation an earlier pass started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// Its watcher is waiting for it: it was running at its last poll.
    Running,
    /// Its watcher saw it succeed: the resource is as the pass that started it wrote it — the
    /// body with this hash.
    Succeeded(u64),
    /// Its watcher slept until Azure said it would be done and left the news to the group
    /// listing the pass takes anyway (see `Known::ended_as_listed`): the hash of the body it
    /// writes, when this process started it.
    Due(Option<u64>),
    /// Not watched here (a restart, a failure): the listing, or else a poll, tells.
    Unknown,
}

/// A resource whose operation, started by an earlier pass, succeeded: written and matching, as
/// when a pass sees its own operation end. Only the kinds status reads are read back.
async fn finished(arm: &ArmClient, r: &DesiredResource) -> Step {
    let live = if BODY_KEPT.contains(&r.kind) {
        match arm.get(r.id.as_str(), r.kind.api_version()).await {
            Ok(Some(live)) => Some(live.body),
            // Deleted since: the next pass writes it again.
            Ok(None) => return Step::Blocked(format!("{} is gone again", r.id.name())),
            Err(e) => return Step::Failed(e),
        }
    } else {
        None
    };
    Step::Written(None, live)
}

/// Waits up to `inline_wait` for `op`; `Ok(false)` when it is still running then. An operation
/// Azure asked to be polled only after that is not waited for at all: the reconcile would only
/// sleep in its slot, and the operation's watcher wakes the object when it ends.
pub(super) async fn settle(
    arm: &ArmClient,
    op: LroState,
    inline_wait: Duration,
) -> Result<bool, AzureError> {
    if arm.poll_due_in(&op) > inline_wait {
        return Ok(false);
    }
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
    absent: bool,
) -> Step {
    let api = r.kind.api_version();
    let id = r.id.as_str();
    if let Some(body) = known {
        // Matched at a previous pass, and the listing shows no change since.
        return Step::Known(body);
    }
    let writes = r.ownership == Ownership::Managed && mode == Mode::Manage;
    if absent && !writes {
        return Step::Blocked(format!("{id} does not exist"));
    }
    if r.ownership == Ownership::Observed || mode == Mode::Observe {
        return match arm.get(id, api).await {
            Ok(Some(live)) => match (
                r.ownership,
                crate::azure::diff::first_difference(&r.body, &live.body),
            ) {
                (Ownership::Managed, Some(path)) => Step::Drifted(
                    format!("{id} drifted at {path} (not repaired: writes are off)"),
                    live.body,
                ),
                _ => Step::Ready(Some(live.body)),
            },
            Ok(None) => Step::Blocked(format!("{id} does not exist")),
            Err(e) => Step::Failed(e),
        };
    }
    // What the listing shows missing is created without reading it first.
    let applied = if absent {
        arm.put(id, api, &r.body, None)
            .await
            .map(|outcome| ApplyOutcome::Written {
                difference: None,
                outcome,
            })
    } else {
        arm.apply(id, api, &r.body).await
    };
    match applied {
        Ok(ApplyOutcome::Unchanged(live)) => Step::Ready(Some(live.body)),
        Ok(ApplyOutcome::Busy(_)) => Step::Blocked(format!("{id} is busy with another operation")),
        Ok(ApplyOutcome::Written {
            difference,
            outcome,
        }) => {
            let repaired = difference.map(|path| format!("{id}: {path}"));
            match outcome {
                PutOutcome::Done(body) => Step::Written(repaired, Some(body)),
                PutOutcome::Started(op) => match settle(arm, op.clone(), inline_wait).await {
                    // Only the kinds status reads are read back.
                    Ok(true) => {
                        let live = if BODY_KEPT.contains(&r.kind) {
                            arm.get(id, api).await.ok().flatten().map(|l| l.body)
                        } else {
                            None
                        };
                        Step::Written(repaired, live)
                    }
                    Ok(false) => Step::Running(op, repaired),
                    Err(e) => Step::Failed(e),
                },
            }
        }
        Err(e) => Step::Failed(e),
    }
}

/// One pass over `graph`, resuming `in_flight` first. A resource `known` to have matched at an
/// earlier pass, whose `changedTime` in the listing taken before this pass is the one it had
/// then, is not read again.
pub async fn converge(
    arm: &ArmClient,
    graph: &DesiredGraph,
    in_flight: &[LroState],
    watched: impl Fn(&LroState) -> Watched,
    mode: Mode,
    inline_wait: Duration,
    known: &Known,
) -> Convergence {
    let mut out = Convergence::default();
    // Resources an earlier pass's operation is still writing, or has written.
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut succeeded: BTreeSet<String> = BTreeSet::new();
    for op in in_flight.iter().filter(|op| op.kind == LroKind::Put) {
        // Succeeded, failed (the next apply writes a Failed resource again) or forgotten by ARM
        // (the next apply reads the truth): only a running operation holds its resource back.
        // What this process's watcher saw needs no poll.
        let id = op.resource_id.to_ascii_lowercase();
        let status = match watched(op) {
            // The listing shows the resource written since the operation began, and no longer
            // being written: it ended as well as a poll would say.
            Watched::Due(hash) if known.ended_as_listed(op) => {
                hash.map_or(Watched::Unknown, Watched::Succeeded)
            }
            Watched::Unknown if known.ended_as_listed(op) => Watched::Unknown,
            Watched::Due(_) | Watched::Unknown => match arm.poll(op).await {
                Ok(LroStatus::Running(_)) => {
                    out.polled.insert(op.poll_url.clone());
                    Watched::Running
                }
                // Told, not forgotten: a failed operation read as "unknown" would be written
                // again at once, for ever, with no error in status.
                Ok(LroStatus::Failed { code, message }) => {
                    if let Some(r) = graph.resources.iter().find(|r| key(r) == id) {
                        let e = AzureError::OperationFailed {
                            resource: op.resource_id.clone(),
                            code,
                            message,
                        };
                        // A conflict Azure means as transient is written again at once.
                        if e.class() == crate::azure::ErrorClass::Terminal {
                            out.failed_writes.insert(id.clone(), (body_hash(r), e));
                        }
                    }
                    Watched::Unknown
                }
                _ => Watched::Unknown,
            },
            seen => seen,
        };
        let desired = graph.resources.iter().find(|r| key(r) == id);
        match (status, desired) {
            (Watched::Running, _) => {}
            (_, Some(r)) => out.touch(r),
            (_, None) => {
                out.touched.insert(id.clone());
            }
        }
        match status {
            Watched::Running => {
                if let Some(r) = desired {
                    out.problem(r.component, being_provisioned(r));
                }
                running.insert(id);
                out.in_flight.push(op.clone());
            }
            // Still what is wanted (the spec may have changed while it ran): as written.
            Watched::Succeeded(hash)
                if mode == Mode::Manage
                    && graph
                        .resources
                        .iter()
                        .any(|r| key(r) == id && body_hash(r) == hash) =>
            {
                succeeded.insert(id);
            }
            _ => {}
        }
    }
    for external in &graph.requires {
        // The listing of its group, read for this pass anyway, usually tells.
        match known.exists(external) {
            Some(true) => {
                out.ready.insert(external.as_str().to_ascii_lowercase());
                continue;
            }
            Some(false) => {
                out.awaits_required = true;
                continue;
            }
            None => {}
        }
        let api_version = ResourceKind::api_version_of(external);
        match arm
            .exists_recent(external.as_str(), api_version, known.required_age)
            .await
        {
            Ok(true) => {
                out.ready.insert(external.as_str().to_ascii_lowercase());
            }
            Ok(false) => out.awaits_required = true,
            Err(e) => {
                out.held_by_others = true;
                out.problem(Component::FrontDoor, e.to_string());
            }
        }
    }
    // Each resource starts the moment what it depends on is ready, not when a whole wave is:
    // a firewall taking minutes does not hold back the Private Link Service's chain. Writes
    // sharing a lock go one after another.
    let mut waiting: Vec<&DesiredResource> = graph
        .resources
        .iter()
        .filter(|r| !running.contains(&key(r)))
        .collect();
    // What an ended operation changed besides its own resource is read, not taken as known.
    let stale = out.moved.clone();
    // When the subscription's budget runs short, what holds the graph back longest goes first.
    let tails = graph.tails();
    let priority = |r: &DesiredResource| tails.get(&key(r)).copied().unwrap_or(0);
    let mut locks_held: BTreeSet<String> = BTreeSet::new();
    // Written without a read, as the listing showed them absent.
    let mut blind: BTreeSet<String> = BTreeSet::new();
    let mut active: FuturesUnordered<BoxFuture<'_, (&DesiredResource, Option<String>, Step)>> =
        FuturesUnordered::new();
    loop {
        let mut i = 0;
        while i < waiting.len() {
            let r = waiting[i];
            let lock = r
                .lock
                .as_ref()
                .map_or_else(|| key(r), |l| l.as_str().to_ascii_lowercase());
            let deps_ready = r.depends_on.iter().all(|d| out.stands(d, mode));
            if succeeded.contains(&key(r)) {
                // Exists as written: what it depends on was ready when it was written.
                waiting.remove(i);
                let read = with_priority(priority(r), finished(arm, r));
                active.push(Box::pin(async move { (r, None, read.await) }));
            } else if let Some((e, left)) = out
                .failed_writes
                .get(&key(r))
                .filter(|(hash, _)| *hash == body_hash(r) && mode == Mode::Manage)
                .map(|(_, e)| (e.clone(), RETRY_FAILED_WRITE.0))
                .or_else(|| known.held_after_failure(r).filter(|_| mode == Mode::Manage))
            {
                // Its operation just failed, or failed within its backoff: not written again.
                waiting.remove(i);
                out.record(r, Step::HeldAfterFailure(e, left));
            } else if deps_ready && !locks_held.contains(&lock) {
                locks_held.insert(lock.clone());
                waiting.remove(i);
                let matched = if stale.contains(&key(r)) {
                    None
                } else {
                    known.lookup(r)
                };
                let absent = known.absent(&r.id);
                if absent {
                    blind.insert(key(r));
                }
                let matched = matched
                    .or_else(|| known.read_as_wanted(r).filter(|_| !stale.contains(&key(r))));
                let s = with_priority(
                    priority(r),
                    with_patience(
                        inline_wait,
                        step(arm, r, mode, inline_wait, matched, absent),
                    ),
                );
                active.push(Box::pin(async move { (r, Some(lock), s.await) }));
            } else {
                i += 1;
            }
        }
        let Some((r, lock, s)) = active.next().await else {
            break;
        };
        if let Some(lock) = lock {
            locks_held.remove(&lock);
        }
        if matches!(s, Step::Known(_)) && contents::read_in_full(r.kind) {
            if let Some(d) = known.digest_of(r) {
                out.digests.insert(key(r), d.clone());
            }
        }
        out.record(r, s);
    }
    let started_now: BTreeSet<String> = out
        .in_flight
        .iter()
        .filter(|op| out.started.contains_key(&op.poll_url))
        .map(|op| op.resource_id.to_ascii_lowercase())
        .collect();
    out.created = blind
        .into_iter()
        .filter(|id| out.written.contains(id) || started_now.contains(id))
        .collect();
    out.unstarted_tail = unstarted_tail(graph, &tails, &out);
    for r in waiting {
        let missing: Vec<&str> = r
            .depends_on
            .iter()
            .filter(|d| !out.stands(d, mode))
            .map(|d| d.name())
            .collect();
        out.problem(
            r.component,
            format!("{} waits for {}", r.id.name(), missing.join(", ")),
        );
    }
    out
}

/// The longest of `tails` among the resources of `graph` the pass `out` neither found ready
/// nor left being written.
fn unstarted_tail(graph: &DesiredGraph, tails: &BTreeMap<String, u32>, out: &Convergence) -> u32 {
    let being_written: BTreeSet<String> = out
        .in_flight
        .iter()
        .map(|op| op.resource_id.to_ascii_lowercase())
        .collect();
    graph
        .resources
        .iter()
        .filter(|r| !out.ready.contains(&key(r)) && !being_written.contains(&key(r)))
        .map(|r| tails.get(&key(r)).copied().unwrap_or(0))
        .max()
        .unwrap_or(0)
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
    /// `rechecked`: the listing's fingerprint, when only parents other objects own had moved
    /// and reading this graph's resources under them found them as wanted; a later listing
    /// with that fingerprint needs no second look.
    Verified { rechecked: Option<String> },
    /// A full pass is due. The listing taken before it (`None` when it could not be read: then
    /// every resource is read), whose fingerprint is recorded if the pass converges without
    /// writing — a change made during the pass then shows up at the next resync.
    Stale(Option<Listing>),
}

/// Lower-case resource id → the `changedTime` that covers it in its group's listing (its own,
/// or that of its tracked ancestor for a proxy child), followed for what is read in full by
/// `CONTENT_SEPARATOR` and the digest of what it says (see `contents`).
pub type Changed = BTreeMap<String, String>;

/// What the listings of a graph's resource groups say about it.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Hash of the graph and of the `changedTime` of everything listed that it covers: two
    /// halves, what this graph's own resources say and what parents other objects own say.
    pub fingerprint: String,
    /// Per resource of the graph.
    pub changed: Changed,
    /// Per listed (tracked) resource the graph covers or requires: its own `changedTime`.
    pub tracked: Changed,
    /// The listed (tracked) resources whose `provisioningState` is `Succeeded`: no operation
    /// is writing them, and the last one succeeded.
    pub succeeded: BTreeSet<String>,
    /// The groups listed (lower-case ids), and whether each exists: what is not in `tracked`
    /// is not in them.
    pub groups: BTreeMap<String, bool>,
    /// Resources of the graph, and ids it requires, under a tracked parent another object owns
    /// (a stamp's origin under its GlobalPlane's Front Door profile): that parent's
    /// `changedTime` moves with its owner's writes (and may with every sibling's: ARM does not
    /// say), so only reading them tells whether they moved.
    pub under_shared: BTreeSet<String>,
    /// What the resources read in full said (see `contents`): per lower-case id, a digest.
    pub contents: BTreeMap<String, String>,
    /// Their bodies as read, so a pass in the same reconcile need not read them again.
    pub bodies: BTreeMap<String, crate::azure::LiveResource>,
}

impl Listing {
    /// Whether every listed resource that moved between `self` and `later` is one of `touched`
    /// (or an ancestor of one: a child's write moves its tracked parent): then the difference
    /// is this operator's own doing.
    pub fn moved_only_by(&self, later: &Listing, touched: &BTreeSet<String>) -> bool {
        let ours = |id: &str| touched.iter().any(|w| w == id || is_below(w, id));
        let same = |mine: &Changed, theirs: &Changed| {
            theirs
                .iter()
                .all(|(id, t)| mine.get(id) == Some(t) || ours(id))
        };
        same(&self.tracked, &later.tracked)
            && (self.contents.is_empty() || same(&self.contents, &later.contents))
    }
}

/// Kinds whose live body the reconcilers read for status (addresses, aliases, subnets, routes):
/// kept by `Known`; for the rest, knowing they matched is enough.
const BODY_KEPT: [ResourceKind; 9] = [
    ResourceKind::VirtualNetwork,
    ResourceKind::RouteTable,
    ResourceKind::PublicIpAddress,
    ResourceKind::AzureFirewall,
    ResourceKind::PrivateLinkService,
    ResourceKind::PrivateEndpoint,
    // Its recordSets carry the endpoint's addresses where the endpoint's customDnsConfigs are empty.
    ResourceKind::PrivateDnsZoneGroup,
    ResourceKind::FrontDoorEndpoint,
    ResourceKind::FrontDoorOrigin,
];

/// What the passes of one object learned: per resource, the `changedTime` at which it matched
/// (and its body, for the kinds status reads), to skip reading it while it stays unchanged.
/// Kept only while the object converges.
#[derive(Debug, Default, Clone)]
pub struct Known {
    listing: Listing,
    /// `changedTime` at which each resource matched; empty for one this operator wrote and saw
    /// match, whose write the next listing shows.
    matched: BTreeMap<String, (String, Option<String>)>,
    /// When the last pass ended.
    passed: Option<Instant>,
    /// Poll URLs of operations a pass saw end, while the object's cached status still lists
    /// them (the status written since has not come back through the watch yet).
    ended: BTreeSet<String>,
    /// A fingerprint accepted after reading what lies under parents other objects own (see
    /// `freshness`): kept here rather than in status, as it moves with every sibling's write.
    rechecked: Option<String>,
    /// Operations the last pass left running. The object's cached status may not list them
    /// yet (the watch lags behind the write, or the write of progress was deferred); a pass
    /// unaware of one would read its resource, find it busy and poll until it is done.
    running: Vec<LroState>,
    /// How old a read of what the graph requires (another object provides) may be.
    required_age: ListingAge,
    /// Resources the passes created where the listing showed nothing (see
    /// `Convergence::created`), while the object converges.
    created: BTreeSet<String>,
    /// What the graph requires of other objects (the origin group a stamp joins, the subnet a
    /// set uses) that the last pass found, if nothing failed in it: while the object converges,
    /// it is not read again.
    found_required: BTreeSet<String>,
    /// Writes whose operation ended `Failed`, per resource: the same body is not written
    /// again before its backoff (see `RETRY_FAILED_WRITE`).
    failed: BTreeMap<String, FailedWrite>,
    /// Per resource read in full, the digest of what a pass read when it matched (see
    /// `Convergence::digests`), while the object converges.
    digests: BTreeMap<String, String>,
}

/// A write whose operation ended `Failed`.
#[derive(Debug, Clone)]
struct FailedWrite {
    /// Hash of the body it wrote.
    hash: u64,
    /// When the failure was seen last.
    at: Instant,
    /// Failures of this body in a row.
    failures: u32,
    /// Azure's error.
    error: AzureError,
}

/// The backoff after a failed write of one body: the first, doubled per failure in a row, up to
/// the second. Azure repeats most failures (a policy refusal, an invalid reference); writing
/// the same body at every pass would only repeat them.
pub const RETRY_FAILED_WRITE: (Duration, Duration) =
    (Duration::from_secs(30), Duration::from_secs(600));

impl FailedWrite {
    /// How long until the same body may be written again; `None` once it may.
    fn left(&self) -> Option<Duration> {
        let (base, cap) = RETRY_FAILED_WRITE;
        let backoff = base
            .saturating_mul(2u32.saturating_pow(self.failures.saturating_sub(1).min(16)))
            .min(cap);
        backoff
            .checked_sub(self.at.elapsed())
            .filter(|d| !d.is_zero())
    }
}

impl Known {
    /// What `previous` passes learned, valid against `listing` taken now. A resource written
    /// at the last pass takes the `changedTime` this listing shows: the write was the last
    /// change this operator knows of. (Another writer in the moment between our write and
    /// this listing would go unseen until the periodic full check.)
    pub fn new(previous: Option<Known>, listing: Listing, required_age: ListingAge) -> Known {
        let (mut matched, ended, rechecked, running, created, found_required, failed, digests) =
            previous
                .map(|p| {
                    (
                        p.matched,
                        p.ended,
                        p.rechecked,
                        p.running,
                        p.created,
                        p.found_required,
                        p.failed,
                        p.digests,
                    )
                })
                .unwrap_or_default();
        for (id, (then, _)) in &mut matched {
            if then.is_empty() {
                if let Some(now) = listing.changed.get(id) {
                    then.clone_from(now);
                }
            }
        }
        Known {
            listing,
            matched,
            passed: None,
            ended,
            rechecked,
            running,
            required_age,
            created,
            found_required,
            failed,
            digests,
        }
    }

    /// The digest of what `r` (read in full) said when it matched: as the look before this
    /// pass read it, or as the pass that matched it did.
    fn digest_of(&self, r: &DesiredResource) -> Option<&String> {
        let id = key(r);
        self.listing
            .contents
            .get(&id)
            .or_else(|| self.digests.get(&id))
    }

    /// Azure's error and the time left, when `r`'s body is the one whose last write failed
    /// within its backoff.
    fn held_after_failure(&self, r: &DesiredResource) -> Option<(AzureError, Duration)> {
        let failed = self
            .failed
            .get(&key(r))
            .filter(|f| f.hash == body_hash(r))?;
        Some((failed.error.clone(), failed.left()?))
    }

    /// The fingerprint an earlier look accepted after a recheck.
    pub fn rechecked(&self) -> Option<&str> {
        self.rechecked.as_deref()
    }

    /// Remembers that a look found `fingerprint` fine after a recheck.
    pub fn recheck_passed(&mut self, fingerprint: String) {
        self.rechecked = Some(fingerprint);
    }

    /// `in_flight` (from the object's status) with what the last pass left running, without
    /// the operations an earlier pass already saw end: a status read from a cache that lags
    /// behind the last write still lists them, and polling them again would only repeat what
    /// that pass did.
    pub fn unfinished(&mut self, mut in_flight: Vec<LroState>) -> Vec<LroState> {
        for op in std::mem::take(&mut self.running) {
            if !in_flight.iter().any(|o| o.poll_url == op.poll_url) {
                in_flight.push(op);
            }
        }
        self.ended
            .retain(|url| in_flight.iter().any(|op| op.poll_url == *url));
        in_flight
            .into_iter()
            .filter(|op| !self.ended.contains(&op.poll_url))
            .collect()
    }

    /// Remembers what `pass` left running.
    pub fn left_running(&mut self, pass: &Convergence) {
        self.running.clone_from(&pass.in_flight);
    }

    /// Remembers which of `in_flight` (what the pass was given) `pass` saw end.
    pub fn saw_end(&mut self, in_flight: &[LroState], pass: &Convergence) {
        for op in in_flight.iter().filter(|op| op.kind == LroKind::Put) {
            if !pass.in_flight.iter().any(|o| o.poll_url == op.poll_url) {
                self.ended.insert(op.poll_url.clone());
            }
        }
    }

    /// How old a listing may be to tell the next pass anything: not older than the last pass,
    /// whose own writes and operations an older one does not show (every resource would be
    /// read again), and at most `cap`.
    pub fn listing_age(&self, cap: Duration) -> Duration {
        self.passed.map_or(cap, |at| at.elapsed().min(cap))
    }

    /// Whether the listing shows that `op` (a create or update) ended well: its resource is
    /// listed as `Succeeded`, changed no earlier than the operation began. (A listing served
    /// from a cache older than the write would show the change before it, or nothing.) Only
    /// listed resources tell; a proxy child needs a poll.
    pub fn ended_as_listed(&self, op: &LroState) -> bool {
        let id = key_of(&op.resource_id);
        let changed = self
            .listing
            .tracked
            .get(&id)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        // `started_at` is whole seconds, taken after Azure accepted the write.
        let began = i64::try_from(op.started_at)
            .unwrap_or(i64::MAX)
            .saturating_sub(1);
        op.kind == LroKind::Put
            && self.listing.succeeded.contains(&id)
            && changed.is_some_and(|t| t.timestamp() >= began)
    }

    /// What the listing says of `id`'s existence: `Some(true)` when it is listed, `Some(false)`
    /// when its group was listed without it or without the tracked resource it belongs to,
    /// `None` when only a read can tell (a proxy child of a listed resource, an unlisted group).
    fn exists(&self, id: &crate::plan::ArmId) -> Option<bool> {
        let group = group_key(id.subscription(), id.resource_group_name());
        let group_exists = *self.listing.groups.get(&group)?;
        if !group_exists || key_of(id.as_str()) == group {
            return Some(group_exists);
        }
        let mut current = Some(id.clone());
        while let Some(c) = current {
            if self.listing.tracked.contains_key(&key_of(c.as_str())) {
                // Listed itself, or only an ancestor (then a read tells, unless an earlier
                // pass found it).
                let found = self.found_required.contains(&key_of(id.as_str()));
                return (c == *id || found).then_some(true);
            }
            current = c.parent();
        }
        Some(false)
    }

    /// Whether the listing shows that `id` does not exist, and nothing this pass writes first
    /// can have made it: it is a group the listing found missing, or a top-level resource of a
    /// group listed without it. (A child of a parent written in this pass may have come with
    /// it — a VNet's subnets do — and a proxy child is never listed: only a read tells.)
    fn absent(&self, id: &crate::plan::ArmId) -> bool {
        let group = group_key(id.subscription(), id.resource_group_name());
        let Some(&group_exists) = self.listing.groups.get(&group) else {
            return false;
        };
        let parent = id.parent();
        let id = key_of(id.as_str());
        if id == group {
            return !group_exists;
        }
        match parent {
            None => !self.listing.tracked.contains_key(&id),
            // A proxy child of what an earlier pass created, never written since: nobody but
            // this operator writes there.
            Some(parent) => {
                self.created.contains(&key_of(parent.as_str()))
                    && !self.created.contains(&id)
                    && !self.matched.contains_key(&id)
            }
        }
    }

    /// `Some(body)` when `r` matched at a `changedTime` the listing still shows (under a parent
    /// another object owns: when it matched at all).
    fn lookup(&self, r: &DesiredResource) -> Option<Option<Value>> {
        let id = key(r);
        let now = self.listing.changed.get(&id).filter(|t| !t.is_empty())?;
        let (then, body) = self.matched.get(&id)?;
        // Under a parent another object owns (a stamp's origin under its GlobalPlane's Front
        // Door profile) the `changedTime` moves with the owner's writes, and may with every
        // sibling's: while this object converges, what matched is trusted; its next full check
        // reads it again.
        let unchanged = match (
            then.split_once(CONTENT_SEPARATOR),
            now.split_once(CONTENT_SEPARATOR),
        ) {
            // Read in full: its digest tells, and its own `changedTime` when it is listed
            // itself (its tags); a parent's `changedTime` (a child's) says nothing of it.
            (Some((then_time, then_digest)), Some((now_time, now_digest))) => {
                then_digest == now_digest
                    && (then_time == now_time || !self.listing.tracked.contains_key(&id))
            }
            // A look without contents (a converging object's): the time tells what it can,
            // and the check at the end of convergence reads the rest (`verified_fingerprint`).
            (Some((then_time, _)), None) => {
                then_time == now || self.listing.under_shared.contains(&id)
            }
            _ => then == now || self.listing.under_shared.contains(&id),
        };
        if !unchanged {
            return None;
        }
        Some(body.as_deref().and_then(|b| serde_json::from_str(b).ok()))
    }

    /// `Some(body)` when the look before this pass read `r` in full (see `contents`) and found
    /// it as wanted, its last operation succeeded: a second read would say the same. (One not
    /// as wanted is read again before it is written: its ETag then is the one to match.)
    fn read_as_wanted(&self, r: &DesiredResource) -> Option<Option<Value>> {
        let live = self.listing.bodies.get(&key(r))?;
        let succeeded = matches!(live.provisioning_state(), Some("Succeeded") | None);
        let wanted = r.ownership == Ownership::Observed
            || crate::azure::diff::first_difference(&r.body, &live.body).is_none();
        (succeeded && wanted).then(|| BODY_KEPT.contains(&r.kind).then(|| live.body.clone()))
    }

    /// What to keep until the next pass: when this one ended and, while the object is still
    /// converging, what matched. (The listing is taken anew then: kept for a thousand
    /// converging objects it would be most of the operator's memory. What matched is read
    /// again at a converged object's next full pass anyway.)
    pub fn between_passes(self, converged: bool) -> Known {
        let converging = |kept: BTreeSet<String>| if converged { BTreeSet::new() } else { kept };
        Known {
            listing: Listing::default(),
            matched: if converged {
                BTreeMap::new()
            } else {
                self.matched
            },
            passed: Some(Instant::now()),
            ended: self.ended,
            rechecked: self.rechecked,
            running: self.running,
            required_age: self.required_age,
            created: converging(self.created),
            found_required: converging(self.found_required),
            failed: if converged {
                BTreeMap::new()
            } else {
                self.failed
            },
            digests: if converged {
                BTreeMap::new()
            } else {
                self.digests
            },
        }
    }

    /// Learns from a pass: what is ready matched at the `changedTime` listed before it, or —
    /// written by this pass — at the one the next listing shows.
    pub fn learn(&mut self, graph: &DesiredGraph, pass: &Convergence) {
        self.created.extend(pass.created.iter().cloned());
        for r in graph
            .resources
            .iter()
            .filter(|r| contents::read_in_full(r.kind))
        {
            match pass
                .digests
                .get(&key(r))
                .filter(|_| pass.ready.contains(&key(r)))
            {
                Some(d) => self.digests.insert(key(r), d.clone()),
                None => self.digests.remove(&key(r)),
            };
        }
        self.failed.retain(|id, _| !pass.ready.contains(id));
        for (id, (hash, error)) in &pass.failed_writes {
            let failures = match self.failed.get(id) {
                Some(f) if f.hash == *hash => f.failures + 1,
                _ => 1,
            };
            self.failed.insert(
                id.clone(),
                FailedWrite {
                    hash: *hash,
                    at: Instant::now(),
                    failures,
                    error: error.clone(),
                },
            );
        }
        self.found_required = if pass.held_by_others {
            BTreeSet::new()
        } else {
            graph
                .requires
                .iter()
                .map(|id| key_of(id.as_str()))
                .filter(|id| pass.ready.contains(id))
                .collect()
        };
        // What this pass wrote, started or saw end: its parents' `changedTime` moved with it.
        let ours: Vec<String> = pass
            .touched
            .iter()
            .cloned()
            .chain(
                pass.in_flight
                    .iter()
                    .map(|op| op.resource_id.to_ascii_lowercase()),
            )
            .collect();
        let parent_of_ours = |id: &str| ours.iter().any(|w| is_below(w, id));
        for r in &graph.resources {
            let id = key(r);
            // A parent whose body is not kept takes the `changedTime` the next listing shows,
            // like what was written: its children's writes moved it, not a change of its own.
            // (One whose body is kept is read again: a child may change what status reads.)
            let written =
                pass.written.contains(&id) || (!BODY_KEPT.contains(&r.kind) && parent_of_ours(&id));
            let at = if written {
                // Written, then moved again by another write of this pass: only a read tells
                // what the latter did.
                (!pass.moved.contains(&id)).then(String::new)
            } else {
                self.listing
                    .changed
                    .get(&id)
                    .filter(|t| !t.is_empty())
                    .cloned()
            };
            match (pass.ready.contains(&id), at) {
                (true, Some(t)) => {
                    let body = BODY_KEPT
                        .contains(&r.kind)
                        .then(|| pass.live.get(&id).map(Value::to_string))
                        .flatten();
                    self.matched.insert(id, (t, body));
                }
                _ => {
                    self.matched.remove(&id);
                }
            }
        }
    }
}

/// Whether lower-case id `id` names a resource below `ancestor` (a child, grandchild …).
fn is_below(id: &str, ancestor: &str) -> bool {
    id.strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('/'))
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

/// What the listings of the resource groups of `graph` say about it: the fingerprint (the
/// graph's hash, the `changedTime` of each of its resources or of a proxy child's tracked
/// ancestor, and the digests of what is read in full) and the `changedTime`s — one read per
/// group, one per collection read in full (see `contents`), usually one per
/// object. A listing as old as `age` accepts may be reused (see `ArmClient::list_group_recent`).
pub async fn listed(
    arm: &ArmClient,
    graph: &DesiredGraph,
    age: ListingAge,
    depth: Depth,
) -> Result<Listing, AzureError> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut groups: BTreeSet<(String, String)> = BTreeSet::new();
    let covered = graph.resources.iter().map(|r| &r.id);
    for id in covered.chain(&graph.requires) {
        groups.insert((
            id.subscription().to_ascii_lowercase(),
            id.resource_group_name().to_ascii_lowercase(),
        ));
        let mut current = Some(id.clone());
        while let Some(c) = current {
            wanted.insert(key_of(c.as_str()));
            current = c.parent();
        }
    }
    let own: BTreeSet<String> = graph.resources.iter().map(key).collect();
    let mut hash = graph_hash(graph);
    let mut shared_hash = FNV_OFFSET;
    let mut tracked: Changed = BTreeMap::new();
    let mut succeeded = BTreeSet::new();
    let mut listed_groups = BTreeMap::new();
    for (subscription, group) in groups {
        let listing = arm.list_group_recent(&subscription, &group, age).await?;
        let exists = listing.is_some();
        let mut found: Vec<(String, String)> = Vec::new();
        for e in listing.iter().flatten() {
            let Some(id) = e["id"]
                .as_str()
                .map(key_of)
                .filter(|id| wanted.contains(id))
            else {
                continue;
            };
            if e["provisioningState"].as_str() == Some("Succeeded") {
                succeeded.insert(id.clone());
            }
            let changed = e["changedTime"].as_str().unwrap_or_default().to_string();
            found.push((id, changed));
        }
        found.sort();
        listed_groups.insert(group_key(&subscription, &group), exists);
        hash = fnv1a64(hash, &group);
        if !exists {
            hash = fnv1a64(hash, "absent");
        }
        for (id, changed) in found {
            if own.contains(&id) {
                hash = fnv1a64(fnv1a64(hash, &id), &changed);
            } else {
                shared_hash = fnv1a64(fnv1a64(shared_hash, &id), &changed);
            }
            tracked.insert(id, changed);
        }
    }
    let covering = |id: &crate::plan::ArmId| {
        let mut current = Some(id.clone());
        while let Some(c) = current {
            let k = key_of(c.as_str());
            if tracked.contains_key(&k) {
                return Some(k);
            }
            current = c.parent();
        }
        None
    };
    let under_shared = graph
        .resources
        .iter()
        .map(|r| &r.id)
        .chain(&graph.requires)
        .filter(|id| covering(id).is_some_and(|c| !own.contains(&c)))
        .map(|id| key_of(id.as_str()))
        .collect();
    let mut changed = Changed::new();
    for r in &graph.resources {
        if r.kind == ResourceKind::ResourceGroup {
            // A group has no `changedTime` of its own in a listing; that the listing found it
            // is what this pass can know without reading it.
            if listed_groups.get(&key(r)) == Some(&true) {
                changed.insert(key(r), GROUP_LISTED.to_string());
            }
            continue;
        }
        let mut id = Some(r.id.clone());
        while let Some(current) = id {
            if let Some(t) = tracked.get(&key_of(current.as_str())) {
                changed.insert(key(r), t.clone());
                break;
            }
            id = current.parent();
        }
    }
    // What the listing cannot vouch for is read in full; its digest stands beside the
    // `changedTime`, in the entry and in the fingerprint's half it belongs to.
    let in_full: Vec<&DesiredResource> = graph
        .resources
        .iter()
        .filter(|r| {
            depth == Depth::WithContents
                && contents::read_in_full(r.kind)
                && covering(&r.id).is_some()
        })
        .collect();
    let read = contents::read(arm, &in_full, &under_shared, age).await?;
    for (id, digest) in &read.digests {
        if let Some(t) = changed.get_mut(id) {
            t.push(CONTENT_SEPARATOR);
            t.push_str(digest);
        }
        if under_shared.contains(id) {
            shared_hash = fnv1a64(fnv1a64(shared_hash, id), digest);
        } else {
            hash = fnv1a64(fnv1a64(hash, id), digest);
        }
    }
    Ok(Listing {
        fingerprint: format!("{hash:016x}{shared_hash:016x}"),
        changed,
        tracked,
        succeeded,
        groups: listed_groups,
        under_shared,
        contents: read.digests,
        bodies: read.bodies,
    })
}

/// Separates a `changedTime` from the digest of what a resource read in full says, in
/// `Listing::changed`.
const CONTENT_SEPARATOR: char = '#';

/// How deep a look goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The group listings only: a converging object's passes, which read what they have not
    /// matched yet anyway, and check what they trusted at the end (see `verified_fingerprint`).
    Listings,
    /// The listings and the resources read in full (see `contents`): a settled object's look,
    /// and the one that records a check.
    WithContents,
}

/// The fingerprint to record after a pass that converged: `after` (a look with contents taken
/// once the pass was done) when everything that moved between `before` (the look the pass
/// started from) and it is the pass's own doing, and everything read in full says what the
/// pass saw of it (a change made behind its back while it trusted an earlier match would
/// otherwise become the baseline); else `before`'s, which the next resync will not find again,
/// so it reads everything.
pub fn verified_fingerprint(before: &Listing, after: &Listing, pass: &Convergence) -> String {
    let seen_as_read = after.contents.iter().all(|(id, digest)| {
        pass.digests.get(id).is_none_or(|seen| seen == digest)
            || pass.touched.iter().any(|w| w == id || is_below(w, id))
    });
    if before.moved_only_by(after, &pass.touched) && seen_as_read {
        after.fingerprint.clone()
    } else {
        before.fingerprint.clone()
    }
}

/// What `Listing::changed` holds for a resource group that a listing found.
const GROUP_LISTED: &str = "listed";

/// The lower-case id of a resource group, as `Listing::groups` holds it.
fn group_key(subscription: &str, group: &str) -> String {
    key_of(&format!(
        "/subscriptions/{subscription}/resourcegroups/{group}"
    ))
}

fn key_of(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Decides whether a full pass is due. `settled`: the status describes the current generation,
/// is Ready and has nothing in flight. A recorded check older than `max_age` is redone anyway
/// (the safety net for any change a listing cannot show). `rechecked`: a fingerprint an
/// earlier look in this process accepted after reading what lies under parents other objects
/// own.
pub async fn freshness(
    arm: &ArmClient,
    graph: &DesiredGraph,
    recorded: Option<&crate::api::Verification>,
    settled: bool,
    max_age: Duration,
    listing_age: ListingAge,
    rechecked: Option<&str>,
) -> Freshness {
    let young = recorded
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v.at).ok())
        .is_some_and(|at| {
            let age = chrono::Utc::now().signed_duration_since(at);
            age.to_std().is_ok_and(|age| age < max_age)
        });
    let recorded = recorded.filter(|_| settled && young);
    // Only a look that may skip the pass reads contents: a pass reads what it has not matched
    // anyway, and the end of convergence checks what it trusted (`verified_fingerprint`).
    let depth = if recorded.is_some() {
        Depth::WithContents
    } else {
        Depth::Listings
    };
    let listing = match listed(arm, graph, listing_age, depth).await {
        Ok(found) => found,
        // Without a listing, read every resource: correctness before thrift.
        Err(_) => return Freshness::Stale(None),
    };
    let Some(recorded) = recorded else {
        return Freshness::Stale(Some(listing));
    };
    if recorded.fingerprint == listing.fingerprint || rechecked == Some(&listing.fingerprint) {
        return Freshness::Verified { rechecked: None };
    }
    // Only parents other objects own moved (their other children were written): what this
    // graph has under them is read, a GET each, instead of everything.
    let own_half = |f: &str| f.get(..16).map(str::to_string);
    if own_half(&recorded.fingerprint) == own_half(&listing.fingerprint)
        && still_as_wanted(arm, graph, &listing.under_shared).await
    {
        return Freshness::Verified {
            rechecked: Some(listing.fingerprint),
        };
    }
    Freshness::Stale(Some(listing))
}

/// Whether each of `ids` — resources of `graph` or ids it requires — is as a full pass would
/// leave it: a resource exists, says what is wanted and its last operation succeeded; a
/// required id exists (known without a read when a resource under it does).
async fn still_as_wanted(arm: &ArmClient, graph: &DesiredGraph, ids: &BTreeSet<String>) -> bool {
    let resources: Vec<&DesiredResource> = graph
        .resources
        .iter()
        .filter(|r| ids.contains(&key(r)))
        .collect();
    for r in &resources {
        let Ok(Some(live)) = arm.get(r.id.as_str(), r.kind.api_version()).await else {
            return false;
        };
        let succeeded = matches!(live.provisioning_state(), Some("Succeeded") | None);
        if !succeeded || crate::azure::diff::first_difference(&r.body, &live.body).is_some() {
            return false;
        }
    }
    for required in &graph.requires {
        let id = key_of(required.as_str());
        let implied = resources.iter().any(|r| is_below(&key(r), &id));
        if !ids.contains(&id) || implied {
            continue;
        }
        if !matches!(
            arm.get(required.as_str(), ResourceKind::api_version_of(required))
                .await,
            Ok(Some(_))
        ) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::PollStyle;

    fn op(url: &str) -> LroState {
        LroState {
            resource_id: format!("/subscriptions/s/resourceGroups/g/providers/x/y/{url}"),
            kind: LroKind::Put,
            poll_url: url.into(),
            style: PollStyle::AsyncOperation,
            started_at: 0,
        }
    }

    use crate::plan::ArmId;
    use serde_json::json;

    fn resource(id: &ArmId, kind: ResourceKind) -> DesiredResource {
        DesiredResource::managed(id.clone(), kind, Component::Ingress, json!({}))
    }

    /// A listing of group `g` showing each of `changed` (id, `changedTime`).
    fn listing(changed: &[(&ArmId, &str)]) -> Listing {
        let entries: Changed = changed
            .iter()
            .map(|(id, t)| (key_of(id.as_str()), t.to_string()))
            .collect();
        Listing {
            changed: entries.clone(),
            tracked: entries,
            groups: [(group_key("s", "g"), true)].into(),
            ..Default::default()
        }
    }

    fn next_pass(known: Known, listing: Listing) -> Known {
        Known::new(
            Some(known.between_passes(false)),
            listing,
            ListingAge::default(),
        )
    }

    #[test]
    fn the_urgency_a_pass_leaves_is_the_longest_chain_it_has_not_started() {
        let policy = ArmId::resource("s", "g", "Microsoft.Network/firewallPolicies", "p");
        let rules = policy.child("ruleCollectionGroups", "r");
        let firewall = ArmId::resource("s", "g", "Microsoft.Network/azureFirewalls", "f");
        let zone = ArmId::resource("s", "g", "Microsoft.Network/privateDnsZones", "z");
        let graph = DesiredGraph::new(
            vec![
                resource(&policy, ResourceKind::FirewallPolicy),
                resource(&rules, ResourceKind::RuleCollectionGroup).after([&policy]),
                resource(&firewall, ResourceKind::AzureFirewall).after([&rules]),
                resource(&zone, ResourceKind::PrivateDnsZone),
            ],
            vec![],
        )
        .unwrap();
        let tails = graph.tails();
        let mut pass = Convergence::default();
        // Nothing started: the policy's chain, 12 + 25 + 360 seconds.
        assert_eq!(unstarted_tail(&graph, &tails, &pass), 397);
        // The rules being written: the firewall is what is left to start.
        pass.ready.insert(key_of(policy.as_str()));
        pass.in_flight.push(LroState {
            resource_id: rules.as_str().into(),
            kind: LroKind::Put,
            poll_url: "https://arm/op/1".into(),
            style: crate::azure::PollStyle::AsyncOperation,
            started_at: 0,
        });
        assert_eq!(unstarted_tail(&graph, &tails, &pass), 360);
        // Only the zone left to start; then nothing.
        pass.ready.insert(key_of(firewall.as_str()));
        assert_eq!(unstarted_tail(&graph, &tails, &pass), 30);
        pass.ready.insert(key_of(zone.as_str()));
        assert_eq!(unstarted_tail(&graph, &tails, &pass), 0);
    }

    #[test]
    fn a_write_left_for_the_budget_is_progress_not_a_problem_of_others() {
        let nsg = ArmId::resource("s", "g", "Microsoft.Network/networkSecurityGroups", "n");
        let mut pass = Convergence::default();
        pass.record(
            &resource(&nsg, ResourceKind::NetworkSecurityGroup),
            Step::Failed(AzureError::Deferred(Duration::from_millis(200))),
        );
        pass.record(
            &resource(&nsg, ResourceKind::NetworkSecurityGroup),
            Step::Failed(AzureError::Deferred(Duration::from_millis(500))),
        );
        assert_eq!(pass.deferred, Some(Duration::from_millis(500)));
        assert!(!pass.held_by_others);
        assert!(pass.terminal.is_empty());
        let problem = &pass.problems[&Component::Ingress];
        assert!(is_progress(problem), "{problem}");
        assert!(!pass.ready.contains(&key_of(nsg.as_str())));
    }

    #[test]
    fn what_a_write_moves_besides_its_own_resource_is_read_again() {
        let pls = ArmId::resource("s", "g", "Microsoft.Network/privateLinkServices", "pls");
        let origin = ArmId::resource("s", "g", "Microsoft.Cdn/profiles", "afd")
            .child("originGroups", "og")
            .child("origins", "o");
        let graph = DesiredGraph::new(
            vec![
                resource(&pls, ResourceKind::PrivateLinkService),
                resource(&origin, ResourceKind::FrontDoorOrigin)
                    .after([&pls])
                    .moving(&pls),
            ],
            vec![],
        )
        .unwrap();
        let mut pass = Convergence::default();
        for r in &graph.resources {
            pass.record(r, Step::Written(None, Some(json!({}))));
        }
        assert!(pass.moved.contains(&key_of(pls.as_str())));
        let mut known = Known::new(None, listing(&[]), ListingAge::default());
        known.learn(&graph, &pass);
        // Written in the pass that also wrote the origin: the next listing's `changedTime` may
        // already carry the connection the origin opened, so it is not simply adopted.
        let known = next_pass(known, listing(&[(&pls, "t1")]));
        assert!(known.lookup(graph.get(&pls).unwrap()).is_none());
        assert!(
            known.lookup(graph.get(&origin).unwrap()).is_none(),
            "never listed"
        );
    }

    #[test]
    fn a_parent_moved_by_its_childs_write_is_not_read_again_unless_status_reads_its_body() {
        let zone = ArmId::resource("s", "g", "Microsoft.Network/privateDnsZones", "z");
        let link = zone.child("virtualNetworkLinks", "l");
        let pls = ArmId::resource("s", "g", "Microsoft.Network/privateLinkServices", "pls");
        let graph = DesiredGraph::new(
            vec![
                resource(&zone, ResourceKind::PrivateDnsZone),
                resource(&link, ResourceKind::VirtualNetworkLink).after([&zone]),
                resource(&pls, ResourceKind::PrivateLinkService),
            ],
            vec![],
        )
        .unwrap();
        let r = |id: &ArmId| graph.get(id).unwrap();
        let before = listing(&[(&zone, "t0"), (&pls, "t0")]);
        let mut known = Known::new(None, before, ListingAge::default());
        let mut pass = Convergence::default();
        pass.record(r(&zone), Step::Ready(None));
        pass.record(r(&pls), Step::Ready(Some(json!({}))));
        pass.record(r(&link), Step::Written(None, None));
        // A connection approved on the Private Link Service (a child not in the graph).
        pass.touched.insert(key_of(&format!(
            "{}/privateEndpointConnections/c",
            pls.as_str()
        )));
        known.learn(&graph, &pass);
        let known = next_pass(known, listing(&[(&zone, "t1"), (&pls, "t1")]));
        assert!(
            known.lookup(r(&zone)).is_some(),
            "the zone moved only because its link was written"
        );
        assert!(
            known.lookup(r(&pls)).is_none(),
            "the approval changed what status reads of the Private Link Service"
        );
    }

    #[test]
    fn what_matched_under_a_parent_another_object_owns_is_trusted_while_converging() {
        let origin = ArmId::resource("s", "g", "Microsoft.Cdn/profiles", "afd")
            .child("originGroups", "og")
            .child("origins", "o");
        let pls = ArmId::resource("s", "g", "Microsoft.Network/privateLinkServices", "pls");
        let graph = DesiredGraph::new(
            vec![
                resource(&origin, ResourceKind::FrontDoorOrigin),
                resource(&pls, ResourceKind::PrivateLinkService),
            ],
            vec![],
        )
        .unwrap();
        let shared = |t: &str| Listing {
            changed: [
                (key_of(origin.as_str()), t.to_string()),
                (key_of(pls.as_str()), t.to_string()),
            ]
            .into(),
            under_shared: [key_of(origin.as_str())].into(),
            ..Default::default()
        };
        let mut known = Known::new(None, shared("t0"), ListingAge::default());
        let mut pass = Convergence::default();
        for r in &graph.resources {
            pass.record(r, Step::Ready(Some(json!({}))));
        }
        known.learn(&graph, &pass);
        // The profile both origins sit under moved (its owner wrote it).
        let known = next_pass(known, shared("t1"));
        assert!(known.lookup(graph.get(&origin).unwrap()).is_some());
        assert!(known.lookup(graph.get(&pls).unwrap()).is_none());
    }

    #[test]
    fn what_another_object_provides_is_read_until_a_pass_without_failures_found_it() {
        let vnet = ArmId::resource("s", "g", "Microsoft.Network/virtualNetworks", "v");
        let subnet = vnet.child("subnets", "pe");
        let endpoint = ArmId::resource("s", "g", "Microsoft.Network/privateEndpoints", "e");
        let graph = DesiredGraph::new(
            vec![resource(&endpoint, ResourceKind::PrivateEndpoint).after([&subnet])],
            vec![subnet.clone()],
        )
        .unwrap();
        let mut known = Known::new(None, listing(&[(&vnet, "t0")]), ListingAge::default());
        assert_eq!(known.exists(&subnet), None, "only a read tells");
        let found = Convergence {
            ready: [key_of(subnet.as_str())].into(),
            ..Default::default()
        };
        known.learn(&graph, &found);
        let mut known = next_pass(known, listing(&[(&vnet, "t1")]));
        assert_eq!(known.exists(&subnet), Some(true));
        let failed = Convergence {
            ready: [key_of(subnet.as_str())].into(),
            held_by_others: true,
            ..Default::default()
        };
        known.learn(&graph, &failed);
        let known = next_pass(known, listing(&[(&vnet, "t1")]));
        assert_eq!(known.exists(&subnet), None, "read again after a failure");
    }

    #[test]
    fn a_proxy_child_of_what_this_object_created_is_known_absent_until_written() {
        let policy = ArmId::resource("s", "g", "Microsoft.Network/firewallPolicies", "p");
        let group = policy.child("ruleCollectionGroups", "platform");
        let graph = DesiredGraph::new(
            vec![
                resource(&policy, ResourceKind::FirewallPolicy),
                resource(&group, ResourceKind::RuleCollectionGroup).after([&policy]),
            ],
            vec![],
        )
        .unwrap();
        let known = Known::new(None, listing(&[]), ListingAge::default());
        assert!(known.absent(&policy), "top level, not listed");
        assert!(!known.absent(&group), "a proxy child: only a read tells");

        let mut pass = Convergence {
            created: [key_of(policy.as_str())].into(),
            ..Default::default()
        };
        pass.record(graph.get(&policy).unwrap(), Step::Written(None, None));
        let mut known = known;
        known.learn(&graph, &pass);
        let mut known = next_pass(known, listing(&[(&policy, "t1")]));
        assert!(
            known.absent(&group),
            "nobody else writes under our new policy"
        );

        let mut pass = Convergence {
            created: [key_of(group.as_str())].into(),
            ..Default::default()
        };
        pass.record(graph.get(&group).unwrap(), Step::Written(None, None));
        known.learn(&graph, &pass);
        let known = next_pass(known, listing(&[(&policy, "t2")]));
        assert!(!known.absent(&group), "written since: read as usual");
    }

    #[test]
    fn what_the_last_pass_left_running_is_resumed_though_status_does_not_list_it_yet() {
        let mut known = Known::default();
        let pass = Convergence {
            in_flight: vec![op("a"), op("b")],
            ..Default::default()
        };
        known.left_running(&pass);
        let next = |known: Known| {
            Known::new(
                Some(known.between_passes(false)),
                Listing::default(),
                ListingAge::default(),
            )
        };
        let mut known = next(known);
        let urls = |ops: Vec<LroState>| ops.into_iter().map(|o| o.poll_url).collect::<Vec<_>>();
        assert_eq!(urls(known.unfinished(vec![op("b")])), ["b", "a"]);

        // A pass that saw "a" end leaves only "b"; a lagging status still listing "a" does not
        // bring it back.
        let seen = vec![op("a"), op("b")];
        let pass = Convergence {
            in_flight: vec![op("b")],
            ..Default::default()
        };
        known.saw_end(&seen, &pass);
        known.left_running(&pass);
        let mut known = next(known);
        assert_eq!(urls(known.unfinished(vec![op("a")])), ["b"]);
    }

    /// A change made behind a converging object's back to what it had matched (and trusted
    /// since) is not taken as the baseline of its check: the next resync reads everything.
    #[test]
    fn a_check_recorded_after_convergence_never_adopts_what_the_pass_did_not_see() {
        let nsg = "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups/n";
        let before = Listing {
            fingerprint: "before".into(),
            ..Listing::default()
        };
        let after = Listing {
            fingerprint: "after".into(),
            contents: [(nsg.to_string(), "changed".to_string())].into(),
            ..Listing::default()
        };
        let mut pass = Convergence::default();
        pass.digests.insert(nsg.into(), "as-matched".into());
        assert_eq!(verified_fingerprint(&before, &after, &pass), "before");
        pass.digests.insert(nsg.into(), "changed".into());
        assert_eq!(verified_fingerprint(&before, &after, &pass), "after");
        // Written by the pass itself: its own change.
        pass.digests.insert(nsg.into(), "as-matched".into());
        pass.touched.insert(nsg.into());
        assert_eq!(verified_fingerprint(&before, &after, &pass), "after");
        // Nothing known of it (matched without a body, or written and not read back): as found.
        let quiet = Convergence::default();
        assert_eq!(verified_fingerprint(&before, &after, &quiet), "after");
    }
}
