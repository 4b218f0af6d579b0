//! One cgroup per worker: memory limits, OOM detection, CPU accounting and
//! freezing, on cgroup v1 and v2.
//!
//! # Why both versions
//!
//! Lambdock runs on whatever Linux the operator has. Modern distributions boot
//! with the unified (v2) hierarchy mounted at `/sys/fs/cgroup`, but many hosts
//! (older distributions, VMs and containers such as our own development and CI
//! machines) still use the *hybrid* layout: every v1 controller is mounted on
//! its own at `/sys/fs/cgroup/<controller>` and a controller-less cgroup2 is
//! mounted at `/sys/fs/cgroup/unified`. The v2 mount is useless there (no
//! memory controller), so [`detect`] only picks v2 when `/sys/fs/cgroup` itself
//! is a cgroup2 mount with the memory controller, and falls back to v1 when
//! `/sys/fs/cgroup/memory` exists. On v1 a worker's cgroup is a directory of
//! the same name in each controller we use (memory, cpuacct, freezer and, when
//! mounted, pids); on v2 it is a single directory.
//!
//! Worker cgroups are created below the agent's *own* cgroups (read from
//! `/proc/self/cgroup`), not below the hierarchy roots, so that the agent stays
//! inside whatever slice, container or job its supervisor put it in. On v2 the
//! "no internal processes" rule forbids enabling controllers for the children of
//! a cgroup that holds processes; we therefore create a `<own>/<prefix>`
//! parent that never holds processes, enable the controllers in its
//! `cgroup.subtree_control`, and, when the agent's own cgroup has to delegate
//! controllers but still holds processes, move those processes into a leaf
//! `<own>/lambdock-agent` first (and treat that leaf's parent as "own" on the
//! next start).
//!
//! # Why processes join from `pre_exec`
//!
//! A worker must be inside its cgroup *before* it executes a single
//! instruction of the function's code, otherwise its first allocations escape
//! the memory limit (v1 does not move charges by default) and a fork bomb could
//! escape the cgroup entirely. The agent therefore opens the `cgroup.procs`
//! files before `fork` ([`Cgroup::open_procs`]) and the child writes `0`
//! ("myself") into each between `fork` and `exec`
//! ([`Cgroup::join_from_pre_exec`]). Only async-signal-safe calls (`write(2)`)
//! happen there: after a `fork` from a multi-threaded process the allocator's
//! locks may be held by threads that no longer exist.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tracing::{debug, info, warn};

/// Where the cgroup file systems are expected.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Leaf (v2 only) that the agent's own processes are moved into when its own
/// cgroup must delegate controllers.
const AGENT_LEAF: &str = "lambdock-agent";
/// How long [`Cgroup::freeze`] waits for the freeze to complete. A loaded machine took over a
/// second with cgroup v1 (a task in the middle of `exec` stays unfrozen a while).
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a v1 freeze that is still `FREEZING` is asked again: the kernel's v1 freezer does
/// not retry tasks it could not freeze at the first attempt, writing `FROZEN` again does.
const FREEZE_RETRY: Duration = Duration::from_millis(100);
/// How long [`Cgroup::destroy`] waits for the cgroup to empty.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(2);
/// Poll interval while waiting on the kernel.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Controllers wanted on v2, in the order they are enabled. Only `memory` is
/// mandatory; `cpu` (weights/quotas) and `pids` are best effort. CPU usage
/// accounting (`cpu.stat`) and the freezer are core v2 features.
const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Errors from cgroup operations.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A file-system operation failed; `op` says what was being done
    /// (e.g. "writing 134217728 to"), `path` on which file.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, phrased so that the path can follow.
        op: String,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The host's cgroup setup cannot be used (missing controller, ...).
    #[error("cgroups unsupported: {0}")]
    Unsupported(String),
    /// A cgroup name or prefix that is not a single path component.
    #[error("invalid cgroup name {0:?}: must be a single, non-empty path component")]
    InvalidName(String),
    /// A cgroup file held something we could not parse.
    #[error("cannot parse {}: {what}", path.display())]
    Parse {
        /// The file read.
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },
    /// The kernel did not reach the expected state in time.
    #[error("timed out after {timeout:?} waiting for {what} ({})", path.display())]
    Timeout {
        /// The file or directory being watched.
        path: PathBuf,
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        timeout: Duration,
    },
}

impl CgroupError {
    /// The errno of an [`CgroupError::Io`], if any.
    fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Which cgroup layout the host has, with the parent directories (one per v1
/// controller, one for v2) under which worker cgroups are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Legacy/hybrid layout: one hierarchy per controller.
    V1 {
        /// Parent directory in the memory hierarchy.
        memory: PathBuf,
        /// Parent directory in the cpuacct hierarchy.
        cpuacct: PathBuf,
        /// Parent directory in the freezer hierarchy.
        freezer: PathBuf,
        /// Parent directory in the pids hierarchy, when mounted.
        pids: Option<PathBuf>,
    },
    /// Unified layout.
    V2 {
        /// Parent directory (`<own cgroup>/<prefix>`).
        root: PathBuf,
    },
}

/// Detects the cgroup layout and prepares the parent directory
/// `<own cgroup>/<prefix>` for worker cgroups (in every v1 controller used, or
/// once on v2, enabling `+memory +cpu +pids` down the parent chain as needed).
///
/// v2 is used only when `/sys/fs/cgroup/cgroup.controllers` exists and offers
/// the memory controller; otherwise v1 when `/sys/fs/cgroup/memory` exists.
/// Returns `Ok(None)` when neither is usable or when not running as root:
/// callers then run workers without cgroups. A host that has cgroups but lacks
/// a required controller (v1 cpuacct or freezer, v2 memory down the chain)
/// yields [`CgroupError::Unsupported`].
pub fn detect(prefix: &str) -> Result<Option<Hierarchy>, CgroupError> {
    validate_name(prefix)?;
    if prefix == AGENT_LEAF {
        return Err(CgroupError::InvalidName(prefix.to_string()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        info!("not running as root: workers run without cgroups");
        return Ok(None);
    }
    let proc_cgroup = read_file(Path::new("/proc/self/cgroup"))?;
    // Mount roots only matter inside containers; without mountinfo we assume
    // the standard mount points with root "/".
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    detect_in(Path::new(CGROUP_ROOT), &proc_cgroup, &mountinfo, prefix)
}

/// [`detect`] with the inputs made explicit (testable on a fake tree).
fn detect_in(
    root: &Path,
    proc_cgroup: &str,
    mountinfo: &str,
    prefix: &str,
) -> Result<Option<Hierarchy>, CgroupError> {
    let entries = parse_proc_cgroup(proc_cgroup);
    let mounts = parse_mountinfo(mountinfo);
    let v2_controllers = root.join("cgroup.controllers");
    if v2_controllers.exists() {
        let available = read_file(&v2_controllers)?;
        if has_word(&available, "memory") {
            let h = detect_v2(root, &entries, &mounts, prefix)?;
            info!(?h, "using cgroup v2");
            return Ok(Some(h));
        }
        info!(
            "{} lacks the memory controller; not using cgroup v2",
            v2_controllers.display()
        );
    }
    if root.join("memory").is_dir() {
        let h = detect_v1(root, &entries, &mounts, prefix)?;
        info!(?h, "using cgroup v1");
        return Ok(Some(h));
    }
    info!("no usable cgroup hierarchy: workers run without cgroups");
    Ok(None)
}

fn detect_v1(
    root: &Path,
    entries: &[ProcCgroup],
    mounts: &[Mount],
    prefix: &str,
) -> Result<Hierarchy, CgroupError> {
    let parent = |controller: &str| -> Result<Option<PathBuf>, CgroupError> {
        let Some(base) = v1_own_dir(root, entries, mounts, controller) else {
            return Ok(None);
        };
        let dir = base.join(prefix);
        mkdir_p(&dir)?;
        Ok(Some(dir))
    };
    let required = |controller: &str| -> Result<PathBuf, CgroupError> {
        parent(controller)?.ok_or_else(|| {
            CgroupError::Unsupported(format!(
                "cgroup v1 controller {controller} is not mounted or not listed in /proc/self/cgroup"
            ))
        })
    };
    Ok(Hierarchy::V1 {
        memory: required("memory")?,
        cpuacct: required("cpuacct")?,
        freezer: required("freezer")?,
        pids: parent("pids")?,
    })
}

/// The calling process's own directory in the v1 hierarchy of `controller`.
fn v1_own_dir(
    root: &Path,
    entries: &[ProcCgroup],
    mounts: &[Mount],
    controller: &str,
) -> Option<PathBuf> {
    let entry = entries
        .iter()
        .find(|e| e.controllers.iter().any(|c| c == controller))?;
    let candidates: Vec<&Mount> = mounts
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.super_opts.split(',').any(|o| o == controller))
        .collect();
    let chosen = candidates
        .iter()
        .find(|m| m.mount_point.starts_with(root))
        .or(candidates.first());
    let (mount_point, mount_root) = match chosen {
        Some(m) => (m.mount_point.clone(), m.root.as_str()),
        None => {
            let guess = root.join(controller);
            if !guess.is_dir() {
                return None;
            }
            (guess, "/")
        }
    };
    Some(mount_point.join(relative_to_mount(&entry.path, mount_root)))
}

fn detect_v2(
    root: &Path,
    entries: &[ProcCgroup],
    mounts: &[Mount],
    prefix: &str,
) -> Result<Hierarchy, CgroupError> {
    let entry = entries
        .iter()
        .find(|e| e.hierarchy_id == 0 && e.controllers.is_empty())
        .ok_or_else(|| {
            CgroupError::Unsupported("/proc/self/cgroup has no cgroup v2 (0::) entry".into())
        })?;
    let mount_root = mounts
        .iter()
        .find(|m| m.fstype == "cgroup2" && m.mount_point == root)
        .map_or("/", |m| m.root.as_str());
    let mut base = root.join(relative_to_mount(&entry.path, mount_root));
    // A previous run moved us into the leaf: our real "own" cgroup is its parent.
    if base.file_name().is_some_and(|n| n == AGENT_LEAF) && base != root {
        base.pop();
    }
    let rel = base.strip_prefix(root).map_err(|_| {
        CgroupError::Unsupported(format!(
            "own cgroup {} is not below {}",
            base.display(),
            root.display()
        ))
    })?;

    let mut wanted: Vec<&str> = V2_CONTROLLERS.to_vec();
    let mut dir = root.to_path_buf();
    let mut chain = vec![dir.clone()];
    for component in rel.components() {
        dir.push(component);
        chain.push(dir.clone());
    }
    for dir in &chain {
        // Only our own cgroup may be emptied into a leaf: ancestors belong to
        // whoever supervises us.
        let may_relocate = *dir == base && base != root;
        enable_controllers(dir, &mut wanted, may_relocate)?;
    }
    let parent = base.join(prefix);
    mkdir_p(&parent)?;
    enable_controllers(&parent, &mut wanted, false)?;
    Ok(Hierarchy::V2 { root: parent })
}

/// Makes the controllers in `wanted` available to the children of `dir`.
/// Optional controllers that cannot be had are dropped from `wanted`.
fn enable_controllers(
    dir: &Path,
    wanted: &mut Vec<&str>,
    may_relocate: bool,
) -> Result<(), CgroupError> {
    let available = read_file(&dir.join("cgroup.controllers"))?;
    let subtree = dir.join("cgroup.subtree_control");
    let enabled = read_file(&subtree)?;
    if !has_word(&available, "memory") {
        return Err(CgroupError::Unsupported(format!(
            "the memory controller is not available in {} (cgroup.controllers: {:?})",
            dir.display(),
            available.trim()
        )));
    }
    wanted.retain(|c| {
        let ok = has_word(&available, c);
        if !ok {
            warn!(
                "cgroup v2 controller {c} not available in {}; continuing without it",
                dir.display()
            );
        }
        ok
    });
    let mut relocated = false;
    let mut i = 0;
    while i < wanted.len() {
        let controller = wanted[i];
        if has_word(&enabled, controller) {
            i += 1;
            continue;
        }
        match write_file(&subtree, &format!("+{controller}")) {
            Ok(()) => i += 1,
            Err(e) if e.errno() == Some(libc::EBUSY) && may_relocate && !relocated => {
                // "No internal processes": empty our own cgroup into a leaf, retry.
                relocate_processes(dir)?;
                relocated = true;
            }
            Err(e) if controller == "memory" => return Err(e),
            Err(e) => {
                warn!("cannot enable optional cgroup v2 controller {controller}: {e}");
                wanted.remove(i);
            }
        }
    }
    Ok(())
}

/// Moves every process of `dir` into `dir/AGENT_LEAF` (v2 only).
fn relocate_processes(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(AGENT_LEAF);
    info!(
        "moving the processes of {} into {} (cgroup v2 forbids processes in cgroups that delegate controllers)",
        dir.display(),
        leaf.display()
    );
    mkdir(&leaf)?;
    let target = leaf.join("cgroup.procs");
    // Processes may fork while we move them: a few passes.
    for _ in 0..10 {
        let pids = read_pids(&dir.join("cgroup.procs"))?;
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            match write_file(&target, &pid.to_string()) {
                Err(e) if e.errno() != Some(libc::ESRCH) => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

impl Hierarchy {
    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self {
            Hierarchy::V1 { .. } => 1,
            Hierarchy::V2 { .. } => 2,
        }
    }

    /// Creates (or opens, if it exists: restarts must find it) the cgroup
    /// `name` under the prefix and sets its memory limit in bytes. The swap
    /// allowance is limited as well where the kernel accounts swap: on v1
    /// `memory.memsw.limit_in_bytes` (memory + swap) is set to the same value,
    /// on v2 `memory.swap.max` (swap alone) is set to 0, which is the same
    /// thing: the worker can never use more than `memory_limit` of RAM and
    /// swap together. Absent swap files are ignored. `u64::MAX` means no limit.
    pub fn create(&self, name: &str, memory_limit: u64) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        let cgroup = self.cgroup(name);
        for dir in cgroup.dirs() {
            mkdir(&dir)?;
        }
        cgroup.set_memory_limit(memory_limit)?;
        debug!(?cgroup, memory_limit, "cgroup ready");
        Ok(cgroup)
    }

    /// Opens an existing cgroup (after an agent restart); `None` if it does
    /// not exist (on v1: if its memory directory does not exist).
    pub fn open(&self, name: &str) -> Option<Cgroup> {
        validate_name(name).ok()?;
        let cgroup = self.cgroup(name);
        cgroup.primary_dir().is_dir().then_some(cgroup)
    }

    fn cgroup(&self, name: &str) -> Cgroup {
        let layout = match self {
            Hierarchy::V1 {
                memory,
                cpuacct,
                freezer,
                pids,
            } => Layout::V1 {
                memory: memory.join(name),
                cpuacct: cpuacct.join(name),
                freezer: freezer.join(name),
                pids: pids.as_ref().map(|p| p.join(name)),
            },
            Hierarchy::V2 { root } => Layout::V2 {
                dir: root.join(name),
            },
        };
        Cgroup { layout }
    }

    /// The parent directories (`<own>/<prefix>`), one per hierarchy.
    #[cfg_attr(not(test), allow(dead_code))]
    fn parent_dirs(&self) -> Vec<PathBuf> {
        match self {
            Hierarchy::V1 {
                memory,
                cpuacct,
                freezer,
                pids,
            } => {
                let mut dirs = vec![memory.clone(), cpuacct.clone(), freezer.clone()];
                dirs.extend(pids.clone());
                dirs
            }
            Hierarchy::V2 { root } => vec![root.clone()],
        }
    }
}

/// One worker's cgroup (its directory in each hierarchy used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    layout: Layout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    V1 {
        memory: PathBuf,
        cpuacct: PathBuf,
        freezer: PathBuf,
        pids: Option<PathBuf>,
    },
    V2 {
        dir: PathBuf,
    },
}

/// Resource figures of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory charged now, in bytes.
    pub memory_current: u64,
    /// Peak memory in bytes (v1 `memory.max_usage_in_bytes`; v2 `memory.peak`,
    /// or the current usage on kernels without it).
    pub memory_max: u64,
    /// The memory limit in bytes (`u64::MAX` for v2 "max"; v1 reports its own
    /// huge number when unlimited).
    pub memory_limit: u64,
    /// Processes killed by the OOM killer in this cgroup (v1 `oom_kill` of
    /// `memory.oom_control`, 0 on kernels without it; v2 `oom_kill` of
    /// `memory.events`).
    pub oom_kills: u64,
    /// CPU time consumed, in nanoseconds (v1 `cpuacct.usage`; v2
    /// `usage_usec` of `cpu.stat` × 1000).
    pub cpu_usage_ns: u64,
}

impl Cgroup {
    /// Paths of the `cgroup.procs` files a new process must be written into
    /// (one per v1 controller, memory first; one for v2). The caller opens
    /// them before `fork` ([`Cgroup::open_procs`]) and writes "0" from the
    /// child between `fork` and `exec` ([`Cgroup::join_from_pre_exec`]).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Opens every file of [`Cgroup::procs_files`] write-only and
    /// close-on-exec, for [`Cgroup::join_from_pre_exec`]. Keep the returned
    /// descriptors alive until the child has been spawned.
    pub fn open_procs(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        self.procs_files()
            .iter()
            .map(|path| {
                OpenOptions::new()
                    .write(true)
                    .open(path) // std opens with O_CLOEXEC
                    .map(OwnedFd::from)
                    .map_err(|e| io_err("opening for writing", path, e))
            })
            .collect()
    }

    /// Joins the calling process to the cgroup by writing `b"0"` to each of
    /// `fds` (from [`Cgroup::open_procs`]). Meant for
    /// `CommandExt::pre_exec`: it only calls `write(2)` (async-signal-safe,
    /// no allocation) and returns the first failure's errno.
    pub fn join_from_pre_exec(fds: &[RawFd]) -> io::Result<()> {
        for &fd in fds {
            loop {
                // SAFETY: writes one byte from a static buffer; fd validity is
                // the caller's contract and a bad fd yields EBADF, not UB.
                let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
                if n >= 0 {
                    break;
                }
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Moves an already running process (all its threads) in.
    pub fn add_pid(&self, pid: u32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for path in self.procs_files() {
            write_file(&path, &pid)?;
        }
        Ok(())
    }

    /// The processes in the cgroup (v1: from the memory controller's
    /// `cgroup.procs`); empty if it cannot be read.
    pub fn pids(&self) -> Vec<u32> {
        let path = self.primary_dir().join("cgroup.procs");
        read_pids(&path).unwrap_or_else(|e| {
            debug!("{e}");
            Vec::new()
        })
    }

    /// Current memory, peak, limit, OOM kills and CPU time.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.layout {
            Layout::V1 {
                memory, cpuacct, ..
            } => {
                let oom_path = memory.join("memory.oom_control");
                Ok(Stats {
                    memory_current: read_u64(&memory.join("memory.usage_in_bytes"))?,
                    memory_max: read_u64(&memory.join("memory.max_usage_in_bytes"))?,
                    memory_limit: read_u64(&memory.join("memory.limit_in_bytes"))?,
                    oom_kills: parse_oom_control(&read_file(&oom_path)?),
                    cpu_usage_ns: read_u64(&cpuacct.join("cpuacct.usage"))?,
                })
            }
            Layout::V2 { dir } => {
                let memory_current = read_u64(&dir.join("memory.current"))?;
                let peak = dir.join("memory.peak");
                let memory_max = if peak.exists() {
                    read_u64(&peak)?
                } else {
                    memory_current
                };
                let cpu_path = dir.join("cpu.stat");
                let cpu_usage_ns = parse_cpu_stat_ns(&read_file(&cpu_path)?).ok_or_else(|| {
                    CgroupError::Parse {
                        path: cpu_path.clone(),
                        what: "no usage_usec line".into(),
                    }
                })?;
                Ok(Stats {
                    memory_current,
                    memory_max,
                    memory_limit: read_u64(&dir.join("memory.max"))?,
                    oom_kills: parse_memory_events(&read_file(&dir.join("memory.events"))?),
                    cpu_usage_ns,
                })
            }
        }
    }

    /// Freezes every process in the cgroup and waits (about 5 s at most) for
    /// the kernel to report it frozen (v1 `freezer.state` FROZEN, v2
    /// `frozen 1` in `cgroup.events`). On timeout the cgroup is thawed again
    /// and [`CgroupError::Timeout`] returned.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let (path, value, watched, what) = match &self.layout {
            Layout::V1 { freezer, .. } => {
                let state = freezer.join("freezer.state");
                (
                    state.clone(),
                    "FROZEN",
                    state,
                    "freezer.state to read FROZEN",
                )
            }
            Layout::V2 { dir } => {
                let control = dir.join("cgroup.freeze");
                if !control.exists() {
                    return Err(CgroupError::Unsupported(format!(
                        "{} does not exist (the cgroup v2 freezer needs Linux 5.2)",
                        control.display()
                    )));
                }
                (
                    control,
                    "1",
                    dir.join("cgroup.events"),
                    "\"frozen 1\" in cgroup.events",
                )
            }
        };
        write_file(&path, value)?;
        let started = Instant::now();
        let deadline = started + FREEZE_TIMEOUT;
        let mut asked = started;
        loop {
            if self.frozen_now()? {
                return Ok(());
            }
            if matches!(self.layout, Layout::V1 { .. }) && asked.elapsed() >= FREEZE_RETRY {
                write_file(&path, value)?;
                asked = Instant::now();
            }
            if Instant::now() >= deadline {
                if let Err(e) = self.thaw() {
                    warn!("thawing after a failed freeze: {e}");
                }
                return Err(CgroupError::Timeout {
                    path: watched,
                    what: what.into(),
                    timeout: FREEZE_TIMEOUT,
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Lets the processes run again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { freezer, .. } => write_file(&freezer.join("freezer.state"), "THAWED"),
            Layout::V2 { dir } => write_file(&dir.join("cgroup.freeze"), "0"),
        }
    }

    /// Whether the cgroup is (completely) frozen; false if that cannot be read.
    pub fn is_frozen(&self) -> bool {
        self.frozen_now().unwrap_or(false)
    }

    fn frozen_now(&self) -> Result<bool, CgroupError> {
        match &self.layout {
            Layout::V1 { freezer, .. } => {
                Ok(read_file(&freezer.join("freezer.state"))?.trim() == "FROZEN")
            }
            Layout::V2 { dir } => Ok(parse_v2_frozen(&read_file(&dir.join("cgroup.events"))?)),
        }
    }

    /// Kills every process in the cgroup with SIGKILL, waits (about 2 s at
    /// most) until it is empty, then removes its directories. Idempotent: a
    /// missing cgroup is Ok. A frozen cgroup is thawed so its processes can die.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let dirs = self.dirs();
        if !dirs.iter().any(|d| d.exists()) {
            return Ok(());
        }
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        self.kill_members();
        let mut last_kill = Instant::now();
        loop {
            let pids = self.all_pids();
            if pids.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::Timeout {
                    path: self.primary_dir().to_path_buf(),
                    what: format!("processes {pids:?} to exit after SIGKILL"),
                    timeout: DESTROY_TIMEOUT,
                });
            }
            if last_kill.elapsed() >= Duration::from_millis(100) {
                // Stragglers (e.g. joined while we were killing): try again.
                for pid in pids {
                    send_sigkill(pid);
                }
                let _ = self.thaw();
                last_kill = Instant::now();
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        for dir in dirs {
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    // The kernel may need a moment after the last exit.
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(POLL_INTERVAL);
                    }
                    Err(e) => return Err(io_err("removing cgroup directory", &dir, e)),
                }
            }
        }
        debug!(cgroup = ?self, "cgroup destroyed");
        Ok(())
    }

    /// Sends SIGKILL to every member, avoiding PID-reuse races where possible:
    /// v2 `cgroup.kill` (Linux 5.14) does it atomically; otherwise the cgroup is
    /// frozen (frozen processes cannot exit, so their PIDs stay theirs), every
    /// PID killed, then thawed so that the kills take effect.
    fn kill_members(&self) {
        if let Layout::V2 { dir } = &self.layout {
            let control = dir.join("cgroup.kill");
            if control.exists() {
                match write_file(&control, "1") {
                    Ok(()) => return,
                    Err(e) => warn!("{e}; killing processes one by one"),
                }
            }
        }
        if let Err(e) = self.freeze() {
            debug!("could not freeze before killing: {e}");
        }
        for pid in self.all_pids() {
            send_sigkill(pid);
        }
        if let Err(e) = self.thaw() {
            debug!("thawing after kill: {e}");
        }
    }

    /// Members of every hierarchy (v1 may differ after a partial join).
    fn all_pids(&self) -> Vec<u32> {
        let mut all = BTreeSet::new();
        for path in self.procs_files() {
            if let Ok(pids) = read_pids(&path) {
                all.extend(pids);
            }
        }
        all.into_iter().collect()
    }

    fn set_memory_limit(&self, limit: u64) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { memory, .. } => {
                let value = if limit == u64::MAX {
                    "-1".to_string()
                } else {
                    limit.to_string()
                };
                let mem = memory.join("memory.limit_in_bytes");
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                if !memsw.exists() {
                    return write_file(&mem, &value);
                }
                // The kernel insists on memsw >= limit at every moment.
                if limit > read_u64(&memsw)? {
                    write_file(&memsw, &value)?;
                    write_file(&mem, &value)
                } else {
                    write_file(&mem, &value)?;
                    write_file(&memsw, &value)
                }
            }
            Layout::V2 { dir } => {
                let value = if limit == u64::MAX {
                    "max".to_string()
                } else {
                    limit.to_string()
                };
                write_file(&dir.join("memory.max"), &value)?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write_file(&swap, "0")?;
                }
                Ok(())
            }
        }
    }

    /// The directory whose existence defines the cgroup (v1: memory).
    fn primary_dir(&self) -> &Path {
        match &self.layout {
            Layout::V1 { memory, .. } => memory,
            Layout::V2 { dir } => dir,
        }
    }

    /// All directories, memory first.
    fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1 {
                memory,
                cpuacct,
                freezer,
                pids,
            } => {
                let mut dirs = vec![memory.clone(), cpuacct.clone(), freezer.clone()];
                dirs.extend(pids.clone());
                dirs
            }
            Layout::V2 { dir } => vec![dir.clone()],
        }
    }
}

fn send_sigkill(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else {
        return;
    };
    match kill(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!("kill -9 {pid}: {e}"),
    }
}

// ---------------------------------------------------------------------------
// File helpers

fn io_err(op: impl Into<String>, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        op: op.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| io_err("reading", path, e))
}

/// Writes `value` with a single `write(2)` (cgroup files act on each write).
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let op = || format!("writing {value} to");
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err(op(), path, e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| io_err(op(), path, e))
}

fn read_u64(path: &Path) -> Result<u64, CgroupError> {
    let text = read_file(path)?;
    parse_limit(&text).ok_or_else(|| CgroupError::Parse {
        path: path.to_path_buf(),
        what: format!("expected a number, found {:?}", text.trim()),
    })
}

fn read_pids(path: &Path) -> Result<Vec<u32>, CgroupError> {
    Ok(read_file(path)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

fn mkdir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io_err("creating cgroup directory", dir, e))
        }
        _ => Ok(()),
    }
}

fn mkdir_p(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|e| io_err("creating cgroup directory", dir, e))
}

fn validate_name(name: &str) -> Result<(), CgroupError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\0', '\n']);
    if bad {
        Err(CgroupError::InvalidName(name.to_string()))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Pure parsers

fn has_word(text: &str, word: &str) -> bool {
    text.split_whitespace().any(|w| w == word)
}

/// The value of `key` in a flat-keyed file ("key value" lines).
fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// OOM kills from v1 `memory.oom_control` (0 on kernels before 4.13, which
/// lack the `oom_kill` line).
fn parse_oom_control(text: &str) -> u64 {
    flat_keyed(text, "oom_kill").unwrap_or(0)
}

/// OOM kills from v2 `memory.events`.
fn parse_memory_events(text: &str) -> u64 {
    flat_keyed(text, "oom_kill").unwrap_or(0)
}

/// CPU time in nanoseconds from v2 `cpu.stat`.
fn parse_cpu_stat_ns(text: &str) -> Option<u64> {
    flat_keyed(text, "usage_usec").map(|us| us.saturating_mul(1000))
}

/// Whether v2 `cgroup.events` says the cgroup is frozen.
fn parse_v2_frozen(text: &str) -> bool {
    flat_keyed(text, "frozen") == Some(1)
}

/// A single number, or "max" (v2) for no limit.
fn parse_limit(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        t => t.parse().ok(),
    }
}

/// One line of `/proc/<pid>/cgroup`: `id:controllers:path`.
#[derive(Debug, PartialEq, Eq)]
struct ProcCgroup {
    hierarchy_id: u32,
    controllers: Vec<String>,
    path: String,
}

fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = parts.next()?.to_string();
            Some(ProcCgroup {
                hierarchy_id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The fields of a `/proc/self/mountinfo` line that we need.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// Root of the mount within its file system (non-"/" in some containers).
    root: String,
    mount_point: PathBuf,
    fstype: String,
    super_opts: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?.to_string();
            let _source = right.next()?;
            let super_opts = right.next().unwrap_or("").to_string();
            Some(Mount {
                root: unescape_mountinfo(left.get(3)?),
                mount_point: PathBuf::from(unescape_mountinfo(left.get(4)?)),
                fstype,
                super_opts,
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `own` (a path from /proc/self/cgroup) relative to a mount whose root is
/// `mount_root`, as a relative path.
fn relative_to_mount(own: &str, mount_root: &str) -> PathBuf {
    let own = Path::new(own);
    let rel = own.strip_prefix(mount_root).unwrap_or(own);
    rel.strip_prefix("/").unwrap_or(rel).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};
    use std::sync::atomic::{AtomicU32, Ordering};

    const MIB: u64 = 1024 * 1024;

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    fn unique(tag: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{tag}-{}-{n}", std::process::id())
    }

    /// A hierarchy with a per-test prefix, whose parent dirs are removed at the end.
    struct Fixture {
        hierarchy: Hierarchy,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            for dir in self.hierarchy.parent_dirs() {
                if let Err(e) = fs::remove_dir(&dir) {
                    eprintln!("cleanup: removing {}: {e}", dir.display());
                }
            }
        }
    }

    fn fixture(tag: &str) -> Option<Fixture> {
        let prefix = unique(&format!("lambdock-test-{tag}"));
        match detect(&prefix) {
            Ok(Some(hierarchy)) => Some(Fixture { hierarchy }),
            Ok(None) => {
                eprintln!(
                    "skipping: no usable cgroups here (not root, or no v1/v2 memory controller)"
                );
                None
            }
            Err(e) => panic!("detect failed: {e}"),
        }
    }

    /// Destroys the cgroup even when the test panics.
    struct Guard(Cgroup);

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Err(e) = self.0.destroy() {
                eprintln!("cleanup: {e}");
            }
        }
    }

    /// Spawns `argv` already inside `cg`, the way the agent does it.
    fn spawn_in(cg: &Cgroup, argv: &[&str]) -> Child {
        let fds = cg.open_procs().expect("open_procs");
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        // SAFETY: the closure only calls join_from_pre_exec, which is
        // async-signal-safe; `raw` was allocated before fork.
        unsafe {
            cmd.pre_exec(move || Cgroup::join_from_pre_exec(&raw));
        }
        let child = cmd.spawn().expect("spawn");
        drop(fds);
        child
    }

    #[test]
    fn lifecycle_limit_stats_freeze_destroy() {
        let Some(fx) = fixture("life") else { return };
        let name = unique("worker");
        let cg = fx.hierarchy.create(&name, 64 * MIB).expect("create");
        let guard = Guard(cg.clone());
        let mut child = spawn_in(&cg, &["/bin/sh", "-c", "sleep 30"]);
        let pid = child.id();

        let pids = cg.pids();
        assert!(pids.contains(&pid), "{pid} not in {pids:?}");

        let stats = cg.stats().expect("stats");
        eprintln!("stats: {stats:?}");
        assert_eq!(stats.memory_limit, 64 * MIB);
        assert!(
            stats.cpu_usage_ns > 0 || stats.memory_current > 0,
            "all-zero figures: {stats:?}"
        );
        assert_eq!(stats.oom_kills, 0);

        assert!(!cg.is_frozen());
        cg.freeze().expect("freeze");
        assert!(cg.is_frozen());
        cg.thaw().expect("thaw");
        assert!(!cg.is_frozen());

        // Destroy while frozen: it must thaw so that SIGKILL takes effect.
        cg.freeze().expect("freeze again");
        cg.destroy().expect("destroy");
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        for dir in cg.dirs() {
            assert!(!dir.exists(), "{} still exists", dir.display());
        }
        assert!(fx.hierarchy.open(&name).is_none());
        assert!(cg.pids().is_empty());
        // Idempotent.
        cg.destroy().expect("second destroy");
        drop(guard);
    }

    #[test]
    fn oom_kill_is_counted() {
        let Some(fx) = fixture("oom") else { return };
        let cg = fx
            .hierarchy
            .create(&unique("oom"), 32 * MIB)
            .expect("create");
        let _guard = Guard(cg.clone());
        let mut child = spawn_in(
            &cg,
            &[
                "python3",
                "-c",
                "b = bytearray(200*1024*1024); import time; time.sleep(5)",
            ],
        );
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        let stats = cg.stats().expect("stats");
        eprintln!("stats after OOM: {stats:?}");
        assert!(stats.oom_kills >= 1, "{stats:?}");
        assert_eq!(stats.memory_limit, 32 * MIB);
        assert!(
            stats.memory_max > 0 && stats.memory_max <= 32 * MIB,
            "{stats:?}"
        );
        cg.destroy().expect("destroy");
    }

    #[test]
    fn create_twice_reopens() {
        let Some(fx) = fixture("reopen") else { return };
        let name = unique("again");
        let first = fx.hierarchy.create(&name, 64 * MIB).expect("create");
        let _guard = Guard(first.clone());
        // A process moved in after the fact (recovery path).
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn");
        first.add_pid(child.id()).expect("add_pid");

        let second = fx.hierarchy.create(&name, 48 * MIB).expect("create again");
        assert_eq!(first, second);
        assert!(second.pids().contains(&child.id()));
        assert_eq!(second.stats().expect("stats").memory_limit, 48 * MIB);
        // Raising works too (v1 must raise memsw first).
        fx.hierarchy.create(&name, 96 * MIB).expect("raise");
        assert_eq!(first.stats().expect("stats").memory_limit, 96 * MIB);

        assert_eq!(fx.hierarchy.open(&name), Some(first.clone()));
        assert_eq!(fx.hierarchy.open(&unique("missing")), None);

        first.destroy().expect("destroy");
        assert_eq!(child.wait().expect("wait").signal(), Some(libc::SIGKILL));
        assert_eq!(fx.hierarchy.open(&name), None);
    }

    #[test]
    fn errors_name_path_and_operation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("memory.limit_in_bytes");
        let err = write_file(&missing, "134217728").expect_err("must fail");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("writing 134217728 to {}: ", missing.display())),
            "{msg}"
        );
        let err = read_u64(&missing).expect_err("must fail");
        assert!(err.to_string().starts_with("reading "), "{err}");
        fs::write(&missing, "lots\n").expect("write");
        let err = read_u64(&missing).expect_err("must fail");
        assert!(matches!(err, CgroupError::Parse { .. }), "{err}");
    }

    #[test]
    fn names_are_validated() {
        let h = Hierarchy::V2 {
            root: PathBuf::from("/nonexistent"),
        };
        for bad in ["", ".", "..", "a/b", "x\ny"] {
            assert!(
                matches!(h.create(bad, MIB), Err(CgroupError::InvalidName(_))),
                "{bad:?}"
            );
            assert!(h.open(bad).is_none());
        }
        assert!(matches!(detect("a/b"), Err(CgroupError::InvalidName(_))));
    }

    #[test]
    fn join_from_pre_exec_reports_errno() {
        let err = Cgroup::join_from_pre_exec(&[-1]).expect_err("bad fd");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        Cgroup::join_from_pre_exec(&[]).expect("nothing to do");
    }

    // ---- pure parsers -------------------------------------------------------

    #[test]
    fn parses_v1_oom_control() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_oom_control(text), 3);
        // Kernels before 4.13 have no oom_kill line.
        assert_eq!(parse_oom_control("oom_kill_disable 0\nunder_oom 1\n"), 0);
        assert_eq!(parse_oom_control(""), 0);
    }

    #[test]
    fn parses_v2_memory_events() {
        let text = "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_memory_events(text), 1);
        // "oom" and "oom_group_kill" must not be mistaken for oom_kill.
        assert_eq!(parse_memory_events("oom 5\noom_group_kill 4\n"), 0);
    }

    #[test]
    fn parses_v2_cpu_stat() {
        let text = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n\
                    nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_cpu_stat_ns(text), Some(123_456_000));
        assert_eq!(parse_cpu_stat_ns("user_usec 1\n"), None);
    }

    #[test]
    fn parses_v2_cgroup_events_and_limits() {
        assert!(parse_v2_frozen("populated 1\nfrozen 1\n"));
        assert!(!parse_v2_frozen("populated 1\nfrozen 0\n"));
        assert!(!parse_v2_frozen("populated 0\n"));
        assert_eq!(parse_limit("max\n"), Some(u64::MAX));
        assert_eq!(parse_limit("67108864\n"), Some(64 * MIB));
        assert_eq!(
            parse_limit("9223372036854771712\n"),
            Some(9_223_372_036_854_771_712)
        );
        assert_eq!(parse_limit("nope"), None);
    }

    #[test]
    fn parses_proc_self_cgroup() {
        let text = "9:name=systemd:/\n8:pids:/\n2:cpu,cpuacct:/a\n\
                    4:memory:/process_api/3bd4\n0::/user.slice/x.scope\n";
        let e = parse_proc_cgroup(text);
        assert_eq!(e.len(), 5);
        assert_eq!(e[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(e[3].path, "/process_api/3bd4");
        assert_eq!(e[4].hierarchy_id, 0);
        assert!(e[4].controllers.is_empty());
        assert_eq!(e[4].path, "/user.slice/x.scope");
    }

    #[test]
    fn parses_mountinfo() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    50 31 0:40 /docker/abc /mnt/my\\040cg rw shared:5 - cgroup cgroup rw,cpu,cpuacct\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(m[0].super_opts, "rw,memory");
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[2].root, "/docker/abc");
        assert_eq!(m[2].mount_point, Path::new("/mnt/my cg"));
        assert_eq!(
            relative_to_mount("/docker/abc/w", "/docker/abc"),
            Path::new("w")
        );
        assert_eq!(relative_to_mount("/a/b", "/"), Path::new("a/b"));
        assert_eq!(relative_to_mount("/", "/"), Path::new(""));
    }

    // ---- fake trees (the kernel's files replaced by plain files) -------------

    #[test]
    fn detects_v1_on_a_fake_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for c in ["memory", "cpu,cpuacct", "freezer"] {
            fs::create_dir(root.join(c)).expect("mkdir");
        }
        let r = root.display();
        let mountinfo = format!(
            "35 31 0:32 / {r}/memory rw - cgroup cgroup rw,memory\n\
             36 31 0:33 / {r}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             37 31 0:34 /outer {r}/freezer rw - cgroup cgroup rw,freezer\n"
        );
        let proc_cgroup =
            "4:memory:/process_api/abc\n2:cpu,cpuacct:/\n6:freezer:/outer/inner\n8:pids:/\n";
        let h = detect_in(root, proc_cgroup, &mountinfo, "pfx")
            .expect("detect")
            .expect("some");
        assert_eq!(h.version(), 1);
        assert_eq!(
            h,
            Hierarchy::V1 {
                memory: root.join("memory/process_api/abc/pfx"),
                cpuacct: root.join("cpu,cpuacct/pfx"),
                freezer: root.join("freezer/inner/pfx"),
                pids: None,
            }
        );
        for d in h.parent_dirs() {
            assert!(d.is_dir(), "{}", d.display());
        }
        // Missing freezer: unsupported rather than silently half-working.
        let err = detect_in(root, "4:memory:/\n2:cpu,cpuacct:/\n", &mountinfo, "pfx");
        assert!(matches!(err, Err(CgroupError::Unsupported(_))), "{err:?}");
        // Nothing at all: run without cgroups.
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            detect_in(empty.path(), "", "", "pfx").expect("detect"),
            None
        );
    }

    fn fake_v2_dir(dir: &Path, controllers: &str) {
        fs::create_dir_all(dir).expect("mkdir");
        fs::write(dir.join("cgroup.controllers"), controllers).expect("write");
        fs::write(dir.join("cgroup.subtree_control"), "").expect("write");
        fs::write(dir.join("cgroup.procs"), "").expect("write");
    }

    #[test]
    fn detects_v2_and_uses_its_files_on_a_fake_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fake_v2_dir(root, "cpuset cpu io memory hugetlb pids rdma misc\n");
        fake_v2_dir(&root.join("system.slice"), "cpu memory pids\n");
        fake_v2_dir(
            &root.join("system.slice/agent.service"),
            "cpu memory pids\n",
        );
        fake_v2_dir(
            &root.join("system.slice/agent.service/pfx"),
            "cpu memory pids\n",
        );
        let mountinfo = format!("30 1 0:26 / {} rw - cgroup2 cgroup2 rw\n", root.display());
        // We were moved into the agent leaf by a previous run.
        let proc_cgroup = "0::/system.slice/agent.service/lambdock-agent\n";
        let h = detect_in(root, proc_cgroup, &mountinfo, "pfx")
            .expect("detect")
            .expect("some");
        let parent = root.join("system.slice/agent.service/pfx");
        assert_eq!(
            h,
            Hierarchy::V2 {
                root: parent.clone()
            }
        );
        assert_eq!(h.version(), 2);
        // Every level was asked to delegate (a plain file is overwritten in
        // place by each write, so "+pids" was the last one).
        for dir in [
            root.to_path_buf(),
            root.join("system.slice"),
            root.join("system.slice/agent.service"),
            parent.clone(),
        ] {
            let written = fs::read_to_string(dir.join("cgroup.subtree_control")).expect("read");
            assert!(
                written.starts_with("+pids"),
                "{}: {written:?}",
                dir.display()
            );
        }

        // A worker cgroup that "exists" (restart path): its files get the limits.
        let dir = parent.join("w1");
        fs::create_dir(&dir).expect("mkdir");
        for (f, v) in [
            // Empty: plain files are not truncated by our writes.
            ("memory.max", ""),
            ("memory.swap.max", ""),
            ("memory.current", "1048576\n"),
            ("memory.peak", "4194304\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            (
                "cpu.stat",
                "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
            ),
            ("cgroup.procs", "42\n43\n"),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
        ] {
            fs::write(dir.join(f), v).expect("write");
        }
        let cg = h.create("w1", 32 * MIB).expect("create");
        assert_eq!(h.open("w1"), Some(cg.clone()));
        assert_eq!(h.open("w2"), None);
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).expect("read"),
            "33554432"
        );
        assert_eq!(
            fs::read_to_string(dir.join("memory.swap.max")).expect("read"),
            "0"
        );
        assert_eq!(cg.procs_files(), vec![dir.join("cgroup.procs")]);
        assert_eq!(cg.pids(), vec![42, 43]);
        assert!(!cg.is_frozen());
        assert_eq!(
            cg.stats().expect("stats"),
            Stats {
                memory_current: MIB,
                memory_max: 4 * MIB,
                memory_limit: 32 * MIB,
                oom_kills: 1,
                cpu_usage_ns: 2_500_000,
            }
        );
        // Without memory.peak (kernels < 5.19) the peak is the current usage.
        fs::remove_file(dir.join("memory.peak")).expect("rm");
        assert_eq!(cg.stats().expect("stats").memory_max, MIB);
        // No cgroup.freeze (kernels < 5.2): freezing is unsupported.
        assert!(matches!(cg.freeze(), Err(CgroupError::Unsupported(_))));
    }

    #[test]
    fn v2_without_memory_down_the_chain_is_unsupported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        fake_v2_dir(root, "cpu io memory pids\n");
        fake_v2_dir(&root.join("a"), "cpu pids\n");
        let err = detect_in(root, "0::/a\n", "", "pfx");
        assert!(matches!(err, Err(CgroupError::Unsupported(_))), "{err:?}");
    }
}
