//! Lambdock's gRPC contracts. The agent API (`lambdock.agent.v1.Agent`) lets an owner (a
//! gateway) create, measure, pause, invoke and destroy workers on a node; see
//! `proto/lambdock/agent/v1/agent.proto` for the semantics of each call.

/// `lambdock.agent.v1`.
pub mod agent {
    #![allow(missing_docs, clippy::large_enum_variant)]
    tonic::include_proto!("lambdock.agent.v1");
}

/// Largest gRPC message either side accepts: a 6 MB Lambda payload plus headers and framing,
/// with room to spare (tonic's default of 4 MiB is below Lambda's limit).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
