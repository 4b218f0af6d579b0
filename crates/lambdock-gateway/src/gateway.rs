//! The AWS endpoint: Lambda's Invoke API and the read side of the management API, behind
//! SigV4, over the pools.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use lambdock_template::manifest::Manifest;

use crate::breaker::{Admission, BreakerConfig, Breakers, Failure};
use crate::errors::LambdaError;
use crate::management;
use crate::metrics::Metrics;
use crate::pool::{Lease, Pools};
use crate::queue::{Event, Queue};
use crate::registry::{Registry, Resolved};
use crate::run_to_end::RunToEnd;
use crate::sigv4::Verifier;
use crate::worker_conn::{self, CallError};

/// The largest answer read from a worker: a 6 MB response with room for its encoding.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The caller's headers an invocation hands on to the worker.
const FORWARDED_HEADERS: [&str; 3] = ["x-amz-client-context", "x-amz-log-type", "x-amz-tenant-id"];

/// What a worker (or the breaker, for it) answered.
#[derive(Debug)]
pub struct Outcome {
    /// The worker's response headers.
    pub headers: HeaderMap,
    /// Its body.
    pub payload: Bytes,
    /// The error type when the function failed.
    pub error_type: Option<String>,
}

/// How old an unknown worker must be before the janitor adopts or destroys it.
const RECONCILE_GRACE: Duration = Duration::from_secs(10);

/// Lambda's synchronous request limit.
pub const MAX_SYNC_REQUEST: usize = 6 * 1024 * 1024;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Region in ARNs and signatures.
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// Access keys and secrets; `None` turns authentication off.
    pub credentials: Option<HashMap<String, String>>,
    /// Limit of an `Event` payload.
    pub max_async_request: usize,
    /// Circuit breaker settings.
    pub breaker: BreakerConfig,
    /// Where a deployment received over the API is kept, so a restart serves it again.
    pub deployment_file: Option<std::path::PathBuf>,
}

/// Error types after which a worker is not reused: its sandbox was reset or is suspect.
const SANDBOX_FAILURES: [&str; 4] = [
    "Sandbox.Timedout",
    "Runtime.ExitError",
    "Runtime.OutOfMemory",
    "Runtime.InvalidEntrypoint",
];

/// Errors of the platform or the runtime rather than of the function's own code: these count
/// for the circuit breaker (`Runtime.ImportModuleError`, `Sandbox.Timedout`, ...).
fn is_sandbox_failure(error_type: &str) -> bool {
    [
        "Runtime.",
        "Sandbox.",
        "Extension.",
        "Function.ResponseSizeTooLarge",
    ]
    .iter()
    .any(|p| error_type.starts_with(p))
}

/// The gateway.
pub struct Gateway {
    cfg: GatewayConfig,
    registry: RwLock<Arc<Registry>>,
    deployed_at: RwLock<String>,
    /// The pools.
    pub pools: Pools,
    verifier: Option<Verifier<HashMap<String, String>>>,
    breakers: Breakers,
    queue: Option<Arc<Queue>>,
    /// Metrics.
    pub metrics: Metrics,
    /// The schedules' state as the scheduler (lambdock-schedule) last published it.
    schedules: RwLock<serde_json::Value>,
}

type Body = Full<Bytes>;

fn now_iso() -> String {
    // Lambda's LastModified format: 2026-12-03T14:00:00.000+0000.
    lambda_time(SystemTime::now())
}

fn lambda_time(t: SystemTime) -> String {
    let rfc3339 = humantime::format_rfc3339_millis(t).to_string();
    format!("{}+0000", rfc3339.trim_end_matches('Z'))
}

/// An X-Ray trace header, as Lambda (or API Gateway) generates one when the caller sent none.
pub fn new_trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Sampled=0", &random[..24])
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn json_response(status: StatusCode, body: String, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// Replaces `path` with `data` so that a crash leaves the old or the new file, never a part.
fn write_durably(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Percent-decodes a path segment once (the function name of an ARN arrives encoded).
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(&v.replace('+', " ")))
    })
}

impl Gateway {
    /// A gateway serving `manifest` over `pools`.
    pub fn new(
        cfg: GatewayConfig,
        manifest: &Manifest,
        pools: Pools,
        queue: Option<Arc<Queue>>,
    ) -> Gateway {
        let registry = Registry::new(manifest, &cfg.region, &cfg.account_id);
        let verifier = cfg.credentials.clone().map(|c| Verifier::new(c, "lambda"));
        let breakers = Breakers::new(cfg.breaker);
        Gateway {
            queue,
            breakers,
            cfg,
            registry: RwLock::new(Arc::new(registry)),
            deployed_at: RwLock::new(now_iso()),
            pools,
            verifier,
            metrics: Metrics::default(),
            schedules: RwLock::new(serde_json::Value::Array(Vec::new())),
        }
    }

    /// Replaces what `GET /lambdock/v1/schedules` shows (the scheduler calls it on each change).
    pub fn publish_schedules(&self, schedules: serde_json::Value) {
        *self.schedules.write().unwrap_or_else(|e| e.into_inner()) = schedules;
    }

    /// The deployment being served.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Switches to a new deployment: new invocations use it at once, in-flight ones finish on
    /// the old one, and workers of removed or changed functions are drained.
    /// `startup` adopts every live worker at once (nothing is being created yet).
    pub async fn deploy(&self, manifest: &Manifest, startup: bool) -> Result<(), LambdaError> {
        let registry = Arc::new(Registry::new(
            manifest,
            &self.cfg.region,
            &self.cfg.account_id,
        ));
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = registry.clone();
        *self.deployed_at.write().unwrap_or_else(|e| e.into_inner()) = now_iso();
        let functions: HashMap<_, _> = registry
            .functions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.pools.retire(&functions).await;
        self.pools
            .reconcile(
                &functions,
                if startup {
                    Duration::ZERO
                } else {
                    RECONCILE_GRACE
                },
            )
            .await?;
        for f in registry.functions.values() {
            self.pools.provision(f).await?;
        }
        Ok(())
    }

    /// Checks, persists and switches to a deployment sent over the API. Nothing changes when
    /// it is refused.
    async fn accept_deployment(&self, body: &[u8]) -> Result<Manifest, LambdaError> {
        let origin = std::path::Path::new("deployment");
        // Paths in a deployment are the gateway machine's own: relative ones mean nothing.
        let manifest = Manifest::parse(body, origin, std::path::Path::new("/"))
            .map_err(|e| LambdaError::InvalidParameterValue(e.to_string()))?;
        for (name, f) in &manifest.functions {
            let dirs = match &f.code {
                lambdock_template::manifest::Code::Dir(d) => vec![d],
                lambdock_template::manifest::Code::Image(_) => vec![],
            };
            for dir in dirs.into_iter().chain(&f.layers) {
                if !dir.is_dir() {
                    return Err(LambdaError::InvalidParameterValue(format!(
                        "function {name}: {} is not a directory on the gateway's machine",
                        dir.display()
                    )));
                }
            }
        }
        if let Some(file) = self.cfg.deployment_file.clone() {
            let text = serde_json::to_vec_pretty(&manifest)
                .map_err(|e| LambdaError::Service(e.to_string()))?;
            tokio::task::spawn_blocking(move || write_durably(&file, &text))
                .await
                .map_err(|e| LambdaError::Service(e.to_string()))?
                .map_err(|e| LambdaError::Service(format!("saving the deployment: {e}")))?;
        }
        self.deploy(&manifest, false).await?;
        tracing::info!(
            functions = manifest.functions.len(),
            "deployed a manifest received over the API"
        );
        Ok(manifest)
    }

    /// One janitor pass: idle pruning and orphan reconciliation.
    pub async fn janitor_pass(&self) {
        self.pools.prune().await;
        let registry = self.registry();
        let functions: HashMap<_, _> = registry
            .functions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Err(e) = self.pools.reconcile(&functions, RECONCILE_GRACE).await {
            tracing::warn!(error = %e, "reconciliation with the agent failed");
        }
    }

    /// Answers one request on the AWS endpoint.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_SYNC_REQUEST + 1).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(LambdaError::RequestTooLarge(format!(
                    "Request must be smaller than {MAX_SYNC_REQUEST} bytes for the InvokeFunction operation"
                ))
                .response(&request_id));
            }
        };
        if parts.uri.path() == "/metrics" && parts.method == Method::GET {
            let registry = self.registry();
            let breakers: Vec<(String, i64)> = registry
                .functions
                .keys()
                .map(|f| (f.clone(), self.breakers.state(f) as i64))
                .collect();
            let queue = self.queue.as_ref().map(|q| {
                let now = crate::now_ms();
                (
                    q.pending() as i64,
                    q.oldest_enqueued_at_ms()
                        .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
                )
            });
            let text = self.metrics.encode(&self.pools.stats(), &breakers, queue);
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return Ok(resp);
        }
        if let Some(verifier) = &self.verifier
            && let Err(e) = verifier.verify(&parts, &body, SystemTime::now())
        {
            tracing::info!(request_id, error = %e, "rejected signature");
            let err = LambdaError::Auth {
                code: e.code(),
                message: e.to_string(),
            };
            return Ok(err.response(&request_id));
        }
        let resp = match self.route(&parts, body, &request_id).await {
            Ok(r) => r,
            Err(e) => e.response(&request_id),
        };
        tracing::info!(
            request_id,
            trace_id = header(&parts.headers, "x-amzn-trace-id").unwrap_or(""),
            method = %parts.method,
            path = parts.uri.path(),
            status = resp.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        );
        Ok(resp)
    }

    async fn route(
        self: &Arc<Self>,
        parts: &http::request::Parts,
        body: Bytes,
        request_id: &str,
    ) -> Result<Response<Body>, LambdaError> {
        let path = parts.uri.path();
        let query = parts.uri.query();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let registry = self.registry();
        let deployed_at = self
            .deployed_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let qualifier = query_param(query, "Qualifier");
        match (&parts.method, segments.as_slice()) {
            (&Method::POST, ["2015-03-31", "functions", name, "invocations"]) => {
                self.invoke(parts, &decode(name), qualifier.as_deref(), body, request_id)
                    .await
            }
            (&Method::GET, ["2015-03-31", "functions"]) => Ok(json_response(
                StatusCode::OK,
                management::list_functions(&registry, &deployed_at).to_string(),
                request_id,
            )),
            (&Method::GET, ["2015-03-31", "functions", name]) => {
                let r = registry.resolve(&decode(name), qualifier.as_deref())?;
                let v = management::get_function(&registry, &r.function, &r.version, &deployed_at);
                Ok(json_response(StatusCode::OK, v.to_string(), request_id))
            }
            (&Method::GET, ["2015-03-31", "functions", name, "configuration"]) => {
                let r = registry.resolve(&decode(name), qualifier.as_deref())?;
                let v = management::configuration(&registry, &r.function, &r.version, &deployed_at);
                Ok(json_response(StatusCode::OK, v.to_string(), request_id))
            }
            (&Method::GET, ["2015-03-31", "functions", name, "aliases"]) => {
                let r = registry.resolve(&decode(name), None)?;
                Ok(json_response(
                    StatusCode::OK,
                    management::list_aliases(&r.function).to_string(),
                    request_id,
                ))
            }
            (&Method::GET, ["2015-03-31", "functions", name, "versions"]) => {
                let r = registry.resolve(&decode(name), None)?;
                let v = management::list_versions(&registry, &r.function, &deployed_at);
                Ok(json_response(StatusCode::OK, v.to_string(), request_id))
            }
            // Lambdock's own: the deployment (`lambdock deploy` hands its manifest over here).
            (&Method::GET, ["lambdock", "v1", "deployment"]) => Ok(json_response(
                StatusCode::OK,
                serde_json::to_string(&*registry.manifest)
                    .map_err(|e| LambdaError::Service(e.to_string()))?,
                request_id,
            )),
            (&Method::PUT, ["lambdock", "v1", "deployment"]) => {
                let manifest = self.accept_deployment(&body).await?;
                Ok(json_response(
                    StatusCode::OK,
                    serde_json::json!({
                        "Functions": manifest.functions.len(),
                        "Routes": manifest.routes.len(),
                        "Schedules": manifest.schedules.len(),
                    })
                    .to_string(),
                    request_id,
                ))
            }
            // Lambdock's own: the workers behind the pools (`lambdock ps`).
            (&Method::GET, ["lambdock", "v1", "workers"]) => {
                let workers = self.pools.workers().await?;
                Ok(json_response(
                    StatusCode::OK,
                    serde_json::json!({"Workers": workers}).to_string(),
                    request_id,
                ))
            }
            // Lambdock's own: the schedules, next and last runs (`lambdock schedules`).
            (&Method::GET, ["lambdock", "v1", "schedules"]) => {
                let schedules = self
                    .schedules
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Ok(json_response(
                    StatusCode::OK,
                    serde_json::json!({"Schedules": schedules}).to_string(),
                    request_id,
                ))
            }
            _ => Err(LambdaError::UnknownOperation(format!(
                "No operation at {} {path}",
                parts.method
            ))),
        }
    }

    async fn invoke(
        self: &Arc<Self>,
        parts: &http::request::Parts,
        function_name: &str,
        qualifier: Option<&str>,
        body: Bytes,
        request_id: &str,
    ) -> Result<Response<Body>, LambdaError> {
        let h = &parts.headers;
        let invocation_type = header(h, "x-amz-invocation-type").unwrap_or("RequestResponse");
        if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
            return Err(LambdaError::InvalidParameterValue(format!(
                "1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )));
        }
        let resolved = self.registry().resolve(function_name, qualifier)?;
        if invocation_type == "Event" && body.len() > self.cfg.max_async_request {
            return Err(LambdaError::RequestTooLarge(format!(
                "Request must be smaller than {} bytes for the InvokeFunction operation",
                self.cfg.max_async_request
            )));
        }
        if body.len() > MAX_SYNC_REQUEST {
            return Err(LambdaError::RequestTooLarge(format!(
                "Request must be smaller than {MAX_SYNC_REQUEST} bytes for the InvokeFunction operation"
            )));
        }
        if !body.is_empty()
            && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        {
            return Err(LambdaError::InvalidRequestContent(format!(
                "Could not parse request body into json: {e}"
            )));
        }
        // Lambda hands a function `{}` when the caller sent no payload (an SDK's `invoke`
        // without `Payload`), never an empty event its runtime client could not parse.
        let body = if body.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            body
        };
        if let Some(cc) = header(h, "x-amz-client-context") {
            let valid = base64::engine::general_purpose::STANDARD
                .decode(cc)
                .ok()
                .is_some_and(|raw| {
                    serde_json::from_slice::<serde_json::Value>(&raw).is_ok_and(|v| v.is_object())
                });
            if !valid {
                return Err(LambdaError::InvalidParameterValue(
                    "Client context must be a valid Base64-encoded JSON object.".into(),
                ));
            }
        }
        let trace_id = header(h, "x-amzn-trace-id").map_or_else(new_trace_id, str::to_string);
        match invocation_type {
            "DryRun" => {
                let mut resp = json_response(StatusCode::NO_CONTENT, String::new(), request_id);
                resp.headers_mut().remove("content-type");
                Ok(resp)
            }
            "Event" => {
                self.accept_event(h, &resolved, body, request_id, &trace_id)
                    .await
            }
            _ => {
                self.invoke_sync(h, &resolved, body, request_id, &trace_id)
                    .await
            }
        }
    }

    /// Queues an `Event` invocation; 202 only once it is on disk.
    async fn accept_event(
        &self,
        h: &HeaderMap,
        resolved: &Resolved,
        body: Bytes,
        request_id: &str,
        trace_id: &str,
    ) -> Result<Response<Body>, LambdaError> {
        let mut headers = std::collections::BTreeMap::from([(
            "x-amzn-trace-id".to_string(),
            trace_id.to_string(),
        )]);
        if let Some(cc) = header(h, "x-amz-client-context") {
            headers.insert("x-amz-client-context".into(), cc.to_string());
        }
        self.enqueue(resolved, body, headers, request_id).await?;
        let mut resp = json_response(StatusCode::ACCEPTED, String::new(), request_id);
        resp.headers_mut().remove("content-type");
        if let Ok(v) = HeaderValue::from_str(trace_id) {
            resp.headers_mut().insert("x-amzn-trace-id", v);
        }
        Ok(resp)
    }

    /// Puts an asynchronous invocation durably on the queue (Event invokes, schedules):
    /// `headers` are the invoke headers its delivery carries (`x-amzn-trace-id`, ...).
    pub async fn enqueue(
        &self,
        resolved: &Resolved,
        body: Bytes,
        headers: std::collections::BTreeMap<String, String>,
        request_id: &str,
    ) -> Result<(), LambdaError> {
        let queue = self.queue.clone().ok_or_else(|| {
            LambdaError::Service("this gateway has no queue for asynchronous invocations".into())
        })?;
        let now = crate::now_ms();
        let event = Event {
            id: request_id.to_string(),
            function: resolved.function.name.clone(),
            qualifier: (resolved.version != "$LATEST").then(|| resolved.version.clone()),
            payload: body.to_vec(),
            headers,
            enqueued_at_ms: now,
            attempt: 0,
            not_before_ms: now,
        };
        // The fsync blocks; keep it off the reactor.
        tokio::task::spawn_blocking(move || queue.enqueue(event))
            .await
            .map_err(|e| LambdaError::Service(format!("queueing the event: {e}")))?
            .map_err(|e| LambdaError::Service(format!("queueing the event: {e}")))?;
        Ok(())
    }

    /// The queue, when asynchronous invocations are on.
    pub fn queue(&self) -> Option<Arc<Queue>> {
        self.queue.clone()
    }

    /// Posts the invocation to the leased worker and reads its whole answer.
    async fn call_worker(
        &self,
        lease: &mut Lease,
        h: &HeaderMap,
        resolved: &Resolved,
        body: &Bytes,
        request_id: &str,
        trace_id: &str,
    ) -> Result<(http::response::Parts, Bytes), CallError> {
        let mut builder = Request::post("/2015-03-31/functions/function/invocations")
            .header(http::header::HOST, lease.worker.addr.to_string())
            .header("x-lambdock-request-id", request_id)
            .header("x-lambdock-invoked-function-arn", &resolved.invoked_arn)
            .header("x-amzn-trace-id", trace_id);
        for name in FORWARDED_HEADERS {
            if let Some(v) = h.get(name) {
                builder = builder.header(name, v);
            }
        }
        let request = match builder.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(_) => Request::new(Full::new(body.clone())),
        };
        let addr = lease.worker.addr;
        worker_conn::call(&mut lease.worker.conn, addr, request, MAX_ANSWER).await
    }

    async fn invoke_sync(
        self: &Arc<Self>,
        h: &HeaderMap,
        resolved: &Resolved,
        body: Bytes,
        request_id: &str,
        trace_id: &str,
    ) -> Result<Response<Body>, LambdaError> {
        // As in Lambda, a caller that hangs up does not stop the invocation, and its worker goes
        // back to the pool when the function is done.
        let gateway = Arc::clone(self);
        // Only what reaches the worker, not the caller's whole header map.
        let mut headers = HeaderMap::new();
        for name in FORWARDED_HEADERS {
            if let Some(v) = h.get(name) {
                headers.insert(name, v.clone());
            }
        }
        let target = resolved.clone();
        let (rid, trace) = (request_id.to_string(), trace_id.to_string());
        let outcome =
            RunToEnd::new(
                async move { gateway.execute(&headers, &target, body, &rid, &trace).await },
            )
            .await?;
        let mut resp = Response::new(Full::new(outcome.payload));
        let out = resp.headers_mut();
        out.insert(
            "content-type",
            outcome
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json")),
        );
        for name in ["x-amz-function-error", "x-amz-log-result"] {
            if let Some(v) = outcome.headers.get(name) {
                out.insert(name, v.clone());
            }
        }
        for (name, value) in [
            ("x-amz-executed-version", resolved.version.as_str()),
            ("x-amzn-requestid", request_id),
            ("x-amzn-trace-id", trace_id),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.insert(name, v);
            }
        }
        Ok(resp)
    }

    /// Runs one invocation on a worker of the function (the synchronous and the asynchronous
    /// paths share it): breaker, pool, one retry when the worker could not be reached, and the
    /// worker's fate.
    pub async fn execute(
        &self,
        h: &HeaderMap,
        resolved: &Resolved,
        body: Bytes,
        request_id: &str,
        trace_id: &str,
    ) -> Result<Outcome, LambdaError> {
        let function = &resolved.function;
        let started = Instant::now();
        if let Admission::Reject(failure) = self.breakers.admit(&function.name) {
            // What Lambda would answer again, renamed to this request; nothing reaches a worker.
            let body =
                String::from_utf8_lossy(&failure.body).replace(&failure.request_id, request_id);
            let error_type = header(&failure.headers, "x-lambdock-error-type").map(str::to_string);
            return Ok(Outcome {
                headers: failure.headers,
                payload: Bytes::from(body),
                error_type,
            });
        }
        let mut attempt = 0;
        let (lease, answer) = loop {
            attempt += 1;
            let mut lease = match self.pools.acquire(function, &resolved.version).await {
                Ok(l) => l,
                Err(e) => {
                    if matches!(e, LambdaError::TooManyRequests { .. }) {
                        self.metrics.throttle(&function.name);
                    }
                    return Err(e);
                }
            };
            match self
                .call_worker(&mut lease, h, resolved, &body, request_id, trace_id)
                .await
            {
                Ok(answer) => break (lease, answer),
                // The worker could not be reached at all: nothing ran, so one retry on another.
                Err(e) if e.is_connect() && attempt == 1 => {
                    tracing::warn!(request_id, worker = %lease.worker.id, error = %e, "worker unreachable; retrying on another");
                    self.pools.release(lease, false).await;
                }
                Err(e) => {
                    self.pools.release(lease, false).await;
                    return Err(LambdaError::ResourceNotReady(match e {
                        CallError::Body(e) => format!("The function's answer was cut short: {e}"),
                        e => format!(
                            "The function's execution environment could not be reached: {e}"
                        ),
                    }));
                }
            }
        };
        let cold = lease.cold;
        let (parts, payload) = answer;
        let error_type = header(&parts.headers, "x-lambdock-error-type").map(str::to_string);
        let healthy = error_type
            .as_deref()
            .is_none_or(|t| !SANDBOX_FAILURES.contains(&t));
        self.pools.release(lease, healthy).await;
        match error_type.as_deref() {
            Some(t) if is_sandbox_failure(t) => self.breakers.failure(
                &function.name,
                Failure {
                    request_id: request_id.to_string(),
                    headers: parts.headers.clone(),
                    body: payload.clone(),
                },
            ),
            _ => self.breakers.success(&function.name),
        }
        self.metrics.invocation(
            &function.name,
            started.elapsed(),
            error_type.is_some(),
            cold,
        );
        Ok(Outcome {
            headers: parts.headers,
            payload,
            error_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_lambdas() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_306_878_954);
        assert_eq!(lambda_time(t), "2026-12-03T14:07:58.954+0000");
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param(Some("Qualifier=%24LATEST&x=1"), "Qualifier").as_deref(),
            Some("$LATEST")
        );
        assert_eq!(query_param(Some("a=b"), "Qualifier"), None);
    }

    #[test]
    fn generated_trace_ids_have_xrays_shape() {
        let t = new_trace_id();
        assert!(t.starts_with("Root=1-") && t.ends_with(";Sampled=0"), "{t}");
        assert_eq!(t.len(), "Root=1-".len() + 8 + 1 + 24 + ";Sampled=0".len());
    }
}
