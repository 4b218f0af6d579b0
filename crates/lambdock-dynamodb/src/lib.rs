//! Lambdock's embedded DynamoDB: the DynamoDB JSON protocol on its own port, durable on disk.
//!
//! The engine is rustack's (`rustack-dynamodb-core`: tables, indexes, the expression language,
//! transactions, DynamoDB's validation messages), which keeps everything in memory. This crate
//! makes it durable ([`store`]: a write-ahead log of successful mutating requests, synced before
//! the response, and snapshots; [`wal`]: the log itself) and puts it behind SigV4 with the
//! platform's credentials ([`http`]), with DynamoDB's wording where rustack's differs
//! ([`conform`]), undefined expression placeholders refused ([`placeholders`]), and the table metadata rustack accepts but ignores ([`tables`]). `lambdock up` starts it unless an external DynamoDB
//! endpoint is configured ([`args`]).

pub mod args;
pub mod conform;
pub mod http;
pub mod placeholders;
pub mod store;
pub mod tables;
pub mod tokens;
pub mod ttl;
pub mod wal;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use args::DynamoArgs;

/// How the embedded DynamoDB runs.
#[derive(Clone)]
pub struct DynamoConfig {
    /// Where the tables live: the store uses `<data_dir>/dynamodb`.
    pub data_dir: PathBuf,
    /// The region in table ARNs.
    pub region: String,
    /// The access key id and secret every request must be signed with; `None` accepts any
    /// (or no) signature.
    pub credentials: Option<(String, String)>,
    /// Logged writes after which a snapshot replaces the log.
    pub snapshot_every: u64,
    /// How often expired items (TTL) are looked for.
    pub ttl_sweep_every: Duration,
}

impl std::fmt::Debug for DynamoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoConfig")
            .field("data_dir", &self.data_dir)
            .field("region", &self.region)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("snapshot_every", &self.snapshot_every)
            .field("ttl_sweep_every", &self.ttl_sweep_every)
            .finish()
    }
}

impl DynamoConfig {
    /// A configuration with the default snapshot interval and a TTL sweep every minute.
    #[must_use]
    pub fn new(
        data_dir: impl Into<PathBuf>,
        region: impl Into<String>,
        credentials: Option<(String, String)>,
    ) -> Self {
        DynamoConfig {
            data_dir: data_dir.into(),
            region: region.into(),
            credentials,
            snapshot_every: store::DEFAULT_SNAPSHOT_EVERY,
            ttl_sweep_every: Duration::from_secs(60),
        }
    }
}

/// Why the embedded DynamoDB could not start or keep its data.
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    /// A file of the store could not be read or written.
    #[error("dynamodb store {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A snapshot could not be written or read back.
    #[error("dynamodb snapshot {}: {message}", path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// How long in-flight requests may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// Opens the store (replaying its log) and serves the DynamoDB API on `listener` until
/// `shutdown` completes, sweeping expired items meanwhile; in-flight requests then finish and a
/// final snapshot is written.
///
/// # Errors
///
/// The store could not be opened, or the final snapshot could not be written.
pub async fn serve(
    listener: TcpListener,
    cfg: DynamoConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DynamoError> {
    let store = Arc::new(
        store::Store::open(
            &cfg.data_dir.join("dynamodb"),
            &cfg.region,
            cfg.snapshot_every,
        )
        .await?,
    );
    let front = Arc::new(http::Front::new(Arc::clone(&store), cfg.credentials));
    let sweeper = tokio::spawn(ttl::sweep_forever(
        Arc::clone(&store),
        cfg.ttl_sweep_every.max(Duration::from_millis(10)),
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "dynamodb accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let front = Arc::clone(&front);
                let conn = http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| {
                        let front = Arc::clone(&front);
                        async move { front.handle(req).await }
                    }),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "dynamodb connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    sweeper.abort();
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("dynamodb requests did not finish in time");
    }
    store.snapshot().await
}
