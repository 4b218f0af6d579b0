//! The gateway: the front door every caller meets. It serves Lambda's Invoke API and the read
//! side of the management API on the AWS endpoint (SigV4-verified), owns the deployment, and
//! scales per-function pools of workers that agents make.
//!
//! - [`registry`]: the deployed functions and how `FunctionName`/`Qualifier` name them.
//! - [`gateway`]: the AWS endpoint (Invoke, management reads, `/metrics`).
//! - [`pool`]: per-function pools (concurrency caps, throttling, provisioned and idle workers,
//!   adoption after a restart).
//! - [`run_to_end`]: invocations that finish when their caller stops waiting.
//! - [`sigv4`]: signature verification.
//! - [`worker_conn`]: the connection to a worker, driven by the invocation's own task.
//! - [`breaker`]: per-function circuit breakers.
//! - [`queue`] and [`asynchronous`]: `Event` invocations, durable before 202, retried as Lambda does.
//! - [`errors`], [`management`], [`metrics`]: AWS's error and resource shapes, Prometheus.

pub mod asynchronous;
pub mod breaker;
pub mod errors;
pub mod gateway;
pub mod management;
pub mod metrics;
pub mod pool;
pub mod queue;
pub mod registry;
pub mod run_to_end;
pub mod server;
pub mod sigv4;
pub mod worker_conn;

/// Now, as Unix epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
