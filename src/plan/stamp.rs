//! A Stamp's graph: VNet + subnets + NSGs, route table, Azure Firewall with its policy, the
//! Private Link Service, the private DNS zones its endpoints need, and its Front Door origin.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::address::{self, AddressPlan, SubnetRequest, SubnetRole};
use super::arm_id::ArmId;
use super::egress;
use super::error::{PlanError, PlanResult};
use super::global::{private_link_request_message, zone_home, GlobalIds, GlobalPlaneInput};
use super::graph::{Component, DesiredGraph, DesiredResource, ResourceKind};
use super::naming::StampNames;
use super::network::{private_dns_resources, virtual_network_body, SubnetAttachments, ZoneHome};
use super::nsg::{nsg_body, rules_for};
use crate::api::{PrivateLinkServiceMode, StampSpec};

/// Namespace, name and spec of a Stamp.
#[derive(Debug, Clone, Copy)]
pub struct StampInput<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Spec.
    pub spec: &'a StampSpec,
}

/// What the operator has already seen in Azure that refines the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampObservations {
    /// The firewall's actual private IP, once it exists (Azure gives the first free address of
    /// AzureFirewallSubnet, which the planner predicts; if Azure ever differs, Azure wins).
    pub firewall_private_ip: Option<Ipv4Addr>,
}

/// Roles of a stamp VNet, in carving order.
pub const STAMP_ROLES: [SubnetRole; 4] = [
    SubnetRole::App,
    SubnetRole::Ingress,
    SubnetRole::Firewall,
    SubnetRole::PrivateEndpoints,
];

/// A stamp, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct StampPlan {
    /// Deterministic names.
    pub names: StampNames,
    /// The stamp's resource group.
    pub resource_group: ArmId,
    /// Whether the operator creates (and deletes) that group.
    pub owns_resource_group: bool,
    /// Subnets.
    pub address: AddressPlan,
    /// The stamp's VNet.
    pub virtual_network: ArmId,
    /// The route table's next hop.
    pub firewall_private_ip: Ipv4Addr,
    /// The internal load balancer IP Front Door targets.
    pub load_balancer_ip: Ipv4Addr,
    /// The Private Link Service (created or adopted).
    pub private_link_service: ArmId,
    /// The stamp's origin in Front Door.
    pub front_door_origin: ArmId,
    /// The request message Front Door sends; only a connection carrying it is approved.
    pub request_message: String,
    /// Where its private DNS zones live.
    pub zone_home: ZoneHome,
    /// The graph.
    pub graph: DesiredGraph,
}

impl StampPlan {
    /// Id of the subnet with `role`.
    pub fn subnet_id(&self, role: SubnetRole) -> ArmId {
        self.virtual_network.child("subnets", role.azure_name())
    }
}

fn tags(stamp: StampInput<'_>, global: &str) -> Value {
    json!({
        "managed-by": "stamp-operator",
        "missioncritical.dev/global-plane": global,
        "missioncritical.dev/stamp": format!("{}/{}", stamp.namespace, stamp.name),
    })
}

/// Checks a reference the user wrote: an ARM id of `expected_type`, in `subscription`.
fn check_reference(
    field: &str,
    raw: &str,
    expected_type: &str,
    subscription: &str,
) -> PlanResult<ArmId> {
    let id = ArmId::parse(field, raw)?;
    if !id.resource_type().eq_ignore_ascii_case(expected_type) {
        return Err(PlanError::new(
            field,
            format!(
                "must be the id of a {expected_type}, not a {}",
                id.resource_type()
            ),
        ));
    }
    if !id.subscription().eq_ignore_ascii_case(subscription) {
        return Err(PlanError::new(
            field,
            format!("points into subscription {}, but this stamp lives in the GlobalPlane's subscription {subscription}", id.subscription()),
        ));
    }
    Ok(id)
}

/// Plans a stamp. `zones` holds the private DNS zones its PrivateEndpointSets need.
pub fn plan_stamp(
    stamp: StampInput<'_>,
    global: GlobalPlaneInput<'_>,
    zones: &BTreeSet<String>,
    seen: &StampObservations,
) -> PlanResult<StampPlan> {
    let spec = stamp.spec;
    if spec.global_plane_ref.name != global.name {
        return Err(PlanError::new(
            "spec.globalPlaneRef.name",
            format!(
                "refers to GlobalPlane {}, not {}",
                spec.global_plane_ref.name, global.name
            ),
        ));
    }
    let address = plan_stamp_addresses(spec)?;
    let sub = global.spec.subscription_id.as_str();
    let names = StampNames::new(stamp.namespace, stamp.name);
    let (rg_name, owns_resource_group) = match &spec.resource_group {
        Some(rg) => (rg.clone(), false),
        None => (names.resource_group(), true),
    };
    let rg = ArmId::resource_group(sub, &rg_name);
    let id =
        |provider_type: &str, name: String| ArmId::resource(sub, &rg_name, provider_type, &name);
    let vnet = id("Microsoft.Network/virtualNetworks", names.virtual_network());
    let subnet = |role: SubnetRole| {
        address.subnet(role).ok_or_else(|| {
            PlanError::new(
                "spec.subnets",
                format!("internal planner error: no {} subnet", role.azure_name()),
            )
        })
    };
    let firewall_subnet = subnet(SubnetRole::Firewall)?;
    let firewall_private_ip = seen
        .firewall_private_ip
        .unwrap_or_else(|| firewall_subnet.first_usable());
    let ingress_subnet = subnet(SubnetRole::Ingress)?;
    let load_balancer_ip = match &spec.ingress.load_balancer_ip {
        Some(raw) => {
            let ip: Ipv4Addr = raw.parse().map_err(|_| {
                PlanError::new(
                    "spec.ingress.loadBalancerIp",
                    format!("`{raw}` is not an IPv4 address"),
                )
            })?;
            if !ingress_subnet.can_assign(ip) {
                return Err(PlanError::new(
                    "spec.ingress.loadBalancerIp",
                    format!("{ip} is not an assignable address of the ingress subnet {} (Azure reserves the first four and the last)", ingress_subnet.cidr),
                ));
            }
            ip
        }
        None => ingress_subnet.first_usable(),
    };
    egress::check_allow_list(&spec.egress)?;

    let tags = tags(stamp, global.name);
    let location = spec.region.as_str();
    let mut resources = Vec::new();
    resources.push(if owns_resource_group {
        DesiredResource::managed(
            rg.clone(),
            ResourceKind::ResourceGroup,
            Component::ResourceGroup,
            json!({ "location": location, "tags": tags }),
        )
    } else {
        DesiredResource::observed(
            rg.clone(),
            ResourceKind::ResourceGroup,
            Component::ResourceGroup,
        )
    });

    // Network security groups, one per subnet that may carry one.
    let mut attachments: BTreeMap<SubnetRole, SubnetAttachments> = BTreeMap::new();
    for role in STAMP_ROLES {
        if let Some(rules) = rules_for(role, &address) {
            let nsg = id(
                "Microsoft.Network/networkSecurityGroups",
                names.nsg(role.slug()),
            );
            resources.push(
                DesiredResource::managed(
                    nsg.clone(),
                    ResourceKind::NetworkSecurityGroup,
                    Component::Network,
                    nsg_body(location, &tags, &rules),
                )
                .after([&rg]),
            );
            attachments.insert(
                role,
                SubnetAttachments {
                    nsg: Some(nsg),
                    route_table: None,
                },
            );
        }
    }
    // The route table exists before the firewall: until the firewall is up, the app subnet's
    // egress fails closed instead of leaking out through default outbound access.
    let route_table = id("Microsoft.Network/routeTables", names.route_table());
    resources.push(
        DesiredResource::managed(
            route_table.clone(),
            ResourceKind::RouteTable,
            Component::Egress,
            egress::route_table_body(location, &tags, &firewall_private_ip.to_string()),
        )
        .after([&rg]),
    );
    attachments.entry(SubnetRole::App).or_default().route_table = Some(route_table.clone());
    let vnet_deps: Vec<ArmId> = attachments
        .values()
        .flat_map(|a| a.nsg.iter().chain(a.route_table.iter()))
        .cloned()
        .collect();
    resources.push(
        DesiredResource::managed(
            vnet.clone(),
            ResourceKind::VirtualNetwork,
            Component::Network,
            virtual_network_body(location, &tags, &address, &attachments),
        )
        .after(vnet_deps.iter())
        .locked_by(&vnet),
    );

    // Egress: public IP, policy, rule collection groups (one at a time: Azure refuses
    // concurrent writes to one policy), then the firewall.
    let public_ip = id(
        "Microsoft.Network/publicIPAddresses",
        names.firewall_public_ip(),
    );
    let policy = id(
        "Microsoft.Network/firewallPolicies",
        names.firewall_policy(),
    );
    resources.push(
        DesiredResource::managed(
            public_ip.clone(),
            ResourceKind::PublicIpAddress,
            Component::Egress,
            egress::public_ip_body(&spec.egress, location, &tags),
        )
        .after([&rg]),
    );
    resources.push(
        DesiredResource::managed(
            policy.clone(),
            ResourceKind::FirewallPolicy,
            Component::Egress,
            egress::firewall_policy_body(&spec.egress, location, &tags),
        )
        .after([&rg]),
    );
    let app_prefix = subnet(SubnetRole::App)?.cidr.to_string();
    let mut last_policy_write = policy.clone();
    for (name, body) in egress::rule_collection_groups(&spec.egress, location, &app_prefix) {
        let rcg = policy.child("ruleCollectionGroups", &name);
        resources.push(
            DesiredResource::managed(
                rcg.clone(),
                ResourceKind::RuleCollectionGroup,
                Component::Egress,
                body,
            )
            .after([&last_policy_write])
            .locked_by(&policy),
        );
        last_policy_write = rcg;
    }
    let firewall = id("Microsoft.Network/azureFirewalls", names.firewall());
    let firewall_subnet_id = vnet.child("subnets", SubnetRole::Firewall.azure_name());
    resources.push(
        DesiredResource::managed(
            firewall.clone(),
            ResourceKind::AzureFirewall,
            Component::Egress,
            egress::firewall_body(
                &spec.egress,
                location,
                &tags,
                firewall_subnet_id.as_str(),
                public_ip.as_str(),
                policy.as_str(),
            ),
        )
        .after([&vnet, &public_ip, &last_policy_write]),
    );

    // Ingress: the Private Link Service, adopted or created.
    let pls_field = "spec.ingress.privateLinkService";
    let pls = &spec.ingress.private_link_service;
    let private_link_service = match pls.mode {
        PrivateLinkServiceMode::Adopt => {
            let raw = pls.resource_id.as_deref().ok_or_else(|| {
                PlanError::new(
                    format!("{pls_field}.resourceId"),
                    "mode Adopt needs the ARM id of the Private Link Service AKS created",
                )
            })?;
            let adopted = check_reference(
                &format!("{pls_field}.resourceId"),
                raw,
                "Microsoft.Network/privateLinkServices",
                sub,
            )?;
            resources.push(DesiredResource::observed(
                adopted.clone(),
                ResourceKind::PrivateLinkService,
                Component::Ingress,
            ));
            adopted
        }
        PrivateLinkServiceMode::Create => {
            let raw = pls.frontend_ip_configuration_id.as_deref().ok_or_else(|| {
                PlanError::new(
                    format!("{pls_field}.frontendIpConfigurationId"),
                    "mode Create needs the internal load balancer frontend IP configuration id",
                )
            })?;
            let frontend = check_reference(
                &format!("{pls_field}.frontendIpConfigurationId"),
                raw,
                "Microsoft.Network/loadBalancers/frontendIPConfigurations",
                sub,
            )?;
            let created = id(
                "Microsoft.Network/privateLinkServices",
                names.private_link_service(),
            );
            let ingress_subnet_id = vnet.child("subnets", SubnetRole::Ingress.azure_name());
            resources.push(
                DesiredResource::managed(
                    created.clone(),
                    ResourceKind::PrivateLinkService,
                    Component::Ingress,
                    private_link_service_body(location, &tags, &frontend, &ingress_subnet_id),
                )
                .after([&vnet]),
            );
            created
        }
    };

    // Private DNS zones for the stamp's endpoints, linked to its VNet.
    let home = zone_home(global.spec, &rg)?;
    let (dns, _) = private_dns_resources(&home, zones, &vnet, &tags, std::slice::from_ref(&rg));
    resources.extend(dns);

    // The stamp's origin in the GlobalPlane's Front Door.
    let global_ids = GlobalIds::new(global);
    let front_door_origin = global_ids
        .origin_group
        .child("origins", &names.front_door_origin());
    let request_message = private_link_request_message(global.name, stamp.namespace, stamp.name);
    let fd = &spec.front_door;
    resources.push(
        DesiredResource::managed(
            front_door_origin.clone(),
            ResourceKind::FrontDoorOrigin,
            Component::FrontDoorOrigin,
            json!({
                "properties": {
                    "hostName": load_balancer_ip.to_string(),
                    "originHostHeader": spec.ingress.origin_host_header.clone().unwrap_or_else(|| load_balancer_ip.to_string()),
                    "httpPort": 80,
                    "httpsPort": 443,
                    "priority": fd.priority,
                    "weight": fd.weight,
                    "enabledState": if fd.enabled { "Enabled" } else { "Disabled" },
                    "enforceCertificateNameCheck": true,
                    "sharedPrivateLinkResource": {
                        "privateLink": { "id": private_link_service },
                        "privateLinkLocation": location,
                        "requestMessage": request_message,
                    }
                }
            }),
        )
        .after([&private_link_service, &global_ids.origin_group])
        // Front Door asks for its connection on the stamp's Private Link Service.
        .moving(&private_link_service),
    );

    let graph =
        DesiredGraph::new(resources, vec![global_ids.origin_group.clone()]).map_err(|missing| {
            PlanError::new(
                "spec",
                format!("internal planner error: unresolved dependencies {missing:?}"),
            )
        })?;
    Ok(StampPlan {
        names,
        resource_group: rg,
        owns_resource_group,
        address,
        virtual_network: vnet,
        firewall_private_ip,
        load_balancer_ip,
        private_link_service,
        front_door_origin,
        request_message,
        zone_home: home,
        graph,
    })
}

/// The stamp's address plan: given subnets checked, the rest carved.
pub fn plan_stamp_addresses(spec: &StampSpec) -> PlanResult<AddressPlan> {
    let space = address::parse_space("spec.addressSpace", spec.address_space.as_str())?;
    let given = spec.subnets.clone().unwrap_or_default();
    let requests = [
        (SubnetRole::App, given.app, space.prefix_len() + 1, Some(27)),
        (SubnetRole::Ingress, given.ingress, 28, None),
        (SubnetRole::Firewall, given.firewall, 26, None),
        (
            SubnetRole::PrivateEndpoints,
            given.private_endpoints,
            address::private_endpoint_prefix(space),
            None,
        ),
    ]
    .into_iter()
    .map(|(role, given, prefix, shrink_to)| SubnetRequest {
        role,
        given,
        prefix,
        shrink_to,
    })
    .collect::<Vec<_>>();
    address::plan_addresses(space, "spec.subnets", &requests)
}

fn private_link_service_body(
    location: &str,
    tags: &Value,
    frontend: &ArmId,
    subnet: &ArmId,
) -> Value {
    json!({
        "location": location,
        "tags": tags,
        "properties": {
            "loadBalancerFrontendIpConfigurations": [{ "id": frontend }],
            "ipConfigurations": [{
                "name": "nat",
                "properties": { "privateIPAllocationMethod": "Dynamic", "privateIPAddressVersion": "IPv4", "subnet": { "id": subnet }, "primary": true }
            }],
            // Nobody is auto-approved: Front Door's connection is approved by the operator only
            // when it carries the expected request message.
            "visibility": { "subscriptions": [] },
            "autoApproval": { "subscriptions": [] },
            "enableProxyProtocol": false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GlobalPlaneSpec;
    use crate::plan::graph::Ownership;

    const SUB: &str = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";

    fn global() -> GlobalPlaneSpec {
        serde_json::from_value(json!({ "subscriptionId": SUB, "resourceGroup": "rg-g", "location": "westeurope", "frontDoor": {} })).unwrap()
    }

    fn spec(pls: Value) -> StampSpec {
        serde_json::from_value(json!({
            "globalPlaneRef": { "name": "g" }, "region": "westeurope", "addressSpace": "10.10.0.0/20",
            "ingress": { "privateLinkService": pls }
        }))
        .unwrap()
    }

    fn create_mode() -> StampSpec {
        spec(
            json!({ "mode": "Create", "frontendIpConfigurationId": format!("/subscriptions/{SUB}/resourceGroups/mc/providers/Microsoft.Network/loadBalancers/lb/frontendIPConfigurations/fe") }),
        )
    }

    fn plan(spec: &StampSpec, zones: &[&str], seen: &StampObservations) -> StampPlan {
        let g = global();
        let zones: BTreeSet<String> = zones.iter().map(|z| z.to_string()).collect();
        plan_stamp(
            StampInput {
                namespace: "ns",
                name: "weu",
                spec,
            },
            GlobalPlaneInput {
                name: "g",
                spec: &g,
            },
            &zones,
            seen,
        )
        .unwrap()
    }

    fn by_kind(plan: &StampPlan, kind: ResourceKind) -> Vec<&DesiredResource> {
        plan.graph.of_kind(kind).collect()
    }

    #[test]
    fn app_subnet_routes_everything_to_the_predicted_firewall_ip() {
        let p = plan(&create_mode(), &[], &StampObservations::default());
        assert_eq!(p.firewall_private_ip.to_string(), "10.10.8.132");
        let rt = by_kind(&p, ResourceKind::RouteTable)[0];
        assert_eq!(
            rt.body["properties"]["routes"][0]["properties"]["nextHopIpAddress"],
            "10.10.8.132"
        );
        let vnet = by_kind(&p, ResourceKind::VirtualNetwork)[0];
        let subnets = vnet.body["properties"]["subnets"].as_array().unwrap();
        let app = subnets.iter().find(|s| s["name"] == "snet-app").unwrap();
        assert_eq!(app["properties"]["routeTable"]["id"], json!(rt.id));
        let fw = subnets
            .iter()
            .find(|s| s["name"] == "AzureFirewallSubnet")
            .unwrap();
        assert!(
            fw["properties"].get("networkSecurityGroup").is_none(),
            "Azure refuses an NSG on AzureFirewallSubnet"
        );
        assert!(fw["properties"].get("routeTable").is_none());
        let pe = subnets
            .iter()
            .find(|s| s["name"] == "snet-private-endpoints")
            .unwrap();
        assert_eq!(
            pe["properties"]["privateEndpointNetworkPolicies"],
            "Enabled"
        );
        let ingress = subnets
            .iter()
            .find(|s| s["name"] == "snet-ingress")
            .unwrap();
        assert_eq!(
            ingress["properties"]["privateLinkServiceNetworkPolicies"],
            "Disabled"
        );
        assert!(subnets
            .iter()
            .filter(|s| s["name"] != "AzureFirewallSubnet")
            .all(|s| s["properties"]["networkSecurityGroup"]["id"].is_string()));
    }

    #[test]
    fn an_observed_firewall_ip_wins_over_the_prediction() {
        let seen = StampObservations {
            firewall_private_ip: Some("10.10.8.140".parse().unwrap()),
        };
        let p = plan(&create_mode(), &[], &seen);
        let rt = by_kind(&p, ResourceKind::RouteTable)[0];
        assert_eq!(
            rt.body["properties"]["routes"][0]["properties"]["nextHopIpAddress"],
            "10.10.8.140"
        );
    }

    #[test]
    fn the_firewall_waits_for_its_rules_and_rule_groups_are_serialised() {
        let mut s = create_mode();
        s.egress.allow = vec![crate::api::FqdnAllowRule {
            name: "gh".into(),
            fqdns: vec!["github.com".into()],
            protocol: Default::default(),
            port: None,
        }];
        let p = plan(&s, &[], &StampObservations::default());
        let rcgs = by_kind(&p, ResourceKind::RuleCollectionGroup);
        assert_eq!(rcgs.len(), 2);
        assert!(
            rcgs[1].depends_on.contains(&rcgs[0].id),
            "second group waits for the first"
        );
        let fw = by_kind(&p, ResourceKind::AzureFirewall)[0];
        assert!(fw.depends_on.contains(&rcgs[1].id));
        assert!(fw.depends_on.contains(&p.virtual_network));
    }

    #[test]
    fn the_firewall_chain_has_the_longest_tail_and_dns_zones_a_short_one() {
        let p = plan(
            &create_mode(),
            &["privatelink.vaultcore.azure.net"],
            &StampObservations::default(),
        );
        let tails = p.graph.tails();
        let tail = |kind| {
            let r = by_kind(&p, kind)[0];
            tails[&r.id.as_str().to_ascii_lowercase()]
        };
        let firewall = tail(ResourceKind::AzureFirewall);
        assert_eq!(firewall, 360, "nothing in the stamp waits for its firewall");
        // Policy, then its rule collection groups one after another, then the firewall.
        let rule_groups = by_kind(&p, ResourceKind::RuleCollectionGroup).len() as u32;
        assert!(rule_groups >= 1);
        let chain = 12 + 25 * rule_groups + 360;
        assert_eq!(tail(ResourceKind::FirewallPolicy), chain);
        assert_eq!(tail(ResourceKind::ResourceGroup), 1 + chain);
        assert!(tail(ResourceKind::PrivateDnsZone) < tail(ResourceKind::FirewallPolicy) / 4);
        assert_eq!(tails.len(), p.graph.resources.len());
    }

    #[test]
    fn adopt_mode_observes_the_pls_and_create_mode_writes_it() {
        let adopt = spec(
            json!({ "mode": "Adopt", "resourceId": format!("/subscriptions/{SUB}/resourceGroups/mc/providers/Microsoft.Network/privateLinkServices/aks-pls") }),
        );
        let p = plan(&adopt, &[], &StampObservations::default());
        let pls = by_kind(&p, ResourceKind::PrivateLinkService)[0];
        assert_eq!(pls.ownership, Ownership::Observed);
        assert_eq!(pls.id.name(), "aks-pls");
        let p = plan(&create_mode(), &[], &StampObservations::default());
        let pls = by_kind(&p, ResourceKind::PrivateLinkService)[0];
        assert_eq!(pls.ownership, Ownership::Managed);
        assert_eq!(
            pls.body["properties"]["autoApproval"]["subscriptions"],
            json!([])
        );
    }

    #[test]
    fn the_origin_targets_the_pls_with_the_expected_request_message() {
        let p = plan(&create_mode(), &[], &StampObservations::default());
        let origin = by_kind(&p, ResourceKind::FrontDoorOrigin)[0];
        let link = &origin.body["properties"]["sharedPrivateLinkResource"];
        assert_eq!(link["privateLink"]["id"], json!(p.private_link_service));
        assert_eq!(link["requestMessage"], json!(p.request_message));
        assert_eq!(link["privateLinkLocation"], "westeurope");
        assert_eq!(origin.body["properties"]["hostName"], "10.10.8.196");
        assert!(p
            .graph
            .requires
            .iter()
            .any(|r| r.as_str().ends_with("/originGroups/stamps")));
    }

    #[test]
    fn zones_are_created_and_linked_per_stamp() {
        let p = plan(
            &create_mode(),
            &["privatelink.vaultcore.azure.net", "privatelink.azurecr.io"],
            &StampObservations::default(),
        );
        assert_eq!(by_kind(&p, ResourceKind::PrivateDnsZone).len(), 2);
        let links = by_kind(&p, ResourceKind::VirtualNetworkLink);
        assert_eq!(links.len(), 2);
        assert!(links
            .iter()
            .all(|l| l.body["properties"]["virtualNetwork"]["id"] == json!(p.virtual_network)));
    }

    #[test]
    fn vnet_writes_are_locked_by_the_vnet() {
        let p = plan(&create_mode(), &[], &StampObservations::default());
        let vnet = by_kind(&p, ResourceKind::VirtualNetwork)[0];
        assert_eq!(vnet.lock.as_ref(), Some(&p.virtual_network));
    }

    #[test]
    fn an_existing_resource_group_is_observed_not_owned() {
        let mut s = create_mode();
        s.resource_group = Some("rg-existing".into());
        let p = plan(&s, &[], &StampObservations::default());
        assert!(!p.owns_resource_group);
        assert_eq!(
            by_kind(&p, ResourceKind::ResourceGroup)[0].ownership,
            Ownership::Observed
        );
        assert!(p
            .virtual_network
            .as_str()
            .contains("/resourceGroups/rg-existing/"));
    }

    #[test]
    fn a_stamp_of_another_global_plane_is_refused() {
        let g = global();
        let s = create_mode();
        let err = plan_stamp(
            StampInput {
                namespace: "ns",
                name: "weu",
                spec: &s,
            },
            GlobalPlaneInput {
                name: "other",
                spec: &g,
            },
            &BTreeSet::new(),
            &StampObservations::default(),
        )
        .unwrap_err();
        assert_eq!(err.field, "spec.globalPlaneRef.name");
    }
}
