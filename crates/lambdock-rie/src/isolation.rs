//! Self-isolation for the `process` backend: when the agent runs as root, `lambdock-rie
//! --isolate` puts itself and the runtime into a new mount and PID namespace that looks like a
//! Lambda sandbox: the code read-only at `/var/task`, the layers merged read-only at `/opt`, a
//! private `/tmp` of the function's ephemeral storage size, and a fresh `/proc`.
//!
//! This runs first thing in `main`, while the process is still single-threaded, so `fork` is
//! safe. After `unshare(CLONE_NEWPID)` only children enter the new namespace, so the emulator
//! forks: the child is PID 1 of the sandbox and carries on as the emulator; the parent stays
//! outside as a small shim that forwards SIGTERM/SIGINT and exits with the child's status. When
//! PID 1 ends, the kernel kills everything left in the namespace, so nothing a function forks
//! can outlive its worker; and the child dies with the shim (`PR_SET_PDEATHSIG`), so killing
//! the shim is enough.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// How the sandbox's file system is laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The function code, mounted at `/var/task`.
    pub task_root: PathBuf,
    /// Layers in order; later layers win, as in Lambda.
    pub layers: Vec<PathBuf>,
    /// Size of `/tmp` in MB.
    pub tmp_size_mb: u64,
    /// Host directories under `/tmp` that stay visible in the sandbox's private `/tmp` (the
    /// runtime's interpreter when it lives there).
    pub keep: Vec<PathBuf>,
}

/// A sandbox that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The error.
        source: nix::Error,
    },
    /// A directory that must exist does not.
    #[error("{0} does not exist or is not a directory")]
    MissingDir(PathBuf),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> IsolationError {
    let what = what.into();
    move |source| IsolationError::Sys { what, source }
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(child, signal);
        }
    }
}

/// Enters the sandbox. Returns in the child (PID 1 of the new namespace, file system laid out);
/// in the parent it never returns: it waits for the child and exits with its status.
pub fn enter(layout: &Layout) -> Result<(), IsolationError> {
    for dir in std::iter::once(&layout.task_root).chain(&layout.layers) {
        if !dir.is_dir() {
            return Err(IsolationError::MissingDir(dir.clone()));
        }
    }
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(sys("unshare(mount, pid)"))?;
    // SAFETY: the process is single-threaded here (called before any runtime or thread starts).
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Parent { child } => supervise(child),
        ForkResult::Child => {
            // Die with the shim, so killing the process the agent knows kills the sandbox.
            // SAFETY: prctl with PR_SET_PDEATHSIG has no memory effects.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            lay_out(layout)
        }
    }
}

fn supervise(child: Pid) -> ! {
    CHILD.store(child.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only calls kill.
        let _ = unsafe { sigaction(signal, &action) };
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => std::process::exit(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                let _ = kill(child, Signal::SIGKILL);
                std::process::exit(1);
            }
        }
    }
}

fn bind_read_only(source: &Path, target: &str) -> Result<(), IsolationError> {
    std::fs::create_dir_all(target).map_err(|_| IsolationError::MissingDir(target.into()))?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind-mounting {} at {target}",
        source.display()
    )))?;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("making {target} read-only")))
}

fn lay_out(layout: &Layout) -> Result<(), IsolationError> {
    // Nothing mounted here may leak back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("making / private"))?;
    bind_read_only(&layout.task_root, "/var/task")?;
    match layout.layers.as_slice() {
        [] => {
            std::fs::create_dir_all("/opt")
                .map_err(|_| IsolationError::MissingDir("/opt".into()))?;
            mount(
                Some("tmpfs"),
                "/opt",
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=64k,mode=755"),
            )
            .map_err(sys("mounting an empty /opt"))?;
        }
        [one] => bind_read_only(one, "/opt")?,
        many => {
            // overlayfs lists the uppermost layer first.
            let lower: Vec<String> = many.iter().rev().map(|p| p.display().to_string()).collect();
            mount(
                Some("overlay"),
                "/opt",
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(format!("lowerdir={}", lower.join(":")).as_str()),
            )
            .map_err(sys("merging the layers at /opt"))?;
        }
    }
    // Directories to keep are opened before the private /tmp hides them, and bound back in
    // through their descriptors.
    let mut kept = Vec::new();
    for path in layout.keep.iter().filter(|p| p.starts_with("/tmp")) {
        match std::fs::File::open(path) {
            Ok(dir) => kept.push((path.clone(), dir)),
            Err(_) => return Err(IsolationError::MissingDir(path.clone())),
        }
    }
    let tmp = format!("size={}m,mode=1777", layout.tmp_size_mb.max(1));
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(tmp.as_str()),
    )
    .map_err(sys("mounting /tmp"))?;
    for (path, dir) in &kept {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(path).map_err(|_| IsolationError::MissingDir(path.clone()))?;
        let source = format!("/proc/self/fd/{}", dir.as_raw_fd());
        mount(
            Some(source.as_str()),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(format!("keeping {} visible", path.display())))?;
    }
    // A /proc of this PID namespace, so process ids read there are ours.
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(sys("mounting /proc"))?;
    Ok(())
}
