//! The Stamp reconciler: plan, converge, approve Front Door's private-link connection, report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::{json, Value};

use super::conditions::{merge, ready, Verdict};
use super::converge::{tear_down, Convergence, Freshness, Mode};
use super::lifecycle;
use super::{next_look, persist, write_status, Context, Error, Progress, Result, Settled};
use crate::api::{
    ApprovalMode, DeletionPolicy, GlobalPlane, HasConditions, PlannedSubnet, PrivateLinkConnection,
    PrivateLinkServiceMode, Stamp, StampOutputs, StampSpec, StampStatus,
    UnexpectedConnectionAction,
};
use crate::azure::PutOutcome;
use crate::plan::approval::{self, ApprovalPolicy, Connection, Decision};
use crate::plan::endpoints::zones_needed;
use crate::plan::flows::{evaluate_all, stamp_flows, stamp_network, Expect, StampFlowInput};
use crate::plan::{
    plan_stamp, Component, GlobalPlaneInput, ResourceKind, StampInput, StampObservations,
    StampPlan, SubnetRole,
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
    let firewall_private_ip = stamp
        .status
        .as_ref()
        .and_then(|s| s.outputs.as_ref())
        .and_then(|o| o.firewall_private_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let global_input = GlobalPlaneInput {
        name: &stamp.spec.global_plane_ref.name,
        spec: &global.spec,
    };
    let input = StampInput {
        namespace: &ns,
        name: &name,
        spec: &stamp.spec,
    };
    let plan_with = |request_message: Option<String>| {
        let seen = StampObservations {
            firewall_private_ip,
            request_message,
        };
        plan_stamp(input, global_input, &zones, &seen)
    };
    let key = super::backoff_key(stamp);
    let known_message = ctx.request_messages().get(&key).cloned();
    let plan = match known_message {
        Some(message) => plan_with(Some(message)),
        // The origin's id comes from the plan; the message it carries decides the plan's.
        None => match plan_with(None) {
            Ok(first) => {
                let message = request_message(ctx, &first.front_door_origin).await?;
                ctx.request_messages().insert(key, message.clone());
                plan_with(Some(message))
            }
            Err(e) => Err(e),
        },
    };
    Ok(match plan {
        Ok(plan) => Ok((plan, global)),
        Err(e) => Err(Verdict::not("AddressPlan", "InvalidSpec", e.to_string())),
    })
}

/// The stamp's secret request message: the one its origin in Azure already carries, if this
/// operator generated it, so that a restart keeps it; otherwise 128 fresh random bits (a v4
/// UUID's, from the system's CSPRNG). It is kept only in Azure (the origin, and the connection
/// Front Door opens) and in this process, never in status or logs.
async fn request_message(ctx: &Context, origin: &crate::plan::ArmId) -> Result<String> {
    let live = ctx
        .arm
        .get(origin.as_str(), ResourceKind::FrontDoorOrigin.api_version())
        .await?;
    let kept = live.and_then(|l| {
        l.body
            .pointer("/properties/sharedPrivateLinkResource/requestMessage")
            .and_then(Value::as_str)
            .filter(|m| approval::is_generated_message(m))
            .map(str::to_string)
    });
    Ok(kept
        .unwrap_or_else(|| approval::request_message(&uuid::Uuid::new_v4().simple().to_string())))
}

/// The connections on a Private Link Service's live body.
fn connections_of(pls: &Value) -> Vec<Connection> {
    let text = |c: &Value, pointer: &str| {
        c.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    pls.pointer("/properties/privateEndpointConnections")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| Connection {
            id: text(c, "/id"),
            name: text(c, "/name"),
            state: text(c, "/properties/privateLinkServiceConnectionState/status"),
            description: text(
                c,
                "/properties/privateLinkServiceConnectionState/description",
            ),
        })
        .collect()
}

/// Identifies Front Door's connection on the stamp's Private Link Service, approves or rejects
/// as the GlobalPlane's policy says (when writes are allowed), and reports. A decision written
/// is recorded in `conv` as this operator's own change.
async fn private_link(
    ctx: &Context,
    stamp: &Stamp,
    plan: &StampPlan,
    global: &GlobalPlane,
    conv: &mut Convergence,
    mode: Mode,
) -> (Verdict, Option<PrivateLinkConnection>) {
    let Some(cached) = conv.live_of(plan.private_link_service.as_str()).cloned() else {
        return (
            Verdict::not(
                "PrivateLinkApproved",
                "Provisioning",
                "the Private Link Service is not ready",
            ),
            None,
        );
    };
    let policy = &global.spec.private_link_approval;
    let created = stamp.spec.ingress.private_link_service.mode == PrivateLinkServiceMode::Create;
    let approval_policy = ApprovalPolicy {
        approve: policy.mode == ApprovalMode::ApproveMatching && mode == Mode::Manage,
        reject_others: created
            && policy.unexpected == UnexpectedConnectionAction::Reject
            && mode == Mode::Manage,
        guards_others: created,
    };
    let owner = super::owner_of(stamp);
    let remembered = stamp
        .status
        .as_ref()
        .and_then(|s| s.private_link_connection.as_ref())
        .map(|c| c.name.clone());
    let judge = |pls: &Value| {
        approval::assess(
            &connections_of(pls),
            &plan.request_message,
            remembered.as_deref(),
            owner.as_str(),
            approval_policy,
        )
    };
    let mut assessment = judge(&cached);
    // Front Door opens its connection minutes after the origin is written: until one is
    // approved, what a pass remembered of the service is read again.
    if assessment
        .ours
        .as_ref()
        .is_none_or(|c| c.state != "Approved")
    {
        match ctx
            .arm
            .get(
                plan.private_link_service.as_str(),
                ResourceKind::PrivateLinkService.api_version(),
            )
            .await
        {
            Ok(Some(fresh)) => assessment = judge(&fresh.body),
            Ok(None) => {}
            Err(e) => {
                return (
                    Verdict::not("PrivateLinkApproved", "AzureError", e.to_string()),
                    None,
                )
            }
        }
    }
    let mut ours = assessment.ours.clone();
    let mut failure = None;
    let mut intruders = assessment.intruders.clone();
    for decision in &assessment.decisions {
        let (id, word) = match decision {
            Decision::Approve(id) => (id, "Approved"),
            Decision::Reject(id) => (id, "Rejected"),
        };
        match decide(ctx, id, word, owner.as_str()).await {
            Ok(()) => {
                conv.touched.insert(id.to_ascii_lowercase());
                if let Some(c) = ours.as_mut().filter(|c| &c.id == id) {
                    c.state = word.to_string();
                }
                if let Some(name) = intruder_named(&assessment.intruders, id) {
                    intruders.retain(|n| n != name);
                }
            }
            Err(e) => {
                failure.get_or_insert(format!("{word} of {id} failed: {e}"));
            }
        }
    }
    let verdict = match intruders.as_slice() {
        [] => approval_verdict(ours.as_ref(), &assessment.impostors, failure),
        left => Verdict::not(
            "PrivateLinkApproved",
            "UnexpectedConnectionsApproved",
            format!(
                "connection(s) {} on the stamp's Private Link Service were approved by someone else: a private path around Front Door and its WAF{}",
                left.join(", "),
                failure.map(|f| format!("; {f}")).unwrap_or_default()
            ),
        ),
    };
    let told_before = stamp
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "PrivateLinkApproved")
        })
        .is_some_and(|c| c.message == verdict.message);
    if !assessment.impostors.is_empty() && !told_before {
        super::announce(
            ctx,
            stamp,
            true,
            "UnexpectedRequester",
            format!(
                "connection(s) {} on the stamp's Private Link Service carry its secret request message but are not Front Door's: not approved",
                assessment.impostors.join(", ")
            ),
        )
        .await;
    }
    // Turned back now (told once: they stay Rejected), or still there (told when the
    // condition changes).
    if !assessment.intruders.is_empty() && (intruders.is_empty() || !told_before) {
        super::announce(
            ctx,
            stamp,
            true,
            "UnexpectedConnectionApproved",
            format!(
                "connection(s) {} on the stamp's Private Link Service were approved by someone else{}",
                assessment.intruders.join(", "),
                if intruders.is_empty() { ": rejected" } else { "" }
            ),
        )
        .await;
    }
    let connection = ours.map(|c| PrivateLinkConnection {
        name: c.name,
        state: c.state,
        request_message: None,
    });
    (verdict, connection)
}

/// The name of the intruder whose connection id is `id`.
fn intruder_named<'a>(intruders: &'a [String], id: &str) -> Option<&'a String> {
    let name = id.rsplit('/').next()?;
    intruders.iter().find(|n| n.eq_ignore_ascii_case(name))
}

/// Approves or rejects one connection. Azure answers 200 at once (the operation is
/// synchronous: privateLinkService.json, `PrivateLinkServices_UpdatePrivateEndpointConnection`
/// has no `x-ms-long-running-operation`); a 201/202 with an operation is waited for all the same.
async fn decide(ctx: &Context, id: &str, word: &str, owner: &str) -> Result<()> {
    let body = json!({ "properties": { "privateLinkServiceConnectionState": {
        "status": word,
        "description": approval::decision_note(word, owner),
        "actionsRequired": "None"
    } } });
    let api_version = ResourceKind::PrivateLinkService.api_version();
    if let PutOutcome::Started(op) = ctx.arm.put(id, api_version, &body, None).await? {
        ctx.arm.wait(&op).await?;
    }
    Ok(())
}

/// The `PrivateLinkApproved` condition.
fn approval_verdict(
    ours: Option<&Connection>,
    impostors: &[String],
    failure: Option<String>,
) -> Verdict {
    const KIND: &str = "PrivateLinkApproved";
    match (ours, failure) {
        (_, Some(why)) => Verdict::not(KIND, "ApprovalFailed", why),
        (Some(c), None) if c.state == "Approved" && impostors.is_empty() => Verdict::ok(
            KIND,
            "Approved",
            format!("Front Door's connection {} is approved", c.name),
        ),
        (Some(c), None) if c.state == "Approved" => Verdict::ok(
            KIND,
            "ApprovedWithUnexpectedRequesters",
            format!(
                "Front Door's connection {} is approved; {} also used the stamp's secret request message and were not approved",
                c.name,
                impostors.join(", ")
            ),
        ),
        (Some(c), None) => Verdict::not(
            KIND,
            &c.state,
            format!("Front Door's connection {} is {}", c.name, c.state),
        ),
        (None, None) if !impostors.is_empty() => Verdict::not(
            KIND,
            "UnexpectedRequesters",
            format!(
                "{} requested a connection with the stamp's secret request message: which is Front Door's cannot be told, so none is approved",
                impostors.join(", ")
            ),
        ),
        (None, None) => Verdict::not(
            KIND,
            "Pending",
            "no connection from this GlobalPlane's Front Door yet",
        ),
    }
}

/// Whether anything public appeared that the design forbids.
fn isolation(
    plan: &StampPlan,
    spec: &StampSpec,
    conv: &Convergence,
    firewall_ip: Option<&str>,
) -> Verdict {
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
    // A rule collection group the spec dropped still allows what it allowed until it is gone.
    if let Some(rules) = conv
        .removing
        .iter()
        .find(|id| id.to_ascii_lowercase().contains("/rulecollectiongroups/"))
    {
        return Verdict::not(
            "NetworkIsolated",
            "RulesBeingRemoved",
            format!("the firewall still allows what {rules} allows, which the spec dropped"),
        );
    }
    if conv.removal_error.is_some() {
        return Verdict::not(
            "NetworkIsolated",
            "RemovalFailed",
            "what the spec dropped could not be removed, so the firewall may allow more than the spec says",
        );
    }
    flow_isolation(plan, spec, conv)
}

/// Every flow the architecture forbids, evaluated against the network as Azure holds it: the
/// body this pass read where it read one (drift included), the planned body where the pass
/// found Azure matching the plan. The first forbidden flow that gets through is named.
fn flow_isolation(plan: &StampPlan, spec: &StampSpec, conv: &Convergence) -> Verdict {
    let body = |id: &str| conv.held_body(&plan.graph, id);
    let network = match stamp_network(plan, &body) {
        Ok(network) => network,
        Err(why) => {
            return Verdict::not(
                "NetworkIsolated",
                "Provisioning",
                format!("the flows cannot be judged yet: {why}"),
            )
        }
    };
    let flows = stamp_flows(StampFlowInput {
        plan,
        spec,
        neighbours: &[],
    });
    let results = evaluate_all(&network, flows);
    if let Some(leak) = results
        .iter()
        .find(|r| r.flow.expect == Expect::Denied && r.verdict.allowed)
    {
        return Verdict::not("NetworkIsolated", "ForbiddenFlowAllowed", leak.describe());
    }
    let forbidden = results
        .iter()
        .filter(|r| r.flow.expect == Expect::Denied)
        .count();
    Verdict::ok(
        "NetworkIsolated",
        "Isolated",
        format!("no public endpoint, default outbound access off, egress only through the firewall; the {forbidden} forbidden flows checked are denied"),
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
    let (mut plan, global) = match plan_for(ctx, stamp).await? {
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
    ctx.observe_foreign_groups(&mut plan.graph, stamp).await?;
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
        // `…/{type}/{name}: path` → `Repair {type}/{name}`: one series per resource.
        let resource = repaired.split(": ").next().unwrap_or_default();
        let short: Vec<&str> = resource.rsplit('/').take(2).collect();
        super::announce_about(
            ctx,
            stamp,
            true,
            "DriftRepaired",
            &format!("Repair {}/{}", short.get(1).unwrap_or(&""), short[0]),
            format!("Azure differed from the spec, which was written back: {repaired}"),
        )
        .await;
        tracing::info!(stamp = %stamp.name_any(), %repaired, "repaired drift");
    }
    let (approval, connection) = private_link(ctx, stamp, &plan, &global, &mut conv, mode).await;
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
        isolation(
            &plan,
            &stamp.spec,
            &conv,
            outputs.firewall_private_ip.as_deref(),
        ),
        conv.removal_verdict(),
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

/// Whether a listing entry is a private endpoint one of `stamp`'s sets created in it.
fn endpoint_of(entry: &Value, stamp: &Stamp) -> bool {
    let stamp_tag = format!(
        "{}/{}",
        stamp.namespace().unwrap_or_default(),
        stamp.name_any()
    );
    entry["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case(ResourceKind::PrivateEndpoint.arm_type()))
        && entry["tags"]["missioncritical.dev/stamp"].as_str() == Some(stamp_tag.as_str())
}

/// Deletes a stamp that can no longer be planned (its GlobalPlane deleted first with
/// `deletionPolicy: Orphan`, or now refusing it) from what its status recorded: its origin
/// in Front Door, then what it created in its resource group. Nothing is left behind silently:
/// without a record of where it lived, deletion stops and says so.
async fn cleanup_unplanned(
    api: &Api<Stamp>,
    stamp: &Stamp,
    ctx: &Context,
    status: StampStatus,
) -> Result<Action> {
    let outputs = status.outputs.clone().unwrap_or_default();
    let Some(group) = outputs
        .resource_group_id
        .as_deref()
        .and_then(|id| crate::plan::ArmId::parse_group("status.outputs.resourceGroupId", id).ok())
    else {
        return Err(Error::InProgress(format!(
            "stamp {} cannot be planned and its status records no resource group: delete what it created by hand, then remove the finalizer",
            stamp.name_any()
        )));
    };
    let wait = ctx.settings.inline_wait;
    let origin_gone = match outputs.front_door_origin_id.as_deref() {
        Some(origin) => matches!(
            ctx.arm
                .delete(origin, ResourceKind::FrontDoorOrigin.api_version())
                .await?,
            crate::azure::DeleteOutcome::Gone
        ),
        None => true,
    };
    let owner = super::owner_of(stamp);
    let gone = origin_gone
        && lifecycle::remove_listed(&ctx.arm, &group, |e| endpoint_of(e, stamp), wait).await?
        && lifecycle::remove_owned(&ctx.arm, &group, &owner, wait).await?;
    if gone {
        return Ok(Action::await_change());
    }
    still_deleting(api, stamp, status, "from what its status recorded").await
}

/// Marks a stamp whose deletion goes on as `Deleting` and asks for another look.
async fn still_deleting(
    api: &Api<Stamp>,
    stamp: &Stamp,
    status: StampStatus,
    how: &str,
) -> Result<Action> {
    let deleting = StampStatus {
        phase: Some("Deleting".into()),
        ..status
    };
    write_status(api, stamp, &deleting).await?;
    Err(Error::InProgress(format!(
        "deleting stamp {} {how}",
        stamp.name_any()
    )))
}

/// Whether the stamp's resource group is its own (created by this operator for it), so that
/// deleting it takes everything in it along. A group named in the spec, or one that existed
/// before, is only observed: then only what the stamp created in it is deleted.
fn owns_group(plan: &StampPlan) -> bool {
    plan.graph.resources.iter().any(|r| {
        r.kind == crate::plan::ResourceKind::ResourceGroup
            && r.ownership == crate::plan::Ownership::Managed
    })
}

async fn cleanup(api: &Api<Stamp>, stamp: &Stamp, ctx: &Context) -> Result<Action> {
    ctx.forget(&super::backoff_key(stamp));
    let status = stamp.status.clone().unwrap_or_default();
    // Orphan, and a stamp whose writes are off (paused, ObserveOnly), leave Azure as it is.
    let writes_off = Mode::of(stamp.spec.paused, stamp.spec.management_policy) == Mode::Observe;
    if stamp.spec.deletion_policy == DeletionPolicy::Orphan || writes_off {
        return Ok(Action::await_change());
    }
    // A plannable stamp is deleted whatever its status says: status is written some seconds
    // after the writes it reports, so "nothing recorded" does not mean "nothing created" (and
    // deleting what is absent costs a 404 each).
    let Ok((mut plan, _)) = plan_for(ctx, stamp).await? else {
        if status.outputs.is_none() && status.in_flight.is_empty() {
            // Never planned (a GlobalPlane that never existed, a namespace never admitted):
            // nothing was created.
            return Ok(Action::await_change());
        }
        return cleanup_unplanned(api, stamp, ctx, status).await;
    };
    ctx.observe_foreign_groups(&mut plan.graph, stamp).await?;
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
    let owner = super::owner_of(stamp);
    let rest_gone = origin_gone
        && if owns_group(&plan) {
            tear_down(
                &ctx.arm,
                &plan.graph,
                |r| r.component == Component::ResourceGroup,
                wait,
            )
            .await?
        } else {
            // In a group it does not own, the stamp deletes its sets' private endpoints first:
            // Kubernetes collects the sets only after the stamp is gone, and Azure refuses to
            // delete a VNet whose subnet still holds them (`InUseSubnetCannotBeDeleted`).
            lifecycle::remove_listed(
                &ctx.arm,
                &plan.resource_group,
                |e| endpoint_of(e, stamp),
                wait,
            )
            .await?
                && tear_down(&ctx.arm, &plan.graph, |_| true, wait).await?
                && lifecycle::remove_owned(&ctx.arm, &plan.resource_group, &owner, wait).await?
        };
    if rest_gone {
        Ok(Action::await_change())
    } else {
        still_deleting(api, stamp, status, "from its plan").await
    }
}
