//! VNet bodies with their subnets inline, and the private DNS zones linked to a VNet.
//!
//! Subnets go inline in one VNet PUT: a subnet PUT replaces the whole subnet, and concurrent
//! subnet writes to one VNet fail with `AnotherOperationInProgress`, so one write of the whole
//! VNet is both cheaper and safer than a write per subnet.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::address::{AddressPlan, SubnetRole};
use super::arm_id::ArmId;
use super::dns::zone_config_name;
use super::graph::{Component, DesiredResource, ResourceKind};

/// What one subnet is attached to.
#[derive(Debug, Clone, Default)]
pub struct SubnetAttachments {
    /// NSG id.
    pub nsg: Option<ArmId>,
    /// Route table id.
    pub route_table: Option<ArmId>,
}

/// The VNet body with every subnet of `plan` inline.
pub fn virtual_network_body(
    location: &str,
    tags: &Value,
    plan: &AddressPlan,
    attachments: &BTreeMap<SubnetRole, SubnetAttachments>,
) -> Value {
    let subnets: Vec<Value> = plan
        .subnets
        .iter()
        .map(|subnet| {
            let mut props = json!({
                "addressPrefix": subnet.cidr.to_string(),
                // A private endpoint subnet needs network policies on for its NSG to apply.
                "privateEndpointNetworkPolicies": if subnet.role == SubnetRole::PrivateEndpoints { "Enabled" } else { "Disabled" },
                // A Private Link Service subnet needs them off (Azure refuses the PLS otherwise).
                "privateLinkServiceNetworkPolicies": if subnet.role == SubnetRole::Ingress { "Disabled" } else { "Enabled" },
            });
            if subnet.role != SubnetRole::Firewall {
                // No implicit outbound internet: egress only through the firewall.
                props["defaultOutboundAccess"] = json!(false);
            }
            if let Some(attached) = attachments.get(&subnet.role) {
                if let Some(nsg) = &attached.nsg {
                    props["networkSecurityGroup"] = json!({ "id": nsg });
                }
                if let Some(rt) = &attached.route_table {
                    props["routeTable"] = json!({ "id": rt });
                }
            }
            json!({ "name": subnet.role.azure_name(), "properties": props })
        })
        .collect();
    json!({
        "location": location,
        "tags": tags,
        "properties": {
            "addressSpace": { "addressPrefixes": [plan.space.to_string()] },
            "subnets": subnets,
        }
    })
}

/// Where the `privatelink.*` zones of a VNet live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneHome {
    /// Created per VNet in this resource group (managed mode).
    Managed(ArmId),
    /// Already exist in this resource group of a connectivity subscription (external mode).
    External(ArmId),
}

impl ZoneHome {
    /// The id of `zone` in its home.
    pub fn zone_id(&self, zone: &str) -> ArmId {
        let (ZoneHome::Managed(rg) | ZoneHome::External(rg)) = self;
        ArmId::resource(
            rg.subscription(),
            rg.resource_group_name(),
            "Microsoft.Network/privateDnsZones",
            zone,
        )
    }
}

/// Zones and VNet links for `zones` (managed mode only; external zones are someone else's).
/// Returns the resources and, per zone, the ids a zone group must wait for.
pub fn private_dns_resources(
    home: &ZoneHome,
    zones: &BTreeSet<String>,
    vnet_id: &ArmId,
    tags: &Value,
    after: &[ArmId],
) -> (Vec<DesiredResource>, BTreeMap<String, Vec<ArmId>>) {
    let mut resources = Vec::new();
    let mut ready_ids = BTreeMap::new();
    for zone in zones {
        let zone_id = home.zone_id(zone);
        match home {
            ZoneHome::Managed(_) => {
                let link_id =
                    zone_id.child("virtualNetworkLinks", &format!("link-{}", vnet_id.name()));
                resources.push(
                    DesiredResource::managed(
                        zone_id.clone(),
                        ResourceKind::PrivateDnsZone,
                        Component::PrivateDns,
                        json!({ "location": "global", "tags": tags }),
                    )
                    .after(after),
                );
                resources.push(
                    DesiredResource::managed(
                        link_id.clone(),
                        ResourceKind::VirtualNetworkLink,
                        Component::PrivateDns,
                        json!({
                            "location": "global",
                            "tags": tags,
                            "properties": { "virtualNetwork": { "id": vnet_id }, "registrationEnabled": false }
                        }),
                    )
                    .after([&zone_id, vnet_id]),
                );
                ready_ids.insert(zone.clone(), vec![zone_id, link_id]);
            }
            ZoneHome::External(_) => {
                ready_ids.insert(zone.clone(), Vec::new());
            }
        }
    }
    (resources, ready_ids)
}

/// Body of a private endpoint's DNS zone group for `zones`.
pub fn zone_group_body(home: &ZoneHome, zones: &[String]) -> Value {
    let configs: Vec<Value> = zones
        .iter()
        .map(|zone| json!({ "name": zone_config_name(zone), "properties": { "privateDnsZoneId": home.zone_id(zone) } }))
        .collect();
    json!({ "properties": { "privateDnsZoneConfigs": configs } })
}
