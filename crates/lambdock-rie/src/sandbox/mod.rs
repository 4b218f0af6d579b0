//! The sandbox: one runtime, one invocation at a time, and the state machine between them.
//!
//! An invocation is driven by its own task (so a caller that hangs up cannot leave the runtime
//! half-way): it starts the runtime when none runs (a cold start), hands the event to the
//! runtime's parked `/next`, waits for `/response` or `/error` until the deadline, and ends when
//! the runtime and every `INVOKE` extension are back at their `next`. A timeout or a crash kills
//! the whole process group, and the next invocation starts a fresh runtime, as Lambda resets an
//! execution environment.
//!
//! The Runtime API handlers never block on the driver: they change the state under the lock and
//! send it a [`Signal`].

pub mod extensions;
pub mod types;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::signal::Signal as UnixSignal;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::config::Config;
use crate::errors::{ErrorBody, PlatformError, describe_exit};
use crate::logs::{LogSink, OutputPipe, output_pipe};
use crate::process::{ProcessGroup, peak_rss_bytes};
use extensions::{Extension, ExtensionEvent, MAX_EXTENSIONS, Registry, Tracing};
pub use types::{Delivery, InvokeRejected, InvokeReply, InvokeRequest, ReplyBody, StreamFrame};

/// What the Runtime API tells the driver of the invocation (or of the init) in progress.
#[derive(Debug)]
pub enum Signal {
    /// The runtime and every extension reached `next`: init is over.
    Ready,
    /// The runtime reported an init failure.
    InitError {
        /// Body as posted.
        body: Bytes,
        /// `Lambda-Runtime-Function-Error-Type`.
        error_type: String,
    },
    /// A buffered response.
    Response {
        /// The body.
        body: Bytes,
        /// Its content type.
        content_type: Option<String>,
    },
    /// A streamed response started.
    Stream {
        /// Its content type.
        content_type: Option<String>,
        /// Frames as they come.
        frames: mpsc::Receiver<StreamFrame>,
    },
    /// The function failed.
    Error {
        /// Body as the caller will see it.
        body: Bytes,
        /// Error type.
        error_type: String,
    },
    /// The runtime's answer broke a platform rule.
    Failed(PlatformError),
    /// The runtime and extensions are back at `next`: the invocation is over.
    Done,
    /// The runtime process ended.
    Exited {
        /// Go-style status; `None` for exit 0.
        status: Option<String>,
        /// The event was never taken by the runtime, so it can be retried on a fresh one.
        undelivered: bool,
    },
}

/// A Runtime or Extensions API call that the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 403 `InvalidStateTransition`.
    #[error(
        "State transition from {from} to {to} failed for runtime. Error: State transition is not allowed"
    )]
    InvalidStateTransition {
        /// RAPID's name of the current state.
        from: &'static str,
        /// RAPID's name of the requested state.
        to: &'static str,
    },
    /// 400 `InvalidRequestID`.
    #[error("Invalid request ID")]
    InvalidRequestId,
    /// 403 `Extension.MissingExtensionIdentifier`.
    #[error("Missing Lambda-Extension-Identifier header")]
    MissingExtensionIdentifier,
    /// 403 `Extension.InvalidExtensionIdentifier`.
    #[error("Invalid Lambda-Extension-Identifier")]
    InvalidExtensionIdentifier,
    /// 403 `Extension.RegistrationClosed`.
    #[error("Extension registration closed already")]
    RegistrationClosed,
    /// 400 `Extension.TooManyExtensions`.
    #[error("Too many extensions registered")]
    TooManyExtensions,
    /// 403 `Extension.InvalidExtensionName`.
    #[error("Missing or invalid Lambda-Extension-Name header")]
    InvalidExtensionName,
    /// 400 `Extension.InvalidEventType`.
    #[error("Invalid event type: {0}")]
    InvalidEventType(String),
}

impl ApiError {
    /// The `errorType` of the body.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidStateTransition { .. } => "InvalidStateTransition",
            ApiError::InvalidRequestId => "InvalidRequestID",
            ApiError::MissingExtensionIdentifier => "Extension.MissingExtensionIdentifier",
            ApiError::InvalidExtensionIdentifier => "Extension.InvalidExtensionIdentifier",
            ApiError::RegistrationClosed => "Extension.RegistrationClosed",
            ApiError::TooManyExtensions => "Extension.TooManyExtensions",
            ApiError::InvalidExtensionName => "Extension.InvalidExtensionName",
            ApiError::InvalidEventType(_) => "Extension.InvalidEventType",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidRequestId
            | ApiError::TooManyExtensions
            | ApiError::InvalidEventType(_) => 400,
            _ => 403,
        }
    }
}

/// Where the runtime is in its life, with RAPID's state names for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No runtime process.
    Stopped,
    /// Started, has not reached `/next` yet.
    Initializing,
    /// Posted `/init/error`.
    InitFailed,
    /// Parked at `/next` (or about to be), no invocation.
    Idle,
    /// An event was handed over.
    Invoking {
        request_id: String,
        answered: bool,
        runtime_back: bool,
    },
}

impl Phase {
    fn rapid_name(&self) -> &'static str {
        match self {
            Phase::Stopped | Phase::Initializing => "Started",
            Phase::InitFailed => "InitError",
            Phase::Idle
            | Phase::Invoking {
                answered: false, ..
            } => "Running",
            Phase::Invoking { answered: true, .. } => "RuntimeResponseSentState",
        }
    }
}

struct Runtime {
    group: ProcessGroup,
    pid: u32,
    pipe: Arc<OutputPipe>,
}

struct State {
    generation: u64,
    runtime: Option<Runtime>,
    phase: Phase,
    runtime_ready: bool,
    parked: Option<oneshot::Sender<Delivery>>,
    pending: Option<Delivery>,
    driver: Option<mpsc::UnboundedSender<Signal>>,
    extensions: Registry,
    current_request: Option<String>,
}

/// What `/next` gets: an event now, or a wait.
pub enum NextEvent {
    /// The event was already waiting.
    Now(Box<Delivery>),
    /// Park until one comes.
    Wait(oneshot::Receiver<Delivery>),
}

/// What `extension/event/next` gets.
pub enum NextExtensionEvent {
    /// An event was queued.
    Now(ExtensionEvent),
    /// Park until one comes.
    Wait(oneshot::Receiver<ExtensionEvent>),
}

/// The registration answer of the Extensions API.
#[derive(Debug, serde::Serialize)]
pub struct Registration {
    /// `Lambda-Extension-Identifier` (header, not body).
    #[serde(skip)]
    pub id: String,
    /// Function name.
    #[serde(rename = "functionName")]
    pub function_name: String,
    /// Function version.
    #[serde(rename = "functionVersion")]
    pub function_version: String,
    /// Handler.
    pub handler: String,
}

/// An init that did not complete.
struct InitFailure {
    body: Bytes,
    error_type: String,
    duration: Duration,
}

/// How an invocation ended, for the `REPORT` line.
enum Ending {
    Ok,
    Timeout,
    Error(String),
}

/// One execution environment.
pub struct Sandbox {
    weak: Weak<Sandbox>,
    cfg: Arc<Config>,
    state: Mutex<State>,
    permit: Arc<Semaphore>,
    finishing: AtomicBool,
    shutting_down: AtomicBool,
    logs: LogSink,
}

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sandbox {
    /// A sandbox with no runtime started yet.
    pub fn new(cfg: Config, logs: LogSink) -> Arc<Self> {
        Arc::new_cyclic(|weak| Sandbox {
            weak: weak.clone(),
            cfg: Arc::new(cfg),
            state: Mutex::new(State {
                generation: 0,
                runtime: None,
                phase: Phase::Stopped,
                runtime_ready: false,
                parked: None,
                pending: None,
                driver: None,
                extensions: Registry::default(),
                current_request: None,
            }),
            permit: Arc::new(Semaphore::new(1)),
            finishing: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            logs,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// True when a runtime process is up and has finished init.
    pub fn is_warm(&self) -> bool {
        let st = self.lock();
        st.runtime.is_some()
            && !matches!(
                st.phase,
                Phase::Initializing | Phase::Stopped | Phase::InitFailed
            )
    }

    // ----- invoke side -------------------------------------------------------------------

    /// Runs one invocation. Refused at once if another one has not answered yet; waits if the
    /// previous one answered and the runtime is finishing up.
    pub async fn invoke(
        self: &Arc<Self>,
        req: InvokeRequest,
    ) -> Result<InvokeReply, InvokeRejected> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(InvokeRejected::ShuttingDown);
        }
        let permit = match self.permit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) if self.finishing.load(Ordering::SeqCst) => self
                .permit
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| InvokeRejected::ShuttingDown)?,
            Err(_) => {
                let running = self.lock().current_request.clone().unwrap_or_default();
                return Err(InvokeRejected::Busy { running });
            }
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move { this.drive(req, permit, reply_tx).await });
        reply_rx.await.map_err(|_| InvokeRejected::ShuttingDown)
    }

    /// Starts the runtime now instead of at the first invocation.
    pub fn start_eager(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = this.permit.clone().acquire_owned().await else {
                return;
            };
            let (tx, mut rx) = mpsc::unbounded_channel();
            this.lock().driver = Some(tx);
            if let Err(failure) = this.init(&mut rx, None).await {
                this.logs.platform_line(&init_report(&failure));
                this.reset();
            }
            this.lock().driver = None;
        });
    }

    async fn drive(
        self: Arc<Self>,
        req: InvokeRequest,
        permit: OwnedSemaphorePermit,
        reply_tx: oneshot::Sender<InvokeReply>,
    ) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut st = self.lock();
            st.driver = Some(tx);
            st.current_request = Some(req.request_id.clone());
        }
        self.logs.begin_invocation();
        let mut reply_tx = Some(reply_tx);
        let fin = self.run(&req, &mut rx, &mut reply_tx).await;
        let id = &req.request_id;
        if let Some(pipe) = &fin.pipe {
            self.logs.drain(pipe);
        }
        self.logs.platform_line(&format!("END RequestId: {id}"));
        self.logs.platform_line(&self.report_line(
            id,
            fin.duration,
            fin.init_duration,
            fin.peak_memory,
            &fin.ending,
        ));
        let tail = self.logs.end_invocation();
        if let (Some(tx), Some(mut msg)) = (reply_tx.take(), fin.reply) {
            msg.log_tail = req.want_tail.then_some(tail);
            let _ = tx.send(msg);
        }
        {
            let mut st = self.lock();
            st.driver = None;
            st.current_request = None;
        }
        self.finishing.store(false, Ordering::SeqCst);
        drop(permit);
    }

    /// The invocation proper. Sends the reply early through `reply_tx` unless the caller wants
    /// the log tail, which is only complete once the invocation ends.
    async fn run(
        &self,
        req: &InvokeRequest,
        rx: &mut mpsc::UnboundedReceiver<Signal>,
        reply_tx: &mut Option<oneshot::Sender<InvokeReply>>,
    ) -> Finished {
        let id = &req.request_id;
        let version = &self.cfg.function.version;
        let mut init_duration: Option<Duration> = None;
        let mut retried = false;
        loop {
            if !self.has_runtime() {
                match self.init(rx, Some(id)).await {
                    Ok(d) => init_duration = Some(init_duration.unwrap_or_default() + d),
                    Err(failure) => {
                        self.logs.platform_line(&init_report(&failure));
                        self.logs
                            .platform_line(&format!("START RequestId: {id} Version: {version}"));
                        let pipe = self.current_pipe();
                        self.reset();
                        return Finished {
                            reply: Some(error_reply(
                                id,
                                failure.body,
                                failure.error_type.clone(),
                                Some(failure.duration),
                            )),
                            ending: Ending::Error(failure.error_type),
                            duration: Duration::ZERO,
                            init_duration: Some(failure.duration),
                            peak_memory: None,
                            pipe,
                        };
                    }
                }
            }
            let (pid, pipe) = {
                let st = self.lock();
                match st.runtime.as_ref() {
                    Some(r) => (Some(r.pid), Some(r.pipe.clone())),
                    None => (None, None),
                }
            };
            if !retried {
                self.logs
                    .platform_line(&format!("START RequestId: {id} Version: {version}"));
            }
            let now = SystemTime::now();
            let deadline_at = req.deadline.unwrap_or(now + self.cfg.function.timeout);
            let deadline =
                tokio::time::Instant::now() + deadline_at.duration_since(now).unwrap_or_default();
            let started = Instant::now();
            self.deliver(Delivery {
                request_id: id.clone(),
                payload: req.payload.clone(),
                deadline_ms: epoch_ms(deadline_at),
                invoked_function_arn: req
                    .invoked_function_arn
                    .clone()
                    .unwrap_or_else(|| self.cfg.function.default_arn.clone()),
                trace_id: req.trace_id.clone(),
                client_context: req.client_context.clone(),
                cognito_identity: req.cognito_identity.clone(),
                tenant_id: req.tenant_id.clone(),
                content_type: req.content_type.clone(),
            });

            // Phase 1: the runtime answers, fails, or runs out of time.
            let answer = loop {
                tokio::select! {
                    signal = rx.recv() => match signal {
                        Some(Signal::Ready | Signal::Done | Signal::InitError { .. }) => continue,
                        other => break other,
                    },
                    _ = tokio::time::sleep_until(deadline) => break None,
                }
            };
            let mut reply = InvokeReply {
                request_id: id.clone(),
                body: ReplyBody::Full(Bytes::new()),
                content_type: None,
                function_error: None,
                log_tail: None,
                init_duration,
            };
            let failure = match answer {
                Some(Signal::Response { body, content_type }) => {
                    reply.body = ReplyBody::Full(body);
                    reply.content_type = content_type;
                    None
                }
                Some(Signal::Stream {
                    content_type,
                    frames,
                }) => {
                    reply.body = ReplyBody::Stream(frames);
                    reply.content_type = content_type;
                    None
                }
                Some(Signal::Error { body, error_type }) => {
                    reply = error_reply(id, body, error_type, init_duration);
                    None
                }
                Some(Signal::Failed(e)) => {
                    reply = error_reply(id, e.body(), e.error_type().into(), init_duration);
                    None
                }
                Some(Signal::Exited {
                    undelivered: true, ..
                }) if !retried => {
                    // The runtime died idle before taking this event: nothing ran, so a fresh
                    // runtime takes it, as Lambda would route to a healthy environment.
                    retried = true;
                    self.reset();
                    continue;
                }
                Some(Signal::Exited { status, .. }) => Some(PlatformError::RuntimeExit {
                    request_id: id.clone(),
                    status,
                }),
                _ => Some(PlatformError::Timeout {
                    request_id: id.clone(),
                    seconds: self.cfg.function.timeout.as_secs_f64(),
                }),
            };
            if let Some(err) = failure {
                let peak_memory = pid.map(peak_rss_bytes);
                let ending = self.log_failure(id, &err);
                self.reset();
                return Finished {
                    reply: Some(error_reply(
                        id,
                        err.body(),
                        err.error_type().into(),
                        init_duration,
                    )),
                    ending,
                    duration: started.elapsed(),
                    init_duration,
                    peak_memory,
                    pipe,
                };
            }

            // Phase 2: the runtime (and extensions) come back to `next`.
            let mut reply = Some(reply);
            if !req.want_tail {
                self.finishing.store(true, Ordering::SeqCst);
                if let (Some(tx), Some(msg)) = (reply_tx.take(), reply.take()) {
                    let _ = tx.send(msg);
                }
            }
            let ending = loop {
                tokio::select! {
                    signal = rx.recv() => match signal {
                        Some(Signal::Done) | None => break Ending::Ok,
                        Some(Signal::Exited { status, .. }) => {
                            let err = PlatformError::RuntimeExit { request_id: id.clone(), status };
                            break self.log_failure(id, &err);
                        }
                        Some(_) => continue,
                    },
                    _ = tokio::time::sleep_until(deadline) => {
                        let err = PlatformError::Timeout { request_id: id.clone(), seconds: self.cfg.function.timeout.as_secs_f64() };
                        break self.log_failure(id, &err);
                    }
                }
            };
            let peak_memory = pid.map(peak_rss_bytes);
            if !matches!(ending, Ending::Ok) {
                self.reset();
            }
            return Finished {
                reply,
                ending,
                duration: started.elapsed(),
                init_duration,
                peak_memory,
                pipe,
            };
        }
    }

    /// Writes what Lambda writes when an invocation fails on the platform side.
    fn log_failure(&self, id: &str, err: &PlatformError) -> Ending {
        if let PlatformError::Timeout { seconds, .. } = err {
            let now = humantime::format_rfc3339_millis(SystemTime::now());
            self.logs.platform_line(&format!(
                "{now} {id} Task timed out after {seconds:.2} seconds"
            ));
            return Ending::Timeout;
        }
        if let PlatformError::RuntimeExit { status, .. } = err {
            let reason = match status {
                Some(s) => format!("Runtime exited with error: {s}"),
                None => "Runtime exited without providing a reason".to_string(),
            };
            self.logs
                .platform_line(&format!("RequestId: {id} Error: {reason}"));
            self.logs.platform_line(err.error_type());
        }
        Ending::Error(err.error_type().into())
    }

    fn report_line(
        &self,
        id: &str,
        duration: Duration,
        init: Option<Duration>,
        peak_memory: Option<u64>,
        ending: &Ending,
    ) -> String {
        let ms = duration.as_secs_f64() * 1000.0;
        let billed = (ms + init.map_or(0.0, |d| d.as_secs_f64() * 1000.0))
            .ceil()
            .max(1.0) as u64;
        let memory = self.cfg.function.memory_mb;
        let used = peak_memory.map_or(0, |b| b.div_ceil(1024 * 1024));
        let mut line = format!(
            "REPORT RequestId: {id}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory} MB\tMax Memory Used: {used} MB\t"
        );
        if let Some(init) = init {
            line.push_str(&format!(
                "Init Duration: {:.2} ms\t",
                init.as_secs_f64() * 1000.0
            ));
        }
        match ending {
            Ending::Ok => {}
            Ending::Timeout => line.push_str("Status: timeout\t"),
            Ending::Error(t) => line.push_str(&format!("Status: error\tError Type: {t}\t")),
        }
        line
    }

    fn has_runtime(&self) -> bool {
        self.lock().runtime.is_some()
    }

    fn current_pipe(&self) -> Option<Arc<OutputPipe>> {
        self.lock().runtime.as_ref().map(|r| r.pipe.clone())
    }

    /// Starts the runtime and waits for it (and its extensions) to reach `next`.
    async fn init(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Signal>,
        request_id: Option<&str>,
    ) -> Result<Duration, InitFailure> {
        let started = Instant::now();
        let prefix = request_id
            .map(|id| format!("RequestId: {id} "))
            .unwrap_or_default();
        if let Err(e) = self.start_runtime() {
            return Err(InitFailure {
                body: ErrorBody::new("Runtime.InvalidEntrypoint", format!("{prefix}Error: {e}"))
                    .to_bytes(),
                error_type: "Runtime.InvalidEntrypoint".into(),
                duration: started.elapsed(),
            });
        }
        let limit = tokio::time::sleep(self.cfg.init_timeout);
        tokio::pin!(limit);
        loop {
            tokio::select! {
                signal = rx.recv() => match signal {
                    Some(Signal::Ready) => return Ok(started.elapsed()),
                    Some(Signal::InitError { body, error_type }) => {
                        return Err(InitFailure { body, error_type, duration: started.elapsed() });
                    }
                    Some(Signal::Exited { status, .. }) => {
                        let err = PlatformError::RuntimeExit { request_id: request_id.unwrap_or_default().into(), status };
                        let message = format!("{prefix}Error: {}", exit_reason(&err));
                        return Err(InitFailure {
                            body: ErrorBody::new(err.error_type(), message).to_bytes(),
                            error_type: err.error_type().into(),
                            duration: started.elapsed(),
                        });
                    }
                    Some(_) => continue,
                    None => return Err(InitFailure {
                        body: ErrorBody::new("Runtime.Unknown", format!("{prefix}Error: sandbox state lost")).to_bytes(),
                        error_type: "Runtime.Unknown".into(),
                        duration: started.elapsed(),
                    }),
                },
                _ = &mut limit => {
                    let err = PlatformError::InitTimeout {
                        request_id: request_id.unwrap_or_default().into(),
                        seconds: self.cfg.init_timeout.as_secs_f64(),
                    };
                    return Err(InitFailure { body: err.body(), error_type: err.error_type().into(), duration: started.elapsed() });
                }
            }
        }
    }

    /// Spawns the external extensions and the runtime as a new generation.
    fn start_runtime(&self) -> Result<(), crate::process::SpawnError> {
        let spawn_error = |e: std::io::Error| crate::process::SpawnError {
            program: self.cfg.bootstrap.first().cloned().unwrap_or_default(),
            reason: e.to_string(),
        };
        let (pipe, write) = output_pipe().map_err(spawn_error)?;
        let env = self.cfg.runtime_environment(|k| std::env::var(k).ok());
        let mut group = ProcessGroup::default();
        let mut extension_children = Vec::new();
        for path in list_extensions(&self.cfg.extensions_dir) {
            let argv = [path.to_string_lossy().into_owned()];
            match group.spawn(&argv, &self.cfg.working_dir, &env, &write) {
                Ok(child) => extension_children.push(child),
                Err(e) => tracing::warn!(error = %e, "extension did not start"),
            }
        }
        let mut child = match group.spawn(&self.cfg.bootstrap, &self.cfg.working_dir, &env, &write)
        {
            Ok(c) => c,
            Err(e) => {
                group.signal(UnixSignal::SIGKILL);
                return Err(e);
            }
        };
        drop(write);
        let pid = child.id().unwrap_or(0);
        let pipe = Arc::new(pipe);
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            st.runtime = Some(Runtime {
                group,
                pid,
                pipe: pipe.clone(),
            });
            st.phase = Phase::Initializing;
            st.runtime_ready = false;
            st.parked = None;
            st.pending = None;
            st.extensions = Registry::default();
            st.generation
        };
        let logs = self.logs.clone();
        tokio::spawn(async move { logs.forward(pipe).await });
        for mut ext in extension_children {
            tokio::spawn(async move {
                if let Ok(status) = ext.wait().await {
                    tracing::debug!(%status, "extension exited");
                }
            });
        }
        let weak = self.self_ref();
        tokio::spawn(async move {
            let status = child.wait().await;
            if let Some(sandbox) = weak.upgrade() {
                let status = match status {
                    Ok(s) => describe_exit(s),
                    Err(e) => Some(format!("wait: {e}")),
                };
                sandbox.on_exit(generation, status);
            }
        });
        Ok(())
    }

    fn self_ref(&self) -> Weak<Sandbox> {
        self.weak.clone()
    }

    /// The runtime of `generation` ended.
    fn on_exit(&self, generation: u64, status: Option<String>) {
        let mut st = self.lock();
        if st.generation != generation {
            return;
        }
        tracing::debug!(?status, "runtime exited");
        let undelivered = st.pending.is_some();
        // Extensions and forks of the runtime go with it.
        st.kill_runtime();
        if let Some(driver) = &st.driver {
            let _ = driver.send(Signal::Exited {
                status,
                undelivered,
            });
        }
    }

    /// Kills the runtime generation and forgets it: the next invocation starts a fresh one.
    fn reset(&self) {
        self.lock().kill_runtime();
    }

    /// Hands an event to the runtime (now if it is parked in `/next`) and to `INVOKE` extensions.
    fn deliver(&self, delivery: Delivery) {
        let mut st = self.lock();
        st.phase = Phase::Invoking {
            request_id: delivery.request_id.clone(),
            answered: false,
            runtime_back: false,
        };
        let event = ExtensionEvent::Invoke {
            deadline_ms: delivery.deadline_ms,
            request_id: delivery.request_id.clone(),
            invoked_function_arn: delivery.invoked_function_arn.clone(),
            tracing: Tracing {
                kind: "X-Amzn-Trace-Id",
                value: delivery.trace_id.clone().unwrap_or_default(),
            },
        };
        st.extensions.broadcast(&event, |e| e.invoke);
        match st.parked.take() {
            Some(tx) => {
                if let Err(d) = tx.send(delivery) {
                    st.pending = Some(d);
                }
            }
            None => st.pending = Some(delivery),
        }
    }

    // ----- Runtime API -------------------------------------------------------------------

    /// `GET /runtime/invocation/next`.
    pub fn runtime_next(&self) -> Result<NextEvent, ApiError> {
        let mut st = self.lock();
        let to = "Ready";
        match st.phase.clone() {
            Phase::Initializing => {
                if st.runtime_ready {
                    return Err(ApiError::InvalidStateTransition { from: "Ready", to });
                }
                st.runtime_ready = true;
                st.check_init_done();
            }
            Phase::Invoking {
                answered: true,
                runtime_back: false,
                request_id,
            } => {
                st.phase = Phase::Invoking {
                    request_id,
                    answered: true,
                    runtime_back: true,
                };
                st.check_invoke_done();
            }
            Phase::Idle => {
                if st.parked.as_ref().is_some_and(|p| !p.is_closed()) {
                    return Err(ApiError::InvalidStateTransition { from: "Ready", to });
                }
            }
            phase => {
                return Err(ApiError::InvalidStateTransition {
                    from: phase.rapid_name(),
                    to,
                });
            }
        }
        if st.phase == Phase::Idle
            && let Some(d) = st.pending.take()
        {
            return Ok(NextEvent::Now(Box::new(d)));
        }
        let (tx, rx) = oneshot::channel();
        st.parked = Some(tx);
        Ok(NextEvent::Wait(rx))
    }

    /// Starts `/response` or `/error` for `request_id`: the driver's channel if the runtime may
    /// answer now. `to` is RAPID's name of the target state.
    pub fn begin_answer(
        &self,
        request_id: &str,
        to: &'static str,
    ) -> Result<mpsc::UnboundedSender<Signal>, ApiError> {
        let mut st = self.lock();
        match &mut st.phase {
            Phase::Invoking {
                request_id: current,
                answered: answered @ false,
                ..
            } => {
                if current != request_id {
                    return Err(ApiError::InvalidRequestId);
                }
                *answered = true;
            }
            Phase::Idle => return Err(ApiError::InvalidRequestId),
            phase => {
                return Err(ApiError::InvalidStateTransition {
                    from: phase.rapid_name(),
                    to,
                });
            }
        }
        st.driver.clone().ok_or(ApiError::InvalidRequestId)
    }

    /// `POST /runtime/init/error`.
    pub fn init_error(&self, body: Bytes, error_type: String) -> Result<(), ApiError> {
        let mut st = self.lock();
        if st.phase != Phase::Initializing {
            return Err(ApiError::InvalidStateTransition {
                from: st.phase.rapid_name(),
                to: "InitError",
            });
        }
        st.phase = Phase::InitFailed;
        if let Some(driver) = &st.driver {
            let _ = driver.send(Signal::InitError { body, error_type });
        }
        Ok(())
    }

    // ----- Extensions API ----------------------------------------------------------------

    /// `POST /extension/register`.
    pub fn register_extension(
        &self,
        name: &str,
        events: &[String],
    ) -> Result<Registration, ApiError> {
        if name.is_empty() {
            return Err(ApiError::InvalidExtensionName);
        }
        let (invoke, shutdown) = parse_events(events)?;
        let mut st = self.lock();
        if st.phase != Phase::Initializing || st.runtime_ready {
            return Err(ApiError::RegistrationClosed);
        }
        if st.extensions.extensions.len() >= MAX_EXTENSIONS {
            return Err(ApiError::TooManyExtensions);
        }
        let id = uuid::Uuid::new_v4().to_string();
        st.extensions.extensions.push(Extension {
            id: id.clone(),
            name: name.to_string(),
            invoke,
            shutdown,
            parked: None,
            queued: Default::default(),
            ready: false,
            busy: false,
        });
        let f = &self.cfg.function;
        Ok(Registration {
            id,
            function_name: f.name.clone(),
            function_version: f.version.clone(),
            handler: f.handler.clone(),
        })
    }

    /// `GET /extension/event/next`.
    pub fn extension_next(&self, id: Option<&str>) -> Result<NextExtensionEvent, ApiError> {
        let id = id.ok_or(ApiError::MissingExtensionIdentifier)?;
        let mut st = self.lock();
        let ext = st
            .extensions
            .get_mut(id)
            .ok_or(ApiError::InvalidExtensionIdentifier)?;
        let first = !ext.ready;
        ext.ready = true;
        ext.busy = false;
        let next = match ext.queued.pop_front() {
            Some(event) => NextExtensionEvent::Now(event),
            None => {
                let (tx, rx) = oneshot::channel();
                ext.parked = Some(tx);
                NextExtensionEvent::Wait(rx)
            }
        };
        if first {
            st.check_init_done();
        } else {
            st.check_invoke_done();
        }
        Ok(next)
    }

    /// `POST /extension/init/error` and `/extension/exit/error`: checks the identifier. An
    /// init error fails the init like the runtime's own.
    pub fn extension_error(
        &self,
        id: Option<&str>,
        error_type: String,
        init: bool,
    ) -> Result<(), ApiError> {
        let id = id.ok_or(ApiError::MissingExtensionIdentifier)?;
        let mut st = self.lock();
        let name = st
            .extensions
            .get_mut(id)
            .ok_or(ApiError::InvalidExtensionIdentifier)?
            .name
            .clone();
        tracing::warn!(extension = %name, %error_type, init, "extension reported an error");
        if init && st.phase == Phase::Initializing {
            st.phase = Phase::InitFailed;
            let body = ErrorBody::new(
                error_type.clone(),
                format!("Extension {name} failed to initialize"),
            )
            .to_bytes();
            if let Some(driver) = &st.driver {
                let _ = driver.send(Signal::InitError { body, error_type });
            }
        }
        Ok(())
    }

    /// Stops the sandbox: `SHUTDOWN` to extensions, then the runtime is killed, as Lambda does
    /// at spin-down (SIGTERM first, only when extensions are registered).
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let graceful = {
            let mut st = self.lock();
            let deadline_ms = epoch_ms(SystemTime::now() + SHUTDOWN_GRACE);
            let event = ExtensionEvent::Shutdown {
                shutdown_reason: "spindown",
                deadline_ms,
            };
            st.extensions.broadcast(&event, |e| e.shutdown);
            let graceful = !st.extensions.extensions.is_empty();
            if graceful && let Some(rt) = &st.runtime {
                rt.group.signal(UnixSignal::SIGTERM);
            }
            graceful
        };
        if graceful {
            let until = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < until && self.has_runtime() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.reset();
    }
}

/// How long extensions get to handle `SHUTDOWN`, as Lambda gives external extensions.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(2000);

impl State {
    /// Kills the process group of the current generation and forgets it.
    fn kill_runtime(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.group.signal(UnixSignal::SIGKILL);
        }
        self.generation += 1;
        self.phase = Phase::Stopped;
        self.parked = None;
        self.pending = None;
        self.extensions = Registry::default();
    }

    fn check_init_done(&mut self) {
        if self.phase == Phase::Initializing && self.runtime_ready && self.extensions.all_ready() {
            self.phase = Phase::Idle;
            if let Some(driver) = &self.driver {
                let _ = driver.send(Signal::Ready);
            }
        }
    }

    fn check_invoke_done(&mut self) {
        if let Phase::Invoking {
            runtime_back: true, ..
        } = self.phase
            && self.extensions.all_idle()
        {
            self.phase = Phase::Idle;
            if let Some(driver) = &self.driver {
                let _ = driver.send(Signal::Done);
            }
        }
    }
}

fn parse_events(events: &[String]) -> Result<(bool, bool), ApiError> {
    let mut invoke = false;
    let mut shutdown = false;
    for e in events {
        match e.as_str() {
            "INVOKE" => invoke = true,
            "SHUTDOWN" => shutdown = true,
            other => return Err(ApiError::InvalidEventType(other.to_string())),
        }
    }
    Ok((invoke, shutdown))
}

/// Executables in the extensions directory, in name order as Lambda starts them.
fn list_extensions(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    paths.sort();
    paths
}

struct Finished {
    reply: Option<InvokeReply>,
    ending: Ending,
    duration: Duration,
    init_duration: Option<Duration>,
    peak_memory: Option<u64>,
    pipe: Option<Arc<OutputPipe>>,
}

fn error_reply(
    id: &str,
    body: Bytes,
    error_type: String,
    init_duration: Option<Duration>,
) -> InvokeReply {
    InvokeReply {
        request_id: id.to_string(),
        body: ReplyBody::Full(body),
        content_type: Some("application/json".into()),
        function_error: Some(error_type),
        log_tail: None,
        init_duration,
    }
}

fn exit_reason(err: &PlatformError) -> String {
    match err {
        PlatformError::RuntimeExit {
            status: Some(s), ..
        } => format!("Runtime exited with error: {s}"),
        _ => "Runtime exited without providing a reason".to_string(),
    }
}

/// `INIT_REPORT Init Duration: ... Phase: init Status: error Error Type: ...`, as Lambda logs a
/// failed init.
fn init_report(failure: &InitFailure) -> String {
    format!(
        "INIT_REPORT Init Duration: {:.2} ms\tPhase: init\tStatus: error\tError Type: {}",
        failure.duration.as_secs_f64() * 1000.0,
        failure.error_type
    )
}
