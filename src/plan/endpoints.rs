//! A PrivateEndpointSet's graph: one private endpoint per entry in the host VNet's
//! private-endpoint subnet, each with a DNS zone group writing its A records.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::address::SubnetBlock;
use super::arm_id::ArmId;
use super::dns::{self, public_suffix};
use super::error::{PlanError, PlanResult};
use super::graph::{Component, DesiredGraph, DesiredResource, ResourceKind};
use super::naming::short_hash;
use super::network::{zone_group_body, ZoneHome};
use super::owner::Owner;
use crate::api::{EndpointSpec, PrivateEndpointSetSpec};

/// Namespace, name and spec of a PrivateEndpointSet.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSetInput<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Spec.
    pub spec: &'a PrivateEndpointSetSpec,
}

/// The VNet that hosts a set's endpoints (a stamp's or an operations network's).
#[derive(Debug, Clone)]
pub struct EndpointHost {
    /// Region of the VNet.
    pub region: String,
    /// Resource group the endpoints go in.
    pub resource_group: ArmId,
    /// The VNet.
    pub virtual_network: ArmId,
    /// Its private-endpoint subnet.
    pub subnet: SubnetBlock,
    /// Where the zones live.
    pub zone_home: ZoneHome,
    /// Subscriptions endpoints may target.
    pub allowed_subscriptions: Vec<String>,
    /// Tags for what the set creates.
    pub tags: Value,
}

impl EndpointHost {
    /// Id of the private-endpoint subnet.
    pub fn subnet_id(&self) -> ArmId {
        self.virtual_network
            .child("subnets", self.subnet.role.azure_name())
    }
}

/// One endpoint, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEndpoint {
    /// Name from the spec.
    pub name: String,
    /// The private endpoint's id.
    pub id: ArmId,
    /// Its zone.
    pub zone: String,
    /// Addresses it takes from the subnet.
    pub addresses: u32,
    /// FQDNs clients resolve to its IPs.
    pub fqdns: Vec<String>,
}

/// A PrivateEndpointSet, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSetPlan {
    /// Endpoints.
    pub endpoints: Vec<PlannedEndpoint>,
    /// Addresses the set takes from the subnet.
    pub addresses: u32,
    /// The graph (requires the host's subnet and zones).
    pub graph: DesiredGraph,
}

/// Resolves one endpoint: its zone, address count, FQDNs; refuses what Azure would.
fn resolve(
    field: &str,
    endpoint: &EndpointSpec,
    host: &EndpointHost,
) -> PlanResult<(ArmId, String, u32)> {
    let target = ArmId::parse(
        &format!("{field}.targetResourceId"),
        &endpoint.target_resource_id,
    )?;
    if target.parent().is_some() {
        return Err(PlanError::new(
            format!("{field}.targetResourceId"),
            "must be a top-level resource (the vault, registry, account or namespace itself)",
        ));
    }
    if !host
        .allowed_subscriptions
        .iter()
        .any(|s| s.eq_ignore_ascii_case(target.subscription()))
    {
        return Err(PlanError::new(
            format!("{field}.targetResourceId"),
            format!(
                "subscription {} is not allowed; the GlobalPlane allows {}",
                target.subscription(),
                host.allowed_subscriptions.join(", ")
            ),
        ));
    }
    let known = dns::group_id_info(&endpoint.group_id);
    if let Some(info) = &known {
        let resource_type = target.resource_type().to_ascii_lowercase();
        if !info.resource_types.contains(&resource_type.as_str()) {
            return Err(PlanError::new(
                format!("{field}.groupId"),
                format!(
                    "groupId {} is not offered by {} (it belongs to {})",
                    endpoint.group_id,
                    target.resource_type(),
                    info.resource_types.join(" or ")
                ),
            ));
        }
    }
    let zone = match (&endpoint.private_dns_zone, &known) {
        (Some(zone), _) => zone.clone(),
        (None, Some(_)) => dns::zone_for(&endpoint.group_id, &host.region).unwrap_or_default(),
        (None, None) => {
            return Err(PlanError::new(
                format!("{field}.groupId"),
                format!(
                    "unknown groupId {}: set privateDnsZone to the privatelink zone it needs",
                    endpoint.group_id
                ),
            ))
        }
    };
    let addresses = match endpoint.target_regions.len() {
        0 => known.map_or(1, |info| info.addresses),
        // One for the global name, one per region the target serves from.
        regions if dns::serves_regions(&zone) => 1 + regions as u32,
        _ => {
            return Err(PlanError::new(
                format!("{field}.targetRegions"),
                format!(
                    "groupId {}'s endpoint serves one region; targetRegions applies to registries and Cosmos DB accounts",
                    endpoint.group_id
                ),
            ))
        }
    };
    Ok((target, zone, addresses))
}

/// The public names an endpoint to `target` in `zone` serves: the global one, then one per
/// region the target serves from.
fn endpoint_names(target: &ArmId, zone: &str, regions: &[String]) -> Vec<String> {
    let name = target.name().to_ascii_lowercase();
    let mut names = vec![format!("{name}.{}", public_suffix(zone))];
    names.extend(
        regions
            .iter()
            .filter_map(|region| dns::regional_name(zone, &name, region)),
    );
    names
}

/// The zones a set needs, for the host's plan. Entries the planner refuses are skipped here;
/// [`plan_endpoint_set`] reports them.
pub fn zones_needed(set: &PrivateEndpointSetSpec, region: &str) -> BTreeSet<String> {
    set.endpoints
        .iter()
        .filter_map(|e| {
            e.private_dns_zone
                .clone()
                .or_else(|| dns::zone_for(&e.group_id, region))
        })
        .collect()
}

/// Plans a set in `host`. `taken_by_others` is the number of subnet addresses other sets in the
/// same host already claim.
pub fn plan_endpoint_set(
    set: EndpointSetInput<'_>,
    host: &EndpointHost,
    taken_by_others: u32,
) -> PlanResult<EndpointSetPlan> {
    let mut names = BTreeSet::new();
    let mut endpoints = Vec::new();
    let mut resources = Vec::new();
    let subnet_id = host.subnet_id();
    let mut requires = vec![subnet_id.clone()];
    let mut targets: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, endpoint) in set.spec.endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{i}]");
        if !names.insert(endpoint.name.as_str()) {
            return Err(PlanError::new(
                format!("{field}.name"),
                format!("endpoint name {} is used twice", endpoint.name),
            ));
        }
        let (target, zone, addresses) = resolve(&field, endpoint, host)?;
        if let Some(first) = targets.insert(
            (
                target.as_str().to_ascii_lowercase(),
                endpoint.group_id.clone(),
            ),
            i,
        ) {
            return Err(PlanError::new(
                format!("{field}.targetResourceId"),
                format!("spec.endpoints[{first}] already reaches {} ({}); a second endpoint would fight it for the same DNS record", target.name(), endpoint.group_id),
            ));
        }
        let pe_name = format!(
            "pe-{}-{}",
            endpoint.name,
            short_hash(&format!("{}/{}/{}", set.namespace, set.name, endpoint.name))
        );
        let pe_id = ArmId::resource(
            host.resource_group.subscription(),
            host.resource_group.resource_group_name(),
            "Microsoft.Network/privateEndpoints",
            &pe_name,
        );
        resources.push(
            DesiredResource::managed(
                pe_id.clone(),
                ResourceKind::PrivateEndpoint,
                Component::PrivateEndpoints,
                json!({
                    "location": host.region,
                    "tags": Owner::endpoint_set(set.namespace, set.name).tagged(host.tags.clone()),
                    "properties": {
                        "subnet": { "id": subnet_id },
                        "customNetworkInterfaceName": format!("nic-{pe_name}"),
                        "privateLinkServiceConnections": [{
                            "name": endpoint.name,
                            "properties": { "privateLinkServiceId": target, "groupIds": [endpoint.group_id] }
                        }]
                    }
                }),
            )
            .after([&subnet_id]),
        );
        let zone_id = host.zone_home.zone_id(&zone);
        let mut zone_group = DesiredResource::managed(
            pe_id.child("privateDnsZoneGroups", "default"),
            ResourceKind::PrivateDnsZoneGroup,
            Component::PrivateEndpoints,
            zone_group_body(&host.zone_home, std::slice::from_ref(&zone)),
        )
        .after([&pe_id]);
        if matches!(host.zone_home, ZoneHome::Managed(_)) {
            zone_group = zone_group.after([&zone_id]);
            requires.push(zone_id);
        }
        resources.push(zone_group);
        endpoints.push(PlannedEndpoint {
            name: endpoint.name.clone(),
            id: pe_id,
            fqdns: endpoint_names(&target, &zone, &endpoint.target_regions),
            zone,
            addresses,
        });
    }
    let addresses: u32 = endpoints.iter().map(|e| e.addresses).sum();
    let usable = host.subnet.usable();
    if addresses + taken_by_others > usable {
        return Err(PlanError::new(
            "spec.endpoints",
            format!(
                "needs {addresses} addresses but {} {} has {usable} usable, {taken_by_others} of them already claimed by other sets",
                host.subnet.role.azure_name(),
                host.subnet.cidr
            ),
        ));
    }
    requires.sort();
    requires.dedup();
    let graph = DesiredGraph::new(resources, requires).map_err(|missing| {
        PlanError::new(
            "spec",
            format!("internal planner error: unresolved dependencies {missing:?}"),
        )
    })?;
    Ok(EndpointSetPlan {
        endpoints,
        addresses,
        graph,
    })
}
