//! Worker cold start on the agent's process backend: CreateWorker to the first answered
//! invoke, next to the physical baseline of starting the same runtime by hand (fork/exec until
//! it asks the Runtime API for its first event).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lambdock_proto::agent::agent_client::AgentClient;
use lambdock_proto::agent::{
    CodeBundle, CreateWorkerRequest, InvokeRequest, WorkerRef, create_worker_request,
};

use crate::{Error, percentile, ratio};

struct AgentProcess {
    child: Child,
    addr: SocketAddr,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn start_agent(
    lambdock: &Path,
    rie: &Path,
    python: &Path,
    data: &Path,
) -> Result<AgentProcess, Error> {
    let addr = free_addr()?;
    let child = Command::new(lambdock)
        .args(["--log", "warn", "agent", "--listen", &addr.to_string()])
        .args(["--metrics-listen", &free_addr()?.to_string()])
        .arg("--data-dir")
        .arg(data)
        .arg("--rie")
        .arg(rie)
        .arg("--python")
        .arg(python)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > until {
            return Err("the agent did not listen".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(AgentProcess { child, addr })
}

/// Spawn to the first `GET /next` on a Runtime API stand-in.
fn physical_start(
    command: &[String],
    dir: &Path,
    env: &[(&str, String)],
) -> Result<Duration, Error> {
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?;
    let started = Instant::now();
    listener.set_nonblocking(true)?;
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(dir)
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        // What every runtime client expects to find (lambda_runtime refuses to start without).
        .env("AWS_LAMBDA_FUNCTION_NAME", "baseline")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/baseline")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "baseline")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let until = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait()? {
                    return Err(format!(
                        "{} exited before asking for an event ({status})",
                        command[0]
                    )
                    .into());
                }
                if Instant::now() > until {
                    let _ = child.kill();
                    return Err(format!("{} never asked for an event", command[0]).into());
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    conn.set_nonblocking(false)?;
    let mut buf = [0u8; 64];
    let _ = conn.read(&mut buf)?;
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    Ok(elapsed)
}

fn python_startup(python: &Path) -> Result<Duration, Error> {
    let started = Instant::now();
    Command::new(python).args(["-c", "pass"]).status()?;
    Ok(started.elapsed())
}

struct Row {
    name: String,
    ours_p50: f64,
    ours_p99: f64,
    base_p50: f64,
    base_p99: f64,
}

/// Measures and prints the cold-start table.
pub async fn run(
    lambdock: &Path,
    rie: &Path,
    function: &Path,
    python: &Path,
    repo: &Path,
    creations: usize,
) -> Result<(), Error> {
    // The runtimes start in their code directory: relative paths would not resolve there.
    let (lambdock, rie, function) = (
        lambdock.canonicalize()?,
        rie.canonicalize()?,
        function.canonicalize()?,
    );
    let python = std::path::absolute(python)?;
    let (lambdock, rie, function, python) = (
        lambdock.as_path(),
        rie.as_path(),
        function.as_path(),
        python.as_path(),
    );
    let data = tempfile::tempdir()?;
    let agent = start_agent(lambdock, rie, python, data.path())?;
    let mut client = AgentClient::connect(format!("http://{}", agent.addr)).await?;
    let rust_code = tempfile::tempdir()?;
    std::fs::copy(function, rust_code.path().join("bootstrap"))?;
    let python_code: PathBuf = repo.join("fixtures/python");

    let cases = [
        (
            "Rust (lambda_runtime), provided.al2023",
            rust_code.path().to_path_buf(),
            "provided.al2023",
            "bootstrap",
        ),
        (
            "Python (awslambdaric), python3.12",
            python_code.clone(),
            "python3.12",
            "app.handler",
        ),
    ];
    let mut rows = Vec::new();
    for (name, code, runtime, handler) in cases {
        let mut ours = Vec::with_capacity(creations);
        let mut base = Vec::with_capacity(creations);
        for i in 0..creations {
            let started = Instant::now();
            let worker = client
                .create_worker(CreateWorkerRequest {
                    owner_id: "bench".into(),
                    function_name: format!("bench-{runtime}-{i}"),
                    code: Some(create_worker_request::Code::Bundle(CodeBundle {
                        code_dir: code.display().to_string(),
                        layer_dirs: vec![],
                    })),
                    runtime: runtime.into(),
                    handler: handler.into(),
                    memory_mb: 256,
                    timeout_ms: 10_000,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let answer = client
                .invoke(InvokeRequest {
                    owner_id: "bench".into(),
                    worker_id: worker.id.clone(),
                    payload: br#"{"action":"noop"}"#.to_vec(),
                    headers: HashMap::new(),
                    timeout_ms: 0,
                })
                .await?
                .into_inner();
            ours.push(started.elapsed());
            if answer.status != 200 || answer.body != b"{}" {
                return Err(format!(
                    "{name}: unexpected answer {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                )
                .into());
            }
            client
                .destroy_worker(WorkerRef {
                    owner_id: "bench".into(),
                    worker_id: worker.id,
                })
                .await?;
            let command: Vec<String> = if runtime.starts_with("python") {
                vec![
                    python.display().to_string(),
                    "-m".into(),
                    "awslambdaric".into(),
                    handler.into(),
                ]
            } else {
                vec![function.display().to_string()]
            };
            let env = [
                ("LAMBDA_TASK_ROOT", code.display().to_string()),
                ("_HANDLER", handler.to_string()),
            ];
            base.push(physical_start(&command, &code, &env)?);
        }
        ours.sort();
        base.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        rows.push(Row {
            name: name.to_string(),
            ours_p50: ms(percentile(&ours, 0.5)),
            ours_p99: ms(percentile(&ours, 0.99)),
            base_p50: ms(percentile(&base, 0.5)),
            base_p99: ms(percentile(&base, 0.99)),
        });
    }
    let mut interpreter: Vec<Duration> = (0..creations.min(20))
        .map(|_| python_startup(python))
        .collect::<Result<_, _>>()?;
    interpreter.sort();

    println!();
    println!(
        "agent, process backend: CreateWorker to first answered invoke ({creations} creations each) vs fork/exec of the same runtime to its first /next"
    );
    println!(
        "{:<40} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "function", "ours p50", "ours p99", "fork p50", "fork p99", "p50 ratio"
    );
    for r in &rows {
        println!(
            "{:<40} {:>8.1}ms {:>8.1}ms {:>10.1}ms {:>10.1}ms {:>10}",
            r.name,
            r.ours_p50,
            r.ours_p99,
            r.base_p50,
            r.base_p99,
            ratio(r.ours_p50, r.base_p50)
        );
    }
    println!(
        "python -c pass (interpreter start-up) p50: {:.1} ms",
        percentile(&interpreter, 0.5).as_secs_f64() * 1e3
    );
    Ok(())
}
