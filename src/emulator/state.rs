//! The emulator's world: resources, long-running operations, IP allocations, counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::ops::Bound;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::error::ArmError;
use super::faults::Faults;
use super::latency::LatencyProfile;
use super::throttle::{Throttle, ThrottleLimits};

/// A stored resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Id in the case it was created with.
    pub id: String,
    /// Full type (`Microsoft.Network/virtualNetworks/subnets`).
    pub resource_type: String,
    /// Last body written, without server-side fields added at GET.
    pub body: Value,
    /// Current ETag.
    pub etag: String,
    /// The long-running operation acting on it, if any.
    pub operation: Option<String>,
    /// Its last operation failed.
    pub failed: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Order of creation (subnets are listed in this order).
    pub created_seq: u64,
    /// RFC 3339 time of creation.
    pub created_time: String,
    /// RFC 3339 time of the last change.
    pub changed_time: String,
}

/// Kind of a long-running operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// Create or update.
    Put,
    /// Delete.
    Delete,
}

/// A long-running operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Resource key (lower-case id).
    pub resource_key: String,
    /// Put or delete.
    pub kind: OperationKind,
    /// Writes to these lock keys conflict while this runs (a VNet and its subnets share one; a
    /// firewall holds its policy and its VNet as well as itself).
    pub lock_keys: Vec<String>,
    /// When it started.
    pub started: Instant,
    /// How long it takes.
    pub duration: Duration,
    /// If set, it ends `Failed` with this error.
    pub failure: Option<ArmError>,
    /// Set once its effects were applied.
    pub finished: bool,
    /// The pause its answers ask for (`Retry-After`), whatever it has left; `None`: the time
    /// left (see `RetryAfter`).
    pub asked: Option<Duration>,
}

impl Operation {
    /// When it is over.
    pub fn due_at(&self) -> Instant {
        self.started + self.duration
    }
}

/// Counters of requests.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// All requests to the ARM surface.
    pub requests: u64,
    /// By method.
    pub by_method: BTreeMap<String, u64>,
    /// By resource type (operation polls count as `operations`).
    pub by_type: BTreeMap<String, u64>,
    /// By status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests answered 429.
    pub throttled: u64,
    /// Polls of operation URLs.
    pub operation_polls: u64,
}

/// One entry of the request log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// `x-ms-request-id` answered.
    pub request_id: String,
    /// `x-ms-client-request-id` the client sent.
    pub client_request_id: Option<String>,
    /// `User-Agent` the client sent.
    pub user_agent: Option<String>,
    /// When it was answered (for timelines in benches; not part of the admin API's log).
    #[serde(skip)]
    pub at: Instant,
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Operation latencies.
    pub latency: LatencyProfile,
    /// Throttling limits.
    pub throttle: ThrottleLimits,
    /// When set, only `Authorization: Bearer <token>` is accepted.
    pub token: Option<String>,
    /// What `Retry-After` says while an operation runs.
    pub retry_after: RetryAfter,
    /// Real seconds (scaled like every latency) between a Front Door origin's write and its
    /// private endpoint's connection request showing on the Private Link Service it names.
    /// Front Door "creates a private endpoint on your behalf" and the request then arrives
    /// "pending your approval" (Microsoft Learn, Secure your origin with Private Link in Azure
    /// Front Door Premium); how long that takes is not documented: a minute, the less
    /// convenient thing.
    pub front_door_request_seconds: f64,
    /// Entries per page of a list; more follow behind `nextLink`. ARM pages every list and
    /// documents no page size a client may count on (resource listings are often 1000, many
    /// network collections far fewer), so tests set it small to force several pages.
    pub page_size: usize,
    /// Whether a private endpoint keeps its `customDnsConfigs` once a zone group maps its names.
    /// Both are seen in Azure and neither is documented (issue #24); by default they are emptied
    /// when the zone group is written — the names and addresses then show only in the zone
    /// group's `recordSets` — the less convenient case for a reader of the endpoint.
    pub keep_custom_dns_configs: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            latency: LatencyProfile::zero(),
            throttle: ThrottleLimits::default(),
            token: None,
            retry_after: RetryAfter::Azure,
            front_door_request_seconds: 60.0,
            page_size: 100,
            keep_custom_dns_configs: false,
        }
    }
}

/// A Front Door origin's private endpoint connection request, on its way to the Private Link
/// Service it names.
#[derive(Debug, Clone)]
pub struct FrontDoorRequest {
    /// When it shows on the service.
    pub due: Instant,
    /// The origin (lower-case id).
    pub origin: String,
    /// The Private Link Service.
    pub private_link_service: String,
    /// Its request message.
    pub message: String,
}

/// What an operation's answers ask for in `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryAfter {
    /// As Azure does: a constant per provider, scaled like every latency, that says nothing of
    /// the time an operation has left (see `azure_retry_after_seconds`).
    #[default]
    Azure,
    /// The time the operation has left: kinder than Azure, for experiments only.
    TimeLeft,
}

/// The `Retry-After` Azure answers while an operation of `resource_type` runs, in real seconds.
/// The network provider answers 10 whatever is left (its InProgress polls in the network
/// recordings of azure-sdk-for-node, api-version 2017-10-01: `retry-after: 10`); private DNS
/// 60 (privatedns 2024-06-01 `examples/PrivateZonePut.json`, 202: `Retry-After: 60`); a
/// resource group's deletion 15 (resource-group DELETE recordings, api-version 2016-09-01:
/// `retry-after: 15`). Front Door's is not on record: 10, which tells nothing either.
pub fn azure_retry_after_seconds(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    if t.starts_with("microsoft.network/privatednszones") {
        60.0
    } else if t == "microsoft.resources/resourcegroups" {
        15.0
    } else {
        10.0
    }
}

/// Everything behind the emulator's lock.
pub struct World {
    /// Settings.
    pub config: EmulatorConfig,
    /// Resources by lower-case id. Entries come and go only through `upsert` and `remove`,
    /// which keep `by_type` in step; values may be changed in place.
    pub resources: BTreeMap<String, Resource>,
    /// Keys of the resources of each (lower-case) type, so the checks that look for every
    /// resource of a kind (the private link services using a subnet) do not read them all.
    by_type: HashMap<String, BTreeSet<String>>,
    /// Operations by id, finished ones included (clients may poll them after the end).
    pub operations: HashMap<String, Operation>,
    /// Unfinished operations by when they are due: completing them never reads finished ones.
    pending: BTreeSet<(Instant, String)>,
    /// Front Door connection requests still on their way, by when they arrive.
    pub front_door_requests: Vec<FrontDoorRequest>,
    /// How many unfinished operations hold each lock key.
    held_locks: HashMap<String, usize>,
    /// Throttling buckets.
    pub throttle: Throttle,
    /// Fault rules.
    pub faults: Faults,
    /// Counters.
    pub stats: Stats,
    /// Request log (most recent last).
    pub log: Vec<RequestRecord>,
    /// Private IPs taken per subnet key: address → owner resource key.
    pub allocations: HashMap<String, BTreeMap<u32, String>>,
    next_seq: u64,
    next_public_ip: u32,
}

/// RFC 3339 time now.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl World {
    /// An empty world.
    pub fn new(config: EmulatorConfig) -> World {
        let throttle = Throttle::new(config.throttle);
        World {
            config,
            resources: BTreeMap::new(),
            by_type: HashMap::new(),
            operations: HashMap::new(),
            pending: BTreeSet::new(),
            front_door_requests: Vec::new(),
            held_locks: HashMap::new(),
            throttle,
            faults: Faults::default(),
            stats: Stats::default(),
            log: Vec::new(),
            allocations: HashMap::new(),
            next_seq: 0,
            next_public_ip: 0,
        }
    }

    /// A fresh ETag.
    pub fn new_etag() -> String {
        format!("W/\"{}\"", uuid::Uuid::new_v4())
    }

    /// Stores `body` for `id` (creating or replacing), returning whether it was created.
    pub fn upsert(&mut self, id: &str, resource_type: &str, body: Value) -> bool {
        let key = id.to_ascii_lowercase();
        // Only the resource written changes: a child's write (a subnet, a security rule, a rule
        // collection group, an origin) leaves its parent's `changedTime` in a group listing as
        // it was. Nothing in ARM's documentation says a child's write moves it (Resources -
        // List By Resource Group: `changedTime` is "the changed time of the resource"), so
        // the emulator does the less convenient thing.
        let now = now_rfc3339();
        match self.resources.get_mut(&key) {
            Some(existing) => {
                existing.body = body;
                existing.etag = World::new_etag();
                existing.failed = false;
                existing.changed_time = now;
                false
            }
            None => {
                self.next_seq += 1;
                self.by_type
                    .entry(resource_type.to_ascii_lowercase())
                    .or_default()
                    .insert(key.clone());
                self.resources.insert(
                    key,
                    Resource {
                        id: id.to_string(),
                        resource_type: resource_type.to_string(),
                        body,
                        etag: World::new_etag(),
                        operation: None,
                        failed: false,
                        deleting: false,
                        created_seq: self.next_seq,
                        created_time: now.clone(),
                        changed_time: now,
                    },
                );
                true
            }
        }
    }

    /// Removes the resource stored under `key` (a lower-case id) alone.
    pub fn remove(&mut self, key: &str) -> Option<Resource> {
        let removed = self.resources.remove(key)?;
        let kind = removed.resource_type.to_ascii_lowercase();
        if let Some(keys) = self.by_type.get_mut(&kind) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_type.remove(&kind);
            }
        }
        Some(removed)
    }

    /// The resource with `id`, if stored.
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.get(&id.to_ascii_lowercase())
    }

    /// Every resource whose key starts with `prefix` (lower-case), in key order. A range of
    /// the ordered map: listing one group costs its own size, not the world's.
    pub fn under<'a, 'p>(
        &'a self,
        prefix: &'p str,
    ) -> impl Iterator<Item = (&'a str, &'a Resource)> + 'p
    where
        'a: 'p,
    {
        self.resources
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, r)| (k.as_str(), r))
    }

    /// The keys of every resource of `resource_type` (any case).
    pub fn keys_of_type<'a>(&'a self, resource_type: &str) -> impl Iterator<Item = &'a str> {
        self.by_type
            .get(&resource_type.to_ascii_lowercase())
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Every resource of `resource_type` (any case).
    pub fn of_type<'a>(&'a self, resource_type: &str) -> impl Iterator<Item = &'a Resource> {
        self.keys_of_type(resource_type)
            .filter_map(|k| self.resources.get(k))
    }

    /// The resources holding an address in the subnet `subnet_key`.
    pub fn address_owners<'a>(&'a self, subnet_key: &str) -> impl Iterator<Item = &'a Resource> {
        self.allocations
            .get(subnet_key)
            .into_iter()
            .flat_map(|taken| taken.values())
            .filter_map(|owner| self.resources.get(owner))
    }

    /// Children of `parent_id` of the given child type segment (`subnets`), in creation order.
    pub fn children(&self, parent_id: &str, child_type: &str) -> Vec<&Resource> {
        let prefix = format!(
            "{}/{}/",
            parent_id.to_ascii_lowercase(),
            child_type.to_ascii_lowercase()
        );
        let mut out: Vec<&Resource> = self
            .under(&prefix)
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(_, r)| r)
            .collect();
        out.sort_by_key(|r| r.created_seq);
        out
    }

    /// Removes `key` and everything below it, releasing their IPs.
    pub fn remove_tree(&mut self, key: &str) -> Vec<Resource> {
        let doomed = self.tree_keys(key);
        let mut removed = Vec::new();
        for k in doomed {
            self.release(&k);
            self.allocations.remove(&k);
            if let Some(r) = self.remove(&k) {
                removed.push(r);
            }
        }
        removed
    }

    /// `key` and the keys of everything stored below it.
    pub fn tree_keys(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}/");
        self.resources
            .get_key_value(key)
            .map(|(k, _)| k.as_str())
            .into_iter()
            .chain(self.under(&prefix).map(|(k, _)| k))
            .map(String::from)
            .collect()
    }

    /// Releases every IP owned by `owner`.
    pub fn release(&mut self, owner: &str) {
        for taken in self.allocations.values_mut() {
            taken.retain(|_, o| o != owner);
        }
    }

    /// Takes the first free address of `subnet_key` (Azure keeps .0–.3 and the broadcast).
    pub fn allocate(
        &mut self,
        subnet_key: &str,
        prefix: &str,
        owner: &str,
    ) -> Result<Ipv4Addr, ArmError> {
        let (network, bits) = parse_prefix(prefix).ok_or_else(|| {
            ArmError::bad_request(
                "InvalidCIDRNotation",
                format!("{prefix} is not a valid prefix"),
            )
        })?;
        let size = 1u64 << (32 - u32::from(bits));
        let taken = self.allocations.entry(subnet_key.to_string()).or_default();
        let first = u64::from(u32::from(network)) + 4;
        let last = u64::from(u32::from(network)) + size - 2;
        for candidate in first..=last {
            let ip = candidate as u32;
            if let std::collections::btree_map::Entry::Vacant(slot) = taken.entry(ip) {
                slot.insert(owner.to_string());
                return Ok(Ipv4Addr::from(ip));
            }
        }
        Err(ArmError::bad_request(
            "SubnetIsFull",
            format!("Subnet with prefix {prefix} has no free addresses left."),
        ))
    }

    /// Registers a fixed address (an ILB frontend) as taken.
    pub fn reserve(&mut self, subnet_key: &str, ip: Ipv4Addr, owner: &str) {
        self.allocations
            .entry(subnet_key.to_string())
            .or_default()
            .insert(u32::from(ip), owner.to_string());
    }

    /// Whether anything holds an address in the subnet.
    pub fn subnet_in_use(&self, subnet_key: &str) -> Option<String> {
        self.allocations
            .get(subnet_key)
            .and_then(|m| m.values().next().cloned())
    }

    /// A public address for a public IP resource (from a documentation-like range).
    pub fn next_public_address(&mut self) -> Ipv4Addr {
        self.next_public_ip += 1;
        Ipv4Addr::from(u32::from(Ipv4Addr::new(20, 50, 0, 0)) + self.next_public_ip)
    }

    /// Records a started operation: it holds its lock key until it is due.
    pub fn begin(&mut self, id: String, op: Operation) {
        self.pending.insert((op.due_at(), id.clone()));
        for key in &op.lock_keys {
            *self.held_locks.entry(key.clone()).or_default() += 1;
        }
        self.operations.insert(id, op);
    }

    /// Applies the effects of every operation that is due at `now`.
    pub fn complete_due(&mut self, now: Instant) {
        while self.pending.first().is_some_and(|(due, _)| *due <= now) {
            let Some((_, id)) = self.pending.pop_first() else {
                break;
            };
            let Some(op) = self.operations.get_mut(&id) else {
                continue;
            };
            op.finished = true;
            let op = op.clone();
            for key in &op.lock_keys {
                self.release_lock(key);
            }
            match op.kind {
                OperationKind::Put => {
                    if let Some(resource) = self.resources.get_mut(&op.resource_key) {
                        resource.operation = None;
                        resource.failed = op.failure.is_some();
                    }
                }
                OperationKind::Delete => {
                    super::network::before_delete(self, &op.resource_key);
                    self.remove_tree(&op.resource_key);
                }
            }
        }
        let (arrived, on_the_way): (Vec<FrontDoorRequest>, Vec<FrontDoorRequest>) =
            std::mem::take(&mut self.front_door_requests)
                .into_iter()
                .partition(|r| r.due <= now);
        self.front_door_requests = on_the_way;
        for request in arrived {
            super::network::front_door_request_arrives(self, &request);
        }
    }

    fn release_lock(&mut self, lock_key: &str) {
        if let Some(count) = self.held_locks.get_mut(lock_key) {
            *count -= 1;
            if *count == 0 {
                self.held_locks.remove(lock_key);
            }
        }
    }

    /// Whether an unfinished operation holds `lock_key`.
    pub fn locked(&self, lock_key: &str) -> bool {
        self.held_locks.contains_key(lock_key)
    }

    /// Inventory: every live resource.
    pub fn inventory(&self) -> Vec<Value> {
        self.resources
            .values()
            .map(|r| json!({ "id": r.id, "type": r.resource_type, "provisioningState": provisioning_state(r) }))
            .collect()
    }
}

/// The provisioning state a GET shows.
pub fn provisioning_state(r: &Resource) -> &'static str {
    if r.deleting {
        "Deleting"
    } else if r.operation.is_some() {
        if r.resource_type
            .to_ascii_lowercase()
            .starts_with("microsoft.cdn")
        {
            "Creating"
        } else {
            "Updating"
        }
    } else if r.failed {
        "Failed"
    } else {
        "Succeeded"
    }
}

/// Parses `a.b.c.d/n` into its network address and prefix length; `None` if malformed.
pub fn parse_prefix(prefix: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, bits) = prefix.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    (bits <= 32).then_some((addr, bits))
}

/// Whether `prefix` has host bits set.
pub fn is_canonical(addr: Ipv4Addr, bits: u8) -> bool {
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    };
    u32::from(addr) & !mask == 0
}

/// Whether block `a` contains block `b`.
pub fn contains(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let mask = if a.1 == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(a.1))
    };
    b.1 >= a.1 && (u32::from(b.0) & mask) == (u32::from(a.0) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBNET_TYPE: &str = "Microsoft.Network/virtualNetworks/subnets";

    fn world() -> World {
        World::new(EmulatorConfig::default())
    }

    #[test]
    fn a_prefix_reaches_its_own_subtree_and_no_sibling_that_shares_its_start() {
        let mut w = world();
        let group = "/subscriptions/s/resourceGroups/rg-a";
        for (id, kind) in [
            (
                format!("{group}/providers/Microsoft.Network/virtualNetworks/v"),
                "Microsoft.Network/virtualNetworks",
            ),
            (
                format!("{group}/providers/Microsoft.Network/virtualNetworks/v/subnets/b"),
                SUBNET_TYPE,
            ),
            (
                format!("{group}/providers/Microsoft.Network/virtualNetworks/v/subnets/a"),
                SUBNET_TYPE,
            ),
            (
                format!("{group}b/providers/Microsoft.Network/virtualNetworks/v"),
                "Microsoft.Network/virtualNetworks",
            ),
        ] {
            w.upsert(&id, kind, json!({}));
        }
        let prefix = format!("{group}/").to_ascii_lowercase();
        assert_eq!(w.under(&prefix).count(), 3);
        let vnet = format!("{group}/providers/Microsoft.Network/virtualNetworks/v");
        let names: Vec<_> = w
            .children(&vnet, "subnets")
            .iter()
            .map(|r| r.id.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, ["b", "a"], "children come in creation order");
        assert_eq!(
            w.of_type("microsoft.network/VIRTUALNETWORKS/subnets")
                .count(),
            2
        );

        let removed = w.remove_tree(&vnet.to_ascii_lowercase());
        assert_eq!(removed.len(), 3);
        assert_eq!(w.of_type(SUBNET_TYPE).count(), 0);
        assert_eq!(w.resources.len(), 1, "the sibling group's network stays");
    }

    #[test]
    fn an_operation_holds_its_lock_until_it_is_due_and_completes_once() {
        let mut w = world();
        let id = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/r";
        w.upsert(id, "Microsoft.Network/routeTables", json!({}));
        let started = Instant::now();
        let op = |ms: u64, lock: &str| Operation {
            resource_key: id.to_ascii_lowercase(),
            kind: OperationKind::Put,
            lock_keys: vec![lock.into()],
            started,
            duration: Duration::from_millis(ms),
            failure: None,
            finished: false,
            asked: None,
        };
        w.begin("late".into(), op(200, "l"));
        w.begin("early".into(), op(100, "l"));
        w.complete_due(started + Duration::from_millis(150));
        assert!(w.operations["early"].finished);
        assert!(!w.operations["late"].finished);
        assert!(w.locked("l"), "the later operation still holds the lock");
        w.complete_due(started + Duration::from_millis(250));
        assert!(w.operations["late"].finished);
        assert!(!w.locked("l"));
        w.complete_due(started + Duration::from_millis(300));
        assert_eq!(
            w.operations.len(),
            2,
            "finished operations stay for their pollers"
        );
    }
}
