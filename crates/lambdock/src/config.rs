//! `lambdock.toml`: every option of every command can be set in a TOML file, under the name of
//! its `LAMBDOCK_*` environment variable without the prefix, in lower case (`aws_port = 3001` is
//! `LAMBDOCK_AWS_PORT=3001`). The environment wins over the file, and the command line over
//! both. The file is `./lambdock.toml`, or the one `LAMBDOCK_CONFIG` names.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;

/// The environment variables of every option of every command.
fn known_variables<C: CommandFactory>() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, out: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                out.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeSet::new();
    walk(&C::command(), &mut out);
    out
}

/// The settings of the configuration file as environment variables to set (those not set
/// already), or an error naming the file and the setting.
pub fn from_file<C: CommandFactory>() -> Result<Vec<(String, String)>, String> {
    let explicit = std::env::var_os("LAMBDOCK_CONFIG").map(PathBuf::from);
    let path = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from("lambdock.toml"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) if explicit.is_none() => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let known = known_variables::<C>();
    let mut vars = Vec::new();
    for (key, value) in table {
        let name = format!("LAMBDOCK_{}", key.to_uppercase().replace('-', "_"));
        if !known.contains(&name) {
            return Err(format!("{}: unknown setting {key:?}", path.display()));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        if std::env::var_os(&name).is_none() {
            vars.push((name, text));
        }
    }
    Ok(vars)
}
