//! Private DNS: which `privatelink.*` zone serves a private-link sub-resource (groupId), which
//! resource types offer it, and how many addresses its endpoint takes.

/// What the planner knows about one groupId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdInfo {
    /// The private DNS zone; `{region}` is replaced by the endpoint's region.
    pub zone: &'static str,
    /// ARM resource types that offer this groupId (lower case).
    pub resource_types: &'static [&'static str],
    /// Private IPs one endpoint takes (ACR adds a data endpoint, Cosmos DB a regional one).
    pub addresses: u32,
}

const STORAGE: &[&str] = &["microsoft.storage/storageaccounts"];
const COSMOS: &[&str] = &["microsoft.documentdb/databaseaccounts"];

/// The groupIds the operator knows. groupIds are case-sensitive in Azure: Storage's `table` and
/// Cosmos DB's `Table` are different sub-resources with different zones.
pub fn group_id_info(group_id: &str) -> Option<GroupIdInfo> {
    let info = |zone, resource_types, addresses| {
        Some(GroupIdInfo {
            zone,
            resource_types,
            addresses,
        })
    };
    match group_id {
        "vault" => info(
            "privatelink.vaultcore.azure.net",
            &["microsoft.keyvault/vaults"],
            1,
        ),
        "registry" => info(
            "privatelink.azurecr.io",
            &["microsoft.containerregistry/registries"],
            2,
        ),
        "Sql" => info("privatelink.documents.azure.com", COSMOS, 2),
        "MongoDB" => info("privatelink.mongo.cosmos.azure.com", COSMOS, 2),
        "Cassandra" => info("privatelink.cassandra.cosmos.azure.com", COSMOS, 2),
        "Gremlin" => info("privatelink.gremlin.cosmos.azure.com", COSMOS, 2),
        "Table" => info("privatelink.table.cosmos.azure.com", COSMOS, 2),
        "namespace" => info(
            "privatelink.servicebus.windows.net",
            &[
                "microsoft.eventhub/namespaces",
                "microsoft.servicebus/namespaces",
            ],
            1,
        ),
        "blob" => info("privatelink.blob.core.windows.net", STORAGE, 1),
        "table" => info("privatelink.table.core.windows.net", STORAGE, 1),
        "queue" => info("privatelink.queue.core.windows.net", STORAGE, 1),
        "file" => info("privatelink.file.core.windows.net", STORAGE, 1),
        "web" => info("privatelink.web.core.windows.net", STORAGE, 1),
        "dfs" => info("privatelink.dfs.core.windows.net", STORAGE, 1),
        "management" => info(
            "privatelink.{region}.azmk8s.io",
            &["microsoft.containerservice/managedclusters"],
            1,
        ),
        "sites" => info("privatelink.azurewebsites.net", &["microsoft.web/sites"], 1),
        "configurationStores" => info(
            "privatelink.azconfig.io",
            &["microsoft.appconfiguration/configurationstores"],
            1,
        ),
        "redisCache" => info(
            "privatelink.redis.cache.windows.net",
            &["microsoft.cache/redis"],
            1,
        ),
        "searchService" => info(
            "privatelink.search.windows.net",
            &["microsoft.search/searchservices"],
            1,
        ),
        "sqlServer" => info(
            "privatelink.database.windows.net",
            &["microsoft.sql/servers"],
            1,
        ),
        _ => None,
    }
}

/// The zone for `group_id` in `region`, if the groupId is known.
pub fn zone_for(group_id: &str, region: &str) -> Option<String> {
    group_id_info(group_id).map(|info| info.zone.replace("{region}", region))
}

/// Public FQDN suffix a service's clients resolve (the CNAME that leads into the privatelink zone).
pub fn public_suffix(zone: &str) -> String {
    match zone {
        "privatelink.vaultcore.azure.net" => "vault.azure.net".into(),
        other => other.trim_start_matches("privatelink.").to_string(),
    }
}

/// Zone group config name Azure shows for a zone (dots are not allowed there).
pub fn zone_config_name(zone: &str) -> String {
    zone.replace('.', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_services_of_the_design() {
        assert_eq!(
            zone_for("vault", "x").as_deref(),
            Some("privatelink.vaultcore.azure.net")
        );
        assert_eq!(
            zone_for("registry", "x").as_deref(),
            Some("privatelink.azurecr.io")
        );
        assert_eq!(
            zone_for("Sql", "x").as_deref(),
            Some("privatelink.documents.azure.com")
        );
        assert_eq!(
            zone_for("namespace", "x").as_deref(),
            Some("privatelink.servicebus.windows.net")
        );
        for sub in ["blob", "table", "queue", "file", "web", "dfs"] {
            assert_eq!(
                zone_for(sub, "x"),
                Some(format!("privatelink.{sub}.core.windows.net"))
            );
        }
        assert_eq!(
            zone_for("management", "westeurope").as_deref(),
            Some("privatelink.westeurope.azmk8s.io")
        );
    }

    #[test]
    fn group_ids_are_case_sensitive() {
        assert_ne!(zone_for("table", "x"), zone_for("Table", "x"));
        assert_eq!(zone_for("Vault", "x"), None);
        assert_eq!(zone_for("sql", "x"), None);
    }

    #[test]
    fn public_suffixes() {
        assert_eq!(
            public_suffix("privatelink.vaultcore.azure.net"),
            "vault.azure.net"
        );
        assert_eq!(
            public_suffix("privatelink.blob.core.windows.net"),
            "blob.core.windows.net"
        );
        assert_eq!(
            zone_config_name("privatelink.azurecr.io"),
            "privatelink-azurecr-io"
        );
    }
}
