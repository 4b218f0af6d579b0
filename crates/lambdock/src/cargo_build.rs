//! The build step `sam build` runs for Rust functions (`Metadata: BuildMethod:
//! rust-cargolambda`): the function's Cargo package is built and its `bootstrap` binary becomes
//! the function's code, as `cargo lambda build` would make it.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lambdock_template::Compiled;
use lambdock_template::manifest::Code;

/// The build method this step runs.
const RUST: &str = "rust-cargolambda";

/// Builds every function whose build method is [`RUST`] and points its code at a folder that
/// holds only its `bootstrap`, under `build_dir/cargo/<function>`. `profile` is a Cargo profile
/// (`release`, as `sam build` uses; `dev` builds faster).
pub fn run(compiled: &mut Compiled, build_dir: &Path, profile: &str) -> Result<(), Box<dyn Error>> {
    let rust: Vec<String> = compiled
        .build_methods
        .iter()
        .filter(|(_, m)| m.as_str() == RUST)
        .map(|(f, _)| f.clone())
        .collect();
    for name in rust {
        let Some(function) = compiled.manifest.functions.get_mut(&name) else {
            continue;
        };
        let Code::Dir(package) = &function.code else {
            continue;
        };
        eprintln!("Building function {name} with cargo ({profile})");
        let binary = cargo_build(package, profile)
            .map_err(|e| format!("function {name}: building {}: {e}", package.display()))?;
        let out = std::path::absolute(build_dir.join("cargo").join(&name))?;
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        std::fs::create_dir_all(&out)?;
        std::fs::copy(&binary, out.join("bootstrap"))
            .map_err(|e| format!("copying {}: {e}", binary.display()))?;
        function.code = Code::Dir(out);
        compiled.build_methods.remove(&name);
    }
    Ok(())
}

/// Runs `cargo build` in `package` and returns the path of its `bootstrap` binary (or its only
/// binary), read from cargo's JSON messages.
fn cargo_build(package: &Path, profile: &str) -> Result<PathBuf, Box<dyn Error>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(package)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build failed ({})", output.status).into());
    }
    let mut binaries = Vec::new();
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let manifest = message["manifest_path"].as_str().map(Path::new);
        let is_this_package = manifest
            .and_then(Path::parent)
            .and_then(|p| p.canonicalize().ok())
            == package.canonicalize().ok();
        if message["reason"] == "compiler-artifact"
            && is_this_package
            && message["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
            && let Some(exe) = message["executable"].as_str()
        {
            binaries.push((
                message["target"]["name"].as_str().unwrap_or("").to_string(),
                PathBuf::from(exe),
            ));
        }
    }
    match binaries.as_slice() {
        [(_, only)] => Ok(only.clone()),
        many => many
            .iter()
            .find(|(n, _)| n == "bootstrap")
            .map(|(_, p)| p.clone())
            .ok_or_else(|| {
                format!(
                    "the package has {} binaries and none is named bootstrap",
                    many.len()
                )
                .into()
            }),
    }
}
