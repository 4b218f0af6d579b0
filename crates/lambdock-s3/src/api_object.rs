//! PutObject, GetObject (ranges), HeadObject, DeleteObjects and CopyObject.

use std::collections::BTreeMap;

use base64::Engine;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Response, S3Result};

use crate::error::StoreError;
use crate::object::{self, ObjectMeta, StoredHeaders, Writer};
use crate::service::{Service, blocking, timestamp};

/// User metadata as stored (sorted, stable on disk).
pub(crate) fn stored_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

fn metadata_out(m: &BTreeMap<String, String>) -> Option<Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Streams a request body into a sealed temporary object, checking Content-MD5.
pub(crate) async fn receive(
    svc: &Service,
    body: Option<StreamingBlob>,
    content_md5: Option<&str>,
    meta: ObjectMeta,
) -> S3Result<object::Sealed> {
    let mut writer = Writer::create(svc.store.tmp_dir()).await?;
    if let Some(body) = body {
        writer.write_stream(body).await?;
    }
    if let Some(expected) = content_md5 {
        let got = base64::engine::general_purpose::STANDARD.encode(writer.md5());
        if got != expected.trim() {
            return Err(StoreError::BadDigest.into());
        }
    }
    Ok(writer.finish(meta).await?)
}

pub(crate) async fn put_object(
    svc: &Service,
    input: PutObjectInput,
) -> S3Result<S3Response<PutObjectOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let meta = ObjectMeta {
        key: input.key,
        last_modified_ms: object::now_ms(),
        headers: StoredHeaders {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
        },
        metadata: stored_metadata(input.metadata),
        ..Default::default()
    };
    let sealed = receive(svc, input.body, input.content_md5.as_deref(), meta).await?;
    let store = svc.store.clone();
    let meta = blocking(move || store.commit(&bucket, sealed)).await?;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(meta.etag)),
        ..Default::default()
    }))
}

pub(crate) async fn get_object(
    svc: &Service,
    input: GetObjectInput,
) -> S3Result<S3Response<GetObjectOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let store = svc.store.clone();
    let key = input.key;
    let (file, meta) = blocking(move || store.open_object(&bucket, &key)).await?;
    let (range, content_range) = match input.range {
        None => (0..meta.size, None),
        Some(r) => {
            let range = r.check(meta.size)?;
            let cr = format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
            (range, Some(cr))
        }
    };
    let length = i64::try_from(range.end - range.start).unwrap_or(i64::MAX);
    let body = StreamingBlob::wrap(object::read_stream(file, range));
    let h = meta.headers;
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body),
        accept_ranges: Some("bytes".into()),
        content_length: Some(length),
        content_range,
        content_type: h.content_type,
        content_encoding: h.content_encoding,
        content_disposition: h.content_disposition,
        content_language: h.content_language,
        cache_control: h.cache_control,
        e_tag: Some(ETag::Strong(meta.etag)),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        metadata: metadata_out(&meta.metadata),
        ..Default::default()
    }))
}

pub(crate) async fn head_object(
    svc: &Service,
    input: HeadObjectInput,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let store = svc.store.clone();
    let key = input.key;
    let (_, meta) = blocking(move || store.open_object(&bucket, &key)).await?;
    let (length, content_range) = match input.range {
        None => (meta.size, None),
        Some(r) => {
            let range = r.check(meta.size)?;
            let cr = format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
            (range.end - range.start, Some(cr))
        }
    };
    let h = meta.headers;
    Ok(S3Response::new(HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
        content_range,
        content_type: h.content_type,
        content_encoding: h.content_encoding,
        content_disposition: h.content_disposition,
        content_language: h.content_language,
        cache_control: h.cache_control,
        e_tag: Some(ETag::Strong(meta.etag)),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        metadata: metadata_out(&meta.metadata),
        ..Default::default()
    }))
}

pub(crate) async fn delete_objects(
    svc: &Service,
    input: DeleteObjectsInput,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    if input.delete.objects.len() > 1000 {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let store = svc.store.clone();
    let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
    let (deleted, errors) = blocking(move || {
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for key in keys {
            match store.delete_object(&bucket, &key) {
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(key),
                    ..Default::default()
                }),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "DeleteObjects entry failed");
                    errors.push(Error {
                        code: Some("InternalError".into()),
                        key: Some(key),
                        message: Some(e.to_string()),
                        ..Default::default()
                    })
                }
            }
        }
        Ok((deleted, errors))
    })
    .await?;
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!quiet).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(crate) async fn copy_object(
    svc: &Service,
    input: CopyObjectInput,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let (src_bucket, src_key) = match &input.copy_source {
        CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "Copying from an access point is not supported",
            ));
        }
    };
    let src = svc.store.bucket(&src_bucket)?;
    let dst = svc.store.bucket(&input.bucket)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if src_bucket == input.bucket && src_key == input.key && !replace {
        return Err(StoreError::InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.".into(),
        )
        .into());
    }
    let store = svc.store.clone();
    let (file, src_meta) = blocking(move || store.open_object(&src, &src_key)).await?;
    let (headers, metadata) = if replace {
        (
            StoredHeaders {
                content_type: input.content_type,
                content_encoding: input.content_encoding,
                content_disposition: input.content_disposition,
                content_language: input.content_language,
                cache_control: input.cache_control,
            },
            stored_metadata(input.metadata),
        )
    } else {
        (src_meta.headers, src_meta.metadata)
    };
    let mut writer = Writer::create(svc.store.tmp_dir()).await?;
    writer
        .write_stream(Box::pin(object::read_stream(file, 0..src_meta.size)))
        .await?;
    let sealed = writer
        .finish(ObjectMeta {
            key: input.key,
            last_modified_ms: object::now_ms(),
            headers,
            metadata,
            ..Default::default()
        })
        .await?;
    let store = svc.store.clone();
    let meta = blocking(move || store.commit(&dst, sealed)).await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(meta.etag)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
