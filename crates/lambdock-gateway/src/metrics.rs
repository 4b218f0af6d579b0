//! The gateway's Prometheus metrics, on `/metrics` of the AWS endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::pool::PoolStats;

/// The `function` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabel {
    /// Function name.
    pub function: String,
}

/// The `schedule` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabel {
    /// Schedule name.
    pub schedule: String,
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    invocations: Family<FunctionLabel, Counter<u64, AtomicU64>>,
    errors: Family<FunctionLabel, Counter<u64, AtomicU64>>,
    throttles: Family<FunctionLabel, Counter<u64, AtomicU64>>,
    cold_starts: Family<FunctionLabel, Counter<u64, AtomicU64>>,
    duration: Family<FunctionLabel, Histogram>,
    workers: Family<FunctionLabel, Gauge<i64, AtomicI64>>,
    idle: Family<FunctionLabel, Gauge<i64, AtomicI64>>,
    concurrency_cap: Family<FunctionLabel, Gauge<i64, AtomicI64>>,
    circuit: Family<FunctionLabel, Gauge<i64, AtomicI64>>,
    schedule_fires: Family<ScheduleLabel, Counter<u64, AtomicU64>>,
    concurrent: Family<FunctionLabel, Gauge<i64, AtomicI64>>,
    queue_depth: Gauge<i64, AtomicI64>,
    queue_oldest: Gauge<f64, AtomicU64>,
}

fn duration_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lambdock");
        let m = Metrics {
            invocations: Family::default(),
            errors: Family::default(),
            throttles: Family::default(),
            cold_starts: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            workers: Family::default(),
            idle: Family::default(),
            concurrency_cap: Family::default(),
            circuit: Family::default(),
            schedule_fires: Family::default(),
            concurrent: Family::default(),
            queue_depth: Gauge::default(),
            queue_oldest: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "invocations",
            "Synchronous invocations that reached a worker",
            m.invocations.clone(),
        );
        registry.register(
            "errors",
            "Invocations that ended with X-Amz-Function-Error",
            m.errors.clone(),
        );
        registry.register(
            "throttles",
            "Invocations refused with TooManyRequestsException",
            m.throttles.clone(),
        );
        registry.register(
            "cold_starts",
            "Invocations that had to create their worker",
            m.cold_starts.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Time from request to answer",
            m.duration.clone(),
        );
        registry.register("pool_workers", "Workers per function", m.workers.clone());
        registry.register(
            "pool_idle_workers",
            "Idle workers per function",
            m.idle.clone(),
        );
        registry.register(
            "pool_concurrency_limit",
            "Concurrency cap per function",
            m.concurrency_cap.clone(),
        );
        registry.register(
            "concurrent_executions",
            "Workers busy with an invocation, per function",
            m.concurrent.clone(),
        );
        registry.register(
            "async_queue_depth",
            "Accepted Event invocations not delivered yet",
            m.queue_depth.clone(),
        );
        registry.register(
            "async_queue_oldest_age_seconds",
            "Age of the oldest undelivered Event invocation",
            m.queue_oldest.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker per function: 0 closed, 1 open, 2 half-open",
            m.circuit.clone(),
        );
        registry.register(
            "schedule_fires",
            "Fires of each schedule (each an Event invocation)",
            m.schedule_fires.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Records an invocation.
    pub fn invocation(&self, function: &str, took: Duration, error: bool, cold: bool) {
        let label = FunctionLabel {
            function: function.to_string(),
        };
        self.invocations.get_or_create(&label).inc();
        if error {
            self.errors.get_or_create(&label).inc();
        }
        if cold {
            self.cold_starts.get_or_create(&label).inc();
        }
        self.duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Records a throttle.
    pub fn throttle(&self, function: &str) {
        self.throttles
            .get_or_create(&FunctionLabel {
                function: function.to_string(),
            })
            .inc();
    }

    /// Records a fire of a schedule.
    pub fn schedule_fire(&self, schedule: &str) {
        self.schedule_fires
            .get_or_create(&ScheduleLabel {
                schedule: schedule.to_string(),
            })
            .inc();
    }

    /// The text exposition, with pool gauges as of now.
    pub fn encode(
        &self,
        pools: &[PoolStats],
        breakers: &[(String, i64)],
        queue: Option<(i64, f64)>,
    ) -> String {
        if let Some((depth, oldest)) = queue {
            self.queue_depth.set(depth);
            self.queue_oldest.set(oldest);
        }
        for (function, state) in breakers {
            self.circuit
                .get_or_create(&FunctionLabel {
                    function: function.clone(),
                })
                .set(*state);
        }
        for p in pools {
            let label = FunctionLabel {
                function: p.function.clone(),
            };
            self.workers.get_or_create(&label).set(p.total as i64);
            self.idle.get_or_create(&label).set(p.idle as i64);
            self.concurrent
                .get_or_create(&label)
                .set(p.total.saturating_sub(p.idle) as i64);
            self.concurrency_cap.get_or_create(&label).set(p.cap as i64);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
