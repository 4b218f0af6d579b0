//! `lambdock agent`: the per-node agent with the process backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use lambdock_agent::backend::Backend;
use lambdock_agent::backend::process::{ProcessBackend, ProcessConfig};
use lambdock_agent::backend::runtimes::RuntimeTable;
use lambdock_agent::metrics::Metrics;
use lambdock_agent::server::{ServeOptions, TlsFiles, serve};
use lambdock_agent::service::AgentService;

/// Options of `lambdock agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// gRPC listen address.
    #[arg(long, env = "LAMBDOCK_AGENT_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Prometheus metrics listen address (`/metrics`).
    #[arg(
        long,
        env = "LAMBDOCK_AGENT_METRICS_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    metrics_listen: SocketAddr,
    /// State and worker output.
    #[arg(long, env = "LAMBDOCK_DATA_DIR", default_value = ".lambdock/agent")]
    data_dir: PathBuf,
    /// How workers are made.
    #[arg(long, env = "LAMBDOCK_AGENT_BACKEND", default_value = "process", value_parser = ["process"])]
    backend: String,
    /// The lambdock-rie binary (default: next to this binary).
    #[arg(long, env = "LAMBDOCK_RIE")]
    rie: Option<PathBuf>,
    /// Python interpreter with awslambdaric and boto3, for python3.x runtimes (default: the
    /// repository's .venv next to the build, else python3 on PATH).
    #[arg(long, env = "LAMBDOCK_PYTHON")]
    python: Option<PathBuf>,
    /// TOML file of extra runtimes (`["name"] command = [...]` or `["name"] bootstrap = true`).
    #[arg(long, env = "LAMBDOCK_RUNTIMES")]
    runtimes: Option<PathBuf>,
    /// Run workers as plain processes even as root (no namespaces, no cgroups).
    #[arg(long)]
    no_isolation: bool,
    /// Server certificate (PEM) for TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA for client certificates: mutual TLS.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Allow plain-text gRPC on a non-loopback address.
    #[arg(long)]
    allow_plaintext: bool,
}

/// A binary installed next to this one.
pub fn beside_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(name);
    candidate.is_file().then_some(candidate)
}

/// The Python of the repository's `.venv` when this binary is `target/<profile>/lambdock`.
pub fn default_python() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .map(|dir| dir.join(".venv/bin/python"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// Runs the agent until SIGTERM or Ctrl-C.
pub async fn run(args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rie = args
        .rie
        .or_else(|| beside_exe("lambdock-rie"))
        .ok_or("lambdock-rie not found next to lambdock; pass --rie PATH")?;
    let python = args.python.unwrap_or_else(default_python);
    // Workers start in their code directory, so a relative interpreter path would not resolve.
    let python = std::path::absolute(&python).unwrap_or(python);
    let mut runtimes = RuntimeTable::new(&python);
    if let Some(path) = &args.runtimes {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        runtimes.merge_toml(&text)?;
    }
    let backend: Arc<dyn Backend> = Arc::new(ProcessBackend::new(ProcessConfig {
        data_dir: args.data_dir.clone(),
        rie,
        runtimes,
        isolation: !args.no_isolation,
    })?);
    let metrics = Arc::new(Metrics::default());
    let service = AgentService::start(backend, metrics.clone()).await?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        _ => None,
    };
    tracing::info!(listen = %args.listen, metrics = %args.metrics_listen, data_dir = %args.data_dir.display(), "agent ready");
    serve(
        service,
        metrics,
        ServeOptions {
            listen: args.listen,
            metrics_listen: Some(args.metrics_listen),
            tls,
            allow_plaintext: args.allow_plaintext,
        },
        crate::terminated(),
    )
    .await?;
    tracing::info!("agent stopped; workers keep running and are adopted at the next start");
    Ok(())
}
