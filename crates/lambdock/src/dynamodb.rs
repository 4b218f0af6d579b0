//! DynamoDB for `lambdock up`: the embedded store, or an external endpoint when one is
//! configured; either way functions get its URL in `AWS_ENDPOINT_URL_DYNAMODB`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use lambdock_dynamodb::{DynamoArgs, DynamoConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The running embedded store (if any) and the endpoint functions use.
pub struct DynamoDb {
    /// The URL functions and clients use.
    pub endpoint: String,
    embedded: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl DynamoDb {
    /// Starts the embedded store on `host:args.dynamodb_port` unless `args` names an external
    /// endpoint. The listener is bound before this returns, so the store is reachable when `up`
    /// prints "ready".
    pub async fn start(
        args: &DynamoArgs,
        host: IpAddr,
        data_dir: &Path,
        region: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        if let Some(endpoint) = &args.dynamodb_endpoint {
            return Ok(DynamoDb {
                endpoint: endpoint.clone(),
                embedded: None,
            });
        }
        let addr = SocketAddr::new(host, args.dynamodb_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listening on {addr} (DynamoDB): {e}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let mut cfg = DynamoConfig::new(data_dir, region, credentials);
        cfg.ttl_sweep_every = std::time::Duration::try_from_secs_f64(args.dynamodb_ttl_sweep)
            .map_err(|e| format!("--dynamodb-ttl-sweep: {e}"))?;
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = lambdock_dynamodb::serve(listener, cfg, shutdown).await {
                tracing::error!(error = %e, "the embedded DynamoDB stopped");
            }
        });
        Ok(DynamoDb {
            endpoint: format!("http://{addr}"),
            embedded: Some((stop, task)),
        })
    }

    /// The banner line.
    pub fn banner(&self) -> String {
        let kind = if self.embedded.is_some() {
            "embedded"
        } else {
            "external"
        };
        format!("  DynamoDB endpoint ({kind}): {}", self.endpoint)
    }

    /// Stops the embedded store (in-flight requests finish, a final snapshot is written).
    pub async fn stop(self) {
        if let Some((stop, task)) = self.embedded {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}
