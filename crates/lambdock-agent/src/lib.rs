//! The Lambdock agent: one per node, a factory and proxy for workers. It creates, measures,
//! pauses, proxies invocations to and destroys workers when an owner (a gateway) asks; it never
//! decides scaling.
//!
//! - [`backend`]: the trait every way of making workers implements, and the `process` backend.
//! - [`cgroup`]: per-worker cgroups on v1 and v2 hosts.
//! - [`service`]: the gRPC service (`lambdock.agent.v1.Agent`).
//! - [`server`]: serving it (TLS, message limits) with Prometheus metrics ([`metrics`]).

pub mod backend;
pub mod cgroup;
pub mod metrics;
pub mod server;
pub mod service;

/// Now, as Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
