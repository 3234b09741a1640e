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
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        ReconcileMetrics {
            total: Family::default(),
            errors: Family::default(),
            time: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
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
