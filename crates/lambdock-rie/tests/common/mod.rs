//! Harness for tests that start the real `lambdock-rie` binary (and AWS's, as an oracle) with
//! real runtime clients, and call it over HTTP.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Our binary.
pub fn rie_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lambdock-rie"))
}

/// AWS's emulator, fetched by `scripts/setup.sh` (never committed).
pub fn aws_rie_bin() -> PathBuf {
    let path = repo().join(".cache/aws-lambda-rie/aws-lambda-rie");
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (scripts/setup.sh) first",
        path.display()
    );
    path
}

/// The Python interpreter of the runtime venv, with awslambdaric.
pub fn python() -> PathBuf {
    let path = repo().join(".venv/bin/python");
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (scripts/setup.sh) first",
        path.display()
    );
    path
}

/// The Rust fixture function (built on first use).
pub fn rust_fixture() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "lambdock-fixture-rust"])
            .current_dir(repo())
            .status()
            .expect("cargo build of the Rust fixture");
        assert!(status.success(), "building lambdock-fixture-rust failed");
    });
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    target.join("debug/lambdock-fixture-rust")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which emulator to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// Ours.
    Lambdock,
    /// AWS's `aws-lambda-rie`.
    Aws,
}

/// A running emulator with its runtime.
pub struct Rie {
    child: Child,
    /// Invoke interface address.
    pub invoke: SocketAddr,
    /// Runtime API address.
    pub runtime_api: SocketAddr,
    output: Arc<Mutex<String>>,
}

/// How to start a function.
pub struct Function {
    /// Bootstrap and arguments.
    pub command: Vec<String>,
    /// Working directory (the code).
    pub dir: PathBuf,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Extra flags for the emulator.
    pub flags: Vec<String>,
}

impl Function {
    /// The Python fixture with `handler` under awslambdaric.
    pub fn python(handler: &str) -> Self {
        Function {
            command: vec![
                python().to_string_lossy().into(),
                "-m".into(),
                "awslambdaric".into(),
                handler.into(),
            ],
            dir: repo().join("fixtures/python"),
            env: vec![(
                "LAMBDA_TASK_ROOT".into(),
                repo().join("fixtures/python").to_string_lossy().into(),
            )],
            flags: vec![],
        }
    }

    /// The Rust fixture.
    pub fn rust() -> Self {
        Function {
            command: vec![rust_fixture().to_string_lossy().into()],
            dir: repo().join("fixtures/rust-function"),
            env: vec![],
            flags: vec![],
        }
    }

    /// The shell bootstrap fixture.
    pub fn shell() -> Self {
        let dir = repo().join("fixtures/shell");
        Function {
            command: vec![
                dir.join("bootstrap").to_string_lossy().into(),
                "shell.handler".into(),
            ],
            dir,
            env: vec![],
            flags: vec![],
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Adds an emulator flag.
    pub fn flag(mut self, f: &str) -> Self {
        self.flags.push(f.into());
        self
    }

    /// Function timeout in seconds.
    pub fn timeout(self, secs: u32) -> Self {
        self.env("AWS_LAMBDA_FUNCTION_TIMEOUT", &secs.to_string())
    }
}

impl Rie {
    /// Starts `emulator` with `function` on free ports and waits until it accepts connections.
    pub fn start(emulator: Emulator, function: Function) -> Rie {
        // A port picked free can be taken by a parallel test before the emulator binds it; the
        // emulator then exits, and a new pair of ports is tried.
        for _ in 0..5 {
            if let Some(rie) = Rie::try_start(emulator, &function) {
                return rie;
            }
        }
        panic!("the emulator did not start on any of 5 pairs of ports");
    }

    fn try_start(emulator: Emulator, function: &Function) -> Option<Rie> {
        let invoke: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let runtime_api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let bin = match emulator {
            Emulator::Lambdock => rie_bin(),
            Emulator::Aws => aws_rie_bin(),
        };
        let mut cmd = Command::new(bin);
        cmd.arg("--runtime-interface-emulator-address")
            .arg(invoke.to_string())
            .arg("--runtime-api-address")
            .arg(runtime_api.to_string())
            .args(&function.flags)
            .args(&function.command)
            .current_dir(&function.dir)
            .env("AWS_LAMBDA_FUNCTION_NAME", "fixture")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(function.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start emulator");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    output.lock().unwrap().push_str(&line);
                    output.lock().unwrap().push('\n');
                }
            });
        }
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(invoke).is_err() {
            assert!(
                Instant::now() < until,
                "emulator did not listen on {invoke}"
            );
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Still alive a moment later: it bound both of its ports (not another process's).
        std::thread::sleep(Duration::from_millis(30));
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        Some(Rie {
            child,
            invoke,
            runtime_api,
            output,
        })
    }

    /// Everything the emulator printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the output contains `needle`.
    pub async fn wait_output(&self, needle: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            assert!(
                Instant::now() < until,
                "output never contained {needle:?}:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The invoke URL.
    pub fn url(&self) -> String {
        format!(
            "http://{}/2015-03-31/functions/function/invocations",
            self.invoke
        )
    }

    /// A Runtime API URL.
    pub fn api(&self, path: &str) -> String {
        format!("http://{}{}", self.runtime_api, path)
    }

    /// Invokes with a JSON payload.
    pub async fn invoke(&self, payload: &str) -> Reply {
        post(&self.url(), payload.to_string(), &[]).await
    }

    /// Pid of the emulator.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Trailers, if any.
    pub trailers: Option<HeaderMap>,
    /// Body chunks as received, with their arrival time.
    pub chunks: Vec<(Instant, Bytes)>,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// The decoded `X-Amz-Log-Result`.
    pub fn log_tail(&self) -> String {
        let encoded = self.header("x-amz-log-result").expect("X-Amz-Log-Result");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    }
}

/// POSTs `body` with extra headers.
pub async fn post(url: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> Reply {
    request("POST", url, body.into(), headers).await
}

/// Sends a request and reads the whole response, trailers included.
pub async fn request(method: &str, url: &str, body: Bytes, headers: &[(&str, &str)]) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .expect("HTTP request");
    let (parts, mut body) = resp.into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    let mut chunks = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        match frame.into_data() {
            Ok(d) => {
                data.extend_from_slice(&d);
                chunks.push((Instant::now(), d));
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: Bytes::from(data),
        trailers,
        chunks,
    }
}

/// Parses `KEY=VALUE` lines of a REPORT line into a map.
pub fn report_fields(output: &str, request_id: &str) -> HashMap<String, String> {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {request_id}")))
        .unwrap_or_else(|| panic!("no REPORT line for {request_id} in:\n{output}"));
    line.split('\t')
        .filter_map(|f| f.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
