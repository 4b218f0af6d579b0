//! Capture of the runtime's output, line by line.
//!
//! The runtime and its extensions write stdout and stderr into one pipe, so that their lines stay
//! in the order they were written, as in one CloudWatch stream. Every line goes to the emulator's
//! own stdout (where the agent or `docker logs` collects it) and into the tail buffer of the
//! invocation in progress, which `X-Amz-Log-Result` returns.
//!
//! All reads of the pipe happen under one lock and the pipe is non-blocking, so
//! [`LogSink::drain`] can read whatever the runtime wrote before it answered: the lines an
//! invocation printed are always inside its `START`/`END` frame.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// How much of an invocation's log `X-Amz-Log-Result` carries.
pub const TAIL_BYTES: usize = 4096;
/// Longest line kept as one; CloudWatch's event size limit.
const MAX_LINE_BYTES: usize = 256 * 1024;

/// The log of the emulator: runtime lines and platform lines.
#[derive(Clone, Default)]
pub struct LogSink {
    state: Arc<Mutex<SinkState>>,
}

#[derive(Default)]
struct SinkState {
    partial: Vec<u8>,
    tail: Option<Vec<u8>>,
}

/// The read end of a runtime's output pipe.
pub struct OutputPipe {
    fd: AsyncFd<OwnedFd>,
}

/// Creates a pipe whose write end the runtime gets as stdout and stderr.
pub fn output_pipe() -> std::io::Result<(OutputPipe, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    nix::fcntl::fcntl(
        read.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    )?;
    // SAFETY: an `OwnedFd` keeps its descriptor open and unchanged for as long as it is owned,
    // and the `AsyncFd` owns it.
    let fd = unsafe { AsyncFd::register_with_interest(read, Interest::READABLE) }?;
    Ok((OutputPipe { fd }, write))
}

impl LogSink {
    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts collecting a tail for a new invocation.
    pub fn begin_invocation(&self) {
        self.lock().tail = Some(Vec::new());
    }

    /// Stops collecting and returns the last [`TAIL_BYTES`] of the invocation's log.
    pub fn end_invocation(&self) -> Vec<u8> {
        let tail = self.lock().tail.take().unwrap_or_default();
        let start = tail.len().saturating_sub(TAIL_BYTES);
        tail[start..].to_vec()
    }

    /// Writes a line of the platform's own (`START`, `END`, `REPORT`, ...).
    pub fn platform_line(&self, line: &str) {
        let mut state = self.lock();
        state.emit(line.as_bytes());
    }

    /// Reads everything the runtime has written so far, ending a dangling partial line.
    pub fn drain(&self, pipe: &OutputPipe) {
        let mut state = self.lock();
        state.read_available(pipe);
        if !state.partial.is_empty() {
            let line = std::mem::take(&mut state.partial);
            state.emit(&line);
        }
    }

    /// Forwards the pipe until every writer has closed it.
    pub async fn forward(&self, pipe: Arc<OutputPipe>) {
        loop {
            let mut ready = match pipe.fd.readable().await {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::warn!(error = %e, "runtime output pipe failed");
                    return;
                }
            };
            let eof = self.lock().read_available(&pipe);
            if eof {
                let mut state = self.lock();
                if !state.partial.is_empty() {
                    let line = std::mem::take(&mut state.partial);
                    state.emit(&line);
                }
                return;
            }
            ready.clear_ready();
        }
    }
}

impl SinkState {
    /// Reads until the pipe is empty; true at end of file.
    fn read_available(&mut self, pipe: &OutputPipe) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(pipe.fd.get_ref(), &mut buf) {
                Ok(0) => return true,
                Ok(n) => self.take_bytes(&buf[..n]),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "reading runtime output");
                    return true;
                }
            }
        }
    }

    fn take_bytes(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(pos);
            bytes = &rest[1..];
            if self.partial.is_empty() {
                self.emit(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.emit(&whole);
            }
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() >= MAX_LINE_BYTES {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
    }

    fn emit(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the function; the tail still has the line.
        let _ = out.write_all(line).and_then(|_| out.write_all(b"\n"));
        if let Some(tail) = self.tail.as_mut() {
            tail.extend_from_slice(line);
            tail.push(b'\n');
            if tail.len() > 4 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_tail_is_bounded() {
        let sink = LogSink::default();
        sink.begin_invocation();
        {
            let mut s = sink.lock();
            s.take_bytes(b"one\ntw");
            s.take_bytes(b"o\r\nthree");
        }
        sink.platform_line("END");
        let tail = sink.end_invocation();
        assert_eq!(tail, b"one\ntwo\nEND\n");
        sink.begin_invocation();
        for _ in 0..2000 {
            sink.platform_line("0123456789");
        }
        let tail = sink.end_invocation();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(b"0123456789\n"));
    }

    #[tokio::test]
    async fn drain_reads_what_was_written_before() {
        let sink = LogSink::default();
        let (pipe, write) = output_pipe().unwrap();
        sink.begin_invocation();
        nix::unistd::write(&write, b"written before\npartial").unwrap();
        sink.drain(&pipe);
        assert_eq!(sink.end_invocation(), b"written before\npartial\n");
    }
}
