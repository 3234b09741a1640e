//! `GlobalPlane`: the long-lived, shared part of an environment — Front Door Premium + WAF,
//! private DNS, the operations networks and the private-link approval policy.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    default_true, CidrBlock, DeletionPolicy, HasConditions, InFlightOperation, ManagementPolicy,
    Verification,
};
use super::stamp::FqdnAllowRule;

/// Desired state of the global resources of one environment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "missioncritical.dev",
    version = "v1alpha1",
    kind = "GlobalPlane",
    status = "GlobalPlaneStatus",
    shortname = "gp",
    category = "missioncritical",
    doc = "The global resources of one environment: Front Door Premium with WAF (the only public entry), private DNS zones, per-region operations networks, and the policy for approving private-link connections.",
    printcolumn(name = "Front Door Host", type_ = "string", json_path = ".status.frontDoorHostName"),
    printcolumn(name = "Stamps", type_ = "integer", json_path = ".status.stampCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("GlobalPlane names are at most 40 characters: Azure resource names are derived from them"),
)]
#[serde(rename_all = "camelCase")]
pub struct GlobalPlaneSpec {
    /// Azure subscription id (GUID) holding the global resources and every stamp. Immutable.
    #[schemars(pattern(
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("subscriptionId is immutable"))]
    pub subscription_id: String,

    /// Resource group of the global resources; created if missing. Immutable.
    #[schemars(
        length(min = 1, max = 90),
        pattern(r"^[-a-zA-Z0-9_.()]*[-a-zA-Z0-9_()]$")
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("resourceGroup is immutable"))]
    pub resource_group: String,

    /// Azure region of the global resource group's metadata (Front Door itself is global).
    #[schemars(pattern(r"^[a-z][a-z0-9]{2,30}$"))]
    pub location: String,

    /// Front Door Premium profile, endpoint, WAF, origin group and routes.
    pub front_door: FrontDoorSpec,

    /// Where the `privatelink.*` zones live.
    #[serde(default)]
    pub private_dns: PrivateDnsSpec,

    /// One private operations network per region (build agents, jump boxes, Bastion, private endpoints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["region"]))]
    pub operations_networks: Vec<OperationsNetworkSpec>,

    /// Which Front Door connections to a stamp's Private Link Service get approved.
    #[serde(default)]
    pub private_link_approval: PrivateLinkApprovalSpec,

    /// Subscriptions (besides `subscriptionId`) whose resources PrivateEndpointSets may target.
    /// Empty (the default) means only this GlobalPlane's own subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(pattern(
            r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_target_subscriptions: Vec<String>,

    /// Namespaces whose Stamps and PrivateEndpointSets may join this GlobalPlane — add an
    /// origin behind its public Front Door, or endpoints to its operations networks — as Cluster
    /// API Provider Azure's `AzureClusterIdentity.allowedNamespaces`. Absent: every namespace
    /// (as before this field existed; set it in production). `list: []`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,

    /// `Delete` (default) removes what the operator created; `Orphan` leaves Azure untouched.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Manage` (default) or `ObserveOnly`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// When true the operator stops writing to Azure for this GlobalPlane.
    #[serde(default)]
    pub paused: bool,
}

/// The namespaces allowed to join a GlobalPlane.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespace names.
    #[serde(default)]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub list: Vec<String>,
}

/// Front Door SKU. Only Premium can reach origins over Private Link.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types)]
pub enum FrontDoorSku {
    /// Standard tier (refused: no Private Link origins).
    Standard_AzureFrontDoor,
    /// Premium tier.
    #[default]
    Premium_AzureFrontDoor,
}

/// Front Door Premium: the only public entry point.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FrontDoorSpec {
    /// Must be `Premium_AzureFrontDoor`: Private Link origins need Premium.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 'Premium_AzureFrontDoor'").message("Front Door SKU must be Premium_AzureFrontDoor: private link origins need Premium"))]
    pub sku: FrontDoorSku,
    /// Endpoint name (the `<name>-<hash>.z01.azurefd.net` host); defaults to the GlobalPlane name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 46),
        pattern(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub endpoint_name: Option<String>,
    /// Seconds Front Door waits for an origin response (16–240).
    #[serde(default = "default_origin_timeout")]
    #[schemars(range(min = 16, max = 240))]
    pub origin_response_timeout_seconds: i32,
    /// Web Application Firewall policy.
    #[serde(default)]
    pub waf: WafSpec,
    /// Origin group holding one origin per stamp.
    #[serde(default)]
    pub origin_group: OriginGroupSpec,
    /// Routes from the endpoint to the origin group.
    #[serde(default = "default_routes")]
    #[schemars(length(min = 1, max = 25))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub routes: Vec<RouteSpec>,
}

fn default_origin_timeout() -> i32 {
    60
}

fn default_routes() -> Vec<RouteSpec> {
    vec![RouteSpec::default()]
}

/// WAF enforcement mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WafMode {
    /// Block matching requests (the default, and what the design requires).
    #[default]
    Prevention,
    /// Log only; the `NetworkIsolated` check reports it.
    Detection,
}

/// Action of a managed rule set.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagedRuleSetAction {
    /// Block.
    #[default]
    Block,
    /// Log.
    Log,
}

/// A managed rule set, such as `Microsoft_DefaultRuleSet` 2.1.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRuleSet {
    /// Rule set type (`Microsoft_DefaultRuleSet`, `Microsoft_BotManagerRuleSet`).
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z][A-Za-z0-9_]*$"))]
    pub rule_set_type: String,
    /// Rule set version (`2.1`, `1.0`, `1.1`).
    #[schemars(length(min = 1, max = 16), pattern(r"^[0-9]+(\.[0-9]+)*(_preview)?$"))]
    pub rule_set_version: String,
    /// Action when a rule matches (DefaultRuleSet 2.x and later).
    #[serde(default)]
    pub rule_set_action: ManagedRuleSetAction,
}

/// A rate-limit custom rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRule {
    /// Rule name (letters and digits, as Front Door WAF requires).
    #[schemars(length(min = 1, max = 128), pattern(r"^[a-zA-Z][a-zA-Z0-9]*$"))]
    pub name: String,
    /// Priority among custom rules (lower runs first).
    #[schemars(range(min = 1, max = 1000))]
    pub priority: i32,
    /// Requests allowed per client IP per window.
    #[schemars(range(min = 10, max = 1000000))]
    pub threshold: i32,
    /// Window length in minutes (1 or 5).
    #[serde(default = "default_rate_window")]
    #[schemars(range(min = 1, max = 5))]
    pub duration_minutes: i32,
    /// Only count requests whose path starts with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern(r"^/"))]
    pub path_prefix: Option<String>,
}

fn default_rate_window() -> i32 {
    1
}

/// Geo filter: only the listed countries may reach the endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeoFilter {
    /// Priority of the generated custom rule.
    #[serde(default = "default_geo_priority")]
    #[schemars(range(min = 1, max = 1000))]
    pub priority: i32,
    /// ISO 3166-1 alpha-2 country codes that are allowed; everything else is blocked.
    #[schemars(length(min = 1, max = 250), inner(pattern(r"^[A-Z]{2}$")))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_countries: Vec<String>,
}

fn default_geo_priority() -> i32 {
    100
}

/// Optional custom WAF rules.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomRules {
    /// Rate-limit rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub rate_limit: Vec<RateLimitRule>,
    /// Geo filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_filter: Option<GeoFilter>,
}

/// Front Door WAF policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WafSpec {
    /// `Prevention` (default) or `Detection`.
    #[serde(default)]
    pub mode: WafMode,
    /// Managed rule sets; defaults to Microsoft_DefaultRuleSet 2.1 and Microsoft_BotManagerRuleSet 1.0.
    #[serde(default = "default_managed_rule_sets")]
    #[schemars(length(max = 5))]
    pub managed_rule_sets: Vec<ManagedRuleSet>,
    /// Rate-limit and geo-filter rules.
    #[serde(default)]
    pub custom_rules: CustomRules,
    /// Inspect request bodies.
    #[serde(default = "default_true")]
    pub request_body_check: bool,
}

impl Default for WafSpec {
    fn default() -> Self {
        WafSpec {
            mode: WafMode::default(),
            managed_rule_sets: default_managed_rule_sets(),
            custom_rules: CustomRules::default(),
            request_body_check: true,
        }
    }
}

fn default_managed_rule_sets() -> Vec<ManagedRuleSet> {
    vec![
        ManagedRuleSet {
            rule_set_type: "Microsoft_DefaultRuleSet".into(),
            rule_set_version: "2.1".into(),
            rule_set_action: ManagedRuleSetAction::Block,
        },
        ManagedRuleSet {
            rule_set_type: "Microsoft_BotManagerRuleSet".into(),
            rule_set_version: "1.0".into(),
            rule_set_action: ManagedRuleSetAction::Block,
        },
    ]
}

/// HTTP method of the health probe.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProbeMethod {
    /// HEAD (default; cheapest for the origin).
    #[default]
    HEAD,
    /// GET.
    GET,
}

/// Protocol of the health probe.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ProbeProtocol {
    /// HTTPS (default).
    #[default]
    Https,
    /// HTTP.
    Http,
}

/// Front Door health probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthProbeSpec {
    /// Path probed on every origin.
    #[serde(default = "default_probe_path")]
    #[schemars(length(min = 1, max = 256), pattern(r"^/"))]
    pub path: String,
    /// Seconds between probes (5–255).
    #[serde(default = "default_probe_interval")]
    #[schemars(range(min = 5, max = 255))]
    pub interval_seconds: i32,
    /// `HEAD` or `GET`.
    #[serde(default)]
    pub method: ProbeMethod,
    /// `Https` or `Http`.
    #[serde(default)]
    pub protocol: ProbeProtocol,
}

impl Default for HealthProbeSpec {
    fn default() -> Self {
        HealthProbeSpec {
            path: default_probe_path(),
            interval_seconds: default_probe_interval(),
            method: ProbeMethod::default(),
            protocol: ProbeProtocol::default(),
        }
    }
}

fn default_probe_path() -> String {
    "/health/stamp".into()
}

fn default_probe_interval() -> i32 {
    30
}

/// Load-balancing settings of the origin group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.successfulSamplesRequired <= self.sampleSize").message("successfulSamplesRequired cannot exceed sampleSize"))]
pub struct LoadBalancingSpec {
    /// Probe samples considered (1–255).
    #[serde(default = "default_sample_size")]
    #[schemars(range(min = 1, max = 255))]
    pub sample_size: i32,
    /// Samples that must succeed for an origin to count as healthy.
    #[serde(default = "default_successful_samples")]
    #[schemars(range(min = 1, max = 255))]
    pub successful_samples_required: i32,
    /// Latency band in milliseconds within which origins count as equally fast.
    #[serde(default = "default_additional_latency")]
    #[schemars(range(min = 0, max = 1000))]
    pub additional_latency_milliseconds: i32,
}

impl Default for LoadBalancingSpec {
    fn default() -> Self {
        LoadBalancingSpec {
            sample_size: default_sample_size(),
            successful_samples_required: default_successful_samples(),
            additional_latency_milliseconds: default_additional_latency(),
        }
    }
}

fn default_sample_size() -> i32 {
    4
}

fn default_successful_samples() -> i32 {
    3
}

fn default_additional_latency() -> i32 {
    50
}

/// The origin group every stamp joins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginGroupSpec {
    /// Health probe.
    #[serde(default)]
    pub health_probe: HealthProbeSpec,
    /// Load-balancing settings.
    #[serde(default)]
    pub load_balancing: LoadBalancingSpec,
    /// Session affinity (off by default: stamps are stateless).
    #[serde(default)]
    pub session_affinity: bool,
}

/// Forwarding protocol from Front Door to the origin.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ForwardingProtocol {
    /// HTTPS only (default).
    #[default]
    HttpsOnly,
    /// Same protocol as the client request.
    MatchRequest,
}

/// A route from the Front Door endpoint to the stamps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    /// Route name.
    #[schemars(
        length(min = 1, max = 90),
        pattern(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    )]
    pub name: String,
    /// Path patterns (`/*`, `/api/*`).
    #[serde(default = "default_patterns")]
    #[schemars(
        length(min = 1, max = 25),
        inner(length(min = 1, max = 260), pattern(r"^/"))
    )]
    pub patterns: Vec<String>,
    /// Protocol to the origin.
    #[serde(default)]
    pub forwarding_protocol: ForwardingProtocol,
    /// Redirect HTTP to HTTPS (default true).
    #[serde(default = "default_true")]
    pub https_redirect: bool,
}

impl Default for RouteSpec {
    fn default() -> Self {
        RouteSpec {
            name: "default".into(),
            patterns: default_patterns(),
            forwarding_protocol: ForwardingProtocol::default(),
            https_redirect: true,
        }
    }
}

fn default_patterns() -> Vec<String> {
    vec!["/*".into()]
}

/// Who owns the `privatelink.*` zones.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PrivateDnsMode {
    /// The operator creates one set of zones per VNet (a stamp's zones die with it), so two
    /// stamps' endpoints to the same service never overwrite each other's A records.
    #[default]
    Managed,
    /// Zones already exist in a connectivity subscription; the operator only adds zone groups.
    External,
}

/// Private DNS configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'External' || has(self.externalResourceGroupId)").message("mode External needs externalResourceGroupId: the resource group holding the privatelink zones"))]
pub struct PrivateDnsSpec {
    /// `Managed` (default) or `External`.
    #[serde(default)]
    pub mode: PrivateDnsMode,
    /// Resource group id (`/subscriptions/<id>/resourceGroups/<name>`) holding the external zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-a-zA-Z0-9_.()]+$"))]
    pub external_resource_group_id: Option<String>,
}

/// Subnet CIDRs of an operations network; omitted ones are carved automatically.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsSubnets {
    /// Self-hosted build agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_agents: Option<CidrBlock>,
    /// Jump boxes (SSH only from AzureBastionSubnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_boxes: Option<CidrBlock>,
    /// `AzureBastionSubnet` (/26 or larger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() <= 26").message("AzureBastionSubnet must be /26 or larger"))]
    pub bastion: Option<CidrBlock>,
    /// Private endpoints of the operations network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_endpoints: Option<CidrBlock>,
    /// `AzureFirewallSubnet` (/26 or larger), with egress mode `Firewall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() <= 26").message("AzureFirewallSubnet must be /26 or larger"))]
    pub firewall: Option<CidrBlock>,
}

/// How an operations network's build agents and jump boxes reach the internet.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OperationsEgressMode {
    /// Through an Azure Firewall of its own, to an FQDN allow list (default): the stamps'
    /// pattern, the architecture's single egress control.
    #[default]
    Firewall,
    /// No way out: build agents and jump boxes reach only private endpoints.
    None,
}

/// Egress of an operations network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsEgressSpec {
    /// `Firewall` (default) or `None`.
    #[serde(default)]
    pub mode: OperationsEgressMode,
    /// FQDNs the build agents and jump boxes may reach beyond the built-in ones (Azure DevOps,
    /// GitHub, Azure Resource Manager, Entra ID, Microsoft Container Registry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub allow: Vec<FqdnAllowRule>,
}

/// A private operations network in one region.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsNetworkSpec {
    /// Azure region. Immutable per entry (the list is keyed by region).
    #[schemars(pattern(r"^[a-z][a-z0-9]{2,30}$"))]
    pub region: String,
    /// IPv4 address space, a private block of /24 or larger. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("addressSpace of an operations network is immutable"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() <= 24").message("addressSpace must be /24 or larger"))]
    pub address_space: CidrBlock,
    /// Subnet CIDRs; omitted ones are carved automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<OperationsSubnets>,
    /// How build agents and jump boxes reach the internet.
    #[serde(default)]
    pub egress: OperationsEgressSpec,
}

/// How Front Door's connections to a stamp's Private Link Service are approved.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ApprovalMode {
    /// Approve a Pending connection only when its request message is the one this GlobalPlane sent.
    #[default]
    ApproveMatching,
    /// Never approve; a person approves in Azure (the operator reports the pending state).
    Manual,
}

/// What to do with a connection that does not match.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UnexpectedConnectionAction {
    /// Reject it (default): nothing unknown reaches a stamp.
    #[default]
    Reject,
    /// Leave it pending and report it.
    LeavePending,
}

/// Private-link approval policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateLinkApprovalSpec {
    /// `ApproveMatching` (default) or `Manual`.
    #[serde(default)]
    pub mode: ApprovalMode,
    /// `Reject` (default) or `LeavePending` for connections that do not match.
    #[serde(default)]
    pub unexpected: UnexpectedConnectionAction,
}

/// Observed state of a GlobalPlane.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalPlaneStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One word for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready` plus FrontDoor, Waf, PrivateDns, OperationsNetworks, OperationsNetworksIsolated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Front Door endpoint host name (`<endpoint>-<hash>.z01.azurefd.net`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_door_host_name: Option<String>,
    /// Number of stamps registered as origins.
    #[serde(default)]
    pub stamp_count: i32,
    /// Each stamp's origin and its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stamps: Vec<StampOriginStatus>,
    /// Azure ids of the global resources by role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_ids: BTreeMap<String, String>,
    /// Operations networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations_networks: Vec<OperationsNetworkStatus>,
    /// Long-running Azure operations still in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlightOperation>,
    /// The last full check against Azure that found everything converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

impl HasConditions for GlobalPlaneStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// A stamp as seen from Front Door.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StampOriginStatus {
    /// `<namespace>/<name>` of the Stamp.
    pub stamp: String,
    /// Region of the stamp.
    pub region: String,
    /// Origin id in Front Door.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_id: Option<String>,
    /// Whether Front Door sends traffic to it.
    pub enabled: bool,
    /// Its weight.
    pub weight: i32,
    /// Private-link connection state (Pending, Approved, Rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
}

/// An operations network as created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsNetworkStatus {
    /// Region.
    pub region: String,
    /// VNet id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_network_id: Option<String>,
    /// Subnet ids by role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnet_ids: BTreeMap<String, String>,
}
