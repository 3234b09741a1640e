//! Address planning: carve subnets from a VNet's address space, or check the ones given.
//!
//! Azure reserves 5 addresses in every subnet (network, gateway, two for DNS, broadcast), so a
//! /29 has 3 usable addresses and a /26 has 59.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::error::{PlanError, PlanResult};
use crate::api::CidrBlock;

/// Addresses Azure keeps for itself in every subnet.
pub const AZURE_RESERVED_PER_SUBNET: u32 = 5;

/// What a subnet is for. The order of the variants is the order subnets appear in a VNet body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubnetRole {
    /// AKS node pools of a stamp.
    App,
    /// Internal load balancer and Private Link Service of a stamp.
    Ingress,
    /// `AzureFirewallSubnet`.
    Firewall,
    /// Private endpoints (stamp or operations network).
    PrivateEndpoints,
    /// Self-hosted build agents of an operations network.
    BuildAgents,
    /// Jump boxes of an operations network.
    JumpBoxes,
    /// `AzureBastionSubnet`.
    Bastion,
}

impl SubnetRole {
    /// Subnet name in Azure. Firewall and Bastion subnets must carry exactly these names.
    pub fn azure_name(self) -> &'static str {
        match self {
            SubnetRole::App => "snet-app",
            SubnetRole::Ingress => "snet-ingress",
            SubnetRole::Firewall => "AzureFirewallSubnet",
            SubnetRole::PrivateEndpoints => "snet-private-endpoints",
            SubnetRole::BuildAgents => "snet-build-agents",
            SubnetRole::JumpBoxes => "snet-jump-boxes",
            SubnetRole::Bastion => "AzureBastionSubnet",
        }
    }

    /// Short form used in resource names.
    pub fn slug(self) -> &'static str {
        match self {
            SubnetRole::App => "app",
            SubnetRole::Ingress => "ingress",
            SubnetRole::Firewall => "firewall",
            SubnetRole::PrivateEndpoints => "pe",
            SubnetRole::BuildAgents => "build",
            SubnetRole::JumpBoxes => "jump",
            SubnetRole::Bastion => "bastion",
        }
    }

    /// Field name under `subnets` in the spec.
    pub fn field(self) -> &'static str {
        match self {
            SubnetRole::App => "app",
            SubnetRole::Ingress => "ingress",
            SubnetRole::Firewall => "firewall",
            SubnetRole::PrivateEndpoints => "privateEndpoints",
            SubnetRole::BuildAgents => "buildAgents",
            SubnetRole::JumpBoxes => "jumpBoxes",
            SubnetRole::Bastion => "bastion",
        }
    }

    /// Role name in status.
    pub fn label(self) -> &'static str {
        match self {
            SubnetRole::App => "App",
            SubnetRole::Ingress => "Ingress",
            SubnetRole::Firewall => "Firewall",
            SubnetRole::PrivateEndpoints => "PrivateEndpoints",
            SubnetRole::BuildAgents => "BuildAgents",
            SubnetRole::JumpBoxes => "JumpBoxes",
            SubnetRole::Bastion => "Bastion",
        }
    }

    /// The longest prefix (smallest subnet) allowed, and why.
    fn smallest(self) -> (u8, &'static str) {
        match self {
            SubnetRole::Firewall => (26, "Azure requires AzureFirewallSubnet to be /26 or larger"),
            SubnetRole::Bastion => (26, "Azure requires AzureBastionSubnet to be /26 or larger"),
            SubnetRole::App => (27, "the AKS subnet must be /27 or larger"),
            SubnetRole::BuildAgents => (28, "the build-agent subnet must be /28 or larger"),
            SubnetRole::JumpBoxes => (29, "the jump-box subnet must be /29 or larger"),
            SubnetRole::Ingress => (29, "the ingress subnet needs the load-balancer IP and Private Link NAT IPs: /29 or larger"),
            SubnetRole::PrivateEndpoints => (28, "the private-endpoint subnet must be /28 or larger"),
        }
    }

    /// Whether Azure allows an NSG on this subnet.
    pub fn takes_nsg(self) -> bool {
        self != SubnetRole::Firewall
    }
}

/// One subnet of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetBlock {
    /// Its role.
    pub role: SubnetRole,
    /// Its block.
    pub cidr: Ipv4Net,
    /// True when the spec gave it, false when carved.
    pub given: bool,
}

impl SubnetBlock {
    /// Addresses left after Azure's reserved ones.
    pub fn usable(&self) -> u32 {
        block_size(self.cidr.prefix_len()) - AZURE_RESERVED_PER_SUBNET
    }

    /// The first address Azure hands out (the 5th of the block: .0–.3 are reserved).
    pub fn first_usable(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 4)
    }

    /// Whether `ip` is one Azure can assign in this subnet.
    pub fn can_assign(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip >= self.first_usable() && ip < self.cidr.broadcast()
    }
}

/// The address space of a VNet and its subnets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    /// The VNet's address space.
    pub space: Ipv4Net,
    /// Subnets in role order.
    pub subnets: Vec<SubnetBlock>,
}

impl AddressPlan {
    /// The subnet with `role`. Plans are built with every role they serve, so a missing role is
    /// a caller bug; it answers `None` rather than panicking.
    pub fn subnet(&self, role: SubnetRole) -> Option<&SubnetBlock> {
        self.subnets.iter().find(|s| s.role == role)
    }
}

/// What a caller asks of one subnet.
#[derive(Debug, Clone)]
pub struct SubnetRequest {
    /// Role.
    pub role: SubnetRole,
    /// The block the spec gave, if any.
    pub given: Option<CidrBlock>,
    /// Prefix to carve when not given.
    pub prefix: u8,
    /// When carving, may shrink down to this prefix to make room (the big workload subnet).
    pub shrink_to: Option<u8>,
}

fn block_size(prefix: u8) -> u32 {
    1u32 << (32 - u32::from(prefix))
}

/// Parses a CIDR block and insists on Azure's rules: IPv4, network address, private range.
pub fn parse_block(field: &str, raw: &str) -> PlanResult<Ipv4Net> {
    let net: Ipv4Net = raw.parse().map_err(|_| {
        PlanError::new(
            field,
            format!("`{raw}` is not an IPv4 CIDR block such as 10.10.0.0/20"),
        )
    })?;
    if net.trunc() != net {
        return Err(PlanError::new(
            field,
            format!("`{raw}` has host bits set; write the network address {} (Azure answers InvalidCIDRNotation)", net.trunc()),
        ));
    }
    Ok(net)
}

/// Private ranges a locked-down VNet may use: RFC 1918 and the RFC 6598 shared space.
fn is_private(net: &Ipv4Net) -> bool {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
    ]
    .iter()
    .filter_map(|r| r.parse::<Ipv4Net>().ok())
    .any(|range| range.contains(net))
}

/// Parses and checks a VNet address space (`field` names it in errors).
pub fn parse_space(field: &str, raw: &str) -> PlanResult<Ipv4Net> {
    let space = parse_block(field, raw)?;
    if !is_private(&space) {
        return Err(PlanError::new(
            field,
            format!("`{raw}` is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10)"),
        ));
    }
    if space.prefix_len() > 24 {
        return Err(PlanError::new(
            field,
            format!("`{raw}` is too small: the address space must be /24 or larger"),
        ));
    }
    Ok(space)
}

/// Builds an address plan: given subnets are checked, the rest carved first-fit, largest first.
/// `subnets_field` is the spec path of the subnet overrides (`spec.subnets`).
pub fn plan_addresses(
    space: Ipv4Net,
    subnets_field: &str,
    requests: &[SubnetRequest],
) -> PlanResult<AddressPlan> {
    let mut fixed = Vec::new();
    for request in requests {
        if let Some(given) = &request.given {
            let field = format!("{subnets_field}.{}", request.role.field());
            let cidr = check_given(&field, space, request.role, given)?;
            if let Some(other) = fixed.iter().find(|b: &&SubnetBlock| {
                b.cidr.contains(&cidr.network()) || cidr.contains(&b.cidr.network())
            }) {
                return Err(PlanError::new(
                    field,
                    format!(
                        "{cidr} overlaps the {} subnet {}",
                        other.role.azure_name(),
                        other.cidr
                    ),
                ));
            }
            fixed.push(SubnetBlock {
                role: request.role,
                cidr,
                given: true,
            });
        }
    }
    let to_carve: Vec<&SubnetRequest> = requests.iter().filter(|r| r.given.is_none()).collect();
    let shrinkable = to_carve
        .iter()
        .find_map(|r| r.shrink_to.map(|floor| (r.role, floor)));
    let mut attempt_shrink = 0u8;
    loop {
        let sizes: Vec<(SubnetRole, u8)> = to_carve
            .iter()
            .map(|r| match shrinkable {
                Some((role, _)) if role == r.role => (r.role, r.prefix + attempt_shrink),
                _ => (r.role, r.prefix),
            })
            .collect();
        if let Some(carved) = carve(space, &fixed, &sizes) {
            let mut subnets = fixed.clone();
            subnets.extend(carved);
            subnets.sort_by_key(|s| s.role);
            return Ok(AddressPlan { space, subnets });
        }
        match shrinkable {
            Some((role, floor))
                if to_carve
                    .iter()
                    .any(|r| r.role == role && r.prefix + attempt_shrink < floor) =>
            {
                attempt_shrink += 1;
            }
            _ => {
                let wanted: Vec<String> = sizes
                    .iter()
                    .map(|(role, p)| format!("{} /{p}", role.azure_name()))
                    .collect();
                return Err(PlanError::new(
                    subnets_field.trim_end_matches(".subnets").to_string() + ".addressSpace",
                    format!("{space} has no room left for {}", wanted.join(", ")),
                ));
            }
        }
    }
}

fn check_given(
    field: &str,
    space: Ipv4Net,
    role: SubnetRole,
    given: &CidrBlock,
) -> PlanResult<Ipv4Net> {
    let cidr = parse_block(field, given.as_str())?;
    if !space.contains(&cidr) {
        return Err(PlanError::new(
            field,
            format!("{cidr} is not inside the address space {space}"),
        ));
    }
    let (smallest, why) = role.smallest();
    if cidr.prefix_len() > smallest {
        return Err(PlanError::new(field, format!("{cidr} is too small: {why}")));
    }
    Ok(cidr)
}

/// First-fit, largest blocks first, each aligned to its size. `None` when something does not fit.
fn carve(
    space: Ipv4Net,
    fixed: &[SubnetBlock],
    sizes: &[(SubnetRole, u8)],
) -> Option<Vec<SubnetBlock>> {
    let mut order: Vec<(SubnetRole, u8)> = sizes.to_vec();
    order.sort_by_key(|(role, prefix)| (*prefix, *role));
    let mut taken: Vec<Ipv4Net> = fixed.iter().map(|b| b.cidr).collect();
    let mut out = Vec::new();
    for (role, prefix) in order {
        if prefix < space.prefix_len() || prefix > 30 {
            return None;
        }
        let step = block_size(prefix);
        let start = u32::from(space.network());
        let end = u32::from(space.broadcast());
        let found = (0..)
            .map(|i: u64| u64::from(start) + i * u64::from(step))
            .take_while(|addr| *addr + u64::from(step) - 1 <= u64::from(end))
            .filter_map(|addr| Ipv4Net::new(Ipv4Addr::from(addr as u32), prefix).ok())
            .find(|candidate| {
                !taken
                    .iter()
                    .any(|t| t.contains(&candidate.network()) || candidate.contains(&t.network()))
            })?;
        taken.push(found);
        out.push(SubnetBlock {
            role,
            cidr: found,
            given: false,
        });
    }
    Some(out)
}

/// Default prefix of a private-endpoint subnet for an address space: room grows with the space.
pub fn private_endpoint_prefix(space: Ipv4Net) -> u8 {
    match space.prefix_len() {
        0..=22 => 25,
        23 => 26,
        _ => 27,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp_requests(given: &[(SubnetRole, &str)]) -> Vec<SubnetRequest> {
        let space: Ipv4Net = "10.0.0.0/20".parse().unwrap();
        [
            (SubnetRole::App, space.prefix_len() + 1, Some(27)),
            (SubnetRole::Ingress, 28, None),
            (SubnetRole::Firewall, 26, None),
            (
                SubnetRole::PrivateEndpoints,
                private_endpoint_prefix(space),
                None,
            ),
        ]
        .into_iter()
        .map(|(role, prefix, shrink_to)| SubnetRequest {
            role,
            given: given
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, c)| CidrBlock::from(*c)),
            prefix,
            shrink_to,
        })
        .collect()
    }

    #[test]
    fn carves_a_slash_20_deterministically() {
        let space = parse_space("spec.addressSpace", "10.0.0.0/20").unwrap();
        let plan = plan_addresses(space, "spec.subnets", &stamp_requests(&[])).unwrap();
        let got: Vec<(SubnetRole, String)> = plan
            .subnets
            .iter()
            .map(|s| (s.role, s.cidr.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (SubnetRole::App, "10.0.0.0/21".into()),
                (SubnetRole::Ingress, "10.0.8.192/28".into()),
                (SubnetRole::Firewall, "10.0.8.128/26".into()),
                (SubnetRole::PrivateEndpoints, "10.0.8.0/25".into()),
            ]
        );
        assert_eq!(plan.subnet(SubnetRole::Firewall).unwrap().usable(), 59);
        assert_eq!(
            plan.subnet(SubnetRole::Firewall)
                .unwrap()
                .first_usable()
                .to_string(),
            "10.0.8.132"
        );
    }

    #[test]
    fn carves_around_given_subnets() {
        let space = parse_space("spec.addressSpace", "10.0.0.0/20").unwrap();
        let plan = plan_addresses(
            space,
            "spec.subnets",
            &stamp_requests(&[(SubnetRole::Firewall, "10.0.0.0/26")]),
        )
        .unwrap();
        let fw = plan.subnet(SubnetRole::Firewall).unwrap();
        assert!(fw.given);
        assert_eq!(fw.cidr.to_string(), "10.0.0.0/26");
        // The /21 app subnet cannot start at .0 any more; it moves to the upper half.
        assert_eq!(
            plan.subnet(SubnetRole::App).unwrap().cidr.to_string(),
            "10.0.8.0/21"
        );
    }

    #[test]
    fn the_workload_subnet_shrinks_to_make_room() {
        let space = parse_space("spec.addressSpace", "10.0.0.0/24").unwrap();
        let requests = stamp_requests(&[(SubnetRole::PrivateEndpoints, "10.0.0.64/26")]);
        let plan = plan_addresses(space, "spec.subnets", &requests).unwrap();
        assert_eq!(plan.subnet(SubnetRole::App).unwrap().cidr.prefix_len(), 26);
    }

    #[test]
    fn refuses_small_overlapping_outside_and_unaligned_blocks() {
        let space = parse_space("spec.addressSpace", "10.0.0.0/20").unwrap();
        let cases = [
            (
                SubnetRole::Firewall,
                "10.0.0.0/27",
                "spec.subnets.firewall",
                "/26 or larger",
            ),
            (
                SubnetRole::Ingress,
                "10.1.0.0/28",
                "spec.subnets.ingress",
                "not inside the address space",
            ),
            (
                SubnetRole::Ingress,
                "10.0.0.1/28",
                "spec.subnets.ingress",
                "host bits",
            ),
            (
                SubnetRole::Ingress,
                "10.0.0/28",
                "spec.subnets.ingress",
                "not an IPv4 CIDR",
            ),
        ];
        for (role, cidr, field, needle) in cases {
            let err = plan_addresses(space, "spec.subnets", &stamp_requests(&[(role, cidr)]))
                .unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.reason.contains(needle), "{err}");
        }
        let err = plan_addresses(
            space,
            "spec.subnets",
            &stamp_requests(&[
                (SubnetRole::Firewall, "10.0.0.0/26"),
                (SubnetRole::Ingress, "10.0.0.32/28"),
            ]),
        )
        .unwrap_err();
        assert!(err.reason.contains("overlaps the"), "{err}");
    }

    #[test]
    fn refuses_public_and_tiny_spaces() {
        assert!(parse_space("f", "8.8.8.0/24")
            .unwrap_err()
            .reason
            .contains("private"));
        assert!(parse_space("f", "10.0.0.0/25")
            .unwrap_err()
            .reason
            .contains("/24 or larger"));
    }

    #[test]
    fn reports_a_space_without_room() {
        let space = parse_space("spec.addressSpace", "10.0.0.0/24").unwrap();
        let requests = stamp_requests(&[
            (SubnetRole::App, "10.0.0.0/25"),
            (SubnetRole::PrivateEndpoints, "10.0.0.128/26"),
        ]);
        let err = plan_addresses(space, "spec.subnets", &requests).unwrap_err();
        assert_eq!(err.field, "spec.addressSpace");
        assert!(err.reason.contains("no room"), "{err}");
    }
}
