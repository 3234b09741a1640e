//! Plans a whole set of objects at once — GlobalPlanes, Stamps, PrivateEndpointSets — resolving
//! the references between them. `stamp-operator plan` and the controllers both use it.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde_json::json;

use super::address::SubnetRole;
use super::endpoints::{
    plan_endpoint_set, zones_needed, EndpointHost, EndpointSetInput, EndpointSetPlan,
};
use super::error::PlanError;
use super::flows::{
    evaluate_all, operations_flows, operations_network, planned_bodies, stamp_flows, stamp_network,
    FlowResult, StampFlowInput,
};
use super::global::{plan_global_plane, zone_home, GlobalPlaneInput, GlobalPlanePlan};
use super::graph::DesiredGraph;
use super::stamp::{plan_stamp, StampInput, StampObservations, StampPlan};
use crate::api::{GlobalPlaneSpec, PrivateEndpointSetSpec, StampSpec};

/// The objects to plan, as (namespace,) name and spec.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// GlobalPlanes by name.
    pub global_planes: Vec<(String, GlobalPlaneSpec)>,
    /// Stamps as (namespace, name, spec).
    pub stamps: Vec<(String, String, StampSpec)>,
    /// PrivateEndpointSets as (namespace, name, spec), in the order they claim addresses.
    pub endpoint_sets: Vec<(String, String, PrivateEndpointSetSpec)>,
}

/// The plan of every object, or its error.
#[derive(Debug, Default)]
pub struct BundlePlan {
    /// `(name, plan)` per GlobalPlane.
    pub global_planes: Vec<(String, Result<GlobalPlanePlan, PlanError>)>,
    /// `("ns/name", plan)` per Stamp.
    pub stamps: Vec<(String, Result<StampPlan, PlanError>)>,
    /// `("ns/name", plan)` per PrivateEndpointSet.
    pub endpoint_sets: Vec<(String, Result<EndpointSetPlan, PlanError>)>,
}

impl BundlePlan {
    /// The graphs of every planned object, GlobalPlanes first, then Stamps, then
    /// PrivateEndpointSets (the order they can be applied in); refused objects have none.
    pub fn graphs(&self) -> Vec<&DesiredGraph> {
        let global = self
            .global_planes
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().map(|p| &p.graph));
        let stamps = self
            .stamps
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().map(|p| &p.graph));
        let sets = self
            .endpoint_sets
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().map(|p| &p.graph));
        global.chain(stamps).chain(sets).collect()
    }

    /// `(kind, object, error)` of every refused object.
    pub fn errors(&self) -> Vec<(&'static str, String, PlanError)> {
        let pick = |kind: &'static str, name: &String, result: Result<(), &PlanError>| {
            result.err().map(|e| (kind, name.clone(), e.clone()))
        };
        self.global_planes
            .iter()
            .filter_map(|(n, r)| pick("GlobalPlane", n, r.as_ref().map(|_| ())))
            .chain(
                self.stamps
                    .iter()
                    .filter_map(|(n, r)| pick("Stamp", n, r.as_ref().map(|_| ()))),
            )
            .chain(
                self.endpoint_sets
                    .iter()
                    .filter_map(|(n, r)| pick("PrivateEndpointSet", n, r.as_ref().map(|_| ()))),
            )
            .collect()
    }
}

/// The subscriptions a GlobalPlane lets endpoints target.
pub fn allowed_subscriptions(global: &GlobalPlaneSpec) -> Vec<String> {
    std::iter::once(global.subscription_id.clone())
        .chain(global.allowed_target_subscriptions.iter().cloned())
        .collect()
}

/// The host for endpoints in a stamp.
pub fn stamp_endpoint_host(
    plan: &StampPlan,
    global: GlobalPlaneInput<'_>,
    stamp: StampInput<'_>,
) -> Option<EndpointHost> {
    Some(EndpointHost {
        region: stamp.spec.region.clone(),
        resource_group: plan.resource_group.clone(),
        virtual_network: plan.virtual_network.clone(),
        subnet: plan.address.subnet(SubnetRole::PrivateEndpoints)?.clone(),
        zone_home: plan.zone_home.clone(),
        allowed_subscriptions: allowed_subscriptions(global.spec),
        tags: json!({
            "managed-by": "stamp-operator",
            "missioncritical.dev/global-plane": global.name,
            "missioncritical.dev/stamp": format!("{}/{}", stamp.namespace, stamp.name),
        }),
    })
}

/// The host for endpoints in the GlobalPlane's operations network in `region`.
pub fn operations_endpoint_host(
    plan: &GlobalPlanePlan,
    global: GlobalPlaneInput<'_>,
    region: &str,
) -> Option<EndpointHost> {
    let ops = plan
        .operations_networks
        .iter()
        .find(|o| o.region == region)?;
    Some(EndpointHost {
        region: region.to_string(),
        resource_group: ops.resource_group.clone(),
        virtual_network: ops.virtual_network.clone(),
        subnet: ops.address.subnet(SubnetRole::PrivateEndpoints)?.clone(),
        zone_home: zone_home(global.spec, &ops.resource_group).ok()?,
        allowed_subscriptions: allowed_subscriptions(global.spec),
        tags: json!({ "managed-by": "stamp-operator", "missioncritical.dev/global-plane": global.name, "missioncritical.dev/operations-region": region }),
    })
}

/// Where a set's endpoints go: `Stamp(namespace, name)` or `Operations(global, region)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum HostKey {
    Stamp(String, String),
    Operations(String, String),
}

fn host_key(namespace: &str, spec: &PrivateEndpointSetSpec) -> Result<HostKey, PlanError> {
    match (&spec.target.stamp_ref, &spec.target.operations_network) {
        (Some(stamp), None) => Ok(HostKey::Stamp(namespace.to_string(), stamp.name.clone())),
        (None, Some(ops)) => Ok(HostKey::Operations(
            ops.global_plane_ref.name.clone(),
            ops.region.clone(),
        )),
        _ => Err(PlanError::new(
            "spec.target",
            "set exactly one of stampRef or operationsNetwork",
        )),
    }
}

/// A flow table: what was checked, and each flow's verdict (or why the network could not be
/// read).
pub type FlowTable = (String, Result<Vec<FlowResult>, String>);

/// The flow table of every planned stamp and operations network in `plan` (planned from
/// `bundle`): each required and forbidden flow evaluated against the planned resources.
pub fn flow_tables(bundle: &Bundle, plan: &BundlePlan) -> Vec<FlowTable> {
    let spaces: Vec<Ipv4Net> = bundle
        .stamps
        .iter()
        .filter_map(|(_, _, s)| s.address_space.as_str().parse().ok())
        .collect();
    let mut tables = Vec::new();
    for (name, global) in &plan.global_planes {
        let Ok(global) = global else { continue };
        for ops in &global.operations_networks {
            let table = operations_network(ops, &planned_bodies(&global.graph))
                .map(|network| evaluate_all(&network, operations_flows(ops)));
            tables.push((format!("operations network {name}/{}", ops.region), table));
        }
    }
    for ((ns, name, spec), (_, planned)) in bundle.stamps.iter().zip(&plan.stamps) {
        let Ok(planned) = planned else { continue };
        let input = StampFlowInput {
            plan: planned,
            spec,
            neighbours: &spaces,
        };
        let table = stamp_network(planned, &planned_bodies(&planned.graph))
            .map(|network| evaluate_all(&network, stamp_flows(input)));
        tables.push((format!("stamp {ns}/{name}"), table));
    }
    tables
}

/// Plans everything in `bundle`.
pub fn plan_bundle(bundle: &Bundle) -> BundlePlan {
    let globals: BTreeMap<&str, &GlobalPlaneSpec> = bundle
        .global_planes
        .iter()
        .map(|(n, s)| (n.as_str(), s))
        .collect();
    let stamps: BTreeMap<(&str, &str), &StampSpec> = bundle
        .stamps
        .iter()
        .map(|(ns, n, s)| ((ns.as_str(), n.as_str()), s))
        .collect();

    // Zones each host VNet needs, from the sets that target it.
    let mut zones: BTreeMap<HostKey, BTreeSet<String>> = BTreeMap::new();
    for (ns, _, spec) in &bundle.endpoint_sets {
        let Ok(key) = host_key(ns, spec) else {
            continue;
        };
        let region = match &key {
            HostKey::Stamp(ns, name) => stamps
                .get(&(ns.as_str(), name.as_str()))
                .map(|s| s.region.clone()),
            HostKey::Operations(_, region) => Some(region.clone()),
        };
        if let Some(region) = region {
            zones
                .entry(key)
                .or_default()
                .extend(zones_needed(spec, &region));
        }
    }

    let mut out = BundlePlan::default();
    let mut hosts: BTreeMap<HostKey, EndpointHost> = BTreeMap::new();
    for (name, spec) in &bundle.global_planes {
        let input = GlobalPlaneInput { name, spec };
        let ops_zones: BTreeMap<String, BTreeSet<String>> = zones
            .iter()
            .filter_map(|(k, z)| match k {
                HostKey::Operations(g, region) if g == name => Some((region.clone(), z.clone())),
                _ => None,
            })
            .collect();
        let plan = plan_global_plane(input, &ops_zones);
        if let Ok(plan) = &plan {
            for ops in &spec.operations_networks {
                if let Some(host) = operations_endpoint_host(plan, input, &ops.region) {
                    hosts.insert(HostKey::Operations(name.clone(), ops.region.clone()), host);
                }
            }
        }
        out.global_planes.push((name.clone(), plan));
    }
    for (ns, name, spec) in &bundle.stamps {
        let input = StampInput {
            namespace: ns,
            name,
            spec,
        };
        let key = HostKey::Stamp(ns.clone(), name.clone());
        let plan = match globals.get(spec.global_plane_ref.name.as_str()) {
            None => Err(PlanError::new(
                "spec.globalPlaneRef.name",
                format!("no GlobalPlane named {}", spec.global_plane_ref.name),
            )),
            Some(global_spec) => {
                let global = GlobalPlaneInput {
                    name: &spec.global_plane_ref.name,
                    spec: global_spec,
                };
                let plan = plan_stamp(
                    input,
                    global,
                    &zones.get(&key).cloned().unwrap_or_default(),
                    &StampObservations::default(),
                );
                if let Some(host) = plan
                    .as_ref()
                    .ok()
                    .and_then(|p| stamp_endpoint_host(p, global, input))
                {
                    hosts.insert(key, host);
                }
                plan
            }
        };
        out.stamps.push((format!("{ns}/{name}"), plan));
    }
    let mut claimed: BTreeMap<HostKey, u32> = BTreeMap::new();
    for (ns, name, spec) in &bundle.endpoint_sets {
        let input = EndpointSetInput {
            namespace: ns,
            name,
            spec,
        };
        let plan = host_key(ns, spec).and_then(|key| {
            let host = hosts.get(&key).ok_or_else(|| match &key {
                HostKey::Stamp(ns, stamp) => PlanError::new(
                    "spec.target.stampRef.name",
                    format!("no plannable Stamp {stamp} in namespace {ns}"),
                ),
                HostKey::Operations(g, region) => PlanError::new(
                    "spec.target.operationsNetwork",
                    format!("GlobalPlane {g} has no plannable operations network in {region}"),
                ),
            })?;
            let taken = claimed.get(&key).copied().unwrap_or(0);
            let plan = plan_endpoint_set(input, host, taken)?;
            claimed.insert(key, taken + plan.addresses);
            Ok(plan)
        });
        out.endpoint_sets.push((format!("{ns}/{name}"), plan));
    }
    out
}
