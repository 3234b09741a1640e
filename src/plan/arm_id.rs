//! ARM resource ids, built and taken apart without guessing.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{PlanError, PlanResult};

/// A full ARM resource id such as
/// `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<name>`.
/// Kept in the case it was built with; compare with [`ArmId::same_as`] where ARM is case-insensitive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArmId(String);

impl ArmId {
    /// A resource group.
    pub fn resource_group(subscription: &str, group: &str) -> ArmId {
        ArmId(format!(
            "/subscriptions/{subscription}/resourceGroups/{group}"
        ))
    }

    /// A top-level resource of `provider_type` (`Microsoft.Network/virtualNetworks`) in a group.
    pub fn resource(subscription: &str, group: &str, provider_type: &str, name: &str) -> ArmId {
        ArmId(format!(
            "/subscriptions/{subscription}/resourceGroups/{group}/providers/{provider_type}/{name}"
        ))
    }

    /// A child of this resource (`subnets`, `name`).
    pub fn child(&self, child_type: &str, name: &str) -> ArmId {
        ArmId(format!("{}/{child_type}/{name}", self.0))
    }

    /// Parses an id the user wrote, naming `field` in the error.
    pub fn parse(field: &str, raw: &str) -> PlanResult<ArmId> {
        let parts: Vec<&str> = raw.split('/').collect();
        let well_formed = parts.len() >= 9
            && parts[0].is_empty()
            && parts[1].eq_ignore_ascii_case("subscriptions")
            && parts[3].eq_ignore_ascii_case("resourceGroups")
            && parts[5].eq_ignore_ascii_case("providers")
            && parts.len() % 2 == 1
            && parts[1..].iter().all(|p| !p.is_empty());
        if !well_formed {
            return Err(PlanError::new(
                field,
                format!("`{raw}` is not an ARM resource id (/subscriptions/<id>/resourceGroups/<group>/providers/<namespace>/<type>/<name>)"),
            ));
        }
        Ok(ArmId(raw.to_string()))
    }

    /// Parses a resource group's id (`/subscriptions/<id>/resourceGroups/<group>`).
    pub fn parse_group(field: &str, raw: &str) -> PlanResult<ArmId> {
        let parts: Vec<&str> = raw.split('/').collect();
        match parts.as_slice() {
            ["", subscriptions, sub, groups, group]
                if subscriptions.eq_ignore_ascii_case("subscriptions")
                    && groups.eq_ignore_ascii_case("resourceGroups")
                    && !sub.is_empty()
                    && !group.is_empty() =>
            {
                Ok(ArmId::resource_group(sub, group))
            }
            _ => Err(PlanError::new(
                field,
                format!("`{raw}` is not a resource group id (/subscriptions/<id>/resourceGroups/<group>)"),
            )),
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segment(&self, index: usize) -> &str {
        self.0.split('/').nth(index).unwrap_or_default()
    }

    /// Subscription id.
    pub fn subscription(&self) -> &str {
        self.segment(2)
    }

    /// Resource group name.
    pub fn resource_group_name(&self) -> &str {
        self.segment(4)
    }

    /// Resource type with namespace, children included: `Microsoft.Network/virtualNetworks/subnets`.
    /// A resource group answers `Microsoft.Resources/resourceGroups`.
    pub fn resource_type(&self) -> String {
        let parts: Vec<&str> = self.0.split('/').collect();
        let Some(namespace) = parts.get(6) else {
            return "Microsoft.Resources/resourceGroups".into();
        };
        let mut out = namespace.to_string();
        for type_segment in parts.iter().skip(7).step_by(2) {
            out.push('/');
            out.push_str(type_segment);
        }
        out
    }

    /// Last name segment.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }

    /// The parent resource (a subnet's VNet), or `None` for a top-level resource or group.
    pub fn parent(&self) -> Option<ArmId> {
        let parts: Vec<&str> = self.0.split('/').collect();
        (parts.len() > 9).then(|| ArmId(parts[..parts.len() - 2].join("/")))
    }

    /// Whether a listing of its resource group shows it: a top-level resource, or a child ARM
    /// tracks (it has a location of its own: a private DNS zone's virtual network link, a Front
    /// Door endpoint). Proxy children (subnets, rule collection groups, origins) are not listed.
    pub fn listed_in_group(&self) -> bool {
        const TRACKED_CHILDREN: [&str; 2] = [
            "microsoft.network/privatednszones/virtualnetworklinks",
            "microsoft.cdn/profiles/afdendpoints",
        ];
        let parts = self.0.split('/').count();
        parts == 9
            || parts > 9
                && TRACKED_CHILDREN.contains(&self.resource_type().to_ascii_lowercase().as_str())
    }

    /// ARM compares ids case-insensitively.
    pub fn same_as(&self, other: &ArmId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_takes_apart_a_subnet_id() {
        let vnet = ArmId::resource("s", "rg", "Microsoft.Network/virtualNetworks", "v");
        let subnet = vnet.child("subnets", "snet-app");
        assert_eq!(subnet.as_str(), "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/snet-app");
        assert_eq!(
            subnet.resource_type(),
            "Microsoft.Network/virtualNetworks/subnets"
        );
        assert_eq!(subnet.name(), "snet-app");
        assert_eq!(subnet.parent(), Some(vnet.clone()));
        assert_eq!(vnet.parent(), None);
        assert_eq!(subnet.subscription(), "s");
        assert_eq!(subnet.resource_group_name(), "rg");
        assert_eq!(
            ArmId::resource_group("s", "rg").resource_type(),
            "Microsoft.Resources/resourceGroups"
        );
    }

    #[test]
    fn a_group_listing_shows_top_level_resources_and_tracked_children_only() {
        let vnet = ArmId::resource("s", "rg", "Microsoft.Network/virtualNetworks", "v");
        let zone = ArmId::resource("s", "rg", "Microsoft.Network/privateDnsZones", "z");
        let profile = ArmId::resource("s", "rg", "Microsoft.Cdn/profiles", "p");
        assert!(vnet.listed_in_group());
        assert!(zone.child("virtualNetworkLinks", "l").listed_in_group());
        assert!(profile.child("afdEndpoints", "e").listed_in_group());
        assert!(!vnet.child("subnets", "a").listed_in_group());
        assert!(!profile.child("originGroups", "g").listed_in_group());
        assert!(!profile
            .child("originGroups", "g")
            .child("origins", "o")
            .listed_in_group());
        assert!(!ArmId::resource_group("s", "rg").listed_in_group());
    }

    #[test]
    fn group_ids_parse_and_nothing_else_does() {
        let g = ArmId::parse_group("f", "/subscriptions/s/resourceGroups/rg").unwrap();
        assert_eq!((g.subscription(), g.resource_group_name()), ("s", "rg"));
        for bad in [
            "",
            "/subscriptions/s/resourceGroups/",
            "/subscriptions//resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg/providers/A.B/c/d",
        ] {
            assert!(ArmId::parse_group("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_refuses_what_is_not_an_id() {
        for bad in [
            "",
            "vault",
            "/subscriptions/s",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults",
            "/subscriptions//resourceGroups/rg/providers/A.B/c/d",
        ] {
            let err = ArmId::parse("spec.x", bad).unwrap_err();
            assert_eq!(err.field, "spec.x");
        }
        let ok = ArmId::parse(
            "f",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
        )
        .unwrap();
        assert_eq!(ok.resource_type(), "Microsoft.KeyVault/vaults");
        assert!(ok.same_as(
            &ArmId::parse(
                "f",
                "/SUBSCRIPTIONS/s/resourcegroups/RG/providers/microsoft.keyvault/vaults/KV1"
            )
            .unwrap()
        ));
    }
}
