//! `PrivateEndpointSet`: private endpoints from a stamp (or an operations network) to PaaS
//! services, with the private DNS that makes their FQDNs resolve to the private IPs.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, GlobalPlaneRef, HasConditions, InFlightOperation, ManagementPolicy, StampRef,
    Verification,
};

/// Desired private endpoints.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "missioncritical.dev",
    version = "v1alpha1",
    kind = "PrivateEndpointSet",
    namespaced,
    status = "PrivateEndpointSetStatus",
    shortname = "pes",
    category = "missioncritical",
    doc = "Private endpoints (with private DNS) from a stamp or an operations network to PaaS services such as Key Vault, ACR, Cosmos DB, Event Hubs and Storage.",
    printcolumn(name = "Stamp", type_ = "string", json_path = ".spec.target.stampRef.name"),
    printcolumn(name = "Endpoints", type_ = "string", json_path = ".status.endpointsReady"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("PrivateEndpointSet names are at most 40 characters"),
)]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpointSetSpec {
    /// Where the endpoints live: a stamp in this namespace, or an operations network. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("target is immutable"))]
    pub target: EndpointTarget,
    /// The endpoints, unique by name.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub endpoints: Vec<EndpointSpec>,
    /// `Delete` (default) or `Orphan`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// `Manage` (default) or `ObserveOnly`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// When true the operator stops writing to Azure for this set.
    #[serde(default)]
    pub paused: bool,
}

/// Exactly one of `stampRef` or `operationsNetwork`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.stampRef) != has(self.operationsNetwork)").message("set exactly one of stampRef or operationsNetwork"))]
pub struct EndpointTarget {
    /// A Stamp in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp_ref: Option<StampRef>,
    /// The operations network of a GlobalPlane in a region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_network: Option<OperationsNetworkRef>,
}

/// An operations network, by GlobalPlane and region.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationsNetworkRef {
    /// The GlobalPlane declaring the network.
    pub global_plane_ref: GlobalPlaneRef,
    /// Region of the operations network.
    #[schemars(pattern(r"^[a-z][a-z0-9]{2,30}$"))]
    pub region: String,
}

/// One private endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// Endpoint name, unique in the set (part of the Azure resource name).
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// ARM id of the PaaS resource (Key Vault, registry, Cosmos DB account, Event Hubs namespace, storage account).
    #[schemars(length(max = 400), pattern(r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-a-zA-Z0-9_.()]+/providers/[A-Za-z0-9.]+/[A-Za-z0-9]+/[-a-zA-Z0-9_.]+$"))]
    pub target_resource_id: String,
    /// Private-link sub-resource (`vault`, `registry`, `Sql`, `namespace`, `blob`, `table`,
    /// `queue`, `file`, `web`, `dfs`, `management`).
    #[schemars(length(min = 1, max = 64), pattern(r"^[A-Za-z][A-Za-z0-9_]*$"))]
    pub group_id: String,
    /// Override the `privatelink.*` zone picked from the groupId (needed for unknown groupIds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^privatelink\.([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
    )]
    pub private_dns_zone: Option<String>,
    /// The regions the target serves from, for a geo-replicated registry (its home region and
    /// every replica) or a multi-region Cosmos DB account (every region of the account): the
    /// endpoint takes one address for the global name plus one per region, and has a DNS
    /// record per region. Omitted, one region is assumed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 30), inner(pattern(r"^[a-z][a-z0-9]{2,30}$")))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub target_regions: Vec<String>,
}

/// Observed state of a PrivateEndpointSet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateEndpointSetStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One word for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// `Ready` plus Endpoints, Dns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `<ready>/<total>` for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints_ready: Option<String>,
    /// Per-endpoint state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointStatus>,
    /// Long-running Azure operations still in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<InFlightOperation>,
    /// The last full check against Azure that found everything converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verification>,
}

impl HasConditions for PrivateEndpointSetStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// One endpoint as created.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// Endpoint name from the spec.
    pub name: String,
    /// ARM id of the private endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Private IP given from the subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// FQDNs that resolve to the private IP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fqdns: Vec<String>,
    /// Approved, Pending, Rejected or Disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_state: Option<String>,
    /// The `privatelink.*` zone holding its A records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns_zone: Option<String>,
}
