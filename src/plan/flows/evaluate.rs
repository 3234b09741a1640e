//! One flow through the network: the source subnet's NSG outbound, the route its subnet picks,
//! the firewall if the route leads there, then the destination subnet's NSG inbound.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::endpoint::PLATFORM_ADDRESS;
use super::model::{Network, NextHop, Outbound, Subnet, VirtualNetwork};
use super::security::Direction;
use super::{Flow, Verdict};

fn denied(why: impl Into<String>) -> Verdict {
    Verdict {
        allowed: false,
        decided_by: why.into(),
    }
}

fn allowed(why: impl Into<String>) -> Verdict {
    Verdict {
        allowed: true,
        decided_by: why.into(),
    }
}

/// Azure's system routes besides the VNet's own space: the internet by default, and nothing
/// for the private and shared ranges outside the VNet (Microsoft Learn, Virtual network traffic
/// routing, Default: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and 100.64.0.0/10 → None).
const SYSTEM_ROUTES: [(&str, NextHop); 5] = [
    ("0.0.0.0/0", NextHop::Internet),
    ("10.0.0.0/8", NextHop::Drop),
    ("172.16.0.0/12", NextHop::Drop),
    ("192.168.0.0/16", NextHop::Drop),
    ("100.64.0.0/10", NextHop::Drop),
];

/// The next hop `subnet` picks for `to`: the longest matching prefix, a user-defined route
/// before a system route of the same length. Returns the hop and the route, in words.
fn next_hop(vnet: &VirtualNetwork, subnet: &Subnet, to: Ipv4Addr) -> (NextHop, String) {
    let mut best: Option<(u8, bool, NextHop, String)> = None;
    let mut offer = |prefix: Ipv4Net, user: bool, hop: NextHop, name: String| {
        if !prefix.contains(&to) {
            return;
        }
        let better = match &best {
            None => true,
            Some((len, was_user, ..)) => {
                prefix.prefix_len() > *len || (prefix.prefix_len() == *len && user && !was_user)
            }
        };
        if better {
            best = Some((prefix.prefix_len(), user, hop, name));
        }
    };
    for space in &vnet.space {
        offer(
            *space,
            false,
            NextHop::VnetLocal,
            format!("system route {space} → VnetLocal"),
        );
    }
    for (prefix, hop) in SYSTEM_ROUTES {
        let prefix: Ipv4Net = prefix.parse().expect("a literal CIDR");
        offer(
            prefix,
            false,
            hop.clone(),
            format!("system route {prefix} → {hop:?}"),
        );
    }
    for r in &subnet.routes {
        offer(
            r.prefix,
            true,
            r.next_hop.clone(),
            format!("route {} {} → {:?}", r.name, r.prefix, r.next_hop),
        );
    }
    best.map(|(_, _, hop, name)| (hop, name))
        .unwrap_or((NextHop::Drop, "no route".into()))
}

impl Network {
    /// The VNet and subnet holding `address` (the most specific subnet).
    fn locate(&self, address: Ipv4Addr) -> Option<(usize, usize)> {
        self.vnets
            .iter()
            .enumerate()
            .flat_map(|(v, vnet)| {
                vnet.subnets
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.prefix.contains(&address))
                    .map(move |(s, subnet)| (v, s, subnet.prefix.prefix_len()))
            })
            .max_by_key(|(_, _, len)| *len)
            .map(|(v, s, _)| (v, s))
    }

    /// Whether `flow` gets through, and what decided.
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        let target = self.locate(flow.to.address);
        let Some((v, s)) = self.locate(flow.from.address) else {
            return self.enter_from_outside(flow, target);
        };
        let vnet = &self.vnets[v];
        let subnet = &vnet.subnets[s];
        if let Some(nsg) = &subnet.nsg {
            let (ok, why) = nsg.decide(Direction::Outbound, flow, &vnet.tag_prefixes());
            if !ok {
                return denied(why);
            }
        }
        let (hop, route) = next_hop(vnet, subnet, flow.to.address);
        match hop {
            NextHop::VnetLocal => match target {
                Some((tv, ts)) if tv == v => self.arrive(flow, tv, ts),
                _ => denied(format!("{route}: {} is not in {}", flow.to.address, vnet.name)),
            },
            NextHop::VirtualAppliance(ip) => {
                let Some(firewall) = self
                    .firewalls
                    .iter()
                    .find(|f| f.private_ip == ip && vnet.space.iter().any(|n| n.contains(&ip)))
                else {
                    return denied(format!("{route}: no firewall of {} has address {ip}", vnet.name));
                };
                let (ok, why) = firewall.filter(flow);
                if !ok {
                    return denied(why);
                }
                if flow.to.is_public() {
                    // Out through the firewall's own public address.
                    return allowed(why);
                }
                match target {
                    Some((tv, ts)) if tv == v => self.arrive(flow, tv, ts),
                    _ => denied(format!(
                        "{}: no route onward to {}",
                        firewall.name, flow.to.address
                    )),
                }
            }
            NextHop::Internet if !flow.to.is_public() => denied(format!(
                "{route}: {} is not on the internet",
                flow.to.address
            )),
            NextHop::Internet => match subnet.outbound {
                Outbound::None => denied(format!(
                    "{route}: {} has no way out (defaultOutboundAccess false, no NAT gateway, no public address)",
                    subnet.name
                )),
                way => allowed(format!("{route} via {way:?} of {}", subnet.name)),
            },
            NextHop::Drop => denied(route),
            NextHop::Other(kind) => denied(format!("{route}: a {kind} hop leads nowhere here")),
        }
    }

    /// A flow from outside every modelled VNet: only the platform's probes and what reaches
    /// a service's own public address get in.
    fn enter_from_outside(&self, flow: &Flow, target: Option<(usize, usize)>) -> Verdict {
        let Some((tv, ts)) = target else {
            return denied("neither end is in a modelled network");
        };
        let subnet = &self.vnets[tv].subnets[ts];
        let public_entry = subnet.outbound == Outbound::OwnPublicAddress
            && subnet.name == "AzureBastionSubnet"
            && flow.from.is_public();
        if flow.from.address == PLATFORM_ADDRESS || public_entry {
            self.arrive(flow, tv, ts)
        } else {
            denied(format!(
                "{} has no public address: {} cannot reach {}",
                subnet.name, flow.from.label, flow.to.address
            ))
        }
    }

    /// The last step: the firewall answering itself, or the destination subnet's NSG inbound.
    fn arrive(&self, flow: &Flow, v: usize, s: usize) -> Verdict {
        if let Some(firewall) = self
            .firewalls
            .iter()
            .find(|f| f.private_ip == flow.to.address)
        {
            let (ok, why) = firewall.answers(flow);
            return Verdict {
                allowed: ok,
                decided_by: why,
            };
        }
        let vnet = &self.vnets[v];
        let subnet = &vnet.subnets[s];
        match &subnet.nsg {
            Some(nsg) => {
                let (ok, why) = nsg.decide(Direction::Inbound, flow, &vnet.tag_prefixes());
                Verdict {
                    allowed: ok,
                    decided_by: why,
                }
            }
            None => allowed(format!("{}: no NSG", subnet.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::endpoint::{Endpoint, Protocol};
    use super::super::model::virtual_network;
    use super::super::{Expect, Flow};
    use super::*;

    /// A VNet 10.0.0.0/16 with subnet `a` (10.0.1.0/24, NSG `nsg`, route table `rt`) and `b`
    /// (10.0.2.0/24, no NSG).
    fn network(rules: Value, routes: Value) -> Network {
        let vnet = json!({ "properties": {
            "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
            "subnets": [
                { "name": "a", "properties": { "addressPrefix": "10.0.1.0/24", "defaultOutboundAccess": false,
                  "networkSecurityGroup": { "id": "/x/nsg" }, "routeTable": { "id": "/x/rt" } } },
                { "name": "b", "properties": { "addressPrefix": "10.0.2.0/24", "defaultOutboundAccess": false } },
            ]
        }});
        let resolve = move |id: &str| match id {
            "/x/nsg" => Some(json!({ "properties": { "securityRules": rules.clone() } })),
            "/x/rt" => Some(json!({ "properties": { "routes": routes.clone() } })),
            _ => None,
        };
        Network {
            vnets: vec![virtual_network("v", &vnet, &resolve).unwrap()],
            firewalls: Vec::new(),
        }
    }

    fn tcp(from: Ipv4Addr, to: Endpoint, port: u16) -> Flow {
        Flow {
            name: "f".into(),
            from: Endpoint::at("from", from),
            to,
            protocol: Protocol::Tcp,
            port,
            expect: Expect::Allowed,
        }
    }

    fn deny_rule(name: &str, to: &str) -> Value {
        json!({ "name": name, "properties": { "priority": 4000, "direction": "Outbound", "access": "Deny",
            "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": to, "destinationPortRange": "*" } })
    }

    #[test]
    fn a_default_route_puts_the_internet_inside_the_virtual_network_tag() {
        let public = Endpoint::named("example.com", Ipv4Addr::new(203, 0, 113, 9), &[]);
        let from = Ipv4Addr::new(10, 0, 1, 4);
        let to_nowhere = json!([{ "name": "out", "properties": { "addressPrefix": "0.0.0.0/0", "nextHopType": "Internet" } }]);
        // With no route to 0.0.0.0/0, a tag-based deny leaves the internet alone (and the
        // subnet then has no way out)...
        let plain = network(json!([deny_rule("DenyVnet", "VirtualNetwork")]), json!([]));
        let verdict = plain.evaluate(&tcp(from, public.clone(), 443));
        assert!(verdict.decided_by.contains("no way out"), "{verdict:?}");
        // ...with one, the same rule denies every internet-bound packet.
        let routed = network(json!([deny_rule("DenyVnet", "VirtualNetwork")]), to_nowhere);
        let verdict = routed.evaluate(&tcp(from, public, 443));
        assert!(!verdict.allowed);
        assert!(verdict.decided_by.contains("DenyVnet"), "{verdict:?}");
    }

    #[test]
    fn routes_pick_the_longest_prefix_and_a_user_route_beats_a_system_route_of_its_length() {
        let other = Endpoint::at("other", Ipv4Addr::new(10, 9, 0, 4));
        // 10.0.0.0/8 → None (system) beats a user 0.0.0.0/0.
        let n = network(
            json!([]),
            json!([{ "name": "all", "properties": { "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.3.4" } }]),
        );
        let verdict = n.evaluate(&tcp(Ipv4Addr::new(10, 0, 1, 4), other.clone(), 443));
        assert_eq!(verdict.decided_by, "system route 10.0.0.0/8 → Drop");
        // A user 10.0.0.0/8 replaces the system one.
        let n = network(
            json!([]),
            json!([{ "name": "ten", "properties": { "addressPrefix": "10.0.0.0/8", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.3.4" } }]),
        );
        let verdict = n.evaluate(&tcp(Ipv4Addr::new(10, 0, 1, 4), other, 443));
        assert!(verdict.decided_by.starts_with("route ten"), "{verdict:?}");
    }

    #[test]
    fn default_rules_allow_the_vnet_and_a_missing_nsg_allows_everything() {
        let n = network(json!([]), json!([]));
        let a_to_b = n.evaluate(&tcp(
            Ipv4Addr::new(10, 0, 1, 4),
            Endpoint::at("b", Ipv4Addr::new(10, 0, 2, 4)),
            22,
        ));
        assert!(a_to_b.allowed);
        assert_eq!(a_to_b.decided_by, "b: no NSG");
        let b_to_a = n.evaluate(&tcp(
            Ipv4Addr::new(10, 0, 2, 4),
            Endpoint::at("a", Ipv4Addr::new(10, 0, 1, 4)),
            22,
        ));
        assert!(b_to_a.allowed);
        assert!(
            b_to_a.decided_by.contains("AllowVnetInBound (65000"),
            "{b_to_a:?}"
        );
    }
}
