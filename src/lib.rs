//! stamp-operator: Kubernetes operator for network-restricted, mission-critical Azure stamps.
//!
//! Layers (arrows point one way): `api` (CRD types) → `plan` (pure: spec → desired Azure graph)
//! → `azure` (ARM engine, no Kubernetes) → `controller` (reconcile loops) ; `emulator` stands apart.

pub mod api;
pub mod azure;
pub mod cli;
pub mod controller;
pub mod emulator;
pub mod plan;
