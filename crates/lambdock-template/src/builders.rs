//! The `sam build` builders Lambdock runs. `rust-cargolambda` (what `sam init` gives a Rust
//! function) becomes a plain `cargo build` of the function's crate for this machine, whose
//! binary is installed as the function's `bootstrap`: on-prem the function runs on the host's
//! own target, so cargo-lambda's cross-compilation is not needed.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::compile::BuildMethod;
use crate::error::TemplateError;

/// Builds a Rust function into `dest/bootstrap`. `BuildProperties.Binary` picks the binary of
/// a crate with several; `BuildProperties.Profile` the cargo profile (default `release`).
pub(crate) fn rust_cargolambda(
    function: &str,
    src: &Path,
    method: &BuildMethod,
    dest: &Path,
    target_dir: &Path,
) -> Result<(), TemplateError> {
    let fail = |message: String| TemplateError::Build {
        function: function.to_string(),
        message,
    };
    let manifest = src.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(fail(format!(
            "BuildMethod rust-cargolambda needs {}",
            manifest.display()
        )));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = method
        .properties
        .get("Profile")
        .map_or("release", String::as_str);
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--message-format=json-render-diagnostics",
        "--profile",
        profile,
    ])
    .arg("--manifest-path")
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target_dir)
    .stdin(Stdio::null())
    .stderr(Stdio::inherit());
    let binary = method.properties.get("Binary");
    if let Some(bin) = binary {
        cmd.args(["--bin", bin]);
    }
    tracing::info!(function, crate_dir = %src.display(), "cargo build");
    let out = cmd
        .output()
        .map_err(|e| fail(format!("running {}: {e}", cargo.to_string_lossy())))?;
    if !out.status.success() {
        return Err(fail(format!("cargo build failed ({})", out.status)));
    }
    let executables: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|m| {
            Some((
                m["target"]["name"].as_str()?.to_string(),
                m["executable"].as_str()?.to_string(),
            ))
        })
        .collect();
    let exe = match (executables.as_slice(), binary) {
        ([(_, exe)], _) => exe,
        (many, Some(bin)) => many
            .iter()
            .find(|(name, _)| name == bin)
            .map(|(_, exe)| exe)
            .ok_or_else(|| fail(format!("cargo built no binary named {bin}")))?,
        ([], None) => return Err(fail("the crate has no binary".into())),
        (many, None) => {
            let mut names: Vec<&str> = many.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            return Err(fail(format!(
                "the crate has several binaries ({}); set Metadata.BuildProperties.Binary",
                names.join(", ")
            )));
        }
    };
    std::fs::create_dir_all(dest).map_err(|source| TemplateError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    std::fs::copy(exe, dest.join("bootstrap")).map_err(|source| TemplateError::Io {
        path: exe.into(),
        source,
    })?;
    Ok(())
}
