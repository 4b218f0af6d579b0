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
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::auth::{PlatformAuth, with_default_message};
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

/// An opened store with its S3 service, ready to serve.
pub struct S3Server {
    store: Arc<Store>,
    s3: s3s::service::S3Service,
    verify: bool,
    cfg: S3Config,
}

impl S3Server {
    /// Opens the store under `<data_dir>/s3` (removing interrupted writes, loading the index).
    pub async fn open(cfg: S3Config) -> Result<Self, S3Error> {
        let root = cfg.data_dir.join("s3");
        let path = root.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await?
            .map_err(|source| S3Error::Open { path: root, source })?;
        let store = Arc::new(store);
        let mut builder = S3ServiceBuilder::new(Service::new(store.clone(), cfg.region.clone()));
        let verify = cfg.credentials.is_some();
        if let Some((access_key, secret_key)) = &cfg.credentials {
            builder.set_auth(PlatformAuth::new(access_key.clone(), secret_key.clone()));
        }
        Ok(Self {
            store,
            s3: builder.build(),
            verify,
            cfg,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish
    /// (up to 30 s). The lifecycle sweeper runs meanwhile.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Self {
            store,
            s3,
            verify,
            cfg,
        } = self;
        let sweeper = tokio::spawn(crate::lifecycle::run(
            store.clone(),
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
                    let (s3, store) = (s3.clone(), store.clone());
                    let service = service_fn(move |mut req: http::Request<Incoming>| {
                        let (s3, store) = (s3.clone(), store.clone());
                        async move {
                            if crate::cors::is_preflight(&req) {
                                return Ok(crate::cors::preflight(&store, &req));
                            }
                            if !verify {
                                strip_signature(&mut req);
                            }
                            let cross_origin = crate::cors::CrossOrigin::of(&req);
                            let mut resp = hyper::service::Service::call(&s3, req).await?;
                            if resp.status().is_client_error()
                                && let Some(fixed) =
                                    resp.body().bytes().as_ref().and_then(with_default_message)
                            {
                                resp.headers_mut().remove(http::header::CONTENT_LENGTH);
                                *resp.body_mut() = s3s::Body::from(fixed);
                            }
                            if let Some(c) = cross_origin {
                                c.decorate(&store, resp.headers_mut());
                            }
                            Ok::<_, s3s::HttpError>(resp)
                        }
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
    }
}

/// Opens the store and serves S3 on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    cfg: S3Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), S3Error> {
    S3Server::open(cfg).await?.serve(listener, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_stripped_and_other_parameters_kept() {
        let mut req = http::Request::get(
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&partNumber=1&X-Amz-Signature=ab&uploadId=u",
        )
        .header("authorization", "AWS4-HMAC-SHA256 ...")
        .body(())
        .unwrap();
        strip_signature(&mut req);
        assert_eq!(req.uri(), "/b/k?partNumber=1&uploadId=u");
        assert!(req.headers().get("authorization").is_none());
        let mut req = http::Request::get("/b/k?AWSAccessKeyId=x&Signature=y&Expires=1")
            .body(())
            .unwrap();
        strip_signature(&mut req);
        assert_eq!(req.uri(), "/b/k");
    }
}
