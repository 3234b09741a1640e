//! The flows the architecture needs and the flows it forbids, for a stamp and for an
//! operations network, and the networks their plans describe.
//!
//! Hosts on the internet stand at documentation addresses (RFC 5737): what matters is that
//! they are public, the name a client uses and the service tags Azure puts them in.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::endpoint::{Endpoint, Protocol};
use super::firewall::Firewall;
use super::model::{self, ModelError, Network};
use super::{Expect, Flow};
use crate::api::StampSpec;
use crate::plan::address::{AddressPlan, SubnetBlock, SubnetRole};
use crate::plan::arm_id::ArmId;
use crate::plan::dns::ports_for_zones;
use crate::plan::egress::{group_rules, AKS_REQUIRED_FQDNS};
use crate::plan::global::OperationsNetworkPlan;
use crate::plan::graph::{DesiredGraph, ResourceKind};
use crate::plan::stamp::StampPlan;

/// What a stamp's flows are derived from.
#[derive(Debug, Clone, Copy)]
pub struct StampFlowInput<'a> {
    /// The stamp's plan.
    pub plan: &'a StampPlan,
    /// Its spec.
    pub spec: &'a StampSpec,
    /// Address spaces of other stamps; one private block outside the stamp stands in when
    /// none is given.
    pub neighbours: &'a [Ipv4Net],
}

fn internet(fqdn: &str, last_octet: u8, tags: &[&'static str]) -> Endpoint {
    Endpoint::named(fqdn, Ipv4Addr::new(203, 0, 113, last_octet), tags)
}

fn flow(
    name: impl Into<String>,
    from: &Endpoint,
    to: &Endpoint,
    protocol: Protocol,
    port: u16,
    expect: Expect,
) -> Flow {
    Flow {
        name: name.into(),
        from: from.clone(),
        to: to.clone(),
        protocol,
        port,
        expect,
    }
}

/// An address of the subnet with `role`, `offset` from its first usable one.
fn host(address: &AddressPlan, role: SubnetRole, offset: u32, label: &str) -> Option<Endpoint> {
    let block: &SubnetBlock = address.subnet(role)?;
    let ip = Ipv4Addr::from(u32::from(block.first_usable()) + offset);
    block.can_assign(ip).then(|| Endpoint::at(label, ip))
}

/// Ports to try for NSG port entries: each entry's bounds; for "every port", HTTPS, one in
/// Cosmos DB's direct-mode range and one near the top.
fn sample_ports(entries: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for e in entries {
        let sampled: Vec<u16> = match e.split_once('-') {
            _ if *e == "*" => vec![443, 10250, 65000],
            Some((low, high)) => [low, high].iter().filter_map(|p| p.parse().ok()).collect(),
            None => e.parse().ok().into_iter().collect(),
        };
        for p in sampled {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// A private block outside `space` standing in for another stamp.
fn stand_in_neighbour(space: Ipv4Net) -> Ipv4Net {
    ["10.254.0.0/16", "172.31.0.0/16", "192.168.0.0/16"]
        .iter()
        .filter_map(|n| n.parse::<Ipv4Net>().ok())
        .find(|n| !n.contains(&space.network()) && !space.contains(&n.network()))
        .unwrap_or_else(|| "192.168.0.0/16".parse().expect("a literal CIDR"))
}

/// A host an FQDN allow-list entry names (`*.x` becomes `www.x`).
fn concrete(fqdn: &str) -> String {
    match fqdn.strip_prefix("*.") {
        Some(parent) => format!("www.{parent}"),
        None => fqdn.to_string(),
    }
}

/// The flows a stamp needs and forbids.
pub fn stamp_flows(input: StampFlowInput<'_>) -> Vec<Flow> {
    use Expect::{Allowed, Denied};
    use Protocol::{Tcp, Udp};
    let address = &input.plan.address;
    let (Some(node), Some(endpoint), Some(nat)) = (
        host(address, SubnetRole::App, 0, "AKS node (app subnet)"),
        host(address, SubnetRole::PrivateEndpoints, 0, "private endpoint"),
        // The PLS takes NAT addresses from the ingress subnet after the load balancer's.
        host(
            address,
            SubnetRole::Ingress,
            1,
            "Private Link Service NAT address",
        ),
    ) else {
        return Vec::new();
    };
    let egress = &input.spec.egress;
    let region = input.spec.region.as_str();
    let balancer = Endpoint::at("ingress load balancer", input.plan.load_balancer_ip);
    let firewall = Endpoint::at("firewall", input.plan.firewall_private_ip);
    let mut flows = Vec::new();

    // Required.
    if egress.aks_required {
        let mcr = internet(AKS_REQUIRED_FQDNS[0], 1, &["AzureCloud"]);
        flows.push(flow(
            "AKS node → mcr.microsoft.com:443 through the firewall",
            &node,
            &mcr,
            Tcp,
            443,
            Allowed,
        ));
        let ntp = Endpoint::at("NTP server", Ipv4Addr::new(192, 0, 2, 123));
        flows.push(flow(
            "AKS node → NTP (UDP 123) through the firewall",
            &node,
            &ntp,
            Udp,
            123,
            Allowed,
        ));
        let mut groups = egress.optional_groups.clone();
        groups.sort();
        groups.dedup();
        for group in groups {
            if let Some(rule) = group_rules(group, region).first() {
                if let Some(fqdn) = rule.fqdns.first() {
                    let name = concrete(fqdn);
                    let to = internet(&name, 2, &[]);
                    flows.push(flow(
                        format!("app → {name}:{} ({group:?})", rule.port),
                        &node,
                        &to,
                        Tcp,
                        rule.port,
                        Allowed,
                    ));
                }
            }
        }
    }
    for rule in &egress.allow {
        let port = rule.port.unwrap_or(match rule.protocol {
            crate::api::FqdnProtocol::Https => 443,
            crate::api::FqdnProtocol::Http => 80,
            crate::api::FqdnProtocol::Mssql => 1433,
        });
        for fqdn in &rule.fqdns {
            let name = concrete(fqdn);
            let to = internet(&name, 3, &[]);
            flows.push(flow(
                format!("app → {name}:{port} (allow list {})", rule.name),
                &node,
                &to,
                Tcp,
                port,
                Allowed,
            ));
        }
    }
    if egress.dns_proxy {
        flows.push(flow(
            "app → DNS through the firewall's proxy (UDP 53)",
            &node,
            &firewall,
            Udp,
            53,
            Allowed,
        ));
    }
    for port in sample_ports(&ports_for_zones(&input.plan.zones, region)) {
        flows.push(flow(
            format!("app → private endpoints TCP {port}"),
            &node,
            &endpoint,
            Tcp,
            port,
            Allowed,
        ));
    }
    flows.push(flow(
        "Front Door → ingress load balancer through the Private Link Service (TCP 443)",
        &nat,
        &balancer,
        Tcp,
        443,
        Allowed,
    ));
    for port in [80, 443] {
        flows.push(flow(
            format!("ingress → app TCP {port}"),
            &nat,
            &node,
            Tcp,
            port,
            Allowed,
        ));
    }
    let probe = Endpoint::platform();
    flows.push(flow(
        "load balancer probe → app",
        &probe,
        &node,
        Tcp,
        443,
        Allowed,
    ));
    flows.push(flow(
        "load balancer probe → ingress",
        &probe,
        &balancer,
        Tcp,
        443,
        Allowed,
    ));

    // Forbidden.
    let bare = Endpoint::at("internet host by address", Ipv4Addr::new(203, 0, 113, 10));
    flows.push(flow(
        "app → internet host by address, no name (TCP 443)",
        &node,
        &bare,
        Tcp,
        443,
        Denied,
    ));
    let stranger = internet("exfil.example.com", 20, &[]);
    flows.push(flow(
        "app → exfil.example.com:443, not on the allow list",
        &node,
        &stranger,
        Tcp,
        443,
        Denied,
    ));
    let resolver = Endpoint::at("public DNS resolver", Ipv4Addr::new(198, 51, 100, 53));
    flows.push(flow(
        "app → public DNS resolver (UDP 53), around the proxy",
        &node,
        &resolver,
        Udp,
        53,
        Denied,
    ));
    let mcr = internet(AKS_REQUIRED_FQDNS[0], 1, &["AzureCloud"]);
    flows.push(flow(
        "ingress → private endpoints TCP 443",
        &nat,
        &endpoint,
        Tcp,
        443,
        Denied,
    ));
    flows.push(flow(
        "ingress → mcr.microsoft.com:443",
        &nat,
        &mcr,
        Tcp,
        443,
        Denied,
    ));
    flows.push(flow(
        "ingress → firewall DNS proxy (UDP 53)",
        &nat,
        &firewall,
        Udp,
        53,
        Denied,
    ));
    flows.push(flow(
        "private endpoints → app TCP 443",
        &endpoint,
        &node,
        Tcp,
        443,
        Denied,
    ));
    flows.push(flow(
        "private endpoints → firewall DNS proxy (UDP 53)",
        &endpoint,
        &firewall,
        Udp,
        53,
        Denied,
    ));
    flows.push(flow(
        "private endpoints → mcr.microsoft.com:443",
        &endpoint,
        &mcr,
        Tcp,
        443,
        Denied,
    ));
    let outsider = Endpoint::at("internet client", Ipv4Addr::new(198, 51, 100, 80));
    flows.push(flow(
        "internet → app TCP 443, around Front Door",
        &outsider,
        &node,
        Tcp,
        443,
        Denied,
    ));
    flows.push(flow(
        "internet → ingress load balancer TCP 443, around Front Door",
        &outsider,
        &balancer,
        Tcp,
        443,
        Denied,
    ));
    let space = address.space;
    let neighbours: Vec<Ipv4Net> = if input.neighbours.is_empty() {
        vec![stand_in_neighbour(space)]
    } else {
        input.neighbours.to_vec()
    };
    for other in neighbours.iter().filter(|n| **n != space) {
        let theirs = Endpoint::at(
            format!("another stamp ({other})"),
            Ipv4Addr::from(u32::from(other.network()) + 4),
        );
        flows.push(flow(
            format!("app → another stamp ({other}) TCP 443"),
            &node,
            &theirs,
            Tcp,
            443,
            Denied,
        ));
        flows.push(flow(
            format!("another stamp ({other}) → private endpoints TCP 443"),
            &theirs,
            &endpoint,
            Tcp,
            443,
            Denied,
        ));
    }
    flows
}

/// The flows an operations network needs and forbids.
pub fn operations_flows(plan: &OperationsNetworkPlan) -> Vec<Flow> {
    use Expect::{Allowed, Denied};
    use Protocol::Tcp;
    let address = &plan.address;
    let (Some(agent), Some(jump), Some(bastion), Some(endpoint)) = (
        host(address, SubnetRole::BuildAgents, 0, "build agent"),
        host(address, SubnetRole::JumpBoxes, 0, "jump box"),
        host(address, SubnetRole::Bastion, 0, "Azure Bastion"),
        host(address, SubnetRole::PrivateEndpoints, 0, "private endpoint"),
    ) else {
        return Vec::new();
    };
    let mut flows = Vec::new();
    let user = Endpoint::at("operator's browser", Ipv4Addr::new(198, 51, 100, 30));
    let gateway_manager = Endpoint::at("GatewayManager", Ipv4Addr::new(198, 51, 100, 31))
        .tagged(&["GatewayManager", "AzureCloud"]);
    let azure =
        Endpoint::at("Azure (AzureCloud)", Ipv4Addr::new(198, 51, 100, 32)).tagged(&["AzureCloud"]);
    flows.push(flow(
        "internet → Bastion HTTPS 443",
        &user,
        &bastion,
        Tcp,
        443,
        Allowed,
    ));
    flows.push(flow(
        "GatewayManager → Bastion 443",
        &gateway_manager,
        &bastion,
        Tcp,
        443,
        Allowed,
    ));
    flows.push(flow(
        "Bastion → AzureCloud 443",
        &bastion,
        &azure,
        Tcp,
        443,
        Allowed,
    ));
    flows.push(flow(
        "Bastion → jump boxes SSH 22",
        &bastion,
        &jump,
        Tcp,
        22,
        Allowed,
    ));
    for port in sample_ports(&ports_for_zones(&plan.zones, &plan.region)) {
        flows.push(flow(
            format!("build agents → private endpoints TCP {port}"),
            &agent,
            &endpoint,
            Tcp,
            port,
            Allowed,
        ));
        flows.push(flow(
            format!("jump boxes → private endpoints TCP {port}"),
            &jump,
            &endpoint,
            Tcp,
            port,
            Allowed,
        ));
    }
    // With no way out (egress mode None), the internet is forbidden to them instead.
    let way_out = if plan.firewall.is_some() {
        Allowed
    } else {
        Denied
    };
    for fqdn in ["dev.azure.com", "github.com"] {
        let to = internet(fqdn, 40, &[]);
        flows.push(flow(
            format!("build agents → {fqdn}:443"),
            &agent,
            &to,
            Tcp,
            443,
            way_out,
        ));
    }
    let arm = internet(
        "management.azure.com",
        41,
        &["AzureCloud", "AzureResourceManager"],
    );
    flows.push(flow(
        "jump boxes → management.azure.com:443",
        &jump,
        &arm,
        Tcp,
        443,
        way_out,
    ));
    let entra = internet("login.microsoftonline.com", 42, &["AzureActiveDirectory"]);
    flows.push(flow(
        "jump boxes → login.microsoftonline.com:443",
        &jump,
        &entra,
        Tcp,
        443,
        way_out,
    ));

    let outsider = Endpoint::at("internet client", Ipv4Addr::new(198, 51, 100, 80));
    flows.push(flow(
        "internet → jump boxes SSH 22, around Bastion",
        &outsider,
        &jump,
        Tcp,
        22,
        Denied,
    ));
    flows.push(flow(
        "build agents → jump boxes SSH 22",
        &agent,
        &jump,
        Tcp,
        22,
        Denied,
    ));
    flows.push(flow(
        "Bastion → private endpoints TCP 443",
        &bastion,
        &endpoint,
        Tcp,
        443,
        Denied,
    ));
    flows.push(flow(
        "private endpoints → build agents TCP 443",
        &endpoint,
        &agent,
        Tcp,
        443,
        Denied,
    ));
    let stranger = internet("exfil.example.com", 20, &[]);
    flows.push(flow(
        "build agents → exfil.example.com:443, not on the allow list",
        &agent,
        &stranger,
        Tcp,
        443,
        Denied,
    ));
    let plain = internet("example.com", 43, &[]);
    flows.push(flow(
        "jump boxes → example.com:80",
        &jump,
        &plain,
        Tcp,
        80,
        Denied,
    ));
    flows.push(flow(
        "build agents → example.com:22",
        &agent,
        &plain,
        Tcp,
        22,
        Denied,
    ));
    flows
}

/// Reads a firewall: its policy and rule collection groups by id through `body`.
fn read_firewall(
    name: &str,
    private_ip: Ipv4Addr,
    policy: &str,
    groups: &[&ArmId],
    body: &dyn Fn(&str) -> Option<Value>,
) -> Result<Firewall, ModelError> {
    let policy_body = body(policy).ok_or_else(|| "the firewall policy is not read".to_string())?;
    let groups = groups
        .iter()
        .map(|g| {
            body(g.as_str())
                .map(|b| (g.name().to_string(), b))
                .ok_or_else(|| format!("rule collection group {} is not read", g.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Firewall::from_arm(name, private_ip, &policy_body, &groups))
}

/// Reads the network a stamp's resources make; `body` gives each resource's body by id.
pub fn stamp_network(
    plan: &StampPlan,
    body: &dyn Fn(&str) -> Option<Value>,
) -> Result<Network, ModelError> {
    let vnet_body =
        body(plan.virtual_network.as_str()).ok_or_else(|| "the VNet is not read".to_string())?;
    let vnet = model::virtual_network(plan.names.virtual_network().as_str(), &vnet_body, body)?;
    let of_kind = |kind| plan.graph.resources.iter().filter(move |r| r.kind == kind);
    let mut firewalls = Vec::new();
    if let (Some(fw), Some(policy)) = (
        of_kind(ResourceKind::AzureFirewall).next(),
        of_kind(ResourceKind::FirewallPolicy).next(),
    ) {
        let groups: Vec<&ArmId> = of_kind(ResourceKind::RuleCollectionGroup)
            .map(|g| &g.id)
            .collect();
        firewalls.push(read_firewall(
            fw.id.name(),
            plan.firewall_private_ip,
            policy.id.as_str(),
            &groups,
            body,
        )?);
    }
    Ok(Network {
        vnets: vec![vnet],
        firewalls,
    })
}

/// Reads the network an operations network's resources make.
pub fn operations_network(
    plan: &OperationsNetworkPlan,
    body: &dyn Fn(&str) -> Option<Value>,
) -> Result<Network, ModelError> {
    let vnet_body =
        body(plan.virtual_network.as_str()).ok_or_else(|| "the VNet is not read".to_string())?;
    let vnet = model::virtual_network(plan.virtual_network.name(), &vnet_body, body)?;
    let firewalls = match &plan.firewall {
        Some(fw) => vec![read_firewall(
            fw.firewall.name(),
            fw.private_ip,
            fw.policy.as_str(),
            &fw.groups.iter().collect::<Vec<_>>(),
            body,
        )?],
        None => Vec::new(),
    };
    Ok(Network {
        vnets: vec![vnet],
        firewalls,
    })
}

/// A body source reading a planned graph.
pub fn planned_bodies(graph: &DesiredGraph) -> impl Fn(&str) -> Option<Value> + '_ {
    move |id: &str| {
        graph
            .resources
            .iter()
            .find(|r| r.id.as_str().eq_ignore_ascii_case(id))
            .map(|r| r.body.clone())
    }
}
