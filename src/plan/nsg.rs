//! Network security group rules per subnet role: deny by default, allow only the flows the
//! architecture needs.

use serde_json::{json, Value};

use super::address::{AddressPlan, SubnetRole};

/// Direction of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Traffic entering the subnet.
    Inbound,
    /// Traffic leaving the subnet.
    Outbound,
}

/// One NSG security rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgRule {
    /// Rule name.
    pub name: &'static str,
    /// Priority (100–4096, lower first).
    pub priority: u16,
    /// Direction.
    pub direction: Direction,
    /// Allow (true) or deny.
    pub allow: bool,
    /// `Tcp`, `Udp` or `*`.
    pub protocol: &'static str,
    /// Source prefix or service tag.
    pub source: String,
    /// Destination prefix or service tag.
    pub destination: String,
    /// Destination ports (`*` for all).
    pub ports: Vec<&'static str>,
}

impl NsgRule {
    fn new(name: &'static str, priority: u16, direction: Direction, allow: bool) -> NsgRule {
        NsgRule {
            name,
            priority,
            direction,
            allow,
            protocol: "*",
            source: "*".into(),
            destination: "*".into(),
            ports: vec!["*"],
        }
    }
    fn tcp(mut self, ports: &[&'static str]) -> NsgRule {
        self.protocol = "Tcp";
        self.ports = ports.to_vec();
        self
    }
    fn udp(mut self, ports: &[&'static str]) -> NsgRule {
        self.protocol = "Udp";
        self.ports = ports.to_vec();
        self
    }
    fn from(mut self, source: impl Into<String>) -> NsgRule {
        self.source = source.into();
        self
    }
    fn to(mut self, destination: impl Into<String>) -> NsgRule {
        self.destination = destination.into();
        self
    }

    /// The rule as ARM's `securityRules[]` entry.
    pub fn to_arm(&self) -> Value {
        let mut props = json!({
            "priority": self.priority,
            "direction": match self.direction { Direction::Inbound => "Inbound", Direction::Outbound => "Outbound" },
            "access": if self.allow { "Allow" } else { "Deny" },
            "protocol": self.protocol,
            "sourceAddressPrefix": self.source,
            "sourcePortRange": "*",
            "destinationAddressPrefix": self.destination,
        });
        if self.ports.len() == 1 {
            props["destinationPortRange"] = json!(self.ports[0]);
        } else {
            props["destinationPortRanges"] = json!(self.ports);
        }
        json!({ "name": self.name, "properties": props })
    }
}

use Direction::{Inbound, Outbound};

fn prefix(plan: &AddressPlan, role: SubnetRole) -> String {
    plan.subnet(role)
        .map(|s| s.cidr.to_string())
        .unwrap_or_default()
}

fn deny_all_inbound() -> NsgRule {
    NsgRule::new("DenyAllInbound", 4096, Inbound, false)
}

/// Private endpoints answer; they never start a flow. Without this, Azure's default
/// AllowVnetOutBound lets anything in the subnet reach the whole VNet.
fn deny_all_outbound() -> NsgRule {
    NsgRule::new("DenyAllOutbound", 4096, Outbound, false)
}

/// The rules of the NSG on the subnet with `role`, or `None` where Azure forbids an NSG.
/// `endpoint_ports` are the TCP ports the network's private endpoints serve
/// ([`super::dns::ports_for_zones`]).
pub fn rules_for(
    role: SubnetRole,
    plan: &AddressPlan,
    endpoint_ports: &[&'static str],
) -> Option<Vec<NsgRule>> {
    let own = prefix(plan, role);
    let rules = match role {
        SubnetRole::Firewall => return None,
        SubnetRole::App => vec![
            NsgRule::new("AllowIntraSubnetInbound", 100, Inbound, true)
                .from(&own)
                .to(&own),
            NsgRule::new("AllowIngressInbound", 110, Inbound, true)
                .tcp(&["80", "443"])
                .from(prefix(plan, SubnetRole::Ingress))
                .to(&own),
            NsgRule::new("AllowLoadBalancerProbes", 120, Inbound, true)
                .from("AzureLoadBalancer")
                .to(&own),
            deny_all_inbound(),
            NsgRule::new("AllowPrivateEndpointsOutbound", 100, Outbound, true)
                .tcp(endpoint_ports)
                .from(&own)
                .to(prefix(plan, SubnetRole::PrivateEndpoints)),
            NsgRule::new("AllowFirewallDnsOutbound", 110, Outbound, true)
                .udp(&["53"])
                .from(&own)
                .to(prefix(plan, SubnetRole::Firewall)),
            NsgRule::new("AllowIntraSubnetOutbound", 120, Outbound, true)
                .from(&own)
                .to(&own),
            // Everything else leaves through the route table's 0.0.0.0/0 → firewall; the NSG
            // only stops lateral movement to the rest of the VNet. By the VNet's own prefix,
            // never the `VirtualNetwork` tag: the tag includes the prefixes of user-defined
            // routes ("This tag might also contain default routes", Microsoft Learn, Virtual
            // network service tags), so with 0.0.0.0/0 routed to the firewall it covers every
            // address and would deny all egress before it reached the firewall.
            NsgRule::new("DenyVnetOutbound", 4000, Outbound, false)
                .from(&own)
                .to(plan.space.to_string()),
        ],
        SubnetRole::Ingress => vec![
            NsgRule::new("AllowPrivateLinkNatInbound", 100, Inbound, true)
                .tcp(&["80", "443"])
                .from(&own)
                .to(&own),
            NsgRule::new("AllowLoadBalancerProbes", 110, Inbound, true)
                .from("AzureLoadBalancer")
                .to(&own),
            deny_all_inbound(),
            // Front Door's traffic leaves the PLS NAT addresses for the ingress controller in
            // the app subnet; nothing else may leave (not even DNS to the firewall's proxy,
            // which the default AllowVnetOutBound would let through).
            NsgRule::new("AllowPrivateLinkNatOutbound", 100, Outbound, true)
                .tcp(&["80", "443"])
                .from(&own)
                .to(&own),
            NsgRule::new("AllowAppOutbound", 110, Outbound, true)
                .tcp(&["80", "443"])
                .from(&own)
                .to(prefix(plan, SubnetRole::App)),
            deny_all_outbound(),
        ],
        SubnetRole::PrivateEndpoints if plan.subnet(SubnetRole::App).is_some() => vec![
            NsgRule::new("AllowAppInbound", 100, Inbound, true)
                .tcp(endpoint_ports)
                .from(prefix(plan, SubnetRole::App))
                .to(&own),
            deny_all_inbound(),
            deny_all_outbound(),
        ],
        SubnetRole::PrivateEndpoints => vec![
            NsgRule::new("AllowBuildAgentsInbound", 100, Inbound, true)
                .tcp(endpoint_ports)
                .from(prefix(plan, SubnetRole::BuildAgents))
                .to(&own),
            NsgRule::new("AllowJumpBoxesInbound", 110, Inbound, true)
                .tcp(endpoint_ports)
                .from(prefix(plan, SubnetRole::JumpBoxes))
                .to(&own),
            deny_all_inbound(),
            deny_all_outbound(),
        ],
        SubnetRole::BuildAgents => vec![
            deny_all_inbound(),
            NsgRule::new("AllowPrivateEndpointsOutbound", 100, Outbound, true)
                .tcp(endpoint_ports)
                .from(&own)
                .to(prefix(plan, SubnetRole::PrivateEndpoints)),
            // Agents poll Azure DevOps / GitHub over HTTPS; nothing else leaves.
            NsgRule::new("AllowHttpsOutbound", 110, Outbound, true)
                .tcp(&["443"])
                .from(&own)
                .to("Internet"),
            NsgRule::new("DenyInternetOutbound", 4096, Outbound, false)
                .from(&own)
                .to("Internet"),
        ],
        SubnetRole::JumpBoxes => vec![
            NsgRule::new("AllowSshFromBastion", 100, Inbound, true)
                .tcp(&["22"])
                .from(prefix(plan, SubnetRole::Bastion))
                .to(&own),
            deny_all_inbound(),
            NsgRule::new("AllowPrivateEndpointsOutbound", 100, Outbound, true)
                .tcp(endpoint_ports)
                .from(&own)
                .to(prefix(plan, SubnetRole::PrivateEndpoints)),
            NsgRule::new("AllowAzureCloudOutbound", 110, Outbound, true)
                .tcp(&["443"])
                .from(&own)
                .to("AzureCloud"),
            // Signing in to ARM goes to Entra ID, whose addresses have their own service tag;
            // AzureCloud is not documented to include them, so they are named.
            NsgRule::new("AllowEntraIdOutbound", 120, Outbound, true)
                .tcp(&["443"])
                .from(&own)
                .to("AzureActiveDirectory"),
            NsgRule::new("DenyInternetOutbound", 4096, Outbound, false)
                .from(&own)
                .to("Internet"),
        ],
        SubnetRole::Bastion => bastion_rules(),
    };
    Some(rules)
}

/// The rules Azure requires on an `AzureBastionSubnet` NSG (it refuses the NSG without them).
pub fn bastion_rules() -> Vec<NsgRule> {
    vec![
        NsgRule::new("AllowHttpsInbound", 120, Inbound, true)
            .tcp(&["443"])
            .from("Internet"),
        NsgRule::new("AllowGatewayManagerInbound", 130, Inbound, true)
            .tcp(&["443"])
            .from("GatewayManager"),
        NsgRule::new("AllowAzureLoadBalancerInbound", 140, Inbound, true)
            .tcp(&["443"])
            .from("AzureLoadBalancer"),
        NsgRule::new("AllowBastionHostCommunication", 150, Inbound, true)
            .tcp(&["8080", "5701"])
            .from("VirtualNetwork")
            .to("VirtualNetwork"),
        NsgRule::new("AllowSshRdpOutbound", 100, Outbound, true)
            .tcp(&["22", "3389"])
            .to("VirtualNetwork"),
        NsgRule::new("AllowAzureCloudOutbound", 110, Outbound, true)
            .tcp(&["443"])
            .to("AzureCloud"),
        NsgRule::new("AllowBastionCommunication", 120, Outbound, true)
            .tcp(&["8080", "5701"])
            .from("VirtualNetwork")
            .to("VirtualNetwork"),
        NsgRule::new("AllowHttpOutbound", 130, Outbound, true)
            .tcp(&["80"])
            .to("Internet"),
    ]
}

/// NSG body for `rules` in `location`.
pub fn nsg_body(location: &str, tags: &Value, rules: &[NsgRule]) -> Value {
    json!({
        "location": location,
        "tags": tags,
        "properties": { "securityRules": rules.iter().map(NsgRule::to_arm).collect::<Vec<_>>() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::address::SubnetBlock;

    fn stamp_plan() -> AddressPlan {
        let block = |role, cidr: &str| SubnetBlock {
            role,
            cidr: cidr.parse().unwrap(),
            given: false,
        };
        AddressPlan {
            space: "10.0.0.0/20".parse().unwrap(),
            subnets: vec![
                block(SubnetRole::App, "10.0.0.0/21"),
                block(SubnetRole::Ingress, "10.0.8.192/28"),
                block(SubnetRole::Firewall, "10.0.8.128/26"),
                block(SubnetRole::PrivateEndpoints, "10.0.8.0/25"),
            ],
        }
    }

    #[test]
    fn the_routed_app_subnet_denies_lateral_traffic_by_prefix_never_by_the_tag() {
        let rules = rules_for(SubnetRole::App, &stamp_plan(), &["443"]).unwrap();
        let denies: Vec<&NsgRule> = rules
            .iter()
            .filter(|r| !r.allow && r.direction == Direction::Outbound)
            .collect();
        assert!(!denies.is_empty());
        for deny in denies {
            assert_ne!(
                deny.destination, "VirtualNetwork",
                "{} would cover 0.0.0.0/0 once routed to the firewall",
                deny.name
            );
            assert_eq!(deny.destination, "10.0.0.0/20");
        }
    }

    #[test]
    fn firewall_subnet_gets_no_nsg() {
        assert!(rules_for(SubnetRole::Firewall, &stamp_plan(), &["443"]).is_none());
    }

    #[test]
    fn private_endpoints_are_reachable_only_from_the_app_subnet() {
        let rules = rules_for(SubnetRole::PrivateEndpoints, &stamp_plan(), &["443"]).unwrap();
        let allows: Vec<&NsgRule> = rules
            .iter()
            .filter(|r| r.allow && r.direction == Direction::Inbound)
            .collect();
        assert_eq!(allows.len(), 1);
        assert_eq!(allows[0].source, "10.0.0.0/21");
        assert!(rules.iter().any(|r| !r.allow
            && r.direction == Direction::Inbound
            && r.source == "*"
            && r.priority == 4096));
    }

    #[test]
    fn every_nsg_denies_inbound_by_default_and_priorities_are_unique() {
        for role in [
            SubnetRole::App,
            SubnetRole::Ingress,
            SubnetRole::PrivateEndpoints,
        ] {
            let rules = rules_for(role, &stamp_plan(), &["443"]).unwrap();
            assert!(rules.iter().any(|r| r.name == "DenyAllInbound"), "{role:?}");
            for direction in [Direction::Inbound, Direction::Outbound] {
                let mut prios: Vec<u16> = rules
                    .iter()
                    .filter(|r| r.direction == direction)
                    .map(|r| r.priority)
                    .collect();
                let n = prios.len();
                prios.dedup();
                assert_eq!(prios.len(), n, "{role:?} has duplicate priorities");
            }
        }
    }

    #[test]
    fn bastion_rules_cover_what_azure_requires() {
        let rules = bastion_rules();
        let has = |dir, src: &str, dst: &str, port: &str| {
            rules.iter().any(|r| {
                r.allow
                    && r.direction == dir
                    && r.source == src
                    && r.destination == dst
                    && r.ports.contains(&port)
            })
        };
        assert!(has(Inbound, "Internet", "*", "443"));
        assert!(has(Inbound, "GatewayManager", "*", "443"));
        assert!(has(Inbound, "AzureLoadBalancer", "*", "443"));
        assert!(has(Inbound, "VirtualNetwork", "VirtualNetwork", "8080"));
        assert!(has(Inbound, "VirtualNetwork", "VirtualNetwork", "5701"));
        assert!(has(Outbound, "*", "VirtualNetwork", "22"));
        assert!(has(Outbound, "*", "VirtualNetwork", "3389"));
        assert!(has(Outbound, "*", "AzureCloud", "443"));
        assert!(has(Outbound, "VirtualNetwork", "VirtualNetwork", "5701"));
        assert!(has(Outbound, "*", "Internet", "80"));
    }

    #[test]
    fn arm_shape_uses_single_or_plural_port_fields() {
        let single = NsgRule::new("a", 100, Inbound, true).tcp(&["22"]).to_arm();
        assert_eq!(single["properties"]["destinationPortRange"], "22");
        let many = NsgRule::new("b", 100, Inbound, true)
            .tcp(&["80", "443"])
            .to_arm();
        assert_eq!(
            many["properties"]["destinationPortRanges"],
            json!(["80", "443"])
        );
        assert!(many["properties"].get("destinationPortRange").is_none());
    }
}
