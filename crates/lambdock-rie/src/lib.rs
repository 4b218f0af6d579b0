//! `lambdock-rie`: the Lambda Runtime API inside every Lambdock sandbox.
//!
//! It is a drop-in replacement for AWS's Runtime Interface Emulator (`aws-lambda-rie`): the same
//! command line, environment and invoke interface, the same Runtime API on the inside
//! (2018-06-01, with the Extensions API and AWS's stubs for the Telemetry and Logs APIs), and
//! Lambda's behaviour where AWS's emulator departs from it (timeouts, crashes and init failures
//! as error bodies with `X-Amz-Function-Error`, log tails, real memory figures, response
//! streaming, a clear refusal of concurrent invocations).
//!
//! - [`config`]: the command line and the function's environment.
//! - [`sandbox`]: the state machine between the caller, the runtime and extensions.
//! - [`api`]: the two HTTP faces, the Runtime API and the invoke interface.
//! - [`process`] and [`logs`]: the runtime's process group and its output.
//! - [`isolation`]: the sandbox namespaces of `--isolate`, for the agent's `process` backend.

pub mod api;
pub mod config;
pub mod errors;
pub mod isolation;
pub mod logs;
pub mod process;
pub mod sandbox;
