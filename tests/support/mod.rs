//! Helpers shared by the integration tests.

pub mod controlplane;
pub mod expect;
pub mod operator;
pub mod proxy;
pub mod stage;
