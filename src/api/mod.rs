//! The Kubernetes API of stamp-operator: custom resource types only.
//!
//! Group `missioncritical.dev`, version `v1alpha1`. Everything the API server can check is
//! declared here as OpenAPI constraints or CEL rules; what only the planner can check
//! (address arithmetic, cross-object references) lives in `crate::plan`.

mod common;
mod global_plane;
pub mod manifest;
pub mod offline;
mod private_endpoint_set;
mod stamp;

pub use common::*;
pub use global_plane::*;
pub use private_endpoint_set::*;
pub use stamp::*;

use kube::CustomResourceExt;

/// API group of every kind this operator serves.
pub const GROUP: &str = "missioncritical.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Each CustomResourceDefinition as `(file name under crds/, YAML)`, in a stable order.
pub fn crd_documents() -> Result<Vec<(String, String)>, serde_yaml::Error> {
    [GlobalPlane::crd(), Stamp::crd(), PrivateEndpointSet::crd()]
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), serde_yaml::to_string(&crd)?))
        })
        .collect()
}

/// All three CustomResourceDefinitions as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    Ok(crd_documents()?
        .into_iter()
        .map(|(_, yaml)| format!("---\n{yaml}"))
        .collect())
}
