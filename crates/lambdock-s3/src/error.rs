//! Storage errors, and how each one looks on the wire (S3's error codes).

use s3s::{S3Error, S3ErrorCode};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket does not exist.
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    /// The key does not exist.
    #[error("The specified key does not exist.")]
    NoSuchKey,
    /// The caller already owns the bucket.
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    /// DeleteBucket of a bucket with objects.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// The multipart upload does not exist (or was completed or aborted).
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    /// A part named by CompleteMultipartUpload is missing or its ETag differs.
    #[error(
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
    )]
    InvalidPart,
    /// Parts of CompleteMultipartUpload not in ascending order.
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    /// A part other than the last is under 5 MiB.
    #[error("Your proposed upload is smaller than the minimum allowed size")]
    EntityTooSmall,
    /// Content-MD5 did not match the body.
    #[error("The Content-MD5 you specified did not match what we received.")]
    BadDigest,
    /// A request argument S3 refuses.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request S3 refuses as a whole.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request body stream failed (client went away).
    #[error("reading the request body: {0}")]
    Body(String),
    /// A stored file is unreadable.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The filesystem failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            StoreError::NoSuchKey => S3ErrorCode::NoSuchKey,
            StoreError::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
            StoreError::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            StoreError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            StoreError::InvalidPart => S3ErrorCode::InvalidPart,
            StoreError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            StoreError::EntityTooSmall => S3ErrorCode::EntityTooSmall,
            StoreError::BadDigest => S3ErrorCode::BadDigest,
            StoreError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            StoreError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
            StoreError::Body(_) => S3ErrorCode::IncompleteBody,
            StoreError::Corrupt(_) | StoreError::Io(_) => {
                tracing::error!(error = %e, "S3 storage failure");
                S3ErrorCode::InternalError
            }
        };
        S3Error::with_message(code, e.to_string())
    }
}
