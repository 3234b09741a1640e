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
        .find(|id| id.contains("/azureFirewalls/afw-weu-blue"))
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

/// The West Europe examples planned and applied to a fresh emulator (latencies off).
async fn west_europe_applied() -> (
    stamp_operator::plan::bundle::BundlePlan,
    RunningEmulator,
    ArmClient,
) {
    let plan = plan_bundle(&west_europe());
    let emulator = RunningEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let arm = client(&emulator);
    emulator.seed_examples().await.unwrap();
    for graph in plan.graphs() {
        apply(&arm, graph).await;
    }
    (plan, emulator, arm)
}

/// The West Europe examples planned, with only the GlobalPlane applied, to a fresh emulator
/// whose latencies are Azure's typical ones times `latency`.
async fn global_plane_applied(
    latency: f64,
) -> (
    stamp_operator::plan::bundle::BundlePlan,
    RunningEmulator,
    ArmClient,
) {
    let plan = plan_bundle(&west_europe());
    let emulator = RunningEmulator::start(EmulatorConfig {
        latency: stamp_operator::emulator::LatencyProfile::realistic(latency),
        ..Default::default()
    })
    .await
    .unwrap();
    let arm = client(&emulator);
    emulator.seed_examples().await.unwrap();
    apply(&arm, plan.graphs()[0]).await;
    (plan, emulator, arm)
}

/// Drift detection without a GET per resource: the fingerprint of a converged stamp (one group
/// listing for its own group, one for Front Door's, and one read of each collection whose
/// children carry security) stays put while nothing changes, and moves when a top-level
/// resource, a tracked child (a DNS zone link) or a child no listing shows changed (a security
/// rule, a route, a subnet's route table, a rule collection group, the origin) is changed or
/// removed behind the operator's back — through ARM's own child paths, which leave the
/// parent's `changedTime` where it was.
#[tokio::test]
async fn a_group_listing_and_the_reads_of_what_carries_security_reveal_every_change() {
    use stamp_operator::controller::converge::{listed, Depth};
    async fn fingerprint(
        arm: &stamp_operator::azure::ArmClient,
        graph: &stamp_operator::plan::DesiredGraph,
        accepted: Duration,
    ) -> Result<String, stamp_operator::azure::AzureError> {
        let age = ListingAge {
            accepted,
            kept: Duration::from_secs(60),
        };
        listed(arm, graph, age, Depth::WithContents)
            .await
            .map(|l| l.fingerprint)
    }
    async fn done(arm: &ArmClient, outcome: Result<PutOutcome, stamp_operator::azure::AzureError>) {
        if let PutOutcome::Started(op) = outcome.unwrap() {
            arm.wait(&op).await.unwrap();
        }
    }
    use stamp_operator::plan::ResourceKind;
    let (plan, emulator, arm) = west_europe_applied().await;
    let graphs = plan.graphs();
    // The stamp's graph (the GlobalPlane's holds the operations networks' firewalls).
    let stamp = graphs
        .iter()
        .find(|g| {
            g.resources
                .iter()
                .any(|r| r.kind == ResourceKind::AzureFirewall)
                && !g
                    .resources
                    .iter()
                    .any(|r| r.kind == ResourceKind::FrontDoorProfile)
        })
        .unwrap();
    let gets = |e: &RunningEmulator| e.stats().by_method.get("GET").copied().unwrap_or(0);
    let before = gets(&emulator);
    let settled = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_eq!(
        gets(&emulator) - before,
        8,
        "one listing per resource group (2); the VNet, the route table and the Private Link \
         Service (a GET each); the NSGs, the rule collection groups and the origin group's \
         origins (a list each)"
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
    const NET: &str = "2024-05-01";
    let vnet = id_of(ResourceKind::VirtualNetwork);
    let nsg = stamp
        .resources
        .iter()
        .find(|r| r.kind == ResourceKind::NetworkSecurityGroup && r.id.name().ends_with("-app"))
        .unwrap()
        .id
        .to_string();
    let rt = id_of(ResourceKind::RouteTable);
    let rcg = id_of(ResourceKind::RuleCollectionGroup);
    let mut last = settled;
    let allow_all = json!({ "properties": { "priority": 100, "access": "Allow", "direction": "Outbound", "protocol": "*", "sourceAddressPrefix": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "*" } });
    done(
        &arm,
        arm.put(
            &format!("{nsg}/securityRules/allow-all"),
            NET,
            &allow_all,
            None,
        )
        .await,
    )
    .await;
    let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_ne!(now, last, "an allow-all rule added as a child went unseen");
    last = now;

    let route = arm.get(&rt, NET).await.unwrap().unwrap().body["properties"]["routes"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let deleted = arm
        .delete(&format!("{rt}/routes/{route}"), NET)
        .await
        .unwrap();
    if let stamp_operator::azure::DeleteOutcome::Started(op) = deleted {
        arm.wait(&op).await.unwrap();
    }
    let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_ne!(now, last, "a route deleted as a child went unseen");
    last = now;

    let live = arm.get(&vnet, NET).await.unwrap().unwrap().body;
    let app = live["properties"]["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["properties"]["routeTable"].is_object())
        .unwrap()
        .clone();
    let mut detached = json!({ "properties": app["properties"].clone() });
    detached["properties"]
        .as_object_mut()
        .unwrap()
        .remove("routeTable");
    let subnet = format!("{vnet}/subnets/{}", app["name"].as_str().unwrap());
    done(&arm, arm.put(&subnet, NET, &detached, None).await).await;
    let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_ne!(
        now, last,
        "a route table detached from its subnet went unseen"
    );
    last = now;

    for (what, id) in [
        ("a rule collection group", rcg),
        ("the origin", id_of(ResourceKind::FrontDoorOrigin)),
    ] {
        assert!(emulator.mutate(&id, |b| b["properties"]["priority"] = json!(4000)));
        let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
        assert_ne!(now, last, "a change to {what} went unseen");
        last = now;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(
        emulator.mutate(&id_of(ResourceKind::VirtualNetworkLink), |b| b["tags"] =
            json!({ "drift": "1" }))
    );
    let now = fingerprint(&arm, stamp, Duration::ZERO).await.unwrap();
    assert_ne!(now, last, "a change to a DNS zone link went unseen");
    last = now;

    // A listing shared for a while (objects resyncing together) hides a change only until it
    // is older than its allowed age.
    let shared = Duration::from_secs(60);
    let cached = fingerprint(&arm, stamp, shared).await.unwrap();
    assert_eq!(cached, last);
    assert!(emulator.remove(&id_of(ResourceKind::PublicIpAddress)));
    assert_eq!(fingerprint(&arm, stamp, shared).await.unwrap(), cached);
    assert_ne!(
        fingerprint(&arm, stamp, Duration::ZERO).await.unwrap(),
        last,
        "a removed public IP went unseen"
    );
}

/// A stamp's origin sits under its GlobalPlane's Front Door profile. Another stamp's origin
/// joining the origin group costs a settled stamp no second look; when the shared parent
/// itself moves (the GlobalPlane wrote it), a settled stamp reads what it has under it (its
/// origin: one GET) instead of everything, and trusts the new fingerprint from then on; a
/// change to its own origin, or to anything of its own, still calls for a full pass.
#[tokio::test]
async fn a_sibling_or_a_shared_parent_moving_costs_a_settled_stamp_no_full_pass() {
    use stamp_operator::api::Verification;
    use stamp_operator::controller::converge::{freshness, listed, Depth, Freshness};
    use stamp_operator::plan::ResourceKind;
    let (plan, emulator, arm) = west_europe_applied().await;
    let graphs = plan.graphs();
    let stamp = graphs
        .iter()
        .find(|g| g.of_kind(ResourceKind::FrontDoorOrigin).next().is_some())
        .unwrap();
    let origin = stamp.of_kind(ResourceKind::FrontDoorOrigin).next().unwrap();
    let fresh = ListingAge {
        accepted: Duration::ZERO,
        kept: Duration::from_secs(60),
    };
    let recorded = Verification {
        fingerprint: listed(&arm, stamp, fresh, Depth::WithContents)
            .await
            .unwrap()
            .fingerprint,
        at: chrono::Utc::now().to_rfc3339(),
    };
    let hour = Duration::from_secs(3600);
    let gets = |e: &RunningEmulator| e.stats().by_method.get("GET").copied().unwrap_or(0);
    let look = |rechecked: Option<String>| {
        let (arm, recorded) = (&arm, &recorded);
        async move {
            freshness(
                arm,
                stamp,
                Some(recorded),
                true,
                hour,
                fresh,
                rechecked.as_deref(),
            )
            .await
        }
    };
    assert!(matches!(
        look(None).await,
        Freshness::Verified { rechecked: None }
    ));

    // Another stamp joins the origin group.
    let sibling = origin
        .id
        .to_string()
        .replace(origin.id.name(), "another-stamp");
    let mut body = origin.body.clone();
    body["properties"]["hostName"] = json!("10.99.8.196");
    // (Its link would be to its own Private Link Service, not this stamp's.)
    body["properties"]
        .as_object_mut()
        .unwrap()
        .remove("sharedPrivateLinkResource");
    let written = arm
        .put(&sibling, origin.kind.api_version(), &body, None)
        .await
        .unwrap();
    if let PutOutcome::Started(op) = written {
        arm.wait(&op).await.unwrap();
    }
    assert!(
        matches!(look(None).await, Freshness::Verified { rechecked: None }),
        "a sibling's origin called for a second look"
    );

    // The GlobalPlane writes the profile: only what the stamp has under it is read again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let profile = origin.id.parent().unwrap().parent().unwrap();
    assert!(emulator.mutate(profile.as_str(), |b| b["tags"] =
        json!({ "by": "globalplane" })));
    let before = gets(&emulator);
    let Freshness::Verified {
        rechecked: Some(accepted),
    } = look(None).await
    else {
        panic!("the shared parent moving called for a full pass");
    };
    assert_ne!(accepted, recorded.fingerprint);
    assert_eq!(
        gets(&emulator) - before,
        9,
        "the look (8 reads) and the stamp's own origin (its origin group is implied)"
    );
    assert!(matches!(
        look(Some(accepted.clone())).await,
        Freshness::Verified { rechecked: None }
    ));

    // The stamp's own origin drifts: seen.
    assert!(emulator.mutate(origin.id.as_str(), |b| b["properties"]["weight"] = json!(7)));
    assert!(matches!(
        look(Some(accepted.clone())).await,
        Freshness::Stale(Some(_))
    ));
    assert!(emulator.mutate(origin.id.as_str(), |b| {
        b["properties"]["weight"] = origin.body["properties"]["weight"].clone()
    }));
    assert!(matches!(
        look(Some(accepted.clone())).await,
        Freshness::Verified { rechecked: None }
    ));

    // Something of its own moves: a full pass, whatever the shared parent says.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let nsg = stamp
        .of_kind(ResourceKind::NetworkSecurityGroup)
        .next()
        .unwrap();
    assert!(emulator.mutate(nsg.id.as_str(), |b| b["tags"] = json!({ "drift": "1" })));
    assert!(matches!(look(None).await, Freshness::Stale(Some(_))));
}

/// A pass that finds an operation of an earlier pass still running reports its component as
/// being provisioned (a stamp is not Ready while its firewall is still being built), and a pass
/// told by the watcher that the operation succeeded, writing the body still wanted, neither polls
/// it nor reads it (unless status needs its body) nor writes it again.
#[tokio::test]
async fn a_running_operation_holds_its_component_back_and_a_finished_one_is_not_polled_again() {
    use stamp_operator::controller::converge::{converge, Known, Mode, Watched};
    use stamp_operator::plan::Component;
    // A firewall takes 1.8 s here, most else well under the inline wait.
    let (plan, emulator, arm) = global_plane_applied(0.005).await;
    let stamp = &plan.stamps[0].1.as_ref().unwrap().graph;
    let known = Known::default();
    let inline = Duration::from_millis(400);
    let first = converge(
        &arm,
        stamp,
        &[],
        |_| Watched::Unknown,
        Mode::Manage,
        inline,
        &known,
    )
    .await;
    let firewall = first
        .in_flight
        .iter()
        .find(|op| op.resource_id.contains("/azureFirewalls/"))
        .expect("the firewall outlasts the inline wait")
        .clone();

    let running = |_: &LroState| Watched::Running;
    let second = converge(
        &arm,
        stamp,
        &first.in_flight,
        running,
        Mode::Manage,
        inline,
        &known,
    )
    .await;
    let egress = second.verdict("Egress", &[Component::Egress]);
    assert!(
        !egress.ok,
        "Egress is Ready while its firewall is being built"
    );
    assert!(
        egress.message.contains("being provisioned"),
        "{}",
        egress.message
    );
    assert!(!second.complete(stamp));
    assert!(second.waits_only_on_wakeups(false), "{:?}", second.problems);

    for op in &second.in_flight {
        arm.wait(op).await.unwrap();
    }
    let before = emulator.requests().len();
    // The watcher tells the hash of the body each operation wrote. The firewall's is made to
    // differ, as if the spec had changed while it ran: it is read, not taken as written.
    let finished = |op: &LroState| {
        let origin = op.resource_id.contains("/origins/");
        Watched::Succeeded(if origin {
            first.started[&op.poll_url]
        } else {
            0
        })
    };
    let third = converge(
        &arm,
        stamp,
        &second.in_flight,
        finished,
        Mode::Manage,
        inline,
        &known,
    )
    .await;
    let requests = emulator.requests()[before..].to_vec();
    assert!(
        !requests
            .iter()
            .any(|r| r.path.contains("/operationStatuses/")),
        "an operation the watcher saw end was polled again"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "PUT" && r.path == firewall.resource_id),
        "a firewall that was just built was written again"
    );
    let key = firewall.resource_id.to_ascii_lowercase();
    assert!(third.ready.contains(&key));
    assert!(
        third.live.contains_key(&key),
        "status reads the firewall's address"
    );
    assert!(
        !third.written.contains(&key),
        "a resource whose wanted body changed while it was written was trusted as written"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path == firewall.resource_id),
        "the firewall was not read"
    );
    let origin = first
        .in_flight
        .iter()
        .find(|op| op.resource_id.contains("/origins/"))
        .expect("the origin outlasts the inline wait");
    let origin = origin.resource_id.to_ascii_lowercase();
    assert!(third.ready.contains(&origin) && third.written.contains(&origin));
    // Status reads an origin's body: one GET, and no write.
    let origin_requests: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.eq_ignore_ascii_case(&origin))
        .map(|r| r.method.as_str())
        .collect();
    assert_eq!(origin_requests, ["GET"], "an origin seen written as wanted");
}

/// An operation whose watcher only slept until it came due is learned from the group listing
/// the pass reads anyway when its resource is listed there, and polled only when it is not (a
/// proxy child) or when the listing does not show it done.
#[tokio::test]
async fn an_operation_come_due_on_a_listed_resource_is_read_from_the_listing_not_polled() {
    use stamp_operator::controller::converge::{converge, listed, Depth, Known, Mode, Watched};
    use stamp_operator::plan::ArmId;
    // Private DNS zones take 0.6 s here: still running when listed right after the pass.
    let (plan, emulator, arm) = global_plane_applied(0.02).await;
    let stamp = &plan.stamps[0].1.as_ref().unwrap().graph;
    let inline = INLINE;
    let is_listed = |op: &LroState| {
        ArmId::parse("id", &op.resource_id)
            .unwrap()
            .listed_in_group()
    };
    let look = || async {
        let listing = listed(&arm, stamp, ListingAge::default(), Depth::Listings)
            .await
            .unwrap();
        Known::new(None, listing, ListingAge::default())
    };
    let first = converge(
        &arm,
        stamp,
        &[],
        |_| Watched::Unknown,
        Mode::Manage,
        inline,
        &Known::default(),
    )
    .await;

    // Listed while they still run: the listing does not show them done, so they are polled.
    let (early, polled) = resume_due(&arm, &emulator, stamp, &first, &look().await).await;
    let zone = first
        .in_flight
        .iter()
        .find(|op| op.resource_id.contains("/privateDnsZones/") && is_listed(op))
        .expect("a private DNS zone outlasts the inline wait");
    assert!(
        polled.contains(&zone.resource_id),
        "a zone listed as still being created was not polled"
    );
    assert!(early.in_flight.contains(zone));
    assert!(
        early.polled.contains(&zone.poll_url),
        "its watcher is to poll it from now on"
    );

    // Listed once they are done: only what the listing cannot show is polled.
    all_due(&arm, &first).await;
    let (second, polled) = resume_due(&arm, &emulator, stamp, &first, &look().await).await;
    let key = zone.resource_id.to_ascii_lowercase();
    assert!(second.ready.contains(&key) && second.written.contains(&key));
    all_due(&arm, &second).await;
    let (_, polled_later) = resume_due(&arm, &emulator, stamp, &second, &look().await).await;
    let resumed = first.in_flight.iter().chain(&second.in_flight);
    let polled: Vec<&String> = polled.iter().chain(&polled_later).collect();
    let (mut listed_seen, mut unlisted_seen) = (0, 0);
    for op in resumed {
        if is_listed(op) {
            listed_seen += 1;
        } else {
            unlisted_seen += 1;
        }
        assert_eq!(
            polled.contains(&&op.resource_id),
            !is_listed(op),
            "{}: polled only if no listing shows it",
            op.resource_id
        );
    }
    assert!(listed_seen > 0 && unlisted_seen > 0);
}

const INLINE: Duration = Duration::from_millis(100);

/// A pass over `graph` resuming `earlier`'s operations as come due, told by `known`: what it
/// found, and the resources whose operations it polled.
async fn resume_due(
    arm: &ArmClient,
    emulator: &RunningEmulator,
    graph: &DesiredGraph,
    earlier: &stamp_operator::controller::converge::Convergence,
    known: &stamp_operator::controller::converge::Known,
) -> (
    stamp_operator::controller::converge::Convergence,
    Vec<String>,
) {
    use stamp_operator::controller::converge::{converge, Mode, Watched};
    let before = emulator.requests().len();
    let due = |op: &LroState| Watched::Due(Some(earlier.started[&op.poll_url]));
    let pass = converge(
        arm,
        graph,
        &earlier.in_flight,
        due,
        Mode::Manage,
        INLINE,
        known,
    )
    .await;
    let polled = emulator.requests()[before..]
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| {
            earlier
                .in_flight
                .iter()
                // The poll URL's path is the request's (a private DNS operation's URL holds its
                // group's path, which the pass may read as well).
                .find(|op| {
                    let path = op.poll_url.split('?').next().unwrap_or_default();
                    path.ends_with(&r.path)
                })
                .map(|op| op.resource_id.clone())
        })
        .collect();
    (pass, polled)
}

/// Sleeps until every operation `pass` left running is due, and a little more.
async fn all_due(arm: &ArmClient, pass: &stamp_operator::controller::converge::Convergence) {
    for op in &pass.in_flight {
        arm.until_due(op).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}
