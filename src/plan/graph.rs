//! The desired Azure resource graph: what to PUT, in which order, with which body.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::arm_id::ArmId;

/// Every resource type the operator writes or reads, with the api-version it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ResourceKind {
    /// `Microsoft.Resources/resourceGroups`.
    ResourceGroup,
    /// `Microsoft.Network/virtualNetworks` (subnets inline).
    VirtualNetwork,
    /// `Microsoft.Network/networkSecurityGroups`.
    NetworkSecurityGroup,
    /// `Microsoft.Network/routeTables`.
    RouteTable,
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIpAddress,
    /// `Microsoft.Network/firewallPolicies`.
    FirewallPolicy,
    /// `Microsoft.Network/firewallPolicies/ruleCollectionGroups`.
    RuleCollectionGroup,
    /// `Microsoft.Network/azureFirewalls`.
    AzureFirewall,
    /// `Microsoft.Network/privateLinkServices`.
    PrivateLinkService,
    /// `Microsoft.Network/privateEndpoints`.
    PrivateEndpoint,
    /// `Microsoft.Network/privateEndpoints/privateDnsZoneGroups`.
    PrivateDnsZoneGroup,
    /// `Microsoft.Network/privateDnsZones`.
    PrivateDnsZone,
    /// `Microsoft.Network/privateDnsZones/virtualNetworkLinks`.
    VirtualNetworkLink,
    /// `Microsoft.Network/FrontDoorWebApplicationFirewallPolicies`.
    WafPolicy,
    /// `Microsoft.Cdn/profiles`.
    FrontDoorProfile,
    /// `Microsoft.Cdn/profiles/afdEndpoints`.
    FrontDoorEndpoint,
    /// `Microsoft.Cdn/profiles/originGroups`.
    FrontDoorOriginGroup,
    /// `Microsoft.Cdn/profiles/originGroups/origins`.
    FrontDoorOrigin,
    /// `Microsoft.Cdn/profiles/afdEndpoints/routes`.
    FrontDoorRoute,
    /// `Microsoft.Cdn/profiles/securityPolicies`.
    FrontDoorSecurityPolicy,
}

/// Every kind, for looking one up by its ARM type.
pub const ALL_KINDS: [ResourceKind; 20] = [
    ResourceKind::ResourceGroup,
    ResourceKind::VirtualNetwork,
    ResourceKind::NetworkSecurityGroup,
    ResourceKind::RouteTable,
    ResourceKind::PublicIpAddress,
    ResourceKind::FirewallPolicy,
    ResourceKind::RuleCollectionGroup,
    ResourceKind::AzureFirewall,
    ResourceKind::PrivateLinkService,
    ResourceKind::PrivateEndpoint,
    ResourceKind::PrivateDnsZoneGroup,
    ResourceKind::PrivateDnsZone,
    ResourceKind::VirtualNetworkLink,
    ResourceKind::WafPolicy,
    ResourceKind::FrontDoorProfile,
    ResourceKind::FrontDoorEndpoint,
    ResourceKind::FrontDoorOriginGroup,
    ResourceKind::FrontDoorOrigin,
    ResourceKind::FrontDoorRoute,
    ResourceKind::FrontDoorSecurityPolicy,
];

impl ResourceKind {
    /// ARM resource type.
    pub fn arm_type(self) -> &'static str {
        match self {
            ResourceKind::ResourceGroup => "Microsoft.Resources/resourceGroups",
            ResourceKind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            ResourceKind::NetworkSecurityGroup => "Microsoft.Network/networkSecurityGroups",
            ResourceKind::RouteTable => "Microsoft.Network/routeTables",
            ResourceKind::PublicIpAddress => "Microsoft.Network/publicIPAddresses",
            ResourceKind::FirewallPolicy => "Microsoft.Network/firewallPolicies",
            ResourceKind::RuleCollectionGroup => {
                "Microsoft.Network/firewallPolicies/ruleCollectionGroups"
            }
            ResourceKind::AzureFirewall => "Microsoft.Network/azureFirewalls",
            ResourceKind::PrivateLinkService => "Microsoft.Network/privateLinkServices",
            ResourceKind::PrivateEndpoint => "Microsoft.Network/privateEndpoints",
            ResourceKind::PrivateDnsZoneGroup => {
                "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
            }
            ResourceKind::PrivateDnsZone => "Microsoft.Network/privateDnsZones",
            ResourceKind::VirtualNetworkLink => {
                "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
            }
            ResourceKind::WafPolicy => "Microsoft.Network/FrontDoorWebApplicationFirewallPolicies",
            ResourceKind::FrontDoorProfile => "Microsoft.Cdn/profiles",
            ResourceKind::FrontDoorEndpoint => "Microsoft.Cdn/profiles/afdEndpoints",
            ResourceKind::FrontDoorOriginGroup => "Microsoft.Cdn/profiles/originGroups",
            ResourceKind::FrontDoorOrigin => "Microsoft.Cdn/profiles/originGroups/origins",
            ResourceKind::FrontDoorRoute => "Microsoft.Cdn/profiles/afdEndpoints/routes",
            ResourceKind::FrontDoorSecurityPolicy => "Microsoft.Cdn/profiles/securityPolicies",
        }
    }

    /// The api-version used for this type: the newest stable one in `shared/azure-specs`.
    pub fn api_version(self) -> &'static str {
        match self {
            ResourceKind::ResourceGroup => "2024-03-01",
            ResourceKind::PrivateEndpoint | ResourceKind::PrivateDnsZoneGroup => "2024-03-01",
            ResourceKind::PrivateDnsZone | ResourceKind::VirtualNetworkLink => "2024-06-01",
            ResourceKind::WafPolicy => "2024-02-01",
            ResourceKind::FrontDoorProfile
            | ResourceKind::FrontDoorEndpoint
            | ResourceKind::FrontDoorOriginGroup
            | ResourceKind::FrontDoorOrigin
            | ResourceKind::FrontDoorRoute
            | ResourceKind::FrontDoorSecurityPolicy => "2024-09-01",
            _ => "2024-05-01",
        }
    }

    /// Roughly how many seconds Azure takes to create one: minutes for a firewall or a Front Door
    /// profile, seconds for a route table. Only an order of magnitude matters: it decides
    /// which writes go first when the subscription's budget runs short (see
    /// `DesiredGraph::tails`).
    pub fn typical_create_seconds(self) -> u32 {
        match self {
            ResourceKind::ResourceGroup => 1,
            ResourceKind::NetworkSecurityGroup | ResourceKind::RouteTable => 4,
            ResourceKind::PublicIpAddress => 5,
            ResourceKind::VirtualNetwork => 6,
            ResourceKind::PrivateDnsZoneGroup => 10,
            ResourceKind::FirewallPolicy => 12,
            ResourceKind::FrontDoorOriginGroup => 15,
            ResourceKind::PrivateLinkService => 20,
            ResourceKind::RuleCollectionGroup | ResourceKind::WafPolicy => 25,
            ResourceKind::PrivateDnsZone => 30,
            ResourceKind::VirtualNetworkLink => 35,
            ResourceKind::PrivateEndpoint | ResourceKind::FrontDoorEndpoint => 40,
            ResourceKind::FrontDoorSecurityPolicy => 45,
            ResourceKind::FrontDoorRoute => 60,
            ResourceKind::FrontDoorProfile => 90,
            ResourceKind::FrontDoorOrigin => 120,
            ResourceKind::AzureFirewall => 360,
        }
    }

    /// The api-version to read `id` with when only its id is known (a resource another object
    /// provides, such as the origin group a stamp's origin joins or the subnet a set uses).
    pub fn api_version_of(id: &ArmId) -> &'static str {
        let kind = id.resource_type().to_ascii_lowercase();
        let kind = if kind.starts_with("microsoft.cdn/") {
            ResourceKind::FrontDoorProfile
        } else if kind.starts_with("microsoft.network/privatednszones") {
            ResourceKind::PrivateDnsZone
        } else if kind == "microsoft.resources/resourcegroups" {
            ResourceKind::ResourceGroup
        } else {
            ResourceKind::VirtualNetwork
        };
        kind.api_version()
    }
}

/// Which status condition a resource feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Component {
    /// Resource groups.
    ResourceGroup,
    /// VNet, subnets, NSGs.
    Network,
    /// Firewall, its policy and public IP, route table.
    Egress,
    /// Private Link Service.
    Ingress,
    /// Private endpoints and zone groups.
    PrivateEndpoints,
    /// Private DNS zones and links.
    PrivateDns,
    /// Front Door profile, endpoint, origin group, routes.
    FrontDoor,
    /// A stamp's origin in Front Door.
    FrontDoorOrigin,
    /// The WAF policy and its security policy.
    Waf,
    /// Operations networks.
    OperationsNetwork,
}

/// Whether the operator writes the resource or only reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ownership {
    /// Created, updated and deleted by the operator.
    Managed,
    /// Exists already (adopted Private Link Service, external DNS zone): read, never written.
    Observed,
}

/// One resource of the desired graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredResource {
    /// ARM id.
    pub id: ArmId,
    /// Type and api-version.
    pub kind: ResourceKind,
    /// Component it belongs to.
    pub component: Component,
    /// Managed or observed.
    pub ownership: Ownership,
    /// Request body of the PUT (`Value::Null` for observed resources).
    pub body: Value,
    /// Ids that must exist (and have succeeded) before this one is written.
    pub depends_on: Vec<ArmId>,
    /// Writes sharing a lock key must not run concurrently (Azure answers
    /// `AnotherOperationInProgress` for concurrent writes to one VNet or one firewall policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<ArmId>,
    /// Other resources whose state Azure changes when this one is written, besides its
    /// ancestors: a Front Door origin opens a connection on the Private Link Service it names.
    /// What was known of them before the write no longer holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<ArmId>,
}

impl DesiredResource {
    /// A managed resource without dependencies.
    pub fn managed(
        id: ArmId,
        kind: ResourceKind,
        component: Component,
        body: Value,
    ) -> DesiredResource {
        DesiredResource {
            id,
            kind,
            component,
            ownership: Ownership::Managed,
            body,
            depends_on: Vec::new(),
            lock: None,
            moves: Vec::new(),
        }
    }

    /// A resource that must exist and is only read.
    pub fn observed(id: ArmId, kind: ResourceKind, component: Component) -> DesiredResource {
        DesiredResource {
            id,
            kind,
            component,
            ownership: Ownership::Observed,
            body: Value::Null,
            depends_on: Vec::new(),
            lock: None,
            moves: Vec::new(),
        }
    }

    /// Adds dependencies.
    pub fn after<'a>(mut self, ids: impl IntoIterator<Item = &'a ArmId>) -> DesiredResource {
        self.depends_on.extend(ids.into_iter().cloned());
        self
    }

    /// Declares that writing this one changes `other` too (see `moves`).
    pub fn moving(mut self, other: &ArmId) -> DesiredResource {
        self.moves.push(other.clone());
        self
    }

    /// Serialises writes under `lock`.
    pub fn locked_by(mut self, lock: &ArmId) -> DesiredResource {
        self.lock = Some(lock.clone());
        self
    }
}

/// A desired graph: resources in dependency order, plus what must already exist outside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredGraph {
    /// Resources, each after everything it depends on.
    pub resources: Vec<DesiredResource>,
    /// Ids owned by another object's graph that this graph depends on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<ArmId>,
}

impl DesiredGraph {
    /// Builds a graph from resources in any order; orders them topologically, ties broken by the
    /// order given, so the same spec always gives the same list. Dependencies that are neither in
    /// `resources` nor in `requires` are a planner bug, reported as `Err` with the missing ids.
    pub fn new(
        resources: Vec<DesiredResource>,
        requires: Vec<ArmId>,
    ) -> Result<DesiredGraph, Vec<String>> {
        let index: BTreeMap<&str, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let external: BTreeSet<&str> = requires.iter().map(ArmId::as_str).collect();
        let missing: Vec<String> = resources
            .iter()
            .flat_map(|r| r.depends_on.iter())
            .filter(|d| !index.contains_key(d.as_str()) && !external.contains(d.as_str()))
            .map(|d| d.to_string())
            .collect();
        if !missing.is_empty() || index.len() != resources.len() {
            return Err(missing);
        }
        let mut placed = vec![false; resources.len()];
        let mut order = Vec::with_capacity(resources.len());
        while order.len() < resources.len() {
            let next = (0..resources.len()).find(|&i| {
                !placed[i]
                    && resources[i]
                        .depends_on
                        .iter()
                        .all(|d| index.get(d.as_str()).is_none_or(|&j| placed[j]))
            });
            match next {
                Some(i) => {
                    placed[i] = true;
                    order.push(i);
                }
                None => return Err(vec!["dependency cycle".into()]),
            }
        }
        let mut slots: Vec<Option<DesiredResource>> = resources.into_iter().map(Some).collect();
        let resources = order.into_iter().filter_map(|i| slots[i].take()).collect();
        let mut graph = DesiredGraph {
            resources,
            requires,
        };
        // Listing by wave (stable within a wave) is still a topological order, and reads as
        // the order the resources are actually applied in.
        let waves = graph.waves();
        let mut keyed: Vec<(usize, DesiredResource)> =
            waves.into_iter().zip(graph.resources).collect();
        keyed.sort_by_key(|(wave, _)| *wave);
        graph.resources = keyed.into_iter().map(|(_, r)| r).collect();
        Ok(graph)
    }

    /// The resources of one kind, in apply order.
    pub fn of_kind(&self, kind: ResourceKind) -> impl Iterator<Item = &DesiredResource> {
        self.resources.iter().filter(move |r| r.kind == kind)
    }

    /// The resource with `id`.
    pub fn get(&self, id: &ArmId) -> Option<&DesiredResource> {
        self.resources.iter().find(|r| &r.id == id)
    }

    /// Per resource (lower-case id), the typical seconds from the start of its write to the end
    /// of the longest chain of resources that wait for it (see
    /// `ResourceKind::typical_create_seconds`). The resources with the longest tails hold the
    /// graph's completion back most: a firewall's policy, not the DNS zones beside it. Observed
    /// resources take no time of their own.
    pub fn tails(&self) -> BTreeMap<String, u32> {
        let mut tails: BTreeMap<String, u32> = BTreeMap::new();
        // Resources come after what they depend on, so walking backwards meets every
        // dependant before what it depends on.
        for r in self.resources.iter().rev() {
            let own = match r.ownership {
                Ownership::Managed => r.kind.typical_create_seconds(),
                Ownership::Observed => 0,
            };
            let id = r.id.as_str().to_ascii_lowercase();
            let after = tails.get(&id).copied().unwrap_or(0);
            let tail = own + after;
            tails.insert(id, tail);
            for dep in &r.depends_on {
                let entry = tails.entry(dep.as_str().to_ascii_lowercase()).or_insert(0);
                *entry = (*entry).max(tail);
            }
        }
        // Ids this graph only requires (another graph's) are not its to order.
        let ids: BTreeSet<String> = self
            .resources
            .iter()
            .map(|r| r.id.as_str().to_ascii_lowercase())
            .collect();
        tails.retain(|id, _| ids.contains(id));
        tails
    }

    /// Depth of each resource: 0 for those without in-graph dependencies. Resources of one depth
    /// can be written in parallel (locks permitting).
    pub fn waves(&self) -> Vec<usize> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        self.resources
            .iter()
            .map(|r| {
                let d = r
                    .depends_on
                    .iter()
                    .filter_map(|dep| depth.get(dep.as_str()))
                    .map(|d| d + 1)
                    .max()
                    .unwrap_or(0);
                depth.insert(r.id.as_str(), d);
                d
            })
            .collect()
    }
}
