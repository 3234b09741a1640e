//! Network security groups as Azure evaluates them: the custom rules by priority, then the
//! default rules every NSG carries, first match decides.

use ipnet::Ipv4Net;
use serde_json::Value;

use super::endpoint::{Endpoint, Protocol, PLATFORM_ADDRESS};
use super::ports;
use super::Flow;

/// Inbound or outbound, seen from the subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Into the subnet.
    Inbound,
    /// Out of the subnet.
    Outbound,
}

/// One security rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityRule {
    /// Rule name.
    pub name: String,
    /// Priority; lower first.
    pub priority: u32,
    /// Direction.
    pub direction: Direction,
    /// Allow or deny.
    pub allow: bool,
    /// `Tcp`, `Udp`, `Icmp`, `*`…
    pub protocol: String,
    /// Source prefixes or service tags.
    pub sources: Vec<String>,
    /// Source ports.
    pub source_ports: Vec<String>,
    /// Destination prefixes or service tags.
    pub destinations: Vec<String>,
    /// Destination ports.
    pub ports: Vec<String>,
}

/// An NSG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// NSG name.
    pub name: String,
    /// Its custom rules.
    pub rules: Vec<SecurityRule>,
}

fn strings(props: &Value, one: &str, many: &str) -> Vec<String> {
    let mut out: Vec<String> = props[many]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(single) = props[one].as_str() {
        out.push(single.to_string());
    }
    out
}

fn default_rule(
    name: &str,
    priority: u32,
    direction: Direction,
    allow: bool,
    from: &str,
    to: &str,
) -> SecurityRule {
    SecurityRule {
        name: name.to_string(),
        priority,
        direction,
        allow,
        protocol: "*".into(),
        sources: vec![from.into()],
        source_ports: vec!["*".into()],
        destinations: vec![to.into()],
        ports: vec!["*".into()],
    }
}

/// The rules every NSG has below its own (Microsoft Learn, Network security groups, Default
/// security rules).
fn default_rules() -> Vec<SecurityRule> {
    use Direction::{Inbound, Outbound};
    vec![
        default_rule(
            "AllowVnetInBound",
            65000,
            Inbound,
            true,
            "VirtualNetwork",
            "VirtualNetwork",
        ),
        default_rule(
            "AllowAzureLoadBalancerInBound",
            65001,
            Inbound,
            true,
            "AzureLoadBalancer",
            "*",
        ),
        default_rule("DenyAllInBound", 65500, Inbound, false, "*", "*"),
        default_rule(
            "AllowVnetOutBound",
            65000,
            Outbound,
            true,
            "VirtualNetwork",
            "VirtualNetwork",
        ),
        default_rule(
            "AllowInternetOutBound",
            65001,
            Outbound,
            true,
            "*",
            "Internet",
        ),
        default_rule("DenyAllOutBound", 65500, Outbound, false, "*", "*"),
    ]
}

impl SecurityGroup {
    /// Reads an NSG body (`properties.securityRules`).
    pub fn from_arm(name: &str, body: &Value) -> SecurityGroup {
        let empty = Vec::new();
        let rules = body
            .pointer("/properties/securityRules")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .map(|r| {
                let p = &r["properties"];
                SecurityRule {
                    name: r["name"].as_str().unwrap_or_default().to_string(),
                    priority: p["priority"].as_u64().unwrap_or(u64::from(u32::MAX)) as u32,
                    direction: if p["direction"].as_str() == Some("Outbound") {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    },
                    allow: p["access"].as_str() == Some("Allow"),
                    protocol: p["protocol"].as_str().unwrap_or("*").to_string(),
                    sources: strings(p, "sourceAddressPrefix", "sourceAddressPrefixes"),
                    source_ports: strings(p, "sourcePortRange", "sourcePortRanges"),
                    destinations: strings(
                        p,
                        "destinationAddressPrefix",
                        "destinationAddressPrefixes",
                    ),
                    ports: strings(p, "destinationPortRange", "destinationPortRanges"),
                }
            })
            .collect();
        SecurityGroup {
            name: name.to_string(),
            rules,
        }
    }

    /// The rule that decides `flow` in `direction`; `vnet_tag` is what `VirtualNetwork` covers.
    pub fn decide(
        &self,
        direction: Direction,
        flow: &Flow,
        vnet_tag: &[Ipv4Net],
    ) -> (bool, String) {
        let mut rules: Vec<&SecurityRule> = self
            .rules
            .iter()
            .filter(|r| r.direction == direction)
            .collect();
        rules.sort_by_key(|r| r.priority);
        let defaults = default_rules();
        let decided = rules
            .into_iter()
            .chain(defaults.iter().filter(|r| r.direction == direction))
            .find(|r| matches(r, flow, vnet_tag));
        match decided {
            Some(r) => (
                r.allow,
                format!(
                    "{}: {} ({}, {:?})",
                    self.name, r.name, r.priority, r.direction
                ),
            ),
            // Unreachable with the default rules; kept total.
            None => (false, format!("{}: no rule", self.name)),
        }
    }
}

fn protocol_matches(rule: &str, protocol: Protocol) -> bool {
    rule == "*" || rule.eq_ignore_ascii_case(protocol.label())
}

/// Whether NSG prefix or tag `prefix` covers `end`.
fn covers(prefix: &str, end: &Endpoint, vnet_tag: &[Ipv4Net]) -> bool {
    let address = end.address;
    match prefix {
        "*" | "0.0.0.0/0" => true,
        p if p.eq_ignore_ascii_case("VirtualNetwork") => {
            vnet_tag.iter().any(|n| n.contains(&address))
        }
        p if p.eq_ignore_ascii_case("Internet") => end.is_public(),
        p if p.eq_ignore_ascii_case("AzureLoadBalancer") => address == PLATFORM_ADDRESS,
        p => match p.parse::<Ipv4Net>() {
            Ok(net) => net.contains(&address),
            Err(_) => match p.parse::<std::net::Ipv4Addr>() {
                Ok(ip) => ip == address,
                Err(_) => end.has_tag(p),
            },
        },
    }
}

fn matches(rule: &SecurityRule, flow: &Flow, vnet_tag: &[Ipv4Net]) -> bool {
    // Source ports are ephemeral: a rule that limits them matches no flow in this model.
    protocol_matches(&rule.protocol, flow.protocol)
        && rule.source_ports.iter().all(|p| ports::is_every_port(p))
        && rule.sources.iter().any(|p| covers(p, &flow.from, vnet_tag))
        && rule
            .destinations
            .iter()
            .any(|p| covers(p, &flow.to, vnet_tag))
        && ports::covers(rule.ports.iter().map(String::as_str), flow.port)
}
