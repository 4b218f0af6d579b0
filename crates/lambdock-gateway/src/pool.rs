//! Per-function pools of workers (DESIGN decision 2: the gateway owns scaling).
//!
//! A pool lends one worker per invocation. Its semaphore caps concurrency at the function's
//! reserved concurrency (or the node default); a caller over the cap waits up to the acquire
//! bound and is then throttled with Lambda's `TooManyRequestsException`. Idle workers are reused
//! newest first (warm caches) and destroyed after the idle time, except the provisioned ones,
//! which are created at deploy time and kept warm. A worker that failed (timeout, crash) is
//! destroyed, never lent again. Workers are labelled with their function, version and
//! configuration fingerprint, so a restarted gateway adopts the agent's live workers instead of
//! leaking or duplicating them.
//!
//! As in Lambda, each version (`$LATEST`, `1`, ...) runs in its own workers, which see their
//! version in `AWS_LAMBDA_FUNCTION_VERSION`, while the concurrency cap counts every version of
//! the function: at the cap, a call for a version with no idle worker replaces an idle worker
//! of another version.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lambdock_proto::agent::agent_client::AgentClient;
use lambdock_proto::agent::{
    CodeBundle, CreateWorkerRequest, ListWorkersRequest, WorkerRef, WorkerState,
    create_worker_request,
};
use lambdock_template::manifest::Code;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::Channel;

use crate::errors::LambdaError;
use crate::registry::FunctionEntry;
use crate::worker_conn::WorkerConn;

/// Label keys on workers.
pub const LABEL_FUNCTION: &str = "lambdock.function";
/// Configuration fingerprint label.
pub const LABEL_FINGERPRINT: &str = "lambdock.fingerprint";
/// Version label (`$LATEST` or a published version).
pub const LABEL_VERSION: &str = "lambdock.version";

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Concurrency of a function without reserved concurrency.
    pub default_concurrency: usize,
    /// How long a caller over the cap waits.
    pub acquire_timeout: Duration,
    /// Idle time after which a worker is destroyed.
    pub idle_timeout: Duration,
    /// Environment every worker gets (region, credentials, endpoints).
    pub platform_environment: HashMap<String, String>,
}

/// A worker as the gateway sees it.
#[derive(Debug)]
pub struct Worker {
    /// Agent's id.
    pub id: String,
    /// Invoke address.
    pub addr: SocketAddr,
    /// The function version it runs.
    pub version: String,
    /// The gateway's connection to it, kept open while it idles.
    pub conn: Option<WorkerConn>,
    last_used: Instant,
}

struct Pool {
    function: Arc<FunctionEntry>,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Worker>>,
    /// Every worker of the pool, idle or lent, with its version.
    members: Mutex<HashMap<String, String>>,
}

impl Pool {
    fn idle(&self) -> MutexGuard<'_, Vec<Worker>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn members(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn total(&self) -> usize {
        self.members().len()
    }

    /// The most recently used idle worker of `version`.
    fn take_idle(&self, version: &str) -> Option<Worker> {
        let mut idle = self.idle();
        let i = idle.iter().rposition(|w| w.version == version)?;
        Some(idle.remove(i))
    }
}

/// A worker lent for one invocation; give it back with [`Pools::release`].
pub struct Lease {
    pool: Arc<Pool>,
    /// The worker.
    pub worker: Worker,
    /// True when this invocation had to create the worker (a cold start).
    pub cold: bool,
    _permit: OwnedSemaphorePermit,
}

/// Gauges of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Function.
    pub function: String,
    /// Workers in total.
    pub total: usize,
    /// Idle workers.
    pub idle: usize,
    /// Concurrency cap.
    pub cap: usize,
}

/// Every pool, over one agent.
pub struct Pools {
    agent: AgentClient<Channel>,
    owner: String,
    cfg: PoolConfig,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

fn agent_error(function: &str, status: &tonic::Status) -> LambdaError {
    match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            LambdaError::ResourceNotReady(format!(
                "function {function} cannot start: {}",
                status.message()
            ))
        }
        _ => LambdaError::Service(format!(
            "function {function}: the agent failed: {}",
            status.message()
        )),
    }
}

impl Pools {
    /// Pools over `agent`, for workers of `owner`.
    pub fn new(agent: AgentClient<Channel>, owner: String, cfg: PoolConfig) -> Pools {
        Pools {
            agent,
            owner,
            cfg,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cap(&self, function: &FunctionEntry) -> usize {
        function
            .config
            .reserved_concurrency
            .map_or(self.cfg.default_concurrency, |r| r as usize)
    }

    /// The pool of this function configuration, made on first use. A new configuration gets a
    /// new pool; the old one's workers are destroyed by [`Pools::retire`].
    fn pool(&self, function: &Arc<FunctionEntry>) -> Arc<Pool> {
        let mut pools = self.pools();
        if let Some(p) = pools.get(&function.name)
            && p.function.fingerprint == function.fingerprint
        {
            return p.clone();
        }
        let pool = Arc::new(Pool {
            function: function.clone(),
            permits: Arc::new(Semaphore::new(self.cap(function))),
            idle: Mutex::new(Vec::new()),
            members: Mutex::new(HashMap::new()),
        });
        pools.insert(function.name.clone(), pool.clone());
        pool
    }

    /// Lends a worker of `function` at `version`: an idle one, or a new one within the cap;
    /// waits up to the acquire bound, then throttles.
    pub async fn acquire(
        &self,
        function: &Arc<FunctionEntry>,
        version: &str,
    ) -> Result<Lease, LambdaError> {
        let pool = self.pool(function);
        let reason = if function.config.reserved_concurrency.is_some() {
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        } else {
            "ConcurrentInvocationLimitExceeded"
        };
        let permit = match tokio::time::timeout(
            self.cfg.acquire_timeout,
            pool.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => return Err(LambdaError::TooManyRequests { reason }),
        };
        let reused = pool.take_idle(version);
        if let Some(worker) = reused {
            return Ok(Lease {
                pool,
                worker,
                cold: false,
                _permit: permit,
            });
        }
        // Holding a permit means fewer than `cap` workers are lent, so at the cap an idle
        // worker (of another version, as none of ours is idle) makes room.
        if pool.total() >= self.cap(&pool.function) {
            let evicted = {
                let mut idle = pool.idle();
                (!idle.is_empty()).then(|| idle.remove(0))
            };
            if let Some(w) = evicted {
                pool.members().remove(&w.id);
                self.destroy(&w.id).await;
            }
        }
        let worker = self.create(&pool.function, version, false).await?;
        pool.members()
            .insert(worker.id.clone(), worker.version.clone());
        Ok(Lease {
            pool,
            worker,
            cold: true,
            _permit: permit,
        })
    }

    /// Gives a worker back; a failed one is destroyed instead.
    pub async fn release(&self, lease: Lease, healthy: bool) {
        let Lease {
            pool, mut worker, ..
        } = lease;
        let current = self
            .pools()
            .get(&pool.function.name)
            .is_some_and(|p| Arc::ptr_eq(p, &pool));
        if healthy && current {
            worker.last_used = Instant::now();
            pool.idle().push(worker);
        } else {
            pool.members().remove(&worker.id);
            self.destroy(&worker.id).await;
        }
    }

    async fn create(
        &self,
        function: &FunctionEntry,
        version: &str,
        eager: bool,
    ) -> Result<Worker, LambdaError> {
        let c = &function.config;
        let code = match &c.code {
            Code::Dir(dir) => create_worker_request::Code::Bundle(CodeBundle {
                code_dir: dir.display().to_string(),
                layer_dirs: c.layers.iter().map(|l| l.display().to_string()).collect(),
            }),
            Code::Image(image) => create_worker_request::Code::Image(image.clone()),
        };
        let mut environment: HashMap<String, String> = self.cfg.platform_environment.clone();
        environment.extend(c.environment.clone());
        let request = CreateWorkerRequest {
            owner_id: self.owner.clone(),
            function_name: function.name.clone(),
            function_version: version.to_string(),
            code: Some(code),
            runtime: c.runtime.clone(),
            handler: c.handler.clone(),
            memory_mb: c.memory_mb,
            timeout_ms: (c.timeout_s * 1000.0) as u32,
            environment,
            labels: HashMap::from([
                (LABEL_FUNCTION.to_string(), function.name.clone()),
                (LABEL_FINGERPRINT.to_string(), function.fingerprint.clone()),
                (LABEL_VERSION.to_string(), version.to_string()),
            ]),
            ephemeral_storage_mb: c.ephemeral_storage_mb,
            eager_init: eager,
        };
        let created = self
            .agent
            .clone()
            .create_worker(request)
            .await
            .map_err(|s| agent_error(&function.name, &s))?
            .into_inner();
        let addr = created.invoke_address.parse().map_err(|_| {
            LambdaError::Service(format!(
                "the agent gave a bad address {:?}",
                created.invoke_address
            ))
        })?;
        Ok(Worker {
            id: created.id,
            addr,
            version: version.to_string(),
            conn: None,
            last_used: Instant::now(),
        })
    }

    async fn destroy(&self, id: &str) {
        let r = WorkerRef {
            owner_id: self.owner.clone(),
            worker_id: id.to_string(),
        };
        if let Err(e) = self.agent.clone().destroy_worker(r).await
            && e.code() != tonic::Code::NotFound
        {
            tracing::warn!(worker = id, error = %e, "destroying a worker failed; the janitor retries");
        }
    }

    /// Creates the provisioned workers of `function` that are missing, for the version its
    /// provisioned concurrency applies to.
    pub async fn provision(&self, function: &Arc<FunctionEntry>) -> Result<(), LambdaError> {
        let pool = self.pool(function);
        let want = function.config.provisioned_concurrency as usize;
        let version = function.config.provisioned_version();
        while pool.members().values().filter(|v| *v == version).count() < want {
            let worker = self.create(function, version, true).await?;
            pool.members()
                .insert(worker.id.clone(), worker.version.clone());
            pool.idle().push(worker);
        }
        Ok(())
    }

    /// Destroys idle workers past the idle time, keeping the provisioned ones.
    pub async fn prune(&self) {
        let pools: Vec<Arc<Pool>> = self.pools().values().cloned().collect();
        for pool in pools {
            let keep = pool.function.config.provisioned_concurrency as usize;
            let provisioned = pool.function.config.provisioned_version();
            let expired: Vec<Worker> = {
                let of_provisioned = pool
                    .members()
                    .values()
                    .filter(|v| *v == provisioned)
                    .count();
                let mut idle = pool.idle();
                let mut removable = of_provisioned.saturating_sub(keep);
                idle.extract_if(.., |w| {
                    if w.last_used.elapsed() <= self.cfg.idle_timeout {
                        return false;
                    }
                    if w.version == provisioned {
                        if removable == 0 {
                            return false;
                        }
                        removable -= 1;
                    }
                    true
                })
                .collect()
            };
            for w in expired {
                pool.members().remove(&w.id);
                tracing::debug!(function = %pool.function.name, worker = %w.id, "idle worker destroyed");
                self.destroy(&w.id).await;
            }
        }
    }

    /// Makes the agent's workers and the pools agree: live workers of a current function
    /// configuration that no pool knows are adopted as idle; anything else the owner has is
    /// destroyed (removed functions, old configurations, stopped workers).
    ///
    /// Unknown workers younger than `grace` are left alone: one may be a worker whose creation
    /// has not returned to its pool yet. At start-up nothing is being created, so the grace is 0.
    pub async fn reconcile(
        &self,
        functions: &HashMap<String, Arc<FunctionEntry>>,
        grace: Duration,
    ) -> Result<(), LambdaError> {
        let listed = self
            .agent
            .clone()
            .list_workers(ListWorkersRequest {
                owner_id: self.owner.clone(),
            })
            .await
            .map_err(|s| {
                LambdaError::Service(format!("listing the agent's workers: {}", s.message()))
            })?
            .into_inner()
            .workers;
        let known: std::collections::HashSet<String> = self
            .pools()
            .values()
            .flat_map(|p| p.members().keys().cloned().collect::<Vec<_>>())
            .collect();
        let now_ms = crate::now_ms();
        for w in listed {
            if known.contains(&w.id) || now_ms - w.created_at_ms < grace.as_millis() as i64 {
                continue;
            }
            let function = w.labels.get(LABEL_FUNCTION).and_then(|f| functions.get(f));
            let current =
                function.filter(|f| w.labels.get(LABEL_FINGERPRINT) == Some(&f.fingerprint));
            match (
                current,
                w.state == WorkerState::Running as i32,
                w.invoke_address.parse::<SocketAddr>(),
            ) {
                (Some(function), true, Ok(addr)) => {
                    let pool = self.pool(function);
                    if pool.total() >= self.cap(function) {
                        tracing::info!(worker = %w.id, "destroying a live worker beyond the function's cap");
                        self.destroy(&w.id).await;
                        continue;
                    }
                    tracing::info!(function = %function.name, worker = %w.id, "adopted a live worker");
                    let version = w
                        .labels
                        .get(LABEL_VERSION)
                        .cloned()
                        .unwrap_or_else(|| "$LATEST".to_string());
                    pool.members().insert(w.id.clone(), version.clone());
                    pool.idle().push(Worker {
                        id: w.id,
                        addr,
                        version,
                        conn: None,
                        last_used: Instant::now(),
                    });
                }
                _ => {
                    tracing::info!(worker = %w.id, function = %w.function_name, "destroying an orphan worker");
                    self.destroy(&w.id).await;
                }
            }
        }
        Ok(())
    }

    /// Drops the pools of functions no longer deployed (their idle workers are destroyed; busy
    /// ones finish their invocation and are destroyed on release).
    pub async fn retire(&self, functions: &HashMap<String, Arc<FunctionEntry>>) {
        let stale: Vec<Arc<Pool>> = {
            let mut pools = self.pools();
            let names: Vec<String> = pools
                .iter()
                .filter(|(name, p)| {
                    functions
                        .get(*name)
                        .is_none_or(|f| f.fingerprint != p.function.fingerprint)
                })
                .map(|(name, _)| name.clone())
                .collect();
            names.into_iter().filter_map(|n| pools.remove(&n)).collect()
        };
        for pool in stale {
            let idle: Vec<Worker> = std::mem::take(&mut *pool.idle());
            for w in idle {
                pool.members().remove(&w.id);
                self.destroy(&w.id).await;
            }
        }
    }

    /// Destroys every idle worker (shutdown).
    pub async fn drain(&self) {
        self.retire(&HashMap::new()).await;
    }

    /// Gauges of every pool.
    pub fn stats(&self) -> Vec<PoolStats> {
        let mut stats: Vec<PoolStats> = self
            .pools()
            .values()
            .map(|p| PoolStats {
                function: p.function.name.clone(),
                total: p.total(),
                idle: p.idle().len(),
                cap: self.cap(&p.function),
            })
            .collect();
        stats.sort_by(|a, b| a.function.cmp(&b.function));
        stats
    }

    /// The owner's workers as the agent reports them, with their memory (for `lambdock ps`).
    pub async fn workers(&self) -> Result<Vec<serde_json::Value>, LambdaError> {
        let mut agent = self.agent.clone();
        let workers = agent
            .list_workers(ListWorkersRequest {
                owner_id: self.owner.clone(),
            })
            .await
            .map_err(|s| LambdaError::Service(s.message().to_string()))?
            .into_inner()
            .workers;
        let idle: HashSet<String> = self
            .pools()
            .values()
            .flat_map(|p| p.idle().iter().map(|w| w.id.clone()).collect::<Vec<_>>())
            .collect();
        let now = crate::now_ms();
        let mut out = Vec::new();
        for w in workers {
            let metrics = agent
                .get_worker_metrics(WorkerRef {
                    owner_id: self.owner.clone(),
                    worker_id: w.id.clone(),
                })
                .await
                .map(|m| m.into_inner())
                .ok();
            let state = match WorkerState::try_from(w.state) {
                Ok(WorkerState::Running) if idle.contains(&w.id) => "idle",
                Ok(WorkerState::Running) => "busy",
                Ok(WorkerState::Paused) => "paused",
                Ok(WorkerState::Stopped) => "stopped",
                _ => "unknown",
            };
            out.push(serde_json::json!({
                "function": w.function_name,
                "version": w.labels.get(LABEL_VERSION),
                "worker": w.id,
                "state": state,
                "age_seconds": (now - w.created_at_ms).max(0) / 1000,
                "memory_bytes": metrics.as_ref().map_or(0, |m| m.memory_current_bytes),
                "memory_limit_bytes": metrics.as_ref().map_or(0, |m| m.memory_limit_bytes),
                "invoke_address": w.invoke_address,
            }));
        }
        Ok(out)
    }
}
