//! Metrics of every ARM request, registered under the `arm_` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// ARM resource type (`Microsoft.Network/virtualNetworks`) or `operation`.
    pub resource_type: String,
    /// Status code (0 for transport failures).
    pub status: u16,
}

/// Labels of a bucket.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// read, write or delete.
    pub class: String,
}

/// The ARM engine's metrics.
#[derive(Clone)]
pub struct ArmMetrics {
    /// Requests by method, type and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency in seconds.
    pub latency: Histogram,
    /// Requests answered 429.
    pub throttled: Counter,
    /// Long-running operations being polled.
    pub in_flight_operations: Gauge,
    /// Client-side budget tokens left by class (last subscription touched).
    pub budget_tokens: Family<ClassLabels, Gauge>,
}

impl Default for ArmMetrics {
    fn default() -> Self {
        ArmMetrics {
            requests: Family::default(),
            latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            throttled: Counter::default(),
            in_flight_operations: Gauge::default(),
            budget_tokens: Family::default(),
        }
    }
}

impl ArmMetrics {
    /// Registers every metric in `registry` under `arm_`.
    pub fn register(&self, registry: &mut Registry) {
        let arm = registry.sub_registry_with_prefix("arm");
        arm.register(
            "requests",
            "ARM requests by method, resource type and status",
            self.requests.clone(),
        );
        arm.register(
            "request_duration_seconds",
            "ARM request latency",
            self.latency.clone(),
        );
        arm.register(
            "throttled",
            "ARM requests answered 429",
            self.throttled.clone(),
        );
        arm.register(
            "in_flight_operations",
            "Long-running ARM operations being polled",
            self.in_flight_operations.clone(),
        );
        arm.register(
            "budget_tokens",
            "Client-side ARM budget tokens left",
            self.budget_tokens.clone(),
        );
    }
}
