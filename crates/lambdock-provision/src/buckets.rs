//! Buckets: created when missing; lifecycle rules and CORS rules brought to the manifest's.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CorsConfiguration, CorsRule, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule as SdkLifecycleRule, LifecycleRuleFilter,
};
use lambdock_template::manifest::{Bucket, BucketCorsRule, LifecycleRule};

use crate::{Change, ProvisionError, code, describe};

fn error(name: &str, action: &'static str, message: String) -> ProvisionError {
    ProvisionError {
        kind: "bucket",
        name: name.to_string(),
        action,
        message,
    }
}

/// Creates or updates one bucket.
pub(crate) async fn provision(
    s3: &Client,
    region: &str,
    name: &str,
    bucket: &Bucket,
) -> Result<Change, ProvisionError> {
    let exists = match s3.head_bucket().bucket(name).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(e) => return Err(error(name, "checking it", describe(&e))),
    };
    if !exists {
        let mut create = s3.create_bucket().bucket(name);
        // us-east-1 is the one region that refuses its own name as a location constraint.
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(|e| error(name, "creating it", describe(&e)))?;
    }
    let mut updated = Vec::new();
    if lifecycle(s3, name).await? != bucket.lifecycle_rules {
        set_lifecycle(s3, name, &bucket.lifecycle_rules).await?;
        updated.push("lifecycle rules".to_string());
    }
    if cors(s3, name).await? != bucket.cors_rules {
        set_cors(s3, name, &bucket.cors_rules).await?;
        updated.push("CORS rules".to_string());
    }
    Ok(match (exists, updated.is_empty()) {
        (false, _) => Change::Created,
        (true, true) => Change::Unchanged,
        (true, false) => Change::Updated(updated),
    })
}

async fn lifecycle(s3: &Client, name: &str) -> Result<Vec<LifecycleRule>, ProvisionError> {
    match s3
        .get_bucket_lifecycle_configuration()
        .bucket(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.rules().iter().map(from_sdk_lifecycle).collect()),
        Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(error(name, "reading its lifecycle rules", describe(&e))),
    }
}

fn from_sdk_lifecycle(rule: &SdkLifecycleRule) -> LifecycleRule {
    LifecycleRule {
        id: rule.id().map(str::to_string),
        enabled: rule.status() == &ExpirationStatus::Enabled,
        prefix: rule
            .filter()
            .and_then(|f| f.prefix())
            .or(
                #[allow(deprecated)]
                rule.prefix(),
            )
            .unwrap_or_default()
            .to_string(),
        expiration_days: rule
            .expiration()
            .and_then(|e| e.days())
            .and_then(|d| u32::try_from(d).ok()),
        abort_incomplete_multipart_days: rule
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation())
            .and_then(|d| u32::try_from(d).ok()),
    }
}

async fn set_lifecycle(
    s3: &Client,
    name: &str,
    rules: &[LifecycleRule],
) -> Result<(), ProvisionError> {
    if rules.is_empty() {
        s3.delete_bucket_lifecycle()
            .bucket(name)
            .send()
            .await
            .map_err(|e| error(name, "removing its lifecycle rules", describe(&e)))?;
        return Ok(());
    }
    let invalid = |e: aws_sdk_s3::error::BuildError| error(name, "a lifecycle rule", e.to_string());
    let mut sdk_rules = Vec::new();
    for rule in rules {
        let mut b = SdkLifecycleRule::builder()
            .set_id(rule.id.clone())
            .status(if rule.enabled {
                ExpirationStatus::Enabled
            } else {
                ExpirationStatus::Disabled
            })
            .filter(LifecycleRuleFilter::builder().prefix(&rule.prefix).build());
        if let Some(days) = rule.expiration_days {
            b = b.expiration(LifecycleExpiration::builder().days(days as i32).build());
        }
        if let Some(days) = rule.abort_incomplete_multipart_days {
            b = b.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days as i32)
                    .build(),
            );
        }
        sdk_rules.push(b.build().map_err(invalid)?);
    }
    let config = BucketLifecycleConfiguration::builder()
        .set_rules(Some(sdk_rules))
        .build()
        .map_err(invalid)?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(config)
        .send()
        .await
        .map_err(|e| error(name, "setting its lifecycle rules", describe(&e)))?;
    Ok(())
}

async fn cors(s3: &Client, name: &str) -> Result<Vec<BucketCorsRule>, ProvisionError> {
    match s3.get_bucket_cors().bucket(name).send().await {
        Ok(out) => Ok(out
            .cors_rules()
            .iter()
            .map(|r| BucketCorsRule {
                allowed_origins: r.allowed_origins().to_vec(),
                allowed_methods: r.allowed_methods().to_vec(),
                allowed_headers: r.allowed_headers().to_vec(),
                exposed_headers: r.expose_headers().to_vec(),
                max_age_s: r.max_age_seconds().and_then(|s| u32::try_from(s).ok()),
            })
            .collect()),
        Err(e) if code(&e) == Some("NoSuchCORSConfiguration") => Ok(Vec::new()),
        Err(e) => Err(error(name, "reading its CORS rules", describe(&e))),
    }
}

async fn set_cors(s3: &Client, name: &str, rules: &[BucketCorsRule]) -> Result<(), ProvisionError> {
    if rules.is_empty() {
        s3.delete_bucket_cors()
            .bucket(name)
            .send()
            .await
            .map_err(|e| error(name, "removing its CORS rules", describe(&e)))?;
        return Ok(());
    }
    let invalid = |e: aws_sdk_s3::error::BuildError| error(name, "a CORS rule", e.to_string());
    let mut sdk_rules = Vec::new();
    for r in rules {
        sdk_rules.push(
            CorsRule::builder()
                .set_allowed_origins(Some(r.allowed_origins.clone()))
                .set_allowed_methods(Some(r.allowed_methods.clone()))
                .set_allowed_headers(Some(r.allowed_headers.clone()).filter(|v| !v.is_empty()))
                .set_expose_headers(Some(r.exposed_headers.clone()).filter(|v| !v.is_empty()))
                .set_max_age_seconds(r.max_age_s.map(|s| s as i32))
                .build()
                .map_err(invalid)?,
        );
    }
    let config = CorsConfiguration::builder()
        .set_cors_rules(Some(sdk_rules))
        .build()
        .map_err(invalid)?;
    s3.put_bucket_cors()
        .bucket(name)
        .cors_configuration(config)
        .send()
        .await
        .map_err(|e| error(name, "setting its CORS rules", describe(&e)))?;
    Ok(())
}
