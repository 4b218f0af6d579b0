//! Multipart uploads: `uploads/<id>/upload.json` plus one file per part (same format as an
//! object). Completion concatenates the parts into a new object file, committed like a PUT,
//! with S3's ETag `hex(md5(md5(part1) || … || md5(partN)))-N`.

use std::path::PathBuf;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::object::{self, ObjectMeta, Sealed, StoredHeaders, Writer};
use crate::store::{Bucket, Store};

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// A multipart upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    /// Its id.
    pub id: String,
    /// The key it will create.
    pub key: String,
    /// Initiated, milliseconds since the epoch.
    pub initiated_ms: u64,
    /// Headers for the final object.
    pub headers: StoredHeaders,
    /// User metadata for the final object.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// An uploaded part.
#[derive(Debug, Clone)]
pub struct PartInfo {
    /// Part number (1–10000).
    pub number: i32,
    /// Its size.
    pub size: u64,
    /// Its ETag (hex MD5).
    pub etag: String,
    /// When it was uploaded, ms since the epoch.
    pub last_modified_ms: u64,
}

fn upload_dir(bucket: &Bucket, id: &str) -> Result<PathBuf, StoreError> {
    // Ids are ours (uuid hex); anything else cannot name an upload and must not name a path.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StoreError::NoSuchUpload);
    }
    Ok(bucket.uploads_dir().join(id))
}

fn part_path(dir: &std::path::Path, number: i32) -> PathBuf {
    dir.join(format!("part-{number:05}"))
}

/// Checks a part number is within S3's 1–10000.
pub fn check_part_number(number: i32) -> Result<(), StoreError> {
    if (1..=10000).contains(&number) {
        Ok(())
    } else {
        Err(StoreError::InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive".into(),
        ))
    }
}

impl Store {
    /// Starts a multipart upload.
    pub fn create_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        headers: StoredHeaders,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> Result<Upload, StoreError> {
        let upload = Upload {
            id: uuid::Uuid::new_v4().simple().to_string(),
            key: key.to_string(),
            initiated_ms: object::now_ms(),
            headers,
            metadata,
        };
        let staging = self.tmp_dir().join(format!("{}.upload", upload.id));
        std::fs::create_dir_all(&staging)?;
        let json = serde_json::to_vec(&upload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        object::write_atomic(self.tmp_dir(), &staging.join("upload.json"), &json)?;
        std::fs::rename(&staging, upload_dir(bucket, &upload.id)?)?;
        object::sync_dir(&bucket.uploads_dir())?;
        Ok(upload)
    }

    /// Reads an upload, checking it belongs to `key` when given.
    pub fn upload(
        &self,
        bucket: &Bucket,
        id: &str,
        key: Option<&str>,
    ) -> Result<Upload, StoreError> {
        let json = match std::fs::read(upload_dir(bucket, id)?.join("upload.json")) {
            Ok(j) => j,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchUpload);
            }
            Err(e) => return Err(e.into()),
        };
        let upload: Upload =
            serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if key.is_some_and(|k| k != upload.key) {
            return Err(StoreError::NoSuchUpload);
        }
        Ok(upload)
    }

    /// Every upload in progress in a bucket, by key then initiation time.
    pub fn uploads(&self, bucket: &Bucket) -> Result<Vec<Upload>, StoreError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(bucket.uploads_dir())? {
            let name = entry?.file_name();
            let Some(id) = name.to_str() else { continue };
            match self.upload(bucket, id, None) {
                Ok(u) => out.push(u),
                Err(StoreError::NoSuchUpload) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (&a.key, a.initiated_ms).cmp(&(&b.key, b.initiated_ms)));
        Ok(out)
    }

    /// Stores a sealed part file under its number (replacing an earlier upload of it).
    pub fn commit_part(
        &self,
        bucket: &Bucket,
        upload: &Upload,
        number: i32,
        sealed: Sealed,
    ) -> Result<String, StoreError> {
        let dir = upload_dir(bucket, &upload.id)?;
        if let Err(e) = std::fs::rename(&sealed.path, part_path(&dir, number)) {
            sealed.discard();
            // The upload was completed or aborted meanwhile.
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NoSuchUpload
            } else {
                e.into()
            });
        }
        object::sync_dir(&dir)?;
        Ok(sealed.meta.etag)
    }

    /// The parts uploaded so far, by number.
    pub fn parts(&self, bucket: &Bucket, upload: &Upload) -> Result<Vec<PartInfo>, StoreError> {
        let dir = upload_dir(bucket, &upload.id)?;
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix("part-"))
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let meta = object::read_meta(&entry.path())?;
            parts.push(PartInfo {
                number,
                size: meta.size,
                etag: meta.etag,
                last_modified_ms: meta.last_modified_ms,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Completes an upload from the listed `(number, etag)` parts and commits the object.
    pub async fn complete_upload(
        &self,
        bucket: &Bucket,
        upload: &Upload,
        requested: &[(i32, String)],
    ) -> Result<ObjectMeta, StoreError> {
        if requested.is_empty() {
            return Err(StoreError::InvalidRequest(
                "You must specify at least one part".into(),
            ));
        }
        if requested.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(StoreError::InvalidPartOrder);
        }
        let stored = self.parts(bucket, upload)?;
        let mut chosen = Vec::with_capacity(requested.len());
        for (i, (number, etag)) in requested.iter().enumerate() {
            let part = stored
                .iter()
                .find(|p| p.number == *number && p.etag == etag.trim_matches('"'))
                .ok_or(StoreError::InvalidPart)?;
            if part.size < MIN_PART_SIZE && i + 1 < requested.len() {
                return Err(StoreError::EntityTooSmall);
            }
            chosen.push(part.clone());
        }
        let dir = upload_dir(bucket, &upload.id)?;
        let mut writer = Writer::create(self.tmp_dir()).await?;
        let mut md5s = Md5::new();
        for part in &chosen {
            let file = std::fs::File::open(part_path(&dir, part.number))?;
            let stream = object::read_stream(file, 0..part.size);
            writer.write_stream(Box::pin(stream)).await?;
            md5s.update(hex::decode(&part.etag).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        let sealed = writer
            .finish(ObjectMeta {
                key: upload.key.clone(),
                etag,
                last_modified_ms: object::now_ms(),
                headers: upload.headers.clone(),
                metadata: upload.metadata.clone(),
                size: 0,
            })
            .await?;
        let meta = self.commit(bucket, sealed)?;
        // A crash here leaves the upload listed; the object is already durable.
        self.remove_dir_atomically(&dir)?;
        Ok(meta)
    }

    /// Aborts an upload, deleting its parts.
    pub fn abort_upload(&self, bucket: &Bucket, id: &str) -> Result<(), StoreError> {
        let dir = upload_dir(bucket, id)?;
        match self.remove_dir_atomically(&dir) {
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NoSuchUpload)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn part(store: &Store, b: &Bucket, u: &Upload, n: i32, data: &[u8]) -> String {
        let mut w = Writer::create(store.tmp_dir()).await.unwrap();
        w.write(data).await.unwrap();
        let sealed = w.finish(ObjectMeta::default()).await.unwrap();
        store.commit_part(b, u, n, sealed).unwrap()
    }

    #[tokio::test]
    async fn completion_concatenates_and_uses_the_md5_of_md5s() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b").unwrap();
        let b = store.bucket("b").unwrap();
        let u = store
            .create_upload(&b, "big", StoredHeaders::default(), Default::default())
            .unwrap();
        let first = vec![7u8; MIN_PART_SIZE as usize];
        let e1 = part(&store, &b, &u, 1, &first).await;
        let e2 = part(&store, &b, &u, 2, b"tail").await;
        assert_eq!(store.parts(&b, &u).unwrap().len(), 2);
        assert!(matches!(
            store
                .complete_upload(&b, &u, &[(2, e2.clone()), (1, e1.clone())])
                .await,
            Err(StoreError::InvalidPartOrder)
        ));
        assert!(matches!(
            store
                .complete_upload(&b, &u, &[(1, e1.clone()), (2, "0".repeat(32))])
                .await,
            Err(StoreError::InvalidPart)
        ));
        let meta = store
            .complete_upload(&b, &u, &[(1, e1.clone()), (2, e2.clone())])
            .await
            .unwrap();
        let mut md5s = Md5::new();
        md5s.update(Md5::digest(&first));
        md5s.update(Md5::digest(b"tail"));
        assert_eq!(meta.etag, format!("{}-2", hex::encode(md5s.finalize())));
        assert_eq!(meta.size, MIN_PART_SIZE + 4);
        assert!(matches!(
            store.upload(&b, &u.id, None),
            Err(StoreError::NoSuchUpload)
        ));
    }

    #[tokio::test]
    async fn small_parts_before_the_last_are_refused_and_abort_removes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b").unwrap();
        let b = store.bucket("b").unwrap();
        let u = store
            .create_upload(&b, "k", StoredHeaders::default(), Default::default())
            .unwrap();
        let e1 = part(&store, &b, &u, 1, b"small").await;
        let e2 = part(&store, &b, &u, 2, b"small").await;
        assert!(matches!(
            store.complete_upload(&b, &u, &[(1, e1), (2, e2)]).await,
            Err(StoreError::EntityTooSmall)
        ));
        assert_eq!(store.uploads(&b).unwrap().len(), 1);
        store.abort_upload(&b, &u.id).unwrap();
        assert!(store.uploads(&b).unwrap().is_empty());
        assert!(matches!(
            store.abort_upload(&b, &u.id),
            Err(StoreError::NoSuchUpload)
        ));
        assert!(matches!(
            store.abort_upload(&b, "../x"),
            Err(StoreError::NoSuchUpload)
        ));
    }
}
