//! Serving the API port, with the same graceful drain as the AWS endpoint: at shutdown the
//! listener closes and in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::ApiGateway;
use crate::case::{Heads, Recorder};

/// Serves until `shutdown` completes, then waits (up to `drain`) for in-flight requests.
pub async fn serve(
    api: Arc<ApiGateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                let heads = Heads::default();
                let io = TokioIo::new(Recorder::new(stream, heads.clone()));
                let conn = http1::Builder::new().serve_connection(
                    io,
                    service_fn(move |req| {
                        let case = heads.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                        api.clone().handle(req, peer, case.unwrap_or_default())
                    }),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "in-flight API requests did not finish in time");
    }
}
