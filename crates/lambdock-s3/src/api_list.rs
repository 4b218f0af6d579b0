//! ListObjects (v1) and ListObjectsV2 responses over [`crate::listing`], including
//! `encoding-type=url` (boto3 asks for it on every listing and decodes the answer).

use base64::Engine;
use s3s::dto::*;
use s3s::{S3Response, S3Result};

use crate::error::StoreError;
use crate::listing::{self, Entry, Query};
use crate::object::ObjectMeta;
use crate::service::{Service, timestamp};

const MAX_KEYS: i32 = 1000;

fn max_keys(requested: Option<i32>) -> Result<usize, StoreError> {
    match requested {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(StoreError::InvalidArgument(
            "maxKeys should be non-negative".into(),
        )),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

struct Encoder(bool);

impl Encoder {
    fn new(t: Option<&EncodingType>) -> Self {
        Self(t.is_some_and(|t| t.as_str() == EncodingType::URL))
    }
    fn enc(&self, s: &str) -> String {
        if self.0 {
            listing::url_encode(s)
        } else {
            s.to_string()
        }
    }
    fn opt(&self, s: Option<&str>) -> Option<String> {
        s.map(|s| self.enc(s))
    }
}

fn split(enc: &Encoder, entries: &[Entry<'_, ObjectMeta>]) -> (Vec<Object>, Vec<CommonPrefix>) {
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in entries {
        match e {
            Entry::Key(key, meta) => contents.push(Object {
                key: Some(enc.enc(key)),
                e_tag: Some(ETag::Strong(meta.etag.clone())),
                last_modified: Some(timestamp(meta.last_modified_ms)),
                size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            }),
            Entry::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc.enc(p)),
            }),
        }
    }
    (contents, prefixes)
}

pub(crate) fn list_objects(
    svc: &Service,
    input: ListObjectsInput,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let enc = Encoder::new(input.encoding_type.as_ref());
    let prefix = input.prefix.clone().unwrap_or_default();
    let q = Query {
        prefix: &prefix,
        delimiter: input.delimiter.as_deref(),
        after: input.marker.as_deref().filter(|m| !m.is_empty()),
        max: max_keys(input.max_keys)?,
    };
    let out = bucket.with_objects(|objects| {
        let page = listing::list(objects, &q);
        let (contents, prefixes) = split(&enc, &page.entries);
        ListObjectsOutput {
            name: Some(input.bucket.clone()),
            prefix: Some(enc.enc(&prefix)),
            marker: Some(enc.enc(input.marker.as_deref().unwrap_or(""))),
            // S3 returns NextMarker only with a delimiter; without one the client resumes
            // after the last key.
            next_marker: q.delimiter.and_then(|_| enc.opt(page.next())),
            max_keys: Some(q.max as i32),
            delimiter: enc.opt(q.delimiter),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        }
    })?;
    Ok(S3Response::new(out))
}

fn token_decode(token: &str) -> Result<String, StoreError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            StoreError::InvalidArgument("The continuation token provided is incorrect".into())
        })
}

pub(crate) fn list_objects_v2(
    svc: &Service,
    input: ListObjectsV2Input,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let bucket = svc.store.bucket(&input.bucket)?;
    let enc = Encoder::new(input.encoding_type.as_ref());
    let prefix = input.prefix.clone().unwrap_or_default();
    let token = input
        .continuation_token
        .as_deref()
        .map(token_decode)
        .transpose()?;
    // The continuation token wins over StartAfter (it is always later).
    let after = token
        .as_deref()
        .or(input.start_after.as_deref())
        .filter(|a| !a.is_empty());
    let q = Query {
        prefix: &prefix,
        delimiter: input.delimiter.as_deref(),
        after,
        max: max_keys(input.max_keys)?,
    };
    let out = bucket.with_objects(|objects| {
        let page = listing::list(objects, &q);
        let (contents, prefixes) = split(&enc, &page.entries);
        ListObjectsV2Output {
            name: Some(input.bucket.clone()),
            prefix: Some(enc.enc(&prefix)),
            max_keys: Some(q.max as i32),
            key_count: Some(page.entries.len() as i32),
            continuation_token: input.continuation_token.clone(),
            next_continuation_token: page
                .next()
                .map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
            is_truncated: Some(page.truncated),
            contents: Some(contents),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            delimiter: enc.opt(q.delimiter),
            start_after: enc.opt(input.start_after.as_deref()),
            encoding_type: input.encoding_type.clone(),
            ..Default::default()
        }
    })?;
    Ok(S3Response::new(out))
}
