//! The `process` backend: a worker is `lambdock-rie` plus the runtime it starts, as plain
//! processes on this node. Nothing needs to be installed.
//!
//! Where the agent runs as root, each worker gets what a Lambda sandbox has: `lambdock-rie
//! --isolate` puts it in its own mount and PID namespace (code read-only at `/var/task`, layers
//! at `/opt`, a private `/tmp`), and a cgroup per worker limits its memory (an OOM kill ends the
//! invocation with `Runtime.ExitError` "signal: killed" and is counted), accounts its CPU, and
//! freezes it for pause. Elsewhere the worker runs as plain processes with the code's own path
//! as `LAMBDA_TASK_ROOT`, pause is SIGSTOP/SIGCONT, and the agent warns once at start.
//!
//! The agent binds each worker's two sockets itself and hands them over as inherited
//! descriptors, so the invoke address is known before the process starts and no port can be
//! taken in between. Worker state is kept in `<data dir>/workers/<id>/`, so a restarted agent
//! finds the workers that are still alive and cleans up the ones that died.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::runtimes::{Launch, RuntimeTable};
use super::{
    Backend, BackendError, CodeSource, LogSource, WorkerRecord, WorkerSpec, WorkerState,
    WorkerStatus,
};
use crate::cgroup::{Cgroup, Hierarchy};

/// Settings of the process backend.
#[derive(Debug)]
pub struct ProcessConfig {
    /// Where worker state and output live.
    pub data_dir: PathBuf,
    /// The `lambdock-rie` binary.
    pub rie: PathBuf,
    /// How each runtime starts.
    pub runtimes: RuntimeTable,
    /// Namespaces and cgroups when running as root.
    pub isolation: bool,
}

/// What the backend keeps about one worker (inside [`WorkerRecord::handle`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Handle {
    pid: u32,
    /// Start time of the process (clock ticks since boot), so a reused pid is not mistaken
    /// for the worker after a restart.
    start_time: u64,
    cgroup: Option<String>,
    log: PathBuf,
    isolated: bool,
}

/// The process backend.
pub struct ProcessBackend {
    cfg: ProcessConfig,
    cgroups: Option<Hierarchy>,
    exits: Arc<Mutex<HashMap<String, Option<i32>>>>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    let what = what.into();
    move |source| BackendError::Io { what, source }
}

impl ProcessBackend {
    /// A backend with these settings; detects cgroups and warns once when it cannot isolate.
    pub fn new(mut cfg: ProcessConfig) -> Result<Self, BackendError> {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            cfg.isolation = false;
        }
        let cgroups = if cfg.isolation {
            crate::cgroup::detect("lambdock")
                .map_err(|e| BackendError::Unavailable(format!("cgroups: {e}")))?
        } else {
            None
        };
        if !cfg.isolation {
            tracing::warn!(
                "process backend without isolation (not root, or disabled): workers run as plain processes with their code's own path as LAMBDA_TASK_ROOT, no memory limit, pause by SIGSTOP"
            );
        } else if cgroups.is_none() {
            tracing::warn!(
                "no usable cgroup hierarchy: workers get namespaces but no memory limit"
            );
        } else if let Some(h) = &cgroups {
            tracing::info!(
                version = h.version(),
                "workers get namespaces and a cgroup each"
            );
        }
        std::fs::create_dir_all(cfg.data_dir.join("workers"))
            .map_err(io(format!("creating {}", cfg.data_dir.display())))?;
        // Workers start in their code directory: every path they are given must be absolute.
        cfg.data_dir = cfg
            .data_dir
            .canonicalize()
            .map_err(io(format!("resolving {}", cfg.data_dir.display())))?;
        cfg.rie = cfg.rie.canonicalize().map_err(|_| {
            BackendError::Unavailable(format!(
                "lambdock-rie not found at {} (build it with `make build`, or pass --rie PATH)",
                cfg.rie.display()
            ))
        })?;
        Ok(ProcessBackend {
            cfg,
            cgroups,
            exits: Arc::default(),
        })
    }

    fn worker_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("workers").join(id)
    }

    fn cgroup(&self, handle: &Handle) -> Option<Cgroup> {
        let name = handle.cgroup.as_ref()?;
        self.cgroups.as_ref()?.open(name)
    }
}

fn handle_of(worker: &WorkerRecord) -> Result<Handle, BackendError> {
    serde_json::from_value(worker.handle.clone()).map_err(|e| {
        BackendError::InvalidSpec(format!(
            "worker {} has an unreadable handle: {e}",
            worker.id
        ))
    })
}

/// Field 22 of `/proc/<pid>/stat`: the process start time.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Field 3 of `/proc/<pid>/stat`.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn alive(handle: &Handle) -> bool {
    start_time(handle.pid) == Some(handle.start_time) && process_state(handle.pid) != Some('Z')
}

/// The worker's process tree: the emulator and every descendant.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![];
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        if all.len() > 4096 {
            break;
        }
        all.push(p);
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                stack.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    all
}

fn signal_tree(pid: u32, signal: Signal) {
    for p in descendants(pid).into_iter().rev() {
        let _ = kill(Pid::from_raw(p as i32), signal);
    }
}

/// Memory and CPU of a process tree from /proc, for workers without a cgroup.
fn proc_usage(pid: u32) -> (u64, u64, u64) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let (mut rss, mut hwm, mut cpu) = (0, 0, 0);
    for p in descendants(pid) {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
            let kb = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            rss += kb("VmRSS:");
            hwm += kb("VmHWM:");
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|f| f.parse().ok())
                .collect();
            cpu += fields.iter().sum::<u64>() * 1_000_000_000 / ticks;
        }
    }
    (rss, hwm, cpu)
}

impl ProcessBackend {
    fn launch_for(
        &self,
        spec: &WorkerSpec,
        code_dir: &Path,
        layers: &[PathBuf],
        isolated: bool,
    ) -> Result<Launch, BackendError> {
        let mut launch =
            self.cfg
                .runtimes
                .resolve(&spec.runtime, &spec.handler, code_dir, layers)?;
        if isolated && let Some(program) = launch.command.first_mut() {
            // Inside the sandbox the code is at /var/task and the layers at /opt.
            let path = PathBuf::from(&*program);
            if let Ok(rest) = path.strip_prefix(code_dir) {
                *program = Path::new("/var/task").join(rest).display().to_string();
            } else if layers.iter().any(|l| path.starts_with(l)) {
                *program = "/opt/bootstrap".to_string();
            }
        }
        Ok(launch)
    }

    fn environment(
        &self,
        spec: &WorkerSpec,
        launch: &Launch,
        code_dir: &Path,
        layers: &[PathBuf],
        isolated: bool,
    ) -> BTreeMap<String, String> {
        let task_root = if isolated {
            "/var/task".to_string()
        } else {
            code_dir.display().to_string()
        };
        let layer_roots: Vec<String> = if isolated {
            if layers.is_empty() {
                vec![]
            } else {
                vec!["/opt".to_string()]
            }
        } else {
            layers
                .iter()
                .rev()
                .map(|l| l.display().to_string())
                .collect()
        };
        let with = |suffix: &str| {
            layer_roots
                .iter()
                .map(|r| format!("{r}/{suffix}"))
                .collect::<Vec<_>>()
        };
        let mut path = vec![
            "/usr/local/bin".to_string(),
            "/usr/bin".into(),
            "/bin".into(),
        ];
        path.extend(with("bin"));
        let mut library = vec![
            "/lib64".to_string(),
            "/usr/lib64".into(),
            task_root.clone(),
            format!("{task_root}/lib"),
        ];
        library.extend(with("lib"));
        let mut env = BTreeMap::from([
            ("PATH".to_string(), path.join(":")),
            ("LD_LIBRARY_PATH".into(), library.join(":")),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("TZ".into(), ":UTC".into()),
            ("HOME".into(), "/tmp".into()),
            ("LAMBDA_TASK_ROOT".into(), task_root),
            ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
            (
                "AWS_LAMBDA_FUNCTION_NAME".into(),
                spec.function_name.clone(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_VERSION".into(),
                spec.function_version.clone(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
                spec.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_TIMEOUT".into(),
                format!("{}", spec.timeout.as_secs_f64()),
            ),
            ("_HANDLER".into(), spec.handler.clone()),
            (
                "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
                if spec.eager_init {
                    "provisioned-concurrency"
                } else {
                    "on-demand"
                }
                .into(),
            ),
        ]);
        if spec.runtime.starts_with("python") && !layer_roots.is_empty() {
            let version = spec.runtime.trim_start_matches("python");
            let mut pythonpath = with("python");
            pythonpath.extend(with(&format!("python/lib/python{version}/site-packages")));
            env.insert("PYTHONPATH".into(), pythonpath.join(":"));
        }
        env.extend(launch.environment.clone());
        // The function's own variables win over defaults, never over reserved ones.
        for (k, v) in &spec.environment {
            if !RESERVED.contains(&k.as_str()) {
                env.insert(k.clone(), v.clone());
            }
        }
        env
    }
}

/// Variables a function cannot set (Lambda rejects them too).
const RESERVED: [&str; 10] = [
    "_HANDLER",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_FUNCTION_TIMEOUT",
];

/// Waits until the worker's health endpoint answers, or it exits, or `limit` passes.
async fn wait_ready(
    addr: SocketAddr,
    child: &mut tokio::process::Child,
    limit: Duration,
) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited ({status})"));
        }
        if let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let probe = b"GET /health HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n";
            let mut answer = [0u8; 16];
            if stream.write_all(probe).await.is_ok()
                && stream.read_exact(&mut answer).await.is_ok()
                && answer.starts_with(b"HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        if Instant::now() > until {
            return Err(format!("no answer on {addr} within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The last lines of a worker's output, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[async_trait]
impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn create(&self, spec: &WorkerSpec) -> Result<WorkerRecord, BackendError> {
        let CodeSource::Bundle { code_dir, layers } = &spec.code else {
            return Err(BackendError::InvalidSpec(
                "the process backend runs code bundles (a code directory); images need the containerd or docker backend".into(),
            ));
        };
        if !code_dir.is_dir() {
            return Err(BackendError::InvalidSpec(format!(
                "code directory {} does not exist",
                code_dir.display()
            )));
        }
        let code_dir = code_dir
            .canonicalize()
            .map_err(io(format!("resolving {}", code_dir.display())))?;
        let mut layer_dirs = Vec::new();
        for layer in layers {
            if !layer.is_dir() {
                return Err(BackendError::InvalidSpec(format!(
                    "layer directory {} does not exist",
                    layer.display()
                )));
            }
            layer_dirs.push(
                layer
                    .canonicalize()
                    .map_err(io(format!("resolving {}", layer.display())))?,
            );
        }
        let isolated = self.cfg.isolation;
        let launch = self.launch_for(spec, &code_dir, &layer_dirs, isolated)?;
        let env = self.environment(spec, &launch, &code_dir, &layer_dirs, isolated);

        let dir = self.worker_dir(&spec.id);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let log = dir.join("output.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("opening {}", log.display())))?;
        let err = out.try_clone().map_err(io("duplicating the output file"))?;

        let invoke = TcpListener::bind("127.0.0.1:0").map_err(io("binding the invoke socket"))?;
        let runtime_api =
            TcpListener::bind("127.0.0.1:0").map_err(io("binding the Runtime API socket"))?;
        let invoke_address = invoke
            .local_addr()
            .map_err(io("reading the invoke address"))?;
        let api_address = runtime_api
            .local_addr()
            .map_err(io("reading the Runtime API address"))?;

        let cgroup = match &self.cgroups {
            Some(h) => Some(
                h.create(&spec.id, u64::from(spec.memory_mb) * 1024 * 1024)
                    .map_err(|e| {
                        BackendError::Unavailable(format!("cgroup for worker {}: {e}", spec.id))
                    })?,
            ),
            None => None,
        };
        let procs: Vec<OwnedFd> = match &cgroup {
            Some(cg) => cg.open_procs().map_err(|e| {
                BackendError::Unavailable(format!("cgroup for worker {}: {e}", spec.id))
            })?,
            None => vec![],
        };

        let mut cmd = tokio::process::Command::new(&self.cfg.rie);
        if isolated {
            cmd.arg("--isolate").arg("--task-root").arg(&code_dir);
            for layer in &layer_dirs {
                cmd.arg("--layer").arg(layer);
            }
            cmd.arg("--tmp-size-mb")
                .arg(spec.ephemeral_storage_mb.max(512).to_string());
            // An interpreter installed under /tmp (a virtualenv in a checkout there) must stay
            // visible through the sandbox's private /tmp: keep its prefix.
            if let Some(prefix) = launch
                .command
                .first()
                .map(Path::new)
                .filter(|p| p.starts_with("/tmp"))
                .and_then(|p| p.parent()?.parent())
            {
                cmd.arg("--keep-path").arg(prefix);
            }
        }
        cmd.args(["--invoke-fd", "3", "--runtime-api-fd", "4"])
            .arg("--runtime-interface-emulator-address")
            .arg(invoke_address.to_string())
            .arg("--runtime-api-address")
            .arg(api_address.to_string())
            .args([
                "--init-mode",
                if spec.eager_init { "eager" } else { "lazy" },
            ])
            .arg("--")
            .args(&launch.command)
            .current_dir(&code_dir)
            .env_clear()
            .envs(&env)
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(false);
        let invoke_fd = invoke.as_raw_fd();
        let api_fd = runtime_api.as_raw_fd();
        let proc_fds: Vec<i32> = procs.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: between fork and exec this only calls async-signal-safe functions (dup2,
        // setpgid, write) on descriptors opened before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                Cgroup::join_from_pre_exec(&proc_fds)?;
                if libc::dup2(invoke_fd, 3) < 0 || libc::dup2(api_fd, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Its own process group: the agent's terminal signals are not the worker's.
                if libc::setpgid(0, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            if let Some(cg) = &cgroup {
                let _ = cg.destroy();
            }
            BackendError::Io {
                what: format!("starting {}", self.cfg.rie.display()),
                source: e,
            }
        })?;
        drop((invoke, runtime_api, procs));
        let pid = child.id().unwrap_or(0);
        if let Err(reason) = wait_ready(invoke_address, &mut child, Duration::from_secs(10)).await {
            let _ = child.start_kill();
            if let Some(cg) = &cgroup {
                let _ = cg.destroy();
            }
            let _ = child.wait().await;
            return Err(BackendError::StartFailed {
                id: spec.id.clone(),
                reason: format!("{reason}; its output:\n{}", tail(&log)),
            });
        }
        tracing::debug!(worker = %spec.id, pid, elapsed = ?started.elapsed(), "worker ready");
        let handle = Handle {
            pid,
            start_time: start_time(pid).unwrap_or(0),
            cgroup: cgroup.as_ref().map(|_| spec.id.clone()),
            log,
            isolated,
        };
        let exits = self.exits.clone();
        let id = spec.id.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| {
                use std::os::unix::process::ExitStatusExt;
                s.code().or_else(|| s.signal().map(|sig| 128 + sig))
            });
            exits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, code);
        });
        let record = WorkerRecord {
            id: spec.id.clone(),
            owner_id: spec.owner_id.clone(),
            function_name: spec.function_name.clone(),
            function_version: spec.function_version.clone(),
            invoke_address,
            labels: spec.labels.clone(),
            created_at_ms: crate::now_ms(),
            timeout_ms: spec.timeout.as_millis() as u64,
            backend: self.name().to_string(),
            handle: serde_json::to_value(&handle).unwrap_or_default(),
        };
        self.save(&record)?;
        Ok(record)
    }

    async fn destroy(&self, worker: &WorkerRecord) -> Result<(), BackendError> {
        let handle = handle_of(worker)?;
        if alive(&handle) {
            // A stopped process cannot die of SIGTERM; thaw first.
            if let Some(cg) = self.cgroup(&handle) {
                let _ = cg.thaw();
            }
            signal_tree(handle.pid, Signal::SIGCONT);
            // lambdock-rie ends its runtime on SIGTERM (SHUTDOWN to extensions first).
            let _ = kill(Pid::from_raw(handle.pid as i32), Signal::SIGTERM);
            let until = Instant::now() + Duration::from_millis(2500);
            while alive(&handle) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if alive(&handle) {
                signal_tree(handle.pid, Signal::SIGKILL);
                let _ = killpg(Pid::from_raw(handle.pid as i32), Signal::SIGKILL);
            }
        }
        if let Some(cg) = self.cgroup(&handle) {
            cg.destroy().map_err(|e| {
                BackendError::Unavailable(format!(
                    "removing the cgroup of worker {}: {e}",
                    worker.id
                ))
            })?;
        }
        let dir = self.worker_dir(&worker.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
        }
        self.exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&worker.id);
        Ok(())
    }

    async fn pause(&self, worker: &WorkerRecord) -> Result<(), BackendError> {
        let handle = handle_of(worker)?;
        match self.cgroup(&handle) {
            // The freeze waits on the kernel (seconds at worst): not on the reactor.
            Some(cg) => tokio::task::spawn_blocking(move || cg.freeze())
                .await
                .map_err(|e| BackendError::Unavailable(format!("freezing worker: {e}")))?
                .map_err(|e| {
                    BackendError::Unavailable(format!("freezing worker {}: {e}", worker.id))
                }),
            None => {
                signal_tree(handle.pid, Signal::SIGSTOP);
                Ok(())
            }
        }
    }

    async fn resume(&self, worker: &WorkerRecord) -> Result<(), BackendError> {
        let handle = handle_of(worker)?;
        match self.cgroup(&handle) {
            Some(cg) => cg.thaw().map_err(|e| {
                BackendError::Unavailable(format!("thawing worker {}: {e}", worker.id))
            }),
            None => {
                signal_tree(handle.pid, Signal::SIGCONT);
                Ok(())
            }
        }
    }

    async fn status(&self, worker: &WorkerRecord) -> Result<WorkerStatus, BackendError> {
        let handle = handle_of(worker)?;
        let exit_code = self
            .exits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&worker.id)
            .copied()
            .flatten();
        if !alive(&handle) {
            return Ok(WorkerStatus {
                state: WorkerState::Stopped,
                exit_code,
                memory_current: 0,
                memory_max: 0,
                memory_limit: 0,
                oom_events: 0,
                cpu_usage_ns: 0,
            });
        }
        if let Some(cg) = self.cgroup(&handle) {
            let stats = cg.stats().map_err(|e| {
                BackendError::Unavailable(format!("measuring worker {}: {e}", worker.id))
            })?;
            return Ok(WorkerStatus {
                state: if cg.is_frozen() {
                    WorkerState::Paused
                } else {
                    WorkerState::Running
                },
                exit_code: None,
                memory_current: stats.memory_current,
                memory_max: stats.memory_max,
                memory_limit: stats.memory_limit,
                oom_events: stats.oom_kills,
                cpu_usage_ns: stats.cpu_usage_ns,
            });
        }
        let (rss, hwm, cpu) = proc_usage(handle.pid);
        Ok(WorkerStatus {
            state: if process_state(handle.pid) == Some('T') {
                WorkerState::Paused
            } else {
                WorkerState::Running
            },
            exit_code: None,
            memory_current: rss,
            memory_max: hwm,
            memory_limit: 0,
            oom_events: 0,
            cpu_usage_ns: cpu,
        })
    }

    async fn discover(&self) -> Result<Vec<WorkerRecord>, BackendError> {
        let dir = self.cfg.data_dir.join("workers");
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(io(format!("listing {}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path().join("worker.json");
            match std::fs::read(&path).map(|b| serde_json::from_slice::<WorkerRecord>(&b)) {
                Ok(Ok(record)) => found.push(record),
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable worker state, ignored")
                }
                // Created but never recorded (the agent died mid-create): nothing to adopt.
                Err(_) => {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(found)
    }

    fn logs(&self, worker: &WorkerRecord) -> LogSource {
        LogSource::File(self.worker_dir(&worker.id).join("output.log"))
    }
}

impl ProcessBackend {
    /// Persists a record next to the worker's output, atomically.
    fn save(&self, record: &WorkerRecord) -> Result<(), BackendError> {
        let dir = self.worker_dir(&record.id);
        let tmp = dir.join("worker.json.tmp");
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| BackendError::Io {
            what: "encoding worker state".into(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, dir.join("worker.json"))
            .map_err(io(format!("renaming {}", tmp.display())))
    }
}
