//! Who created a resource: the owner tag every tracked resource the operator creates carries,
//! and the order in which what an owner created is removed.
//!
//! The tag is the inventory a restarted operator finds: it is written by the same PUT that
//! creates the resource, so no crash can separate a resource from the record of its owner.
//! Proxy children (rule collection groups, Front Door routes, zone groups) carry no tags in
//! Azure; they are found by listing their parent, which only its owner writes.

use serde_json::Value;

/// The tag naming the object that created a resource.
pub const OWNER_TAG: &str = "missioncritical.dev/owner";

/// The object a resource belongs to: `Stamp/prod/weu-blue`, `PrivateEndpointSet/prod/paas`,
/// `GlobalPlane/prod`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner(String);

impl Owner {
    /// The owner `kind` `namespace/name` (cluster-scoped kinds have no namespace).
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Owner {
        Owner(match namespace {
            Some(ns) => format!("{kind}/{ns}/{name}"),
            None => format!("{kind}/{name}"),
        })
    }

    /// A stamp.
    pub fn stamp(namespace: &str, name: &str) -> Owner {
        Owner::new("Stamp", Some(namespace), name)
    }

    /// A PrivateEndpointSet.
    pub fn endpoint_set(namespace: &str, name: &str) -> Owner {
        Owner::new("PrivateEndpointSet", Some(namespace), name)
    }

    /// A GlobalPlane.
    pub fn global_plane(name: &str) -> Owner {
        Owner::new("GlobalPlane", None, name)
    }

    /// The tag's value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `tags` (a resource's `tags` object, or null) name this owner.
    pub fn owns(&self, tags: &Value) -> bool {
        tags.get(OWNER_TAG).and_then(Value::as_str) == Some(self.as_str())
    }

    /// `tags` with this owner's tag added.
    pub fn tagged(&self, mut tags: Value) -> Value {
        if let Some(map) = tags.as_object_mut() {
            map.insert(OWNER_TAG.to_string(), Value::String(self.0.clone()));
        }
        tags
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a resource of `resource_type` is removed among others: lower first. What uses a
/// resource goes before it (a private endpoint before the subnet it sits in, the firewall
/// before its policy and public IP, a zone's VNet links before the zone), and Azure refuses
/// the other order (`InUseSubnetCannotBeDeleted`, `PublicIPAddressCannotBeDeleted`, a private
/// DNS zone with links).
pub fn removal_rank(resource_type: &str) -> u8 {
    match resource_type.to_ascii_lowercase().as_str() {
        "microsoft.cdn/profiles/afdendpoints/routes"
        | "microsoft.cdn/profiles/origingroups/origins"
        | "microsoft.network/firewallpolicies/rulecollectiongroups"
        | "microsoft.network/privateendpoints/privatednszonegroups" => 0,
        "microsoft.cdn/profiles/securitypolicies"
        | "microsoft.cdn/profiles/afdendpoints"
        | "microsoft.cdn/profiles/origingroups"
        | "microsoft.network/privateendpoints"
        | "microsoft.network/azurefirewalls"
        | "microsoft.network/bastionhosts" => 1,
        "microsoft.network/privatelinkservices"
        | "microsoft.network/privatednszones/virtualnetworklinks"
        | "microsoft.cdn/profiles" => 2,
        "microsoft.network/virtualnetworks" => 3,
        "microsoft.network/networksecuritygroups"
        | "microsoft.network/routetables"
        | "microsoft.network/publicipaddresses"
        | "microsoft.network/firewallpolicies"
        | "microsoft.network/frontdoorwebapplicationfirewallpolicies"
        | "microsoft.network/privatednszones" => 4,
        "microsoft.resources/resourcegroups" => 6,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_owner_recognises_only_its_own_tag() {
        let stamp = Owner::stamp("prod", "weu-blue");
        let tags = stamp.tagged(json!({ "managed-by": "stamp-operator" }));
        assert!(stamp.owns(&tags));
        assert!(!Owner::stamp("prod", "weu-green").owns(&tags));
        assert!(!Owner::endpoint_set("prod", "weu-blue").owns(&tags));
        assert!(!stamp.owns(&json!({ "missioncritical.dev/stamp": "prod/weu-blue" })));
        assert!(!stamp.owns(&Value::Null));
        assert_eq!(Owner::global_plane("prod").as_str(), "GlobalPlane/prod");
    }

    #[test]
    fn users_go_before_what_they_use() {
        let rank = removal_rank;
        assert!(
            rank("Microsoft.Network/privateEndpoints") < rank("Microsoft.Network/virtualNetworks")
        );
        assert!(
            rank("Microsoft.Network/azureFirewalls") < rank("Microsoft.Network/publicIPAddresses")
        );
        assert!(
            rank("Microsoft.Network/azureFirewalls") < rank("Microsoft.Network/firewallPolicies")
        );
        assert!(
            rank("Microsoft.Network/privateDnsZones/virtualNetworkLinks")
                < rank("Microsoft.Network/privateDnsZones")
        );
        assert!(
            rank("Microsoft.Network/virtualNetworks")
                < rank("Microsoft.Network/networkSecurityGroups")
        );
        assert!(
            rank("Microsoft.Network/firewallPolicies") < rank("Microsoft.Resources/resourceGroups")
        );
    }
}
