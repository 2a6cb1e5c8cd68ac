//! Prometheus metrics of the operator.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    /// The error's stable category, the same word used in conditions and Events.
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub controller: String,
    pub kind: String,
}

/// Counters and histograms shared by every controller.
#[derive(Debug)]
pub struct Metrics {
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    /// Objects actually written (applies and status patches); flat in steady state.
    pub writes: Family<WriteLabels, Counter>,
    pub duration: Family<ReconcileLabels, Histogram>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            failures: Family::default(),
            writes: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
        };
        let prefix = registry.sub_registry_with_prefix("mailwarden");
        prefix.register(
            "reconciles",
            "Reconciles started",
            metrics.reconciles.clone(),
        );
        prefix.register(
            "reconcile_failures",
            "Reconciles that failed",
            metrics.failures.clone(),
        );
        prefix.register(
            "writes",
            "Objects written to the API server",
            metrics.writes.clone(),
        );
        prefix.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            metrics.duration.clone(),
        );
        metrics
    }

    pub fn wrote(&self, controller: &str, kind: &str) {
        let labels = WriteLabels {
            controller: controller.into(),
            kind: kind.into(),
        };
        self.writes.get_or_create(&labels).inc();
    }

    pub fn failed(&self, controller: &str, category: &str) {
        let labels = FailureLabels {
            controller: controller.into(),
            category: category.into(),
        };
        self.failures.get_or_create(&labels).inc();
    }
}
