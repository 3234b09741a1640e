//! Property tests over generated specs: an accepted spec gives a sound plan, a refused one gives
//! an error naming a field, and nothing panics.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;
use proptest::prelude::*;
use stamp_operator::api::*;
use stamp_operator::plan::bundle::stamp_endpoint_host;
use stamp_operator::plan::*;

const SUB: &str = "6f1c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f";

fn global_spec() -> GlobalPlaneSpec {
    serde_json::from_value(serde_json::json!({
        "subscriptionId": SUB, "resourceGroup": "rg-g", "location": "westeurope",
        "frontDoor": { "sku": "Premium_AzureFrontDoor" }
    }))
    .unwrap()
}

prop_compose! {
    fn stamp_spec()(
        second in 0u32..=255, third in 0u32..=15, space_prefix in 16u8..=26,
        given in proptest::collection::vec(proptest::bool::weighted(0.3), 4),
        offsets in proptest::collection::vec((0u32..65536, 1u8..=8, proptest::bool::weighted(0.9), proptest::bool::weighted(0.9)), 4),
        lb_host in proptest::option::of(0u32..64),
        weight in 1i32..=1000,
    ) -> StampSpec {
        let base = Ipv4Net::new(std::net::Ipv4Addr::new(10, second as u8, (third * 16) as u8, 0), space_prefix).unwrap().trunc();
        let base_u = u32::from(base.network());
        let size = 1u32 << (32 - space_prefix.min(32));
        let pick = |i: usize| -> Option<CidrBlock> {
            if !given[i] { return None; }
            let (off, delta, masked, inside) = offsets[i];
            let prefix = (space_prefix + delta).min(30);
            let span = if inside { size } else { size * 4 };
            let addr = std::net::Ipv4Addr::from(base_u.wrapping_add(off % span));
            let net = Ipv4Net::new(addr, prefix).unwrap();
            Some(CidrBlock(if masked { net.trunc().to_string() } else { format!("{addr}/{prefix}") }))
        };
        let subnets = StampSubnets { app: pick(0), ingress: pick(1), firewall: pick(2), private_endpoints: pick(3) };
        let lb = lb_host.map(|h| std::net::Ipv4Addr::from(base_u + h).to_string());
        serde_json::from_value(serde_json::json!({
            "globalPlaneRef": { "name": "g" },
            "region": "westeurope",
            "addressSpace": base.to_string(),
            "subnets": subnets,
            "ingress": {
                "privateLinkService": { "mode": "Create", "frontendIpConfigurationId": format!("/subscriptions/{SUB}/resourceGroups/mc/providers/Microsoft.Network/loadBalancers/lb/frontendIPConfigurations/fe") },
                "loadBalancerIp": lb,
                "originHostHeader": "st.stamps.example.com",
            },
            "frontDoor": { "weight": weight },
        })).unwrap()
    }
}

/// Guards the generator: both accepted and refused specs must be common, or one branch of the
/// property above would go untested.
#[test]
fn the_generator_exercises_both_outcomes() {
    use proptest::strategy::ValueTree;
    let global = global_spec();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..400 {
        let spec = stamp_spec().new_tree(&mut runner).unwrap().current();
        let s = StampInput {
            namespace: "ns",
            name: "st",
            spec: &spec,
        };
        match plan_stamp(
            s,
            GlobalPlaneInput {
                name: "g",
                spec: &global,
            },
            &BTreeSet::new(),
            &StampObservations::default(),
        ) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        ok >= 80 && refused >= 40,
        "accepted {ok}, refused {refused}"
    );
}

fn check_sound(plan: &StampPlan) -> Result<(), TestCaseError> {
    let space = plan.address.space;
    for s in &plan.address.subnets {
        prop_assert!(space.contains(&s.cidr), "{} outside {}", s.cidr, space);
        prop_assert_eq!(s.cidr.trunc(), s.cidr);
    }
    for (i, a) in plan.address.subnets.iter().enumerate() {
        for b in &plan.address.subnets[i + 1..] {
            prop_assert!(
                !a.cidr.contains(&b.cidr.network()) && !b.cidr.contains(&a.cidr.network()),
                "{} overlaps {}",
                a.cidr,
                b.cidr
            );
        }
    }
    let roles: BTreeSet<SubnetRole> = plan.address.subnets.iter().map(|s| s.role).collect();
    prop_assert_eq!(roles.len(), 4);
    prop_assert!(
        plan.address
            .subnet(SubnetRole::Firewall)
            .unwrap()
            .cidr
            .prefix_len()
            <= 26
    );
    prop_assert!(plan
        .address
        .subnet(SubnetRole::Ingress)
        .unwrap()
        .can_assign(plan.load_balancer_ip));
    prop_assert!(plan
        .address
        .subnet(SubnetRole::Firewall)
        .unwrap()
        .can_assign(plan.firewall_private_ip));
    // Every dependency is placed earlier in the list, or is an explicit external requirement.
    let mut seen = BTreeSet::new();
    for r in &plan.graph.resources {
        for d in &r.depends_on {
            prop_assert!(
                seen.contains(d) || plan.graph.requires.contains(d),
                "{} depends on {} which is not before it",
                r.id,
                d
            );
        }
        prop_assert!(seen.insert(r.id.clone()), "{} listed twice", r.id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn accepted_stamps_are_sound_and_deterministic(spec in stamp_spec()) {
        let global = global_spec();
        let g = GlobalPlaneInput { name: "g", spec: &global };
        let s = StampInput { namespace: "ns", name: "st", spec: &spec };
        match plan_stamp(s, g, &BTreeSet::new(), &StampObservations::default()) {
            Ok(plan) => {
                check_sound(&plan)?;
                let again = plan_stamp(s, g, &BTreeSet::new(), &StampObservations::default()).unwrap();
                prop_assert_eq!(&plan, &again);
            }
            Err(e) => {
                prop_assert!(e.field.starts_with("spec."), "error without a field: {}", e);
                prop_assert!(!e.reason.is_empty());
            }
        }
    }

    #[test]
    fn carving_without_overrides_always_succeeds_for_valid_spaces(second in 0u8..=255, prefix in 16u8..=24) {
        let global = global_spec();
        let mut spec: StampSpec = serde_json::from_value(serde_json::json!({
            "globalPlaneRef": { "name": "g" }, "region": "westeurope", "addressSpace": "10.0.0.0/16",
            "ingress": { "privateLinkService": { "mode": "Adopt", "resourceId": format!("/subscriptions/{SUB}/resourceGroups/mc/providers/Microsoft.Network/privateLinkServices/p") }, "originHostHeader": "st.stamps.example.com" }
        })).unwrap();
        spec.address_space = CidrBlock(Ipv4Net::new(std::net::Ipv4Addr::new(10, second, 0, 0), prefix).unwrap().trunc().to_string());
        let plan = plan_stamp(StampInput { namespace: "a", name: "b", spec: &spec }, GlobalPlaneInput { name: "g", spec: &global }, &BTreeSet::new(), &StampObservations::default());
        prop_assert!(plan.is_ok(), "{:?}", plan.err());
        check_sound(&plan.unwrap())?;
    }

    #[test]
    fn endpoint_sets_never_overfill_their_subnet(
        picks in proptest::collection::vec((0usize..8, 0u32..1000), 1..40),
    ) {
        const GROUPS: [(&str, &str); 8] = [
            ("vault", "Microsoft.KeyVault/vaults"), ("registry", "Microsoft.ContainerRegistry/registries"),
            ("Sql", "Microsoft.DocumentDB/databaseAccounts"), ("namespace", "Microsoft.EventHub/namespaces"),
            ("blob", "Microsoft.Storage/storageAccounts"), ("bogus", "Microsoft.Storage/storageAccounts"),
            ("vault", "Microsoft.Storage/storageAccounts"), ("dfs", "Microsoft.Storage/storageAccounts"),
        ];
        let global = global_spec();
        let stamp: StampSpec = serde_json::from_value(serde_json::json!({
            "globalPlaneRef": { "name": "g" }, "region": "westeurope", "addressSpace": "10.0.0.0/24",
            "ingress": { "privateLinkService": { "mode": "Adopt", "resourceId": format!("/subscriptions/{SUB}/resourceGroups/mc/providers/Microsoft.Network/privateLinkServices/p") }, "originHostHeader": "st.stamps.example.com" }
        })).unwrap();
        let endpoints: Vec<serde_json::Value> = picks.iter().enumerate().map(|(i, (g, n))| serde_json::json!({
            "name": format!("e{i}"),
            "targetResourceId": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/{}/r{n}", GROUPS[*g].1),
            "groupId": GROUPS[*g].0,
        })).collect();
        let set: PrivateEndpointSetSpec = serde_json::from_value(serde_json::json!({ "target": { "stampRef": { "name": "st" } }, "endpoints": endpoints })).unwrap();
        let g = GlobalPlaneInput { name: "g", spec: &global };
        let s = StampInput { namespace: "ns", name: "st", spec: &stamp };
        let stamp_plan = plan_stamp(s, g, &BTreeSet::new(), &StampObservations::default()).unwrap();
        let host = stamp_endpoint_host(&stamp_plan, g, s).unwrap();
        match plan_endpoint_set(EndpointSetInput { namespace: "ns", name: "set", spec: &set }, &host, 0) {
            Ok(plan) => {
                prop_assert!(plan.addresses <= host.subnet.usable());
                prop_assert_eq!(plan.endpoints.len(), set.endpoints.len());
            }
            Err(e) => prop_assert!(e.field.starts_with("spec.endpoints"), "{}", e),
        }
    }

    #[test]
    fn arbitrary_text_never_crashes_the_manifest_reader(text in ".{0,400}") {
        let _ = stamp_operator::api::manifest::parse_manifests(&text);
    }

    #[test]
    fn arbitrary_cidr_strings_never_crash_the_planner(raw in "[0-9./a-z:]{0,24}") {
        let _ = address::parse_space("spec.addressSpace", &raw);
        let _ = address::parse_block("spec.subnets.app", &raw);
    }
}

const ZONES: [&str; 6] = [
    "privatelink.vaultcore.azure.net",
    "privatelink.azurecr.io",
    "privatelink.documents.azure.com",
    "privatelink.servicebus.windows.net",
    "privatelink.blob.core.windows.net",
    "privatelink.redis.cache.windows.net",
];

prop_compose! {
    fn egress_spec()(
        dns_proxy in proptest::bool::ANY,
        aks_required in proptest::bool::ANY,
        groups in proptest::collection::btree_set(0usize..3, 0..=3),
        rules in proptest::collection::vec((proptest::bool::ANY, 0usize..3, proptest::option::of(1u16..=65535)), 0..4),
    ) -> EgressSpec {
        const GROUPS: [&str; 3] = ["UbuntuUpdates", "AzureMonitor", "AzurePolicy"];
        const PROTOCOLS: [&str; 3] = ["Https", "Http", "Mssql"];
        let allow: Vec<serde_json::Value> = rules.iter().enumerate().map(|(i, (wildcard, protocol, port))| serde_json::json!({
            "name": format!("rule{i}"),
            "fqdns": [if *wildcard { format!("*.site{i}.example.org") } else { format!("site{i}.example.org") }],
            "protocol": PROTOCOLS[*protocol],
            "port": port,
        })).collect();
        serde_json::from_value(serde_json::json!({
            "dnsProxy": dns_proxy,
            "aksRequired": aks_required,
            "optionalGroups": groups.iter().map(|g| GROUPS[*g]).collect::<Vec<_>>(),
            "allow": allow,
        })).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the spec, the planned NSGs, routes and firewall rules allow every flow the
    /// stamp needs and deny every flow the architecture forbids.
    #[test]
    fn accepted_stamps_allow_their_required_flows_and_deny_the_forbidden(
        spec in stamp_spec(),
        egress in egress_spec(),
        zones in proptest::collection::btree_set(0usize..ZONES.len(), 0..=ZONES.len()),
    ) {
        use stamp_operator::plan::flows::{evaluate_all, planned_bodies, stamp_flows, stamp_network, StampFlowInput};
        let mut spec = spec;
        spec.egress = egress;
        let zones: BTreeSet<String> = zones.iter().map(|z| ZONES[*z].to_string()).collect();
        let global = global_spec();
        let g = GlobalPlaneInput { name: "g", spec: &global };
        let s = StampInput { namespace: "ns", name: "st", spec: &spec };
        if let Ok(plan) = plan_stamp(s, g, &zones, &StampObservations::default()) {
            let network = stamp_network(&plan, &planned_bodies(&plan.graph));
            prop_assert!(network.is_ok(), "{:?}", network.err());
            let flows = stamp_flows(StampFlowInput { plan: &plan, spec: &spec, neighbours: &[] });
            prop_assert!(flows.len() >= 15);
            for r in evaluate_all(&network.unwrap(), flows) {
                prop_assert!(r.holds(), "{}", r.describe());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// Whatever its space, egress mode and endpoint services, an operations network allows what
    /// its build agents, jump boxes and Bastion need and denies what the architecture forbids.
    #[test]
    fn accepted_operations_networks_allow_their_required_flows_and_deny_the_forbidden(
        second in 0u8..=255, prefix in 16u8..=24, firewall in proptest::bool::ANY,
        zones in proptest::collection::btree_set(0usize..ZONES.len(), 0..=ZONES.len()),
    ) {
        use stamp_operator::plan::flows::{evaluate_all, operations_flows, operations_network, planned_bodies};
        let space = Ipv4Net::new(std::net::Ipv4Addr::new(10, second, 0, 0), prefix).unwrap().trunc();
        let mut spec = global_spec();
        spec.operations_networks = vec![serde_json::from_value(serde_json::json!({
            "region": "westeurope", "addressSpace": space.to_string(),
            "egress": { "mode": if firewall { "Firewall" } else { "None" } },
        })).unwrap()];
        let zones: BTreeSet<String> = zones.iter().map(|z| ZONES[*z].to_string()).collect();
        let by_region = std::collections::BTreeMap::from([("westeurope".to_string(), zones.clone())]);
        let plan = plan_global_plane(GlobalPlaneInput { name: "g", spec: &spec }, &by_region);
        prop_assert!(plan.is_ok(), "{:?}", plan.err());
        let plan = plan.unwrap();
        let ops = &plan.operations_networks[0];
        prop_assert_eq!(ops.firewall.is_some(), firewall);
        let network = operations_network(ops, &planned_bodies(&plan.graph));
        prop_assert!(network.is_ok(), "{:?}", network.err());
        let flows = operations_flows(ops);
        prop_assert!(flows.len() >= 15);
        for r in evaluate_all(&network.unwrap(), flows) {
            prop_assert!(r.holds(), "{}", r.describe());
        }
    }
}
