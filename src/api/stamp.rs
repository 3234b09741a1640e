//! `Stamp`: one regional, ephemeral deployment stamp — its own VNet behind Azure Firewall,
//! reachable only through Front Door over Private Link.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    default_true, CidrBlock, DeletionPolicy, GlobalPlaneRef, HasConditions, InFlightOperation,
    ManagementPolicy, Verification,
};

/// Desired state of a regional deployment stamp.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "missioncritical.dev",
    version = "v1alpha1",
    kind = "Stamp",
    namespaced,
    status = "StampStatus",
    shortname = "st",
    category = "missioncritical",
    doc = "A regional deployment stamp: a VNet whose only egress is Azure Firewall, whose only ingress is Front Door Premium over Private Link, and which reaches PaaS only through private endpoints.",
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Address Space", type_ = "string", json_path = ".spec.addressSpace"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Firewall IP", type_ = "string", json_path = ".status.outputs.firewallPrivateIp"),
    printcolumn(name = "Weight", type_ = "integer", json_path = ".spec.frontDoor.weight", priority = 1),
    printcolumn(name = "PLS Alias", type_ = "string", json_path = ".status.outputs.privateLinkServiceAlias", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("stamp names are at most 40 characters: Azure resource names are derived from them"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.subnets) || !has(self.subnets.app) || !isCIDR(self.subnets.app) || !isCIDR(self.addressSpace) || cidr(self.addressSpace).containsCIDR(self.subnets.app)").message("subnets.app must lie inside addressSpace"))]
#[x_kube(validation = Rule::new("!has(self.subnets) || !has(self.subnets.ingress) || !isCIDR(self.subnets.ingress) || !isCIDR(self.addressSpace) || cidr(self.addressSpace).containsCIDR(self.subnets.ingress)").message("subnets.ingress must lie inside addressSpace"))]
#[x_kube(validation = Rule::new("!has(self.subnets) || !has(self.subnets.firewall) || !isCIDR(self.subnets.firewall) || !isCIDR(self.addressSpace) || cidr(self.addressSpace).containsCIDR(self.subnets.firewall)").message("subnets.firewall must lie inside addressSpace"))]
#[x_kube(validation = Rule::new("!has(self.subnets) || !has(self.subnets.privateEndpoints) || !isCIDR(self.subnets.privateEndpoints) || !isCIDR(self.addressSpace) || cidr(self.addressSpace).containsCIDR(self.subnets.privateEndpoints)").message("subnets.privateEndpoints must lie inside addressSpace"))]
pub struct StampSpec {
    /// The GlobalPlane (Front Door, DNS, operations networks) this stamp joins. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("globalPlaneRef is immutable"))]
    pub global_plane_ref: GlobalPlaneRef,

    /// Azure region of the stamp, as ARM spells it (for example `westeurope`). Immutable.
    #[schemars(pattern(r"^[a-z][a-z0-9]{2,30}$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable: create a new stamp instead"))]
    pub region: String,

    /// IPv4 address space of the stamp's VNet, a private (RFC 1918) block of /24 or larger,
    /// for example `10.10.0.0/20`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("addressSpace is immutable: create a new stamp instead"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() <= 24").message("addressSpace must be /24 or larger to hold the app, ingress, firewall and private-endpoint subnets"))]
    pub address_space: CidrBlock,

    /// Existing resource group to deploy into. When omitted the operator creates
    /// `rg-<stamp>-<hash>` in the stamp's region and deletes it with the stamp. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 90),
        pattern(r"^[-a-zA-Z0-9_.()]*[-a-zA-Z0-9_()]$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("resourceGroup is immutable"))]
    pub resource_group: Option<String>,

    /// Subnet CIDRs; each one omitted is carved automatically from the address space. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("subnets are immutable: create a new stamp instead"))]
    pub subnets: Option<StampSubnets>,

    /// Egress: Azure Firewall is the only way out, with an FQDN allow list.
    #[serde(default)]
    pub egress: EgressSpec,

    /// Ingress: the Private Link Service in front of the stamp's internal load balancer.
    pub ingress: IngressSpec,

    /// This stamp's origin in the GlobalPlane's Front Door: shift traffic with `weight` and `enabled`.
    #[serde(default)]
    pub front_door: StampFrontDoor,

    /// `Delete` (default) removes every Azure resource the operator created when the stamp is
    /// deleted; `Orphan` leaves Azure untouched.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (default) converges Azure to the spec; `ObserveOnly` reads and reports, never writes.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// When true the operator stops writing to Azure for this stamp (reads and status go on).
    #[serde(default)]
    pub paused: bool,
}

/// Explicit subnet CIDRs. Each must lie inside the address space and not overlap the others.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StampSubnets {
    /// Application subnet for the AKS node pools (/27 or larger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<CidrBlock>,
    /// Ingress subnet for the internal load balancer and the Private Link Service (/29 or larger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<CidrBlock>,
    /// `AzureFirewallSubnet` (/26 or larger, as Azure requires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() <= 26").message("AzureFirewallSubnet must be /26 or larger"))]
    pub firewall: Option<CidrBlock>,
    /// Private-endpoint subnet; must hold every requested endpoint plus Azure's 5 reserved addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_endpoints: Option<CidrBlock>,
}

/// Azure Firewall SKU tier. Basic is not offered: it needs a management subnet and public IP
/// of its own and lacks threat-intelligence deny mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FirewallSku {
    /// Standard tier: FQDN filtering, threat intelligence, DNS proxy.
    #[default]
    Standard,
    /// Premium tier: adds TLS inspection and IDPS.
    Premium,
}

/// What the firewall does with traffic to known-malicious addresses and domains.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ThreatIntelMode {
    /// Alert only.
    Alert,
    /// Alert and deny (the default for a mission-critical stamp).
    #[default]
    Deny,
    /// Disabled.
    Off,
}

/// Optional, well-known groups of egress FQDNs.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum EgressGroup {
    /// Ubuntu security updates and changelogs for AKS nodes.
    UbuntuUpdates,
    /// Azure Monitor (Container insights, Application Insights).
    AzureMonitor,
    /// Azure Policy for AKS.
    AzurePolicy,
}

/// Application protocol of an FQDN allow rule.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FqdnProtocol {
    /// HTTPS (default port 443).
    #[default]
    Https,
    /// Plain HTTP (default port 80).
    Http,
    /// SQL TDS (default port 1433).
    Mssql,
}

/// One entry of the FQDN allow list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FqdnAllowRule {
    /// Rule name, unique in the list (becomes the Azure Firewall rule name).
    #[schemars(length(min = 1, max = 60), pattern(r"^[a-zA-Z0-9][-a-zA-Z0-9_.]*$"))]
    pub name: String,
    /// Fully qualified domain names; a leading `*.` allows every subdomain.
    #[schemars(
        length(min = 1, max = 100),
        inner(
            length(min = 1, max = 253),
            pattern(r"^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")
        )
    )]
    pub fqdns: Vec<String>,
    /// Protocol allowed to those FQDNs.
    #[serde(default)]
    pub protocol: FqdnProtocol,
    /// Destination port; defaults to the protocol's well-known port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

/// Egress through Azure Firewall: the route table sends 0.0.0.0/0 from the app subnet to the
/// firewall, and the firewall policy allows only what is listed here.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressSpec {
    /// Firewall SKU tier.
    #[serde(default)]
    pub firewall_sku: FirewallSku,
    /// Threat-intelligence mode of the firewall policy.
    #[serde(default)]
    pub threat_intel_mode: ThreatIntelMode,
    /// Enable the firewall's DNS proxy so FQDN rules resolve the same names the workload does.
    #[serde(default = "default_true")]
    pub dns_proxy: bool,
    /// Allow what AKS needs with outbound type userDefinedRouting (MCR, ARM, Entra ID, packages, NTP).
    #[serde(default = "default_true")]
    pub aks_required: bool,
    /// Optional well-known groups of FQDNs to allow as well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub optional_groups: Vec<EgressGroup>,
    /// The workload's own FQDN allow list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub allow: Vec<FqdnAllowRule>,
    /// Availability zones for the firewall and its public IP; `[]` for regions without zones.
    #[serde(default = "default_zones")]
    #[schemars(length(max = 3), inner(pattern(r"^[1-3]$")))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub availability_zones: Vec<String>,
}

impl Default for EgressSpec {
    fn default() -> Self {
        EgressSpec {
            firewall_sku: FirewallSku::default(),
            threat_intel_mode: ThreatIntelMode::default(),
            dns_proxy: true,
            aks_required: true,
            optional_groups: Vec::new(),
            allow: Vec::new(),
            availability_zones: default_zones(),
        }
    }
}

fn default_zones() -> Vec<String> {
    vec!["1".into(), "2".into(), "3".into()]
}

/// How the stamp's Private Link Service comes to exist.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PrivateLinkServiceMode {
    /// Adopt the Private Link Service AKS creates for the ingress controller's service
    /// (annotation `service.beta.kubernetes.io/azure-pls-create`); the operator never writes it.
    Adopt,
    /// Create a Private Link Service on a given internal load-balancer frontend.
    Create,
}

/// The Private Link Service Front Door connects to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Adopt' || has(self.resourceId)").message("mode Adopt needs resourceId: the ARM id of the Private Link Service AKS created"))]
#[x_kube(validation = Rule::new("self.mode != 'Create' || has(self.frontendIpConfigurationId)").message("mode Create needs frontendIpConfigurationId: the internal load balancer frontend to put the Private Link Service on"))]
pub struct PrivateLinkServiceSpec {
    /// `Adopt` an existing Private Link Service or `Create` one.
    pub mode: PrivateLinkServiceMode,
    /// ARM id of the Private Link Service to adopt (mode Adopt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 400))]
    pub resource_id: Option<String>,
    /// ARM id of the internal load balancer's frontend IP configuration (mode Create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 400))]
    pub frontend_ip_configuration_id: Option<String>,
}

/// Private ingress from Front Door.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// The Private Link Service in front of the internal load balancer.
    pub private_link_service: PrivateLinkServiceSpec,
    /// Private IP of the internal load balancer frontend, inside the ingress subnet; defaults to
    /// the subnet's first usable address. Front Door's origin host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"))]
    pub load_balancer_ip: Option<String>,
    /// Host header Front Door sends to the origin, and the name the origin's certificate must
    /// carry: the ingress FQDN. Required while Front Door reaches the origin over HTTPS (a route
    /// forwarding `HttpsOnly` or `MatchRequest`, or an HTTPS health probe — the defaults); only
    /// over plain HTTP does it default to the load-balancer IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub origin_host_header: Option<String>,
}

/// This stamp's Front Door origin: the knobs for traffic shifting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StampFrontDoor {
    /// Whether Front Door sends traffic to this stamp.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Relative weight among origins of the same priority (1–1000).
    #[serde(default = "default_weight")]
    #[schemars(range(min = 1, max = 1000))]
    pub weight: i32,
    /// Priority (1–5); lower is preferred, higher numbers are failover.
    #[serde(default = "default_priority")]
    #[schemars(range(min = 1, max = 5))]
    pub priority: i32,
}

impl Default for StampFrontDoor {
    fn default() -> Self {
        StampFrontDoor {
            enabled: true,
            weight: default_weight(),
            priority: default_priority(),
        }
    }
}

fn default_weight() -> i32 {
    50
}

fn default_priority() -> i32 {
    1
}

/// Observed state of a stamp.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StampStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One word for humans: Pending, Provisioning, Ready, Degraded, Deleting, InvalidSpec, Paused, Observing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready` plus one condition per component (AddressPlan, Network, Egress, Ingress,
    /// PrivateLink, PrivateLinkApproved, FrontDoorOrigin, NetworkIsolated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The subnets as planned (carved or given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_plan: Vec<PlannedSubnet>,
    /// Azure ids and key outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<StampOutputs>,
    /// The Front Door private-link connection on the stamp's Private Link Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_link_connection: Option<PrivateLinkConnection>,
    /// While deleting: when Front Door's origin for this stamp was disabled to drain (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining_since: Option<String>,
    /// Long-running Azure operations still in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlightOperation>,
    /// The last full check against Azure that found everything converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

impl HasConditions for StampStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// A subnet of the address plan, as reported in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedSubnet {
    /// Role of the subnet (App, Ingress, Firewall, PrivateEndpoints, …).
    pub role: String,
    /// Azure subnet name.
    pub name: String,
    /// CIDR block.
    pub cidr: String,
    /// Usable addresses after Azure's 5 reserved ones.
    pub usable: u32,
}

/// Azure ids and values other systems need.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StampOutputs {
    /// Resource group holding the stamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group_id: Option<String>,
    /// The stamp's VNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_network_id: Option<String>,
    /// Subnet ids by role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnet_ids: BTreeMap<String, String>,
    /// Azure Firewall's private IP: the next hop of the app subnet's default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_private_ip: Option<String>,
    /// The firewall's egress public IP (egress only; nothing listens on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall_public_ip: Option<String>,
    /// Private Link Service id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_link_service_id: Option<String>,
    /// Private Link Service alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_link_service_alias: Option<String>,
    /// Internal load-balancer frontend IP (the Front Door origin host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<String>,
    /// This stamp's origin in Front Door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_door_origin_id: Option<String>,
}

/// State of the Front Door connection on the stamp's Private Link Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateLinkConnection {
    /// Connection name on the Private Link Service.
    pub name: String,
    /// Pending, Approved, Rejected or Disconnected.
    pub state: String,
    /// Never set: Front Door's request message is a secret (anyone who knew it could ask
    /// for a connection that passes as Front Door's). Kept in the schema so that statuses
    /// written by earlier versions stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_message: Option<String>,
}
