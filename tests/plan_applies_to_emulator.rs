//! The planner's graphs, applied through the ARM engine to the emulator in dependency order:
//! Azure (as emulated) accepts every body, and a second pass over the converged graph costs one
//! GET per resource and not a single write.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use stamp_operator::azure::*;
use stamp_operator::emulator::{EmulatorConfig, RunningEmulator};
use stamp_operator::plan::{plan_bundle, DesiredGraph, Ownership};

fn client(emulator: &RunningEmulator) -> ArmClient {
    let mut config = ArmConfig::for_endpoint(&emulator.url(), "scope");
    config.min_poll_interval = Duration::from_millis(5);
    let tokens = TokenSource::new(
        CredentialConfig::Static("t".into()).build().unwrap(),
        "scope",
    );
    ArmClient::new(config, tokens, ArmMetrics::default()).unwrap()
}

/// Applies a graph in order, waiting for each operation. Returns how many resources it touched.
async fn apply(arm: &ArmClient, graph: &DesiredGraph) -> usize {
    for r in &graph.resources {
        match r.ownership {
            Ownership::Observed => assert!(
                arm.get(r.id.as_str(), r.kind.api_version())
                    .await
                    .unwrap()
                    .is_some(),
                "{} must exist",
                r.id
            ),
            Ownership::Managed => match arm
                .apply(r.id.as_str(), r.kind.api_version(), &r.body)
                .await
            {
                Ok(ApplyOutcome::Written {
                    outcome: PutOutcome::Started(op),
                    ..
                }) => arm
                    .wait(&op)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", r.id)),
                Ok(_) => {}
                Err(e) => panic!("{} was refused: {e}", r.id),
            },
        }
    }
    graph.resources.len()
}

/// The GlobalPlane, the West Europe stamp and its endpoint sets of the examples.
fn west_europe() -> stamp_operator::plan::bundle::Bundle {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let files: Vec<PathBuf> = [
        "globalplane.yaml",
        "stamp-westeurope.yaml",
        "privateendpointsets.yaml",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    let mut bundle = stamp_operator::cli::load_manifests(&files).unwrap();
    bundle
        .endpoint_sets
        .retain(|(_, name, _)| name != "neu-blue-paas"); // its stamp is not in this bundle
    bundle
}

#[tokio::test]
async fn planned_graphs_converge_and_a_second_pass_writes_nothing() {
    let plan = plan_bundle(&west_europe());
    assert!(plan.errors().is_empty(), "{:?}", plan.errors());
    let graphs = plan.graphs();

    let emulator = RunningEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let arm = client(&emulator);
    emulator.seed_examples().await.unwrap();
    for graph in &graphs {
        apply(&arm, graph).await;
    }
    // Private link as Azure would have it: the origin opened a Pending connection on the PLS,
    // carrying the stamp's request message.
    let stamp = plan.stamps[0].1.as_ref().unwrap();
    let pls = arm
        .get(stamp.private_link_service.as_str(), "2024-05-01")
        .await
        .unwrap()
        .unwrap();
    let connection = &pls.body["properties"]["privateEndpointConnections"][0]["properties"]
        ["privateLinkServiceConnectionState"];
    assert_eq!(connection["status"], "Pending");
    assert_eq!(connection["description"], stamp.request_message.as_str());
    let firewall = emulator
        .inventory()
        .into_iter()
        .find(|id| id.contains("/azureFirewalls/"))
        .unwrap();
    let fw = arm.get(&firewall, "2024-05-01").await.unwrap().unwrap();
    assert_eq!(
        fw.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
        stamp.firewall_private_ip.to_string(),
        "the route table's predicted next hop is the firewall's address"
    );

    let before = emulator.stats();
    let mut resources = 0;
    for graph in &graphs {
        resources += apply(&arm, graph).await;
    }
    let after = emulator.stats();
    let count =
        |s: &stamp_operator::emulator::Stats, m: &str| s.by_method.get(m).copied().unwrap_or(0);
    assert_eq!(
        count(&after, "PUT") - count(&before, "PUT"),
        0,
        "a converged graph is written zero times"
    );
    assert_eq!(count(&after, "DELETE") - count(&before, "DELETE"), 0);
    assert_eq!(
        count(&after, "GET") - count(&before, "GET"),
        resources as u64,
        "exactly one GET per resource"
    );
}

/// Drift detection without a GET per resource: the fingerprint of a converged stamp (one group
/// listing for its own group, one for Front Door's) stays put while nothing changes, and moves
/// when a top-level resource, a proxy child (a rule collection group, the origin) or a tracked
/// child (a DNS zone link) is changed or removed behind the operator's back.
#[tokio::test]
async fn a_group_listing_reveals_every_change_to_a_converged_stamp() {
    use stamp_operator::controller::converge::listed;
    async fn fingerprint(
        arm: &stamp_operator::azure::ArmClient,
        graph: &stamp_operator::plan::DesiredGraph,
        max_age: Duration,
    ) -> Result<String, stamp_operator::azure::AzureError> {
        listed(arm, graph, max_age).await.map(|l| l.fingerprint)
    }
    use stamp_operator::plan::ResourceKind;
    let plan = plan_bundle(&west_europe());
    let graphs = plan.graphs();
    let emulator = RunningEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let arm = client(&emulator);
    emulator.seed_examples().await.unwrap();
    for graph in &graphs {
        apply(&arm, graph).await;
    }
    let stamp = graphs
        .iter()
        .find(|g| {
            g.resources
                .iter()
                .any(|r| r.kind == ResourceKind::AzureFirewall)
        })
        .unwrap();
    let gets = |e: &RunningEmulator| e.stats().by_method.get("GET").copied().unwrap_or(0);
    let before = gets(&emulator);
    let settled = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_eq!(
        gets(&emulator) - before,
        2,
        "one listing per resource group"
    );
    assert_eq!(
        fingerprint(&arm, stamp, Duration::ZERO).await.unwrap(),
        settled
    );

    let id_of = |kind: ResourceKind| {
        stamp
            .resources
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?}"))
            .id
            .to_string()
    };
    let mut last = settled;
    for kind in [
        ResourceKind::NetworkSecurityGroup,
        ResourceKind::RuleCollectionGroup,
        ResourceKind::FrontDoorOrigin,
        ResourceKind::VirtualNetworkLink,
    ] {
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(emulator.mutate(&id_of(kind), |b| b["tags"] = json!({ "drift": "1" })));
        let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
        assert_ne!(now, last, "a change to a {kind:?} went unseen");
        last = now;
    }
    // A listing shared for a while (objects resyncing together) hides a change only until it
    // is older than its allowed age.
    let shared = Duration::from_secs(60);
    let cached = fingerprint(&arm, stamp, shared).await.unwrap();
    assert_eq!(cached, last);
    assert!(emulator.remove(&id_of(ResourceKind::RouteTable)));
    assert_eq!(fingerprint(&arm, stamp, shared).await.unwrap(), cached);
    assert_ne!(
        fingerprint(&arm, stamp, Duration::ZERO).await.unwrap(),
        last,
        "a removed route table went unseen"
    );
}
