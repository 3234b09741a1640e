//! Azure Firewall with a firewall policy, as it filters what a route sends it: network rules
//! before application rules whatever their priorities, each kind by rule collection group
//! priority then rule collection priority, first match decides, and everything else denied
//! (Microsoft Learn, Azure Firewall rule processing logic). NAT rules are not modelled: they
//! act on traffic to the firewall's public address, which no flow here targets.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::endpoint::{Endpoint, Protocol};
use super::ports;
use super::Flow;

/// One rule of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirewallRule {
    /// Layer 3/4: protocols, addresses (or FQDNs resolved by the DNS proxy) and ports.
    Network {
        /// Rule name.
        name: String,
        /// `TCP`, `UDP`, `ICMP`, `Any`.
        protocols: Vec<String>,
        /// Source prefixes.
        sources: Vec<String>,
        /// Destination prefixes or service tags.
        destinations: Vec<String>,
        /// Destination FQDNs.
        fqdns: Vec<String>,
        /// Destination ports.
        ports: Vec<String>,
    },
    /// Layer 7: the name in SNI or the Host header, on a protocol and port.
    Application {
        /// Rule name.
        name: String,
        /// Ports of the protocols it allows.
        ports: Vec<u16>,
        /// Target FQDNs (`*.example.com` for subdomains).
        fqdns: Vec<String>,
        /// Source prefixes.
        sources: Vec<String>,
    },
}

/// A rule collection with its group's priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCollection {
    /// `group/collection`.
    pub name: String,
    /// The group's priority.
    pub group_priority: u32,
    /// The collection's priority.
    pub priority: u32,
    /// Allow or deny.
    pub allow: bool,
    /// Its rules (all of one kind).
    pub rules: Vec<FirewallRule>,
}

/// A firewall with the rules of its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    /// Firewall name.
    pub name: String,
    /// Its private address: the next hop routes name.
    pub private_ip: Ipv4Addr,
    /// Whether its DNS proxy answers on port 53.
    pub dns_proxy: bool,
    /// Filter rule collections of every group.
    pub collections: Vec<RuleCollection>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn rule_of(r: &Value) -> Option<FirewallRule> {
    let name = r["name"].as_str().unwrap_or_default().to_string();
    match r["ruleType"].as_str()? {
        "NetworkRule" => Some(FirewallRule::Network {
            name,
            protocols: strings(r, "ipProtocols"),
            sources: strings(r, "sourceAddresses"),
            destinations: strings(r, "destinationAddresses"),
            fqdns: strings(r, "destinationFqdns"),
            ports: strings(r, "destinationPorts"),
        }),
        "ApplicationRule" => Some(FirewallRule::Application {
            name,
            ports: r["protocols"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p["port"].as_u64().and_then(|p| u16::try_from(p).ok()))
                        .collect()
                })
                .unwrap_or_default(),
            fqdns: strings(r, "targetFqdns"),
            sources: strings(r, "sourceAddresses"),
        }),
        _ => None,
    }
}

impl Firewall {
    /// Reads a firewall from its policy body and its rule collection group bodies
    /// (`(name, body)`).
    pub fn from_arm(
        name: &str,
        private_ip: Ipv4Addr,
        policy: &Value,
        groups: &[(String, Value)],
    ) -> Firewall {
        let mut collections = Vec::new();
        for (group, body) in groups {
            let group_priority = body
                .pointer("/properties/priority")
                .and_then(Value::as_u64)
                .unwrap_or(65000) as u32;
            let empty = Vec::new();
            for c in body
                .pointer("/properties/ruleCollections")
                .and_then(Value::as_array)
                .unwrap_or(&empty)
            {
                if c["ruleCollectionType"].as_str() != Some("FirewallPolicyFilterRuleCollection") {
                    continue;
                }
                collections.push(RuleCollection {
                    name: format!("{group}/{}", c["name"].as_str().unwrap_or_default()),
                    group_priority,
                    priority: c["priority"].as_u64().unwrap_or(65000) as u32,
                    allow: c.pointer("/action/type").and_then(Value::as_str) == Some("Allow"),
                    rules: c["rules"]
                        .as_array()
                        .map(|rules| rules.iter().filter_map(rule_of).collect())
                        .unwrap_or_default(),
                });
            }
        }
        collections.sort_by_key(|c| (c.group_priority, c.priority));
        Firewall {
            name: name.to_string(),
            private_ip,
            dns_proxy: policy.pointer("/properties/dnsSettings/enableProxy")
                == Some(&Value::Bool(true)),
            collections,
        }
    }

    /// Whether the firewall itself answers `flow` (its DNS proxy on port 53).
    pub fn answers(&self, flow: &Flow) -> (bool, String) {
        if flow.port == 53 && self.dns_proxy {
            (true, format!("{}: DNS proxy", self.name))
        } else {
            (
                false,
                format!("{}: nothing listens on port {}", self.name, flow.port),
            )
        }
    }

    /// Whether the policy lets `flow` through, and the rule that decided.
    pub fn filter(&self, flow: &Flow) -> (bool, String) {
        let network = self.first_match(|rule| match rule {
            FirewallRule::Network {
                protocols,
                sources,
                destinations,
                fqdns,
                ports: dest_ports,
                ..
            } => {
                protocols.iter().any(|p| {
                    p.eq_ignore_ascii_case("Any") || p.eq_ignore_ascii_case(flow.protocol.label())
                }) && any_covers(sources, &flow.from)
                    && (any_covers(destinations, &flow.to)
                        // FQDNs in network rules resolve only through the DNS proxy.
                        || (self.dns_proxy && fqdn_listed(fqdns, flow.to.fqdn.as_deref())))
                    && ports::covers(dest_ports.iter().map(String::as_str), flow.port)
            }
            FirewallRule::Application { .. } => false,
        });
        if let Some(found) = network {
            return found;
        }
        // Application rules read the name from SNI or the Host header: a flow to a bare
        // address, or not over TCP, carries none.
        let application = self.first_match(|rule| match rule {
            FirewallRule::Application {
                ports: rule_ports,
                fqdns,
                sources,
                ..
            } => {
                flow.protocol == Protocol::Tcp
                    && rule_ports.contains(&flow.port)
                    && any_covers(sources, &flow.from)
                    && fqdn_listed(fqdns, flow.to.fqdn.as_deref())
            }
            FirewallRule::Network { .. } => false,
        });
        application.unwrap_or_else(|| {
            (
                false,
                format!("{}: no rule allows it (default deny)", self.name),
            )
        })
    }

    fn first_match(&self, matches: impl Fn(&FirewallRule) -> bool) -> Option<(bool, String)> {
        self.collections.iter().find_map(|c| {
            c.rules.iter().find(|r| matches(r)).map(|r| {
                let name = match r {
                    FirewallRule::Network { name, .. } | FirewallRule::Application { name, .. } => {
                        name
                    }
                };
                (c.allow, format!("{}: {}/{name}", self.name, c.name))
            })
        })
    }
}

fn any_covers(prefixes: &[String], end: &Endpoint) -> bool {
    prefixes.iter().any(|p| match p.as_str() {
        "*" => true,
        p => match p.parse::<Ipv4Net>() {
            Ok(net) => net.contains(&end.address),
            Err(_) => match p.parse::<Ipv4Addr>() {
                Ok(ip) => ip == end.address,
                Err(_) => end.has_tag(p),
            },
        },
    })
}

/// Whether `fqdn` is listed: exactly, or under a `*.` wildcard (which does not match the bare
/// parent name), or by `*`.
fn fqdn_listed(listed: &[String], fqdn: Option<&str>) -> bool {
    let Some(fqdn) = fqdn else {
        return false;
    };
    listed.iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l == "*"
            || l == fqdn
            || l.strip_prefix("*.")
                .is_some_and(|parent| fqdn.ends_with(&format!(".{parent}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_subdomains_not_its_parent() {
        let listed = vec!["*.githubusercontent.com".to_string()];
        assert!(fqdn_listed(&listed, Some("raw.githubusercontent.com")));
        assert!(!fqdn_listed(&listed, Some("githubusercontent.com")));
        assert!(!fqdn_listed(&listed, Some("evilgithubusercontent.com")));
        assert!(!fqdn_listed(&listed, None));
    }
}
