//! Diff before PUT: does the live resource already say everything the desired body says?
//!
//! Only what the desired body states is compared, so read-only and server-defaulted fields
//! (`id`, `etag`, `provisioningState`, `resourceGuid`, defaults) never count as drift. Lists are
//! compared as multisets (ARM does not keep our order for subnets, rules or prefixes), ids and
//! locations case-insensitively (ARM rewrites `resourceGroups` as `resourcegroups`, `West
//! Europe` as `westeurope`).

use serde_json::Value;

/// Fields ARM owns even when a body carries them.
const SERVER_OWNED: [&str; 3] = ["provisioningState", "etag", "resourceGuid"];

/// The first path where `live` does not say what `desired` says, or `None` when it does.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    differ(desired, live, "", None)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn normalize_location(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

fn differ(desired: &Value, live: &Value, path: &str, key: Option<&str>) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "(body)".to_string()
        } else {
            path.to_string()
        }
    };
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                if SERVER_OWNED.contains(&k.as_str()) {
                    continue;
                }
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match l.get(k) {
                    Some(lv) => {
                        if let Some(diff) = differ(dv, lv, &child, Some(k)) {
                            return Some(diff);
                        }
                    }
                    None if is_empty(dv) => {}
                    None => return Some(child),
                }
            }
            None
        }
        (Value::Array(d), Value::Array(l)) => {
            if d.len() != l.len() {
                return Some(here());
            }
            // Multiset match: every desired element pairs with a distinct live element.
            let mut used = vec![false; l.len()];
            for (i, dv) in d.iter().enumerate() {
                let found = l
                    .iter()
                    .enumerate()
                    .position(|(j, lv)| !used[j] && differ(dv, lv, "", None).is_none());
                match found {
                    Some(j) => used[j] = true,
                    None => return Some(format!("{}[{i}]", here())),
                }
            }
            None
        }
        (Value::String(d), Value::String(l)) => {
            let same = d == l
                || (d.starts_with("/subscriptions/") && d.eq_ignore_ascii_case(l))
                || (key == Some("location") && normalize_location(d) == normalize_location(l));
            (!same).then(here)
        }
        (Value::Number(d), Value::Number(l)) => (d.as_f64() != l.as_f64()).then(here),
        (d, l) if is_empty(d) && is_empty(l) => None,
        (d, l) => (d != l).then(here),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_and_order_are_not_drift() {
        let desired = json!({ "location": "westeurope", "properties": { "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
            "subnets": [{ "name": "a", "properties": { "addressPrefix": "10.0.1.0/24" } }, { "name": "b", "properties": { "addressPrefix": "10.0.2.0/24" } }] } });
        let live = json!({ "id": "/subscriptions/x", "etag": "W/\"1\"", "location": "West Europe", "properties": { "provisioningState": "Succeeded", "resourceGuid": "g",
            "addressSpace": { "addressPrefixes": ["10.0.0.0/16"] },
            "subnets": [{ "name": "b", "id": "…/b", "properties": { "addressPrefix": "10.0.2.0/24", "provisioningState": "Succeeded" } },
                        { "name": "a", "id": "…/a", "properties": { "addressPrefix": "10.0.1.0/24" } }] } });
        assert_eq!(first_difference(&desired, &live), None);
    }

    #[test]
    fn real_changes_are_found() {
        let desired = json!({ "properties": { "securityRules": [{ "name": "deny", "properties": { "priority": 4096, "access": "Deny" } }] } });
        let deleted = json!({ "properties": { "securityRules": [] } });
        assert_eq!(
            first_difference(&desired, &deleted).as_deref(),
            Some("properties.securityRules")
        );
        let opened = json!({ "properties": { "securityRules": [{ "name": "deny", "properties": { "priority": 4096, "access": "Allow" } }] } });
        assert_eq!(
            first_difference(&desired, &opened).as_deref(),
            Some("properties.securityRules[0]")
        );
        let missing = json!({});
        assert_eq!(
            first_difference(&desired, &missing).as_deref(),
            Some("properties")
        );
    }

    #[test]
    fn ids_compare_case_insensitively_and_empty_equals_absent() {
        let desired = json!({ "properties": { "networkSecurityGroup": { "id": "/subscriptions/S/resourceGroups/RG/providers/X/y/z" }, "tags": {} } });
        let live = json!({ "properties": { "networkSecurityGroup": { "id": "/subscriptions/s/resourcegroups/rg/providers/x/y/z" } } });
        assert_eq!(first_difference(&desired, &live), None);
        assert_eq!(
            first_difference(&json!({ "weight": 50 }), &json!({ "weight": 50.0 })),
            None
        );
    }
}
