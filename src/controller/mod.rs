//! Reconcile loops: glue between the API (`crate::api`), the planner (`crate::plan`) and the ARM
//! engine (`crate::azure`). One module per kind; status is written only here, by server-side
//! apply with one field manager.

pub mod conditions;
pub mod contents;
pub mod converge;
pub mod endpoint_set;
pub mod error;
pub mod follow;
pub mod global_plane;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod serve;
pub mod slots;
pub mod stamp;
pub mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::Controller;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::api::{GlobalPlane, InFlightOperation, PrivateEndpointSet, Stamp};
use crate::azure::{yielding_to, ArmClient, ListingAge, LroKind, LroState, PollStyle};
pub use error::{Error, Result};

/// Field manager of every status write.
pub const FIELD_MANAGER: &str = "stamp-operator";
/// Finalizer guarding Azure cleanup.
pub const FINALIZER: &str = "missioncritical.dev/azure-cleanup";

/// Settings of the reconcilers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Period of the drift resync of a converged object.
    pub resync: Duration,
    /// How soon to look again while something is provisioning.
    pub poll: Duration,
    /// How long one reconcile waits for an operation before persisting it and requeueing.
    pub inline_wait: Duration,
    /// How long a full check of every resource is trusted while the group listing is unchanged.
    pub full_check: Duration,
    /// How long a deleted stamp's Front Door origin stays disabled before it is removed.
    pub drain: Duration,
    /// Reconciles running at once, of all kinds together (see `slots`). ARM calls are bounded
    /// by the client anyway; more reconciles in flight would only wait for it, or for the CPU,
    /// while holding their plans and bodies.
    pub concurrency: u16,
    /// How often at most an object's status is written when only progress detail moved (see
    /// `without_progress`).
    pub progress_interval: Duration,
}

impl Settings {
    /// How old a shared resource-group listing may be: a small part of the resync period, so
    /// objects resyncing in the same slot share it and a change is still seen within a resync.
    pub fn listing_age(&self) -> Duration {
        (self.resync / 20).clamp(Duration::from_millis(500), Duration::from_secs(15))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(10),
            inline_wait: Duration::from_secs(5),
            full_check: Duration::from_secs(3600),
            drain: Duration::from_secs(30),
            concurrency: 16,
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    /// Kubernetes client.
    pub kube: Client,
    /// Publishes Kubernetes Events.
    pub recorder: kube::runtime::events::Recorder,
    /// ARM client (shared budget, shared breaker).
    pub arm: Arc<ArmClient>,
    /// Settings.
    pub settings: Settings,
    /// Reconcile metrics.
    pub metrics: metrics::ReconcileMetrics,
    /// Consecutive failures per object, for `error_policy`.
    pub backoff: Backoff,
    /// What the passes of each converging object learned (see `converge::Known`).
    pub known: std::sync::Mutex<std::collections::HashMap<String, converge::Known>>,
    /// When each object's status was last written by this process, and what it was (see
    /// `Context::write_pass_status`).
    pub status_written:
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, StatusDigest)>>,
    /// The controllers' watch caches, set by `run` before any reconcile: reconcilers read the
    /// stamps and sets they relate to from memory instead of listing them from the API server
    /// every time (which would cost O(objects) per reconcile).
    pub caches: std::sync::OnceLock<Caches>,
    /// Reconciles objects again when an operation they started ends.
    pub wakeups: wakeups::Wakeups,
    /// Stamps whose PrivateEndpointSets were woken since the stamp's subnets and DNS zones were
    /// last seen ready (see `stamp::wake_sets_once_built`).
    pub built: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The reconcile slots, most urgent object first.
    pub slots: slots::PassSlots,
    /// Each stamp's secret private-link request message, as read back from its origin or
    /// generated (see `stamp::request_message`).
    pub request_messages: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Resource groups found to exist before the operator, which it observes and never writes
    /// or deletes, and groups found to be its own (see `lifecycle::GroupOwners`).
    pub group_owners: lifecycle::GroupOwners,
}

/// The watch caches of the kinds the reconcilers look across.
pub struct Caches {
    /// Every Stamp.
    pub stamps: kube::runtime::reflector::Store<Stamp>,
    /// Every PrivateEndpointSet.
    pub sets: kube::runtime::reflector::Store<PrivateEndpointSet>,
    /// Every GlobalPlane.
    pub globals: kube::runtime::reflector::Store<GlobalPlane>,
}

/// The kinds with a watch cache in `Caches`.
pub trait Cached: Reconciled + 'static {
    /// This kind's cache.
    fn cache(caches: &Caches) -> &kube::runtime::reflector::Store<Self>;
}

impl Cached for Stamp {
    fn cache(caches: &Caches) -> &kube::runtime::reflector::Store<Self> {
        &caches.stamps
    }
}

impl Cached for PrivateEndpointSet {
    fn cache(caches: &Caches) -> &kube::runtime::reflector::Store<Self> {
        &caches.sets
    }
}

impl Cached for GlobalPlane {
    fn cache(caches: &Caches) -> &kube::runtime::reflector::Store<Self> {
        &caches.globals
    }
}

/// Runs `reconcile` for `obj` once a slot is free (see `slots`), on the object as the cache
/// has it then: a pass that waited must not act on what was true when it was queued.
async fn in_slot<K, Reconcile, Fut>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    reconcile: Reconcile,
) -> Result<Action>
where
    K: Cached,
    Reconcile: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action>>,
{
    let key = backoff_key(obj.as_ref());
    let slot = ctx.slots.acquire(&key, obj.meta().generation).await;
    let current = match ctx.caches.get() {
        Some(caches) => K::cache(caches).get(&ObjectRef::from_obj(obj.as_ref())),
        None => Some(obj),
    };
    match current {
        // Boxed: hundreds of reconciles wait here at once (sixteen per slot of each kind), and
        // unboxed each would carry the full size of a pass while it waits.
        Some(obj) => {
            let pass = yielding_to(ctx.slots.waiting_passes(), reconcile(obj, ctx.clone()));
            slots::holding(slot, Box::pin(pass)).await
        }
        // Gone while it waited: its deletion was seen through.
        None => Ok(Action::await_change()),
    }
}

/// Waits until `store` holds its first full listing.
///
/// `Store::wait_until_ready` wakes only one of several tasks waiting at once (it rests on a
/// oneshot receiver, which keeps the last waker): with objects already present at start-up,
/// reconciles of one kind waiting for another kind's cache could sleep for ever. Asking again
/// every few milliseconds polls it anew; once ready, it answers at once.
async fn listed_once<K>(store: &kube::runtime::reflector::Store<K>) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    loop {
        match tokio::time::timeout(Duration::from_millis(50), store.wait_until_ready()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(_)) => return Err(Error::NotStarted),
            Err(_) => {}
        }
    }
}

impl Context {
    fn caches(&self) -> Result<&Caches> {
        self.caches.get().ok_or(Error::NotStarted)
    }

    /// Every Stamp (those being deleted too), from the watch cache once it has listed them.
    pub async fn stamps(&self) -> Result<Vec<Arc<Stamp>>> {
        let store = &self.caches()?.stamps;
        listed_once(store).await?;
        Ok(store.state())
    }

    /// The Stamp `namespace/name`, from the watch cache.
    pub async fn stamp(&self, namespace: &str, name: &str) -> Result<Option<Arc<Stamp>>> {
        let store = &self.caches()?.stamps;
        listed_once(store).await?;
        Ok(store.get(&ObjectRef::new(name).within(namespace)))
    }

    /// The GlobalPlane `name`, from the watch cache.
    pub async fn global(&self, name: &str) -> Result<Option<Arc<GlobalPlane>>> {
        let store = &self.caches()?.globals;
        listed_once(store).await?;
        Ok(store.get(&ObjectRef::new(name)))
    }

    /// The PrivateEndpointSets (those being deleted too) of `namespace`, or of all.
    pub async fn sets(&self, namespace: Option<&str>) -> Result<Vec<Arc<PrivateEndpointSet>>> {
        let store = &self.caches()?.sets;
        listed_once(store).await?;
        Ok(store
            .state()
            .into_iter()
            .filter(|s| namespace.is_none_or(|ns| s.metadata.namespace.as_deref() == Some(ns)))
            .collect())
    }
}

/// Runs the three controllers until the process is stopped.
///
/// What triggers a reconcile: a change of an object's spec, finalizers or annotations (not of
/// its status, which only this operator writes: reconciling after every status write would
/// double the passes), the end of an Azure operation it started (`wakeups`), its requeue, and a
/// change of the objects it reads — a stamp's sets' specs (their DNS zones are the stamp's), a
/// set's stamp (its subnet and zones), and a GlobalPlane's stamps (their origins are in its
/// status): see `follow`.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.kube.clone();
    // A short debounce folds the bursts of events one change causes (a stamp's status, then
    // its sets' triggers) into one reconcile, without delaying the next wave of a stamp much.
    let config = || {
        // The shared slots (`in_slot`) limit the passes running at once and pick the most
        // urgent; kube-runtime only bounds how many wait for them (unbounded, every object of a
        // thousand-stamp apply waited at once, and the operator's memory grew by half).
        kube::runtime::controller::Config::default()
            .concurrency(ctx.settings.concurrency.saturating_mul(16))
            .debounce(Duration::from_millis(20))
    };
    let (mut set_follows, stamps_woken) = follow::follower(what_a_stamp_reads, |set| {
        stamp_of(set).into_iter().collect::<Vec<_>>()
    });
    let (set_store, set_stream) = trimmed_watch(
        Api::<PrivateEndpointSet>::all(client.clone()),
        move |event| set_follows.observe(event),
    );
    let sets_of_stamp = set_store.clone();
    let (mut stamp_follows_for_sets, sets_woken) =
        follow::follower(what_a_set_reads, move |stamp: &Stamp| {
            let (ns, name) = (stamp.namespace(), stamp.name_any());
            sets_of_stamp
                .state()
                .into_iter()
                .filter(|s| {
                    s.metadata.namespace == ns
                        && s.spec
                            .target
                            .stamp_ref
                            .as_ref()
                            .is_some_and(|r| r.name == name)
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        });
    let (mut stamp_follows_for_globals, globals_woken) =
        follow::follower(what_a_global_plane_reads, |stamp: &Stamp| {
            vec![ObjectRef::new(&stamp.spec.global_plane_ref.name)]
        });
    let (stamp_store, stamp_stream) =
        trimmed_watch(Api::<Stamp>::all(client.clone()), move |event| {
            stamp_follows_for_sets.observe(event);
            stamp_follows_for_globals.observe(event);
        });
    // A stamp refused for its GlobalPlane's sake (its namespace not allowed) or planned from
    // its GlobalPlane's spec is looked at again when that spec changes, not only at resync.
    let stamps_of_global = stamp_store.clone();
    let (mut global_follows_for_stamps, stamps_woken_by_globals) = follow::follower(
        what_a_stamp_reads_of_its_global,
        move |global: &GlobalPlane| {
            let name = global.name_any();
            stamps_of_global
                .state()
                .into_iter()
                .filter(|s| s.spec.global_plane_ref.name == name)
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        },
    );
    let (global_store, global_stream) =
        trimmed_watch(Api::<GlobalPlane>::all(client.clone()), move |event| {
            global_follows_for_stamps.observe(event)
        });
    let _ = ctx.caches.set(Caches {
        stamps: stamp_store.clone(),
        sets: set_store.clone(),
        globals: global_store.clone(),
    });
    let stamps = Controller::for_stream(stamp_stream, stamp_store)
        .with_config(config())
        .reconcile_on(stamps_woken)
        .reconcile_on(stamps_woken_by_globals)
        .reconcile_on(ctx.wakeups.stream::<Stamp>())
        .run(
            |o, c| in_slot(o, c, stamp::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let sets = Controller::for_stream(set_stream, set_store)
        .with_config(config())
        .reconcile_on(sets_woken)
        .reconcile_on(ctx.wakeups.stream::<PrivateEndpointSet>())
        .run(
            |o, c| in_slot(o, c, endpoint_set::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let globals = Controller::for_stream(global_stream, global_store)
        .with_config(config())
        .reconcile_on(globals_woken)
        .reconcile_on(ctx.wakeups.stream::<GlobalPlane>())
        .run(
            |o, c| in_slot(o, c, global_plane::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    futures::join!(stamps, sets, globals);
}

/// The stamp a set's endpoints go into, if any.
fn stamp_of(set: &PrivateEndpointSet) -> Option<ObjectRef<Stamp>> {
    let ns = set.namespace()?;
    let stamp = set.spec.target.stamp_ref.as_ref()?;
    Some(ObjectRef::new(&stamp.name).within(&ns))
}

/// What a stamp reads of a set: its spec (the set's DNS zones are the stamp's), and whether it
/// is going.
fn what_a_stamp_reads(set: &PrivateEndpointSet) -> u64 {
    let spec = serde_json::to_string(&set.spec).unwrap_or_default();
    let going = set.metadata.deletion_timestamp.is_some();
    converge::stable_hash(&format!("{spec}{going}"))
}

/// What a set reads of its stamp: the stamp itself (its spec, which plans the set's subnet and
/// zones; its uid, the set's owner) and whether the network and zones the set needs exist
/// (until they do, the set waits).
fn what_a_set_reads(stamp: &Stamp) -> u64 {
    let status = stamp.status.as_ref();
    let built: Vec<bool> = stamp::WHAT_SETS_NEED
        .iter()
        .map(|type_| {
            status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == *type_))
                .is_some_and(|c| c.status == "True")
        })
        .collect();
    converge::stable_hash(&format!(
        "{:?}{:?}{}{built:?}",
        stamp.metadata.uid,
        stamp.metadata.generation,
        stamp.metadata.deletion_timestamp.is_some(),
    ))
}

/// What a stamp reads of its GlobalPlane: its spec (which plans the stamp, and says whether
/// the stamp's namespace may join it), and whether it is going.
fn what_a_stamp_reads_of_its_global(global: &GlobalPlane) -> u64 {
    converge::stable_hash(&format!(
        "{:?}{:?}{}",
        global.metadata.uid,
        global.metadata.generation,
        global.metadata.deletion_timestamp.is_some()
    ))
}

/// What a GlobalPlane reads of a stamp: what it reports of the stamp's origin, and which
/// GlobalPlane the stamp joins.
fn what_a_global_plane_reads(stamp: &Stamp) -> u64 {
    let origin = global_plane::origin_of(stamp);
    let reported = serde_json::to_string(&origin).unwrap_or_default();
    let global = &stamp.spec.global_plane_ref.name;
    let going = stamp.metadata.deletion_timestamp.is_some();
    converge::stable_hash(&format!("{reported}{global}{going}"))
}

/// What a change must touch to trigger a reconcile: the spec (`metadata.generation`, which the
/// API server also bumps when deletion starts), the finalizers other than this operator's, or
/// the annotations (annotating an object is how people and GitOps tools ask for a reconcile
/// now). Adding our own finalizer, which every new object's first pass does, would otherwise
/// cost each a second pass that finds nothing new; should someone remove it by hand, the next
/// pass (at the latest the resync) puts it back.
fn spec_or_metadata<K: Resource>(obj: &K) -> Option<u64> {
    use kube::runtime::{predicates, Predicate};
    predicates::generation
        .combine(others_finalizers)
        .combine(predicates::annotations)
        .hash_property(obj)
}

/// Hash of the finalizers of `obj` other than this operator's.
fn others_finalizers<K: Resource>(obj: &K) -> Option<u64> {
    let others: Vec<&String> = obj
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
        .collect();
    Some(converge::stable_hash(&format!("{others:?}")))
}

/// A watch of `api` feeding a cache without what the reconcilers never read: managed fields and
/// kubectl's last-applied copy of the object are most of an object's size, and with thousands
/// of stamps most of the operator's memory.
///
/// `on_event` sees every event once the cache holds it: the followers of this kind (see
/// `follow`) take their news from this watch instead of one of their own.
fn trimmed_watch<K>(
    api: Api<K>,
    mut on_event: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj: &mut K| {
            obj.meta_mut().managed_fields = None;
            if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        })
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(event) = event {
                on_event(event);
            }
        })
        .applied_objects()
        .predicate_filter(spec_or_metadata, Default::default());
    (reader, stream)
}

/// Requeue after a failed reconcile, backing off exponentially per object (reset by its next
/// success): from the error's own pace (Azure's Retry-After or its class's retry, the poll
/// period for the rest) doubling up to the resync period. Work still in progress (deleting,
/// draining) is not a failure and keeps the poll pace.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let key = backoff_key(obj.as_ref());
    let base = match error.cause() {
        Error::Azure(e) => e.retry_in(),
        _ => ctx.settings.poll,
    };
    if matches!(error.cause(), Error::InProgress(_)) {
        tracing::info!(object = %key, %error, "in progress");
        return Action::requeue(ctx.settings.poll);
    }
    let failures = ctx.backoff.failed(&key);
    let wait = backoff(base, failures, ctx.settings.resync);
    tracing::warn!(object = %key, %error, kind = error.metric_label(), failures, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// `base` doubled for every failure after the first, at most `cap` (but never below `base`).
pub fn backoff(base: Duration, failures: u32, cap: Duration) -> Duration {
    let doubled = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(cap.max(base))
}

/// Identifies an object for its backoff and in logs: `kind/namespace/name`.
pub fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Consecutive failures per object.
#[derive(Default)]
pub struct Backoff(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Backoff {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u32>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    /// Counts a failure of `key`; returns how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        let mut map = self.map();
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
    /// Forgets the failures of `key` (it succeeded).
    pub fn succeeded(&self, key: &str) {
        self.map().remove(key);
    }
}

/// A status without its progress detail: the operations in flight, the conditions' messages,
/// the component conditions (only `Ready`, `Reconciling` and `Stalled` are what tools such as
/// kstatus and Flux act on), what a GlobalPlane reports of its stamps (each stamp reports it
/// too), and outputs and endpoints that appear one by one while an object provisions (all are
/// written with `Ready`). A stamp's firewall address is decisive: the next plan routes
/// through it.
fn without_progress(status: &serde_json::Value) -> serde_json::Value {
    const DECISIVE: [&str; 3] = ["Ready", "Reconciling", "Stalled"];
    const PROGRESS: [&str; 6] = [
        "inFlight",
        "stamps",
        "stampCount",
        "endpoints",
        "endpointsReady",
        "privateLinkConnection",
    ];
    let mut status = status.clone();
    if let Some(fields) = status.as_object_mut() {
        for progress in PROGRESS {
            fields.remove(progress);
        }
        if let Some(outputs) = fields
            .get_mut("outputs")
            .and_then(serde_json::Value::as_object_mut)
        {
            outputs.retain(|name, _| name == "firewallPrivateIp");
        }
        if let Some(conditions) = fields
            .get_mut("conditions")
            .and_then(serde_json::Value::as_array_mut)
        {
            conditions.retain(|c| c["type"].as_str().is_some_and(|t| DECISIVE.contains(&t)));
            for condition in conditions
                .iter_mut()
                .filter_map(serde_json::Value::as_object_mut)
            {
                condition.remove("message");
            }
        }
    }
    status
}

/// An object of one of the operator's kinds as the reconcilers read it from the cache and
/// write its status and finalizer back.
pub trait Reconciled:
    Resource<DynamicType = ()>
    + HasStatus<Status: serde::Serialize>
    + Clone
    + serde::de::DeserializeOwned
    + serde::Serialize
    + std::fmt::Debug
{
}

impl<K> Reconciled for K where
    K: Resource<DynamicType = ()>
        + HasStatus<Status: serde::Serialize>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
{
}

/// Writes `status` with server-side apply (one field manager, forced: the operator owns status).
/// Nothing is sent when the object already carries this status (a resync that finds nothing
/// new costs the API server nothing).
pub async fn write_status<K>(api: &Api<K>, obj: &K, status: &impl serde::Serialize) -> Result<()>
where
    K: Reconciled,
{
    let current = status_of(obj);
    if current.is_some() && current == serde_json::to_value(status).ok() {
        return Ok(());
    }
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingObjectKey("name"))?;
    let patch =
        json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The status `obj` carries, as JSON.
fn status_of<K: Reconciled>(obj: &K) -> Option<serde_json::Value> {
    obj.status().and_then(|s| serde_json::to_value(s).ok())
}

/// Runs one reconcile of `controller` behind the cleanup finalizer (added before the first
/// write, removed once `cleanup` succeeds), counting it in the reconcile metrics. `owner`, an
/// owner the object should have, is added in the same write as the finalizer.
pub async fn with_finalizer<K, Applied, Cleaned>(
    api: &Api<K>,
    obj: Arc<K>,
    ctx: &Context,
    controller: &'static str,
    owner: Option<OwnerReference>,
    apply: impl FnOnce(Arc<K>) -> Applied,
    cleanup: impl FnOnce(Arc<K>) -> Cleaned,
) -> Result<Action>
where
    K: Reconciled,
    Applied: std::future::Future<Output = Result<Action>>,
    Cleaned: std::future::Future<Output = Result<Action>>,
{
    use kube::runtime::finalizer::{finalizer, Event};
    let timer = ctx.metrics.start(controller);
    let key = backoff_key(obj.as_ref());
    let result = async {
        let obj = if obj.meta().deletion_timestamp.is_none() && !has_finalizer(obj.as_ref()) {
            add_finalizer(api, obj, owner).await?
        } else {
            obj
        };
        finalizer(api, FINALIZER, obj, |event| async move {
            match event {
                Event::Apply(obj) => apply(obj).await,
                Event::Cleanup(obj) => cleanup(obj).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .await;
    timer.finish(&result);
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.meta()
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// Adds the cleanup finalizer and returns the object carrying it, so the same reconcile goes
/// on to apply. (Left to the finalizer helper, the add ends the reconcile and the next one
/// waits for the watch to bring the change back; a reconcile started from the cache before
/// then would try to add it again and be refused.) The patch carries the resourceVersion it
/// starts from, so a concurrent change makes it fail instead of dropping a finalizer. It starts
/// from the cached object: usually current, and a read less for an API server that every
/// object of a large apply asks at once. Only when the cache lags (an earlier reconcile's add
/// has not come back through the watch yet) is the API server asked.
async fn add_finalizer<K>(
    api: &Api<K>,
    obj: Arc<K>,
    owner: Option<OwnerReference>,
) -> Result<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingObjectKey("name"))?;
    match patch_finalizer(api, &name, obj.as_ref(), owner.as_ref()).await {
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        done => return Ok(Arc::new(done?)),
    }
    let fresh = api.get(&name).await?;
    if has_finalizer(&fresh) || fresh.meta().deletion_timestamp.is_some() {
        return Ok(Arc::new(fresh));
    }
    Ok(Arc::new(
        patch_finalizer(api, &name, &fresh, owner.as_ref()).await?,
    ))
}

/// Adds the cleanup finalizer (and `owner`, unless already there) to `from`'s, if `from`'s
/// resourceVersion is still current.
async fn patch_finalizer<K>(
    api: &Api<K>,
    name: &str,
    from: &K,
    owner: Option<&OwnerReference>,
) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = from.meta();
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    finalizers.push(FINALIZER.to_string());
    let mut patch = json!({ "metadata": {
        "finalizers": finalizers,
        "resourceVersion": meta.resource_version,
    }});
    let mut owners = meta.owner_references.clone().unwrap_or_default();
    if let Some(owner) = owner.filter(|o| !owners.iter().any(|had| had.uid == o.uid)) {
        owners.push(owner.clone());
        patch["metadata"]["ownerReferences"] = json!(owners);
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

impl Context {
    /// Observes, rather than manages, the resource groups of `graph` that existed before the
    /// operator (see `lifecycle::observe_foreign_groups`).
    pub async fn observe_foreign_groups<K: Resource<DynamicType = ()>>(
        &self,
        graph: &mut crate::plan::DesiredGraph,
        obj: &K,
    ) -> Result<()> {
        lifecycle::observe_foreign_groups(&self.arm, &self.group_owners, graph, &owner_of(obj))
            .await
            .map_err(Error::from)
    }

    /// One convergence pass over `graph` for `obj`, resuming the operations
    /// `in_flight` in status and skipping the reads the last passes and the listing `freshness`
    /// saw made unnecessary. What it learns is kept until the object converges; when it ended,
    /// until the object is deleted.
    pub async fn converge<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        graph: &crate::plan::DesiredGraph,
        in_flight: &[InFlightOperation],
        mode: converge::Mode,
        freshness: &converge::Freshness,
    ) -> converge::Convergence {
        let listing = match freshness {
            converge::Freshness::Stale(Some(listing)) => listing.clone(),
            _ => Default::default(),
        };
        let key = &backoff_key(obj);
        let previous = self.known().remove(key);
        let kept = self.settings.listing_age();
        let age = ListingAge {
            accepted: previous.as_ref().map_or(kept, |k| k.listing_age(kept)),
            kept,
        };
        let mut known = converge::Known::new(previous, listing, age);
        let in_flight = known.unfinished(resume(in_flight));
        let mut pass = converge::converge(
            &self.arm,
            graph,
            &in_flight,
            |op| self.wakeups.watched(op),
            mode,
            self.settings.inline_wait,
            &known,
        )
        .await;
        // A full pass that built everything the spec wants also removes what the spec no
        // longer wants; a verified resync (nothing moved) has nothing new to remove.
        let full = matches!(freshness, converge::Freshness::Stale(_));
        if mode == converge::Mode::Manage
            && full
            && pass.complete(graph)
            && pass.in_flight.is_empty()
        {
            lifecycle::collect_garbage(
                &self.arm,
                graph,
                &owner_of(obj),
                age,
                self.settings.inline_wait,
                &mut pass,
            )
            .await;
        }
        for (id, (_, error)) in &pass.failed_writes {
            tracing::warn!(%id, %error, "an operation failed");
            announce(self, obj, true, "OperationFailed", error.to_string()).await;
        }
        let converged = pass.complete(graph)
            && pass.in_flight.is_empty()
            && pass.removing.is_empty()
            && pass.removal_error.is_none();
        known.learn(graph, &pass);
        known.saw_end(&in_flight, &pass);
        known.left_running(&pass);
        self.known()
            .insert(key.to_string(), known.between_passes(converged));
        self.slots
            .left(key, obj.meta().generation, pass.unstarted_tail);
        self.wakeups
            .after(&self.arm, obj, &pass.in_flight, &pass.started, &pass.polled);
        pass
    }

    /// The stamps' request messages (see `request_messages`).
    pub fn request_messages(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.request_messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn known(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, converge::Known>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets what the passes of `key` learned (it was deleted).
    pub fn forget(&self, key: &str) {
        self.known().remove(key);
        self.request_messages().remove(key);
        self.slots.forget(key);
        self.written_status().remove(key);
        self.built_lock().remove(key);
    }

    /// Records whether the object `key` is built as its followers need it; `true` the first
    /// time it is.
    pub fn newly_built(&self, key: &str, built: bool) -> bool {
        let mut seen = self.built_lock();
        if built {
            seen.insert(key.to_string())
        } else {
            seen.remove(key);
            false
        }
    }

    /// Whether a pass found the object `key` built as its followers need it (and has not found
    /// it otherwise since).
    pub fn is_built(&self, key: &str) -> bool {
        self.built_lock().contains(key)
    }

    fn built_lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the status a pass over `obj` found. What people and other controllers act on —
    /// phase, `Ready`, `Reconciling` and `Stalled`, the firewall address the next plan uses —
    /// is written at once; when only progress detail moved (see `without_progress`) it is
    /// written at most once per progress interval, and `Deferred` tells the caller when to
    /// look again to write it. Each write costs the API server a write and a watch event to
    /// every watcher, and a converging stamp ends an operation every few seconds: status writes
    /// were most of the API server's work while a hundred stamps converged. (Operations left
    /// out of status meanwhile are not lost to a restart: a resource still being written reads
    /// as busy and is not written again.) What
    /// this process wrote last is compared too: the cached object may not show it yet, and
    /// writing it again would change nothing.
    pub async fn write_pass_status<K>(
        &self,
        api: &Api<K>,
        obj: &K,
        status: &impl serde::Serialize,
    ) -> Result<StatusWrite>
    where
        K: Reconciled,
    {
        // Azure's part of the pass is done.
        let _finishing = self.slots.finishing().await;
        let key = backoff_key(obj);
        let wanted = StatusDigest::of(&serde_json::to_value(status).unwrap_or_default());
        let cached = status_of(obj).map(|s| StatusDigest::of(&s));
        let last = self.written_status().get(&key).copied();
        let same = |d: Option<StatusDigest>| d.is_some_and(|d| d.full == wanted.full);
        if same(cached) || same(last.map(|(_, d)| d)) {
            return Ok(StatusWrite::Current);
        }
        let only_progress = [cached, last.map(|(_, d)| d)]
            .into_iter()
            .flatten()
            .any(|d| d.decisive == wanted.decisive);
        let due =
            last.and_then(|(at, _)| self.settings.progress_interval.checked_sub(at.elapsed()));
        if let Some(due) = due.filter(|_| only_progress) {
            return Ok(StatusWrite::Deferred(due));
        }
        write_status(api, obj, status).await?;
        self.written_status()
            .insert(key, (std::time::Instant::now(), wanted));
        Ok(StatusWrite::Current)
    }

    fn written_status(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<String, (std::time::Instant, StatusDigest)>,
    > {
        self.status_written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What became of a status a pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWrite {
    /// The object carries it (written now, or already).
    Current,
    /// Progress detail only, written less than a progress interval ago: left for a look due in
    /// this long.
    Deferred(Duration),
}

/// Hashes of a status: whole, and without its progress detail (what is decisive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusDigest {
    full: u64,
    decisive: u64,
}

impl StatusDigest {
    fn of(status: &serde_json::Value) -> StatusDigest {
        StatusDigest {
            full: converge::stable_hash(&status.to_string()),
            decisive: converge::stable_hash(&without_progress(status).to_string()),
        }
    }
}

impl Context {
    /// Whether `graph` needs a full pass for `obj`, given the check recorded in status. Only a
    /// settled object (status for this generation, Ready, nothing in flight) may skip it.
    pub async fn freshness<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        graph: &crate::plan::DesiredGraph,
        status: Settled<'_>,
    ) -> converge::Freshness {
        let settled = status.observed_generation == status.generation
            && status.ready
            && status.in_flight.is_empty();
        let key = backoff_key(obj);
        let kept = self.settings.listing_age();
        let (accepted, rechecked) = self.known().get(&key).map_or((kept, None), |k| {
            (k.listing_age(kept), k.rechecked().map(str::to_string))
        });
        let freshness = converge::freshness(
            &self.arm,
            graph,
            status.verified,
            settled,
            self.settings.full_check,
            ListingAge { accepted, kept },
            rechecked.as_deref(),
        )
        .await;
        if let converge::Freshness::Verified {
            rechecked: Some(fingerprint),
        } = &freshness
        {
            self.known()
                .entry(key)
                .or_default()
                .recheck_passed(fingerprint.clone());
        }
        freshness
    }
}

/// What a status says about how settled its object is.
pub struct Settled<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// `Ready` is `True`.
    pub ready: bool,
    /// Operations still running.
    pub in_flight: &'a [InFlightOperation],
    /// The last full check.
    pub verified: Option<&'a crate::api::Verification>,
}

/// The status fields `Settled` reads, common to the three kinds.
pub trait SettledStatus: crate::api::HasConditions {
    /// `status.observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
    /// `status.inFlight`.
    fn in_flight(&self) -> &[InFlightOperation];
    /// `status.verified`.
    fn verified(&self) -> Option<&crate::api::Verification>;
}

macro_rules! settled_status {
    ($($status:ty),*) => {$(
        impl SettledStatus for $status {
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn in_flight(&self) -> &[InFlightOperation] {
                &self.in_flight
            }
            fn verified(&self) -> Option<&crate::api::Verification> {
                self.verified.as_ref()
            }
        }
    )*};
}
settled_status!(
    crate::api::StampStatus,
    crate::api::PrivateEndpointSetStatus,
    crate::api::GlobalPlaneStatus
);

impl<'a> Settled<'a> {
    /// How settled an object of `generation` with `status` is.
    pub fn of(generation: Option<i64>, status: &'a impl SettledStatus) -> Settled<'a> {
        Settled {
            generation,
            observed_generation: status.observed_generation(),
            ready: status.is_ready(),
            in_flight: status.in_flight(),
            verified: status.verified(),
        }
    }
}

impl Context {
    /// The check to record after a pass: only a converged pass with a listing earns one. The
    /// listing taken before the pass describes what it saw when this operator moved nothing;
    /// when the pass wrote, or saw an operation of an earlier pass end, the group is listed
    /// again, and that listing is recorded if everything that moved is something this operator
    /// wrote — so the next resync does not read the whole stamp again only to find our own
    /// writes. (Another writer touching one of those resources in the moment between our write
    /// and this listing goes unseen until the periodic full check.) Otherwise the first is
    /// recorded, and the next resync reads everything.
    pub async fn verification(
        &self,
        graph: &crate::plan::DesiredGraph,
        converged: bool,
        pass: &converge::Convergence,
        freshness: converge::Freshness,
    ) -> Option<crate::api::Verification> {
        let converge::Freshness::Stale(Some(before)) = freshness else {
            return None;
        };
        if !converged {
            return None;
        }
        // Nothing written, and the look before the pass had everything a check records.
        let complete = !before.contents.is_empty()
            || !graph
                .resources
                .iter()
                .any(|r| contents::read_in_full(r.kind));
        let fingerprint = if pass.touched.is_empty() && complete {
            before.fingerprint
        } else {
            // Taken after the pass, with contents: what the pass trusted is checked here.
            let fresh = ListingAge {
                accepted: Duration::ZERO,
                kept: self.settings.listing_age(),
            };
            let depth = converge::Depth::WithContents;
            match converge::listed(&self.arm, graph, fresh, depth).await {
                Ok(after) => converge::verified_fingerprint(&before, &after, pass),
                Err(_) => before.fingerprint,
            }
        };
        Some(crate::api::Verification {
            fingerprint,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}

/// The owner tag value of what `obj` creates.
pub fn owner_of<K: Resource<DynamicType = ()>>(obj: &K) -> crate::plan::Owner {
    crate::plan::Owner::new(
        &K::kind(&()),
        obj.meta().namespace.as_deref(),
        obj.meta().name.as_deref().unwrap_or_default(),
    )
}

/// Operations to persist in status.
pub fn persist(ops: &[LroState]) -> Vec<InFlightOperation> {
    ops.iter()
        .map(|op| InFlightOperation {
            resource_id: op.resource_id.clone(),
            kind: match op.kind {
                LroKind::Put => "Put".into(),
                LroKind::Delete => "Delete".into(),
            },
            poll_url: op.poll_url.clone(),
            poll_style: match op.style {
                PollStyle::AsyncOperation => "AsyncOperation".into(),
                PollStyle::Location => "Location".into(),
            },
            started_at: op.started_at.to_string(),
        })
        .collect()
}

/// Operations read back from status.
pub fn resume(ops: &[InFlightOperation]) -> Vec<LroState> {
    ops.iter()
        .map(|op| LroState {
            resource_id: op.resource_id.clone(),
            kind: if op.kind == "Delete" {
                LroKind::Delete
            } else {
                LroKind::Put
            },
            poll_url: op.poll_url.clone(),
            style: if op.poll_style == "Location" {
                PollStyle::Location
            } else {
                PollStyle::AsyncOperation
            },
            started_at: op.started_at.parse().unwrap_or_default(),
        })
        .collect()
}

/// How far a pass got, for when to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything is provisioned and nothing runs: the next look is the drift resync.
    Converged,
    /// Only the object's own operations are running, or it waits for what objects it follows
    /// provide: the end of each operation, or a change of those objects, wakes it.
    AwaitingOperations,
    /// Something else holds it back (another object, a lock, an error, an approval): look
    /// again at the poll period.
    Pending,
    /// Progress detail waits to be written: look again by then (sooner when something else
    /// wakes the object).
    StatusDue(Duration),
    /// Writes wait for ARM's budget to have room: look again about then, and no later than the
    /// poll period.
    BudgetDue(Duration),
    /// What is left was refused by Azure and is held back for a while (see
    /// `converge::RETRY_FAILED_WRITE`): look again when the soonest may be written again —
    /// sooner when the object, or what it follows, changes.
    Held(Duration),
}

impl Progress {
    /// What is left of this progress once status was `written`: a deferred status write needs
    /// a look when it is due, unless the poll period brings one sooner anyway.
    pub fn after(self, written: StatusWrite, settings: &Settings) -> Progress {
        match (self, written) {
            (_, StatusWrite::Current) => self,
            (Progress::Pending, StatusWrite::Deferred(due)) if settings.poll <= due => self,
            (Progress::BudgetDue(room), StatusWrite::Deferred(due)) if room <= due => self,
            (_, StatusWrite::Deferred(due)) => Progress::StatusDue(due),
        }
    }

    /// The progress of a pass that converged or not and found `pass`. `requirements_followed`:
    /// the objects providing what the graph requires wake this one when they change.
    pub fn of(
        converged: bool,
        pass: &converge::Convergence,
        requirements_followed: bool,
    ) -> Progress {
        if converged {
            Progress::Converged
        } else if let Some(room) = pass.deferred {
            Progress::BudgetDue(room)
        } else if pass.waits_only_on_wakeups(requirements_followed) {
            Progress::AwaitingOperations
        } else if let Some(left) = pass.held_for.filter(|_| pass.in_flight.is_empty()) {
            Progress::Held(left)
        } else {
            Progress::Pending
        }
    }
}

/// When to look again after a pass. A converged object resyncs in its slot: a fixed phase of
/// the resync period derived from `slot` (a stamp and its endpoint sets share one, so their
/// group listing is read once), which spreads different slots evenly over the period. The wait
/// is between half and one and a half periods. An object whose operations will wake it looks
/// again after a resync period anyway, should a wake-up be lost; polling it sooner would only
/// list its groups to see them still running, and at a thousand stamps those listings are
/// most of the subscription's read budget.
pub fn next_look(settings: &Settings, progress: Progress, slot: &str) -> Action {
    match progress {
        Progress::Pending => Action::requeue(settings.poll),
        Progress::StatusDue(due) => Action::requeue(due),
        Progress::BudgetDue(room) => Action::requeue(room.min(settings.poll)),
        Progress::Held(left) => Action::requeue(left.max(settings.poll).min(settings.resync)),
        Progress::AwaitingOperations => Action::requeue(settings.resync),
        Progress::Converged => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Action::requeue(resync_wait(settings.resync, slot, now))
        }
    }
}

/// How long from `now` (since the Unix epoch) until `slot`'s next resync of period `resync`.
pub fn resync_wait(resync: Duration, slot: &str, now: Duration) -> Duration {
    let period = resync.as_millis().max(1) as u64;
    let phase = converge::stable_hash(slot) % period;
    let now = now.as_millis() as u64;
    let mut wait = (phase + period - now % period) % period;
    if wait < period / 2 {
        wait += period;
    }
    Duration::from_millis(wait)
}

/// Phase, conditions and next look for an object that cannot be planned: an invalid spec waits
/// for a change (and is never written to Azure); a missing dependency is looked for again.
pub fn unplanned(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    verdict: &conditions::Verdict,
    generation: Option<i64>,
    settings: &Settings,
) -> (
    Option<String>,
    Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    Action,
) {
    let invalid = verdict.reason == "InvalidSpec";
    let phase = if invalid { "InvalidSpec" } else { "Pending" };
    let conditions = conditions::merge(
        previous,
        &[
            conditions::ready(std::slice::from_ref(verdict)),
            verdict.clone(),
        ],
        generation,
        phase,
    );
    let action = if invalid {
        Action::await_change()
    } else {
        Action::requeue(settings.poll)
    };
    (Some(phase.to_string()), conditions, action)
}

/// Publishes a Kubernetes Event about `obj` (`kubectl describe` shows it). A failure to publish
/// is logged, never fatal: events are for people, status is the record.
pub async fn announce<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    note: String,
) {
    announce_about(ctx, obj, warning, reason, "Reconcile", note).await;
}

/// Publishes an Event about `action` (at most 128 characters). The recorder folds an Event
/// into an earlier one with the same reason and action (a series, keeping the first note):
/// what must be told apart — the repair of one resource from another's — needs an action of
/// its own.
pub async fn announce_about<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: String,
) {
    use kube::runtime::events::{Event, EventType};
    let event = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.chars().take(128).collect(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish an event");
    }
}

/// Counts `obj` becoming Ready in the time-to-ready metric: from when its Ready condition last
/// turned False, or from its creation.
pub fn record_ready<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    controller: &str,
    obj: &K,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) {
    let since = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "False")
        .map(|c| c.last_transition_time.0)
        .or_else(|| obj.meta().creation_timestamp.as_ref().map(|t| t.0));
    if let Some(since) = since {
        let seconds = k8s_openapi::jiff::Timestamp::now()
            .duration_since(since)
            .as_secs_f64();
        ctx.metrics.became_ready(controller, seconds);
    }
}

/// Builds the recorder for `client`.
pub fn recorder(client: Client) -> kube::runtime::events::Recorder {
    let reporter = kube::runtime::events::Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    kube::runtime::events::Recorder::new(client, reporter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of four tasks waiting at once with `wait` go on once the cache is listed.
    async fn woken_waiters(
        wait: fn(kube::runtime::reflector::Store<Stamp>) -> tokio::task::JoinHandle<()>,
    ) -> usize {
        let (reader, mut writer) = kube::runtime::reflector::store::<Stamp>();
        let waiters: Vec<_> = (0..4).map(|_| wait(reader.clone())).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let mut woken = 0;
        for waiter in waiters {
            if tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .is_ok()
            {
                woken += 1;
            }
        }
        woken
    }

    #[tokio::test]
    async fn every_reconcile_waiting_for_a_cache_goes_on_once_it_is_listed() {
        // (kube 5.0's `Store::wait_until_ready` alone lets one of the four through here.)
        let woken =
            woken_waiters(|r| tokio::spawn(async move { listed_once(&r).await.unwrap() })).await;
        assert_eq!(woken, 4);
    }

    #[test]
    fn backoff_doubles_from_the_error_s_pace_up_to_the_cap_and_resets() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=8).map(|n| backoff(base, n, cap).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        // A Retry-After beyond the cap is honoured, not cut short.
        assert_eq!(backoff(Duration::from_secs(600), 3, cap).as_secs(), 600);
        let counts = Backoff::default();
        assert_eq!(counts.failed("Stamp/prod/a"), 1);
        assert_eq!(counts.failed("Stamp/prod/a"), 2);
        assert_eq!(counts.failed("Stamp/prod/b"), 1);
        counts.succeeded("Stamp/prod/a");
        assert_eq!(
            counts.failed("Stamp/prod/a"),
            1,
            "a success resets the count"
        );
    }

    #[test]
    fn resync_slots_are_stable_and_within_half_to_one_and_a_half_periods() {
        let settings = Settings {
            resync: Duration::from_secs(300),
            ..Settings::default()
        };
        let period = settings.resync;
        for slot in ["prod", "staging", "gp0", "gp1"] {
            for now_s in [0u64, 17, 149, 150, 299, 1_764_000_123] {
                let now = Duration::from_secs(now_s);
                let wait = resync_wait(period, slot, now);
                assert!(
                    wait >= period / 2 && wait < period * 3 / 2,
                    "{slot} at {now_s}: {wait:?}"
                );
                // Every look lands on the slot's phase of the period.
                let at = (now + wait).as_millis() as u64 % period.as_millis() as u64;
                assert_eq!(at, converge::stable_hash(slot) % period.as_millis() as u64);
            }
        }
        assert_eq!(settings.listing_age(), Duration::from_secs(15));
    }

    #[test]
    fn only_an_object_waiting_on_its_own_operations_skips_polling() {
        use crate::azure::{LroKind, LroState, PollStyle};
        let settings = Settings::default();
        let op = LroState {
            resource_id: "/subscriptions/s/resourceGroups/g/providers/A.B/c/d".into(),
            kind: LroKind::Put,
            poll_url: "https://arm/op/1".into(),
            style: PollStyle::AsyncOperation,
            started_at: 0,
        };
        let mut pass = converge::Convergence {
            in_flight: vec![op],
            ..Default::default()
        };
        assert_eq!(
            Progress::of(false, &pass, false),
            Progress::AwaitingOperations
        );
        let look = next_look(&settings, Progress::of(false, &pass, false), "slot");
        assert_eq!(look, Action::requeue(settings.resync));
        // Held back by something no operation of its own will end: look at the poll period.
        pass.held_by_others = true;
        assert_eq!(Progress::of(false, &pass, true), Progress::Pending);
        assert_eq!(
            next_look(&settings, Progress::Pending, "slot"),
            Action::requeue(settings.poll)
        );
        // Nothing running and not converged (an approval, say): polled as well.
        let idle = converge::Convergence::default();
        assert_eq!(Progress::of(false, &idle, true), Progress::Pending);
        assert_eq!(Progress::of(true, &idle, true), Progress::Converged);
        // Waiting for what another object provides: woken by it when it is followed, polled
        // when it is not.
        let awaiting = converge::Convergence {
            awaits_required: true,
            ..Default::default()
        };
        assert_eq!(
            Progress::of(false, &awaiting, true),
            Progress::AwaitingOperations
        );
        assert_eq!(Progress::of(false, &awaiting, false), Progress::Pending);
    }

    #[test]
    fn outputs_appearing_while_provisioning_are_progress_but_the_firewall_address_is_not() {
        let status = |outputs: serde_json::Value| {
            StatusDigest::of(&json!({
                "phase": "Provisioning",
                "conditions": [
                    { "type": "Ready", "status": "False", "reason": "Provisioning", "message": "a" },
                    { "type": "Egress", "status": "False", "reason": "Provisioning", "message": "b" },
                ],
                "outputs": outputs,
            }))
        };
        let before = status(json!({ "resourceGroupId": "/rg" }));
        let alias = status(json!({ "resourceGroupId": "/rg", "privateLinkServiceAlias": "x" }));
        let address = status(json!({ "resourceGroupId": "/rg", "firewallPrivateIp": "10.0.0.4" }));
        assert_ne!(before.full, alias.full);
        assert_eq!(before.decisive, alias.decisive);
        assert_ne!(before.decisive, address.decisive);
    }

    #[test]
    fn a_deferred_status_write_brings_the_next_look_forward_only_when_nothing_sooner_comes() {
        let settings = Settings {
            poll: Duration::from_secs(1),
            ..Settings::default()
        };
        let due = StatusWrite::Deferred(Duration::from_secs(4));
        assert_eq!(Progress::Pending.after(due, &settings), Progress::Pending);
        assert_eq!(
            Progress::AwaitingOperations.after(due, &settings),
            Progress::StatusDue(Duration::from_secs(4))
        );
        assert_eq!(
            Progress::Converged.after(StatusWrite::Current, &settings),
            Progress::Converged
        );
    }

    #[test]
    fn writes_left_for_the_budget_bring_the_next_pass_when_it_has_room() {
        let settings = Settings {
            poll: Duration::from_secs(10),
            ..Settings::default()
        };
        // Its operations would wake it, but the writes it held back need a pass of their own.
        let pass = converge::Convergence {
            deferred: Some(Duration::from_millis(300)),
            awaits_required: true,
            ..Default::default()
        };
        let progress = Progress::of(false, &pass, true);
        assert_eq!(progress, Progress::BudgetDue(Duration::from_millis(300)));
        assert_eq!(
            next_look(&settings, progress, "slot"),
            Action::requeue(Duration::from_millis(300))
        );
        // Never later than the poll period; a status write due sooner brings it forward.
        assert_eq!(
            next_look(
                &settings,
                Progress::BudgetDue(Duration::from_secs(60)),
                "slot"
            ),
            Action::requeue(settings.poll)
        );
        assert_eq!(
            progress.after(StatusWrite::Deferred(Duration::from_millis(100)), &settings),
            Progress::StatusDue(Duration::from_millis(100))
        );
        assert_eq!(
            progress.after(StatusWrite::Deferred(Duration::from_secs(4)), &settings),
            progress
        );
    }
}
