//! The two ends of a flow.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Azure's platform address: load balancer probes and Azure DNS come from it ("168.63.129.16
/// is a virtual public IP address ... the AzureLoadBalancer service tag", Microsoft Learn, What
/// is IP address 168.63.129.16).
pub const PLATFORM_ADDRESS: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The name NSG and firewall rules use.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One end of a flow: an address, the name it was reached by (what an application rule sees
/// in SNI or the Host header) and the service tags it belongs to beyond what its address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What it is, in words.
    pub label: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// The FQDN a client used, if any.
    pub fqdn: Option<String>,
    /// Service tags it belongs to (`AzureCloud`, `GatewayManager`), beyond `Internet`,
    /// `VirtualNetwork` and `AzureLoadBalancer`, which follow from the address.
    pub tags: Vec<&'static str>,
}

impl Endpoint {
    /// An address inside a network.
    pub fn at(label: impl Into<String>, address: Ipv4Addr) -> Endpoint {
        Endpoint {
            label: label.into(),
            address,
            fqdn: None,
            tags: Vec::new(),
        }
    }

    /// A host on the internet reached by name.
    pub fn named(fqdn: &str, address: Ipv4Addr, tags: &[&'static str]) -> Endpoint {
        Endpoint {
            label: fqdn.to_string(),
            address,
            fqdn: Some(fqdn.to_ascii_lowercase()),
            tags: tags.to_vec(),
        }
    }

    /// With service tags.
    pub fn tagged(mut self, tags: &[&'static str]) -> Endpoint {
        self.tags = tags.to_vec();
        self
    }

    /// Azure's platform address (load balancer probes).
    pub fn platform() -> Endpoint {
        Endpoint::at("Azure load balancer probe", PLATFORM_ADDRESS)
    }

    /// Whether the address is outside the private and shared ranges: what the `Internet`
    /// service tag covers ("the IP address space that's outside the virtual network and
    /// reachable by the public internet", Microsoft Learn, Virtual network service tags).
    pub fn is_public(&self) -> bool {
        let a = self.address;
        let shared: Ipv4Net = "100.64.0.0/10".parse().expect("a literal CIDR");
        !(a.is_private()
            || a.is_loopback()
            || a.is_link_local()
            || shared.contains(&a)
            || a == PLATFORM_ADDRESS)
    }

    /// Whether it carries service tag `tag`. A regional tag (`AzureCloud.westeurope`) names
    /// only part of its base tag, so an endpoint tagged with the base does not match it.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|own| own.eq_ignore_ascii_case(tag))
    }
}
