//! `lambdock up` (gateway and an in-process agent on one machine) and `lambdock gateway` (a
//! gateway over a separate agent).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lambdock_agent::backend::Backend;
use lambdock_agent::backend::process::{ProcessBackend, ProcessConfig};
use lambdock_agent::backend::runtimes::RuntimeTable;
use lambdock_agent::metrics::Metrics as AgentMetrics;
use lambdock_agent::service::AgentService;
use lambdock_gateway::asynchronous::AsyncConfig;
use lambdock_gateway::breaker::BreakerConfig;
use lambdock_gateway::gateway::{Gateway, GatewayConfig};
use lambdock_gateway::pool::{PoolConfig, Pools};
use lambdock_gateway::queue::{Queue, QueueOptions};
use lambdock_proto::MAX_MESSAGE_BYTES;
use lambdock_proto::agent::agent_client::AgentClient;
use lambdock_proto::agent::{ListWorkersRequest, WorkerRef};
use lambdock_template::manifest::Manifest;
use tonic::transport::Channel;

/// The gateway's options, shared by `up` and `gateway`.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// Deployment manifest (JSON) to serve, reloaded when it changes; without one the gateway
    /// serves the last deployment it received (`lambdock deploy`).
    #[arg(long, short = 'm', env = "LAMBDOCK_MANIFEST")]
    manifest: Option<PathBuf>,
    /// Address the endpoints listen on.
    #[arg(long, env = "LAMBDOCK_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// AWS endpoint port (Lambda Invoke and management API, /metrics).
    #[arg(long, env = "LAMBDOCK_AWS_PORT", default_value_t = 3001)]
    aws_port: u16,
    /// State directory.
    #[arg(long, env = "LAMBDOCK_DATA_DIR", default_value = ".lambdock")]
    data_dir: PathBuf,
    /// Region in ARNs and signatures.
    #[arg(long, env = "LAMBDOCK_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id in ARNs.
    #[arg(long, env = "LAMBDOCK_ACCOUNT_ID", default_value = "123456789012")]
    account_id: String,
    /// Access key callers sign with.
    #[arg(long, env = "LAMBDOCK_ACCESS_KEY", default_value = "lambdock")]
    access_key: String,
    /// Its secret.
    #[arg(long, env = "LAMBDOCK_SECRET_KEY", default_value = "lambdock-secret")]
    secret_key: String,
    /// Turn SigV4 verification off (local use only).
    #[arg(long)]
    no_auth: bool,
    /// Concurrency of a function without reserved concurrency.
    #[arg(long, env = "LAMBDOCK_DEFAULT_CONCURRENCY", default_value_t = 10)]
    default_concurrency: usize,
    /// Seconds a caller over a function's concurrency waits before it is throttled.
    #[arg(long, env = "LAMBDOCK_ACQUIRE_TIMEOUT", default_value_t = 10.0)]
    acquire_timeout: f64,
    /// Seconds an idle worker lives (scale to zero).
    #[arg(long, env = "LAMBDOCK_IDLE_TIMEOUT", default_value_t = 300.0)]
    idle_timeout: f64,
    /// Consecutive sandbox failures (crash, timeout, init failure) that open a function's
    /// circuit breaker; 0 disables it.
    #[arg(long, env = "LAMBDOCK_BREAKER_THRESHOLD", default_value_t = 5)]
    breaker_threshold: u32,
    /// Seconds an open breaker waits before a trial call.
    #[arg(long, env = "LAMBDOCK_BREAKER_RECOVERY", default_value_t = 10.0)]
    breaker_recovery: f64,
    /// Delays before the retries of an Event invocation that failed, in seconds (Lambda: 60,120);
    /// their number is the number of retries.
    #[arg(long, env = "LAMBDOCK_ASYNC_RETRY_DELAYS", value_delimiter = ',', default_values_t = [60.0, 120.0])]
    async_retry_delays: Vec<f64>,
    /// Maximum age of an Event invocation before it is dropped, seconds (Lambda: 6 hours).
    #[arg(long, env = "LAMBDOCK_MAX_EVENT_AGE", default_value_t = 21600.0)]
    max_event_age: f64,
    /// Largest asynchronous (Event) payload, bytes.
    #[arg(long, env = "LAMBDOCK_MAX_ASYNC_PAYLOAD", default_value_t = 1024 * 1024)]
    max_async_payload: usize,
    #[command(flatten)]
    schedule: lambdock_schedule::ScheduleArgs,
    #[command(flatten)]
    api: crate::apigw::ApiArgs,
}

/// Options of `lambdock up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The lambdock-rie binary (default: next to this binary).
    #[arg(long, env = "LAMBDOCK_RIE")]
    rie: Option<PathBuf>,
    /// Python interpreter with awslambdaric and boto3.
    #[arg(long, env = "LAMBDOCK_PYTHON")]
    python: Option<PathBuf>,
    /// Run workers as plain processes even as root.
    #[arg(long)]
    no_isolation: bool,
    /// SAM template to build, provision and deploy at start, as `lambdock deploy` does.
    #[arg(
        long = "template",
        short = 't',
        env = "LAMBDOCK_TEMPLATE",
        conflicts_with = "manifest"
    )]
    template: Option<PathBuf>,
    /// The template's parameter values, `Key=Value`, as `sam deploy`.
    #[arg(long = "parameter-overrides", num_args = 1.., requires = "template")]
    parameter_overrides: Vec<String>,
    /// Cargo profile the template's Rust functions are built with.
    #[arg(long, env = "LAMBDOCK_CARGO_PROFILE", default_value = "release")]
    cargo_profile: String,
    #[command(flatten)]
    s3: lambdock_s3::args::S3Args,
    #[command(flatten)]
    dynamodb: lambdock_dynamodb::DynamoArgs,
}

/// Options of `lambdock gateway`.
#[derive(Args, Debug)]
pub struct GatewayOnlyArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The agent's gRPC address.
    #[arg(long, env = "LAMBDOCK_AGENT", default_value = "http://127.0.0.1:50051")]
    agent: String,
    /// Owner id the gateway's workers carry (gateways sharing agents need distinct ones).
    #[arg(long, env = "LAMBDOCK_OWNER", default_value = "lambdock-gateway")]
    owner: String,
    /// The S3 the functions use (RustFS, MinIO, AWS…), given to them as AWS_ENDPOINT_URL_S3.
    #[arg(long, env = "LAMBDOCK_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The DynamoDB the functions use (ScyllaDB Alternator, AWS…), given to them as
    /// AWS_ENDPOINT_URL_DYNAMODB.
    #[arg(long, env = "LAMBDOCK_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
}

type Error = Box<dyn std::error::Error>;

async fn connect(url: String) -> Result<AgentClient<Channel>, Error> {
    let channel = Channel::from_shared(url.clone())?
        .connect()
        .await
        .map_err(|e| format!("connecting to the agent at {url}: {e}"))?;
    Ok(AgentClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Holds `<data-dir>/up.lock` for as long as the returned file is open: one `up` per data
/// directory.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, Error> {
    let path = dir.join("up.lock");
    lambdock_gateway::queue::lock_file(&path, Duration::from_secs(2))
        .map_err(|e| format!("locking {}: {e}", path.display()))?
        .ok_or_else(|| {
            format!(
                "another lambdock up is running on the data directory {}",
                dir.display()
            )
            .into()
        })
}

/// Runs `lambdock up`.
pub async fn up(args: UpArgs) -> Result<(), Error> {
    let g = &args.gateway;
    std::fs::create_dir_all(&g.data_dir)
        .map_err(|e| format!("creating {}: {e}", g.data_dir.display()))?;
    // Before anything is built or pruned: a second `up` on this data directory would otherwise
    // remove the running one's bundles before failing to bind its ports.
    let _data_dir_lock = lock_data_dir(&g.data_dir)?;
    // A template that does not build stops `up` before anything starts.
    let template = match &args.template {
        Some(path) => {
            let root = g.data_dir.join("build");
            let manifest = crate::deploy::prepare(
                &crate::build::TemplateArgs {
                    template: path.clone(),
                    parameter_overrides: args.parameter_overrides.clone(),
                    region: g.region.clone(),
                    account_id: g.account_id.clone(),
                    stack_name: "lambdock".into(),
                    runtimes: None,
                },
                &root,
                &crate::deploy::bundle_dir(&root),
                &args.cargo_profile,
            )?;
            // Nothing runs yet: the earlier runs' bundles are all unused.
            crate::deploy::prune_bundles(&root, &[&manifest]);
            Some(manifest)
        }
        None => None,
    };
    let rie = args
        .rie
        .clone()
        .or_else(|| crate::agent::beside_exe("lambdock-rie"))
        .ok_or("lambdock-rie not found next to lambdock; pass --rie PATH")?;
    let python = args
        .python
        .clone()
        .unwrap_or_else(crate::agent::default_python);
    let python = std::path::absolute(&python).unwrap_or(python);
    let backend: Arc<dyn Backend> = Arc::new(ProcessBackend::new(ProcessConfig {
        data_dir: g.data_dir.join("agent"),
        rie,
        runtimes: RuntimeTable::new(&python),
        isolation: !args.no_isolation,
    })?);
    let agent = AgentService::start(backend, Arc::new(AgentMetrics::default())).await?;
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse()?)?;
    let agent_addr = incoming.local_addr()?;
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(lambdock_agent::server::serve_local(
        agent,
        incoming,
        async {
            let _ = agent_stopped.await;
        },
    ));
    let client = connect(format!("http://{agent_addr}")).await?;
    let credentials = (!g.no_auth).then(|| (g.access_key.clone(), g.secret_key.clone()));
    let s3 = crate::s3::S3::start(
        &args.s3,
        g.host,
        &g.data_dir,
        &g.region,
        credentials.clone(),
    )
    .await?;
    let dynamodb = crate::dynamodb::DynamoDb::start(
        &args.dynamodb,
        g.host,
        &g.data_dir,
        &g.region,
        credentials,
    )
    .await?;
    let data_plane = DataPlane {
        environment: vec![
            ("AWS_ENDPOINT_URL_S3".to_string(), s3.endpoint.clone()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB".to_string(),
                dynamodb.endpoint.clone(),
            ),
        ],
        banner: vec![format!("  S3 endpoint: {}", s3.endpoint), dynamodb.banner()],
    };
    if let Some(manifest) = &template {
        let outcomes = crate::deploy::provision(
            manifest,
            &lambdock_provision::Endpoints {
                s3: s3.endpoint.clone(),
                dynamodb: dynamodb.endpoint.clone(),
                region: g.region.clone(),
                access_key: g.access_key.clone(),
                secret_key: g.secret_key.clone(),
            },
        )
        .await?;
        crate::build::print_summary(manifest);
        crate::deploy::print_outcomes(&outcomes);
    }
    let result = run_gateway(g, client, "lambdock-up".into(), true, &data_plane, template).await;
    dynamodb.stop().await;
    s3.stop().await;
    let _ = stop_agent.send(());
    let _ = agent_task.await;
    result
}

/// Runs `lambdock gateway`.
pub async fn gateway(args: GatewayOnlyArgs) -> Result<(), Error> {
    let client = connect(args.agent.clone()).await?;
    let data_plane = DataPlane::external(
        args.s3_endpoint.as_deref(),
        args.dynamodb_endpoint.as_deref(),
    );
    run_gateway(
        &args.gateway,
        client,
        args.owner.clone(),
        false,
        &data_plane,
        None,
    )
    .await
}

/// The data-plane services `up` runs next to the gateway, or the external ones a gateway is
/// told about: what functions get in their environment and what the banner shows.
struct DataPlane {
    environment: Vec<(String, String)>,
    banner: Vec<String>,
}

impl DataPlane {
    /// External stores: each one given becomes the functions' endpoint for that service; one
    /// not given is left to the SDK's default (AWS itself).
    fn external(s3: Option<&str>, dynamodb: Option<&str>) -> Self {
        let mut plane = Self {
            environment: Vec::new(),
            banner: Vec::new(),
        };
        for (service, variable, endpoint) in [
            ("S3", "AWS_ENDPOINT_URL_S3", s3),
            ("DynamoDB", "AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
        ] {
            if let Some(endpoint) = endpoint {
                plane
                    .environment
                    .push((variable.to_string(), endpoint.to_string()));
                plane
                    .banner
                    .push(format!("  {service} endpoint (external): {endpoint}"));
            }
        }
        plane
    }
}

async fn run_gateway(
    g: &GatewayArgs,
    agent: AgentClient<Channel>,
    owner: String,
    stop_workers: bool,
    data_plane: &DataPlane,
    template: Option<Manifest>,
) -> Result<(), Error> {
    let deployment_file = g.data_dir.join("deployment.json");
    let manifest = match (template, &g.manifest) {
        (Some(manifest), _) => manifest,
        (None, Some(path)) => Manifest::load(path)?,
        (None, None) if deployment_file.exists() => Manifest::load(&deployment_file)?,
        (None, None) => Manifest::empty(),
    };
    let credentials =
        (!g.no_auth).then(|| HashMap::from([(g.access_key.clone(), g.secret_key.clone())]));
    let aws = SocketAddr::new(g.host, g.aws_port);
    let mut platform_environment = HashMap::from([
        ("AWS_REGION".to_string(), g.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), g.region.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), g.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), g.secret_key.clone()),
        (
            "AWS_ENDPOINT_URL_LAMBDA".to_string(),
            format!("http://{aws}"),
        ),
    ]);
    platform_environment.extend(data_plane.environment.iter().cloned());
    let pools = Pools::new(
        agent.clone(),
        owner.clone(),
        PoolConfig {
            default_concurrency: g.default_concurrency,
            acquire_timeout: Duration::from_secs_f64(g.acquire_timeout),
            idle_timeout: Duration::from_secs_f64(g.idle_timeout),
            platform_environment,
        },
    );
    let queue = Arc::new(
        Queue::open(&g.data_dir.join("queue"), QueueOptions::default())
            .map_err(|e| format!("opening the async queue: {e}"))?,
    );
    if queue.pending() > 0 {
        println!("  Resuming {} accepted Event invocations", queue.pending());
    }
    let gateway = Arc::new(Gateway::new(
        GatewayConfig {
            region: g.region.clone(),
            account_id: g.account_id.clone(),
            credentials,
            max_async_request: g.max_async_payload,
            breaker: BreakerConfig {
                threshold: g.breaker_threshold,
                recovery: Duration::from_secs_f64(g.breaker_recovery),
            },
            deployment_file: Some(deployment_file),
        },
        &manifest,
        pools,
        Some(queue.clone()),
    ));
    let api = crate::apigw::bind(&g.api, g.host, gateway.clone()).await?;
    gateway.deploy(&manifest, true).await?;
    let listener = tokio::net::TcpListener::bind(aws)
        .await
        .map_err(|e| format!("listening on {aws}: {e}"))?;

    println!("Lambdock is up.");
    println!("  AWS endpoint (Lambda API, /metrics): http://{aws}");
    for line in &data_plane.banner {
        println!("{line}");
    }
    if g.no_auth {
        println!("  Authentication: off (--no-auth)");
    } else {
        println!(
            "  Credentials: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION={}",
            g.access_key, g.secret_key, g.region
        );
    }
    println!(
        "  Functions: {}",
        gateway
            .registry()
            .functions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  Try: aws --endpoint-url http://{aws} lambda list-functions");
    for line in &api.banner {
        println!("{line}");
    }
    println!("ready");

    let dispatcher = tokio::spawn(lambdock_gateway::asynchronous::dispatch(
        gateway.clone(),
        queue,
        AsyncConfig {
            retry_delays: g
                .async_retry_delays
                .iter()
                .map(|s| Duration::from_secs_f64(*s))
                .collect(),
            max_event_age: Duration::from_secs_f64(g.max_event_age),
            ..AsyncConfig::default()
        },
    ));
    let scheduler = tokio::spawn(lambdock_schedule::run(
        gateway.clone(),
        g.schedule.config(),
        crate::terminated(),
    ));
    let janitor_gateway = gateway.clone();
    let manifest_path = g.manifest.clone();
    let janitor = tokio::spawn(async move {
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen = manifest_path.as_ref().and_then(modified);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            // Hot reload: a changed manifest is deployed; a broken one is refused and the
            // running deployment stays.
            let now = manifest_path.as_ref().and_then(modified);
            if let Some(manifest_path) = &manifest_path
                && now != seen
            {
                seen = now;
                match Manifest::load(manifest_path) {
                    Ok(m) => match janitor_gateway.deploy(&m, false).await {
                        Ok(()) => {
                            tracing::info!(manifest = %manifest_path.display(), "deployed the changed manifest")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "deploying the changed manifest failed")
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "the changed manifest is invalid; keeping the running deployment")
                    }
                }
            }
            janitor_gateway.janitor_pass().await;
        }
    });
    let (api_task, shutdown) = crate::apigw::spawn(api, crate::terminated());
    lambdock_gateway::server::serve(gateway.clone(), listener, shutdown, Duration::from_secs(30))
        .await;
    let _ = api_task.await;
    janitor.abort();
    scheduler.abort();
    // Undelivered events stay on disk and are delivered at the next start.
    dispatcher.abort();
    gateway.pools.drain().await;
    if stop_workers {
        let mut agent = agent;
        let workers = agent
            .list_workers(ListWorkersRequest {
                owner_id: owner.clone(),
            })
            .await?
            .into_inner()
            .workers;
        for w in workers {
            let _ = agent
                .destroy_worker(WorkerRef {
                    owner_id: owner.clone(),
                    worker_id: w.id,
                })
                .await;
        }
        println!("stopped every worker");
    }
    Ok(())
}
