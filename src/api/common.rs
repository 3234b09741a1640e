//! Types shared by the three kinds: references, policies, conditions and in-flight operations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Reference to the cluster-scoped GlobalPlane a namespaced object belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct GlobalPlaneRef {
    /// Name of the GlobalPlane.
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
}

/// Reference to a Stamp in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct StampRef {
    /// Name of the Stamp (same namespace; cross-namespace references are not allowed).
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
}

/// What happens to Azure resources when the Kubernetes object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete every Azure resource the operator created (the default).
    #[default]
    Delete,
    /// Leave Azure untouched; only the Kubernetes object goes away.
    Orphan,
}

/// Whether the operator may write to Azure for this object.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete Azure resources to match the spec (the default).
    #[default]
    Manage,
    /// Only read Azure and report drift in status; never write.
    ObserveOnly,
}

/// A long-running Azure operation the operator started and has not yet seen finish.
/// Persisted in status so that a restarted operator resumes polling instead of starting over.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InFlightOperation {
    /// ARM id of the resource the operation acts on.
    pub resource_id: String,
    /// `Put` or `Delete`.
    pub kind: String,
    /// URL to poll (`Azure-AsyncOperation` or `Location`). Only a URL on the operator's ARM
    /// endpoint is ever polled (with the operator's token); this pattern is a second guard
    /// against a status patched to point elsewhere.
    #[schemars(pattern(r"^https?://[-a-zA-Z0-9.]+(:[0-9]+)?/subscriptions/"))]
    pub poll_url: String,
    /// Which header the URL came from: `AsyncOperation` or `Location`.
    pub poll_style: String,
    /// When Azure accepted the write: Unix seconds, as a decimal string.
    pub started_at: String,
}

/// The last time the operator checked every resource of an object against Azure and found it
/// converged. A resync whose plan and resource-group listing still match `fingerprint` need not
/// read each resource again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Hash of the desired graph and of the `changedTime` of its resources in the group listing.
    pub fingerprint: String,
    /// When the full check ran (RFC 3339).
    pub at: String,
}

/// Condition list helpers shared by every status type.
pub trait HasConditions {
    /// The object's conditions, kstatus style (`Ready` plus one per component).
    fn conditions(&self) -> &[Condition];

    /// The condition of the given type, if present.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions().iter().find(|c| c.type_ == type_)
    }

    /// True when the `Ready` condition is `True`.
    fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

pub(crate) fn default_true() -> bool {
    true
}

/// An IPv4 CIDR block in canonical form (`10.10.0.0/20`). The API server checks the syntax, the
/// family and that no host bits are set (Azure answers `InvalidCIDRNotation` otherwise); the
/// planner checks the arithmetic between blocks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(transparent)]
pub struct CidrBlock(pub String);

impl CidrBlock {
    /// The block as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CidrBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CidrBlock {
    fn from(s: &str) -> Self {
        CidrBlock(s.to_string())
    }
}

impl JsonSchema for CidrBlock {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CidrBlock".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "maxLength": 18,
            "pattern": r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$",
            "x-kubernetes-validations": [
                {
                    "rule": "isCIDR(self) && cidr(self).ip().family() == 4",
                    "message": "must be an IPv4 CIDR block such as 10.10.0.0/20"
                },
                {
                    "rule": "!isCIDR(self) || string(cidr(self).masked()) == self",
                    "message": "host bits are set: write the network address of the block (Azure answers InvalidCIDRNotation)"
                }
            ]
        })
    }
}
