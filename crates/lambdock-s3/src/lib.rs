//! Lambdock's embedded S3: the S3 REST API (via `s3s`, SigV4 and presigned URLs verified with
//! the platform's credentials) over a durable store under `<data_dir>/s3`, plus a lifecycle
//! sweeper. `lambdock up` serves it so functions' unmodified SDK code has an S3; production
//! deployments point functions at an external S3 instead (see [`args::S3Args`]).

mod api_list;
mod api_multipart;
mod api_object;
pub mod args;
pub mod error;
pub mod lifecycle;
pub mod listing;
pub mod multipart;
pub mod object;
mod server;
pub mod service;
pub mod store;

pub use server::{S3Config, S3Error, serve};
