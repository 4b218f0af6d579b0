//! The agent's Prometheus metrics, served on its own `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of the per-state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// `running`, `paused`, `stopped`.
    pub state: String,
}

/// Label of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Failure class (`invalid_spec`, `unavailable`, `start_failed`, `io`).
    pub reason: String,
}

/// Every metric of the agent.
pub struct Metrics {
    registry: Registry,
    /// Workers by state.
    pub workers: Family<StateLabel, Gauge<i64, AtomicI64Wrapper>>,
    /// Workers created.
    pub creations: Counter<u64, AtomicU64>,
    /// Creations that failed.
    pub failures: Family<ReasonLabel, Counter<u64, AtomicU64>>,
    /// Time from request to a worker that answers.
    pub create_seconds: Histogram,
}

/// The atomic behind the state gauge.
pub type AtomicI64Wrapper = std::sync::atomic::AtomicI64;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lambdock_agent");
        let workers = Family::<StateLabel, Gauge<i64, AtomicI64Wrapper>>::default();
        let creations = Counter::<u64, AtomicU64>::default();
        let failures = Family::<ReasonLabel, Counter<u64, AtomicU64>>::default();
        let create_seconds = Histogram::new([
            0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register("workers", "Workers on this node by state", workers.clone());
        registry.register("worker_creations", "Workers created", creations.clone());
        registry.register(
            "worker_create_failures",
            "Worker creations that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "worker_create_seconds",
            "Time from a CreateWorker request to a worker that answers",
            create_seconds.clone(),
        );
        Metrics {
            registry,
            workers,
            creations,
            failures,
            create_seconds,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
