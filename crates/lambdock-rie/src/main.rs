//! `lambdock-rie`: see the library's documentation.

use std::process::ExitCode;

use clap::Parser;
use lambdock_rie::api;
use lambdock_rie::config::{Cli, Config, InitMode};
use lambdock_rie::isolation::{self, Layout};
use lambdock_rie::logs::LogSink;
use lambdock_rie::sandbox::Sandbox;
use tokio::net::TcpListener;
use tracing_subscriber::filter::LevelFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.isolate {
        let layout = Layout {
            task_root: cli.task_root.clone().unwrap_or_default(),
            layers: cli.layers.clone(),
            tmp_size_mb: cli.tmp_size_mb,
            keep: cli.keep_paths.clone(),
        };
        // Before anything starts a thread: this forks.
        if let Err(e) = isolation::enter(&layout) {
            eprintln!("lambdock-rie: cannot set up the sandbox: {e}");
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::env::set_current_dir("/var/task") {
            eprintln!("lambdock-rie: cannot enter /var/task: {e}");
            return ExitCode::FAILURE;
        }
    }
    let level = cli
        .log_level
        .parse::<LevelFilter>()
        .unwrap_or(LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    if cli.enable_init_caching {
        tracing::warn!(
            "--enable-init-caching is accepted for compatibility; SnapStart restore is not emulated"
        );
    }
    let config = match Config::resolve(cli, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lambdock-rie: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: a sandbox serves one invocation at a time, and an idle worker should cost
    // next to nothing.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lambdock-rie: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(mut config: Config) -> ExitCode {
    let runtime_api = match listener(config.runtime_api_fd, config.runtime_api_address).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "lambdock-rie: cannot listen on {} (Runtime API): {e}",
                config.runtime_api_address
            );
            return ExitCode::FAILURE;
        }
    };
    let invoke_api = match listener(config.invoke_fd, config.invoke_address).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "lambdock-rie: cannot listen on {} (invoke interface): {e}",
                config.invoke_address
            );
            return ExitCode::FAILURE;
        }
    };
    // Port 0 picks a free port; the runtime must be told the real one.
    if let Ok(addr) = runtime_api.local_addr() {
        config.runtime_api_address = addr;
    }
    if let Ok(addr) = invoke_api.local_addr() {
        config.invoke_address = addr;
    }
    tracing::info!(
        invoke = %config.invoke_address,
        runtime_api = %config.runtime_api_address,
        bootstrap = ?config.bootstrap,
        "lambdock-rie ready"
    );
    let eager = config.init_mode == InitMode::Eager;
    let sandbox = Sandbox::new(config, LogSink::default());
    let s = sandbox.clone();
    tokio::spawn(api::serve(runtime_api, move |req| {
        api::runtime::handle(s.clone(), req)
    }));
    let s = sandbox.clone();
    tokio::spawn(api::serve(invoke_api, move |req| {
        api::invoke::handle(s.clone(), req)
    }));
    if eager {
        sandbox.start_eager();
    }
    wait_for_termination().await;
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still ends on SIGTERM, just without the
        // SHUTDOWN event for extensions.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// A listener: the inherited socket when one was passed, else a new one.
async fn listener(fd: Option<i32>, addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    match fd {
        Some(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: the parent passed this descriptor open, bound and listening, for us alone;
            // nothing else in this process owns it.
            let std_listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            // Inherited descriptors lose close-on-exec; the runtime must not get them.
            nix::fcntl::fcntl(
                &std_listener,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )?;
            std_listener.set_nonblocking(true)?;
            TcpListener::from_std(std_listener)
        }
        None => TcpListener::bind(addr).await,
    }
}
