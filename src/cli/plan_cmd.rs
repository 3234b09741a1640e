//! `stamp-operator plan`: read manifests, plan them, print the result.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{CliError, OutputFormat};
use crate::api::manifest::{parse_manifests, Manifest};
use crate::plan::bundle::{flow_tables, FlowTable};
use crate::plan::flows::Expect;
use crate::plan::{plan_bundle, AddressPlan, Bundle, BundlePlan, DesiredGraph};

fn read(path: &PathBuf) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })
}

/// Loads the files into a bundle.
pub fn load(files: &[PathBuf]) -> Result<Bundle, CliError> {
    let mut bundle = Bundle::default();
    for path in files {
        let text = read(path)?;
        let manifests = parse_manifests(&text).map_err(|source| CliError::Manifest {
            path: path.clone(),
            source,
        })?;
        for manifest in manifests {
            match manifest {
                Manifest::GlobalPlane(gp) => bundle
                    .global_planes
                    .push((gp.metadata.name.clone().unwrap_or_default(), gp.spec)),
                Manifest::Stamp(st) => {
                    let ns = st
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    bundle
                        .stamps
                        .push((ns, st.metadata.name.clone().unwrap_or_default(), st.spec));
                }
                Manifest::PrivateEndpointSet(set) => {
                    let ns = set
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    bundle.endpoint_sets.push((
                        ns,
                        set.metadata.name.clone().unwrap_or_default(),
                        set.spec,
                    ));
                }
            }
        }
    }
    Ok(bundle)
}

pub(super) fn run(files: &[PathBuf], output: OutputFormat, flows: bool) -> Result<(), CliError> {
    let bundle = load(files)?;
    let plan = plan_bundle(&bundle);
    let errors = plan.errors();
    if !errors.is_empty() {
        let text: Vec<String> = errors
            .iter()
            .map(|(kind, name, e)| format!("{kind} {name}: {e}"))
            .collect();
        return Err(CliError::Plan(text.join("\n")));
    }
    if flows {
        return run_flows(&bundle, &plan, output);
    }
    let rendered = match output {
        OutputFormat::Table => render_table(&plan),
        OutputFormat::Json => serde_json::to_string_pretty(&to_json(&plan))
            .map_err(|e| CliError::Output(e.to_string()))?,
    };
    println!("{rendered}");
    Ok(())
}

fn run_flows(bundle: &Bundle, plan: &BundlePlan, output: OutputFormat) -> Result<(), CliError> {
    let tables = flow_tables(bundle, plan);
    let rendered = match output {
        OutputFormat::Table => render_flows(&tables),
        OutputFormat::Json => serde_json::to_string_pretty(&flows_json(&tables))
            .map_err(|e| CliError::Output(e.to_string()))?,
    };
    println!("{rendered}");
    let broken: Vec<String> = tables
        .iter()
        .flat_map(|(title, table)| match table {
            Ok(results) => results
                .iter()
                .filter(|r| !r.holds())
                .map(|r| format!("{title}: {}", r.describe()))
                .collect::<Vec<_>>(),
            Err(why) => vec![format!("{title}: cannot be evaluated: {why}")],
        })
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        Err(CliError::Plan(broken.join("\n")))
    }
}

/// Flow tables for people: one line per flow, what it should do, what it does, and why.
pub fn render_flows(tables: &[FlowTable]) -> String {
    let mut out = String::new();
    for (title, table) in tables {
        let _ = writeln!(out, "Flows of {title}");
        match table {
            Err(why) => {
                let _ = writeln!(out, "  cannot be evaluated: {why}");
            }
            Ok(results) => {
                let _ = writeln!(
                    out,
                    "  {:<4} {:<8} {:<8} {:<72} DECIDED BY",
                    "OK", "EXPECT", "VERDICT", "FLOW"
                );
                for r in results {
                    let expect = match r.flow.expect {
                        Expect::Allowed => "allow",
                        Expect::Denied => "deny",
                    };
                    let verdict = if r.verdict.allowed {
                        "allowed"
                    } else {
                        "denied"
                    };
                    let ok = if r.holds() { "ok" } else { "FAIL" };
                    let _ = writeln!(
                        out,
                        "  {ok:<4} {expect:<8} {verdict:<8} {:<72} {}",
                        r.flow.name, r.verdict.decided_by
                    );
                }
            }
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}

fn flows_json(tables: &[FlowTable]) -> Value {
    json!(tables
        .iter()
        .map(|(title, table)| match table {
            Err(why) => json!({ "network": title, "error": why }),
            Ok(results) => json!({
                "network": title,
                "flows": results.iter().map(|r| json!({
                    "flow": r.flow.name,
                    "from": r.flow.from.address.to_string(),
                    "to": r.flow.to.address.to_string(),
                    "fqdn": r.flow.to.fqdn,
                    "protocol": r.flow.protocol.label(),
                    "port": r.flow.port,
                    "expect": if r.flow.expect == Expect::Allowed { "Allowed" } else { "Denied" },
                    "allowed": r.verdict.allowed,
                    "holds": r.holds(),
                    "decidedBy": r.verdict.decided_by,
                })).collect::<Vec<_>>(),
            }),
        })
        .collect::<Vec<_>>())
}

fn address_json(plan: &AddressPlan) -> Value {
    json!({
        "addressSpace": plan.space.to_string(),
        "subnets": plan.subnets.iter().map(|s| json!({
            "role": s.role.label(), "name": s.role.azure_name(), "cidr": s.cidr.to_string(), "usable": s.usable(), "given": s.given,
        })).collect::<Vec<_>>(),
    })
}

fn graph_json(graph: &DesiredGraph) -> Value {
    let waves = graph.waves();
    json!({
        "resources": graph.resources.iter().zip(waves).map(|(r, wave)| json!({
            "id": r.id, "type": r.kind.arm_type(), "apiVersion": r.kind.api_version(), "component": r.component,
            "ownership": r.ownership, "wave": wave, "dependsOn": r.depends_on, "body": r.body,
        })).collect::<Vec<_>>(),
        "requires": graph.requires,
    })
}

/// The plan as JSON for machines.
pub fn to_json(plan: &BundlePlan) -> Value {
    json!({
        "globalPlanes": plan.global_planes.iter().filter_map(|(name, p)| p.as_ref().ok().map(|p| json!({
            "name": name,
            "operationsNetworks": p.operations_networks.iter().map(|o| json!({ "region": o.region, "addressPlan": address_json(&o.address) })).collect::<Vec<_>>(),
            "graph": graph_json(&p.graph),
        }))).collect::<Vec<_>>(),
        "stamps": plan.stamps.iter().filter_map(|(name, p)| p.as_ref().ok().map(|p| json!({
            "name": name,
            "addressPlan": address_json(&p.address),
            "firewallPrivateIp": p.firewall_private_ip.to_string(),
            "loadBalancerIp": p.load_balancer_ip.to_string(),
            "privateLinkService": p.private_link_service,
            "frontDoorOrigin": p.front_door_origin,
            "requestMessage": p.request_message,
            "graph": graph_json(&p.graph),
        }))).collect::<Vec<_>>(),
        "privateEndpointSets": plan.endpoint_sets.iter().filter_map(|(name, p)| p.as_ref().ok().map(|p| json!({
            "name": name,
            "addresses": p.addresses,
            "endpoints": p.endpoints.iter().map(|e| json!({ "name": e.name, "id": e.id, "zone": e.zone, "addresses": e.addresses, "fqdns": e.fqdns })).collect::<Vec<_>>(),
            "graph": graph_json(&p.graph),
        }))).collect::<Vec<_>>(),
    })
}

fn write_address(out: &mut String, plan: &AddressPlan) {
    let _ = writeln!(out, "  Address plan {}", plan.space);
    let _ = writeln!(
        out,
        "    {:<18} {:<24} {:<18} {:>7}  SOURCE",
        "ROLE", "SUBNET", "CIDR", "USABLE"
    );
    for s in &plan.subnets {
        let source = if s.given { "given" } else { "carved" };
        let _ = writeln!(
            out,
            "    {:<18} {:<24} {:<18} {:>7}  {}",
            s.role.label(),
            s.role.azure_name(),
            s.cidr.to_string(),
            s.usable(),
            source
        );
    }
}

fn write_graph(out: &mut String, graph: &DesiredGraph) {
    let _ = writeln!(
        out,
        "  Resources ({}, in apply order; same wave = parallel)",
        graph.resources.len()
    );
    let _ = writeln!(
        out,
        "    {:>4} {:<4} {:<56} {:<44} API VERSION",
        "#", "WAVE", "TYPE", "NAME"
    );
    for (i, (r, wave)) in graph.resources.iter().zip(graph.waves()).enumerate() {
        let observed = if r.ownership == crate::plan::Ownership::Observed {
            " (observed)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    {:>4} {:<4} {:<56} {:<44} {}{}",
            i + 1,
            wave,
            r.kind.arm_type(),
            r.id.name(),
            r.kind.api_version(),
            observed
        );
    }
    for id in &graph.requires {
        let _ = writeln!(out, "    requires {id}");
    }
}

/// The plan as tables for people.
pub fn render_table(plan: &BundlePlan) -> String {
    let mut out = String::new();
    for (name, p) in &plan.global_planes {
        let Ok(p) = p else { continue };
        let _ = writeln!(out, "GlobalPlane {name}");
        for ops in &p.operations_networks {
            let _ = writeln!(out, "  Operations network {}", ops.region);
            write_address(&mut out, &ops.address);
        }
        write_graph(&mut out, &p.graph);
        out.push('\n');
    }
    for (name, p) in &plan.stamps {
        let Ok(p) = p else { continue };
        let _ = writeln!(out, "Stamp {name}");
        write_address(&mut out, &p.address);
        let _ = writeln!(
            out,
            "  Firewall private IP {} · load balancer IP {} · request message \"{}\"",
            p.firewall_private_ip, p.load_balancer_ip, p.request_message
        );
        write_graph(&mut out, &p.graph);
        out.push('\n');
    }
    for (name, p) in &plan.endpoint_sets {
        let Ok(p) = p else { continue };
        let _ = writeln!(out, "PrivateEndpointSet {name} ({} addresses)", p.addresses);
        let _ = writeln!(out, "    {:<20} {:<40} FQDN", "ENDPOINT", "ZONE");
        for e in &p.endpoints {
            let _ = writeln!(
                out,
                "    {:<20} {:<40} {}",
                e.name,
                e.zone,
                e.fqdns.join(", ")
            );
        }
        write_graph(&mut out, &p.graph);
        out.push('\n');
    }
    out.trim_end().to_string()
}
