//! The emulator validates request bodies against schemas derived from Azure's official specs:
//! the committed derivation matches the specs, every body the planner produces conforms, and
//! bodies that break the spec are refused with a 400.

use std::path::{Path, PathBuf};

use serde_json::json;
use stamp_operator::emulator::spec_schema::{committed, derive, validate};
use stamp_operator::plan::{plan_bundle, Ownership};

#[test]
fn committed_schemas_match_the_specs() {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/azure-specs");
    assert!(
        specs.is_dir(),
        "{} is missing: the shared specs folder sits beside the repository",
        specs.display()
    );
    let derived = derive(&specs).unwrap();
    assert!(
        &derived == committed(),
        "src/emulator/schemas.json drifted from shared/azure-specs: run `make emulator-schemas`"
    );
    for t in [
        "microsoft.network/virtualnetworks",
        "microsoft.network/azurefirewalls",
        "microsoft.network/privateendpoints",
        "microsoft.cdn/profiles/origingroups/origins",
        "microsoft.network/frontdoorwebapplicationfirewallpolicies",
    ] {
        assert!(derived["types"][t].is_object(), "no schema for {t}");
    }
}

#[test]
fn every_planned_body_conforms_to_azure_specs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let plan = plan_bundle(&stamp_operator::cli::load_manifests(&files).unwrap());
    assert!(plan.errors().is_empty(), "{:?}", plan.errors());
    let graphs = plan.graphs();
    let mut checked = 0;
    let mut problems = Vec::new();
    for graph in graphs {
        for r in graph
            .resources
            .iter()
            .filter(|r| r.ownership == Ownership::Managed)
        {
            if let Err(e) = validate(committed(), r.kind.arm_type(), &r.body) {
                problems.push(format!("{} ({}): {e}", r.id, r.kind.arm_type()));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked > 60, "only {checked} bodies checked");
}

#[test]
fn bodies_that_break_the_spec_are_refused() {
    let schemas = committed();
    let nsg = "Microsoft.Network/networkSecurityGroups";
    assert!(validate(
        schemas,
        nsg,
        &json!({ "location": "westeurope", "properties": { "securityRules": [] } })
    )
    .is_ok());
    let unknown = validate(
        schemas,
        nsg,
        &json!({ "location": "westeurope", "properties": { "securityRulez": [] } }),
    )
    .unwrap_err();
    assert_eq!(unknown, "properties.securityRulez: unknown property");
    let wrong_type = validate(
        schemas,
        nsg,
        &json!({ "location": "westeurope", "properties": { "securityRules": "none" } }),
    )
    .unwrap_err();
    assert_eq!(wrong_type, "properties.securityRules: expected an array");
    let rule = json!({ "name": "r", "properties": { "priority": 100, "access": "Allow", "direction": "Inbound", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "destinationPortRange": "22" } });
    let missing = validate(
        schemas,
        nsg,
        &json!({ "location": "x", "properties": { "securityRules": [rule] } }),
    )
    .unwrap_err();
    assert_eq!(
        missing,
        "properties.securityRules[0].properties.protocol: required property is missing"
    );
    let bad_priority = json!({ "name": "r", "properties": { "protocol": "Tcp", "priority": "high", "access": "Allow", "direction": "Inbound" } });
    let err = validate(
        schemas,
        nsg,
        &json!({ "location": "x", "properties": { "securityRules": [bad_priority] } }),
    )
    .unwrap_err();
    assert!(err.contains("expected an integer"), "{err}");
    // Polymorphic lists are checked per variant (discriminator `ruleType`).
    let rcg = "Microsoft.Network/firewallPolicies/ruleCollectionGroups";
    let group = |rule: serde_json::Value| {
        json!({ "properties": { "priority": 200, "ruleCollections": [{
        "ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "c", "priority": 210, "action": { "type": "Allow" }, "rules": [rule] }] } })
    };
    let app_rule = json!({ "ruleType": "ApplicationRule", "name": "r", "protocols": [{ "protocolType": "Https", "port": 443 }], "targetFqdns": ["a.example.com"] });
    assert!(validate(schemas, rcg, &group(app_rule)).is_ok());
    let typo =
        json!({ "ruleType": "ApplicationRule", "name": "r", "targetFqdnz": ["a.example.com"] });
    assert_eq!(
        validate(schemas, rcg, &group(typo)).unwrap_err(),
        "properties.ruleCollections[0].rules[0].targetFqdnz: unknown property"
    );
    let network_field_on_app_rule =
        json!({ "ruleType": "ApplicationRule", "name": "r", "destinationPorts": ["123"] });
    assert!(
        validate(schemas, rcg, &group(network_field_on_app_rule)).is_err(),
        "destinationPorts belongs to NetworkRule"
    );
    // Types the spec folder does not describe (seeded PaaS targets) are not checked.
    assert!(validate(
        schemas,
        "Microsoft.KeyVault/vaults",
        &json!({ "anything": 1 })
    )
    .is_ok());
}

#[tokio::test]
async fn the_emulator_answers_400_for_a_body_that_breaks_the_spec() {
    let emulator = stamp_operator::emulator::RunningEmulator::start(Default::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let rg = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg";
    http.put(format!("{}{rg}?api-version=2024-03-01", emulator.url()))
        .bearer_auth("t")
        .json(&json!({ "location": "westeurope" }))
        .send()
        .await
        .unwrap();
    let url = format!(
        "{}{rg}/providers/Microsoft.Network/routeTables/rt?api-version=2024-05-01",
        emulator.url()
    );
    let answer = http
        .put(&url)
        .bearer_auth("t")
        .json(&json!({ "location": "westeurope", "properties": { "routez": [] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidRequestContent");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("properties.routez: unknown property"));
    assert!(
        emulator.inventory().iter().all(|id| !id.ends_with("/rt")),
        "a refused write changes nothing"
    );
}
