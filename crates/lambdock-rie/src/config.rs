//! Command line and environment of `lambdock-rie`.
//!
//! The command line is AWS's `aws-lambda-rie` one (`lambdock-rie [flags] <bootstrap> [args...]`) and
//! the function settings come from the same environment variables, so a Dockerfile that uses
//! AWS's emulator switches by changing one path. Flags that AWS's emulator does not have are ours
//! and all have defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Parser, ValueEnum};

/// Defaults of AWS's emulator, kept so that images built for it behave the same.
const DEFAULT_FUNCTION_NAME: &str = "test_function";
const DEFAULT_MEMORY_MB: u64 = 3008;
const DEFAULT_TIMEOUT_SECS: f64 = 300.0;

/// Where AWS's emulator looks for a bootstrap when none is given, in order.
const BOOTSTRAP_CANDIDATES: [&str; 3] = [
    "/var/task/bootstrap",
    "/opt/bootstrap",
    "/var/runtime/bootstrap",
];

/// When the runtime is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitMode {
    /// At the first invocation, as AWS's emulator does.
    Lazy,
    /// As soon as the emulator starts, as Lambda does for provisioned concurrency.
    Eager,
}

/// The command line, AWS-compatible first.
#[derive(Debug, Parser)]
#[command(
    name = "lambdock-rie",
    version,
    about = "Lambda Runtime API server and Runtime Interface Emulator (drop-in for aws-lambda-rie)"
)]
pub struct Cli {
    /// Address of the invoke interface (`POST /2015-03-31/functions/function/invocations`).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub runtime_interface_emulator_address: SocketAddr,

    /// Address of the Runtime API the runtime talks to (`AWS_LAMBDA_RUNTIME_API`).
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub runtime_api_address: SocketAddr,

    /// Log level of the emulator itself (error, warn, info, debug, trace).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Accepted for compatibility with AWS's emulator; SnapStart restore is not emulated.
    #[arg(long)]
    pub enable_init_caching: bool,

    /// Start the runtime at the first invocation (lazy, AWS's emulator) or at once (eager).
    #[arg(long, env = "LAMBDOCK_INIT_MODE", value_enum, default_value = "lazy")]
    pub init_mode: InitMode,

    /// Seconds the init phase may take before it is abandoned and retried at the next invoke.
    #[arg(long, env = "LAMBDOCK_INIT_TIMEOUT", default_value_t = 10.0)]
    pub init_timeout: f64,

    /// Directory of external extensions started beside the runtime.
    #[arg(
        long,
        env = "LAMBDOCK_EXTENSIONS_DIR",
        default_value = "/opt/extensions"
    )]
    pub extensions_dir: PathBuf,

    /// Listen for invocations on this inherited, already bound socket (the agent passes one so
    /// that it knows the port before the process starts).
    #[arg(long)]
    pub invoke_fd: Option<i32>,

    /// Serve the Runtime API on this inherited, already bound socket.
    #[arg(long)]
    pub runtime_api_fd: Option<i32>,

    /// Enter a new mount and PID namespace laid out like a Lambda sandbox (needs root): the
    /// code at /var/task, the layers at /opt, a private /tmp.
    #[arg(long, requires = "task_root")]
    pub isolate: bool,

    /// With --isolate: the code directory, mounted read-only at /var/task.
    #[arg(long)]
    pub task_root: Option<PathBuf>,

    /// With --isolate: a layer directory, merged read-only at /opt (repeat, in order).
    #[arg(long = "layer")]
    pub layers: Vec<PathBuf>,

    /// With --isolate: a host directory under /tmp that stays visible in the private /tmp
    /// (repeat).
    #[arg(long = "keep-path")]
    pub keep_paths: Vec<PathBuf>,

    /// With --isolate: size of the private /tmp in MB.
    #[arg(long, default_value_t = 512)]
    pub tmp_size_mb: u64,

    /// The runtime's bootstrap and its arguments; the last argument is the handler.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub bootstrap: Vec<String>,
}

/// Everything the sandbox needs to know, resolved once at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Invoke interface address.
    pub invoke_address: SocketAddr,
    /// Runtime API address.
    pub runtime_api_address: SocketAddr,
    /// The runtime's command line.
    pub bootstrap: Vec<String>,
    /// Working directory of the runtime.
    pub working_dir: PathBuf,
    /// Function settings, as Lambda reports them.
    pub function: FunctionSettings,
    /// When the runtime starts.
    pub init_mode: InitMode,
    /// Bound of the init phase.
    pub init_timeout: Duration,
    /// External extensions directory.
    pub extensions_dir: PathBuf,
    /// Inherited invoke listener.
    pub invoke_fd: Option<i32>,
    /// Inherited Runtime API listener.
    pub runtime_api_fd: Option<i32>,
}

/// The function as the Lambda service describes it to the sandbox.
#[derive(Debug, Clone)]
pub struct FunctionSettings {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_mb: u64,
    /// `AWS_LAMBDA_FUNCTION_TIMEOUT`.
    pub timeout: Duration,
    /// `_HANDLER`.
    pub handler: String,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`.
    pub log_group: String,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub log_stream: String,
    /// The ARN the runtime sees when the caller does not name one.
    pub default_arn: String,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No bootstrap given and none of the standard places has one.
    #[error(
        "no bootstrap: pass one on the command line or provide one of {}",
        BOOTSTRAP_CANDIDATES.join(", ")
    )]
    NoBootstrap,
    /// A numeric variable that does not parse.
    #[error("{name}={value:?} is not a valid {what}")]
    BadVariable {
        /// Variable name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        what: &'static str,
    },
}

impl Config {
    /// Resolves the command line against an environment (a lookup function, so tests need not
    /// touch the process environment).
    pub fn resolve(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (bootstrap, working_dir, arg_handler) = if cli.bootstrap.is_empty() {
            let found = BOOTSTRAP_CANDIDATES
                .iter()
                .find(|p| Path::new(p).is_file())
                .ok_or(ConfigError::NoBootstrap)?;
            (vec![(*found).to_string()], PathBuf::from("/var/task"), None)
        } else {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/var/task"));
            let handler =
                (cli.bootstrap.len() > 1).then(|| cli.bootstrap[cli.bootstrap.len() - 1].clone());
            (cli.bootstrap.clone(), cwd, handler)
        };
        let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());

        let name =
            non_empty("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| DEFAULT_FUNCTION_NAME.into());
        let version = non_empty("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|| "$LATEST".into());
        let memory_mb = match non_empty("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            Some(v) => v.parse().map_err(|_| ConfigError::BadVariable {
                name: "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                value: v,
                what: "memory size in MB",
            })?,
            None => DEFAULT_MEMORY_MB,
        };
        let timeout_secs = match non_empty("AWS_LAMBDA_FUNCTION_TIMEOUT") {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or(ConfigError::BadVariable {
                    name: "AWS_LAMBDA_FUNCTION_TIMEOUT",
                    value: v,
                    what: "timeout in seconds",
                })?,
            None => DEFAULT_TIMEOUT_SECS,
        };
        let handler = non_empty("AWS_LAMBDA_FUNCTION_HANDLER")
            .or_else(|| non_empty("_HANDLER"))
            .or(arg_handler)
            .unwrap_or_default();
        let region = non_empty("AWS_REGION")
            .or_else(|| non_empty("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let log_group =
            non_empty("AWS_LAMBDA_LOG_GROUP_NAME").unwrap_or_else(|| format!("/aws/lambda/{name}"));
        let log_stream =
            non_empty("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|| log_stream_name(&version));
        let default_arn = format!("arn:aws:lambda:{region}:012345678912:function:{name}");
        let init_timeout = Duration::try_from_secs_f64(cli.init_timeout).map_err(|_| {
            ConfigError::BadVariable {
                name: "LAMBDOCK_INIT_TIMEOUT",
                value: cli.init_timeout.to_string(),
                what: "duration in seconds",
            }
        })?;

        Ok(Config {
            invoke_address: cli.runtime_interface_emulator_address,
            runtime_api_address: cli.runtime_api_address,
            bootstrap,
            working_dir,
            function: FunctionSettings {
                name,
                version,
                memory_mb,
                timeout: Duration::from_secs_f64(timeout_secs),
                handler,
                region,
                log_group,
                log_stream,
                default_arn,
            },
            init_mode: cli.init_mode,
            init_timeout,
            extensions_dir: cli.extensions_dir,
            invoke_fd: cli.invoke_fd,
            runtime_api_fd: cli.runtime_api_fd,
        })
    }

    /// The reserved variables Lambda sets for the runtime (A1.8), over the inherited
    /// environment. Values the operator already set (other than the Runtime API address) win, as
    /// with AWS's emulator, which forwards the container's environment.
    pub fn runtime_environment(
        &self,
        inherited: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        let f = &self.function;
        let mut vars = vec![
            (
                "AWS_LAMBDA_RUNTIME_API".to_string(),
                self.runtime_api_address.to_string(),
            ),
            ("_HANDLER".into(), f.handler.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), f.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), f.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                f.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_LOG_GROUP_NAME".into(), f.log_group.clone()),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), f.log_stream.clone()),
            ("AWS_REGION".into(), f.region.clone()),
            ("AWS_DEFAULT_REGION".into(), f.region.clone()),
        ];
        let task_root = self.working_dir.to_string_lossy();
        for (key, default) in [
            ("LAMBDA_TASK_ROOT", task_root.as_ref()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("TZ", ":UTC"),
            ("LANG", "en_US.UTF-8"),
            ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ] {
            if inherited(key).is_none() {
                vars.push((key.into(), default.into()));
            }
        }
        vars
    }
}

/// `YYYY/MM/DD/[$LATEST]<32 hex>`, the stream name format of Lambda.
fn log_stream_name(version: &str) -> String {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let date = now.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    format!("{date}/[{version}]{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("lambdock-rie").chain(args.iter().copied()))
            .unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::resolve(cli, |k| env.get(k).cloned())
    }

    #[test]
    fn aws_command_line_is_accepted() {
        let cfg = resolve(
            &[
                "--runtime-interface-emulator-address",
                "127.0.0.1:9999",
                "/usr/bin/python3",
                "-m",
                "awslambdaric",
                "app.handler",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(cfg.invoke_address.to_string(), "127.0.0.1:9999");
        assert_eq!(cfg.runtime_api_address.to_string(), "127.0.0.1:9001");
        assert_eq!(
            cfg.bootstrap,
            ["/usr/bin/python3", "-m", "awslambdaric", "app.handler"]
        );
        assert_eq!(cfg.function.handler, "app.handler");
        assert_eq!(cfg.function.name, "test_function");
        assert_eq!(cfg.function.memory_mb, 3008);
        assert_eq!(cfg.function.timeout, Duration::from_secs(300));
    }

    #[test]
    fn environment_overrides_defaults() {
        let cfg = resolve(
            &["./bootstrap"],
            &[
                ("AWS_LAMBDA_FUNCTION_NAME", "fn"),
                ("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
                ("_HANDLER", "h.x"),
                ("AWS_REGION", "eu-west-1"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.function.handler, "h.x");
        assert_eq!(cfg.function.timeout, Duration::from_secs(3));
        assert_eq!(cfg.function.log_group, "/aws/lambda/fn");
        assert_eq!(
            cfg.function.default_arn,
            "arn:aws:lambda:eu-west-1:012345678912:function:fn"
        );
        assert!(cfg.function.log_stream.contains("/[$LATEST]"));
    }

    #[test]
    fn bad_numbers_are_named() {
        let err = resolve(&["./b"], &[("AWS_LAMBDA_FUNCTION_TIMEOUT", "soon")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AWS_LAMBDA_FUNCTION_TIMEOUT=\"soon\" is not a valid timeout in seconds"
        );
    }

    #[test]
    fn runtime_environment_keeps_operator_values() {
        let cfg = resolve(&["./b"], &[]).unwrap();
        let vars = cfg.runtime_environment(|k| (k == "TZ").then(|| "Europe/Paris".to_string()));
        assert!(
            vars.iter()
                .any(|(k, v)| k == "AWS_LAMBDA_RUNTIME_API" && v == "127.0.0.1:9001")
        );
        assert!(!vars.iter().any(|(k, _)| k == "TZ"));
        let cwd = std::env::current_dir().unwrap();
        assert!(
            vars.iter()
                .any(|(k, v)| k == "LAMBDA_TASK_ROOT" && *v == cwd.to_string_lossy())
        );
    }
}
