//! The runtime's processes: started in one process group, killed as one, measured as one.
//!
//! Lambda resets a sandbox by killing everything in it. Outside a PID namespace the closest
//! equivalent is a process group: the runtime, its extensions and whatever they fork share one,
//! and a reset is one `killpg`.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A process that could not be started, worded as Lambda words it
/// (`fork/exec /var/task/bootstrap: no such file or directory`).
#[derive(Debug, thiserror::Error)]
#[error("fork/exec {program}: {reason}")]
pub struct SpawnError {
    /// The program.
    pub program: String,
    /// Go's wording of the OS error.
    pub reason: String,
}

/// The process group of one runtime generation.
#[derive(Debug, Default)]
pub struct ProcessGroup {
    leader: Option<Pid>,
}

impl ProcessGroup {
    /// Starts `argv` in this group with `out` as its stdout and stderr.
    pub fn spawn(
        &mut self,
        argv: &[String],
        cwd: &Path,
        env: &[(String, String)],
        out: &OwnedFd,
    ) -> Result<Child, SpawnError> {
        let program = argv.first().cloned().unwrap_or_default();
        let fail = |e: std::io::Error| SpawnError {
            program: program.clone(),
            reason: go_errno_text(&e),
        };
        let mut cmd = Command::new(&program);
        cmd.args(&argv[1..])
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(fail)?)
            .stderr(out.try_clone().map_err(fail)?)
            .process_group(self.leader.map_or(0, Pid::as_raw));
        let child = cmd.spawn().map_err(fail)?;
        if self.leader.is_none() {
            self.leader = child.id().map(|id| Pid::from_raw(id as i32));
        }
        Ok(child)
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: Signal) {
        if let Some(leader) = self.leader {
            // ESRCH only means everything is gone already.
            let _ = killpg(leader, signal);
        }
    }
}

/// Go's text for the errors `exec` gives, so messages read like Lambda's.
fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Peak resident memory of a process and its descendants, in bytes (`VmHWM` summed).
///
/// This runs between two invocations, so it reads as little as it can: the status of each
/// process and the children of its main thread (forks from other threads are not followed).
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    let mut visited = 0;
    while let Some(pid) = stack.pop() {
        visited += 1;
        if visited > 4096 {
            break;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024);
        }
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            stack.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawn_errors_read_like_go() {
        let (_pipe, w) = crate::logs::output_pipe().unwrap();
        let err = ProcessGroup::default()
            .spawn(&["/nonexistent/bootstrap".into()], Path::new("/"), &[], &w)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fork/exec /nonexistent/bootstrap: no such file or directory"
        );
    }

    #[test]
    fn own_peak_memory_is_measured() {
        assert!(peak_rss_bytes(std::process::id()) > 1024 * 1024);
    }
}
