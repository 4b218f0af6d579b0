//! S3 PUT and GET of 1 KB and 1 MB objects against the embedded S3 of `lambdock up`, next to
//! the same load against `moto_server`: p50/p99 latency and operations per second. Requests
//! are SigV4-signed with the gateway's signer (no SDK), over keep-alive connections.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use crate::{Error, percentile, ratio};

const BUCKET: &str = "bench";

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT lets `up` stop cleanly; moto stops on it too.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str) -> Result<(), Error> {
    let until = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait()? {
            return Err(format!("{what} exited: {status}").into());
        }
        if Instant::now() > until {
            return Err(format!("{what} did not listen on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn start_lambdock(lambdock: &Path, rie: &Path, python: &Path, dir: &Path) -> Result<Server, Error> {
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, r#"{"schema_version":1,"functions":{}}"#)?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut child = Command::new(lambdock)
        .arg("up")
        .arg("--manifest")
        .arg(&manifest)
        .args(["--aws-port", &free_port()?.to_string()])
        .args(["--s3-port", &addr.port().to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--rie")
        .arg(rie)
        .arg("--python")
        .arg(python)
        .env("LAMBDOCK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_listening(&mut child, addr, "lambdock up")?;
    Ok(Server { child, addr })
}

fn start_moto(python: &Path) -> Result<Server, Error> {
    let moto = python.with_file_name("moto_server");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let mut child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e} (run `make setup`)", moto.display()))?;
    wait_listening(&mut child, addr, "moto_server")?;
    Ok(Server { child, addr })
}

/// One keep-alive connection signing S3 requests.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender, addr })
    }

    /// Sends a signed request; returns the body length of a 200 answer.
    async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<usize, Error> {
        // moto's server (werkzeug) closes the connection after each answer: reconnect then.
        if self.sender.ready().await.is_err() {
            *self = Conn::open(self.addr).await?;
        }
        let (mut parts, ()) = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .body(())?
            .into_parts();
        parts
            .headers
            .insert("host", http::HeaderValue::from_str(&self.addr.to_string())?);
        parts.headers.insert(
            "x-amz-content-sha256",
            http::HeaderValue::from_str(&hex::encode(Sha256::digest(&body)))?,
        );
        lambdock_gateway::sigv4::sign(
            &mut parts,
            &body,
            "lambdock",
            "lambdock-secret",
            "us-east-1",
            "s3",
            SystemTime::now(),
        );
        parts.uri = http::Uri::try_from(path)?;
        let resp = self
            .sender
            .send_request(http::Request::from_parts(parts, Full::new(body)))
            .await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != 200 {
            return Err(format!(
                "{path}: unexpected answer {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(body.len())
    }
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

/// `clients` connections issuing `total` PUTs (or GETs) of `size`-byte objects in all.
async fn load(
    addr: SocketAddr,
    clients: usize,
    total: usize,
    size: usize,
    put: bool,
) -> Result<Figures, Error> {
    let per_client = total.div_ceil(clients);
    let body = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut samples = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let path = format!("/{BUCKET}/obj-{size}-{c}-{i}");
                let t = Instant::now();
                if put {
                    conn.send(http::Method::PUT, &path, body.clone()).await?;
                } else {
                    let n = conn.send(http::Method::GET, &path, Bytes::new()).await?;
                    if n != size {
                        return Err(format!("GET {path}: {n} bytes, not {size}").into());
                    }
                }
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
        p50_ms: percentile(&all, 0.5).as_secs_f64() * 1e3,
        p99_ms: percentile(&all, 0.99).as_secs_f64() * 1e3,
        per_sec: all.len() as f64 / elapsed.as_secs_f64(),
    })
}

/// The four rows (PUT/GET × 1 KB/1 MB) against one server.
async fn measure(addr: SocketAddr, clients: usize, requests: usize) -> Result<Vec<Figures>, Error> {
    Conn::open(addr)
        .await?
        .send(http::Method::PUT, &format!("/{BUCKET}"), Bytes::new())
        .await?;
    let mut rows = Vec::new();
    for (size, total) in [
        (1024, requests),
        (1024 * 1024, (requests / 10).max(clients)),
    ] {
        rows.push(load(addr, clients, total, size, true).await?);
        rows.push(load(addr, clients, total, size, false).await?);
    }
    Ok(rows)
}

/// Measures and prints the S3 table.
pub async fn run(
    lambdock: &Path,
    rie: &Path,
    python: &Path,
    requests: usize,
    clients: usize,
) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    eprintln!("measuring the embedded S3 ...");
    let ours = {
        let server = start_lambdock(lambdock, rie, python, dir.path())?;
        measure(server.addr, clients, requests).await?
    };
    eprintln!("measuring moto_server ...");
    let moto = {
        let server = start_moto(python)?;
        measure(server.addr, clients, requests).await?
    };
    println!(
        "S3: SigV4-signed PUT then GET of distinct objects, {clients} keep-alive clients, {requests} requests per 1 KB row and {} per 1 MB row (embedded S3 fsyncs every PUT; moto keeps objects in memory)",
        (requests / 10).max(clients)
    );
    println!(
        "{:<28} {:>14} {:>14} {:>14}",
        "figure", "embedded S3", "moto", "ours/theirs"
    );
    let names = ["PUT 1 KB", "GET 1 KB", "PUT 1 MB", "GET 1 MB"];
    for ((name, a), b) in names.iter().zip(&ours).zip(&moto) {
        for (figure, x, y) in [
            ("p50 (ms)", a.p50_ms, b.p50_ms),
            ("p99 (ms)", a.p99_ms, b.p99_ms),
            ("operations per second", a.per_sec, b.per_sec),
        ] {
            let label = format!("{name} {figure}");
            println!("{label:<28} {x:>14.2} {y:>14.2} {:>14}", ratio(x, y));
        }
    }
    Ok(())
}
