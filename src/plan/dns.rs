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
    /// TCP ports clients reach the service on through its private endpoint (NSG syntax).
    pub ports: &'static [&'static str],
}

const STORAGE: &[&str] = &["microsoft.storage/storageaccounts"];
const COSMOS: &[&str] = &["microsoft.documentdb/databaseaccounts"];
const HTTPS: &[&str] = &["443"];

/// The groupIds the operator knows. groupIds are case-sensitive in Azure: Storage's `table` and
/// Cosmos DB's `Table` are different sub-resources with different zones.
///
/// Ports: HTTPS unless said. Cosmos DB for NoSQL in direct mode (the .NET and Java SDKs'
/// default) "can use the full TCP port range — from 0 to 65535" over a private endpoint, and
/// MongoDB and Cassandra listen on 10255 and 10350 (Microsoft Learn, Azure Cosmos DB SQL SDK
/// connectivity modes, Service port ranges). Event Hubs and Service Bus speak AMQP on 5671/5672
/// and Kafka on 9093 (Microsoft Learn, Troubleshoot connectivity issues — Azure Event Hubs).
/// Azure Files speaks SMB on 445, Azure SQL TDS on 1433 (a private endpoint supports only the
/// Proxy connection policy, so no redirect ports), Azure Cache for Redis TLS on 6380 and, for
/// clustered caches, 15000–15999.
pub fn group_id_info(group_id: &str) -> Option<GroupIdInfo> {
    let info = |zone, resource_types, addresses, ports| {
        Some(GroupIdInfo {
            zone,
            resource_types,
            addresses,
            ports,
        })
    };
    let vault = &["microsoft.keyvault/vaults"][..];
    let registry = &["microsoft.containerregistry/registries"][..];
    let messaging = &[
        "microsoft.eventhub/namespaces",
        "microsoft.servicebus/namespaces",
    ][..];
    match group_id {
        "vault" => info("privatelink.vaultcore.azure.net", vault, 1, HTTPS),
        "registry" => info("privatelink.azurecr.io", registry, 2, HTTPS),
        "Sql" => info("privatelink.documents.azure.com", COSMOS, 2, &["*"]),
        "MongoDB" => info(
            "privatelink.mongo.cosmos.azure.com",
            COSMOS,
            2,
            &["443", "10255"],
        ),
        "Cassandra" => info(
            "privatelink.cassandra.cosmos.azure.com",
            COSMOS,
            2,
            &["443", "10350"],
        ),
        "Gremlin" => info("privatelink.gremlin.cosmos.azure.com", COSMOS, 2, HTTPS),
        "Table" => info("privatelink.table.cosmos.azure.com", COSMOS, 2, HTTPS),
        "namespace" => info(
            "privatelink.servicebus.windows.net",
            messaging,
            1,
            &["443", "5671", "5672", "9093"],
        ),
        "blob" => info("privatelink.blob.core.windows.net", STORAGE, 1, HTTPS),
        "table" => info("privatelink.table.core.windows.net", STORAGE, 1, HTTPS),
        "queue" => info("privatelink.queue.core.windows.net", STORAGE, 1, HTTPS),
        "file" => info(
            "privatelink.file.core.windows.net",
            STORAGE,
            1,
            &["443", "445"],
        ),
        "web" => info("privatelink.web.core.windows.net", STORAGE, 1, HTTPS),
        "dfs" => info("privatelink.dfs.core.windows.net", STORAGE, 1, HTTPS),
        "management" => info(
            "privatelink.{region}.azmk8s.io",
            &["microsoft.containerservice/managedclusters"],
            1,
            HTTPS,
        ),
        "sites" => info(
            "privatelink.azurewebsites.net",
            &["microsoft.web/sites"],
            1,
            HTTPS,
        ),
        "configurationStores" => info(
            "privatelink.azconfig.io",
            &["microsoft.appconfiguration/configurationstores"],
            1,
            HTTPS,
        ),
        "redisCache" => info(
            "privatelink.redis.cache.windows.net",
            &["microsoft.cache/redis"],
            1,
            &["6380", "15000-15999"],
        ),
        "searchService" => info(
            "privatelink.search.windows.net",
            &["microsoft.search/searchservices"],
            1,
            HTTPS,
        ),
        "sqlServer" => info(
            "privatelink.database.windows.net",
            &["microsoft.sql/servers"],
            1,
            &["1433"],
        ),
        _ => None,
    }
}

/// Every groupId the operator knows, for reverse lookups.
const KNOWN_GROUP_IDS: [&str; 20] = [
    "vault",
    "registry",
    "Sql",
    "MongoDB",
    "Cassandra",
    "Gremlin",
    "Table",
    "namespace",
    "blob",
    "table",
    "queue",
    "file",
    "web",
    "dfs",
    "management",
    "sites",
    "configurationStores",
    "redisCache",
    "searchService",
    "sqlServer",
];

/// The TCP ports clients need through private endpoints whose zones are `zones` (endpoints in
/// `region`): HTTPS always, which every private-link service speaks, plus what each zone's
/// service needs. `["*"]` when one needs every port.
pub fn ports_for_zones<'a>(
    zones: impl IntoIterator<Item = &'a String>,
    region: &str,
) -> Vec<&'static str> {
    let mut ports: Vec<&'static str> = vec!["443"];
    for zone in zones {
        let service = KNOWN_GROUP_IDS
            .iter()
            .filter_map(|g| group_id_info(g))
            .find(|info| info.zone.replace("{region}", region) == *zone);
        for port in service.map(|s| s.ports).unwrap_or_default() {
            if !ports.contains(port) {
                ports.push(port);
            }
        }
    }
    if ports.contains(&"*") {
        return vec!["*"];
    }
    ports.sort_by_key(|p| p.split('-').next().and_then(|p| p.parse::<u32>().ok()));
    ports
}

/// The public name of one region of a replicated target named `target` whose endpoints live
/// in `zone`, or `None` when the zone's service serves one region per endpoint. A registry's
/// regions are its data endpoints, `{registry}.{region}.data.azurecr.io` (Microsoft Learn, Azure
/// Container Registry endpoint reference: the dedicated data endpoints private endpoints use);
/// a Cosmos DB account's are `{account}-{region}.{suffix}` (its regional endpoints, which the
/// private endpoint maps besides the global one: Microsoft Learn, Configure Azure Private Link
/// for an Azure Cosmos DB account).
pub fn regional_name(zone: &str, target: &str, region: &str) -> Option<String> {
    match zone {
        "privatelink.azurecr.io" => Some(format!("{target}.{region}.data.azurecr.io")),
        "privatelink.documents.azure.com"
        | "privatelink.mongo.cosmos.azure.com"
        | "privatelink.cassandra.cosmos.azure.com"
        | "privatelink.gremlin.cosmos.azure.com"
        | "privatelink.table.cosmos.azure.com" => {
            Some(format!("{target}-{region}.{}", public_suffix(zone)))
        }
        _ => None,
    }
}

/// Whether an endpoint in `zone` serves one name (and takes one address) per region of its
/// target.
pub fn serves_regions(zone: &str) -> bool {
    regional_name(zone, "", "").is_some()
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
    fn ports_follow_the_services_of_the_zones() {
        let zones = |names: &[&str]| names.iter().map(|z| z.to_string()).collect::<Vec<_>>();
        assert_eq!(ports_for_zones(&zones(&[]), "x"), vec!["443"]);
        assert_eq!(
            ports_for_zones(
                &zones(&[
                    "privatelink.vaultcore.azure.net",
                    "privatelink.servicebus.windows.net"
                ]),
                "x"
            ),
            vec!["443", "5671", "5672", "9093"]
        );
        // Cosmos DB direct mode over a private endpoint may use any TCP port.
        assert_eq!(
            ports_for_zones(&zones(&["privatelink.documents.azure.com"]), "x"),
            vec!["*"]
        );
        for g in KNOWN_GROUP_IDS {
            assert!(group_id_info(g).is_some(), "{g}");
        }
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
