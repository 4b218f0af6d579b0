//! Templates in, deployment manifests out.
//!
//! This crate owns the manifest the gateway loads ([`manifest`]) and compiles SAM /
//! CloudFormation templates (YAML with short-form tags, or JSON) into it:
//!
//! - [`yaml`] loads a template into a tree that keeps every node's line and column, so each
//!   error names the file, the line, the resource and what is wrong;
//! - `parameters`, `intrinsics` and `globals` give parameters their values, evaluate `Ref`,
//!   `Fn::*` and conditions as CloudFormation does, and merge SAM's `Globals`;
//! - `resources` compiles each resource type Lambdock runs; other types are listed in a warning;
//! - [`compile()`] drives them and [`build()`] writes a `sam build`-like tree of code bundles and
//!   `manifest.json`.
//!
//! ```no_run
//! use lambdock_template::{CompileOptions, build, compile};
//! let compiled = compile("template.yaml".as_ref(), &CompileOptions::default())?;
//! let built = build(&compiled, ".lambdock/build".as_ref())?;
//! # Ok::<(), lambdock_template::TemplateError>(())
//! ```

mod bundle;
mod compile;
mod error;
mod globals;
mod intrinsics;
pub mod manifest;
mod parameters;
mod resources;
pub mod runtimes;
pub mod summary;
pub mod yaml;

pub use bundle::{Built, build};
pub use compile::{CompileOptions, Compiled, compile, parse_overrides};
pub use error::TemplateError;
