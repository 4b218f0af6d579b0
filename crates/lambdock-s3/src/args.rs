//! The `lambdock up` options of the S3 endpoint, flattened into `UpArgs`.

use std::time::Duration;

use clap::Args;

/// S3 options of `lambdock up`.
#[derive(Args, Debug, Clone)]
pub struct S3Args {
    /// Port of the embedded S3 endpoint.
    #[arg(long, env = "LAMBDOCK_S3_PORT", default_value_t = 9000)]
    pub s3_port: u16,
    /// Use this external S3 (MinIO, RustFS, AWS…) instead of the embedded one, which is then
    /// not started; functions get it as AWS_ENDPOINT_URL_S3.
    #[arg(long, env = "LAMBDOCK_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Seconds in a lifecycle-rule "day" of the embedded S3 (shorten to test expiration).
    #[arg(long, env = "LAMBDOCK_S3_LIFECYCLE_DAY", default_value_t = 86400.0)]
    pub s3_lifecycle_day: f64,
    /// Seconds between two applications of the embedded S3's lifecycle rules.
    #[arg(long, env = "LAMBDOCK_S3_SWEEP_INTERVAL", default_value_t = 60.0)]
    pub s3_sweep_interval: f64,
}

impl S3Args {
    /// The lifecycle day as a duration (a non-positive or invalid value means one second).
    pub fn lifecycle_day(&self) -> Duration {
        Duration::try_from_secs_f64(self.s3_lifecycle_day)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1))
    }

    /// The sweep interval as a duration (a non-positive or invalid value means one second).
    pub fn sweep_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.s3_sweep_interval)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1))
    }
}
