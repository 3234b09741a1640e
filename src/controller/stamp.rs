//! The Stamp reconciler: plan, converge, approve Front Door's private-link connection, report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use super::conditions::{merge, ready, Verdict};
use super::converge::{tear_down, Convergence, Freshness, Mode};
use super::{next_look, persist, write_status, Context, Error, Progress, Result, Settled};
use crate::api::{
    ApprovalMode, DeletionPolicy, GlobalPlane, HasConditions, PlannedSubnet, PrivateLinkConnection,
    Stamp, StampOutputs, StampStatus, UnexpectedConnectionAction,
};
use crate::azure::PutOutcome;
use crate::plan::endpoints::zones_needed;
use crate::plan::{
    plan_stamp, Component, GlobalPlaneInput, StampInput, StampObservations, StampPlan, SubnetRole,
};

/// Entry point of the controller.
pub async fn reconcile(stamp: Arc<Stamp>, ctx: Arc<Context>) -> Result<Action> {
    let ns = stamp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<Stamp> = Api::namespaced(ctx.kube.clone(), &ns);
    let (api, ctx) = (&api, ctx.as_ref());
    super::with_finalizer(
        api,
        stamp,
        ctx,
        "stamp",
        None,
        |stamp| async move { apply(api, &stamp, ctx).await },
        |stamp| async move { cleanup(api, &stamp, ctx).await },
    )
    .await
}

/// The resync slot of a stamp: its GlobalPlane's, shared with its PrivateEndpointSets and the
/// other stamps behind the same Front Door — one listing of the stamp's group serves the stamp
/// and its sets, one listing of Front Door's group serves every stamp. (At most 50 stamps share
/// a slot: Front Door Premium's limit of origins per origin group.)
pub fn slot(stamp: &Stamp) -> String {
    stamp.spec.global_plane_ref.name.clone()
}

/// The zones the stamp's PrivateEndpointSets need.
async fn zones(ctx: &Context, ns: &str, name: &str, region: &str) -> Result<BTreeSet<String>> {
    let sets = ctx.sets(Some(ns)).await?;
    Ok(sets
        .iter()
        .filter(|s| {
            s.metadata.deletion_timestamp.is_none()
                && s.spec
                    .target
                    .stamp_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
        })
        .flat_map(|s| zones_needed(&s.spec, region))
        .collect())
}

/// The plan of a stamp, with what it depends on; `Err(verdict)` when it cannot be planned.
pub async fn plan_for(
    ctx: &Context,
    stamp: &Stamp,
) -> Result<std::result::Result<(StampPlan, Arc<GlobalPlane>), Verdict>> {
    let ns = stamp
        .namespace()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    let name = stamp.name_any();
    let Some(global) = ctx.global(&stamp.spec.global_plane_ref.name).await? else {
        return Ok(Err(Verdict::not(
            "AddressPlan",
            "GlobalPlaneNotFound",
            format!(
                "GlobalPlane {} does not exist",
                stamp.spec.global_plane_ref.name
            ),
        )));
    };
    let zones = zones(ctx, &ns, &name, &stamp.spec.region).await?;
    let seen = StampObservations {
        firewall_private_ip: stamp
            .status
            .as_ref()
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| o.firewall_private_ip.as_deref())
            .and_then(|ip| ip.parse().ok()),
    };
    let global_input = GlobalPlaneInput {
        name: &stamp.spec.global_plane_ref.name,
        spec: &global.spec,
    };
    Ok(
        match plan_stamp(
            StampInput {
                namespace: &ns,
                name: &name,
                spec: &stamp.spec,
            },
            global_input,
            &zones,
            &seen,
        ) {
            Ok(plan) => Ok((plan, global)),
            Err(e) => Err(Verdict::not("AddressPlan", "InvalidSpec", e.to_string())),
        },
    )
}

/// The description written when deciding about a connection.
fn approval_note(decision: &str, request_message: &str) -> String {
    format!("{decision} by stamp-operator: {request_message}")
}

/// Decides about the connections on the stamp's Private Link Service; approves or rejects as the
/// GlobalPlane's policy says (when writes are allowed) and reports Front Door's connection. A
/// decision written is recorded in `conv` as this operator's own change.
async fn private_link(
    ctx: &Context,
    plan: &StampPlan,
    global: &GlobalPlane,
    conv: &mut Convergence,
    mode: Mode,
) -> (Verdict, Option<PrivateLinkConnection>) {
    let Some(pls) = conv.live_of(plan.private_link_service.as_str()) else {
        return (
            Verdict::not(
                "PrivateLinkApproved",
                "Provisioning",
                "the Private Link Service is not ready",
            ),
            None,
        );
    };
    let connections = pls
        .pointer("/properties/privateEndpointConnections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let policy = &global.spec.private_link_approval;
    let mut ours = None;
    for c in connections {
        let id = c["id"].as_str().unwrap_or_default().to_string();
        let state = c
            .pointer("/properties/privateLinkServiceConnectionState/status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let message = c
            .pointer("/properties/privateLinkServiceConnectionState/description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // A connection is ours when it carries our request message, or the note we wrote when
        // approving it (approval replaces the description; the note repeats the message so the
        // connection stays recognisable from Azure alone, whatever our cached status says).
        let expected = message == plan.request_message
            || message == approval_note("Approved", &plan.request_message);
        let decision = match (state.as_str(), expected, policy.mode, policy.unexpected) {
            ("Pending", true, ApprovalMode::ApproveMatching, _) => Some("Approved"),
            ("Pending", false, _, UnexpectedConnectionAction::Reject) => Some("Rejected"),
            _ => None,
        };
        let mut final_state = state.clone();
        if let (Some(decision), Mode::Manage) = (decision, mode) {
            let body = json!({ "properties": { "privateLinkServiceConnectionState": { "status": decision, "description": approval_note(decision, &plan.request_message), "actionsRequired": "None" } } });
            if let Ok(PutOutcome::Started(op)) = ctx.arm.put(&id, "2024-05-01", &body, None).await {
                let _ = tokio::time::timeout(ctx.settings.inline_wait, ctx.arm.wait(&op)).await;
            }
            conv.touched.insert(id.to_ascii_lowercase());
            final_state = decision.to_string();
        }
        if expected {
            ours = Some(PrivateLinkConnection {
                name: id.rsplit('/').next().unwrap_or_default().to_string(),
                state: final_state,
                request_message: Some(plan.request_message.clone()),
            });
        }
    }
    let verdict = match &ours {
        Some(c) if c.state == "Approved" => Verdict::ok(
            "PrivateLinkApproved",
            "Approved",
            format!("Front Door's connection {} is approved", c.name),
        ),
        Some(c) => Verdict::not(
            "PrivateLinkApproved",
            &c.state,
            format!("Front Door's connection {} is {}", c.name, c.state),
        ),
        None => Verdict::not(
            "PrivateLinkApproved",
            "Pending",
            "no connection from this GlobalPlane's Front Door yet",
        ),
    };
    (verdict, ours)
}

/// Whether anything public appeared that the design forbids.
fn isolation(plan: &StampPlan, conv: &Convergence, firewall_ip: Option<&str>) -> Verdict {
    let Some(vnet) = conv.live_of(plan.virtual_network.as_str()) else {
        return Verdict::not("NetworkIsolated", "Provisioning", "the VNet is not ready");
    };
    let subnets = vnet
        .pointer("/properties/subnets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in &subnets {
        let name = s["name"].as_str().unwrap_or_default();
        if name != SubnetRole::Firewall.azure_name()
            && s.pointer("/properties/defaultOutboundAccess") != Some(&json!(false))
        {
            return Verdict::not(
                "NetworkIsolated",
                "DefaultOutboundAccess",
                format!("subnet {name} has default outbound internet access"),
            );
        }
        if name != SubnetRole::Firewall.azure_name()
            && s.pointer("/properties/networkSecurityGroup/id").is_none()
        {
            return Verdict::not(
                "NetworkIsolated",
                "NoNetworkSecurityGroup",
                format!("subnet {name} has no network security group"),
            );
        }
    }
    if let (Some(ip), Some(rt)) = (
        firewall_ip,
        conv.live
            .iter()
            .find(|(k, _)| k.contains("/routetables/"))
            .map(|(_, v)| v),
    ) {
        let hop = rt
            .pointer("/properties/routes/0/properties/nextHopIpAddress")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if hop != ip {
            return Verdict::not(
                "NetworkIsolated",
                "EgressBypass",
                format!("the default route points to {hop}, not the firewall {ip}"),
            );
        }
    }
    Verdict::ok(
        "NetworkIsolated",
        "Isolated",
        "no public endpoint, default outbound access off, egress only through the firewall",
    )
}

fn outputs(plan: &StampPlan, conv: &Convergence) -> StampOutputs {
    let live = |kind: &str| {
        conv.live
            .iter()
            .find(|(k, _)| k.contains(kind))
            .map(|(_, v)| v)
    };
    StampOutputs {
        resource_group_id: Some(plan.resource_group.to_string()),
        virtual_network_id: Some(plan.virtual_network.to_string()),
        subnet_ids: plan
            .address
            .subnets
            .iter()
            .map(|s| {
                (
                    s.role.label().to_string(),
                    plan.subnet_id(s.role).to_string(),
                )
            })
            .collect::<BTreeMap<_, _>>(),
        firewall_private_ip: live("/azurefirewalls/")
            .and_then(|f| f.pointer("/properties/ipConfigurations/0/properties/privateIPAddress"))
            .and_then(Value::as_str)
            .map(String::from),
        firewall_public_ip: live("/publicipaddresses/")
            .and_then(|p| p.pointer("/properties/ipAddress"))
            .and_then(Value::as_str)
            .map(String::from),
        private_link_service_id: Some(plan.private_link_service.to_string()),
        private_link_service_alias: conv
            .live_of(plan.private_link_service.as_str())
            .and_then(|p| p.pointer("/properties/alias"))
            .and_then(Value::as_str)
            .map(String::from),
        load_balancer_ip: Some(plan.load_balancer_ip.to_string()),
        front_door_origin_id: conv
            .live_of(plan.front_door_origin.as_str())
            .map(|_| plan.front_door_origin.to_string()),
    }
}

async fn apply(api: &Api<Stamp>, stamp: &Stamp, ctx: &Context) -> Result<Action> {
    let previous = stamp.status.clone().unwrap_or_default();
    let generation = stamp.metadata.generation;
    let (plan, global) = match plan_for(ctx, stamp).await? {
        Ok(found) => found,
        Err(verdict) => {
            let (phase, conditions, next) =
                super::unplanned(&previous.conditions, &verdict, generation, &ctx.settings);
            let status = StampStatus {
                observed_generation: generation,
                phase,
                conditions,
                ..previous.clone()
            };
            write_status(api, stamp, &status).await?;
            return Ok(next);
        }
    };
    let freshness = ctx
        .freshness(stamp, &plan.graph, Settled::of(generation, &previous))
        .await;
    if matches!(freshness, Freshness::Verified { .. }) {
        return Ok(next_look(&ctx.settings, Progress::Converged, &slot(stamp)));
    }
    let mode = Mode::of(stamp.spec.paused, stamp.spec.management_policy);
    let mut conv = ctx
        .converge(stamp, &plan.graph, &previous.in_flight, mode, &freshness)
        .await;
    for repaired in &conv.repaired {
        super::announce(
            ctx,
            stamp,
            true,
            "DriftRepaired",
            format!("Azure differed from the spec and was repaired: {repaired}"),
        )
        .await;
        tracing::info!(stamp = %stamp.name_any(), %repaired, "repaired drift");
    }
    let (approval, connection) = private_link(ctx, &plan, &global, &mut conv, mode).await;
    let outputs = outputs(&plan, &conv);
    let mut components = vec![
        Verdict::ok(
            "AddressPlan",
            "Planned",
            format!(
                "{} subnets in {}",
                plan.address.subnets.len(),
                plan.address.space
            ),
        ),
        conv.verdict("Network", &[Component::ResourceGroup, Component::Network]),
        conv.verdict("Egress", &[Component::Egress]),
        conv.verdict("Ingress", &[Component::Ingress]),
        conv.verdict("PrivateLink", &[Component::PrivateDns]),
        conv.verdict("FrontDoorOrigin", &[Component::FrontDoorOrigin]),
        approval,
        isolation(&plan, &conv, outputs.firewall_private_ip.as_deref()),
    ];
    if mode == Mode::Observe {
        let why = if stamp.spec.paused {
            "Paused"
        } else {
            "ObserveOnly"
        };
        components.push(Verdict::ok(
            "Writes",
            why,
            "the operator reads and reports but does not write",
        ));
    }
    wake_sets_once_built(ctx, stamp, &components).await?;
    let all = ready(&components);
    let converged = all.ok && conv.in_flight.is_empty();
    let phase = if all.ok {
        "Ready"
    } else if mode == Mode::Observe {
        if stamp.spec.paused {
            "Paused"
        } else {
            "Observing"
        }
    } else if conv.terminal.is_empty() {
        "Provisioning"
    } else {
        "Degraded"
    };
    let mut verdicts = vec![all];
    verdicts.extend(components);
    let status = StampStatus {
        observed_generation: generation,
        phase: Some(phase.into()),
        conditions: merge(&previous.conditions, &verdicts, generation, phase),
        address_plan: plan
            .address
            .subnets
            .iter()
            .map(|s| PlannedSubnet {
                role: s.role.label().into(),
                name: s.role.azure_name().into(),
                cidr: s.cidr.to_string(),
                usable: s.usable(),
            })
            .collect(),
        outputs: Some(outputs),
        private_link_connection: connection,
        draining_since: None,
        in_flight: persist(&conv.in_flight),
        verified: ctx
            .verification(&plan.graph, converged, &conv, freshness)
            .await,
    };
    let was_ready = previous.is_ready();
    let written = ctx.write_pass_status(api, stamp, &status).await?;
    if converged && !was_ready {
        super::record_ready(ctx, "stamp", stamp, &previous.conditions);
        super::announce(
            ctx,
            stamp,
            false,
            "Ready",
            "every component is provisioned, approved and isolated".into(),
        )
        .await;
    }
    for error in &conv.terminal {
        super::announce(ctx, stamp, true, "AzureRefused", error.to_string()).await;
    }
    Ok(next_look(
        &ctx.settings,
        // Its GlobalPlane wakes it for nothing: the origin group it joins is polled for (Front
        // Door may be built only once some origin exists, and each change of the GlobalPlane's
        // status waking fifty stamps would cost more than the polls).
        Progress::of(converged, &conv, false).after(written, &ctx.settings),
        &slot(stamp),
    ))
}

/// The stamp's conditions its PrivateEndpointSets wait for: its subnets and its DNS zones.
pub const WHAT_SETS_NEED: [&str; 2] = ["Network", "PrivateLink"];

/// Whether the stamp's subnets and DNS zones, which its sets need, are built: as this process's
/// last pass found them, or as its status says.
pub fn built_for_sets(ctx: &Context, stamp: &Stamp) -> bool {
    ctx.is_built(&super::backoff_key(stamp))
        || WHAT_SETS_NEED.iter().all(|type_| {
            stamp.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == *type_ && c.status == "True")
            })
        })
}

/// Wakes the stamp's PrivateEndpointSets the first time a pass finds their subnet and DNS zones
/// ready. They are woken anyway when the stamp's status says so, but those conditions are
/// progress detail, written with a delay: the sets would wait for it.
async fn wake_sets_once_built(ctx: &Context, stamp: &Stamp, components: &[Verdict]) -> Result<()> {
    let built = components
        .iter()
        .filter(|v| WHAT_SETS_NEED.contains(&v.type_.as_str()))
        .all(|v| v.ok);
    if !ctx.newly_built(&super::backoff_key(stamp), built) {
        return Ok(());
    }
    let ns = stamp.namespace();
    let name = stamp.name_any();
    for set in ctx.sets(ns.as_deref()).await? {
        if set
            .spec
            .target
            .stamp_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
        {
            ctx.wakeups
                .wake::<crate::api::PrivateEndpointSet>(ns.as_deref(), &set.name_any());
        }
    }
    Ok(())
}

/// Disables the stamp's Front Door origin and lets in-flight requests drain before anything is
/// deleted. `Some(time left)` while draining; `None` once the origin may go (or is gone).
async fn drain(
    api: &Api<Stamp>,
    stamp: &Stamp,
    ctx: &Context,
    plan: &StampPlan,
    status: &StampStatus,
) -> Result<Option<std::time::Duration>> {
    let Some(origin) = plan.graph.resources.iter().find(|r| {
        r.component == Component::FrontDoorOrigin && r.ownership == crate::plan::Ownership::Managed
    }) else {
        return Ok(None);
    };
    let (id, api_version) = (origin.id.as_str(), origin.kind.api_version());
    let Some(live) = ctx.arm.get(id, api_version).await? else {
        return Ok(None);
    };
    let disabled = live.body.pointer("/properties/enabledState") == Some(&json!("Disabled"));
    if !disabled {
        let mut body = origin.body.clone();
        body["properties"]["enabledState"] = json!("Disabled");
        if let crate::azure::ApplyOutcome::Written {
            outcome: PutOutcome::Started(op),
            ..
        } = ctx.arm.apply(id, api_version, &body).await?
        {
            let _ = tokio::time::timeout(ctx.settings.inline_wait, ctx.arm.wait(&op)).await;
        }
        super::announce(
            ctx,
            stamp,
            false,
            "Draining",
            format!(
                "Front Door's origin is disabled; deleting in {}s",
                ctx.settings.drain.as_secs()
            ),
        )
        .await;
    }
    let since = status
        .draining_since
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let Some(since) = since else {
        let draining = StampStatus {
            phase: Some("Draining".into()),
            draining_since: Some(chrono::Utc::now().to_rfc3339()),
            ..status.clone()
        };
        write_status(api, stamp, &draining).await?;
        return Ok(Some(ctx.settings.drain));
    };
    let elapsed = (chrono::Utc::now() - since).to_std().unwrap_or_default();
    Ok(ctx.settings.drain.checked_sub(elapsed))
}

async fn cleanup(api: &Api<Stamp>, stamp: &Stamp, ctx: &Context) -> Result<Action> {
    ctx.forget(&super::backoff_key(stamp));
    let status = stamp.status.clone().unwrap_or_default();
    let created_nothing = status.outputs.is_none() && status.in_flight.is_empty();
    // Orphan, and a stamp whose writes are off (paused, ObserveOnly), leave Azure as it is.
    let writes_off = Mode::of(stamp.spec.paused, stamp.spec.management_policy) == Mode::Observe;
    if stamp.spec.deletion_policy == DeletionPolicy::Orphan || created_nothing || writes_off {
        return Ok(Action::await_change());
    }
    let Ok((plan, _)) = plan_for(ctx, stamp).await? else {
        // Without a plan there is nothing we can identify safely; leave Azure as it is.
        tracing::warn!(stamp = %stamp.name_any(), "deleting a stamp that cannot be planned: Azure resources are left in place");
        return Ok(Action::await_change());
    };
    if let Some(left) = drain(api, stamp, ctx, &plan, &status).await? {
        return Err(Error::InProgress(format!(
            "draining Front Door's origin for stamp {}: {}s left",
            stamp.name_any(),
            left.as_secs()
        )));
    }
    let wait = ctx.settings.inline_wait;
    // Front Door stops sending traffic first, then the stamp goes; an owned resource group takes
    // everything in it along.
    let origin_gone = tear_down(
        &ctx.arm,
        &plan.graph,
        |r| r.component == Component::FrontDoorOrigin,
        wait,
    )
    .await?;
    let rest_gone = origin_gone
        && if plan.owns_resource_group {
            tear_down(
                &ctx.arm,
                &plan.graph,
                |r| r.component == Component::ResourceGroup,
                wait,
            )
            .await?
        } else {
            tear_down(&ctx.arm, &plan.graph, |_| true, wait).await?
        };
    if rest_gone {
        Ok(Action::await_change())
    } else {
        let deleting = StampStatus {
            phase: Some("Deleting".into()),
            ..status
        };
        write_status(api, stamp, &deleting).await?;
        Err(Error::InProgress(format!(
            "deleting stamp {}",
            stamp.name_any()
        )))
    }
}
