//! The gRPC service (`lambdock.agent.v1.Agent`) over one [`Backend`].
//!
//! Every call is scoped by an owner id. The agent keeps the records of the workers it made and
//! adopts the ones a previous agent process left running (the backend finds them); workers that
//! died meanwhile are cleaned up and reported as stopped until their owner destroys them.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambdock_proto::agent::agent_server::Agent;
use lambdock_proto::agent::{
    self as pb, CreateWorkerRequest, DestroyWorkerResponse, InvokeRequest, InvokeResponse,
    ListWorkersRequest, ListWorkersResponse, LogLine, StreamLogsRequest, WorkerMetrics, WorkerRef,
    create_worker_request,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::backend::{
    Backend, BackendError, CodeSource, LogSource, WorkerRecord, WorkerSpec, WorkerState,
};
use crate::metrics::{Metrics, ReasonLabel, StateLabel};
use crate::now_ms;

/// Bodies a worker may answer with: a 6 MB Lambda response plus error framing.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

struct Entry {
    record: WorkerRecord,
    state: WorkerState,
    exit_code: Option<i32>,
    last_used_ms: i64,
}

struct Inner {
    backend: Arc<dyn Backend>,
    workers: Mutex<HashMap<String, Entry>>,
    metrics: Arc<Metrics>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The agent service.
#[derive(Clone)]
pub struct AgentService {
    inner: Arc<Inner>,
}

fn backend_status(e: &BackendError) -> Status {
    match e {
        BackendError::InvalidSpec(_) => Status::invalid_argument(e.to_string()),
        BackendError::Unavailable(_) => Status::failed_precondition(e.to_string()),
        BackendError::Unsupported(_) => Status::unimplemented(e.to_string()),
        BackendError::StartFailed { .. } | BackendError::Io { .. } => {
            Status::internal(e.to_string())
        }
    }
}

fn reason(e: &BackendError) -> &'static str {
    match e {
        BackendError::InvalidSpec(_) => "invalid_spec",
        BackendError::Unavailable(_) => "unavailable",
        BackendError::Unsupported(_) => "unsupported",
        BackendError::StartFailed { .. } => "start_failed",
        BackendError::Io { .. } => "io",
    }
}

fn pb_state(state: WorkerState) -> i32 {
    match state {
        WorkerState::Running => pb::WorkerState::Running as i32,
        WorkerState::Paused => pb::WorkerState::Paused as i32,
        WorkerState::Stopped => pb::WorkerState::Stopped as i32,
    }
}

impl Entry {
    fn to_pb(&self) -> pb::Worker {
        let r = &self.record;
        pb::Worker {
            id: r.id.clone(),
            owner_id: r.owner_id.clone(),
            function_name: r.function_name.clone(),
            function_version: r.function_version.clone(),
            invoke_address: r.invoke_address.to_string(),
            state: pb_state(self.state),
            created_at_ms: r.created_at_ms,
            last_used_at_ms: self.last_used_ms,
            labels: r.labels.clone().into_iter().collect(),
            exit_code: self.exit_code,
            backend: r.backend.clone(),
        }
    }
}

fn required<'a>(value: &'a str, name: &str) -> Result<&'a str, Status> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Status::invalid_argument(format!("{name} is required")));
    }
    Ok(v)
}

impl AgentService {
    /// A service over `backend`, adopting the workers a previous agent left.
    pub async fn start(
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BackendError> {
        let mut workers = HashMap::new();
        for record in backend.discover().await? {
            let status = backend.status(&record).await?;
            if status.state == WorkerState::Stopped {
                tracing::warn!(worker = %record.id, function = %record.function_name, "worker died while the agent was away; cleaning up");
                if let Err(e) = backend.destroy(&record).await {
                    tracing::warn!(worker = %record.id, error = %e, "cleanup failed");
                }
            } else {
                tracing::info!(worker = %record.id, function = %record.function_name, "adopted a running worker");
            }
            let last_used_ms = record.created_at_ms;
            workers.insert(
                record.id.clone(),
                Entry {
                    record,
                    state: status.state,
                    exit_code: status.exit_code,
                    last_used_ms,
                },
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let service = AgentService {
            inner: Arc::new(Inner {
                backend,
                workers: Mutex::new(workers),
                metrics,
                client,
            }),
        };
        service.update_gauges();
        Ok(service)
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_gauges(&self) {
        let mut counts: BTreeMap<&'static str, i64> =
            BTreeMap::from([("running", 0), ("paused", 0), ("stopped", 0)]);
        for entry in self.workers().values() {
            *counts.entry(entry.state.as_str()).or_default() += 1;
        }
        for (state, n) in counts {
            self.inner
                .metrics
                .workers
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n);
        }
    }

    /// The record of a worker the caller owns.
    fn owned(
        &self,
        owner_id: &str,
        worker_id: &str,
    ) -> Result<(WorkerRecord, WorkerState, Option<i32>), Status> {
        let owner = required(owner_id, "owner_id")?;
        let id = required(worker_id, "worker_id")?;
        let workers = self.workers();
        let entry = workers
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no worker {id} on this node")))?;
        if entry.record.owner_id != owner {
            return Err(Status::permission_denied(format!(
                "worker {id} belongs to another owner than {owner:?}"
            )));
        }
        Ok((entry.record.clone(), entry.state, entry.exit_code))
    }

    /// Refreshes a worker's state from the backend.
    async fn refresh(&self, record: &WorkerRecord) -> Result<crate::backend::WorkerStatus, Status> {
        let status = self
            .inner
            .backend
            .status(record)
            .await
            .map_err(|e| backend_status(&e))?;
        if let Some(entry) = self.workers().get_mut(&record.id) {
            entry.state = status.state;
            entry.exit_code = status.exit_code.or(entry.exit_code);
        }
        Ok(status)
    }

    fn spec(&self, req: CreateWorkerRequest) -> Result<WorkerSpec, Status> {
        let owner_id = required(&req.owner_id, "owner_id")?.to_string();
        let function_name = required(&req.function_name, "function_name")?.to_string();
        let code = match req.code {
            Some(create_worker_request::Code::Image(image)) => {
                CodeSource::Image(required(&image, "image")?.to_string())
            }
            Some(create_worker_request::Code::Bundle(bundle)) => CodeSource::Bundle {
                code_dir: required(&bundle.code_dir, "bundle.code_dir")?.into(),
                layers: bundle.layer_dirs.into_iter().map(Into::into).collect(),
            },
            None => {
                return Err(Status::invalid_argument(
                    "code is required: an image or a bundle",
                ));
            }
        };
        let runtime = required(&req.runtime, "runtime")?.to_string();
        Ok(WorkerSpec {
            id: format!(
                "{}-{}",
                sanitize(&function_name),
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            owner_id,
            function_name,
            function_version: if req.function_version.is_empty() {
                "$LATEST".into()
            } else {
                req.function_version
            },
            code,
            runtime,
            handler: req.handler,
            memory_mb: if req.memory_mb == 0 {
                128
            } else {
                req.memory_mb
            },
            timeout: Duration::from_millis(if req.timeout_ms == 0 {
                3000
            } else {
                u64::from(req.timeout_ms)
            }),
            ephemeral_storage_mb: if req.ephemeral_storage_mb == 0 {
                512
            } else {
                req.ephemeral_storage_mb
            },
            environment: req.environment.into_iter().collect(),
            labels: req.labels.into_iter().collect(),
            eager_init: req.eager_init,
        })
    }
}

/// A function name as a file and cgroup name component.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() { "worker".into() } else { s }
}

type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn create_worker(
        &self,
        request: Request<CreateWorkerRequest>,
    ) -> Result<Response<pb::Worker>, Status> {
        let spec = self.spec(request.into_inner())?;
        let started = Instant::now();
        let record = match self.inner.backend.create(&spec).await {
            Ok(r) => r,
            Err(e) => {
                self.inner
                    .metrics
                    .failures
                    .get_or_create(&ReasonLabel {
                        reason: reason(&e).into(),
                    })
                    .inc();
                tracing::warn!(function = %spec.function_name, error = %e, "worker creation failed");
                return Err(backend_status(&e));
            }
        };
        self.inner.metrics.creations.inc();
        self.inner
            .metrics
            .create_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(worker = %record.id, function = %record.function_name, elapsed = ?started.elapsed(), "worker created");
        let entry = Entry {
            last_used_ms: record.created_at_ms,
            record,
            state: WorkerState::Running,
            exit_code: None,
        };
        let worker = entry.to_pb();
        self.workers().insert(worker.id.clone(), entry);
        self.update_gauges();
        Ok(Response::new(worker))
    }

    async fn destroy_worker(
        &self,
        request: Request<WorkerRef>,
    ) -> Result<Response<DestroyWorkerResponse>, Status> {
        let r = request.into_inner();
        let (record, _, _) = self.owned(&r.owner_id, &r.worker_id)?;
        self.inner
            .backend
            .destroy(&record)
            .await
            .map_err(|e| backend_status(&e))?;
        self.workers().remove(&record.id);
        self.update_gauges();
        tracing::info!(worker = %record.id, "worker destroyed");
        Ok(Response::new(DestroyWorkerResponse {}))
    }

    async fn pause_worker(
        &self,
        request: Request<WorkerRef>,
    ) -> Result<Response<pb::Worker>, Status> {
        self.freeze(request.into_inner(), true).await
    }

    async fn resume_worker(
        &self,
        request: Request<WorkerRef>,
    ) -> Result<Response<pb::Worker>, Status> {
        self.freeze(request.into_inner(), false).await
    }

    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let owner = required(&request.get_ref().owner_id, "owner_id")?.to_string();
        let records: Vec<WorkerRecord> = self
            .workers()
            .values()
            .filter(|e| e.record.owner_id == owner)
            .map(|e| e.record.clone())
            .collect();
        for record in &records {
            self.refresh(record).await?;
        }
        self.update_gauges();
        let workers = self
            .workers()
            .values()
            .filter(|e| e.record.owner_id == owner)
            .map(Entry::to_pb)
            .collect();
        Ok(Response::new(ListWorkersResponse { workers }))
    }

    async fn get_worker_metrics(
        &self,
        request: Request<WorkerRef>,
    ) -> Result<Response<WorkerMetrics>, Status> {
        let r = request.into_inner();
        let (record, _, _) = self.owned(&r.owner_id, &r.worker_id)?;
        let s = self.refresh(&record).await?;
        Ok(Response::new(WorkerMetrics {
            worker_id: record.id,
            state: pb_state(s.state),
            memory_current_bytes: s.memory_current,
            memory_max_bytes: s.memory_max,
            memory_limit_bytes: s.memory_limit,
            oom_events: s.oom_events,
            cpu_usage_ns: s.cpu_usage_ns,
            exit_code: s.exit_code,
            collected_at_ms: now_ms(),
        }))
    }

    async fn invoke(
        &self,
        request: Request<InvokeRequest>,
    ) -> Result<Response<InvokeResponse>, Status> {
        let r = request.into_inner();
        let (record, state, exit_code) = self.owned(&r.owner_id, &r.worker_id)?;
        match state {
            WorkerState::Paused => {
                return Err(Status::failed_precondition(format!(
                    "worker {} is paused; ResumeWorker before invoking it",
                    record.id
                )));
            }
            WorkerState::Stopped => {
                return Err(Status::failed_precondition(format!(
                    "worker {} has stopped (exit code {}); destroy it and create another",
                    record.id,
                    exit_code.map_or("unknown".to_string(), |c| c.to_string())
                )));
            }
            WorkerState::Running => {}
        }
        let timeout = if r.timeout_ms == 0 {
            Duration::from_millis(record.timeout_ms) + Duration::from_secs(15)
        } else {
            Duration::from_millis(u64::from(r.timeout_ms))
        };
        let mut builder = http::Request::post(format!(
            "http://{}/2015-03-31/functions/function/invocations",
            record.invoke_address
        ));
        for (k, v) in &r.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let http_request = builder
            .body(Full::new(Bytes::from(r.payload)))
            .map_err(|e| Status::invalid_argument(format!("bad header: {e}")))?;
        let call = async {
            let resp = self.inner.client.request(http_request).await.map_err(|e| {
                Status::unavailable(format!(
                    "worker {} at {} is unreachable: {e}",
                    record.id, record.invoke_address
                ))
            })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    Status::resource_exhausted(format!(
                        "worker {} answered with an unreadable or oversize body: {e}",
                        record.id
                    ))
                })?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), v.to_string()))
                })
                .collect();
            Ok::<_, Status>(InvokeResponse {
                status: u32::from(parts.status.as_u16()),
                headers,
                body: body.to_vec(),
            })
        };
        let answer = tokio::time::timeout(timeout, call).await.map_err(|_| {
            Status::deadline_exceeded(format!(
                "worker {} did not answer within {timeout:?}",
                record.id
            ))
        })??;
        if let Some(entry) = self.workers().get_mut(&record.id) {
            entry.last_used_ms = now_ms();
        }
        Ok(Response::new(answer))
    }

    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let r = request.into_inner();
        let (record, _, _) = self.owned(&r.owner_id, &r.worker_id)?;
        let LogSource::File(path) = self.inner.backend.logs(&record);
        let service = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut offset = 0u64;
            let mut partial = String::new();
            loop {
                let chunk = read_from(&path, offset);
                offset += chunk.len() as u64;
                partial.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(pos) = partial.find('\n') {
                    let line: String = partial.drain(..=pos).collect();
                    if tx
                        .send(Ok(LogLine {
                            line: line.trim_end_matches('\n').to_string(),
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                let gone = !service.workers().contains_key(&record.id);
                if !r.follow || gone || tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

impl AgentService {
    /// Pauses (`pause`) or resumes a worker that has not stopped.
    async fn freeze(&self, r: WorkerRef, pause: bool) -> Result<Response<pb::Worker>, Status> {
        let (record, state, _) = self.owned(&r.owner_id, &r.worker_id)?;
        if state == WorkerState::Stopped {
            return Err(Status::failed_precondition(format!(
                "worker {} has stopped",
                record.id
            )));
        }
        let backend = &self.inner.backend;
        let done = if pause {
            backend.pause(&record).await
        } else {
            backend.resume(&record).await
        };
        done.map_err(|e| backend_status(&e))?;
        self.set_state(
            &record.id,
            if pause {
                WorkerState::Paused
            } else {
                WorkerState::Running
            },
        )
    }

    fn set_state(&self, id: &str, state: WorkerState) -> Result<Response<pb::Worker>, Status> {
        let worker = {
            let mut workers = self.workers();
            let entry = workers
                .get_mut(id)
                .ok_or_else(|| Status::not_found(format!("no worker {id} on this node")))?;
            entry.state = state;
            entry.to_pb()
        };
        self.update_gauges();
        Ok(Response::new(worker))
    }
}

fn read_from(path: &std::path::Path, offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = file.take(1024 * 1024).read_to_end(&mut buf);
    buf
}
