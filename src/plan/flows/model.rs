//! The network a flow crosses, read from ARM bodies: VNets with their subnets, the NSGs and
//! route tables those subnets carry, and the firewalls with their policy's rules.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::firewall::Firewall;
use super::security::SecurityGroup;

/// Where a route sends a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// Within the VNet.
    VnetLocal,
    /// To a network virtual appliance (the firewall) at this address.
    VirtualAppliance(Ipv4Addr),
    /// To the internet, if the subnet has a way out.
    Internet,
    /// Dropped.
    Drop,
    /// Something this model does not follow (a gateway): treated as no path.
    Other(String),
}

/// One route of a subnet's route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Route name.
    pub name: String,
    /// Destination prefix.
    pub prefix: Ipv4Net,
    /// Next hop.
    pub next_hop: NextHop,
}

/// How a subnet reaches the internet without the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// No way: `defaultOutboundAccess: false`, no NAT gateway, no public address.
    None,
    /// Azure's implicit default outbound access.
    DefaultAccess,
    /// A NAT gateway.
    NatGateway,
    /// The service in the subnet has its own public address (Azure Firewall, Azure Bastion).
    OwnPublicAddress,
}

/// One subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Subnet name.
    pub name: String,
    /// Address prefix.
    pub prefix: Ipv4Net,
    /// Its NSG, if any.
    pub nsg: Option<SecurityGroup>,
    /// Its route table's routes.
    pub routes: Vec<Route>,
    /// Its way out.
    pub outbound: Outbound,
}

/// One VNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualNetwork {
    /// VNet name.
    pub name: String,
    /// Address space.
    pub space: Vec<Ipv4Net>,
    /// Subnets.
    pub subnets: Vec<Subnet>,
}

impl VirtualNetwork {
    /// What the `VirtualNetwork` service tag covers for this VNet: its address space, the host's
    /// virtual address and the prefixes of user-defined routes ("address prefixes used on
    /// user-defined routes ... This tag might also contain default routes", Microsoft Learn,
    /// Virtual network service tags). Which route tables count is not documented; every route
    /// table in the VNet counts, the wider reading.
    pub fn tag_prefixes(&self) -> Vec<Ipv4Net> {
        let mut prefixes = self.space.clone();
        prefixes.push(Ipv4Net::from(super::endpoint::PLATFORM_ADDRESS));
        prefixes.extend(
            self.subnets
                .iter()
                .flat_map(|s| s.routes.iter().map(|r| r.prefix)),
        );
        prefixes
    }
}

/// The networks a set of flows may cross.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// VNets.
    pub vnets: Vec<VirtualNetwork>,
    /// Firewalls, each in one of those VNets.
    pub firewalls: Vec<Firewall>,
}

/// Why a body could not be read into the model.
pub type ModelError = String;

fn name_of(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

fn net(raw: &str, what: &str) -> Result<Ipv4Net, ModelError> {
    raw.parse::<Ipv4Net>()
        .or_else(|_| raw.parse::<Ipv4Addr>().map(Ipv4Net::from))
        .map_err(|_| format!("{what}: `{raw}` is not an IPv4 prefix"))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The routes of a route table body. A route whose prefix is a service tag is skipped: this
/// model does not know the tag's addresses (the planner writes none).
pub fn routes_of(table: &Value) -> Vec<Route> {
    let empty = Vec::new();
    let routes = table
        .pointer("/properties/routes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    routes
        .iter()
        .filter_map(|r| {
            let prefix = net(str_at(r, "/properties/addressPrefix")?, "route").ok()?;
            let hop = str_at(r, "/properties/nextHopType").unwrap_or_default();
            let next_hop = match hop.to_ascii_lowercase().as_str() {
                "virtualappliance" => str_at(r, "/properties/nextHopIpAddress")
                    .and_then(|ip| ip.parse().ok())
                    .map(NextHop::VirtualAppliance)
                    .unwrap_or(NextHop::Drop),
                "internet" => NextHop::Internet,
                "vnetlocal" => NextHop::VnetLocal,
                "none" => NextHop::Drop,
                _ => NextHop::Other(hop.to_string()),
            };
            Some(Route {
                name: r["name"].as_str().unwrap_or_default().to_string(),
                prefix,
                next_hop,
            })
        })
        .collect()
}

/// Reads a VNet body; `resolve` gives the body of an NSG or route table by id.
pub fn virtual_network(
    name: &str,
    body: &Value,
    resolve: &dyn Fn(&str) -> Option<Value>,
) -> Result<VirtualNetwork, ModelError> {
    let space = body
        .pointer("/properties/addressSpace/addressPrefixes")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("VNet {name} has no address space"))?
        .iter()
        .map(|p| net(p.as_str().unwrap_or_default(), name))
        .collect::<Result<Vec<_>, _>>()?;
    let empty = Vec::new();
    let mut subnets = Vec::new();
    for s in body
        .pointer("/properties/subnets")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let subnet_name = s["name"].as_str().unwrap_or_default().to_string();
        let prefix = net(
            str_at(s, "/properties/addressPrefix").unwrap_or_default(),
            &subnet_name,
        )?;
        let nsg = match str_at(s, "/properties/networkSecurityGroup/id") {
            Some(id) => {
                let nsg_body =
                    resolve(id).ok_or_else(|| format!("NSG {} not read", name_of(id)))?;
                Some(SecurityGroup::from_arm(&name_of(id), &nsg_body))
            }
            None => None,
        };
        let routes = match str_at(s, "/properties/routeTable/id") {
            Some(id) => routes_of(
                &resolve(id).ok_or_else(|| format!("route table {} not read", name_of(id)))?,
            ),
            None => Vec::new(),
        };
        // Azure Firewall and Azure Bastion carry their own public addresses. A subnet that
        // does not say `defaultOutboundAccess: false` has Azure's implicit way out.
        let outbound =
            if subnet_name == "AzureFirewallSubnet" || subnet_name == "AzureBastionSubnet" {
                Outbound::OwnPublicAddress
            } else if s.pointer("/properties/natGateway/id").is_some() {
                Outbound::NatGateway
            } else if s.pointer("/properties/defaultOutboundAccess") == Some(&Value::Bool(false)) {
                Outbound::None
            } else {
                Outbound::DefaultAccess
            };
        subnets.push(Subnet {
            name: subnet_name,
            prefix,
            nsg,
            routes,
            outbound,
        });
    }
    Ok(VirtualNetwork {
        name: name.to_string(),
        space,
        subnets,
    })
}
