//! The provisioner: the S3 buckets and DynamoDB tables of a deployment, created on whichever S3
//! and DynamoDB endpoints are configured (the embedded ones of `lambdock up`, or RustFS, MinIO,
//! ScyllaDB Alternator, AWS) with the AWS SDK for Rust, so any store that speaks the wire
//! protocols works.
//!
//! It is idempotent: a second run against the same manifest changes nothing. Bucket settings
//! (lifecycle, CORS) are brought to what the manifest says. A table whose key schema, indexes or
//! billing differ from the manifest is reported, never dropped and recreated: that would lose
//! its items, and CloudFormation itself replaces such tables only with a new name.

mod buckets;
mod tables;

use aws_sdk_dynamodb::config::{Credentials, Region};
use lambdock_template::manifest::Manifest;

/// Where the stores are and how to sign for them.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// S3 endpoint URL.
    pub s3: String,
    /// DynamoDB endpoint URL.
    pub dynamodb: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It did not exist and was created.
    Created,
    /// It already was as the manifest says.
    Unchanged,
    /// It existed; these settings were brought to the manifest's.
    Updated(Vec<String>),
    /// It exists with a definition that differs in ways that cannot be changed in place; it
    /// was left as it is.
    Differs(Vec<String>),
}

/// One resource's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `bucket` or `table`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// What happened.
    pub change: Change,
}

/// A store refused or could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name}: {action}: {message}")]
pub struct ProvisionError {
    /// `bucket` or `table`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// What was being done.
    pub action: &'static str,
    /// The store's answer.
    pub message: String,
}

/// Clients for both stores.
pub struct Provisioner {
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    region: String,
}

impl Provisioner {
    /// Clients for `endpoints`, with static credentials.
    pub fn new(endpoints: &Endpoints) -> Provisioner {
        let credentials = Credentials::new(
            &endpoints.access_key,
            &endpoints.secret_key,
            None,
            None,
            "lambdock",
        );
        let region = Region::new(endpoints.region.clone());
        let s3 = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .credentials_provider(credentials.clone())
            .region(region.clone())
            .endpoint_url(&endpoints.s3)
            // Embedded stores and MinIO have no per-bucket DNS names.
            .force_path_style(true)
            .build();
        let dynamodb = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .credentials_provider(credentials)
            .region(region)
            .endpoint_url(&endpoints.dynamodb)
            .build();
        Provisioner {
            s3: aws_sdk_s3::Client::from_conf(s3),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            region: endpoints.region.clone(),
        }
    }

    /// Brings every bucket and table of `manifest` into being; `progress` hears about each
    /// resource before it is worked on.
    pub async fn provision(
        &self,
        manifest: &Manifest,
        mut progress: impl FnMut(&str, &str),
    ) -> Result<Vec<Outcome>, ProvisionError> {
        let mut outcomes = Vec::new();
        for (name, bucket) in &manifest.buckets {
            progress("bucket", name);
            let change = buckets::provision(&self.s3, &self.region, name, bucket).await?;
            tracing::info!(bucket = name, ?change, "provisioned");
            outcomes.push(Outcome {
                kind: "bucket",
                name: name.clone(),
                change,
            });
        }
        for (name, table) in &manifest.tables {
            progress("table", name);
            let change = tables::provision(&self.dynamodb, name, table).await?;
            tracing::info!(table = name, ?change, "provisioned");
            outcomes.push(Outcome {
                kind: "table",
                name: name.clone(),
                change,
            });
        }
        Ok(outcomes)
    }
}

/// The text of an SDK error: the service's code and message when it answered.
fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => {
            let err = s.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("")
            )
        }
        other => {
            // Connection failures: the chain says which endpoint and why.
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// The service's error code, when it answered.
fn code<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}
