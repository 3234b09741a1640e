//! The planner: pure functions from specs to the desired Azure resource graph. No I/O.
//!
//! Every function either returns a whole plan or a [`PlanError`] naming the field and the
//! reason; none panics on user input.

pub mod address;
pub mod approval;
pub mod arm_id;
pub mod bundle;
pub mod dns;
pub mod egress;
pub mod endpoints;
pub mod error;
pub mod flows;
pub mod global;
pub mod graph;
pub mod naming;
pub mod network;
pub mod nsg;
pub mod operations_egress;
pub mod owner;
pub mod stamp;

pub use address::{AddressPlan, SubnetBlock, SubnetRole};
pub use arm_id::ArmId;
pub use bundle::{plan_bundle, Bundle, BundlePlan};
pub use endpoints::{plan_endpoint_set, EndpointHost, EndpointSetInput, EndpointSetPlan};
pub use error::{PlanError, PlanResult};
pub use global::{plan_global_plane, GlobalIds, GlobalPlaneInput, GlobalPlanePlan};
pub use graph::{Component, DesiredGraph, DesiredResource, Ownership, ResourceKind};
pub use owner::{removal_rank, Owner, OWNER_TAG};
pub use stamp::{plan_stamp, StampInput, StampObservations, StampPlan};
