//! The emulator's world: resources, long-running operations, IP allocations, counters.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
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
    /// Writes to the same lock key conflict while this runs (a VNet and its subnets share one).
    pub lock_key: String,
    /// When it started.
    pub started: Instant,
    /// How long it takes.
    pub duration: Duration,
    /// If set, it ends `Failed` with this error.
    pub failure: Option<ArmError>,
    /// Set once its effects were applied.
    pub finished: bool,
}

impl Operation {
    /// Whether it is over at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.started + self.duration
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
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            latency: LatencyProfile::zero(),
            throttle: ThrottleLimits::default(),
            token: None,
        }
    }
}

/// Everything behind the emulator's lock.
pub struct World {
    /// Settings.
    pub config: EmulatorConfig,
    /// Resources by lower-case id.
    pub resources: BTreeMap<String, Resource>,
    /// Operations by id.
    pub operations: HashMap<String, Operation>,
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
            operations: HashMap::new(),
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
        let now = now_rfc3339();
        self.touch_ancestors(&key, &now);
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

    /// The resource with `id`, if stored.
    pub fn get(&self, id: &str) -> Option<&Resource> {
        self.resources.get(&id.to_ascii_lowercase())
    }

    /// Children of `parent_id` of the given child type segment (`subnets`), in creation order.
    pub fn children(&self, parent_id: &str, child_type: &str) -> Vec<&Resource> {
        let prefix = format!(
            "{}/{}/",
            parent_id.to_ascii_lowercase(),
            child_type.to_ascii_lowercase()
        );
        let mut out: Vec<&Resource> = self
            .resources
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(_, r)| r)
            .collect();
        out.sort_by_key(|r| r.created_seq);
        out
    }

    /// Marks every stored ancestor of `key` changed at `now`. Assumption (not confirmed in
    /// Azure's documentation): a write to a child (a rule collection group, an origin, a
    /// private-endpoint connection) changes its parent's state, and ARM's `changedTime` of the
    /// parent follows — so listing a group reveals changes to proxy children too.
    pub fn touch_ancestors(&mut self, key: &str, now: &str) {
        let mut current = key;
        while let Some((parent, _)) = current
            .rsplit_once('/')
            .and_then(|(p, _)| p.rsplit_once('/'))
        {
            if !parent.contains("/providers/") {
                break;
            }
            if let Some(r) = self.resources.get_mut(parent) {
                r.changed_time = now.to_string();
            }
            current = parent;
        }
    }

    /// Removes `key` and everything below it, releasing their IPs.
    pub fn remove_tree(&mut self, key: &str) -> Vec<Resource> {
        self.touch_ancestors(key, &now_rfc3339());
        let prefix = format!("{key}/");
        let doomed: Vec<String> = self
            .resources
            .keys()
            .filter(|k| *k == key || k.starts_with(&prefix))
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for k in doomed {
            self.release(&k);
            self.allocations.remove(&k);
            if let Some(r) = self.resources.remove(&k) {
                removed.push(r);
            }
        }
        removed
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

    /// Applies the effects of every operation that is due at `now`.
    pub fn complete_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, op)| !op.finished && op.due(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(op) = self.operations.get_mut(&id) else {
                continue;
            };
            op.finished = true;
            let op = op.clone();
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
    }

    /// Whether an unfinished operation holds `lock_key`.
    pub fn locked(&self, lock_key: &str) -> bool {
        self.operations
            .values()
            .any(|op| !op.finished && op.lock_key == lock_key)
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
