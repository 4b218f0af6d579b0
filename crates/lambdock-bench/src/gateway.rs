//! Warm invocations through the gateway (Invoke API, SigV4-signed, 1 KB payload, no-op Rust
//! function) at 1, 16 and 64 concurrent clients, next to direct calls to the same workers and to
//! AWS's RIE serving the same function: p50/p99, invocations per second, and the gateway's added
//! latency.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::{percentile, ratio};

use crate::Error;

struct Up {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix_kill(self.child.id());
        let _ = self.child.wait();
    }
}

fn nix_kill(pid: u32) -> std::io::Result<()> {
    // SIGINT: `up` drains and destroys its workers.
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map(|_| ())
}

fn payload() -> Bytes {
    let pad = "x".repeat(1024 - r#"{"action":"noop","pad":""}"#.len());
    Bytes::from(format!(r#"{{"action":"noop","pad":"{pad}"}}"#))
}

/// One keep-alive connection, as a gateway holds to a worker.
pub(crate) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender, addr })
    }

    /// Posts `body` to `path` (SigV4-signed when `sign`) and checks the answer is `{}`.
    pub(crate) async fn send(&mut self, path: &str, body: Bytes, sign: bool) -> Result<(), Error> {
        let (mut parts, ()) = http::Request::post(format!("http://{}{path}", self.addr))
            .body(())?
            .into_parts();
        parts
            .headers
            .insert("host", http::HeaderValue::from_str(&self.addr.to_string())?);
        if sign {
            lambdock_gateway::sigv4::sign(
                &mut parts,
                &body,
                "lambdock",
                "lambdock-secret",
                "us-east-1",
                "lambda",
                SystemTime::now(),
            );
        }
        parts.uri = http::Uri::try_from(path)?;
        let resp = self
            .sender
            .send_request(http::Request::from_parts(parts, Full::new(body)))
            .await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != 200 || body.as_ref() != b"{}" {
            return Err(format!(
                "unexpected answer {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(())
    }
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
}

/// `clients` connections, one to each target (round robin), `total` invocations in all.
async fn load(
    targets: &[SocketAddr],
    clients: usize,
    total: usize,
    path: &'static str,
    sign: bool,
) -> Result<Figures, Error> {
    let per_client = total.div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let addr = targets[i % targets.len()];
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut samples = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                conn.send(path, payload(), sign).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, Error>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok(Figures {
        p50_us: percentile(&all, 0.5).as_secs_f64() * 1e6,
        p99_us: percentile(&all, 0.99).as_secs_f64() * 1e6,
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
    })
}

const INVOKE: &str = "/2015-03-31/functions/noop/invocations";
use crate::RIE_INVOKE;

/// Measures and prints the gateway table.
pub async fn run(
    lambdock: &Path,
    rie: &Path,
    aws_rie: &Path,
    function: &Path,
    python: &Path,
    invokes: usize,
) -> Result<(), Error> {
    let (lambdock, rie, aws_rie, function) = (
        lambdock.canonicalize()?,
        rie.canonicalize()?,
        aws_rie.canonicalize()?,
        function.canonicalize()?,
    );
    let python = std::path::absolute(python)?;
    let dir = tempfile::tempdir()?;
    let code = dir.path().join("code");
    std::fs::create_dir(&code)?;
    std::fs::copy(&function, code.join("bootstrap"))?;
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({"schema_version": 1, "functions": {"noop": {
            "runtime": "provided.al2023", "handler": "bootstrap", "code": {"dir": code}, "timeout_s": 30}}})
        .to_string(),
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&lambdock)
        .args([
            "--log",
            "warn",
            "up",
            "--aws-port",
            &port.to_string(),
            "--default-concurrency",
            "64",
        ])
        .arg("--manifest")
        .arg(&manifest)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--rie")
        .arg(&rie)
        .arg("--python")
        .arg(&python)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let up = Up {
        child,
        addr: format!("127.0.0.1:{port}").parse()?,
    };
    let until = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(up.addr).is_err() {
        if Instant::now() > until {
            return Err("lambdock up did not listen".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Warm 64 workers.
    load(&[up.addr], 64, 64 * 20, INVOKE, true).await?;
    let workers = worker_addresses(up.addr).await?;

    let aws = crate::Emulator::start(&aws_rie, &function)?;
    load(&[aws.invoke], 1, 200, RIE_INVOKE, false).await?;
    let aws_figures = load(&[aws.invoke], 1, invokes, RIE_INVOKE, false).await?;
    drop(aws);

    println!();
    println!(
        "gateway: warm no-op Rust function, 1 KB payload, SigV4-signed Invoke API vs direct calls to its workers (and AWS's RIE, which serves one client), {invokes} invocations per row"
    );
    println!(
        "{:>7} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10} {:>14} {:>10}",
        "clients",
        "gw p50 µs",
        "gw p99 µs",
        "gw inv/s",
        "direct p50",
        "direct p99",
        "direct/s",
        "added p50 µs",
        "gw/direct"
    );
    for clients in [1usize, 16, 64] {
        let gw = load(&[up.addr], clients, invokes, INVOKE, true).await?;
        let direct = load(
            &workers[..clients.min(workers.len())],
            clients,
            invokes,
            RIE_INVOKE,
            false,
        )
        .await?;
        println!(
            "{clients:>7} {:>12.1} {:>12.1} {:>10.0} {:>12.1} {:>12.1} {:>10.0} {:>14.1} {:>10}",
            gw.p50_us,
            gw.p99_us,
            gw.per_sec,
            direct.p50_us,
            direct.p99_us,
            direct.per_sec,
            gw.p50_us - direct.p50_us,
            ratio(gw.per_sec, direct.per_sec)
        );
    }
    println!(
        "AWS RIE, 1 client: p50 {:.1} µs, p99 {:.1} µs, {:.0} inv/s",
        aws_figures.p50_us, aws_figures.p99_us, aws_figures.per_sec
    );
    Ok(())
}

async fn worker_addresses(gateway: SocketAddr) -> Result<Vec<SocketAddr>, Error> {
    let stream = tokio::net::TcpStream::connect(gateway).await?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut parts, ()) = http::Request::get(format!("http://{gateway}/lambdock/v1/workers"))
        .body(())?
        .into_parts();
    parts
        .headers
        .insert("host", http::HeaderValue::from_str(&gateway.to_string())?);
    lambdock_gateway::sigv4::sign(
        &mut parts,
        b"",
        "lambdock",
        "lambdock-secret",
        "us-east-1",
        "lambda",
        SystemTime::now(),
    );
    parts.uri = http::Uri::from_static("/lambdock/v1/workers");
    let resp = sender
        .send_request(http::Request::from_parts(parts, Full::new(Bytes::new())))
        .await?;
    let body = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let addrs: Vec<SocketAddr> = v["Workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| w["invoke_address"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if addrs.is_empty() {
        return Err(format!("no workers listed: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(addrs)
}
