//! Deterministic Azure names. The same object always maps to the same names, so a PUT that is
//! retried, or repeated after a restart, lands on the same resource instead of creating a twin.

/// FNV-1a, 32 bit: stable across releases and platforms (unlike `DefaultHasher`), which is what a
/// name suffix persisted in Azure needs.
fn fnv1a(input: &str) -> u32 {
    input.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Six hex digits that tell apart objects with the same name in different namespaces.
pub fn short_hash(input: &str) -> String {
    format!("{:06x}", fnv1a(input) & 0x00ff_ffff)
}

/// The key every Azure name of a namespaced object starts from: `<name>-<hash(namespace/name)>`.
/// Names are at most 40 characters (a CEL rule on the kinds), so keys stay within 47.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{name}-{}", short_hash(&format!("{namespace}/{name}")))
}

/// Names of the resources of one stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampNames {
    /// `<stamp>-<hash>`.
    pub key: String,
}

impl StampNames {
    /// Names for the stamp `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> StampNames {
        StampNames {
            key: object_key(namespace, name),
        }
    }

    /// Resource group created for the stamp.
    pub fn resource_group(&self) -> String {
        format!("rg-{}", self.key)
    }
    /// Virtual network.
    pub fn virtual_network(&self) -> String {
        format!("vnet-{}", self.key)
    }
    /// NSG of the subnet with `role_slug`.
    pub fn nsg(&self, role_slug: &str) -> String {
        format!("nsg-{}-{role_slug}", self.key)
    }
    /// Route table of the app subnet.
    pub fn route_table(&self) -> String {
        format!("rt-{}-app", self.key)
    }
    /// The firewall's public IP.
    pub fn firewall_public_ip(&self) -> String {
        format!("pip-{}-afw", self.key)
    }
    /// Azure Firewall: at most 50 characters (Azure Firewall FAQ, "What are the naming
    /// requirements"; DESIGN.md). Keys are at most 47, so the longest take the shorter prefix;
    /// every name Azure ever accepted keeps its `afw-` (renaming a firewall would mean a second
    /// one in the same AzureFirewallSubnet, which Azure refuses).
    pub fn firewall(&self) -> String {
        let name = format!("afw-{}", self.key);
        if name.len() <= 50 {
            name
        } else {
            format!("fw-{}", self.key)
        }
    }
    /// Firewall policy.
    pub fn firewall_policy(&self) -> String {
        format!("afwp-{}", self.key)
    }
    /// Private Link Service created in mode Create.
    pub fn private_link_service(&self) -> String {
        format!("pls-{}", self.key)
    }
    /// The stamp's origin in Front Door.
    pub fn front_door_origin(&self) -> String {
        self.key.clone()
    }
}

/// Keeps what Azure accepts in a name that allows only letters and digits (WAF policies).
pub fn alphanumeric(input: &str) -> String {
    input.chars().filter(char::is_ascii_alphanumeric).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_tell_namespaces_apart() {
        assert_eq!(object_key("prod", "weu1"), object_key("prod", "weu1"));
        assert_ne!(object_key("prod", "weu1"), object_key("staging", "weu1"));
        // Pinned (FNV-1a test vectors): a change here renames every resource of every live stamp.
        assert_eq!(short_hash(""), "1c9dc5");
        assert_eq!(short_hash("a"), "0c292c");
    }

    #[test]
    fn longest_names_fit_azure_limits() {
        let names = StampNames::new(&"n".repeat(63), &"s".repeat(40));
        assert!(names.firewall().len() <= 50, "{}", names.firewall());
        assert_eq!(
            StampNames::new("prod", "weu-blue").firewall(),
            "afw-weu-blue-723cc3"
        );
        assert!(names.nsg("private-endpoints").len() <= 80);
        assert!(names.resource_group().len() <= 90);
    }
}
