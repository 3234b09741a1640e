//! An operations network's way out: the stamps' pattern — an Azure Firewall of its own, an FQDN
//! allow list, and a route table sending the build agents' and jump boxes' `0.0.0.0/0` to it.
//! The seed architecture makes Azure Firewall the single control of egress ("Restrict outbound
//! traffic to the internet using Azure Firewall"); build agents hold deployment credentials, so
//! a NAT gateway, which lets any HTTPS host be reached, is the weaker choice.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::address::{AddressPlan, SubnetRole};
use super::arm_id::ArmId;
use super::egress;
use super::error::{PlanError, PlanResult};
use super::graph::{Component, DesiredResource, ResourceKind};
use crate::api::{EgressSpec, FqdnAllowRule, FqdnProtocol, OperationsEgressSpec};

/// What build agents and jump boxes reach by default, all over HTTPS: Azure DevOps (Microsoft
/// Learn, Allowed IP addresses and domain URLs), GitHub, Azure Resource Manager and Entra ID
/// (to deploy), Microsoft Container Registry (tool images).
const BUILT_IN: [(&str, &[&str]); 4] = [
    (
        "azure-devops",
        &[
            "dev.azure.com",
            "*.dev.azure.com",
            "*.visualstudio.com",
            "*.vsassets.io",
            "vstsagentpackage.azureedge.net",
        ],
    ),
    (
        "github",
        &["github.com", "*.github.com", "*.githubusercontent.com"],
    ),
    (
        "azure-control-plane",
        &["management.azure.com", "login.microsoftonline.com"],
    ),
    (
        "container-images",
        &["mcr.microsoft.com", "*.data.mcr.microsoft.com"],
    ),
];

/// The ids of an operations network's firewall and what it is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationsFirewall {
    /// The firewall.
    pub firewall: ArmId,
    /// Its policy.
    pub policy: ArmId,
    /// The policy's rule collection groups.
    pub groups: Vec<ArmId>,
    /// The route table on the build-agent and jump-box subnets.
    pub route_table: ArmId,
    /// The firewall's private address, the routes' next hop (the first usable address of
    /// AzureFirewallSubnet, which Azure gives it).
    pub private_ip: Ipv4Addr,
}

/// The egress spec the shared firewall bodies are built from: no AKS rules, no DNS proxy, the
/// built-in list and the spec's own.
fn as_egress(spec: &OperationsEgressSpec) -> PlanResult<EgressSpec> {
    let mut allow: Vec<FqdnAllowRule> = BUILT_IN
        .iter()
        .map(|(name, fqdns)| FqdnAllowRule {
            name: name.to_string(),
            fqdns: fqdns.iter().map(|f| f.to_string()).collect(),
            protocol: FqdnProtocol::Https,
            port: None,
        })
        .collect();
    allow.extend(spec.allow.iter().cloned());
    let egress = EgressSpec {
        dns_proxy: false,
        aks_required: false,
        allow,
        ..EgressSpec::default()
    };
    egress::check_allow_list(&egress)?;
    Ok(egress)
}

/// The firewall's resources for the operations network `vnet` with addresses `plan`, named for
/// `region` in resource group `rg`. `None` when the spec wants no way out.
pub fn operations_firewall(
    field: &str,
    spec: &OperationsEgressSpec,
    plan: &AddressPlan,
    rg: &ArmId,
    vnet: &ArmId,
    region: &str,
    tags: &Value,
) -> PlanResult<Option<(OperationsFirewall, Vec<DesiredResource>)>> {
    if spec.mode == crate::api::OperationsEgressMode::None {
        return Ok(None);
    }
    let egress =
        as_egress(spec).map_err(|e| PlanError::new(format!("{field}.egress.allow"), e.reason))?;
    let subnet = plan
        .subnet(SubnetRole::Firewall)
        .ok_or_else(|| PlanError::new(field, "internal planner error: no AzureFirewallSubnet"))?;
    let private_ip = subnet.first_usable();
    let id = |kind: &str, name: String| ArmId::resource(rg.subscription(), rg.name(), kind, &name);
    let public_ip = id(
        "Microsoft.Network/publicIPAddresses",
        format!("pip-afw-ops-{region}"),
    );
    let policy = id(
        "Microsoft.Network/firewallPolicies",
        format!("afwp-ops-{region}"),
    );
    let firewall = id(
        "Microsoft.Network/azureFirewalls",
        format!("afw-ops-{region}"),
    );
    let route_table = id("Microsoft.Network/routeTables", format!("rt-ops-{region}"));
    let component = Component::OperationsNetwork;
    let mut resources = vec![
        DesiredResource::managed(
            public_ip.clone(),
            ResourceKind::PublicIpAddress,
            component,
            egress::public_ip_body(&egress, region, tags),
        )
        .after([rg]),
        DesiredResource::managed(
            policy.clone(),
            ResourceKind::FirewallPolicy,
            component,
            egress::firewall_policy_body(&egress, region, tags),
        )
        .after([rg]),
        DesiredResource::managed(
            route_table.clone(),
            ResourceKind::RouteTable,
            component,
            egress::route_table_body(region, tags, &private_ip.to_string()),
        )
        .after([rg]),
    ];
    // Only the routed subnets reach the firewall; the space is the source.
    let mut last = policy.clone();
    let mut groups = Vec::new();
    for (name, body) in egress::rule_collection_groups(&egress, region, &plan.space.to_string()) {
        // Without the AKS rules there is one group, the allow list's; named for what it serves.
        let name = if name == "workload" {
            "operations".to_string()
        } else {
            name
        };
        let group = policy.child("ruleCollectionGroups", &name);
        resources.push(
            DesiredResource::managed(
                group.clone(),
                ResourceKind::RuleCollectionGroup,
                component,
                body,
            )
            .after([&last])
            .locked_by(&policy),
        );
        groups.push(group.clone());
        last = group;
    }
    resources.push(
        DesiredResource::managed(
            firewall.clone(),
            ResourceKind::AzureFirewall,
            component,
            egress::firewall_body(
                &egress,
                region,
                tags,
                vnet.child("subnets", SubnetRole::Firewall.azure_name())
                    .as_str(),
                public_ip.as_str(),
                policy.as_str(),
            ),
        )
        .after([vnet, &public_ip, &last]),
    );
    Ok(Some((
        OperationsFirewall {
            firewall,
            policy,
            groups,
            route_table,
            private_ip,
        },
        resources,
    )))
}
