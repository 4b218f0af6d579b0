//! `lambdock agent` over real gRPC: Python (awslambdaric) and Rust (lambda_runtime) workers,
//! the invoke proxy, pause and resume, metrics, logs, destroy, restart after kill -9, OOM, 50
//! concurrent workers, and every bad input.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use lambdock_proto::agent::agent_client::AgentClient;
use lambdock_proto::agent::{
    CodeBundle, CreateWorkerRequest, InvokeRequest, ListWorkersRequest, StreamLogsRequest, Worker,
    WorkerRef, WorkerState, create_worker_request,
};
use tonic::Code;
use tonic::transport::Channel;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from)
}

/// lambdock-rie and the Rust fixture, built once per test process.
fn build_helpers() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "lambdock-rie",
                "-p",
                "lambdock-fixture-rust",
            ])
            .current_dir(repo())
            .status()
            .expect("cargo build");
        assert!(
            status.success(),
            "building lambdock-rie and the Rust fixture failed"
        );
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Agent {
    child: Child,
    addr: String,
    metrics: String,
    data_dir: PathBuf,
    extra: Vec<String>,
}

impl Agent {
    fn start(data_dir: &Path, extra: &[&str]) -> Agent {
        // A port picked free can be taken by a parallel test first; the agent then exits at
        // start and new ports are tried.
        for _ in 0..5 {
            if let Some(agent) = Agent::try_start(data_dir, extra) {
                return agent;
            }
        }
        panic!("lambdock agent did not start on any of 5 pairs of ports");
    }

    fn try_start(data_dir: &Path, extra: &[&str]) -> Option<Agent> {
        build_helpers();
        let port = free_port();
        let metrics_port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lambdock"));
        cmd.args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--rie")
            .arg(target_dir().join("debug/lambdock-rie"));
        if !extra.contains(&"--python") {
            cmd.arg("--python").arg(repo().join(".venv/bin/python"));
        }
        let child = cmd
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start lambdock agent");
        let mut agent = Agent {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            metrics: format!("127.0.0.1:{metrics_port}"),
            data_dir: data_dir.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(agent.addr.trim_start_matches("http://")).is_err() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                eprintln!("lambdock agent exited at start ({status}); retrying");
                std::mem::forget(agent);
                return None;
            }
            assert!(Instant::now() < until, "agent did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(agent)
    }

    async fn client(&self) -> AgentClient<Channel> {
        AgentClient::connect(self.addr.clone())
            .await
            .expect("connect")
            .max_decoding_message_size(16 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024)
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let fresh = Agent::start(&self.data_dir.clone(), &extra);
        // The old agent is dead already; its Drop would kill the workers the new one adopts.
        std::mem::forget(std::mem::replace(self, fresh));
    }

    fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Workers outlive their agent by design; a test that failed half-way must not leave
        // them running, so kill every worker recorded in the data directory, with its children.
        let Ok(dirs) = std::fs::read_dir(self.data_dir.join("workers")) else {
            return;
        };
        for dir in dirs.flatten() {
            let Ok(text) = std::fs::read_to_string(dir.path().join("worker.json")) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(pid) = record["handle"]["pid"].as_u64() {
                kill_tree(pid as u32);
            }
        }
    }
}

fn kill_tree(pid: u32) {
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    for child in children {
        kill_tree(child);
    }
}

const OWNER: &str = "gateway-test";

fn python_request(function: &str) -> CreateWorkerRequest {
    CreateWorkerRequest {
        owner_id: OWNER.into(),
        function_name: function.into(),
        code: Some(create_worker_request::Code::Bundle(CodeBundle {
            code_dir: repo().join("fixtures/python").display().to_string(),
            layer_dirs: vec![],
        })),
        runtime: "python3.12".into(),
        handler: "app.handler".into(),
        memory_mb: 256,
        timeout_ms: 5000,
        ..Default::default()
    }
}

/// A `provided.al2023` code directory whose bootstrap is the given executable.
fn provided_code(executable: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(executable, dir.path().join("bootstrap")).unwrap();
    dir
}

fn provided_request(function: &str, code: &Path) -> CreateWorkerRequest {
    CreateWorkerRequest {
        owner_id: OWNER.into(),
        function_name: function.into(),
        code: Some(create_worker_request::Code::Bundle(CodeBundle {
            code_dir: code.display().to_string(),
            layer_dirs: vec![],
        })),
        runtime: "provided.al2023".into(),
        handler: "bootstrap".into(),
        memory_mb: 128,
        timeout_ms: 5000,
        ..Default::default()
    }
}

async fn invoke(
    client: &mut AgentClient<Channel>,
    worker: &Worker,
    payload: &str,
) -> Result<(u32, HashMap<String, String>, serde_json::Value), tonic::Status> {
    let r = client
        .invoke(InvokeRequest {
            owner_id: OWNER.into(),
            worker_id: worker.id.clone(),
            payload: payload.as_bytes().to_vec(),
            headers: HashMap::from([("x-amz-log-type".to_string(), "Tail".to_string())]),
            timeout_ms: 0,
        })
        .await?
        .into_inner();
    let body = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    Ok((r.status, r.headers, body))
}

fn wref(worker: &Worker) -> WorkerRef {
    WorkerRef {
        owner_id: OWNER.into(),
        worker_id: worker.id.clone(),
    }
}

/// Processes whose environment names this function.
fn processes_of(function: &str) -> Vec<u32> {
    let needle = format!("AWS_LAMBDA_FUNCTION_NAME={function}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_workers_through_the_agent() {
    workers_through_the_agent(is_root(), "").await;
}

/// The same without namespaces and cgroups: what a non-root agent does (pause is SIGSTOP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_rust_workers_without_isolation() {
    workers_through_the_agent(false, "plain-").await;
}

async fn workers_through_the_agent(isolated: bool, prefix: &str) {
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        data.path(),
        if isolated { &[] } else { &["--no-isolation"] },
    );
    let mut client = agent.client().await;

    let (py_name, rs_name) = (format!("{prefix}agent-py"), format!("{prefix}agent-rs"));
    let py = client
        .create_worker(python_request(&py_name))
        .await
        .expect("python worker")
        .into_inner();
    assert_eq!(py.state, WorkerState::Running as i32);
    assert!(py.invoke_address.starts_with("127.0.0.1:"));
    let (status, headers, body) = invoke(&mut client, &py, r#"{"action":"echo","n":1}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["event"]["n"], 1, "{body}");
    assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_NAME"], py_name.as_str());
    assert_eq!(body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    let task_root = if isolated {
        "/var/task".to_string()
    } else {
        repo().join("fixtures/python").display().to_string()
    };
    assert_eq!(body["env"]["LAMBDA_TASK_ROOT"], task_root.as_str());
    assert_eq!(body["env"]["AWS_EXECUTION_ENV"], "AWS_Lambda_python3.12");
    assert!(headers.contains_key("x-amz-log-result"));

    let rust_code = provided_code(&target_dir().join("debug/lambdock-fixture-rust"));
    let rs = client
        .create_worker(provided_request(&rs_name, rust_code.path()))
        .await
        .expect("rust worker")
        .into_inner();
    let (status, _, body) = invoke(&mut client, &rs, r#"{"action":"echo","n":2}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["event"]["n"], 2, "{body}");
    let (_, headers, body) = invoke(&mut client, &rs, r#"{"action":"error","message":"bad"}"#)
        .await
        .unwrap();
    assert_eq!(
        headers.get("x-amz-function-error").map(String::as_str),
        Some("Unhandled")
    );
    assert_eq!(body["errorType"], "FixtureError");

    // Metrics are real numbers.
    let m = client
        .get_worker_metrics(wref(&py))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.state, WorkerState::Running as i32);
    assert!(m.memory_current_bytes > 1024 * 1024, "{m:?}");
    assert!(m.memory_max_bytes >= m.memory_current_bytes, "{m:?}");
    assert!(m.cpu_usage_ns > 0, "{m:?}");
    if isolated {
        assert_eq!(m.memory_limit_bytes, 256 * 1024 * 1024, "{m:?}");
    }

    // Pause: invokes are refused at once, not left hanging; resume: they work again.
    let paused = client.pause_worker(wref(&py)).await.unwrap().into_inner();
    assert_eq!(paused.state, WorkerState::Paused as i32);
    let started = Instant::now();
    let err = invoke(&mut client, &py, "{}").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("paused"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let listed = client
        .list_workers(ListWorkersRequest {
            owner_id: OWNER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let state = listed.workers.iter().find(|w| w.id == py.id).unwrap().state;
    assert_eq!(state, WorkerState::Paused as i32);
    client.resume_worker(wref(&py)).await.unwrap();
    let (status, _, _) = invoke(&mut client, &py, r#"{"action":"noop"}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Logs: what the worker printed, START to REPORT.
    let mut stream = client
        .stream_logs(StreamLogsRequest {
            owner_id: OWNER.into(),
            worker_id: py.id.clone(),
            follow: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut lines = vec![];
    while let Some(line) = stream.message().await.unwrap() {
        lines.push(line.line);
    }
    assert!(
        lines.iter().any(|l| l.starts_with("START RequestId:")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("REPORT RequestId:")),
        "{lines:?}"
    );

    // Destroy leaves nothing behind.
    assert!(!processes_of(&py_name).is_empty());
    client.destroy_worker(wref(&py)).await.unwrap();
    client.destroy_worker(wref(&rs)).await.unwrap();
    assert!(
        processes_of(&py_name).is_empty(),
        "processes left: {:?}",
        processes_of(&py_name)
    );
    assert!(processes_of(&rs_name).is_empty());
    let listed = client
        .list_workers(ListWorkersRequest {
            owner_id: OWNER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.workers.is_empty());

    let text = agent.metrics_text();
    assert!(
        text.contains("lambdock_agent_worker_creations_total 2"),
        "{text}"
    );
    assert!(
        text.contains("lambdock_agent_workers{state=\"running\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("lambdock_agent_worker_create_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_an_agent_killed_with_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(data.path(), &[]);
    let mut client = agent.client().await;
    let py = client
        .create_worker(python_request("agent-restart"))
        .await
        .unwrap()
        .into_inner();
    invoke(&mut client, &py, r#"{"action":"noop"}"#)
        .await
        .unwrap();
    let shell = repo().join("fixtures/shell/bootstrap");
    let code = provided_code(&shell);
    let doomed = client
        .create_worker(provided_request("agent-doomed", code.path()))
        .await
        .unwrap()
        .into_inner();

    agent.kill9();
    // One worker dies while the agent is away.
    for pid in processes_of("agent-doomed") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    agent.restart();
    let mut client = agent.client().await;
    let listed = client
        .list_workers(ListWorkersRequest {
            owner_id: OWNER.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let find = |id: &str| listed.workers.iter().find(|w| w.id == id).cloned();
    let adopted = find(&py.id).expect("the live worker is listed after the restart");
    assert_eq!(adopted.state, WorkerState::Running as i32);
    assert_eq!(adopted.invoke_address, py.invoke_address);
    let dead = find(&doomed.id).expect("the dead worker is reported");
    assert_eq!(dead.state, WorkerState::Stopped as i32);

    let (status, _, body) = invoke(&mut client, &py, r#"{"action":"echo","n":7}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["event"]["n"], 7);
    let err = invoke(&mut client, &dead, "{}").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    client.destroy_worker(wref(&py)).await.unwrap();
    client.destroy_worker(wref(&dead)).await.unwrap();
    assert!(processes_of("agent-restart").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_ends_the_invocation_and_the_next_one_runs() {
    if !is_root() {
        println!("skipped: memory limits need cgroups, which need root");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), &[]);
    let mut client = agent.client().await;
    let mut req = python_request("agent-oom");
    req.memory_mb = 128;
    let w = client.create_worker(req).await.unwrap().into_inner();
    let (status, headers, body) = invoke(&mut client, &w, r#"{"action":"memory","mb":400}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-amz-function-error").map(String::as_str),
        Some("Unhandled")
    );
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: signal: killed"),
        "{body}"
    );
    let m = client
        .get_worker_metrics(wref(&w))
        .await
        .unwrap()
        .into_inner();
    assert!(m.oom_events >= 1, "{m:?}");
    let (status, _, body) = invoke(&mut client, &w, r#"{"action":"echo","n":3}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["event"]["n"], 3, "{body}");
    client.destroy_worker(wref(&w)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_workers_answer_and_leave_nothing() {
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), &[]);
    let client = agent.client().await;
    let code = provided_code(&repo().join("fixtures/shell/bootstrap"));
    let mut tasks = vec![];
    for i in 0..50 {
        let mut client = client.clone();
        let req = provided_request(&format!("fifty-{i}"), code.path());
        tasks.push(tokio::spawn(async move {
            let w = client
                .create_worker(req)
                .await
                .expect("create")
                .into_inner();
            let (status, _, body) =
                invoke(&mut client, &w, &format!(r#"{{"action":"echo","i":{i}}}"#))
                    .await
                    .expect("invoke");
            assert_eq!(status, 200);
            assert_eq!(body["echo"]["i"], i, "{body}");
            w
        }));
    }
    let mut workers = vec![];
    for t in tasks {
        workers.push(t.await.unwrap());
    }
    let mut destroys = vec![];
    for w in workers {
        let mut client = client.clone();
        destroys.push(tokio::spawn(async move {
            client.destroy_worker(wref(&w)).await.expect("destroy")
        }));
    }
    for d in destroys {
        d.await.unwrap();
    }
    for i in 0..50 {
        assert!(
            processes_of(&format!("fifty-{i}")).is_empty(),
            "worker {i} left processes"
        );
    }
    let workers_dir = data.path().join("workers");
    assert_eq!(
        std::fs::read_dir(&workers_dir).unwrap().count(),
        0,
        "worker directories left"
    );
    if is_root() {
        // No cgroup left under the agent's own memory cgroup.
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        if let Some(path) = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        {
            let dir = Path::new("/sys/fs/cgroup/memory")
                .join(path.trim_start_matches('/'))
                .join("lambdock");
            if dir.is_dir() {
                let left: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name())
                    .collect();
                assert!(
                    left.iter()
                        .all(|n| !n.to_string_lossy().starts_with("fifty-")),
                    "cgroups left: {left:?}"
                );
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(" /var/task "),
            "a sandbox mount leaked to the host"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), &[]);
    let mut client = agent.client().await;

    let mut req = python_request("bad");
    req.runtime = "cobol85".into();
    let err = client.create_worker(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("unknown runtime \"cobol85\""),
        "{err}"
    );

    let mut req = python_request("bad");
    req.code = Some(create_worker_request::Code::Bundle(CodeBundle {
        code_dir: "/nonexistent/code".into(),
        layer_dirs: vec![],
    }));
    let err = client.create_worker(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("code directory /nonexistent/code does not exist"),
        "{err}"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = client
        .create_worker(provided_request("bad", empty.path()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("needs an executable `bootstrap`"),
        "{err}"
    );

    let mut req = python_request("bad");
    req.owner_id = " ".into();
    let err = client.create_worker(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("owner_id is required"), "{err}");

    let err = client
        .destroy_worker(WorkerRef {
            owner_id: OWNER.into(),
            worker_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("no worker nope"), "{err}");

    let code = provided_code(&repo().join("fixtures/shell/bootstrap"));
    let w = client
        .create_worker(provided_request("owned", code.path()))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .destroy_worker(WorkerRef {
            owner_id: "someone-else".into(),
            worker_id: w.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    let listed = client
        .list_workers(ListWorkersRequest {
            owner_id: "someone-else".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.workers.is_empty(),
        "owners only see their own workers"
    );
    client.destroy_worker(wref(&w)).await.unwrap();

    // A runtime whose interpreter is missing names the runtime and the fix.
    let other = tempfile::tempdir().unwrap();
    let no_python = Agent::start(other.path(), &["--python", "/nonexistent/python3"]);
    let mut client = no_python.client().await;
    let err = client
        .create_worker(python_request("no-python"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("runtime python3.12 cannot start"),
        "{err}"
    );
    assert!(err.message().contains("make setup"), "{err}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
fn certificates(dir: &Path) {
    let sh = |script: &str| {
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl failed: {script}");
    };
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem",
    );
    for name in ["server", "client"] {
        sh(&format!(
            "openssl req -newkey rsa:2048 -nodes -subj /CN={name} -keyout {name}.key -out {name}.csr"
        ));
        std::fs::write(
            dir.join(format!("{name}.ext")),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        sh(&format!(
            "openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile {name}.ext -out {name}.pem"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_of_the_ca() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let p = |f: &str| certs.path().join(f).display().to_string();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        data.path(),
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
    );
    let url = agent.addr.replace("http://", "https://");
    lambdock_agent::server::install_tls_provider();
    let ca = Certificate::from_pem(std::fs::read(p("ca.pem")).unwrap());

    let without_identity = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await;
    // The handshake fails, at connect or at the first call depending on timing.
    if let Ok(channel) = without_identity {
        let refused = AgentClient::new(channel)
            .list_workers(ListWorkersRequest {
                owner_id: OWNER.into(),
            })
            .await;
        assert!(
            refused.is_err(),
            "a client without a certificate must be refused"
        );
    }

    let identity = Identity::from_pem(
        std::fs::read(p("client.pem")).unwrap(),
        std::fs::read(p("client.key")).unwrap(),
    );
    let channel = Channel::from_shared(url)
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .identity(identity)
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("mutual TLS connection");
    let listed = AgentClient::new(channel)
        .list_workers(ListWorkersRequest {
            owner_id: OWNER.into(),
        })
        .await
        .unwrap();
    assert!(listed.into_inner().workers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_megabyte_payloads_pass_both_ways() {
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), &[]);
    let mut client = agent.client().await;
    let rust_code = provided_code(&target_dir().join("debug/lambdock-fixture-rust"));
    let w = client
        .create_worker(provided_request("agent-big", rust_code.path()))
        .await
        .unwrap()
        .into_inner();
    // A request near Lambda's 6 MB limit comes back in the echo (the echo adds about 1 KB,
    // which must stay under the response limit too).
    let filler = "y".repeat(6 * 1024 * 1024 - 2000);
    let (status, _, body) = invoke(
        &mut client,
        &w,
        &format!(r#"{{"action":"echo","filler":"{filler}"}}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["event"]["filler"].as_str().map(str::len),
        Some(filler.len())
    );
    // A response of 6,000,000 bytes.
    let (status, headers, body) = invoke(&mut client, &w, r#"{"action":"big","bytes":6000000}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(!headers.contains_key("x-amz-function-error"));
    assert_eq!(body.as_str().map(str::len), Some(6_000_000));
    client.destroy_worker(wref(&w)).await.unwrap();
}
