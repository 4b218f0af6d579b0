//! The `lambdock up` options for DynamoDB, kept here so `up` only flattens them in.

/// Where functions find DynamoDB.
#[derive(Debug, Clone, clap::Args)]
pub struct DynamoArgs {
    /// Port of the embedded DynamoDB (loopback and the host's addresses, like the gateway).
    #[arg(long, env = "LAMBDOCK_DYNAMODB_PORT", default_value_t = 8000)]
    pub dynamodb_port: u16,
    /// Use this DynamoDB endpoint (ScyllaDB Alternator, AWS, …) instead of the embedded one,
    /// which is then not started.
    #[arg(long, env = "LAMBDOCK_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Seconds between two sweeps for expired (TTL) items of the embedded store.
    #[arg(long, env = "LAMBDOCK_DYNAMODB_TTL_SWEEP", default_value_t = 60.0)]
    pub dynamodb_ttl_sweep: f64,
}
