//! Egress through Azure Firewall: the firewall policy's rule collection groups, generated from
//! what AKS needs plus the stamp's own FQDN allow list.

use serde_json::{json, Value};

use super::error::{PlanError, PlanResult};
use crate::api::{EgressGroup, EgressSpec, FirewallSku, FqdnProtocol, ThreatIntelMode};

/// FQDNs an AKS cluster with outbound type userDefinedRouting needs on HTTPS 443.
/// (`*.hcp.<region>.azmk8s.io` is only needed by public clusters; stamps run private ones.)
pub const AKS_REQUIRED_FQDNS: [&str; 7] = [
    "mcr.microsoft.com",
    "*.data.mcr.microsoft.com",
    "mcr-0001.mcr-msedge.net",
    "management.azure.com",
    "login.microsoftonline.com",
    "packages.microsoft.com",
    "acs-mirror.azureedge.net",
];

/// An application rule: FQDNs on one protocol and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRule {
    /// Rule name.
    pub name: String,
    /// FQDNs.
    pub fqdns: Vec<String>,
    /// `Https`, `Http` or `Mssql`.
    pub protocol: &'static str,
    /// Port.
    pub port: u16,
}

fn rule(name: &str, fqdns: &[&str], protocol: &'static str, port: u16) -> ApplicationRule {
    ApplicationRule {
        name: name.into(),
        fqdns: fqdns.iter().map(|f| f.to_string()).collect(),
        protocol,
        port,
    }
}

/// Application rules of an optional group in `region`.
pub fn group_rules(group: EgressGroup, region: &str) -> Vec<ApplicationRule> {
    match group {
        EgressGroup::UbuntuUpdates => vec![
            rule(
                "ubuntu-updates",
                &[
                    "security.ubuntu.com",
                    "azure.archive.ubuntu.com",
                    "changelogs.ubuntu.com",
                ],
                "Http",
                80,
            ),
            rule("ubuntu-snapshots", &["snapshot.ubuntu.com"], "Https", 443),
        ],
        EgressGroup::AzureMonitor => vec![ApplicationRule {
            name: "azure-monitor".into(),
            fqdns: vec![
                "dc.services.visualstudio.com".into(),
                "*.ods.opinsights.azure.com".into(),
                "*.oms.opinsights.azure.com".into(),
                "*.monitoring.azure.com".into(),
                format!("{region}.ingest.monitor.azure.com"),
                format!("{region}.handler.control.monitor.azure.com"),
            ],
            protocol: "Https",
            port: 443,
        }],
        EgressGroup::AzurePolicy => vec![rule(
            "azure-policy",
            &[
                "data.policy.core.windows.net",
                "store.policy.core.windows.net",
            ],
            "Https",
            443,
        )],
    }
}

fn protocol_of(protocol: FqdnProtocol) -> (&'static str, u16) {
    match protocol {
        FqdnProtocol::Https => ("Https", 443),
        FqdnProtocol::Http => ("Http", 80),
        FqdnProtocol::Mssql => ("Mssql", 1433),
    }
}

/// The rule collection groups of a stamp's firewall policy, by name, with priority and body.
/// Sources are limited to the app subnet: nothing else in the stamp may leave.
pub fn rule_collection_groups(
    egress: &EgressSpec,
    region: &str,
    app_prefix: &str,
) -> Vec<(String, Value)> {
    let mut groups = Vec::new();
    if egress.aks_required {
        let mut app_rules = vec![rule("aks-required", &AKS_REQUIRED_FQDNS, "Https", 443)];
        let mut sorted_groups = egress.optional_groups.clone();
        sorted_groups.sort();
        sorted_groups.dedup();
        for group in sorted_groups {
            app_rules.extend(group_rules(group, region));
        }
        let ntp = json!({
            "ruleType": "NetworkRule",
            "name": "ntp",
            "ipProtocols": ["UDP"],
            "sourceAddresses": [app_prefix],
            "destinationAddresses": ["*"],
            "destinationPorts": ["123"],
        });
        groups.push((
            "platform".to_string(),
            group_body(200, app_prefix, &app_rules, Some(ntp)),
        ));
    }
    if !egress.allow.is_empty() {
        let app_rules: Vec<ApplicationRule> = egress
            .allow
            .iter()
            .map(|r| {
                let (protocol, default_port) = protocol_of(r.protocol);
                ApplicationRule {
                    name: r.name.clone(),
                    fqdns: r.fqdns.clone(),
                    protocol,
                    port: r.port.unwrap_or(default_port),
                }
            })
            .collect();
        groups.push((
            "workload".to_string(),
            group_body(300, app_prefix, &app_rules, None),
        ));
    }
    groups
}

fn group_body(
    priority: u32,
    source: &str,
    rules: &[ApplicationRule],
    network_rule: Option<Value>,
) -> Value {
    let app_rules: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "ruleType": "ApplicationRule",
                "name": r.name,
                "protocols": [{ "protocolType": r.protocol, "port": r.port }],
                "targetFqdns": r.fqdns,
                "sourceAddresses": [source],
            })
        })
        .collect();
    let mut collections = vec![json!({
        "ruleCollectionType": "FirewallPolicyFilterRuleCollection",
        "name": "allow-fqdns",
        "priority": priority + 10,
        "action": { "type": "Allow" },
        "rules": app_rules,
    })];
    if let Some(network_rule) = network_rule {
        collections.push(json!({
            "ruleCollectionType": "FirewallPolicyFilterRuleCollection",
            "name": "allow-network",
            "priority": priority + 20,
            "action": { "type": "Allow" },
            "rules": [network_rule],
        }));
    }
    json!({ "properties": { "priority": priority, "ruleCollections": collections } })
}

fn tier(sku: FirewallSku) -> &'static str {
    match sku {
        FirewallSku::Standard => "Standard",
        FirewallSku::Premium => "Premium",
    }
}

/// Body of the firewall policy.
pub fn firewall_policy_body(egress: &EgressSpec, location: &str, tags: &Value) -> Value {
    let threat_intel = match egress.threat_intel_mode {
        ThreatIntelMode::Alert => "Alert",
        ThreatIntelMode::Deny => "Deny",
        ThreatIntelMode::Off => "Off",
    };
    json!({
        "location": location,
        "tags": tags,
        "properties": {
            "sku": { "tier": tier(egress.firewall_sku) },
            "threatIntelMode": threat_intel,
            "dnsSettings": { "enableProxy": egress.dns_proxy },
        }
    })
}

/// Body of the firewall.
pub fn firewall_body(
    egress: &EgressSpec,
    location: &str,
    tags: &Value,
    subnet_id: &str,
    public_ip_id: &str,
    policy_id: &str,
) -> Value {
    let mut body = json!({
        "location": location,
        "tags": tags,
        "properties": {
            "sku": { "name": "AZFW_VNet", "tier": tier(egress.firewall_sku) },
            "ipConfigurations": [{
                "name": "egress",
                "properties": { "subnet": { "id": subnet_id }, "publicIPAddress": { "id": public_ip_id } }
            }],
            "firewallPolicy": { "id": policy_id },
        }
    });
    if !egress.availability_zones.is_empty() {
        body["zones"] = json!(egress.availability_zones);
    }
    body
}

/// Body of the firewall's egress public IP (Standard, static, zone-redundant like the firewall).
pub fn public_ip_body(egress: &EgressSpec, location: &str, tags: &Value) -> Value {
    let mut body = json!({
        "location": location,
        "tags": tags,
        "sku": { "name": "Standard", "tier": "Regional" },
        "properties": { "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4" }
    });
    if !egress.availability_zones.is_empty() {
        body["zones"] = json!(egress.availability_zones);
    }
    body
}

/// Body of the app subnet's route table: everything to the firewall. BGP propagation is off so
/// no learned route can bypass the firewall.
pub fn route_table_body(location: &str, tags: &Value, firewall_ip: &str) -> Value {
    json!({
        "location": location,
        "tags": tags,
        "properties": {
            "disableBgpRoutePropagation": true,
            "routes": [{
                "name": "default-via-firewall",
                "properties": { "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": firewall_ip }
            }]
        }
    })
}

/// Checks the allow list the way the API server's schema does, for offline `plan` runs, plus
/// what the schema cannot say: a bare `*` would open the firewall to everything.
pub fn check_allow_list(egress: &EgressSpec) -> PlanResult<()> {
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in egress.allow.iter().enumerate() {
        if !names.insert(rule.name.as_str()) {
            return Err(PlanError::new(
                format!("spec.egress.allow[{i}].name"),
                format!("rule name {} is used twice", rule.name),
            ));
        }
        if rule.fqdns.is_empty() {
            return Err(PlanError::new(
                format!("spec.egress.allow[{i}].fqdns"),
                "lists no FQDN",
            ));
        }
        for (j, fqdn) in rule.fqdns.iter().enumerate() {
            if !is_fqdn_pattern(fqdn) {
                return Err(PlanError::new(
                    format!("spec.egress.allow[{i}].fqdns[{j}]"),
                    format!("`{fqdn}` is not a fully qualified domain name (a leading `*.` is the only wildcard allowed)"),
                ));
            }
        }
    }
    Ok(())
}

/// `api.example.com` or `*.example.com`: labels of letters, digits and inner hyphens, a
/// top-level label of letters, at most 253 characters.
pub fn is_fqdn_pattern(fqdn: &str) -> bool {
    let name = fqdn.strip_prefix("*.").unwrap_or(fqdn);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    fqdn.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FqdnAllowRule;

    fn fqdns_of(groups: &[(String, Value)]) -> Vec<String> {
        groups
            .iter()
            .flat_map(|(_, body)| {
                body["properties"]["ruleCollections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|c| c["rules"].as_array().cloned().unwrap_or_default())
            .flat_map(|r| r["targetFqdns"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(String::from))
            .collect()
    }

    #[test]
    fn aks_required_egress_is_on_by_default_with_ntp() {
        let groups = rule_collection_groups(&EgressSpec::default(), "westeurope", "10.0.0.0/21");
        assert_eq!(groups.len(), 1);
        let fqdns = fqdns_of(&groups);
        for f in AKS_REQUIRED_FQDNS {
            assert!(fqdns.contains(&f.to_string()), "{f}");
        }
        assert!(
            !fqdns.iter().any(|f| f.contains("hcp")),
            "private clusters need no hcp FQDN"
        );
        let text = groups[0].1.to_string();
        assert!(text.contains("\"123\"") && text.contains("UDP"));
        assert!(text.contains("10.0.0.0/21"));
    }

    #[test]
    fn optional_groups_and_user_rules_are_added() {
        let egress = EgressSpec {
            optional_groups: vec![EgressGroup::AzureMonitor, EgressGroup::UbuntuUpdates],
            allow: vec![FqdnAllowRule {
                name: "payments".into(),
                fqdns: vec!["api.stripe.com".into()],
                protocol: FqdnProtocol::Https,
                port: None,
            }],
            ..EgressSpec::default()
        };
        let groups = rule_collection_groups(&egress, "northeurope", "10.0.0.0/21");
        assert_eq!(
            groups.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
            ["platform", "workload"]
        );
        let fqdns = fqdns_of(&groups);
        assert!(fqdns.contains(&"northeurope.ingest.monitor.azure.com".to_string()));
        assert!(fqdns.contains(&"security.ubuntu.com".to_string()));
        assert!(fqdns.contains(&"api.stripe.com".to_string()));
        assert!(groups[1].1.to_string().contains("\"port\":443"));
    }

    #[test]
    fn no_aks_and_no_allow_list_means_no_egress_at_all() {
        let egress = EgressSpec {
            aks_required: false,
            ..EgressSpec::default()
        };
        assert!(rule_collection_groups(&egress, "westeurope", "10.0.0.0/21").is_empty());
    }

    #[test]
    fn route_table_sends_everything_to_the_firewall() {
        let body = route_table_body("westeurope", &json!({}), "10.0.8.132");
        let route = &body["properties"]["routes"][0]["properties"];
        assert_eq!(route["addressPrefix"], "0.0.0.0/0");
        assert_eq!(route["nextHopType"], "VirtualAppliance");
        assert_eq!(route["nextHopIpAddress"], "10.0.8.132");
        assert_eq!(body["properties"]["disableBgpRoutePropagation"], true);
    }
}
