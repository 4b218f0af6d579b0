//! The gateway: the front door every caller meets. It serves Lambda's Invoke API and the read
//! side of the management API on the AWS endpoint (SigV4-verified), owns the deployment, and
//! scales per-function pools of workers that agents make.
//!
//! - [`registry`]: the deployed functions and how `FunctionName`/`Qualifier` name them.
//! - [`gateway`]: the AWS endpoint (Invoke, management reads, `/metrics`).
//! - [`pool`]: per-function pools (concurrency caps, throttling, provisioned and idle workers,
//!   adoption after a restart).
//! - [`sigv4`]: signature verification.
//! - [`breaker`]: per-function circuit breakers.
//! - [`errors`], [`management`], [`metrics`]: AWS's error and resource shapes, Prometheus.

pub mod breaker;
pub mod errors;
pub mod gateway;
pub mod management;
pub mod metrics;
pub mod pool;
pub mod registry;
pub mod server;
pub mod sigv4;
