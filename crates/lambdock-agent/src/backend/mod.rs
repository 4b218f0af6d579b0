//! The backend trait: how a node makes workers. The agent service is written against it, and
//! the `process` backend here, like the `containerd` and `docker` backends to come, fits it
//! without changes: a worker is made from an image reference or a code bundle, limited in
//! memory and time, given an environment, reachable at an invoke address that speaks
//! `lambdock-rie`'s interface, pausable, measurable, and labelled so that a restarted agent finds
//! every worker it owns.

pub mod process;
pub mod runtimes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where a worker's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodeSource {
    /// An OCI image reference (container backends).
    Image(String),
    /// A code directory and layer directories on this node.
    Bundle {
        /// Mounted (or pointed to) as `LAMBDA_TASK_ROOT`.
        code_dir: std::path::PathBuf,
        /// Merged into `/opt`, later layers winning.
        layers: Vec<std::path::PathBuf>,
    },
}

/// Everything a backend needs to make one worker.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Chosen by the agent; unique on the node.
    pub id: String,
    /// The owner (a gateway) the worker belongs to.
    pub owner_id: String,
    /// Function name.
    pub function_name: String,
    /// Function version (`$LATEST`, `3`).
    pub function_version: String,
    /// The code.
    pub code: CodeSource,
    /// Lambda runtime identifier (`python3.12`, `provided.al2023`).
    pub runtime: String,
    /// Handler.
    pub handler: String,
    /// Memory limit in MB.
    pub memory_mb: u32,
    /// Function timeout.
    pub timeout: Duration,
    /// `/tmp` size in MB.
    pub ephemeral_storage_mb: u32,
    /// Environment of the function (besides Lambda's reserved variables).
    pub environment: BTreeMap<String, String>,
    /// The owner's labels.
    pub labels: BTreeMap<String, String>,
    /// Start the runtime at creation.
    pub eager_init: bool,
}

/// What the agent remembers of a worker (persisted, so a restarted agent knows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Worker id.
    pub id: String,
    /// Owner.
    pub owner_id: String,
    /// Function name.
    pub function_name: String,
    /// Function version.
    pub function_version: String,
    /// Where `lambdock-rie`'s invoke interface listens.
    pub invoke_address: SocketAddr,
    /// The owner's labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Function timeout in ms (the proxy's default bound).
    pub timeout_ms: u64,
    /// Backend name.
    pub backend: String,
    /// Backend-specific handle (pid, cgroup, container id ...).
    pub handle: serde_json::Value,
}

/// Lifecycle state of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkerState {
    /// Serving.
    Running,
    /// Frozen.
    Paused,
    /// Gone; kept until its owner destroys it.
    Stopped,
}

impl WorkerState {
    /// Lower-case name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Paused => "paused",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// A worker's state and resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStatus {
    /// State.
    pub state: WorkerState,
    /// Exit code once stopped, when known.
    pub exit_code: Option<i32>,
    /// Resident memory now, bytes.
    pub memory_current: u64,
    /// Peak resident memory, bytes.
    pub memory_max: u64,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// OOM kills inside the worker.
    pub oom_events: u64,
    /// CPU time used, ns.
    pub cpu_usage_ns: u64,
}

/// A backend failure, worded for the person who must act on it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The request cannot be served as asked (unknown runtime, missing code, ...).
    #[error("{0}")]
    InvalidSpec(String),
    /// Something the node needs is missing (an interpreter, a binary).
    #[error("{0}")]
    Unavailable(String),
    /// The worker started but did not become ready.
    #[error("worker {id} did not start: {reason}")]
    StartFailed {
        /// Worker id.
        id: String,
        /// Why, with the worker's last output.
        reason: String,
    },
    /// An operation the backend cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The operating system refused.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Where a worker's output can be read.
#[derive(Debug, Clone)]
pub enum LogSource {
    /// A file the backend appends to.
    File(std::path::PathBuf),
}

/// A way of making workers on this node.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Short name (`process`, `containerd`, `docker`).
    fn name(&self) -> &'static str;
    /// Makes a worker and returns once its invoke interface answers.
    async fn create(&self, spec: &WorkerSpec) -> Result<WorkerRecord, BackendError>;
    /// Removes a worker and everything it used; a worker already gone is not an error.
    async fn destroy(&self, worker: &WorkerRecord) -> Result<(), BackendError>;
    /// Freezes every process of the worker.
    async fn pause(&self, worker: &WorkerRecord) -> Result<(), BackendError>;
    /// Thaws it.
    async fn resume(&self, worker: &WorkerRecord) -> Result<(), BackendError>;
    /// State and resource use.
    async fn status(&self, worker: &WorkerRecord) -> Result<WorkerStatus, BackendError>;
    /// Every worker this backend made on this node, found from its own bookkeeping (labels,
    /// state files), for an agent that just started.
    async fn discover(&self) -> Result<Vec<WorkerRecord>, BackendError>;
    /// Where the worker's output is.
    fn logs(&self, worker: &WorkerRecord) -> LogSource;
}
