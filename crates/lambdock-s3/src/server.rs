//! Serving the S3 API on a listener with hyper, plus the lifecycle sweeper, until shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::service::Service;
use crate::store::Store;

/// How the embedded S3 runs.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The platform's data directory; objects live under `<data_dir>/s3`.
    pub data_dir: PathBuf,
    /// Region reported by GetBucketLocation.
    pub region: String,
    /// Access key and secret every request must be signed with; `None` accepts anonymous
    /// requests (local use only).
    pub credentials: Option<(String, String)>,
    /// Length of a lifecycle "day" (shortened in tests).
    pub lifecycle_day: Duration,
    /// How often lifecycle rules are applied.
    pub sweep_interval: Duration,
}

/// Why the S3 server could not run.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// Opening the store under the data directory failed.
    #[error("opening the S3 store under {path}: {source}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The cause.
        source: crate::error::StoreError,
    },
    /// A background task panicked.
    #[error("S3 startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Without credentials every request is served as anonymous: s3s refuses signed requests when
/// it has no authentication provider, and SDKs always sign.
fn strip_signature<B>(req: &mut http::Request<B>) {
    const SIGNATURE_PARAMS: [&str; 10] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
    ];
    req.headers_mut().remove(http::header::AUTHORIZATION);
    let Some(query) = req.uri().query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !SIGNATURE_PARAMS.contains(&p.split('=').next().unwrap_or("")))
        .collect();
    let path_and_query = if kept.is_empty() {
        req.uri().path().to_string()
    } else {
        format!("{}?{}", req.uri().path(), kept.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// Serves S3 on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (up to 30 s).
pub async fn serve(
    listener: TcpListener,
    cfg: S3Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), S3Error> {
    let root = cfg.data_dir.join("s3");
    let path = root.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await?
        .map_err(|source| S3Error::Open { path: root, source })?;
    let store = Arc::new(store);
    let mut builder = S3ServiceBuilder::new(Service::new(store.clone(), cfg.region.clone()));
    let verify = cfg.credentials.is_some();
    if let Some((access_key, secret_key)) = cfg.credentials {
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    }
    let s3 = builder.build();
    let sweeper = tokio::spawn(crate::lifecycle::run(
        store,
        cfg.lifecycle_day,
        cfg.sweep_interval,
    ));

    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "S3 accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let s3 = s3.clone();
                let service = service_fn(move |mut req: http::Request<Incoming>| {
                    if !verify {
                        strip_signature(&mut req);
                    }
                    hyper::service::Service::call(&s3, req)
                });
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "S3 connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    sweeper.abort();
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("S3 requests did not finish in time");
    }
    Ok(())
}
