//! `lambdock-bench`: Lambdock's figures next to a baseline measured in the same run.
//!
//! The baseline is AWS's own Runtime Interface Emulator (from the `aws-sam-cli` wheel, fetched by
//! `scripts/setup.sh`) serving the same function. Every figure is printed with its ratio to the
//! baseline; nothing here asserts a time, the table is for people.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};

mod agent;
mod dynamodb;
mod gateway;
mod s3;

#[derive(Parser)]
#[command(
    about = "Warm invoke latency and throughput, cold start and idle memory of lambdock-rie vs AWS's RIE"
)]
struct Args {
    /// Sequential warm invocations per emulator.
    #[arg(long, default_value_t = 5000)]
    invokes: usize,
    /// Cold starts per emulator.
    #[arg(long, default_value_t = 30)]
    cold_starts: usize,
    /// Our emulator.
    #[arg(long, default_value = "target/release/lambdock-rie")]
    rie: PathBuf,
    /// AWS's emulator.
    #[arg(long, default_value = ".cache/aws-lambda-rie/aws-lambda-rie")]
    aws_rie: PathBuf,
    /// The no-op function.
    #[arg(long, default_value = "target/release/lambdock-fixture-rust")]
    function: PathBuf,
    /// The lambdock binary (for the agent).
    #[arg(long, default_value = "target/release/lambdock")]
    lambdock: PathBuf,
    /// Python with awslambdaric.
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// Worker creations per function on the agent.
    #[arg(long, default_value_t = 50)]
    creations: usize,
    /// Requests per 1 KB S3 row (a tenth of them per 1 MB row).
    #[arg(long, default_value_t = 2000)]
    s3_requests: usize,
    /// Concurrent S3 clients.
    #[arg(long, default_value_t = 8)]
    s3_clients: usize,
    /// Which parts to measure.
    #[arg(long, value_enum, default_values_t = [Part::Rie, Part::Agent, Part::Gateway, Part::S3, Part::Dynamodb])]
    only: Vec<Part>,
    /// Requests per DynamoDB figure.
    #[arg(long, default_value_t = 2000)]
    dynamodb_requests: usize,
}

/// A part of the benchmark.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Part {
    /// lambdock-rie against AWS's RIE.
    Rie,
    /// Worker cold start on the agent.
    Agent,
    /// Warm invocations through the gateway.
    Gateway,
    /// S3 PUT/GET against the embedded S3 and moto.
    S3,
    /// The embedded DynamoDB against moto server.
    Dynamodb,
}

pub(crate) struct Emulator {
    child: Child,
    pub(crate) invoke: SocketAddr,
}

impl Emulator {
    pub(crate) fn start(bin: &Path, function: &Path) -> std::io::Result<Emulator> {
        let port = |_: ()| TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let invoke = port(())?;
        let api = port(())?;
        let child = Command::new(bin)
            .arg("--runtime-interface-emulator-address")
            .arg(invoke.to_string())
            .arg("--runtime-api-address")
            .arg(api.to_string())
            .arg(function)
            .env("LOG_LEVEL", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(invoke).is_err() {
            if Instant::now() > until {
                return Err(std::io::Error::other(format!(
                    "{} did not listen",
                    bin.display()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(Emulator { child, invoke })
    }

    /// A field of `/proc/<pid>/smaps_rollup`, in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Errors of the benchmark.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

const RIE_INVOKE: &str = "/2015-03-31/functions/function/invocations";

fn noop() -> Bytes {
    Bytes::from_static(br#"{"action":"noop"}"#)
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
    cold_p50_ms: f64,
    idle_rss_kib: u64,
    idle_anon_kib: u64,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

async fn measure(bin: &Path, function: &Path, args: &Args) -> Result<Figures, Error> {
    // Cold start: process start to the first answer.
    let mut colds = Vec::with_capacity(args.cold_starts);
    for _ in 0..args.cold_starts {
        let started = Instant::now();
        let emu = Emulator::start(bin, function)?;
        gateway::Conn::open(emu.invoke)
            .await?
            .send(RIE_INVOKE, noop(), false)
            .await?;
        colds.push(started.elapsed());
    }
    colds.sort();

    let emu = Emulator::start(bin, function)?;
    let mut conn = gateway::Conn::open(emu.invoke).await?;
    for _ in 0..200 {
        conn.send(RIE_INVOKE, noop(), false).await?;
    }
    let mut samples = Vec::with_capacity(args.invokes);
    let started = Instant::now();
    for _ in 0..args.invokes {
        let t = Instant::now();
        conn.send(RIE_INVOKE, noop(), false).await?;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Figures {
        p50_us: percentile(&samples, 0.50).as_secs_f64() * 1e6,
        p99_us: percentile(&samples, 0.99).as_secs_f64() * 1e6,
        per_sec: args.invokes as f64 / total.as_secs_f64(),
        cold_p50_ms: percentile(&colds, 0.50).as_secs_f64() * 1e3,
        idle_rss_kib: emu.memory_kib("Rss:"),
        idle_anon_kib: emu.memory_kib("Pss_Anon:"),
    })
}

pub(crate) fn ratio(ours: f64, theirs: f64) -> String {
    if theirs == 0.0 {
        "-".into()
    } else {
        format!("{:.2}x", ours / theirs)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let needs_functions = args.only.iter().any(|p| *p != Part::Dynamodb);
    for (what, path) in [
        ("lambdock-rie", &args.rie),
        ("AWS RIE", &args.aws_rie),
        ("function", &args.function),
        ("lambdock", &args.lambdock),
        ("python", &args.python),
    ] {
        if needs_functions && !path.is_file() {
            return Err(
                format!("{what} not found at {} (run `make bench`)", path.display()).into(),
            );
        }
    }
    if args.only.contains(&Part::Rie) {
        rie_table(&args).await?;
    }
    if args.only.contains(&Part::Agent) {
        let repo = std::env::current_dir()?;
        agent::run(
            &args.lambdock,
            &args.rie,
            &args.function,
            &args.python,
            &repo,
            args.creations,
        )
        .await?;
    }
    if args.only.contains(&Part::Gateway) {
        gateway::run(
            &args.lambdock,
            &args.rie,
            &args.aws_rie,
            &args.function,
            &args.python,
            args.invokes,
        )
        .await?;
    }
    if args.only.contains(&Part::S3) {
        s3::run(
            &args.lambdock,
            &args.rie,
            &args.python,
            args.s3_requests,
            args.s3_clients,
        )
        .await?;
    }
    if args.only.contains(&Part::Dynamodb) {
        dynamodb::run(&args.python, args.dynamodb_requests).await?;
    }
    Ok(())
}

async fn rie_table(args: &Args) -> Result<(), Error> {
    eprintln!("measuring lambdock-rie ...");
    let ours = measure(&args.rie, &args.function, args).await?;
    eprintln!("measuring AWS RIE ...");
    let aws = measure(&args.aws_rie, &args.function, args).await?;

    println!(
        "lambdock-rie vs AWS RIE: no-op Rust (lambda_runtime) function, {} sequential warm invokes on one keep-alive connection, {} cold starts",
        args.invokes, args.cold_starts
    );
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "figure", "lambdock-rie", "AWS RIE", "ours/theirs"
    );
    let rows = [
        ("warm invoke p50 (µs)", ours.p50_us, aws.p50_us),
        ("warm invoke p99 (µs)", ours.p99_us, aws.p99_us),
        ("invocations per second", ours.per_sec, aws.per_sec),
        (
            "cold start to first answer p50 (ms)",
            ours.cold_p50_ms,
            aws.cold_p50_ms,
        ),
        (
            "emulator idle RSS (KiB)",
            ours.idle_rss_kib as f64,
            aws.idle_rss_kib as f64,
        ),
        (
            "  of which anonymous, unshared (KiB)",
            ours.idle_anon_kib as f64,
            aws.idle_anon_kib as f64,
        ),
    ];
    for (name, a, b) in rows {
        println!("{name:<34} {a:>14.1} {b:>14.1} {:>14}", ratio(a, b));
    }
    Ok(())
}
