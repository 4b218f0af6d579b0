//! DynamoDB PutItem and GetItem (SigV4-signed, ~1 KB items) against the embedded store, next to
//! moto server (the Python reference implementation) under the same load: p50/p99 and requests
//! per second at 1 and 16 concurrent clients. The embedded store syncs its log before each write
//! is answered; moto keeps everything in memory, so writes are not like for like (reads are).

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::{Error, percentile, ratio};

const TABLE: &str = "bench";

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> Result<SocketAddr, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn wait_for(addr: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {addr}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

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

    /// Calls `operation` with `body`; errors unless the answer is 200.
    async fn call(&mut self, operation: &str, body: String) -> Result<Bytes, Error> {
        let body = Bytes::from(body);
        let (mut parts, ()) = http::Request::post(format!("http://{}/", self.addr))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("host", self.addr.to_string())
            .body(())?
            .into_parts();
        lambdock_gateway::sigv4::sign(
            &mut parts,
            &body,
            "lambdock",
            "lambdock-secret",
            "us-east-1",
            "dynamodb",
            SystemTime::now(),
        );
        parts.uri = http::Uri::from_static("/");
        // moto's server (Werkzeug) speaks HTTP/1.0 and closes the connection after each answer:
        // reconnect when it did, and count that as part of its latency.
        if self.sender.ready().await.is_err() {
            *self = Conn::open(self.addr).await?;
        }
        let request = http::Request::from_parts(parts, Full::new(body));
        let resp = match self.sender.send_request(request.clone()).await {
            Ok(resp) => resp,
            Err(e) if e.is_canceled() => {
                *self = Conn::open(self.addr).await?;
                self.sender.send_request(request).await?
            }
            Err(e) => return Err(e.into()),
        };
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status != 200 {
            return Err(
                format!("{operation}: {status}: {}", String::from_utf8_lossy(&bytes)).into(),
            );
        }
        Ok(bytes)
    }
}

fn put(i: usize) -> String {
    let pad = "x".repeat(1000);
    format!(r#"{{"TableName":"{TABLE}","Item":{{"pk":{{"S":"item-{i}"}},"v":{{"S":"{pad}"}}}}}}"#)
}

fn get(i: usize) -> String {
    format!(r#"{{"TableName":"{TABLE}","Key":{{"pk":{{"S":"item-{i}"}}}}}}"#)
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
}

async fn load(
    addr: SocketAddr,
    clients: usize,
    total: usize,
    operation: &'static str,
) -> Result<Figures, Error> {
    let per_client = total.div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut samples = Vec::with_capacity(per_client);
            for n in 0..per_client {
                let i = c * per_client + n;
                let body = if operation == "PutItem" {
                    put(i)
                } else {
                    get(i)
                };
                let t = Instant::now();
                conn.call(operation, body).await?;
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

async fn measure(addr: SocketAddr, requests: usize) -> Result<Vec<Figures>, Error> {
    let mut conn = Conn::open(addr).await?;
    conn.call(
        "CreateTable",
        format!(
            r#"{{"TableName":"{TABLE}","BillingMode":"PAY_PER_REQUEST",
               "KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}}],
               "AttributeDefinitions":[{{"AttributeName":"pk","AttributeType":"S"}}]}}"#
        ),
    )
    .await?;
    let mut out = Vec::new();
    for clients in [1, 16] {
        for operation in ["PutItem", "GetItem"] {
            out.push(load(addr, clients, requests, operation).await?);
        }
    }
    Ok(out)
}

/// Measures and prints the DynamoDB table.
pub async fn run(python: &Path, requests: usize) -> Result<(), Error> {
    let moto_server = python.with_file_name("moto_server");
    if !moto_server.is_file() {
        return Err(format!(
            "moto_server not found at {} (scripts/setup.sh installs it)",
            moto_server.display()
        )
        .into());
    }
    let data = tempfile::tempdir()?;
    let ours = free_addr()?;
    let listener = std::net::TcpListener::bind(ours)?;
    listener.set_nonblocking(true)?;
    let cfg = lambdock_dynamodb::DynamoConfig::new(
        data.path(),
        "us-east-1",
        Some(("lambdock".into(), "lambdock-secret".into())),
    );
    // The store gets its own runtime so the load generator does not share its thread.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            lambdock_dynamodb::serve(listener, cfg, async {
                let _ = stopped.await;
            })
            .await
            .map_err(|e| e.to_string())
        })
    });
    wait_for(ours).await?;
    eprintln!("measuring the embedded DynamoDB ...");
    let lambdock = measure(ours, requests).await?;
    let _ = stop.send(());
    server
        .join()
        .map_err(|_| "the DynamoDB server thread panicked")??;

    let theirs = free_addr()?;
    let _moto = Moto(
        Command::new(&moto_server)
            .args(["-H", "127.0.0.1", "-p", &theirs.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for(theirs).await?;
    eprintln!("measuring moto server ...");
    let moto = measure(theirs, requests).await?;

    println!(
        "embedded DynamoDB vs moto server: {requests} SigV4-signed requests per row, 1 KB items, keep-alive connections"
    );
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "figure", "lambdock", "moto", "ours/theirs"
    );
    let labels = [
        "PutItem, 1 client",
        "GetItem, 1 client",
        "PutItem, 16 clients",
        "GetItem, 16 clients",
    ];
    for ((label, a), b) in labels.iter().zip(&lambdock).zip(&moto) {
        for (what, x, y) in [
            ("p50 (µs)", a.p50_us, b.p50_us),
            ("p99 (µs)", a.p99_us, b.p99_us),
            ("per second", a.per_sec, b.per_sec),
        ] {
            let name = format!("{label} {what}");
            println!("{name:<34} {x:>14.1} {y:>14.1} {:>14}", ratio(x, y));
        }
    }
    Ok(())
}
