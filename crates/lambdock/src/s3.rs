//! The S3 endpoint of `lambdock up`: the embedded one, or an external one when configured.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use lambdock_s3::S3Config;
use lambdock_s3::args::S3Args;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running embedded S3 (absent when an external endpoint is used).
pub struct S3 {
    /// The URL functions and users reach S3 at.
    pub endpoint: String,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl S3 {
    /// Starts the embedded S3 on `host:--s3-port`, unless `--s3-endpoint` names another one.
    pub async fn start(
        args: &S3Args,
        host: IpAddr,
        data_dir: &Path,
        region: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        if let Some(endpoint) = &args.s3_endpoint {
            return Ok(Self {
                endpoint: endpoint.clone(),
                running: None,
            });
        }
        let addr = SocketAddr::new(host, args.s3_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("S3: listening on {addr}: {e}"))?;
        let cfg = S3Config {
            data_dir: data_dir.to_path_buf(),
            region: region.to_string(),
            credentials,
            lifecycle_day: args.lifecycle_day(),
            sweep_interval: args.sweep_interval(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = lambdock_s3::serve(listener, cfg, shutdown).await {
                tracing::error!(error = %e, "the embedded S3 stopped");
                eprintln!("lambdock: embedded S3: {e}");
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            running: Some((stop, task)),
        })
    }

    /// Stops the embedded S3 after its in-flight requests.
    pub async fn stop(self) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}
