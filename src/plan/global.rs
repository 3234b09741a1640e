//! The GlobalPlane's graph: Front Door Premium + WAF, and the operations networks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::address::{self, AddressPlan, SubnetRequest, SubnetRole};
use super::arm_id::ArmId;
use super::dns::ports_for_zones;
use super::error::{PlanError, PlanResult};
use super::graph::{Component, DesiredGraph, DesiredResource, ResourceKind};
use super::naming::alphanumeric;
use super::network::{private_dns_resources, virtual_network_body, SubnetAttachments, ZoneHome};
use super::nsg::{nsg_body, rules_for};
use super::operations_egress::{operations_firewall, OperationsFirewall};
use super::owner::Owner;
use crate::api::{
    CidrBlock, ForwardingProtocol, FrontDoorSku, GlobalPlaneSpec, ManagedRuleSetAction,
    OperationsEgressMode, OperationsNetworkSpec, PrivateDnsMode, ProbeMethod, ProbeProtocol,
    WafMode,
};

/// Name and spec of a GlobalPlane.
#[derive(Debug, Clone, Copy)]
pub struct GlobalPlaneInput<'a> {
    /// Object name.
    pub name: &'a str,
    /// Spec.
    pub spec: &'a GlobalPlaneSpec,
}

/// Ids of the global resources, derived from the GlobalPlane alone (stamps need them too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalIds {
    /// Global resource group.
    pub resource_group: ArmId,
    /// Front Door profile.
    pub profile: ArmId,
    /// Front Door endpoint.
    pub endpoint: ArmId,
    /// The origin group every stamp joins.
    pub origin_group: ArmId,
    /// WAF policy.
    pub waf_policy: ArmId,
    /// Security policy binding the WAF to the endpoint.
    pub security_policy: ArmId,
}

impl GlobalIds {
    /// Ids for `global`.
    pub fn new(global: GlobalPlaneInput<'_>) -> GlobalIds {
        let spec = global.spec;
        let sub = spec.subscription_id.as_str();
        let rg = spec.resource_group.as_str();
        let profile = ArmId::resource(
            sub,
            rg,
            "Microsoft.Cdn/profiles",
            &format!("afd-{}", global.name),
        );
        let endpoint_name = spec
            .front_door
            .endpoint_name
            .clone()
            .unwrap_or_else(|| global.name.to_string());
        GlobalIds {
            resource_group: ArmId::resource_group(sub, rg),
            endpoint: profile.child("afdEndpoints", &endpoint_name),
            origin_group: profile.child("originGroups", "stamps"),
            security_policy: profile.child("securityPolicies", "waf"),
            waf_policy: ArmId::resource(
                sub,
                rg,
                "Microsoft.Network/FrontDoorWebApplicationFirewallPolicies",
                &format!("waf{}", alphanumeric(global.name)),
            ),
            profile,
        }
    }
}

/// `Ok` when objects of `namespace` may join `global` (its `spec.allowedNamespaces`).
pub fn admit_namespace(global: GlobalPlaneInput<'_>, namespace: &str) -> PlanResult<()> {
    match &global.spec.allowed_namespaces {
        Some(allowed) if !allowed.list.iter().any(|n| n == namespace) => Err(PlanError::new(
            "metadata.namespace",
            format!(
                "namespace {namespace} may not join GlobalPlane {}: it is not in the GlobalPlane's spec.allowedNamespaces",
                global.name
            ),
        )),
        _ => Ok(()),
    }
}

/// One operations network, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationsNetworkPlan {
    /// Region.
    pub region: String,
    /// Its resource group.
    pub resource_group: ArmId,
    /// Its VNet.
    pub virtual_network: ArmId,
    /// Its subnets.
    pub address: AddressPlan,
    /// Its way out, if it has one.
    pub firewall: Option<OperationsFirewall>,
    /// The private DNS zones its endpoints need (which services they reach).
    pub zones: BTreeSet<String>,
}

impl OperationsNetworkPlan {
    /// Id of the subnet with `role`.
    pub fn subnet_id(&self, role: SubnetRole) -> ArmId {
        self.virtual_network.child("subnets", role.azure_name())
    }
}

/// A GlobalPlane, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPlanePlan {
    /// Ids of the global resources.
    pub ids: GlobalIds,
    /// Operations networks by region.
    pub operations_networks: Vec<OperationsNetworkPlan>,
    /// The graph.
    pub graph: DesiredGraph,
}

/// Where the zones of a VNet in `resource_group` live, per the GlobalPlane's DNS mode.
pub fn zone_home(spec: &GlobalPlaneSpec, vnet_resource_group: &ArmId) -> PlanResult<ZoneHome> {
    match spec.private_dns.mode {
        PrivateDnsMode::Managed => Ok(ZoneHome::Managed(vnet_resource_group.clone())),
        PrivateDnsMode::External => {
            let raw = spec
                .private_dns
                .external_resource_group_id
                .as_deref()
                .ok_or_else(|| {
                    PlanError::new(
                        "spec.privateDns.externalResourceGroupId",
                        "mode External needs the resource group that holds the privatelink zones",
                    )
                })?;
            let parts: Vec<&str> = raw.split('/').collect();
            if parts.len() != 5
                || !parts[1].eq_ignore_ascii_case("subscriptions")
                || !parts[3].eq_ignore_ascii_case("resourceGroups")
            {
                return Err(PlanError::new(
                    "spec.privateDns.externalResourceGroupId",
                    format!("`{raw}` is not a resource group id"),
                ));
            }
            Ok(ZoneHome::External(ArmId::resource_group(
                parts[2], parts[4],
            )))
        }
    }
}

fn tags(global: &str) -> Value {
    Owner::global_plane(global).tagged(
        json!({ "managed-by": "stamp-operator", "missioncritical.dev/global-plane": global }),
    )
}

/// Plans a GlobalPlane. `ops_zones` holds, per operations-network region, the private DNS zones
/// that PrivateEndpointSets targeting that network need.
pub fn plan_global_plane(
    global: GlobalPlaneInput<'_>,
    ops_zones: &BTreeMap<String, BTreeSet<String>>,
) -> PlanResult<GlobalPlanePlan> {
    let spec = global.spec;
    if spec.front_door.sku != FrontDoorSku::Premium_AzureFrontDoor {
        return Err(PlanError::new(
            "spec.frontDoor.sku",
            "Front Door SKU must be Premium_AzureFrontDoor: private link origins need Premium",
        ));
    }
    let lb = &spec.front_door.origin_group.load_balancing;
    if lb.successful_samples_required > lb.sample_size {
        return Err(PlanError::new(
            "spec.frontDoor.originGroup.loadBalancing.successfulSamplesRequired",
            "cannot exceed sampleSize",
        ));
    }
    let ids = GlobalIds::new(global);
    let tags = tags(global.name);
    let mut resources = vec![DesiredResource::managed(
        ids.resource_group.clone(),
        ResourceKind::ResourceGroup,
        Component::ResourceGroup,
        json!({ "location": spec.location, "tags": tags }),
    )];
    resources.extend(front_door_resources(global, &ids, &tags)?);
    let mut operations_networks = Vec::new();
    let mut seen_regions = BTreeSet::new();
    for (index, ops) in spec.operations_networks.iter().enumerate() {
        if !seen_regions.insert(ops.region.as_str()) {
            return Err(PlanError::new(
                format!("spec.operationsNetworks[{index}].region"),
                format!("region {} is listed twice", ops.region),
            ));
        }
        let zones = ops_zones.get(&ops.region).cloned().unwrap_or_default();
        let (plan, ops_resources) = operations_network(global, index, ops, &zones)?;
        resources.extend(ops_resources);
        operations_networks.push(plan);
    }
    let graph = DesiredGraph::new(resources, Vec::new()).map_err(|missing| {
        PlanError::new(
            "spec",
            format!("internal planner error: unresolved dependencies {missing:?}"),
        )
    })?;
    Ok(GlobalPlanePlan {
        ids,
        operations_networks,
        graph,
    })
}

fn front_door_resources(
    global: GlobalPlaneInput<'_>,
    ids: &GlobalIds,
    tags: &Value,
) -> PlanResult<Vec<DesiredResource>> {
    let fd = &global.spec.front_door;
    let rg = &ids.resource_group;
    let mut out = vec![
        DesiredResource::managed(ids.waf_policy.clone(), ResourceKind::WafPolicy, Component::Waf, waf_body(global.spec, tags)?).after([rg]),
        DesiredResource::managed(
            ids.profile.clone(),
            ResourceKind::FrontDoorProfile,
            Component::FrontDoor,
            json!({
                "location": "Global",
                "tags": tags,
                "sku": { "name": "Premium_AzureFrontDoor" },
                "properties": { "originResponseTimeoutSeconds": fd.origin_response_timeout_seconds }
            }),
        )
        .after([rg]),
        DesiredResource::managed(
            ids.endpoint.clone(),
            ResourceKind::FrontDoorEndpoint,
            Component::FrontDoor,
            json!({ "location": "Global", "tags": tags, "properties": { "enabledState": "Enabled" } }),
        )
        .after([&ids.profile]),
        DesiredResource::managed(ids.origin_group.clone(), ResourceKind::FrontDoorOriginGroup, Component::FrontDoor, origin_group_body(global.spec))
            .after([&ids.profile]),
        DesiredResource::managed(
            ids.security_policy.clone(),
            ResourceKind::FrontDoorSecurityPolicy,
            Component::Waf,
            json!({
                "properties": {
                    "parameters": {
                        "type": "WebApplicationFirewall",
                        "wafPolicy": { "id": ids.waf_policy },
                        "associations": [{ "domains": [{ "id": ids.endpoint }], "patternsToMatch": ["/*"] }]
                    }
                }
            }),
        )
        .after([&ids.endpoint, &ids.waf_policy]),
    ];
    // Routes of one endpoint are written one after another: Front Door answers 409 to
    // concurrent route writes on the same endpoint.
    let mut previous: Option<ArmId> = None;
    for route in &fd.routes {
        let id = ids.endpoint.child("routes", &route.name);
        let body = json!({
            "properties": {
                "originGroup": { "id": ids.origin_group },
                "supportedProtocols": if route.https_redirect { json!(["Http", "Https"]) } else { json!(["Https"]) },
                "patternsToMatch": route.patterns,
                "forwardingProtocol": match route.forwarding_protocol { ForwardingProtocol::HttpsOnly => "HttpsOnly", ForwardingProtocol::MatchRequest => "MatchRequest" },
                "linkToDefaultDomain": "Enabled",
                "httpsRedirect": if route.https_redirect { "Enabled" } else { "Disabled" },
                "enabledState": "Enabled",
            }
        });
        let mut resource = DesiredResource::managed(
            id.clone(),
            ResourceKind::FrontDoorRoute,
            Component::FrontDoor,
            body,
        )
        .after([&ids.endpoint, &ids.origin_group, &ids.security_policy]);
        if let Some(prev) = &previous {
            resource = resource.after([prev]);
        }
        previous = Some(id);
        out.push(resource);
    }
    Ok(out)
}

fn waf_body(spec: &GlobalPlaneSpec, tags: &Value) -> PlanResult<Value> {
    let waf = &spec.front_door.waf;
    let mut priorities = BTreeSet::new();
    let mut rules = Vec::new();
    for (i, r) in waf.custom_rules.rate_limit.iter().enumerate() {
        if !priorities.insert(r.priority) {
            return Err(PlanError::new(
                format!("spec.frontDoor.waf.customRules.rateLimit[{i}].priority"),
                format!("priority {} is used twice", r.priority),
            ));
        }
        let condition = match &r.path_prefix {
            Some(prefix) => {
                json!({ "matchVariable": "RequestUri", "operator": "BeginsWith", "negateCondition": false, "matchValue": [prefix], "transforms": [] })
            }
            None => {
                json!({ "matchVariable": "RequestUri", "operator": "Any", "negateCondition": false, "matchValue": [], "transforms": [] })
            }
        };
        rules.push(json!({
            "name": r.name,
            "priority": r.priority,
            "enabledState": "Enabled",
            "ruleType": "RateLimitRule",
            "rateLimitDurationInMinutes": r.duration_minutes,
            "rateLimitThreshold": r.threshold,
            "matchConditions": [condition],
            "action": "Block",
        }));
    }
    if let Some(geo) = &waf.custom_rules.geo_filter {
        if !priorities.insert(geo.priority) {
            return Err(PlanError::new(
                "spec.frontDoor.waf.customRules.geoFilter.priority",
                format!(
                    "priority {} is already used by a rate-limit rule",
                    geo.priority
                ),
            ));
        }
        rules.push(json!({
            "name": "GeoAllowList",
            "priority": geo.priority,
            "enabledState": "Enabled",
            "ruleType": "MatchRule",
            "matchConditions": [{ "matchVariable": "SocketAddr", "operator": "GeoMatch", "negateCondition": true, "matchValue": geo.allowed_countries, "transforms": [] }],
            "action": "Block",
        }));
    }
    let mut seen = BTreeSet::new();
    let mut managed = Vec::new();
    for (i, set) in waf.managed_rule_sets.iter().enumerate() {
        if !seen.insert(set.rule_set_type.as_str()) {
            return Err(PlanError::new(
                format!("spec.frontDoor.waf.managedRuleSets[{i}].ruleSetType"),
                format!("{} is listed twice", set.rule_set_type),
            ));
        }
        managed.push(json!({
            "ruleSetType": set.rule_set_type,
            "ruleSetVersion": set.rule_set_version,
            "ruleSetAction": match set.rule_set_action { ManagedRuleSetAction::Block => "Block", ManagedRuleSetAction::Log => "Log" },
        }));
    }
    Ok(json!({
        "location": "Global",
        "tags": tags,
        "sku": { "name": "Premium_AzureFrontDoor" },
        "properties": {
            "policySettings": {
                "enabledState": "Enabled",
                "mode": match waf.mode { WafMode::Prevention => "Prevention", WafMode::Detection => "Detection" },
                "requestBodyCheck": if waf.request_body_check { "Enabled" } else { "Disabled" },
            },
            "customRules": { "rules": rules },
            "managedRules": { "managedRuleSets": managed },
        }
    }))
}

fn origin_group_body(spec: &GlobalPlaneSpec) -> Value {
    let og = &spec.front_door.origin_group;
    json!({
        "properties": {
            "loadBalancingSettings": {
                "sampleSize": og.load_balancing.sample_size,
                "successfulSamplesRequired": og.load_balancing.successful_samples_required,
                "additionalLatencyInMilliseconds": og.load_balancing.additional_latency_milliseconds,
            },
            "healthProbeSettings": {
                "probePath": og.health_probe.path,
                "probeRequestType": match og.health_probe.method { ProbeMethod::HEAD => "HEAD", ProbeMethod::GET => "GET" },
                "probeProtocol": match og.health_probe.protocol { ProbeProtocol::Https => "Https", ProbeProtocol::Http => "Http" },
                "probeIntervalInSeconds": og.health_probe.interval_seconds,
            },
            "sessionAffinityState": if og.session_affinity { "Enabled" } else { "Disabled" },
        }
    })
}

/// Roles of an operations network, in carving order.
pub const OPERATIONS_ROLES: [SubnetRole; 4] = [
    SubnetRole::BuildAgents,
    SubnetRole::JumpBoxes,
    SubnetRole::Bastion,
    SubnetRole::PrivateEndpoints,
];

/// The operations network's subnets: the four roles carved as they always were, then, with a
/// firewall, AzureFirewallSubnet in what is left — so adding the way out never moves a subnet
/// that already exists.
fn operations_addresses(field: &str, ops: &OperationsNetworkSpec) -> PlanResult<AddressPlan> {
    let space = address::parse_space(&format!("{field}.addressSpace"), ops.address_space.as_str())?;
    let given = ops.subnets.clone().unwrap_or_default();
    let firewall = ops.egress.mode == OperationsEgressMode::Firewall;
    let mut requests = vec![
        (
            SubnetRole::BuildAgents,
            given.build_agents,
            space.prefix_len() + 2,
            Some(28),
        ),
        (SubnetRole::JumpBoxes, given.jump_boxes, 27, None),
        (SubnetRole::Bastion, given.bastion, 26, None),
        (
            SubnetRole::PrivateEndpoints,
            given.private_endpoints,
            address::private_endpoint_prefix(space),
            None,
        ),
    ];
    let given_firewall = given.firewall.filter(|_| firewall);
    if let Some(block) = given_firewall.clone() {
        requests.push((SubnetRole::Firewall, Some(block), 26, None));
    }
    let requests = requests
        .into_iter()
        .map(|(role, given, prefix, shrink_to)| SubnetRequest {
            role,
            given,
            prefix: prefix.max(space.prefix_len() + 1),
            shrink_to,
        })
        .collect::<Vec<_>>();
    let subnets_field = format!("{field}.subnets");
    let plan = address::plan_addresses(space, &subnets_field, &requests)?;
    if !firewall || given_firewall.is_some() {
        return Ok(plan);
    }
    let mut second: Vec<SubnetRequest> = plan
        .subnets
        .iter()
        .map(|s| SubnetRequest {
            role: s.role,
            given: Some(CidrBlock(s.cidr.to_string())),
            prefix: s.cidr.prefix_len(),
            shrink_to: None,
        })
        .collect();
    second.push(SubnetRequest {
        role: SubnetRole::Firewall,
        given: None,
        prefix: 26,
        shrink_to: None,
    });
    let mut with_firewall = address::plan_addresses(space, &subnets_field, &second).map_err(|e| {
        PlanError::new(
            format!("{field}.addressSpace"),
            format!("{}; the operations network's firewall needs a /26 (or set egress.mode: None for no way out)", e.reason),
        )
    })?;
    for s in &mut with_firewall.subnets {
        s.given = plan.subnet(s.role).is_some_and(|b| b.given);
    }
    Ok(with_firewall)
}

fn operations_network(
    global: GlobalPlaneInput<'_>,
    index: usize,
    ops: &OperationsNetworkSpec,
    zones: &BTreeSet<String>,
) -> PlanResult<(OperationsNetworkPlan, Vec<DesiredResource>)> {
    let field = format!("spec.operationsNetworks[{index}]");
    let plan = operations_addresses(&field, ops)?;

    let spec = global.spec;
    let sub = spec.subscription_id.as_str();
    let rg_name = format!("{}-ops-{}", spec.resource_group, ops.region);
    if rg_name.len() > 90 {
        return Err(PlanError::new(
            format!("{field}.region"),
            format!("resource group name {rg_name} exceeds Azure's 90 characters"),
        ));
    }
    let rg = ArmId::resource_group(sub, &rg_name);
    let vnet = ArmId::resource(
        sub,
        &rg_name,
        "Microsoft.Network/virtualNetworks",
        &format!("vnet-ops-{}", ops.region),
    );
    let tags = json!({ "managed-by": "stamp-operator", "missioncritical.dev/global-plane": global.name, "missioncritical.dev/operations-region": ops.region });
    let mut resources = vec![DesiredResource::managed(
        rg.clone(),
        ResourceKind::ResourceGroup,
        Component::OperationsNetwork,
        json!({ "location": ops.region, "tags": tags }),
    )];
    let mut attachments = BTreeMap::new();
    let endpoint_ports = ports_for_zones(zones, &ops.region);
    for role in OPERATIONS_ROLES {
        let Some(rules) = rules_for(role, &plan, &endpoint_ports) else {
            continue;
        };
        let nsg = ArmId::resource(
            sub,
            &rg_name,
            "Microsoft.Network/networkSecurityGroups",
            &format!("nsg-ops-{}-{}", ops.region, role.slug()),
        );
        resources.push(
            DesiredResource::managed(
                nsg.clone(),
                ResourceKind::NetworkSecurityGroup,
                Component::OperationsNetwork,
                nsg_body(&ops.region, &tags, &rules),
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
    let firewall = operations_firewall(&field, &ops.egress, &plan, &rg, &vnet, &ops.region, &tags)?;
    let mut firewall_resources = Vec::new();
    if let Some((fw, fw_resources)) = &firewall {
        for role in [SubnetRole::BuildAgents, SubnetRole::JumpBoxes] {
            attachments.entry(role).or_default().route_table = Some(fw.route_table.clone());
        }
        firewall_resources.clone_from(fw_resources);
    }
    let vnet_deps: Vec<ArmId> = attachments
        .values()
        .flat_map(|a| a.nsg.iter().chain(a.route_table.iter()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    resources.push(
        DesiredResource::managed(
            vnet.clone(),
            ResourceKind::VirtualNetwork,
            Component::OperationsNetwork,
            virtual_network_body(&ops.region, &tags, &plan, &attachments),
        )
        .after(vnet_deps.iter())
        .locked_by(&vnet),
    );
    resources.extend(firewall_resources);
    let home = zone_home(spec, &rg)?;
    let (dns, _) = private_dns_resources(&home, zones, &vnet, &tags, std::slice::from_ref(&rg));
    resources.extend(dns);
    Ok((
        OperationsNetworkPlan {
            region: ops.region.clone(),
            resource_group: rg,
            virtual_network: vnet,
            address: plan,
            firewall: firewall.map(|(fw, _)| fw),
            zones: zones.clone(),
        },
        resources,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::nsg::Direction;

    fn spec(extra: Value) -> GlobalPlaneSpec {
        let mut base = json!({
            "subscriptionId": "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f", "resourceGroup": "rg-g", "location": "westeurope",
            "frontDoor": { "routes": [{ "name": "web" }, { "name": "api", "patterns": ["/api/*"] }] },
            "operationsNetworks": [{ "region": "westeurope", "addressSpace": "10.100.0.0/24" }]
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn plan(spec: &GlobalPlaneSpec) -> GlobalPlanePlan {
        plan_global_plane(GlobalPlaneInput { name: "prod", spec }, &BTreeMap::new()).unwrap()
    }

    fn body(plan: &GlobalPlanePlan, kind: ResourceKind) -> Vec<&DesiredResource> {
        plan.graph.of_kind(kind).collect()
    }

    #[test]
    fn waf_defaults_match_the_design() {
        let p = plan(&spec(json!({})));
        let waf = &body(&p, ResourceKind::WafPolicy)[0].body;
        assert_eq!(waf["sku"]["name"], "Premium_AzureFrontDoor");
        assert_eq!(waf["properties"]["policySettings"]["mode"], "Prevention");
        let sets = &waf["properties"]["managedRules"]["managedRuleSets"];
        assert_eq!(sets[0]["ruleSetType"], "Microsoft_DefaultRuleSet");
        assert_eq!(sets[0]["ruleSetVersion"], "2.1");
        assert_eq!(sets[1]["ruleSetType"], "Microsoft_BotManagerRuleSet");
        assert_eq!(sets[1]["ruleSetVersion"], "1.0");
        let og = &body(&p, ResourceKind::FrontDoorOriginGroup)[0].body["properties"]
            ["healthProbeSettings"];
        assert_eq!(og["probeRequestType"], "HEAD");
        assert_eq!(og["probeIntervalInSeconds"], 30);
    }

    #[test]
    fn routes_are_written_one_after_another_behind_the_waf() {
        let p = plan(&spec(json!({})));
        let routes = body(&p, ResourceKind::FrontDoorRoute);
        assert_eq!(routes.len(), 2);
        assert!(routes[1].depends_on.contains(&routes[0].id));
        assert!(
            routes[0].depends_on.contains(&p.ids.security_policy),
            "no route serves traffic before the WAF is bound"
        );
        let sp =
            &body(&p, ResourceKind::FrontDoorSecurityPolicy)[0].body["properties"]["parameters"];
        assert_eq!(sp["wafPolicy"]["id"], json!(p.ids.waf_policy));
        assert_eq!(
            sp["associations"][0]["domains"][0]["id"],
            json!(p.ids.endpoint)
        );
    }

    #[test]
    fn geo_filter_blocks_everything_but_the_allowed_countries() {
        let p = plan(&spec(
            json!({ "frontDoor": { "waf": { "customRules": { "geoFilter": { "allowedCountries": ["DE", "NL"] } } } } }),
        ));
        let rules =
            &body(&p, ResourceKind::WafPolicy)[0].body["properties"]["customRules"]["rules"];
        assert_eq!(rules[0]["matchConditions"][0]["operator"], "GeoMatch");
        assert_eq!(rules[0]["matchConditions"][0]["negateCondition"], true);
        assert_eq!(rules[0]["action"], "Block");
    }

    #[test]
    fn operations_network_has_bastion_and_locked_down_jump_boxes() {
        let p = plan(&spec(json!({})));
        let ops = &p.operations_networks[0];
        let bastion = ops.address.subnet(SubnetRole::Bastion).unwrap();
        assert!(bastion.cidr.prefix_len() <= 26);
        let jump = rules_for(SubnetRole::JumpBoxes, &ops.address, &["443"]).unwrap();
        let inbound_allows: Vec<_> = jump
            .iter()
            .filter(|r| r.allow && r.direction == Direction::Inbound)
            .collect();
        assert_eq!(inbound_allows.len(), 1);
        assert_eq!(inbound_allows[0].source, bastion.cidr.to_string());
        assert_eq!(inbound_allows[0].ports, vec!["22"]);
        let vnet = body(&p, ResourceKind::VirtualNetwork)[0];
        let subnets = vnet.body["properties"]["subnets"].as_array().unwrap();
        assert!(subnets.iter().any(|s| s["name"] == "AzureBastionSubnet"
            && s["properties"]["networkSecurityGroup"]["id"].is_string()));
    }

    #[test]
    fn the_operations_network_gets_its_way_out_without_moving_a_subnet() {
        let without = plan(&spec(
            json!({ "operationsNetworks": [{ "region": "westeurope", "addressSpace": "10.100.0.0/24", "egress": { "mode": "None" } }] }),
        ));
        let with = plan(&spec(json!({})));
        let (bare, routed) = (
            &without.operations_networks[0],
            &with.operations_networks[0],
        );
        assert!(bare.firewall.is_none());
        assert!(bare.address.subnet(SubnetRole::Firewall).is_none());
        for s in &bare.address.subnets {
            assert_eq!(routed.address.subnet(s.role), Some(s), "{:?} moved", s.role);
        }
        let firewall = routed.firewall.as_ref().unwrap();
        let fw_subnet = routed.address.subnet(SubnetRole::Firewall).unwrap();
        assert_eq!(fw_subnet.cidr.to_string(), "10.100.0.192/26");
        assert_eq!(firewall.private_ip, fw_subnet.first_usable());
        assert_eq!(body(&with, ResourceKind::AzureFirewall).len(), 1);
        assert!(body(&without, ResourceKind::AzureFirewall).is_empty());
        let vnet = body(&with, ResourceKind::VirtualNetwork)[0];
        let routed_subnets: Vec<&str> = vnet.body["properties"]["subnets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["properties"]["routeTable"]["id"] == json!(firewall.route_table))
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(routed_subnets, vec!["snet-build-agents", "snet-jump-boxes"]);
        assert!(vnet.depends_on.contains(&firewall.route_table));
        // A space the four subnets fill leaves no room: refused, and the way to do without said.
        let full = spec(
            json!({ "operationsNetworks": [{ "region": "westeurope", "addressSpace": "10.100.0.0/24",
            "subnets": { "buildAgents": "10.100.0.0/25", "jumpBoxes": "10.100.0.128/27", "bastion": "10.100.0.192/26", "privateEndpoints": "10.100.0.160/27" } }] }),
        );
        let refused = plan_global_plane(
            GlobalPlaneInput {
                name: "prod",
                spec: &full,
            },
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(refused.field, "spec.operationsNetworks[0].addressSpace");
        assert!(refused.reason.contains("egress.mode: None"), "{refused}");
    }

    #[test]
    fn only_allowed_namespaces_may_join() {
        let open = spec(json!({}));
        let input = |spec| GlobalPlaneInput { name: "prod", spec };
        assert!(admit_namespace(input(&open), "anyone").is_ok());
        let closed = spec(json!({ "allowedNamespaces": { "list": ["prod"] } }));
        assert!(admit_namespace(input(&closed), "prod").is_ok());
        let refused = admit_namespace(input(&closed), "intruder").unwrap_err();
        assert_eq!(refused.field, "metadata.namespace");
        assert!(refused.to_string().contains("allowedNamespaces"));
        let none = spec(json!({ "allowedNamespaces": { "list": [] } }));
        assert!(admit_namespace(input(&none), "prod").is_err());
    }

    #[test]
    fn external_dns_creates_no_zones() {
        let ext = spec(
            json!({ "privateDns": { "mode": "External", "externalResourceGroupId": "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dns" } }),
        );
        let zones: BTreeMap<String, BTreeSet<String>> = [(
            "westeurope".to_string(),
            ["privatelink.vaultcore.azure.net".to_string()].into(),
        )]
        .into();
        let p = plan_global_plane(
            GlobalPlaneInput {
                name: "prod",
                spec: &ext,
            },
            &zones,
        )
        .unwrap();
        assert!(body(&p, ResourceKind::PrivateDnsZone).is_empty());
        let home = zone_home(&ext, &p.operations_networks[0].resource_group).unwrap();
        assert!(home
            .zone_id("privatelink.vaultcore.azure.net")
            .as_str()
            .starts_with(
                "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-dns/"
            ));
    }
}
