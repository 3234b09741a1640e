//! The CEL rules in the CRDs: they compile, stay inside the API server's cost budget, and
//! refuse what they promise — including transition rules (immutability) on update.
//! Evaluated client-side with kube's CEL implementation; the end-to-end tests hold the same
//! manifests to the real kube-apiserver.

use kube::core::cel::{compile_schema, estimate_rule_cost, Validator};
use serde_json::{json, Value};
use stamp_operator::api::offline::schema_for;

fn rules_with_schemas(schema: &Value, out: &mut Vec<(String, Value)>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            out.push((rule["rule"].as_str().unwrap().to_string(), schema.clone()));
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        props
            .values()
            .for_each(|child| rules_with_schemas(child, out));
    }
    if let Some(items) = schema.get("items") {
        rules_with_schemas(items, out);
    }
}

#[test]
fn every_rule_compiles_and_fits_the_cost_budget() {
    let mut total = 0;
    for kind in ["GlobalPlane", "Stamp", "PrivateEndpointSet"] {
        let mut rules = Vec::new();
        rules_with_schemas(&schema_for(kind).unwrap(), &mut rules);
        for (rule, schema) in &rules {
            let compiled = compile_schema(schema);
            assert!(
                !compiled.has_errors(),
                "{kind}: `{rule}` does not compile: {:?}",
                compiled.compilation_errors()
            );
            let warnings = estimate_rule_cost(rule, &compiled);
            assert!(warnings.is_empty(), "{kind}: `{rule}`: {warnings:?}");
        }
        total += rules.len();
    }
    assert!(
        total >= 20,
        "expected the CRDs to carry their CEL rules, found {total}"
    );
}

fn stamp(address_space: &str, region: &str) -> Value {
    json!({
        "apiVersion": "missioncritical.dev/v1alpha1", "kind": "Stamp",
        "metadata": { "name": "weu", "namespace": "prod" },
        "spec": {
            "globalPlaneRef": { "name": "prod" }, "region": region, "addressSpace": address_space,
            "ingress": { "privateLinkService": { "mode": "Adopt", "resourceId": "/subscriptions/6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f/resourceGroups/mc/providers/Microsoft.Network/privateLinkServices/p" } }
        }
    })
}

fn update_errors(old: &Value, new: &Value) -> Vec<String> {
    let schema = schema_for("Stamp").unwrap();
    match Validator::new().validate_with_defaults(&schema, new, Some(old)) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn region_and_address_space_are_immutable_on_a_live_stamp() {
    let old = stamp("10.10.0.0/20", "westeurope");
    assert!(
        update_errors(&old, &old).is_empty(),
        "an unchanged update is allowed"
    );
    let errors = update_errors(&old, &stamp("10.11.0.0/20", "westeurope"));
    assert!(
        errors
            .iter()
            .any(|m| m.contains("addressSpace is immutable")),
        "{errors:?}"
    );
    let errors = update_errors(&old, &stamp("10.10.0.0/20", "northeurope"));
    assert!(
        errors.iter().any(|m| m.contains("region is immutable")),
        "{errors:?}"
    );
}

#[test]
fn weight_can_change_on_a_live_stamp() {
    let old = stamp("10.10.0.0/20", "westeurope");
    let mut new = old.clone();
    new["spec"]["frontDoor"] = json!({ "weight": 10, "enabled": false });
    assert!(update_errors(&old, &new).is_empty());
}

#[test]
fn cidr_rules_check_syntax_family_and_host_bits() {
    let schema = schema_for("Stamp").unwrap();
    let check = |space: &str| {
        Validator::new()
            .validate_with_defaults(&schema, &stamp(space, "westeurope"), None)
            .err()
            .map(|e| {
                e.into_vec()
                    .into_iter()
                    .map(|e| e.message)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    };
    assert_eq!(check("10.10.0.0/20"), None);
    assert!(check("10.10.0.7/20").unwrap().contains("host bits"));
    assert!(check("10.10.0.0/25").unwrap().contains("/24 or larger"));
    assert!(check("999.10.0.0/20").unwrap().contains("IPv4 CIDR"));
}
