//! What a group listing cannot vouch for: the children that carry a stamp's security.
//!
//! A look at a settled object lists its resource groups and compares each tracked resource's
//! `changedTime` with the last full check. A write to a child — a subnet's route table or NSG,
//! a security rule, a route, a rule collection group, a private-endpoint connection, a Front
//! Door origin — is not documented to move its parent's `changedTime` ("The changed time of
//! the resource", Resources - List By Resource Group, api-version 2021-04-01), and the emulator
//! does not move it. Yet those children decide what the network lets through. So the resources
//! holding them are read in full at every look — one list per collection where a graph has
//! several of a type in one place (a stamp's three NSGs, its rule collection groups), one GET
//! otherwise, and what siblings share (the origins of one Front Door origin group) once for
//! all of them — and a digest of what they say stands beside their `changedTime`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::azure::{ArmClient, AzureError, ListingAge, LiveResource};
use crate::plan::{ArmId, DesiredResource, ResourceKind};

use super::converge::{key, stable_hash};

/// Kinds read in full at every look: what their children (or inline arrays) say changes
/// without moving any `changedTime` a listing shows.
pub fn read_in_full(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::VirtualNetwork
            | ResourceKind::NetworkSecurityGroup
            | ResourceKind::RouteTable
            | ResourceKind::RuleCollectionGroup
            | ResourceKind::PrivateLinkService
            | ResourceKind::FrontDoorOrigin
    )
}

/// The digest of a resource a read found missing.
pub const ABSENT: &str = "absent";

/// What one look read of the resources read in full.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    /// Per lower-case id, the digest of what it says (see `digest`), or `ABSENT`.
    pub digests: BTreeMap<String, String>,
    /// Per lower-case id, what was read: a pass in the same reconcile need not read it again.
    pub bodies: BTreeMap<String, LiveResource>,
}

/// Reads `resources` (all read in full) as cheaply as ARM allows. `shared`: ids under a parent
/// other objects own, whose collection siblings read too (then one list serves them all,
/// reused for as long as `age` allows).
pub async fn read(
    arm: &ArmClient,
    resources: &[&DesiredResource],
    shared: &BTreeSet<String>,
    age: ListingAge,
) -> Result<Contents, AzureError> {
    let mut collections: BTreeMap<String, Vec<&DesiredResource>> = BTreeMap::new();
    for r in resources {
        collections.entry(collection_of(&r.id)).or_default().push(r);
    }
    let mut out = Contents::default();
    for (collection, members) in collections {
        let api = members[0].kind.api_version();
        let listed = members.len() > 1 || members.iter().any(|r| shared.contains(&key(r)));
        let found: Vec<LiveResource> = if listed {
            let entries = arm.list_recent(&collection, api, age).await?;
            entries
                .as_ref()
                .iter()
                .flatten()
                .map(|body| LiveResource {
                    etag: body["etag"].as_str().map(str::to_string),
                    body: body.clone(),
                })
                .collect()
        } else {
            arm.get(members[0].id.as_str(), api)
                .await?
                .into_iter()
                .collect()
        };
        let mut by_id: BTreeMap<String, LiveResource> = found
            .into_iter()
            .filter_map(|live| {
                let id = live.body["id"].as_str()?.to_ascii_lowercase();
                Some((id, live))
            })
            .collect();
        for r in members {
            let k = key(r);
            match by_id.remove(&k) {
                Some(live) => {
                    out.digests.insert(k.clone(), digest(r.kind, &live.body));
                    out.bodies.insert(k, live);
                }
                None => {
                    out.digests.insert(k, ABSENT.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The collection `id` is listed in: its parent's children of its type, or its group's
/// resources of its type.
fn collection_of(id: &ArmId) -> String {
    let resource_type = id.resource_type();
    let collection = match id.parent() {
        Some(parent) => {
            let segment = resource_type.rsplit('/').next().unwrap_or_default();
            format!("{}/{segment}", parent.as_str())
        }
        None => format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{resource_type}",
            id.subscription(),
            id.resource_group_name()
        ),
    };
    collection.to_ascii_lowercase()
}

/// Properties that point back at what uses a resource (the NICs in a subnet, the subnets an NSG
/// is attached to) or that Azure moves on its own (Front Door's deployment status): they move
/// when other resources come and go, not when what the resource lets through changes.
fn back_references(kind: ResourceKind) -> &'static [&'static str] {
    match kind {
        ResourceKind::NetworkSecurityGroup => &["subnets", "networkInterfaces", "flowLogs"],
        ResourceKind::RouteTable => &["subnets"],
        ResourceKind::PrivateLinkService => &["networkInterfaces"],
        ResourceKind::FrontDoorOrigin => &["deploymentStatus"],
        _ => &[],
    }
}

/// What a subnet's properties point back at (its NICs, private endpoints, links).
const SUBNET_BACK_REFERENCES: [&str; 6] = [
    "ipConfigurations",
    "privateEndpoints",
    "serviceAssociationLinks",
    "resourceNavigationLinks",
    "ipConfigurationProfiles",
    "applicationGatewayIPConfigurations",
];

/// A digest of what `body` (a resource of `kind`) says: its properties, children inline,
/// without ETags and back references. Equal digests: nothing it lets through has changed.
pub fn digest(kind: ResourceKind, body: &Value) -> String {
    let mut properties = body.get("properties").cloned().unwrap_or(Value::Null);
    if let Some(map) = properties.as_object_mut() {
        for field in back_references(kind) {
            map.remove(*field);
        }
    }
    if kind == ResourceKind::VirtualNetwork {
        for subnet in properties["subnets"].as_array_mut().into_iter().flatten() {
            if let Some(map) = subnet["properties"].as_object_mut() {
                for field in SUBNET_BACK_REFERENCES {
                    map.remove(field);
                }
            }
        }
    }
    without_etags(&mut properties);
    format!("{:016x}", stable_hash(&properties.to_string()))
}

/// Removes every `etag` (a child's moves with any write to it, even one that changes nothing).
fn without_etags(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("etag");
            map.values_mut().for_each(without_etags);
        }
        Value::Array(items) => items.iter_mut().for_each(without_etags),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_rule_moves_the_digest_and_a_new_nic_or_etag_does_not() {
        let nsg = json!({ "etag": "1", "properties": {
            "securityRules": [{ "name": "a", "etag": "1", "properties": { "priority": 100 } }],
            "subnets": [{ "id": "s1" }]
        } });
        let d = digest(ResourceKind::NetworkSecurityGroup, &nsg);
        let mut attached = nsg.clone();
        attached["etag"] = json!("2");
        attached["properties"]["securityRules"][0]["etag"] = json!("2");
        attached["properties"]["subnets"] = json!([{ "id": "s1" }, { "id": "s2" }]);
        assert_eq!(digest(ResourceKind::NetworkSecurityGroup, &attached), d);
        let mut opened = nsg.clone();
        opened["properties"]["securityRules"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "open", "properties": { "priority": 200 } }));
        assert_ne!(digest(ResourceKind::NetworkSecurityGroup, &opened), d);
    }

    #[test]
    fn a_subnet_s_route_table_moves_the_vnet_s_digest_and_its_nics_do_not() {
        let vnet = json!({ "properties": { "subnets": [{ "name": "app", "properties": {
            "routeTable": { "id": "rt" }, "ipConfigurations": [{ "id": "nic1" }]
        } }] } });
        let d = digest(ResourceKind::VirtualNetwork, &vnet);
        let mut busier = vnet.clone();
        busier["properties"]["subnets"][0]["properties"]["ipConfigurations"] =
            json!([{ "id": "nic1" }, { "id": "nic2" }]);
        assert_eq!(digest(ResourceKind::VirtualNetwork, &busier), d);
        let mut detached = vnet.clone();
        detached["properties"]["subnets"][0]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("routeTable");
        assert_ne!(digest(ResourceKind::VirtualNetwork, &detached), d);
    }

    #[test]
    fn collections_are_the_parent_s_children_or_the_group_s_type() {
        let nsg = ArmId::resource("s", "rg", "Microsoft.Network/networkSecurityGroups", "n");
        assert_eq!(
            collection_of(&nsg),
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.network/networksecuritygroups"
        );
        let policy = ArmId::resource("s", "rg", "Microsoft.Network/firewallPolicies", "p");
        let rcg = policy.child("ruleCollectionGroups", "platform");
        assert_eq!(
            collection_of(&rcg),
            format!(
                "{}/rulecollectiongroups",
                policy.as_str().to_ascii_lowercase()
            )
        );
    }
}
