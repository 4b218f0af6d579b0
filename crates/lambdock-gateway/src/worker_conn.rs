//! The gateway's connection to one worker's invoke endpoint, driven by the invocation's own task.
//!
//! A worker serves one invocation at a time, so it needs exactly one keep-alive connection,
//! which idles with the worker in its pool. The connection is polled inside the task that runs
//! the invocation, not in a task of its own as a pooled HTTP client does: the exchange with the
//! worker then needs no channel hop and no cross-thread wake-up. On a 2-core machine those
//! wake-ups were a good part of the latency the gateway added to a warm invocation.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long connecting to a worker may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

type Connection = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Why a call to a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The worker could not be reached: nothing of the request reached it.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The worker's invoke address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The exchange broke after the request was handed over.
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    /// The answer was cut short or was over the limit.
    #[error("{0}")]
    Body(String),
}

impl CallError {
    /// True when nothing of the request reached the worker, so retrying elsewhere is safe.
    pub fn is_connect(&self) -> bool {
        matches!(self, CallError::Connect { .. })
    }
}

/// One open connection to a worker.
pub struct WorkerConn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has ended.
    conn: Option<Connection>,
}

impl std::fmt::Debug for WorkerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConn")
            .field("open", &self.conn.is_some())
            .finish()
    }
}

impl WorkerConn {
    async fn open(addr: SocketAddr) -> Result<WorkerConn, CallError> {
        let connect = |reason: String| CallError::Connect { addr, reason };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| connect(format!("no answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| connect(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect(e.to_string()))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect(e.to_string()))?;
        Ok(WorkerConn {
            sender,
            conn: Some(conn),
        })
    }

    /// Whether the connection can take a request now: it is polled once, which notices a worker
    /// that closed it while it idled.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(false);
            };
            if Future::poll(std::pin::Pin::new(conn), cx).is_ready() {
                self.conn = None;
                return Poll::Ready(false);
            }
            // The connection, just polled while idle, has asked for the next request if it
            // can take one; anything else means it is in no state to be reused.
            Poll::Ready(matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(()))))
        })
        .await
    }

    /// Polls `fut` to completion while driving the connection it needs.
    async fn drive<F: Future>(&mut self, fut: F) -> F::Output {
        let mut fut = pin!(fut);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            if let Some(conn) = self.conn.as_mut()
                && Future::poll(std::pin::Pin::new(conn), cx).is_ready()
            {
                // The connection ended: the request's side has been told why and finishes
                // with that error when polled again.
                self.conn = None;
                return fut.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await
    }
}

/// Sends `request` to the worker at `addr` over its connection in `slot` (opened, or reopened if
/// the worker closed it) and reads the whole answer, up to `limit` bytes.
///
/// The connection is back in `slot` after a call that went through, and gone after one that
/// broke.
pub async fn call(
    slot: &mut Option<WorkerConn>,
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    limit: usize,
) -> Result<(response::Parts, Bytes), CallError> {
    let mut c = match slot.take() {
        Some(mut c) => {
            if c.ready().await {
                c
            } else {
                WorkerConn::open(addr).await?
            }
        }
        None => WorkerConn::open(addr).await?,
    };
    let fut = c.sender.send_request(request);
    let (parts, body) = c.drive(fut).await?.into_parts();
    let body = c
        .drive(Limited::new(body, limit).collect())
        .await
        .map_err(|e| CallError::Body(e.to_string()))?;
    *slot = Some(c);
    Ok((parts, body.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn post(body: &'static str) -> Request<Full<Bytes>> {
        Request::post("/2015-03-31/functions/function/invocations")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    /// A worker stand-in: answers every request on a connection with `answer`, closing the
    /// connection after `per_conn` answers; counts connections.
    async fn worker(answer: &'static str, per_conn: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for _ in 0..per_conn {
                        let mut req = Vec::new();
                        let mut buf = [0u8; 4096];
                        // Head and a small body arrive together on loopback.
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = s.read(&mut buf).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            req.extend_from_slice(&buf[..n]);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn one_connection_serves_call_after_call() {
        let (addr, conns) = worker(OK, usize::MAX).await;
        let mut slot = None;
        for _ in 0..3 {
            let (parts, body) = call(&mut slot, addr, post("{}"), 1024).await.unwrap();
            assert_eq!((parts.status.as_u16(), &body[..]), (200, &b"{}"[..]));
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_worker_closed_is_reopened() {
        let (addr, conns) = worker(OK, 1).await;
        let mut slot = None;
        for _ in 0..3 {
            call(&mut slot, addr, post("{}"), 1024).await.unwrap();
            // Let the close reach us, as it would while the worker idles.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_worker_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let mut slot = None;
        let e = call(&mut slot, addr, post("{}"), 1024).await.unwrap_err();
        assert!(e.is_connect(), "{e}");
    }

    #[tokio::test]
    async fn a_worker_dying_mid_answer_is_not_a_connect_error() {
        let (addr, _) = worker("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}", 1).await;
        let mut slot = None;
        let e = call(&mut slot, addr, post("{}"), 1024).await.unwrap_err();
        assert!(!e.is_connect(), "{e}");
        assert!(slot.is_none());
    }

    #[tokio::test]
    async fn an_answer_over_the_limit_fails() {
        let (addr, _) = worker(OK, usize::MAX).await;
        let mut slot = None;
        let e = call(&mut slot, addr, post("{}"), 1).await.unwrap_err();
        assert!(matches!(e, CallError::Body(_)), "{e}");
    }
}
