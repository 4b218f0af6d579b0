//! The deployment manifest: what the gateway runs. Versioned JSON, so a gateway can refuse a
//! manifest newer than it understands instead of misreading it.
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "functions": {
//!     "hello": {
//!       "runtime": "python3.12", "handler": "app.handler", "code": { "dir": "hello" },
//!       "memory_mb": 128, "timeout_s": 3, "environment": { "K": "V" },
//!       "reserved_concurrency": 5, "provisioned_concurrency": 1,
//!       "versions": ["1"], "aliases": { "live": "1" }
//!     }
//!   }
//! }
//! ```
//!
//! Relative code and layer paths are relative to the manifest file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The newest schema this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version of this document.
    pub schema_version: u32,
    /// Functions by name.
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
}

/// Where a function's code is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A directory (`/var/task`).
    Dir(PathBuf),
    /// An image reference (container backends).
    Image(String),
}

fn default_memory() -> u32 {
    128
}
fn default_timeout() -> f64 {
    3.0
}
fn default_storage() -> u32 {
    512
}

/// One function, as AWS Lambda describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Runtime identifier (`python3.12`, `provided.al2023`).
    pub runtime: String,
    /// Handler.
    #[serde(default)]
    pub handler: String,
    /// Code.
    pub code: Code,
    /// Layer directories, in order.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// `MemorySize`, MB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// `Timeout`, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// `EphemeralStorage`, MB.
    #[serde(default = "default_storage")]
    pub ephemeral_storage_mb: u32,
    /// `Environment.Variables`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `ReservedConcurrentExecutions`.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// `ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions`.
    #[serde(default)]
    pub provisioned_concurrency: u32,
    /// `Description`.
    #[serde(default)]
    pub description: String,
    /// `Architectures`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Published version numbers (each runs this configuration).
    #[serde(default)]
    pub versions: Vec<String>,
    /// Aliases to version numbers (`live` → `1`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable file.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not the expected JSON.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with line and column.
        source: serde_json::Error,
    },
    /// A schema newer than this build.
    #[error(
        "{path}: schema_version {found} is newer than this Lambdock understands ({SCHEMA_VERSION}); upgrade Lambdock"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// A function that cannot work.
    #[error("function {function}: {reason}")]
    Invalid {
        /// Function name.
        function: String,
        /// What is wrong.
        reason: String,
    },
}

/// Lambda's function name rule: 1-64 letters, digits, hyphens or underscores.
pub fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Manifest {
    /// Reads a manifest file and resolves its relative paths.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?;
        let mut manifest: Manifest =
            serde_json::from_slice(&text).map_err(|source| ManifestError::Parse {
                path: path.into(),
                source,
            })?;
        if manifest.schema_version > SCHEMA_VERSION {
            return Err(ManifestError::TooNew {
                path: path.into(),
                found: manifest.schema_version,
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for function in manifest.functions.values_mut() {
            if let Code::Dir(dir) = &mut function.code
                && dir.is_relative()
            {
                *dir = base.join(&*dir);
            }
            for layer in &mut function.layers {
                if layer.is_relative() {
                    *layer = base.join(&*layer);
                }
            }
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what Lambda itself would refuse.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for (name, f) in &self.functions {
            let invalid = |reason: String| ManifestError::Invalid {
                function: name.clone(),
                reason,
            };
            if !valid_function_name(name) {
                return Err(invalid(
                    "names are 1-64 letters, digits, hyphens or underscores".into(),
                ));
            }
            if !(128..=10240).contains(&f.memory_mb) {
                return Err(invalid(format!(
                    "memory_mb {} is outside 128-10240",
                    f.memory_mb
                )));
            }
            if !(f.timeout_s > 0.0 && f.timeout_s <= 900.0) {
                return Err(invalid(format!(
                    "timeout_s {} is outside 1-900",
                    f.timeout_s
                )));
            }
            if let Some(reserved) = f.reserved_concurrency
                && f.provisioned_concurrency > reserved
            {
                return Err(invalid(format!(
                    "provisioned_concurrency {} exceeds reserved_concurrency {reserved}",
                    f.provisioned_concurrency
                )));
            }
            for (alias, version) in &f.aliases {
                if version != "$LATEST" && !f.versions.contains(version) {
                    return Err(invalid(format!(
                        "alias {alias} points at version {version}, which is not published"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(
            &path,
            r#"{"schema_version":1,"functions":{"f":{"runtime":"python3.12","handler":"app.h","code":{"dir":"code"},"versions":["1"],"aliases":{"live":"1"}}}}"#,
        )
        .unwrap();
        let m = Manifest::load(&path).unwrap();
        let f = &m.functions["f"];
        assert_eq!(f.code, Code::Dir(dir.path().join("code")));
        assert_eq!(
            (f.memory_mb, f.timeout_s, f.ephemeral_storage_mb),
            (128, 3.0, 512)
        );
    }

    #[test]
    fn refuses_what_lambda_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let cases = [
            (r#"{"schema_version":2}"#, "newer than this Lambdock"),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"memory_mb":64}}}"#,
                "memory_mb 64",
            ),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"aliases":{"live":"3"}}}}"#,
                "alias live points at version 3",
            ),
            (
                r#"{"schema_version":1,"functions":{"bad name":{"runtime":"x","code":{"dir":"."}}}}"#,
                "names are",
            ),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"reserved_concurrency":1,"provisioned_concurrency":2}}}"#,
                "exceeds reserved",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Manifest::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
