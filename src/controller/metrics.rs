//! Reconcile metrics under controller-runtime's names, so dashboards built for Go operators work:
//! `controller_runtime_reconcile_total`, `…_errors_total`, `…_time_seconds`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `stamp`, `privateendpointset` or `globalplane`.
    pub controller: String,
    /// `success` or `error`.
    pub result: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller.
    pub controller: String,
    /// Error kind (`Error::metric_label`).
    pub error: String,
}

/// Labels of a duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// Controller.
    pub controller: String,
}

/// The reconcilers' metrics.
#[derive(Clone)]
pub struct ReconcileMetrics {
    total: Family<ReconcileLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    time: Family<ControllerLabel, Histogram>,
    ready: Family<ControllerLabel, Histogram>,
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        ReconcileMetrics {
            total: Family::default(),
            errors: Family::default(),
            time: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            // 1 s … ~4.5 h: a stamp takes minutes (the firewall alone ~6).
            ready: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 15))
            }),
        }
    }
}

impl ReconcileMetrics {
    /// Registers under `controller_runtime_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("controller_runtime");
        r.register(
            "reconcile",
            "Reconciliations by controller and result",
            self.total.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciliations by controller and error",
            self.errors.clone(),
        );
        r.register(
            "reconcile_time_seconds",
            "Time per reconciliation",
            self.time.clone(),
        );
        self.register_ready(registry);
    }

    /// Registers `stamp_operator_time_to_ready_seconds`.
    pub fn register_ready(&self, registry: &mut Registry) {
        registry.register(
            "stamp_operator_time_to_ready_seconds",
            "Seconds from creation (or from losing Ready) to Ready",
            self.ready.clone(),
        );
    }

    /// Records that an object of `controller` became Ready `seconds` after it was created or
    /// last lost Ready.
    pub fn became_ready(&self, controller: &str, seconds: f64) {
        self.ready
            .get_or_create(&ControllerLabel {
                controller: controller.to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// Starts measuring one reconcile of `controller`.
    pub fn start(&self, controller: &'static str) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            controller,
            started: Instant::now(),
        }
    }
}

/// Measures one reconcile; records its outcome with [`ReconcileTimer::finish`].
pub struct ReconcileTimer<'a> {
    metrics: &'a ReconcileMetrics,
    controller: &'static str,
    started: Instant,
}

impl ReconcileTimer<'_> {
    /// Records the duration and the result.
    pub fn finish<T>(self, result: &super::Result<T>) {
        let controller = self.controller.to_string();
        self.metrics
            .time
            .get_or_create(&ControllerLabel {
                controller: controller.clone(),
            })
            .observe(self.started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .total
            .get_or_create(&ReconcileLabels {
                controller: controller.clone(),
                result: outcome.into(),
            })
            .inc();
        if let Err(e) = result {
            self.metrics
                .errors
                .get_or_create(&ErrorLabels {
                    controller,
                    error: e.metric_label().into(),
                })
                .inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_ready_is_exposed_in_seconds_per_controller() {
        let metrics = ReconcileMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.became_ready("stamp", 42.0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("stamp_operator_time_to_ready_seconds_bucket{"),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.contains("time_to_ready_seconds_bucket") && l.contains("le=\"64.0\""))
            .unwrap();
        assert!(
            line.contains("controller=\"stamp\"") && line.ends_with(" 1"),
            "{line}"
        );
    }
}
