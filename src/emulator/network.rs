//! Azure's own rules and side effects for the resource types the operator touches: address
//! validation, reserved addresses and IP allocation, references that must exist, resources that
//! are in use, private-link connections, and the A records DNS zone groups write.
//!
//! Error codes follow ARM's where they are documented or widely seen (`InvalidCIDRNotation`,
//! `NetcfgInvalidSubnet`, `NetcfgSubnetRangesOverlap`, `InUseSubnetCannotBeDeleted`,
//! `InvalidResourceReference`, `NetworkSecurityGroupNotCompliantForAzureBastionSubnet`,
//! `PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet`). Where Azure's
//! exact code could not be confirmed the code below is marked `(emulator code)`.

use serde_json::{json, Value};

use super::error::ArmError;
use super::path::ResourcePath;
use super::state::{contains, is_canonical, parse_prefix, provisioning_state, Resource, World};

/// Key under which the emulator keeps private bookkeeping in a stored body; never rendered.
const PRIVATE: &str = "_emulator";
/// The type of a VNet's subnets, which several checks look through.
const SUBNETS: &str = "Microsoft.Network/virtualNetworks/subnets";

/// Arrays of a parent's body whose entries ARM also serves as child resources: an NSG's
/// `securityRules` (`…/securityRules/{name}`, securityRule.json in the network spec) and a route
/// table's `routes` (`…/routes/{name}`, routeTable.json). The emulator keeps each entry as a
/// child, so a write through either path shows in both, as in Azure; a PUT of the parent
/// replaces them all. (A VNet's subnets are kept the same way by `put_vnet`, which has rules
/// of its own.) `(parent type, array, child type)`; the array is named as the children's
/// path segment.
const COMPOSED: [(&str, &str, &str); 2] = [
    (
        "microsoft.network/networksecuritygroups",
        "securityRules",
        "Microsoft.Network/networkSecurityGroups/securityRules",
    ),
    (
        "microsoft.network/routetables",
        "routes",
        "Microsoft.Network/routeTables/routes",
    ),
];

/// The array and child type `resource_type` composes its body of, if it is a `COMPOSED` parent.
fn composed(resource_type: &str) -> Option<(&'static str, &'static str)> {
    COMPOSED
        .iter()
        .find(|(parent, _, _)| parent.eq_ignore_ascii_case(resource_type))
        .map(|(_, array, child)| (*array, *child))
}

/// Moves the entries of a `COMPOSED` parent's array out of `body` into child resources of
/// `parent_id`, replacing the children it had (a PUT of the parent states them all).
pub fn split_composed(world: &mut World, parent_id: &str, resource_type: &str, body: &mut Value) {
    let Some((array, child_type)) = composed(resource_type) else {
        return;
    };
    let entries = body
        .pointer_mut("/properties")
        .and_then(Value::as_object_mut)
        .and_then(|p| p.remove(array))
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let kept: Vec<String> = entries
        .iter()
        .filter_map(|e| e["name"].as_str())
        .map(|n| format!("{parent_id}/{array}/{n}").to_ascii_lowercase())
        .collect();
    let gone: Vec<String> = world
        .children(parent_id, array)
        .iter()
        .map(|c| c.id.to_ascii_lowercase())
        .filter(|k| !kept.contains(k))
        .collect();
    for k in gone {
        world.remove_tree(&k);
    }
    for mut entry in entries {
        let Some(name) = entry["name"].as_str().map(String::from) else {
            continue;
        };
        if let Some(map) = entry.as_object_mut() {
            for server_owned in ["id", "etag", "type"] {
                map.remove(server_owned);
            }
        }
        world.upsert(&format!("{parent_id}/{array}/{name}"), child_type, entry);
    }
}

/// A `COMPOSED` parent's array rendered from its children: `(array, entries)`.
fn composed_entries(world: &World, r: &Resource) -> Option<(&'static str, Value)> {
    let (array, _) = composed(&r.resource_type)?;
    let entries = world
        .children(&r.id, array)
        .iter()
        .map(|c| render(world, c))
        .collect::<Vec<_>>();
    Some((array, json!(entries)))
}

/// A `COMPOSED` parent's body with its array filled from its children (what a GET shows).
pub fn with_composed(world: &World, r: &Resource) -> Value {
    let mut body = r.body.clone();
    if let Some((array, entries)) = composed_entries(world, r) {
        if !body["properties"].is_object() {
            body["properties"] = json!({});
        }
        body["properties"][array] = entries;
    }
    body
}

fn bad(code: &str, message: impl Into<String>) -> ArmError {
    ArmError::bad_request(code, message)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

fn must_exist(world: &World, id: &str, referrer: &str) -> Result<(), ArmError> {
    if world.get(id).is_some_and(|r| !r.deleting) {
        Ok(())
    } else {
        Err(bad("InvalidResourceReference", format!("Resource {id} referenced by resource {referrer} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.")))
    }
}

/// A subnet as written: name, prefix, and what it references.
struct SubnetSpec {
    name: String,
    prefix: (std::net::Ipv4Addr, u8),
    prefix_text: String,
    nsg: Option<String>,
    route_table: Option<String>,
    pls_policies: String,
}

fn subnet_spec(vnet_name: &str, body: &Value) -> Result<SubnetSpec, ArmError> {
    let name = str_at(body, "/name").unwrap_or_default().to_string();
    let prefix_text = str_at(body, "/properties/addressPrefix")
        .ok_or_else(|| {
            bad(
                "InvalidRequestFormat",
                format!("Subnet '{name}' of virtual network '{vnet_name}' has no addressPrefix."),
            )
        })?
        .to_string();
    let prefix = parse_prefix(&prefix_text).ok_or_else(|| {
        bad(
            "InvalidCIDRNotation",
            format!(
                "The address prefix {prefix_text} in resource {name} has an invalid CIDR notation."
            ),
        )
    })?;
    if !is_canonical(prefix.0, prefix.1) {
        return Err(bad(
            "InvalidCIDRNotation",
            format!("The address prefix {prefix_text} in resource {name} has an invalid CIDR notation. For the given prefix length, the address prefix should have its host bits cleared."),
        ));
    }
    Ok(SubnetSpec {
        name,
        prefix,
        prefix_text,
        nsg: str_at(body, "/properties/networkSecurityGroup/id").map(String::from),
        route_table: str_at(body, "/properties/routeTable/id").map(String::from),
        pls_policies: str_at(body, "/properties/privateLinkServiceNetworkPolicies")
            .unwrap_or("Enabled")
            .to_string(),
    })
}

fn vnet_spaces(vnet: &Value) -> Vec<(std::net::Ipv4Addr, u8)> {
    vnet.pointer("/properties/addressSpace/addressPrefixes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(parse_prefix)
                .collect()
        })
        .unwrap_or_default()
}

/// The rules a set of subnets of one VNet must satisfy together.
fn check_subnets(
    world: &World,
    vnet_id: &str,
    vnet: &Value,
    subnets: &[SubnetSpec],
) -> Result<(), ArmError> {
    let vnet_name = last_segment(vnet_id);
    let spaces = vnet_spaces(vnet);
    for (i, s) in subnets.iter().enumerate() {
        if !spaces.iter().any(|space| contains(*space, s.prefix)) {
            return Err(bad(
                "NetcfgInvalidSubnet",
                format!(
                    "Subnet '{}' is not valid in virtual network '{vnet_name}'.",
                    s.name
                ),
            ));
        }
        if let Some(other) = subnets[..i]
            .iter()
            .find(|o| contains(o.prefix, s.prefix) || contains(s.prefix, o.prefix))
        {
            return Err(bad(
                "NetcfgSubnetRangesOverlap",
                format!("Subnet '{}' is not valid because its IP address range overlaps with that of an existing subnet '{}' in virtual network '{vnet_name}'.", s.name, other.name),
            ));
        }
        let minimum = |service: &str| {
            bad(
                "SubnetPrefixTooSmall",
                format!("(emulator code) Subnet {} with prefix {} is too small: {service} requires a /26 or larger subnet.", s.name, s.prefix_text),
            )
        };
        if s.name == "AzureFirewallSubnet" {
            if s.prefix.1 > 26 {
                return Err(minimum("Azure Firewall"));
            }
            if s.nsg.is_some() {
                return Err(bad("NsgNotAllowedOnAzureFirewallSubnet", "(emulator code) Network security groups cannot be associated with AzureFirewallSubnet."));
            }
        }
        if s.name == "AzureBastionSubnet" && s.prefix.1 > 26 {
            return Err(minimum("Azure Bastion"));
        }
        if let Some(nsg) = &s.nsg {
            must_exist(world, nsg, vnet_id)?;
            if s.name == "AzureBastionSubnet" {
                let rules = world
                    .get(nsg)
                    .map(|r| with_composed(world, r))
                    .unwrap_or_default();
                check_bastion_nsg(last_segment(nsg), &rules)?;
            }
        }
        if let Some(rt) = &s.route_table {
            must_exist(world, rt, vnet_id)?;
        }
        let subnet_key = format!(
            "{}/subnets/{}",
            vnet_id.to_ascii_lowercase(),
            s.name.to_ascii_lowercase()
        );
        if s.pls_policies.eq_ignore_ascii_case("Enabled")
            // A private link service takes an address in each subnet it uses.
            && world.address_owners(&subnet_key).any(|r| {
                r.resource_type
                    .eq_ignore_ascii_case("Microsoft.Network/privateLinkServices")
                    && references_subnet(&r.body, &subnet_key)
            })
        {
            return Err(bad(
                "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet",
                format!("Private link service network policies cannot be enabled on private link service subnet {}.", s.name),
            ));
        }
    }
    Ok(())
}

fn references_subnet(body: &Value, subnet_key: &str) -> bool {
    body.pointer("/properties/ipConfigurations")
        .and_then(Value::as_array)
        .is_some_and(|configs| {
            configs.iter().any(|c| {
                str_at(c, "/properties/subnet/id")
                    .is_some_and(|id| id.eq_ignore_ascii_case(subnet_key))
            })
        })
}

/// The inbound and outbound flows Azure requires an `AzureBastionSubnet` NSG to allow.
fn check_bastion_nsg(nsg_name: &str, nsg: &Value) -> Result<(), ArmError> {
    let rules = nsg
        .pointer("/properties/securityRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // `None` as the required source means any source is acceptable.
    let allows = |direction: &str, source: Option<&str>, destination: &str, port: &str| {
        rules.iter().any(|r| {
            let p = &r["properties"];
            let ports: Vec<&str> = p["destinationPortRanges"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_else(|| p["destinationPortRange"].as_str().into_iter().collect());
            p["access"] == "Allow"
                && p["direction"] == direction
                && source.is_none_or(|s| {
                    p["sourceAddressPrefix"] == s || p["sourceAddressPrefix"] == "*"
                })
                && (p["destinationAddressPrefix"] == destination
                    || p["destinationAddressPrefix"] == "*")
                && (ports.contains(&port) || ports.contains(&"*"))
        })
    };
    let required = [
        ("Inbound", Some("Internet"), "*", "443"),
        ("Inbound", Some("GatewayManager"), "*", "443"),
        ("Inbound", Some("AzureLoadBalancer"), "*", "443"),
        ("Inbound", Some("VirtualNetwork"), "VirtualNetwork", "8080"),
        ("Inbound", Some("VirtualNetwork"), "VirtualNetwork", "5701"),
        ("Outbound", None, "VirtualNetwork", "22"),
        ("Outbound", None, "VirtualNetwork", "3389"),
        ("Outbound", None, "AzureCloud", "443"),
        ("Outbound", Some("VirtualNetwork"), "VirtualNetwork", "8080"),
        ("Outbound", Some("VirtualNetwork"), "VirtualNetwork", "5701"),
        ("Outbound", None, "Internet", "80"),
    ];
    let ok = required
        .iter()
        .all(|(dir, src, dst, port)| allows(dir, *src, dst, port));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "NetworkSecurityGroupNotCompliantForAzureBastionSubnet",
            format!("Network security group {nsg_name} does not have necessary rules for Azure Bastion Subnet AzureBastionSubnet."),
        ))
    }
}

/// Validates a write and applies its side effects. Returns the body to store.
pub fn before_put(
    world: &mut World,
    path: &ResourcePath,
    mut body: Value,
    api_version: &str,
) -> Result<Value, ArmError> {
    let t = path.resource_type.to_ascii_lowercase();
    let key = path.key();
    match t.as_str() {
        "microsoft.network/virtualnetworks" => put_vnet(world, path, body, api_version),
        "microsoft.network/virtualnetworks/subnets" => {
            let parent = path.parent.clone().unwrap_or_default();
            let vnet = world
                .get(&parent)
                .map(|r| r.body.clone())
                .unwrap_or_default();
            let mut all: Vec<SubnetSpec> = Vec::new();
            for sibling in world.children(&parent, "subnets") {
                if !sibling.id.eq_ignore_ascii_case(&path.id) {
                    all.push(subnet_spec(last_segment(&parent), &sibling.body)?);
                }
            }
            body["name"] = json!(path.name);
            all.push(subnet_spec(last_segment(&parent), &body)?);
            check_subnets(world, &parent, &vnet, &all)?;
            Ok(body)
        }
        "microsoft.network/networksecuritygroups" => {
            let rules = body
                .pointer("/properties/securityRules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for r in &rules {
                let priority = r
                    .pointer("/properties/priority")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if !(100..=4096).contains(&priority) {
                    return Err(bad("SecurityRuleInvalidPriority", format!("Security rule {} has invalid priority {priority}. Value provided: {priority}. Allowed range 100-4096.", r["name"])));
                }
            }
            let attached_to_bastion = world
                .keys_of_type(SUBNETS)
                .filter(|k| k.ends_with("/subnets/azurebastionsubnet"))
                .filter_map(|k| world.resources.get(k))
                .any(|r| {
                    str_at(&r.body, "/properties/networkSecurityGroup/id")
                        .is_some_and(|id| id.eq_ignore_ascii_case(&path.id))
                });
            if attached_to_bastion {
                check_bastion_nsg(&path.name, &body)?;
            }
            split_composed(world, &path.id, &path.resource_type, &mut body);
            Ok(body)
        }
        "microsoft.network/routetables" => {
            split_composed(world, &path.id, &path.resource_type, &mut body);
            Ok(body)
        }
        "microsoft.network/networksecuritygroups/securityrules" => {
            let priority = body
                .pointer("/properties/priority")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !(100..=4096).contains(&priority) {
                return Err(bad("SecurityRuleInvalidPriority", format!("Security rule {} has invalid priority {priority}. Value provided: {priority}. Allowed range 100-4096.", path.name)));
            }
            body["name"] = json!(path.name);
            Ok(body)
        }
        "microsoft.network/routetables/routes" => {
            body["name"] = json!(path.name);
            Ok(body)
        }
        "microsoft.network/publicipaddresses" => {
            let kept = world
                .get(&path.id)
                .and_then(|r| str_at(&r.body, "/properties/ipAddress").map(String::from));
            let ip = kept.unwrap_or_else(|| world.next_public_address().to_string());
            body["properties"]["ipAddress"] = json!(ip);
            Ok(body)
        }
        "microsoft.network/azurefirewalls" => {
            let subnet = str_at(&body, "/properties/ipConfigurations/0/properties/subnet/id").map(String::from).ok_or_else(|| bad("AzureFirewallSubnetMissing", "(emulator code) The firewall needs an ipConfiguration on AzureFirewallSubnet."))?;
            must_exist(world, &subnet, &path.id)?;
            if last_segment(&subnet) != "AzureFirewallSubnet" {
                return Err(bad(
                    "AzureFirewallSubnetNameInvalid",
                    format!(
                        "(emulator code) Subnet {} is not named AzureFirewallSubnet.",
                        last_segment(&subnet)
                    ),
                ));
            }
            if let Some(pip) = str_at(
                &body,
                "/properties/ipConfigurations/0/properties/publicIPAddress/id",
            ) {
                must_exist(world, pip, &path.id)?;
            }
            if let Some(policy) = str_at(&body, "/properties/firewallPolicy/id") {
                must_exist(world, policy, &path.id)?;
            }
            let ip = allocate_once(world, &subnet, &key)?;
            body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = json!(ip);
            Ok(body)
        }
        "microsoft.network/bastionhosts" => {
            for config in body
                .pointer("/properties/ipConfigurations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let subnet = str_at(&config, "/properties/subnet/id")
                    .unwrap_or_default()
                    .to_string();
                must_exist(world, &subnet, &path.id)?;
                if last_segment(&subnet) != "AzureBastionSubnet" {
                    return Err(bad("BastionHostSubnetInvalid", format!("(emulator code) Bastion host {} must be deployed in a subnet named AzureBastionSubnet.", path.name)));
                }
                if let Some(pip) = str_at(&config, "/properties/publicIPAddress/id") {
                    must_exist(world, pip, &path.id)?;
                }
            }
            Ok(body)
        }
        "microsoft.network/privatelinkservices" => put_private_link_service(world, path, body),
        "microsoft.network/privatelinkservices/privateendpointconnections" => {
            if world.get(&path.id).is_none() {
                return Err(ArmError::new(
                    404,
                    "PrivateEndpointConnectionNotFound",
                    format!("Private endpoint connection {} was not found.", path.name),
                ));
            }
            let mut stored = world
                .get(&path.id)
                .map(|r| r.body.clone())
                .unwrap_or_default();
            if let Some(state) = body
                .pointer("/properties/privateLinkServiceConnectionState")
                .cloned()
            {
                stored["properties"]["privateLinkServiceConnectionState"] = state;
            }
            Ok(stored)
        }
        "microsoft.network/privateendpoints" => put_private_endpoint(world, path, body),
        "microsoft.network/privateendpoints/privatednszonegroups" => {
            put_zone_group(world, path, body)
        }
        "microsoft.network/privatednszones/virtualnetworklinks" => {
            if let Some(vnet) = str_at(&body, "/properties/virtualNetwork/id") {
                must_exist(world, vnet, &path.id)?;
            }
            Ok(body)
        }
        "microsoft.network/loadbalancers" => {
            world.release(&key);
            let frontends = body
                .pointer("/properties/frontendIPConfigurations")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for fe in frontends {
                if let (Some(subnet), Some(ip)) = (
                    str_at(&fe, "/properties/subnet/id"),
                    str_at(&fe, "/properties/privateIPAddress").and_then(|s| s.parse().ok()),
                ) {
                    world.reserve(&subnet.to_ascii_lowercase(), ip, &key);
                }
            }
            Ok(body)
        }
        "microsoft.cdn/profiles/afdendpoints" => {
            let host = world
                .get(&path.id)
                .and_then(|r| str_at(&r.body, "/properties/hostName").map(String::from))
                .unwrap_or_else(|| {
                    format!(
                        "{}-{}.z01.azurefd.net",
                        path.name,
                        &uuid::Uuid::new_v4().simple().to_string()[..16]
                    )
                });
            body["properties"]["hostName"] = json!(host);
            Ok(body)
        }
        "microsoft.cdn/profiles/origingroups/origins" => put_origin(world, path, body),
        "microsoft.cdn/profiles/afdendpoints/routes" => {
            if let Some(og) = str_at(&body, "/properties/originGroup/id") {
                must_exist(world, og, &path.id)?;
            }
            Ok(body)
        }
        "microsoft.cdn/profiles/securitypolicies" => {
            if let Some(waf) = str_at(&body, "/properties/parameters/wafPolicy/id") {
                must_exist(world, waf, &path.id)?;
            }
            Ok(body)
        }
        _ => Ok(body),
    }
}

fn allocate_once(world: &mut World, subnet_id: &str, owner: &str) -> Result<String, ArmError> {
    let subnet_key = subnet_id.to_ascii_lowercase();
    if let Some((ip, _)) = world
        .allocations
        .get(&subnet_key)
        .and_then(|m| m.iter().find(|(_, o)| *o == owner))
    {
        return Ok(std::net::Ipv4Addr::from(*ip).to_string());
    }
    let prefix = world
        .get(subnet_id)
        .and_then(|s| str_at(&s.body, "/properties/addressPrefix").map(String::from))
        .unwrap_or_default();
    world
        .allocate(&subnet_key, &prefix, owner)
        .map(|ip| ip.to_string())
}

fn put_vnet(
    world: &mut World,
    path: &ResourcePath,
    mut body: Value,
    api_version: &str,
) -> Result<Value, ArmError> {
    for space in body
        .pointer("/properties/addressSpace/addressPrefixes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let text = space.as_str().unwrap_or_default();
        let parsed = parse_prefix(text).ok_or_else(|| {
            bad(
                "InvalidCIDRNotation",
                format!(
                    "The address prefix {text} in resource {} has an invalid CIDR notation.",
                    path.name
                ),
            )
        })?;
        if !is_canonical(parsed.0, parsed.1) {
            return Err(bad(
                "InvalidCIDRNotation",
                format!(
                    "The address prefix {text} in resource {} has an invalid CIDR notation.",
                    path.name
                ),
            ));
        }
    }
    let existing: Vec<Resource> = world
        .children(&path.id, "subnets")
        .into_iter()
        .cloned()
        .collect();
    let written = body
        .pointer_mut("/properties")
        .and_then(|p| p.as_object_mut())
        .and_then(|p| p.remove("subnets"));
    // api-version 2023-09-01 and later keep the subnets a PUT omits; older ones delete them.
    let keeps_omitted = api_version >= "2023-09-01";
    let desired: Vec<Value> = match written {
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(bad(
                "InvalidRequestFormat",
                "properties.subnets must be an array.",
            ))
        }
        None if keeps_omitted => existing.iter().map(|s| s.body.clone()).collect(),
        None => Vec::new(),
    };
    let mut specs = Vec::new();
    for s in &desired {
        specs.push(subnet_spec(&path.name, s)?);
    }
    check_subnets(world, &path.id, &body, &specs)?;
    for gone in existing.iter().filter(|e| {
        !specs
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(last_segment(&e.id)))
    }) {
        if let Some(user) = world.subnet_in_use(&gone.id.to_ascii_lowercase()) {
            return Err(bad("InUseSubnetCannotBeDeleted", format!("Subnet {} is in use by {user} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet.", last_segment(&gone.id))));
        }
    }
    for gone in existing.iter().filter(|e| {
        !specs
            .iter()
            .any(|s| s.name.eq_ignore_ascii_case(last_segment(&e.id)))
    }) {
        world.remove_tree(&gone.id.to_ascii_lowercase());
    }
    for (spec, raw) in specs.iter().zip(desired) {
        let id = format!("{}/subnets/{}", path.id, spec.name);
        let mut subnet_body = raw;
        subnet_body["name"] = json!(spec.name);
        world.upsert(&id, SUBNETS, subnet_body);
    }
    Ok(body)
}

fn put_private_link_service(
    world: &mut World,
    path: &ResourcePath,
    mut body: Value,
) -> Result<Value, ArmError> {
    let key = path.key();
    for fe in body
        .pointer("/properties/loadBalancerFrontendIpConfigurations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let id = str_at(&fe, "/id").unwrap_or_default().to_string();
        let (lb, name) = id
            .rsplit_once("/frontendIPConfigurations/")
            .or_else(|| id.rsplit_once("/frontendIpConfigurations/"))
            .unwrap_or(("", ""));
        let found = world
            .get(lb)
            .and_then(|r| {
                r.body
                    .pointer("/properties/frontendIPConfigurations")
                    .and_then(Value::as_array)
                    .cloned()
            })
            .is_some_and(|list| {
                list.iter().any(|f| {
                    f["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            });
        if !found {
            return Err(bad(
                "InvalidResourceReference",
                format!(
                    "Resource {id} referenced by resource {} was not found.",
                    path.id
                ),
            ));
        }
    }
    let configs = body
        .pointer("/properties/ipConfigurations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, c) in configs.iter().enumerate() {
        let subnet = str_at(c, "/properties/subnet/id")
            .unwrap_or_default()
            .to_string();
        must_exist(world, &subnet, &path.id)?;
        let policies = world
            .get(&subnet)
            .and_then(|s| {
                str_at(&s.body, "/properties/privateLinkServiceNetworkPolicies").map(String::from)
            })
            .unwrap_or_else(|| "Enabled".into());
        if policies.eq_ignore_ascii_case("Enabled") {
            return Err(bad(
                "PrivateLinkServiceNetworkPoliciesCannotBeEnabledOnPrivateLinkServiceSubnet",
                format!("Private link service network policies cannot be enabled on private link service subnet {}.", last_segment(&subnet)),
            ));
        }
        let ip = allocate_once(world, &subnet, &key)?;
        body["properties"]["ipConfigurations"][i]["properties"]["privateIPAddress"] = json!(ip);
    }
    let alias = world
        .get(&path.id)
        .and_then(|r| str_at(&r.body, "/properties/alias").map(String::from))
        .unwrap_or_else(|| {
            format!(
                "{}.{}.{}.azure.privatelinkservice",
                path.name,
                uuid::Uuid::new_v4(),
                str_at(&body, "/location").unwrap_or("global")
            )
        });
    body["properties"]["alias"] = json!(alias);
    body["properties"]
        .as_object_mut()
        .map(|p| p.remove("privateEndpointConnections"));
    Ok(body)
}

/// How many addresses and which FQDNs a private endpoint to `target` with `group` gets.
fn endpoint_dns(target_id: &str, group: &str, region: &str) -> Vec<String> {
    let name = last_segment(target_id).to_ascii_lowercase();
    match group {
        "vault" => vec![format!("{name}.vault.azure.net")],
        "registry" => vec![
            format!("{name}.azurecr.io"),
            format!("{name}.{region}.data.azurecr.io"),
        ],
        "Sql" => vec![
            format!("{name}.documents.azure.com"),
            format!("{name}-{region}.documents.azure.com"),
        ],
        "namespace" => vec![format!("{name}.servicebus.windows.net")],
        "blob" | "table" | "queue" | "file" | "web" | "dfs" => {
            vec![format!("{name}.{group}.core.windows.net")]
        }
        _ => vec![format!(
            "{name}.{}.privatelink.example",
            group.to_ascii_lowercase()
        )],
    }
}

/// Creates a Pending (or auto-approved) connection on a Private Link Service; returns its key.
fn open_connection(
    world: &mut World,
    pls_id: &str,
    requester_id: &str,
    message: &str,
    approved: bool,
) -> String {
    let name = format!(
        "{}.{}",
        last_segment(requester_id),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let id = format!("{pls_id}/privateEndpointConnections/{name}");
    world.upsert(
        &id,
        "Microsoft.Network/privateLinkServices/privateEndpointConnections",
        json!({
            "name": name,
            "properties": {
                "privateEndpoint": { "id": requester_id },
                "privateLinkServiceConnectionState": {
                    "status": if approved { "Approved" } else { "Pending" },
                    "description": message,
                    "actionsRequired": "None"
                }
            }
        }),
    );
    id.to_ascii_lowercase()
}

fn connection_status(world: &World, connection_key: &str) -> String {
    world
        .resources
        .get(connection_key)
        .and_then(|c| {
            str_at(
                &c.body,
                "/properties/privateLinkServiceConnectionState/status",
            )
            .map(String::from)
        })
        .unwrap_or_else(|| "Disconnected".into())
}

fn put_private_endpoint(
    world: &mut World,
    path: &ResourcePath,
    mut body: Value,
) -> Result<Value, ArmError> {
    let key = path.key();
    let subnet = str_at(&body, "/properties/subnet/id")
        .unwrap_or_default()
        .to_string();
    must_exist(world, &subnet, &path.id)?;
    let region = str_at(&body, "/location").unwrap_or("global").to_string();
    let previous = world.get(&path.id).map(|r| r.body.clone());
    let mut connections = Vec::new();
    let mut dns = Vec::new();
    let mut addresses = Vec::new();
    // Manual connections (`manualPrivateLinkServiceConnections`) wait for approval like any
    // connection to a Private Link Service; they are listed after the automatic ones.
    let requested: Vec<Value> = [
        "/properties/privateLinkServiceConnections",
        "/properties/manualPrivateLinkServiceConnections",
    ]
    .iter()
    .flat_map(|ptr| {
        body.pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    })
    .collect();
    for (i, c) in requested.iter().enumerate() {
        let target = str_at(c, "/properties/privateLinkServiceId")
            .unwrap_or_default()
            .to_string();
        must_exist(world, &target, &path.id)?;
        let group = c
            .pointer("/properties/groupIds/0")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let is_pls = target
            .to_ascii_lowercase()
            .contains("/microsoft.network/privatelinkservices/");
        let fqdns = if is_pls {
            vec![String::new()]
        } else {
            endpoint_dns(&target, &group, &region)
        };
        for fqdn in fqdns {
            let ip = match previous.as_ref().and_then(|p| {
                p[PRIVATE]["ips"]
                    .as_array()
                    .and_then(|ips| ips.get(addresses.len()))
                    .and_then(Value::as_str)
                    .map(String::from)
            }) {
                Some(ip) => ip,
                None => {
                    let prefix = world
                        .get(&subnet)
                        .and_then(|s| {
                            str_at(&s.body, "/properties/addressPrefix").map(String::from)
                        })
                        .unwrap_or_default();
                    world
                        .allocate(&subnet.to_ascii_lowercase(), &prefix, &key)?
                        .to_string()
                }
            };
            if !fqdn.is_empty() {
                dns.push(json!({ "fqdn": fqdn, "ipAddresses": [ip] }));
            }
            addresses.push(json!(ip));
        }
        let existing_connection = previous
            .as_ref()
            .and_then(|p| p[PRIVATE]["connections"].get(i))
            .and_then(Value::as_str)
            .map(String::from);
        let connection = match existing_connection {
            Some(c) => c,
            None if is_pls => {
                let auto = world.get(&target).is_some_and(|pls| {
                    pls.body
                        .pointer("/properties/autoApproval/subscriptions")
                        .and_then(Value::as_array)
                        .is_some_and(|subs| {
                            subs.iter().any(|s| {
                                s.as_str()
                                    .is_some_and(|s| s.eq_ignore_ascii_case(&path.subscription))
                            })
                        })
                });
                let message = str_at(c, "/properties/requestMessage")
                    .unwrap_or_default()
                    .to_string();
                open_connection(world, &target, &path.id, &message, auto)
            }
            None => String::new(),
        };
        connections.push(json!(connection));
    }
    body[PRIVATE] = json!({ "ips": addresses, "connections": connections, "dns": dns });
    body["properties"]["customDnsConfigs"] = json!(dns);
    let nic = str_at(&body, "/properties/customNetworkInterfaceName")
        .map(String::from)
        .unwrap_or_else(|| format!("{}.nic.{}", path.name, uuid::Uuid::new_v4()));
    body["properties"]["networkInterfaces"] = json!([{ "id": format!("/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{nic}", path.subscription, path.resource_group.clone().unwrap_or_default()) }]);
    Ok(body)
}

fn public_suffix(zone: &str) -> String {
    match zone {
        "privatelink.vaultcore.azure.net" => "vault.azure.net".into(),
        other => other.trim_start_matches("privatelink.").to_string(),
    }
}

fn put_zone_group(
    world: &mut World,
    path: &ResourcePath,
    mut body: Value,
) -> Result<Value, ArmError> {
    let pe_id = path.parent.clone().unwrap_or_default();
    let dns = world
        .get(&pe_id)
        .and_then(|pe| pe.body[PRIVATE].get("dns").cloned())
        .unwrap_or(json!([]));
    if !world.config.keep_custom_dns_configs {
        if let Some(pe) = world.resources.get_mut(&pe_id.to_ascii_lowercase()) {
            pe.body["properties"]["customDnsConfigs"] = json!([]);
        }
    }
    remove_records(world, &path.key());
    let mut written = Vec::new();
    let configs = body
        .pointer("/properties/privateDnsZoneConfigs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, config) in configs.iter().enumerate() {
        let zone_id = str_at(config, "/properties/privateDnsZoneId")
            .unwrap_or_default()
            .to_string();
        must_exist(world, &zone_id, &path.id)?;
        let zone = last_segment(&zone_id).to_ascii_lowercase();
        let suffix = format!(".{}", public_suffix(&zone));
        let mut record_sets = Vec::new();
        for entry in dns.as_array().cloned().unwrap_or_default() {
            let fqdn = entry["fqdn"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let Some(record) = fqdn.strip_suffix(&suffix) else {
                continue;
            };
            let record_id = format!("{zone_id}/A/{record}");
            world.upsert(&record_id, "Microsoft.Network/privateDnsZones/A", json!({ "properties": { "ttl": 10, "aRecords": entry["ipAddresses"].as_array().cloned().unwrap_or_default().iter().map(|ip| json!({ "ipv4Address": ip })).collect::<Vec<_>>() } }));
            written.push(json!(record_id.to_ascii_lowercase()));
            record_sets.push(json!({ "recordType": "A", "recordSetName": record, "fqdn": format!("{record}.{zone}"), "ipAddresses": entry["ipAddresses"] }));
        }
        body["properties"]["privateDnsZoneConfigs"][i]["properties"]["recordSets"] =
            json!(record_sets);
    }
    body[PRIVATE] = json!({ "records": written });
    Ok(body)
}

fn remove_records(world: &mut World, zone_group_key: &str) {
    let records: Vec<String> = world
        .resources
        .get(zone_group_key)
        .and_then(|g| g.body[PRIVATE]["records"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.as_str().map(String::from))
        .collect();
    for r in records {
        world.remove(&r);
    }
}

/// Front Door Premium's documented limits: 50 origins per origin group, 200 per profile.
const ORIGINS_PER_GROUP: usize = 50;
const ORIGINS_PER_PROFILE: usize = 200;

fn origin_limits(world: &World, path: &ResourcePath) -> Result<(), ArmError> {
    let key = path.id.to_ascii_lowercase();
    let group = key
        .rsplit_once("/origins/")
        .map(|(g, _)| g)
        .unwrap_or_default();
    let profile = group
        .rsplit_once("/origingroups/")
        .map(|(p, _)| p)
        .unwrap_or_default();
    let others = |prefix: &str| {
        world
            .resources
            .keys()
            .filter(|k| k.starts_with(prefix) && k.contains("/origins/") && **k != key)
            .filter(|k| {
                k.split("/origins/")
                    .nth(1)
                    .is_some_and(|n| !n.contains('/'))
            })
            .count()
    };
    if world.get(&path.id).is_some() {
        return Ok(());
    }
    if others(&format!("{group}/")) >= ORIGINS_PER_GROUP {
        return Err(bad(
            "BadRequest",
            format!("The origin group already has the maximum of {ORIGINS_PER_GROUP} origins. (emulator code)"),
        ));
    }
    if others(&format!("{profile}/")) >= ORIGINS_PER_PROFILE {
        return Err(bad(
            "BadRequest",
            format!("The profile already has the maximum of {ORIGINS_PER_PROFILE} origins. (emulator code)"),
        ));
    }
    Ok(())
}

fn put_origin(world: &mut World, path: &ResourcePath, mut body: Value) -> Result<Value, ArmError> {
    origin_limits(world, path)?;
    let previous = world.get(&path.id).map(|r| r.body.clone());
    if let Some(pls) = str_at(
        &body,
        "/properties/sharedPrivateLinkResource/privateLink/id",
    )
    .map(String::from)
    {
        if world.get(&pls).is_none() {
            return Err(bad(
                "BadRequest",
                format!(
                    "The private link resource {pls} of origin {} could not be found.",
                    path.name
                ),
            ));
        }
        let kept = previous
            .as_ref()
            .and_then(|p| str_at(p, "/_emulator/connection").map(String::from))
            .filter(|c| {
                c.starts_with(&pls.to_ascii_lowercase()) && world.resources.contains_key(c)
            });
        let on_the_way = world
            .front_door_requests
            .iter()
            .any(|r| r.origin == path.key() && r.private_link_service.eq_ignore_ascii_case(&pls));
        match kept {
            Some(c) => body[PRIVATE] = json!({ "connection": c }),
            None if on_the_way => {}
            None => {
                let message = str_at(
                    &body,
                    "/properties/sharedPrivateLinkResource/requestMessage",
                )
                .unwrap_or_default()
                .to_string();
                let delay = world.config.front_door_request_seconds * world.config.latency.factor;
                let request = super::state::FrontDoorRequest {
                    due: std::time::Instant::now() + std::time::Duration::from_secs_f64(delay),
                    origin: path.key(),
                    private_link_service: pls.clone(),
                    message,
                };
                if delay > 0.0 {
                    world.front_door_requests.push(request);
                } else {
                    body[PRIVATE] = json!({ "connection": front_door_connection(world, &request) });
                }
            }
        }
    }
    Ok(body)
}

/// Opens Front Door's connection on the Private Link Service `request` names.
fn front_door_connection(world: &mut World, request: &super::state::FrontDoorRequest) -> String {
    // Front Door's managed private endpoint lives in a Microsoft-owned subscription.
    let requester = format!("/subscriptions/00000000-0000-0000-0000-afd000000000/resourceGroups/afd-managed/providers/Microsoft.Network/privateEndpoints/{}", uuid::Uuid::new_v4());
    open_connection(
        world,
        &request.private_link_service,
        &requester,
        &request.message,
        false,
    )
}

/// A Front Door connection request arrives: its connection shows on the Private Link Service,
/// Pending, unless the origin or the service is gone by then.
pub fn front_door_request_arrives(world: &mut World, request: &super::state::FrontDoorRequest) {
    let both_there = world.resources.contains_key(&request.origin)
        && world.get(&request.private_link_service).is_some();
    if !both_there {
        return;
    }
    let connection = front_door_connection(world, request);
    if let Some(origin) = world.resources.get_mut(&request.origin) {
        origin.body[PRIVATE] = json!({ "connection": connection });
    }
}

/// Refuses a DELETE of something still in use, as ARM does.
pub fn check_delete(world: &World, path: &ResourcePath) -> Result<(), ArmError> {
    let key = path.key();
    let t = path.resource_type.to_ascii_lowercase();
    let subnets_in_use = |prefix: &str| {
        world
            .allocations
            .iter()
            .filter(|(k, m)| k.starts_with(prefix) && !m.is_empty())
            .map(|(k, m)| (k.clone(), m.values().next().cloned().unwrap_or_default()))
            .next()
    };
    let referenced_by_subnet = |field: &str| {
        world
            .of_type(SUBNETS)
            .find(|r| str_at(&r.body, field).is_some_and(|id| id.eq_ignore_ascii_case(&path.id)))
    };
    match t.as_str() {
        "microsoft.network/virtualnetworks/subnets" | "microsoft.network/virtualnetworks" => {
            if let Some((subnet, user)) = subnets_in_use(&key) {
                return Err(bad("InUseSubnetCannotBeDeleted", format!("Subnet {} is in use by {user} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet.", last_segment(&subnet))));
            }
        }
        "microsoft.network/privatednszones" => {
            // "You can't delete a private DNS zone that has virtual network links" (Microsoft
            // Learn, What is a private Azure DNS zone, Restrictions): the links go first.
            if let Some(link) = world.children(&path.id, "virtualNetworkLinks").first() {
                return Err(ArmError::new(
                    409,
                    "Conflict",
                    format!("Private DNS zone {} cannot be deleted while it has virtual network links ({}) (emulator code).", path.name, link.id),
                ));
            }
        }
        "microsoft.network/networksecuritygroups" => {
            if let Some(subnet) = referenced_by_subnet("/properties/networkSecurityGroup/id") {
                return Err(bad("InUseNetworkSecurityGroupCannotBeDeleted", format!("Network security group {} cannot be deleted because it is in use by the following resources: {}.", path.id, subnet.id)));
            }
        }
        "microsoft.network/routetables" => {
            if let Some(subnet) = referenced_by_subnet("/properties/routeTable/id") {
                return Err(bad(
                    "InUseRouteTableCannotBeDeleted",
                    format!(
                        "Route table {} is in use and cannot be deleted. It is associated with {}.",
                        path.id, subnet.id
                    ),
                ));
            }
        }
        "microsoft.network/publicipaddresses" => {
            if let Some(fw) = world.of_type("Microsoft.Network/azureFirewalls").find(|r| {
                r.body
                    .to_string()
                    .to_ascii_lowercase()
                    .contains(&format!("\"{key}\""))
            }) {
                // 400 PublicIPAddressCannotBeDeleted, as NRP answers it for a firewall's public
                // IP (recorded in microsoft/AzureTRE issue #4355 and
                // hashicorp/terraform-provider-azurerm issue #2566).
                return Err(bad("PublicIPAddressCannotBeDeleted", format!("Public IP address {} can not be deleted since it is still allocated to resource {}/azureFirewallIpConfigurations/{}. In order to delete the public IP, disassociate/detach the Public IP address from the resource.", path.id, fw.id, path.name)));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Effects of a deletion that has completed, before the resource tree is removed.
pub fn before_delete(world: &mut World, key: &str) {
    for k in world.tree_keys(key) {
        let Some(resource) = world.resources.get(&k).cloned() else {
            continue;
        };
        match resource.resource_type.to_ascii_lowercase().as_str() {
            "microsoft.network/privateendpoints/privatednszonegroups" => remove_records(world, &k),
            "microsoft.network/privateendpoints" => {
                for c in resource.body[PRIVATE]["connections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if let Some(c) = c.as_str().filter(|c| !c.is_empty()) {
                        world.remove(c);
                    }
                }
            }
            "microsoft.cdn/profiles/origingroups/origins" => {
                if let Some(c) = resource.body[PRIVATE]["connection"].as_str() {
                    world.remove(c);
                }
            }
            _ => {}
        }
    }
}

/// The body a GET answers: stored body plus server-side fields and composed children.
pub fn render(world: &World, r: &Resource) -> Value {
    let mut body = r.body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove(PRIVATE);
        map.insert("id".into(), json!(r.id));
        map.insert("name".into(), json!(last_segment(&r.id)));
        map.insert("type".into(), json!(r.resource_type));
        map.insert("etag".into(), json!(r.etag));
    }
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    body["properties"]["provisioningState"] = json!(provisioning_state(r));
    if let Some((array, entries)) = composed_entries(world, r) {
        body["properties"][array] = entries;
    }
    match r.resource_type.to_ascii_lowercase().as_str() {
        "microsoft.network/virtualnetworks" => {
            body["properties"]["subnets"] = json!(world
                .children(&r.id, "subnets")
                .iter()
                .map(|s| render(world, s))
                .collect::<Vec<_>>());
        }
        "microsoft.network/privatelinkservices" => {
            body["properties"]["privateEndpointConnections"] = json!(world
                .children(&r.id, "privateEndpointConnections")
                .iter()
                .map(|c| render(world, c))
                .collect::<Vec<_>>());
        }
        "microsoft.network/privateendpoints" => {
            let connections = r.body[PRIVATE]["connections"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if let Some(list) = body
                .pointer_mut("/properties/privateLinkServiceConnections")
                .and_then(Value::as_array_mut)
            {
                for (i, c) in list.iter_mut().enumerate() {
                    let key = connections
                        .get(i)
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let status = if key.is_empty() {
                        "Approved".to_string()
                    } else {
                        connection_status(world, key)
                    };
                    c["properties"]["privateLinkServiceConnectionState"] = json!({ "status": status, "description": if status == "Approved" { "Auto-Approved" } else { "" }, "actionsRequired": "None" });
                }
            }
        }
        "microsoft.cdn/profiles/origingroups/origins" => {
            if let Some(key) = r.body[PRIVATE]["connection"].as_str() {
                body["properties"]["sharedPrivateLinkResource"]["status"] =
                    json!(connection_status(world, key));
            }
        }
        _ => {}
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bastion_rules_are_enforced() {
        let empty = json!({ "properties": { "securityRules": [] } });
        let err = check_bastion_nsg("nsg", &empty).unwrap_err();
        assert_eq!(
            err.code,
            "NetworkSecurityGroupNotCompliantForAzureBastionSubnet"
        );
    }

    #[test]
    fn fqdns_follow_the_service() {
        assert_eq!(
            endpoint_dns(
                "/s/x/providers/Microsoft.KeyVault/vaults/KV1",
                "vault",
                "westeurope"
            ),
            vec!["kv1.vault.azure.net"]
        );
        assert_eq!(
            endpoint_dns("/x/registries/acr", "registry", "westeurope").len(),
            2
        );
        assert_eq!(
            public_suffix("privatelink.blob.core.windows.net"),
            "blob.core.windows.net"
        );
    }
}
