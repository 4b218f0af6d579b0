//! `lambdock`: the one binary of Lambdock, with a subcommand per part of the design.

mod agent;
mod apigw;
mod build;
mod cargo_build;
mod client;
mod config;
mod deploy;
mod dynamodb;
mod s3;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lambdock", version, about = "AWS Lambda on your own machines")]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "LAMBDOCK_LOG", default_value = "info", global = true)]
    log: String,
    /// Threads of the async runtime (0: one per core).
    #[arg(long, env = "LAMBDOCK_THREADS", default_value_t = 0, global = true)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the per-node agent: the gRPC service that creates and measures workers.
    Agent(Box<agent::AgentArgs>),
    /// Run the whole platform on this machine: the gateway and an agent with the process backend.
    Up(Box<up::UpArgs>),
    /// Compile a SAM template into code bundles and a manifest (like `sam build`).
    Build(Box<build::BuildArgs>),
    /// Build a SAM template, create its buckets and tables, and switch the gateway to it.
    Deploy(Box<deploy::DeployArgs>),
    /// Run a gateway over an agent.
    Gateway(Box<up::GatewayOnlyArgs>),
    /// Invoke a function through the gateway (SigV4-signed).
    Invoke(Box<client::InvokeArgs>),
    /// List the gateway's workers: function, state, age, memory.
    Ps(Box<client::Endpoint>),
    /// List the schedules: expression, time zone, enabled, next and last run.
    Schedules(Box<client::Endpoint>),
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    match config::from_file::<Cli>() {
        Ok(vars) => {
            for (name, value) in vars {
                // SAFETY: nothing else runs yet: no thread exists that could read the
                // environment concurrently.
                unsafe { std::env::set_var(name, value) };
            }
        }
        Err(e) => {
            eprintln!("lambdock: {e}");
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Version => {
            println!("lambdock {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Build(args) => match build::run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lambdock build: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Agent(args) => block_on("agent", cli.threads, agent::run(*args)),
        Command::Up(args) => block_on("up", cli.threads, up::up(*args)),
        Command::Gateway(args) => block_on("gateway", cli.threads, up::gateway(*args)),
        Command::Deploy(args) => block_on("deploy", 1, deploy::deploy(*args)),
        Command::Invoke(args) => block_on("invoke", 1, client::invoke(*args)),
        Command::Ps(args) => block_on("ps", 1, client::ps(*args)),
        Command::Schedules(args) => block_on("schedules", 1, client::schedules(*args)),
    }
}

fn block_on(
    what: &str,
    threads: usize,
    fut: impl std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lambdock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambdock {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves at SIGTERM or Ctrl-C.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => std::future::pending().await,
    }
}
