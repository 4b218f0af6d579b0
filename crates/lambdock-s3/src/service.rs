//! The `s3s::S3` implementation: maps S3 operations onto the [`Store`]. Bucket and
//! configuration operations are here; object, listing and multipart operations delegate to
//! their modules to keep each one readable.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::error::StoreError;
use crate::store::Store;
use crate::{api_list, api_multipart, api_object};

/// The S3 service over a store.
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) store: Arc<Store>,
    region: String,
}

impl Service {
    /// A service over `store`, in `region`.
    pub fn new(store: Arc<Store>, region: String) -> Self {
        Self { store, region }
    }
}

/// Runs blocking filesystem work off the reactor.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> S3Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(S3Error::from),
        Err(e) => Err(S3Error::with_message(
            S3ErrorCode::InternalError,
            format!("storage task failed: {e}"),
        )),
    }
}

/// An S3 timestamp from milliseconds since the epoch, in whole seconds: Last-Modified (an
/// HTTP date) has no fraction, and listings must agree with it.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_secs(ms / 1000))
}

#[async_trait::async_trait]
impl S3 for Service {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let store = self.store.clone();
        let name = req.input.bucket;
        let location = format!("/{name}");
        blocking(move || store.create_bucket(&name)).await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(location),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let store = self.store.clone();
        blocking(move || store.delete_bucket(&req.input.bucket)).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.bucket(&req.input.bucket)?;
        // us-east-1 is reported as an empty LocationConstraint, as AWS does.
        let location = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let mut buckets = Vec::new();
        for b in self.store.buckets()? {
            buckets.push(Bucket {
                name: Some(b.name.clone()),
                creation_date: Some(timestamp(b.config()?.created_ms)),
                ..Default::default()
            });
        }
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("lambdock".into()),
                id: Some("lambdock".into()),
            }),
            ..Default::default()
        }))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let rules = req
            .input
            .lifecycle_configuration
            .map(|c| c.rules)
            .unwrap_or_default();
        crate::lifecycle::validate(&rules)?;
        let store = self.store.clone();
        blocking(move || store.update_config(&bucket, |c| c.lifecycle = Some(rules))).await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let rules = bucket.config()?.lifecycle.ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist",
            )
        })?;
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(rules),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let store = self.store.clone();
        blocking(move || store.update_config(&bucket, |c| c.lifecycle = None)).await?;
        Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let rules = req.input.cors_configuration.cors_rules;
        if rules.is_empty() || rules.len() > 100 {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "The CORS configuration must have between 1 and 100 rules",
            ));
        }
        let store = self.store.clone();
        blocking(move || store.update_config(&bucket, |c| c.cors = Some(rules))).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let rules = bucket.config()?.cors.ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::NoSuchCORSConfiguration,
                "The CORS configuration does not exist",
            )
        })?;
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let store = self.store.clone();
        blocking(move || store.update_config(&bucket, |c| c.cors = None)).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        api_object::put_object(self, req.input).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        api_object::get_object(self, req.input).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        api_object::head_object(self, req.input).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let store = self.store.clone();
        blocking(move || store.delete_object(&bucket, &req.input.key)).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        api_object::delete_objects(self, req.input).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        api_object::copy_object(self, req.input).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        api_list::list_objects(self, req.input)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        api_list::list_objects_v2(self, req.input)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        api_multipart::create(self, req.input).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        api_multipart::upload_part(self, req.input).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        api_multipart::complete(self, req.input).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let bucket = self.store.bucket(&req.input.bucket)?;
        let store = self.store.clone();
        blocking(move || store.abort_upload(&bucket, &req.input.upload_id)).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        api_multipart::list_parts(self, req.input).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        api_multipart::list_uploads(self, req.input).await
    }
}
