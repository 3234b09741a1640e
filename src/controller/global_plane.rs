//! The GlobalPlane reconciler: Front Door Premium + WAF, operations networks and their DNS, and
//! the list of stamps registered as origins.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::Value;

use super::conditions::{merge, ready, Verdict};
use super::converge::{tear_down, Convergence, Freshness, Mode};
use super::{next_look, persist, write_status, Context, Error, Progress, Result, Settled};
use crate::api::{
    DeletionPolicy, GlobalPlane, GlobalPlaneStatus, HasConditions, OperationsNetworkStatus, Stamp,
    StampOriginStatus,
};
use crate::plan::endpoints::zones_needed;
use crate::plan::flows::{evaluate_all, operations_flows, operations_network, Expect};
use crate::plan::{plan_global_plane, Component, GlobalPlaneInput, GlobalPlanePlan};

/// Entry point of the controller.
pub async fn reconcile(global: Arc<GlobalPlane>, ctx: Arc<Context>) -> Result<Action> {
    let api: Api<GlobalPlane> = Api::all(ctx.kube.clone());
    let (api, ctx) = (&api, ctx.as_ref());
    super::with_finalizer(
        api,
        global,
        ctx,
        "globalplane",
        None,
        |global| async move { apply(api, &global, ctx).await },
        |global| async move { cleanup(&global, ctx).await },
    )
    .await
}

async fn plan_for(
    ctx: &Context,
    global: &GlobalPlane,
) -> Result<std::result::Result<GlobalPlanePlan, String>> {
    let name = global.name_any();
    let sets = ctx.sets(None).await?;
    let mut ops_zones: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let input = GlobalPlaneInput {
        name: &name,
        spec: &global.spec,
    };
    // A set from a namespace the GlobalPlane does not admit adds nothing to it (its own status
    // says why).
    let admitted = |set: &crate::api::PrivateEndpointSet| {
        set.namespace()
            .is_some_and(|ns| crate::plan::global::admit_namespace(input, ns.as_str()).is_ok())
    };
    for set in sets
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none() && admitted(s))
    {
        if let Some(ops) = set
            .spec
            .target
            .operations_network
            .as_ref()
            .filter(|o| o.global_plane_ref.name == name)
        {
            ops_zones
                .entry(ops.region.clone())
                .or_default()
                .extend(zones_needed(&set.spec, &ops.region));
        }
    }
    Ok(plan_global_plane(input, &ops_zones).map_err(|e| e.to_string()))
}

async fn stamps_of(ctx: &Context, name: &str) -> Result<Vec<std::sync::Arc<Stamp>>> {
    Ok(ctx
        .stamps()
        .await?
        .into_iter()
        .filter(|s| s.spec.global_plane_ref.name == name)
        .collect())
}

/// What each stamp reports about its Front Door origin.
fn origins(stamps: &[std::sync::Arc<Stamp>]) -> Vec<StampOriginStatus> {
    stamps.iter().map(|s| origin_of(s)).collect()
}

/// What a stamp reports about its Front Door origin.
pub fn origin_of(stamp: &Stamp) -> StampOriginStatus {
    let status = stamp.status.as_ref();
    StampOriginStatus {
        stamp: format!(
            "{}/{}",
            stamp.namespace().unwrap_or_default(),
            stamp.name_any()
        ),
        region: stamp.spec.region.clone(),
        origin_id: status
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| o.front_door_origin_id.clone()),
        enabled: stamp.spec.front_door.enabled,
        weight: stamp.spec.front_door.weight,
        connection_state: status
            .and_then(|s| s.private_link_connection.as_ref())
            .map(|c| c.state.clone()),
    }
}

/// Every flow the architecture forbids in each operations network, evaluated against the
/// network as Azure holds it (see the stamps' `NetworkIsolated`); the first that gets through is
/// named.
fn operations_isolation(plan: &GlobalPlanePlan, conv: &Convergence) -> Verdict {
    const KIND: &str = "OperationsNetworksIsolated";
    let body = |id: &str| conv.held_body(&plan.graph, id);
    let mut forbidden = 0;
    for ops in &plan.operations_networks {
        let network = match operations_network(ops, &body) {
            Ok(network) => network,
            Err(why) => {
                return Verdict::not(
                    KIND,
                    "Provisioning",
                    format!("{}: the flows cannot be judged yet: {why}", ops.region),
                )
            }
        };
        let results = evaluate_all(&network, operations_flows(ops));
        if let Some(leak) = results
            .iter()
            .find(|r| r.flow.expect == Expect::Denied && r.verdict.allowed)
        {
            return Verdict::not(
                KIND,
                "ForbiddenFlowAllowed",
                format!("{}: {}", ops.region, leak.describe()),
            );
        }
        forbidden += results
            .iter()
            .filter(|r| r.flow.expect == Expect::Denied)
            .count();
    }
    Verdict::ok(
        KIND,
        "Isolated",
        format!(
            "the {forbidden} forbidden flows of {} operations networks checked are denied",
            plan.operations_networks.len()
        ),
    )
}

async fn apply(api: &Api<GlobalPlane>, global: &GlobalPlane, ctx: &Context) -> Result<Action> {
    let previous = global.status.clone().unwrap_or_default();
    let generation = global.metadata.generation;
    let mut plan = match plan_for(ctx, global).await? {
        Ok(plan) => plan,
        Err(message) => {
            let verdict = Verdict::not("FrontDoor", "InvalidSpec", message);
            let (phase, conditions, next) =
                super::unplanned(&previous.conditions, &verdict, generation, &ctx.settings);
            let status = GlobalPlaneStatus {
                observed_generation: generation,
                phase,
                conditions,
                ..previous.clone()
            };
            write_status(api, global, &status).await?;
            return Ok(next);
        }
    };
    let stamps = stamps_of(ctx, &global.name_any()).await?;
    let origins = origins(&stamps);
    ctx.observe_foreign_groups(&mut plan.graph, global).await?;
    let freshness = ctx
        .freshness(global, &plan.graph, Settled::of(generation, &previous))
        .await;
    if matches!(freshness, Freshness::Verified { .. }) {
        // Azure is as last checked; only what the stamps report may have moved.
        let status = GlobalPlaneStatus {
            stamp_count: origins.iter().filter(|o| o.origin_id.is_some()).count() as i32,
            stamps: origins,
            ..previous
        };
        let written = ctx.write_pass_status(api, global, &status).await?;
        return Ok(next_look(
            &ctx.settings,
            Progress::Converged.after(written, &ctx.settings),
            &global.name_any(),
        ));
    }
    let mode = Mode::of(global.spec.paused, global.spec.management_policy);
    let conv = ctx
        .converge(global, &plan.graph, &previous.in_flight, mode, &freshness)
        .await;
    let components = vec![
        conv.verdict(
            "FrontDoor",
            &[Component::ResourceGroup, Component::FrontDoor],
        ),
        conv.verdict("Waf", &[Component::Waf]),
        conv.verdict("PrivateDns", &[Component::PrivateDns]),
        conv.verdict("OperationsNetworks", &[Component::OperationsNetwork]),
        operations_isolation(&plan, &conv),
        conv.removal_verdict(),
    ];
    let all = ready(&components);
    let converged = all.ok && conv.in_flight.is_empty();
    let mut resource_ids = BTreeMap::new();
    for (role, id) in [
        ("profile", &plan.ids.profile),
        ("endpoint", &plan.ids.endpoint),
        ("originGroup", &plan.ids.origin_group),
        ("wafPolicy", &plan.ids.waf_policy),
        ("securityPolicy", &plan.ids.security_policy),
    ] {
        resource_ids.insert(role.to_string(), id.to_string());
    }
    let mut verdicts = vec![all];
    verdicts.extend(components);
    let phase = if converged {
        "Ready"
    } else if mode == Mode::Observe {
        "Observing"
    } else {
        "Provisioning"
    };
    let status = GlobalPlaneStatus {
        observed_generation: generation,
        phase: Some(phase.into()),
        conditions: merge(&previous.conditions, &verdicts, generation, phase),
        front_door_host_name: conv
            .live_of(plan.ids.endpoint.as_str())
            .and_then(|e| e.pointer("/properties/hostName"))
            .and_then(Value::as_str)
            .map(String::from),
        stamp_count: origins.iter().filter(|o| o.origin_id.is_some()).count() as i32,
        stamps: origins,
        resource_ids,
        operations_networks: plan
            .operations_networks
            .iter()
            .map(|o| OperationsNetworkStatus {
                region: o.region.clone(),
                virtual_network_id: conv
                    .live_of(o.virtual_network.as_str())
                    .map(|_| o.virtual_network.to_string()),
                subnet_ids: o
                    .address
                    .subnets
                    .iter()
                    .map(|s| (s.role.label().to_string(), o.subnet_id(s.role).to_string()))
                    .collect(),
            })
            .collect(),
        in_flight: persist(&conv.in_flight),
        verified: ctx
            .verification(&plan.graph, converged, &conv, freshness)
            .await,
    };
    let was_ready = previous.is_ready();
    let written = ctx.write_pass_status(api, global, &status).await?;
    if converged && !was_ready {
        super::record_ready(ctx, "globalplane", global, &previous.conditions);
        tracing::info!(global = %global.name_any(), "GlobalPlane is ready");
    }
    Ok(next_look(
        &ctx.settings,
        Progress::of(converged, &conv, false).after(written, &ctx.settings),
        &global.name_any(),
    ))
}

async fn cleanup(global: &GlobalPlane, ctx: &Context) -> Result<Action> {
    ctx.forget(&super::backoff_key(global));
    // Orphan, and an object whose writes are off (paused, ObserveOnly), leave Azure as it is.
    if global.spec.deletion_policy == DeletionPolicy::Orphan
        || Mode::of(global.spec.paused, global.spec.management_policy) == Mode::Observe
    {
        return Ok(Action::await_change());
    }
    let stamps = stamps_of(ctx, &global.name_any()).await?;
    if !stamps.is_empty() {
        // Deleting Front Door under live stamps would cut their traffic: wait for them to go.
        return Err(Error::InProgress(format!(
            "{} stamp(s) still use GlobalPlane {}",
            stamps.len(),
            global.name_any()
        )));
    }
    let Ok(mut plan) = plan_for(ctx, global).await? else {
        return Ok(Action::await_change());
    };
    ctx.observe_foreign_groups(&mut plan.graph, global).await?;
    if tear_down(&ctx.arm, &plan.graph, |_| true, ctx.settings.inline_wait).await? {
        Ok(Action::await_change())
    } else {
        Err(Error::InProgress(format!(
            "deleting GlobalPlane {}",
            global.name_any()
        )))
    }
}
