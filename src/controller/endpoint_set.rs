//! The PrivateEndpointSet reconciler: endpoints in the stamp's (or operations network's)
//! private-endpoint subnet, zone groups writing their DNS records, status per endpoint.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use super::conditions::{merge, ready, Verdict};
use super::converge::{tear_down, Convergence, Freshness, Mode};
use super::{
    next_look, persist, write_status, Context, Error, Progress, Result, Settled, FIELD_MANAGER,
};
use crate::api::HasConditions;
use crate::api::{
    DeletionPolicy, EndpointStatus, PrivateEndpointSet, PrivateEndpointSetStatus, Stamp,
};
use crate::plan::bundle::{operations_endpoint_host, stamp_endpoint_host};
use crate::plan::endpoints::zones_needed;
use crate::plan::{
    plan_endpoint_set, plan_global_plane, Component, EndpointHost, EndpointSetInput,
    EndpointSetPlan, GlobalPlaneInput, StampInput,
};

/// Entry point of the controller.
pub async fn reconcile(set: Arc<PrivateEndpointSet>, ctx: Arc<Context>) -> Result<Action> {
    if let Some(wait) = quiet_wait(&set, &ctx).await? {
        return Ok(Action::requeue(wait));
    }
    let ns = set
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<PrivateEndpointSet> = Api::namespaced(ctx.kube.clone(), &ns);
    let (api, ctx) = (&api, ctx.as_ref());
    let owner = owner(&set, ctx).await?;
    super::with_finalizer(
        api,
        set,
        ctx,
        "privateendpointset",
        owner,
        |set| async move { apply(api, &set, ctx).await },
        |set| async move { cleanup(&set, ctx).await },
    )
    .await
}

/// How long a new set may wait for its stamp without writing anything. A set has nothing to do
/// until its stamp's subnets and DNS zones are built, and the stamp wakes it then (see
/// `stamp::wake_sets_once_built`). A set created with its stamp waits so for a second or two;
/// its finalizer, owner and first status would only add three writes to the API server's
/// busiest moment, when every stamp of the apply makes its first writes. Only a valid set that
/// never wrote (no finalizer yet) waits quietly, and only for one progress interval after its
/// creation: a stamp that takes longer is reported as what the set waits for.
async fn quiet_wait(set: &PrivateEndpointSet, ctx: &Context) -> Result<Option<Duration>> {
    if set.meta().deletion_timestamp.is_some() || super::has_finalizer(set) {
        return Ok(None);
    }
    let Some(stamp) = target_stamp(set, ctx).await? else {
        return Ok(None);
    };
    if super::stamp::built_for_sets(ctx, &stamp) {
        return Ok(None);
    }
    let age = set
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default();
    let Some(left) = ctx.settings.progress_interval.checked_sub(age) else {
        return Ok(None);
    };
    // An invalid set is reported at once, whatever its stamp's progress.
    if plan_for(ctx, set).await?.is_err() {
        return Ok(None);
    }
    Ok(Some(left))
}

/// The host VNet of a set, or why there is none yet.
async fn host(
    ctx: &Context,
    set: &PrivateEndpointSet,
    ns: &str,
) -> Result<std::result::Result<(EndpointHost, Option<Arc<Stamp>>), Verdict>> {
    let target = &set.spec.target;
    if let Some(stamp_ref) = &target.stamp_ref {
        let Some(stamp) = ctx.stamp(ns, &stamp_ref.name).await? else {
            return Ok(Err(Verdict::not(
                "Endpoints",
                "StampNotFound",
                format!("Stamp {} does not exist in namespace {ns}", stamp_ref.name),
            )));
        };
        return Ok(match super::stamp::plan_for(ctx, &stamp).await? {
            Ok((plan, global)) => {
                let input = StampInput {
                    namespace: ns,
                    name: &stamp.name_any(),
                    spec: &stamp.spec,
                };
                let global_input = GlobalPlaneInput {
                    name: &stamp.spec.global_plane_ref.name,
                    spec: &global.spec,
                };
                match stamp_endpoint_host(&plan, global_input, input) {
                    Some(host) => Ok((host, Some(stamp))),
                    None => Err(Verdict::not(
                        "Endpoints",
                        "StampNotPlannable",
                        "the stamp has no private-endpoint subnet",
                    )),
                }
            }
            Err(v) => Err(Verdict::not("Endpoints", "StampNotPlannable", v.message)),
        });
    }
    let Some(ops) = &target.operations_network else {
        return Ok(Err(Verdict::not(
            "Endpoints",
            "InvalidSpec",
            "set exactly one of stampRef or operationsNetwork",
        )));
    };
    let Some(global) = ctx.global(&ops.global_plane_ref.name).await? else {
        return Ok(Err(Verdict::not(
            "Endpoints",
            "GlobalPlaneNotFound",
            format!("GlobalPlane {} does not exist", ops.global_plane_ref.name),
        )));
    };
    let input = GlobalPlaneInput {
        name: &ops.global_plane_ref.name,
        spec: &global.spec,
    };
    if let Err(refused) = crate::plan::global::admit_namespace(input, ns) {
        return Ok(Err(Verdict::not(
            "Endpoints",
            "InvalidSpec",
            refused.to_string(),
        )));
    }
    let zones = [(ops.region.clone(), zones_needed(&set.spec, &ops.region))].into();
    Ok(
        match plan_global_plane(input, &zones)
            .ok()
            .and_then(|plan| operations_endpoint_host(&plan, input, &ops.region))
        {
            Some(host) => Ok((host, None)),
            None => Err(Verdict::not(
                "Endpoints",
                "OperationsNetworkNotFound",
                format!(
                    "GlobalPlane {} has no operations network in {}",
                    ops.global_plane_ref.name, ops.region
                ),
            )),
        },
    )
}

/// Addresses claimed in the same host by sets created before this one.
async fn taken_by_others(
    ctx: &Context,
    set: &PrivateEndpointSet,
    ns: &str,
    host: &EndpointHost,
) -> Result<u32> {
    let sets = ctx.sets(Some(ns)).await?;
    let key = |s: &PrivateEndpointSet| {
        (
            s.metadata.creation_timestamp.clone().map(|t| t.0),
            s.name_any(),
        )
    };
    let mine = key(set);
    Ok(sets
        .iter()
        .filter(|s| {
            s.spec.target == set.spec.target && s.name_any() != set.name_any() && key(s) < mine
        })
        .filter_map(|s| {
            plan_endpoint_set(
                EndpointSetInput {
                    namespace: ns,
                    name: &s.name_any(),
                    spec: &s.spec,
                },
                host,
                0,
            )
            .ok()
        })
        .map(|p| p.addresses)
        .sum())
}

/// The owner reference to `stamp` a set of it should carry, so it is deleted with it; `None`
/// when it carries it already.
fn stamp_owner(set: &PrivateEndpointSet, stamp: &Stamp) -> Option<OwnerReference> {
    let uid = stamp.uid()?;
    if set.owner_references().iter().any(|o| o.uid == uid) {
        return None;
    }
    Some(OwnerReference {
        api_version: Stamp::api_version(&()).into(),
        kind: Stamp::kind(&()).into(),
        name: stamp.name_any(),
        uid,
        controller: Some(false),
        block_owner_deletion: Some(false),
    })
}

/// The owner a set lacks: its stamp, if it exists (written with the finalizer, in one write).
async fn owner(set: &PrivateEndpointSet, ctx: &Context) -> Result<Option<OwnerReference>> {
    Ok(target_stamp(set, ctx)
        .await?
        .and_then(|stamp| stamp_owner(set, &stamp)))
}

/// The stamp a set names, if it names one and it exists.
async fn target_stamp(set: &PrivateEndpointSet, ctx: &Context) -> Result<Option<Arc<Stamp>>> {
    let (Some(ns), Some(stamp_ref)) = (set.namespace(), set.spec.target.stamp_ref.as_ref()) else {
        return Ok(None);
    };
    ctx.stamp(&ns, &stamp_ref.name).await
}

/// Makes the stamp the owner so the set is deleted with it (when the finalizer's write did not:
/// the stamp came after the set, or was replaced).
async fn adopt(ctx: &Context, set: &PrivateEndpointSet, stamp: &Stamp, ns: &str) -> Result<()> {
    let Some(owner) = stamp_owner(set, stamp) else {
        return Ok(());
    };
    let patch = json!({ "apiVersion": PrivateEndpointSet::api_version(&()), "kind": PrivateEndpointSet::kind(&()), "metadata": { "ownerReferences": [owner] } });
    Api::<PrivateEndpointSet>::namespaced(ctx.kube.clone(), ns)
        .patch(
            &set.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}

async fn plan_for(
    ctx: &Context,
    set: &PrivateEndpointSet,
) -> Result<std::result::Result<(EndpointSetPlan, Option<Arc<Stamp>>), Verdict>> {
    let ns = set
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let (host, stamp) = match host(ctx, set, &ns).await? {
        Ok(found) => found,
        Err(v) => return Ok(Err(v)),
    };
    let taken = taken_by_others(ctx, set, &ns, &host).await?;
    Ok(
        match plan_endpoint_set(
            EndpointSetInput {
                namespace: &ns,
                name: &set.name_any(),
                spec: &set.spec,
            },
            &host,
            taken,
        ) {
            Ok(plan) => Ok((plan, stamp)),
            Err(e) => Err(Verdict::not("Endpoints", "InvalidSpec", e.to_string())),
        },
    )
}

async fn apply(
    api: &Api<PrivateEndpointSet>,
    set: &PrivateEndpointSet,
    ctx: &Context,
) -> Result<Action> {
    let ns = set
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let previous = set.status.clone().unwrap_or_default();
    let generation = set.metadata.generation;
    let (plan, stamp) = match plan_for(ctx, set).await? {
        Ok(found) => found,
        Err(verdict) => {
            let (phase, conditions, next) =
                super::unplanned(&previous.conditions, &verdict, generation, &ctx.settings);
            let status = PrivateEndpointSetStatus {
                observed_generation: generation,
                phase,
                conditions,
                endpoints_ready: Some(format!("0/{}", set.spec.endpoints.len())),
                ..previous.clone()
            };
            write_status(api, set, &status).await?;
            return Ok(next);
        }
    };
    if let Some(stamp) = &stamp {
        adopt(ctx, set, stamp, &ns).await?;
    }
    let freshness = ctx
        .freshness(set, &plan.graph, Settled::of(generation, &previous))
        .await;
    if matches!(freshness, Freshness::Verified { .. }) {
        return Ok(next_look(
            &ctx.settings,
            Progress::Converged,
            &slot(set, stamp.as_deref()),
        ));
    }
    let mode = Mode::of(set.spec.paused, set.spec.management_policy);
    let conv = ctx
        .converge(set, &plan.graph, &previous.in_flight, mode, &freshness)
        .await;
    let endpoints: Vec<EndpointStatus> = plan
        .endpoints
        .iter()
        .map(|e| {
            let live = conv.live_of(e.id.as_str());
            let ips = endpoint_addresses(&conv, e.id.as_str());
            let state = live
                .and_then(|l| l.pointer("/properties/privateLinkServiceConnections/0/properties/privateLinkServiceConnectionState/status").and_then(Value::as_str))
                .map(String::from);
            EndpointStatus { name: e.name.clone(), id: live.map(|_| e.id.to_string()), private_ip: ips.first().cloned(), fqdns: e.fqdns.clone(), connection_state: state, private_dns_zone: Some(e.zone.clone()) }
        })
        .collect();
    let ready_count = endpoints
        .iter()
        .zip(&plan.endpoints)
        .filter(|(s, p)| {
            s.connection_state.as_deref() == Some("Approved")
                && conv.ready.contains(&format!(
                    "{}/privatednszonegroups/default",
                    p.id.as_str().to_ascii_lowercase()
                ))
        })
        .count();
    let endpoints_verdict = if ready_count == endpoints.len() {
        Verdict::ok(
            "Endpoints",
            "Ready",
            format!("{ready_count} endpoints approved with DNS records"),
        )
    } else {
        match conv.problems.get(&Component::PrivateEndpoints) {
            Some(p) => Verdict::not("Endpoints", "Provisioning", p.clone()),
            None => Verdict::not(
                "Endpoints",
                "AwaitingApproval",
                "a connection is not approved by the target's owner yet",
            ),
        }
    };
    let removal = conv.removal_verdict();
    let verdicts = [
        ready(&[endpoints_verdict.clone(), removal.clone()]),
        endpoints_verdict,
        removal,
    ];
    let all_ready = verdicts[0].ok;
    let converged = all_ready && conv.in_flight.is_empty();
    let phase = if all_ready { "Ready" } else { "Provisioning" };
    let status = PrivateEndpointSetStatus {
        observed_generation: generation,
        phase: Some(phase.into()),
        conditions: merge(&previous.conditions, &verdicts, generation, phase),
        endpoints_ready: Some(format!("{ready_count}/{}", endpoints.len())),
        endpoints,
        in_flight: persist(&conv.in_flight),
        verified: ctx
            .verification(&plan.graph, converged, &conv, freshness)
            .await,
    };
    let written = ctx.write_pass_status(api, set, &status).await?;
    if converged && !previous.is_ready() {
        super::record_ready(ctx, "privateendpointset", set, &previous.conditions);
    }
    Ok(next_look(
        &ctx.settings,
        // A stamp wakes its sets when its network and zones are built (see `run`); an
        // operations network's GlobalPlane does not, and is polled.
        Progress::of(converged, &conv, set.spec.target.stamp_ref.is_some())
            .after(written, &ctx.settings),
        &slot(set, stamp.as_deref()),
    ))
}

/// The resync slot: that of the stamp the set belongs to, or of the GlobalPlane whose operations
/// network it uses (so they share group listings).
fn slot(set: &PrivateEndpointSet, stamp: Option<&Stamp>) -> String {
    match (stamp, &set.spec.target.operations_network) {
        (Some(stamp), _) => super::stamp::slot(stamp),
        (None, Some(ops)) => ops.global_plane_ref.name.clone(),
        (None, None) => set.name_any(),
    }
}

async fn cleanup(set: &PrivateEndpointSet, ctx: &Context) -> Result<Action> {
    ctx.forget(&super::backoff_key(set));
    // Orphan, and an object whose writes are off (paused, ObserveOnly), leave Azure as it is.
    if set.spec.deletion_policy == DeletionPolicy::Orphan
        || Mode::of(set.spec.paused, set.spec.management_policy) == Mode::Observe
    {
        return Ok(Action::await_change());
    }
    // Whatever status says: it is written some seconds after the endpoints it reports, so a
    // set deleted right after its endpoints started records none of them yet.
    let Ok((plan, _)) = plan_for(ctx, set).await? else {
        // The stamp is gone (it deleted its sets' endpoints, or its group, before it went) or
        // cannot be planned.
        return Ok(Action::await_change());
    };
    let wait = ctx.settings.inline_wait;
    let owner = super::owner_of(set);
    let host_group = plan
        .graph
        .of_kind(crate::plan::ResourceKind::PrivateEndpoint)
        .next()
        .map(|r| {
            crate::plan::ArmId::resource_group(r.id.subscription(), r.id.resource_group_name())
        });
    let planned_gone = tear_down(
        &ctx.arm,
        &plan.graph,
        |r| r.kind == crate::plan::ResourceKind::PrivateEndpoint,
        wait,
    )
    .await?;
    // And what the set created that its spec no longer holds.
    let strays_gone = match &host_group {
        Some(group) => {
            super::lifecycle::remove_listed(&ctx.arm, group, |e| owner.owns(&e["tags"]), wait)
                .await?
        }
        None => true,
    };
    if planned_gone && strays_gone {
        Ok(Action::await_change())
    } else {
        Err(Error::InProgress(format!(
            "deleting endpoints of {}",
            set.name_any()
        )))
    }
}

/// The addresses of private endpoint `id`: from its `customDnsConfigs`, or, where Azure left
/// those empty because a zone group maps its names (issue #24: both are seen), from the zone
/// group's `recordSets`.
fn endpoint_addresses(conv: &Convergence, id: &str) -> Vec<String> {
    let ips_of = |entries: Option<&Value>| -> Vec<String> {
        entries
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c["ipAddresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|ip| ip.as_str().map(String::from))
            .collect()
    };
    let own = ips_of(
        conv.live_of(id)
            .and_then(|l| l.pointer("/properties/customDnsConfigs")),
    );
    if !own.is_empty() {
        return own;
    }
    let group = conv.live_of(&format!("{id}/privateDnsZoneGroups/default"));
    group
        .and_then(|g| g.pointer("/properties/privateDnsZoneConfigs"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| ips_of(c.pointer("/properties/recordSets")))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_endpoint_s_address_is_read_from_its_dns_configs_or_else_its_zone_group() {
        let id =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/pe";
        let group = format!("{id}/privateDnsZoneGroups/default").to_ascii_lowercase();
        let with_group = json!({ "properties": { "privateDnsZoneConfigs": [{ "properties": {
            "recordSets": [{ "recordSetName": "kv", "ipAddresses": ["10.0.1.5"] }] } }] } });
        let mut conv = Convergence::default();
        conv.live.insert(
            id.to_ascii_lowercase(),
            json!({ "properties": { "customDnsConfigs": [] } }),
        );
        assert!(endpoint_addresses(&conv, id).is_empty());
        conv.live.insert(group, with_group);
        assert_eq!(endpoint_addresses(&conv, id), vec!["10.0.1.5"]);
        conv.live.insert(
            id.to_ascii_lowercase(),
            json!({ "properties": { "customDnsConfigs": [{ "fqdn": "kv.vault.azure.net", "ipAddresses": ["10.0.1.4"] }] } }),
        );
        assert_eq!(endpoint_addresses(&conv, id), vec!["10.0.1.4"]);
    }
}
