//! Serving the agent: gRPC (plain on loopback, TLS or mutual TLS elsewhere) and Prometheus
//! metrics on a separate HTTP listener.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use lambdock_proto::MAX_MESSAGE_BYTES;
use lambdock_proto::agent::agent_server::AgentServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::metrics::Metrics;
use crate::service::AgentService;

/// TLS material.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA that client certificates must chain to; mutual TLS when set.
    pub client_ca: Option<PathBuf>,
}

/// How the agent listens.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// gRPC address.
    pub listen: SocketAddr,
    /// Metrics address (`/metrics`).
    pub metrics_listen: Option<SocketAddr>,
    /// TLS; plain text when `None`.
    pub tls: Option<TlsFiles>,
    /// Allow plain text on a non-loopback address.
    pub allow_plaintext: bool,
}

/// The agent cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Plain text asked on a routable address.
    #[error(
        "refusing plain-text gRPC on {0}: workers and payloads would cross the network unprotected; pass --tls-cert/--tls-key (and --tls-client-ca for mutual TLS), listen on loopback, or pass --allow-plaintext"
    )]
    PlaintextRefused(SocketAddr),
    /// A TLS file cannot be read.
    #[error("reading {path}: {source}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("serving on {addr}: {source}")]
    Transport {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: tonic::transport::Error,
    },
    /// A listener could not be opened.
    #[error("listening on {addr}: {source}")]
    Metrics {
        /// Address.
        addr: SocketAddr,
        /// Error.
        source: std::io::Error,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::Tls {
        path: path.clone(),
        source,
    })
}

/// Makes ring the process's TLS provider. rustls cannot choose on its own when a binary holds
/// two (tonic brings ring, the AWS SDK of the provisioner aws-lc-rs), and panics instead.
pub fn install_tls_provider() {
    // Err means a provider is installed already, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serves until `shutdown` completes.
pub async fn serve(
    service: AgentService,
    metrics: Arc<Metrics>,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let mut builder = Server::builder();
    match &opts.tls {
        Some(tls) => {
            install_tls_provider();
            let mut config = ServerTlsConfig::new()
                .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
            if let Some(ca) = &tls.client_ca {
                config = config.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            builder = builder
                .tls_config(config)
                .map_err(|source| ServeError::Transport {
                    addr: opts.listen,
                    source,
                })?;
        }
        None if !opts.listen.ip().is_loopback() && !opts.allow_plaintext => {
            return Err(ServeError::PlaintextRefused(opts.listen));
        }
        None => {}
    }
    if let Some(addr) = opts.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Metrics { addr, source })?;
        tokio::spawn(serve_metrics(listener, metrics));
    }
    let incoming = TcpIncoming::bind(opts.listen)
        .map_err(|source| ServeError::Metrics {
            addr: opts.listen,
            source,
        })?
        .with_nodelay(Some(true));
    let grpc = AgentServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    builder
        .add_service(grpc)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| ServeError::Transport {
            addr: opts.listen,
            source,
        })
}

/// Serves plain-text gRPC on an already bound loopback listener (the agent inside `lambdock
/// up`), until `shutdown` completes.
pub async fn serve_local(
    service: AgentService,
    incoming: TcpIncoming,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let grpc = AgentServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Server::builder()
        .add_service(grpc)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            http::Response::builder()
                                .header(
                                    "content-type",
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(Full::new(Bytes::from(metrics.encode())))
                        } else {
                            http::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"not found\n")))
                        };
                        Ok::<_, Infallible>(resp.unwrap_or_default())
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_text_is_refused_off_loopback() {
        let backend: Arc<dyn crate::backend::Backend> = Arc::new(NoWorkers);
        let metrics = Arc::new(Metrics::default());
        let service = AgentService::start(backend, metrics.clone()).await.unwrap();
        let opts = ServeOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            metrics_listen: None,
            tls: None,
            allow_plaintext: false,
        };
        let err = serve(service, metrics, opts, async {}).await.unwrap_err();
        assert!(matches!(err, ServeError::PlaintextRefused(_)), "{err}");
        assert!(err.to_string().contains("--tls-cert"), "{err}");
    }

    /// A backend with nothing on it, for tests of the serving layer.
    struct NoWorkers;

    #[async_trait::async_trait]
    impl crate::backend::Backend for NoWorkers {
        fn name(&self) -> &'static str {
            "none"
        }
        async fn create(
            &self,
            _: &crate::backend::WorkerSpec,
        ) -> Result<crate::backend::WorkerRecord, crate::backend::BackendError> {
            Err(crate::backend::BackendError::Unsupported(
                "no workers here".into(),
            ))
        }
        async fn destroy(
            &self,
            _: &crate::backend::WorkerRecord,
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        async fn pause(
            &self,
            _: &crate::backend::WorkerRecord,
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        async fn resume(
            &self,
            _: &crate::backend::WorkerRecord,
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        async fn status(
            &self,
            _: &crate::backend::WorkerRecord,
        ) -> Result<crate::backend::WorkerStatus, crate::backend::BackendError> {
            Err(crate::backend::BackendError::Unsupported(
                "no workers here".into(),
            ))
        }
        async fn discover(
            &self,
        ) -> Result<Vec<crate::backend::WorkerRecord>, crate::backend::BackendError> {
            Ok(vec![])
        }
        fn logs(&self, _: &crate::backend::WorkerRecord) -> crate::backend::LogSource {
            crate::backend::LogSource::File("/dev/null".into())
        }
    }
}
