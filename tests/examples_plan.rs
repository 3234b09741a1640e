//! The examples in deploy/examples are accepted and plan to the full architecture.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use stamp_operator::plan::{plan_bundle, ResourceKind};

fn example_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_plans_and_covers_the_architecture() {
    let bundle = stamp_operator::cli::load_manifests(&example_files()).unwrap();
    assert_eq!(bundle.global_planes.len(), 1);
    assert_eq!(bundle.stamps.len(), 2);
    assert!(bundle.endpoint_sets.len() >= 2);
    let plan = plan_bundle(&bundle);
    assert!(plan.errors().is_empty(), "{:?}", plan.errors());

    let (_, global) = &plan.global_planes[0];
    let global_kinds: BTreeSet<ResourceKind> = global
        .as_ref()
        .unwrap()
        .graph
        .resources
        .iter()
        .map(|r| r.kind)
        .collect();
    for kind in [
        ResourceKind::WafPolicy,
        ResourceKind::FrontDoorProfile,
        ResourceKind::FrontDoorEndpoint,
        ResourceKind::FrontDoorOriginGroup,
        ResourceKind::FrontDoorRoute,
        ResourceKind::FrontDoorSecurityPolicy,
        ResourceKind::VirtualNetwork,
        ResourceKind::NetworkSecurityGroup,
    ] {
        assert!(
            global_kinds.contains(&kind),
            "GlobalPlane plan lacks {kind:?}"
        );
    }
    for (name, stamp) in &plan.stamps {
        let stamp = stamp.as_ref().unwrap();
        let kinds: BTreeSet<ResourceKind> = stamp.graph.resources.iter().map(|r| r.kind).collect();
        for kind in [
            ResourceKind::VirtualNetwork,
            ResourceKind::NetworkSecurityGroup,
            ResourceKind::RouteTable,
            ResourceKind::PublicIpAddress,
            ResourceKind::FirewallPolicy,
            ResourceKind::RuleCollectionGroup,
            ResourceKind::AzureFirewall,
            ResourceKind::PrivateLinkService,
            ResourceKind::PrivateDnsZone,
            ResourceKind::VirtualNetworkLink,
            ResourceKind::FrontDoorOrigin,
        ] {
            assert!(kinds.contains(&kind), "{name} lacks {kind:?}");
        }
    }
    for (name, set) in &plan.endpoint_sets {
        let set = set.as_ref().unwrap();
        let kinds: BTreeSet<ResourceKind> = set.graph.resources.iter().map(|r| r.kind).collect();
        assert!(
            kinds.contains(&ResourceKind::PrivateEndpoint)
                && kinds.contains(&ResourceKind::PrivateDnsZoneGroup),
            "{name}"
        );
    }
}

#[test]
fn plan_subcommand_prints_tables_and_json() {
    let bin = env!("CARGO_BIN_EXE_stamp-operator");
    let mut args = vec!["plan".to_string()];
    for f in example_files() {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    let table = Command::new(bin).args(&args).output().unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8(table.stdout).unwrap();
    for needle in [
        "Stamp prod/weu-blue",
        "AzureFirewallSubnet",
        "Microsoft.Network/azureFirewalls",
        "Microsoft.Cdn/profiles/originGroups/origins",
        "privatelink.vaultcore.azure.net",
    ] {
        assert!(text.contains(needle), "table lacks {needle}");
    }
    args.extend(["-o".into(), "json".into()]);
    let json = Command::new(bin).args(&args).output().unwrap();
    assert!(json.status.success());
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["stamps"].as_array().unwrap().len(), 2);
    let weu = value["stamps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prod/weu-blue")
        .unwrap();
    assert_eq!(weu["firewallPrivateIp"], "10.10.8.132");
    assert_eq!(
        weu["addressPlan"]["subnets"][2]["name"],
        "AzureFirewallSubnet"
    );
}

#[test]
fn plan_subcommand_fails_loudly_on_invalid_input() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_stamp-operator"))
        .args(["plan", "-f"])
        .arg(dir.join("deploy/examples/globalplane.yaml"))
        .arg("-f")
        .arg(dir.join("tests/invalid/stamp-firewall-subnet-too-small.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("AzureFirewallSubnet must be /26 or larger"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed as a plan when the input is invalid"
    );
}

#[test]
fn the_examples_flow_tables_allow_what_the_architecture_needs_and_deny_what_it_forbids() {
    use stamp_operator::plan::bundle::flow_tables;
    use stamp_operator::plan::flows::Expect;
    let bundle = stamp_operator::cli::load_manifests(&example_files()).unwrap();
    let plan = plan_bundle(&bundle);
    let tables = flow_tables(&bundle, &plan);
    assert_eq!(tables.len(), 4, "two operations networks and two stamps");
    for (title, table) in &tables {
        let results = table.as_ref().unwrap_or_else(|e| panic!("{title}: {e}"));
        assert!(results.iter().any(|r| r.flow.expect == Expect::Allowed));
        assert!(results.iter().any(|r| r.flow.expect == Expect::Denied));
        for r in results {
            assert!(r.holds(), "{title}: {}", r.describe());
        }
    }
    // What the issue found, now seen by the evaluator: Cosmos DB direct mode over the private
    // endpoint, and the ingress subnet reaching nothing but the app.
    let weu = &tables
        .iter()
        .find(|(t, _)| t == "stamp prod/weu-blue")
        .unwrap()
        .1;
    let weu = weu.as_ref().unwrap();
    let find = |name: &str| {
        weu.iter()
            .find(|r| r.flow.name == name)
            .unwrap_or_else(|| panic!("no flow {name}"))
    };
    assert!(find("app → private endpoints TCP 10250").verdict.allowed);
    assert!(
        !find("ingress → firewall DNS proxy (UDP 53)")
            .verdict
            .allowed
    );
    assert!(
        find("AKS node → mcr.microsoft.com:443 through the firewall")
            .verdict
            .decided_by
            .contains("aks-required")
    );
}

#[test]
fn plan_flows_prints_the_table_and_succeeds_when_every_flow_holds() {
    let bin = env!("CARGO_BIN_EXE_stamp-operator");
    let mut args = vec!["plan".to_string(), "--flows".to_string()];
    for f in example_files() {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    let out = Command::new(bin).args(&args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Flows of stamp prod/weu-blue"), "{text}");
    assert!(text.contains("app → exfil.example.com:443, not on the allow list"));
    assert!(text.contains("build agents → github.com:443"));
    assert!(!text.contains("FAIL"), "{text}");
    // Without its way out, an operations network's build agents cannot reach GitHub, and the
    // command says so.
    let dir = tempfile::tempdir().unwrap();
    let global = std::fs::read_to_string(
        example_files()
            .into_iter()
            .find(|f| f.ends_with("globalplane.yaml"))
            .unwrap(),
    )
    .unwrap()
    .replace(
        "      addressSpace: 10.100.0.0/24\n",
        "      addressSpace: 10.100.0.0/24\n      egress:\n        mode: None\n",
    );
    assert!(global.contains("mode: None"));
    let path = dir.path().join("globalplane.yaml");
    std::fs::write(&path, global).unwrap();
    let out = Command::new(bin)
        .args(["plan", "--flows", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ok   deny     denied   build agents → github.com:443"),
        "{text}"
    );
}

/// The endpoints of the example set `weu-blue-paas`.
fn paas_endpoints(
    bundle: &mut stamp_operator::plan::Bundle,
) -> &mut Vec<stamp_operator::api::EndpointSpec> {
    &mut bundle
        .endpoint_sets
        .iter_mut()
        .find(|(_, name, _)| name == "weu-blue-paas")
        .unwrap()
        .2
        .endpoints
}

#[test]
fn a_replicated_target_takes_an_address_and_a_name_per_region() {
    let mut bundle = stamp_operator::cli::load_manifests(&example_files()).unwrap();
    let set = |bundle: &stamp_operator::plan::Bundle| {
        let plan = plan_bundle(bundle);
        plan.endpoint_sets
            .into_iter()
            .find(|(name, _)| name == "prod/weu-blue-paas")
            .unwrap()
            .1
    };
    let before = set(&bundle).unwrap();
    let endpoints = paas_endpoints(&mut bundle);
    let regions: Vec<String> = ["westeurope", "northeurope", "eastus"]
        .map(String::from)
        .to_vec();
    for e in endpoints
        .iter_mut()
        .filter(|e| e.name == "registry" || e.name == "cosmos")
    {
        e.target_regions = regions.clone();
    }
    let after = set(&bundle).unwrap();
    // Registry and Cosmos DB: the global name plus three regions each, instead of two addresses.
    assert_eq!(after.addresses, before.addresses + 2 * 2);
    let registry = after
        .endpoints
        .iter()
        .find(|e| e.name == "registry")
        .unwrap();
    assert_eq!(registry.addresses, 4);
    assert!(
        registry
            .fqdns
            .contains(&"acrprod.eastus.data.azurecr.io".to_string()),
        "{:?}",
        registry.fqdns
    );
    let cosmos = after.endpoints.iter().find(|e| e.name == "cosmos").unwrap();
    assert!(
        cosmos
            .fqdns
            .contains(&"cosmos-prod-northeurope.documents.azure.com".to_string()),
        "{:?}",
        cosmos.fqdns
    );
    // A Key Vault serves one region: regions there are a mistake, refused.
    let endpoints = paas_endpoints(&mut bundle);
    endpoints
        .iter_mut()
        .find(|e| e.name == "keyvault")
        .unwrap()
        .target_regions = regions;
    let refused = set(&bundle).unwrap_err();
    assert_eq!(refused.field, "spec.endpoints[0].targetRegions");
}
