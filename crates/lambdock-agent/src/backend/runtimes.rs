//! The runtime table: what command starts a function of each Lambda runtime on this node.
//!
//! `provided`, `provided.al2` and `provided.al2023` run the `bootstrap` of the code or of a layer,
//! as Lambda does. `python3.x` runs `python -m awslambdaric <handler>` with an interpreter that
//! has `awslambdaric` and `boto3`, like AWS's Python runtimes (`make setup` creates one in
//! `.venv`). Entries can be added or replaced from the configuration (`[runtimes."name"]` with a
//! `command` whose `{handler}` is replaced, and an optional `environment`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lambdock_template::runtimes::{PROVIDED, PYTHON_VERSIONS};
use serde::Deserialize;

use super::BackendError;

/// How a runtime starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RuntimeEntry {
    /// A command line; `{handler}` is replaced by the function's handler.
    Command {
        /// The command.
        command: Vec<String>,
        /// Extra environment (for example `AWS_EXECUTION_ENV`).
        #[serde(default)]
        environment: BTreeMap<String, String>,
    },
    /// The `bootstrap` executable of the code or a layer.
    Bootstrap {
        /// Always true.
        bootstrap: bool,
    },
}

/// A runtime resolved for one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The command line.
    pub command: Vec<String>,
    /// Runtime-specific environment.
    pub environment: BTreeMap<String, String>,
}

/// All runtimes this node can run.
#[derive(Debug)]
pub struct RuntimeTable {
    entries: BTreeMap<String, RuntimeEntry>,
    checked: Mutex<BTreeMap<PathBuf, Result<(), String>>>,
}

impl RuntimeTable {
    /// The default table, with `python` as the interpreter of every `python3.x`.
    pub fn new(python: &Path) -> Self {
        let mut entries = BTreeMap::new();
        for name in PROVIDED {
            entries.insert(
                name.to_string(),
                RuntimeEntry::Bootstrap { bootstrap: true },
            );
        }
        for version in PYTHON_VERSIONS {
            let name = format!("python{version}");
            entries.insert(
                name.clone(),
                RuntimeEntry::Command {
                    command: vec![
                        python.display().to_string(),
                        "-m".into(),
                        "awslambdaric".into(),
                        "{handler}".into(),
                    ],
                    environment: BTreeMap::from([
                        (
                            "AWS_EXECUTION_ENV".to_string(),
                            format!("AWS_Lambda_{name}"),
                        ),
                        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
                    ]),
                },
            );
        }
        RuntimeTable {
            entries,
            checked: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds or replaces entries from a TOML table of `name = { command = [...] }` or
    /// `name = { bootstrap = true }`.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), String> {
        let extra: BTreeMap<String, RuntimeEntry> =
            toml::from_str(text).map_err(|e| format!("runtime table: {e}"))?;
        self.entries.extend(extra);
        Ok(())
    }

    /// The runtimes known, by name.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// How to start `runtime` for a function whose code and layers are at these paths.
    pub fn resolve(
        &self,
        runtime: &str,
        handler: &str,
        code_dir: &Path,
        layers: &[PathBuf],
    ) -> Result<Launch, BackendError> {
        let entry = self.entries.get(runtime).ok_or_else(|| {
            BackendError::InvalidSpec(format!(
                "unknown runtime {runtime:?}; this node runs: {}",
                self.names().join(", ")
            ))
        })?;
        match entry {
            RuntimeEntry::Bootstrap { .. } => {
                // Lambda looks in the code first, then in the layers (merged at /opt).
                let found = std::iter::once(code_dir)
                    .chain(layers.iter().rev().map(PathBuf::as_path))
                    .map(|dir| dir.join("bootstrap"))
                    .find(|p| is_executable(p));
                match found {
                    Some(path) => Ok(Launch {
                        command: vec![path.display().to_string()],
                        environment: BTreeMap::new(),
                    }),
                    None => Err(BackendError::InvalidSpec(format!(
                        "runtime {runtime} needs an executable `bootstrap` in the code ({}) or in a layer; none found",
                        code_dir.display()
                    ))),
                }
            }
            RuntimeEntry::Command {
                command,
                environment,
            } => {
                if let Some(program) = command.first() {
                    self.check_program(runtime, Path::new(program))?;
                }
                Ok(Launch {
                    command: command
                        .iter()
                        .map(|a| a.replace("{handler}", handler))
                        .collect(),
                    environment: environment.clone(),
                })
            }
        }
    }

    /// Checks once per program that it exists (and, for Python, has awslambdaric).
    fn check_program(&self, runtime: &str, program: &Path) -> Result<(), BackendError> {
        let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let result = checked
            .entry(program.to_path_buf())
            .or_insert_with(|| probe(program))
            .clone();
        result.map_err(|why| {
            BackendError::Unavailable(format!(
                "runtime {runtime} cannot start: {why}. Run `make setup` (it creates .venv with awslambdaric and boto3), or point the runtime at an interpreter that has them (`--python PATH` or [runtimes.\"{runtime}\"] command in lambdock.toml)"
            ))
        })
    }
}

fn probe(program: &Path) -> Result<(), String> {
    if !is_executable(program) {
        return Err(format!("{} is not an executable file", program.display()));
    }
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("python") {
        let out = std::process::Command::new(program)
            .args(["-c", "import awslambdaric"])
            .output()
            .map_err(|e| format!("{} cannot run: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!("{} has no awslambdaric module", program.display()));
        }
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_runtime_names_the_known_ones() {
        let table = RuntimeTable::new(Path::new("/nonexistent/python"));
        let err = table
            .resolve("nodejs20.x", "h", Path::new("/tmp"), &[])
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown runtime \"nodejs20.x\""),
            "{err}"
        );
        assert!(err.to_string().contains("provided.al2023"), "{err}");
    }

    #[test]
    fn missing_python_is_explained() {
        let table = RuntimeTable::new(Path::new("/nonexistent/python"));
        let err = table
            .resolve("python3.12", "app.handler", Path::new("/tmp"), &[])
            .unwrap_err();
        assert!(matches!(err, BackendError::Unavailable(_)));
        assert!(
            err.to_string().contains("runtime python3.12 cannot start"),
            "{err}"
        );
        assert!(err.to_string().contains("make setup"), "{err}");
    }

    #[test]
    fn bootstrap_is_found_in_code_then_layers() {
        use std::os::unix::fs::PermissionsExt;
        let code = tempfile::tempdir().unwrap();
        let layer = tempfile::tempdir().unwrap();
        let table = RuntimeTable::new(Path::new("/x"));
        let err = table
            .resolve("provided.al2023", "h", code.path(), &[layer.path().into()])
            .unwrap_err();
        assert!(
            err.to_string().contains("needs an executable `bootstrap`"),
            "{err}"
        );
        let bootstrap = layer.path().join("bootstrap");
        std::fs::write(&bootstrap, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
        let launch = table
            .resolve("provided", "h", code.path(), &[layer.path().into()])
            .unwrap();
        assert_eq!(launch.command, [bootstrap.display().to_string()]);
    }

    #[test]
    fn table_is_configurable() {
        let mut table = RuntimeTable::new(Path::new("/x"));
        table
            .merge_toml("[\"custom1\"]\ncommand = [\"/bin/sh\", \"-c\", \"run {handler}\"]\n")
            .unwrap();
        let launch = table
            .resolve("custom1", "my.h", Path::new("/tmp"), &[])
            .unwrap();
        assert_eq!(launch.command, ["/bin/sh", "-c", "run my.h"]);
    }
}
