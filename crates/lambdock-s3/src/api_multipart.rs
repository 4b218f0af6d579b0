//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload, ListParts and
//! ListMultipartUploads over [`crate::multipart`].

use s3s::dto::*;
use s3s::{S3Response, S3Result};

use crate::api_object::{receive, stored_metadata};
use crate::error::StoreError;
use crate::multipart::check_part_number;
use crate::object::{self, ObjectMeta, StoredHeaders};
use crate::service::{Service, blocking, timestamp};

pub(crate) async fn create(
    svc: &Service,
    input: CreateMultipartUploadInput,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let headers = StoredHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
    };
    let metadata = stored_metadata(input.metadata);
    let store = svc.store.clone();
    let key = input.key.clone();
    let upload = blocking(move || store.create_upload(&bucket, &key, headers, metadata)).await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    svc: &Service,
    input: UploadPartInput,
) -> S3Result<S3Response<UploadPartOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    check_part_number(input.part_number)?;
    let store = svc.store.clone();
    let (b, id, key) = (bucket.clone(), input.upload_id.clone(), input.key.clone());
    let upload = blocking(move || store.upload(&b, &id, Some(&key))).await?;
    let meta = ObjectMeta {
        key: input.key,
        last_modified_ms: object::now_ms(),
        ..Default::default()
    };
    let sealed = receive(svc, input.body, input.content_md5.as_deref(), meta).await?;
    let store = svc.store.clone();
    let number = input.part_number;
    let etag = blocking(move || store.commit_part(&bucket, &upload, number, sealed)).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

pub(crate) async fn complete(
    svc: &Service,
    input: CompleteMultipartUploadInput,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let store = svc.store.clone();
    let (b, id, key) = (bucket.clone(), input.upload_id.clone(), input.key.clone());
    let upload = blocking(move || store.upload(&b, &id, Some(&key))).await?;
    let mut requested = Vec::new();
    for part in input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default()
    {
        let (Some(number), Some(etag)) = (part.part_number, part.e_tag) else {
            return Err(StoreError::InvalidPart.into());
        };
        requested.push((number, etag.into_value()));
    }
    let meta = svc
        .store
        .complete_upload(&bucket, &upload, &requested)
        .await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(meta.etag)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    }))
}

pub(crate) async fn list_parts(
    svc: &Service,
    input: ListPartsInput,
) -> S3Result<S3Response<ListPartsOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let store = svc.store.clone();
    let (id, key) = (input.upload_id.clone(), input.key.clone());
    let parts = blocking(move || {
        let upload = store.upload(&bucket, &id, Some(&key))?;
        store.parts(&bucket, &upload)
    })
    .await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0);
    let mut after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    after.truncate(max);
    let next = after.last().map(|p| p.number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        is_truncated: Some(truncated),
        parts: Some(
            after
                .into_iter()
                .map(|p| Part {
                    part_number: Some(p.number),
                    e_tag: Some(ETag::Strong(p.etag)),
                    size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    svc: &Service,
    input: ListMultipartUploadsInput,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let store = svc.store.clone();
    let uploads = blocking(move || store.uploads(&bucket)).await?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let mut selected: Vec<_> = uploads
        .into_iter()
        .filter(|u| u.key.starts_with(&prefix))
        .filter(|u| key_marker.is_empty() || u.key > key_marker)
        .collect();
    let truncated = selected.len() > max;
    selected.truncate(max);
    let next_key = truncated
        .then(|| selected.last().map(|u| u.key.clone()))
        .flatten();
    let next_id = truncated
        .then(|| selected.last().map(|u| u.id.clone()))
        .flatten();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(prefix),
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(
            selected
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.id),
                    initiated: Some(timestamp(u.initiated_ms)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
