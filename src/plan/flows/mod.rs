//! Flow evaluation, offline: whether a packet from one place reaches another through the
//! network security groups, routes and firewall rules the planner wrote (or that Azure holds),
//! and which rule decided — what Network Watcher's IP flow verify and next hop answer for a live
//! network, before anything exists.
//!
//! The model is built from ARM bodies ([`model`]), so the same evaluation serves a plan and
//! the live resources. Where Azure's documentation leaves a choice open, the evaluation takes
//! the reading that makes a required flow harder to allow and a forbidden one easier to allow.

pub mod catalogue;
mod endpoint;
mod evaluate;
mod firewall;
pub mod model;
mod ports;
mod security;

pub use catalogue::{
    operations_flows, operations_network, planned_bodies, stamp_flows, stamp_network,
    StampFlowInput,
};
pub use endpoint::{Endpoint, Protocol};
pub use model::Network;

/// What a flow should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The architecture needs it.
    Allowed,
    /// The architecture forbids it.
    Denied,
}

/// One flow to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// What it is, in words (`AKS node → mcr.microsoft.com:443 via the firewall`).
    pub name: String,
    /// Where it starts.
    pub from: Endpoint,
    /// Where it goes.
    pub to: Endpoint,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
    /// What it should do.
    pub expect: Expect,
}

/// The answer for one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the packet arrives.
    pub allowed: bool,
    /// The rule or route that decided (`nsg-x-app: DenyAllInbound (4096, Inbound)`).
    pub decided_by: String,
}

/// A flow with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResult {
    /// The flow.
    pub flow: Flow,
    /// The verdict.
    pub verdict: Verdict,
}

impl FlowResult {
    /// Whether the flow does what it should.
    pub fn holds(&self) -> bool {
        self.verdict.allowed == (self.flow.expect == Expect::Allowed)
    }

    /// One line for a report: `forbidden flow X is allowed by Y`.
    pub fn describe(&self) -> String {
        let (kind, outcome) = match (self.flow.expect, self.verdict.allowed) {
            (Expect::Allowed, true) => ("required", "allowed"),
            (Expect::Allowed, false) => ("required", "denied"),
            (Expect::Denied, true) => ("forbidden", "allowed"),
            (Expect::Denied, false) => ("forbidden", "denied"),
        };
        format!(
            "{kind} flow {} is {outcome} by {}",
            self.flow.name, self.verdict.decided_by
        )
    }
}

/// Evaluates `flows` against `network`.
pub fn evaluate_all(network: &Network, flows: Vec<Flow>) -> Vec<FlowResult> {
    flows
        .into_iter()
        .map(|flow| FlowResult {
            verdict: network.evaluate(&flow),
            flow,
        })
        .collect()
}
