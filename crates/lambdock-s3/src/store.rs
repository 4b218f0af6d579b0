//! Buckets and objects on disk, with an in-memory sorted index per bucket for listing.
//!
//! Layout under the root (`<data_dir>/s3`):
//! `tmp/` (temporary files, emptied at startup), `buckets/<name>/bucket.json` (creation time,
//! lifecycle and CORS configuration), `buckets/<name>/objects/<sha256(key)>` (one file per
//! object, see [`crate::object`]) and `buckets/<name>/uploads/<id>/` (multipart uploads).
//! Every change reaches its final name by a `rename` inside the same filesystem followed by an
//! fsync of the directory, so a crash leaves either the old or the new state, never a mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use s3s::dto::{CORSRule, LifecycleRule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::object::{self, ObjectMeta, Sealed};

/// What is kept in `bucket.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketConfig {
    /// CreationDate, milliseconds since the epoch.
    pub created_ms: u64,
    /// Lifecycle rules (PutBucketLifecycleConfiguration), if set.
    #[serde(default)]
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// CORS rules (PutBucketCors), if set.
    #[serde(default)]
    pub cors: Option<Vec<CORSRule>>,
}

/// One bucket: its directory, configuration and object index.
#[derive(Debug)]
pub struct Bucket {
    /// The bucket name.
    pub name: String,
    dir: PathBuf,
    config: Mutex<BucketConfig>,
    objects: RwLock<BTreeMap<String, ObjectMeta>>,
}

/// The whole S3 store.
#[derive(Debug)]
pub struct Store {
    tmp: PathBuf,
    buckets_dir: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
}

fn lock_err<T>(_: T) -> StoreError {
    StoreError::Corrupt("a lock was poisoned by a panic".into())
}

impl Bucket {
    /// The bucket's configuration (a copy).
    pub fn config(&self) -> Result<BucketConfig, StoreError> {
        Ok(self.config.lock().map_err(lock_err)?.clone())
    }

    /// Runs `f` over a read view of the object index.
    pub fn with_objects<R>(
        &self,
        f: impl FnOnce(&BTreeMap<String, ObjectMeta>) -> R,
    ) -> Result<R, StoreError> {
        Ok(f(&*self.objects.read().map_err(lock_err)?))
    }

    fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }

    /// Directory of the bucket's multipart uploads.
    pub fn uploads_dir(&self) -> PathBuf {
        self.dir.join("uploads")
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.objects_dir()
            .join(hex::encode(Sha256::digest(key.as_bytes())))
    }
}

impl Store {
    /// Opens (or creates) the store under `root`: empties `tmp/` of interrupted writes and
    /// loads every bucket's index from the object trailers.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let tmp = root.join("tmp");
        let buckets_dir = root.join("buckets");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(&buckets_dir)?;
        let mut buckets = BTreeMap::new();
        for entry in std::fs::read_dir(&buckets_dir)? {
            let dir = entry?.path();
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            let config: BucketConfig = match std::fs::read(dir.join("bucket.json")) {
                Ok(b) => {
                    serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string()))?
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping a bucket directory without bucket.json");
                    continue;
                }
            };
            let mut objects = BTreeMap::new();
            for f in std::fs::read_dir(dir.join("objects"))? {
                let path = f?.path();
                match object::read_meta(&path) {
                    Ok(meta) => {
                        objects.insert(meta.key.clone(), meta);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable object file")
                    }
                }
            }
            tracing::debug!(bucket = %name, objects = objects.len(), "loaded bucket");
            buckets.insert(
                name.clone(),
                Arc::new(Bucket {
                    name,
                    dir,
                    config: Mutex::new(config),
                    objects: RwLock::new(objects),
                }),
            );
        }
        Ok(Self {
            tmp,
            buckets_dir,
            buckets: RwLock::new(buckets),
        })
    }

    /// The directory for temporary files (same filesystem as the data).
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Looks a bucket up.
    pub fn bucket(&self, name: &str) -> Result<Arc<Bucket>, StoreError> {
        self.buckets
            .read()
            .map_err(lock_err)?
            .get(name)
            .cloned()
            .ok_or(StoreError::NoSuchBucket)
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> Result<Vec<Arc<Bucket>>, StoreError> {
        Ok(self
            .buckets
            .read()
            .map_err(lock_err)?
            .values()
            .cloned()
            .collect())
    }

    /// Creates a bucket (its directory appears complete, by one rename).
    pub fn create_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut buckets = self.buckets.write().map_err(lock_err)?;
        if buckets.contains_key(name) {
            return Err(StoreError::BucketAlreadyOwnedByYou);
        }
        let staging = self
            .tmp
            .join(format!("{}.bucket", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(staging.join("objects"))?;
        std::fs::create_dir_all(staging.join("uploads"))?;
        let config = BucketConfig {
            created_ms: object::now_ms(),
            ..Default::default()
        };
        let json = serde_json::to_vec(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        object::write_atomic(&self.tmp, &staging.join("bucket.json"), &json)?;
        let dir = self.buckets_dir.join(name);
        std::fs::rename(&staging, &dir)?;
        object::sync_dir(&self.buckets_dir)?;
        buckets.insert(
            name.to_string(),
            Arc::new(Bucket {
                name: name.to_string(),
                dir,
                config: Mutex::new(config),
                objects: RwLock::new(BTreeMap::new()),
            }),
        );
        Ok(())
    }

    /// Deletes an empty bucket (its pending multipart uploads go with it).
    pub fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        let mut buckets = self.buckets.write().map_err(lock_err)?;
        let bucket = buckets.get(name).ok_or(StoreError::NoSuchBucket)?;
        if !bucket.objects.read().map_err(lock_err)?.is_empty() {
            return Err(StoreError::BucketNotEmpty);
        }
        let trash = self
            .tmp
            .join(format!("{}.trash", uuid::Uuid::new_v4().simple()));
        std::fs::rename(&bucket.dir, &trash)?;
        object::sync_dir(&self.buckets_dir)?;
        buckets.remove(name);
        std::fs::remove_dir_all(&trash)?;
        Ok(())
    }

    /// Changes a bucket's configuration and stores it atomically.
    pub fn update_config(
        &self,
        bucket: &Bucket,
        f: impl FnOnce(&mut BucketConfig),
    ) -> Result<(), StoreError> {
        let mut config = bucket.config.lock().map_err(lock_err)?;
        let mut next = config.clone();
        f(&mut next);
        let json = serde_json::to_vec(&next).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        object::write_atomic(&self.tmp, &bucket.dir.join("bucket.json"), &json)?;
        *config = next;
        Ok(())
    }

    /// Makes a sealed temporary object the current version of its key; durable on return.
    pub fn commit(&self, bucket: &Bucket, sealed: Sealed) -> Result<ObjectMeta, StoreError> {
        let path = bucket.object_path(&sealed.meta.key);
        {
            // Rename and index update under one lock, so concurrent PUTs of one key leave the
            // index describing the file that won.
            let mut objects = bucket.objects.write().map_err(lock_err)?;
            if let Err(e) = std::fs::rename(&sealed.path, &path) {
                sealed.discard();
                return Err(e.into());
            }
            objects.insert(sealed.meta.key.clone(), sealed.meta.clone());
        }
        object::sync_dir(&bucket.objects_dir())?;
        Ok(sealed.meta)
    }

    /// Opens an object for reading: the open file stays consistent even if the key is
    /// overwritten meanwhile. The data is `0..meta.size` of the file.
    pub fn open_object(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<(std::fs::File, ObjectMeta), StoreError> {
        let mut file = match std::fs::File::open(bucket.object_path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchKey);
            }
            Err(e) => return Err(e.into()),
        };
        let meta = object::read_meta_from(&mut file)?;
        if meta.key != key {
            return Err(StoreError::NoSuchKey);
        }
        Ok((file, meta))
    }

    /// Deletes an object; deleting a missing key succeeds, as in S3.
    pub fn delete_object(&self, bucket: &Bucket, key: &str) -> Result<(), StoreError> {
        {
            let mut objects = bucket.objects.write().map_err(lock_err)?;
            match std::fs::remove_file(bucket.object_path(key)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            objects.remove(key);
        }
        object::sync_dir(&bucket.objects_dir())
    }

    /// Moves a directory out of the way atomically, then removes it.
    pub fn remove_dir_atomically(&self, dir: &Path) -> Result<(), StoreError> {
        let trash = self
            .tmp
            .join(format!("{}.trash", uuid::Uuid::new_v4().simple()));
        std::fs::rename(dir, &trash)?;
        if let Some(parent) = dir.parent() {
            object::sync_dir(parent)?;
        }
        std::fs::remove_dir_all(&trash)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Writer;

    async fn put(store: &Store, bucket: &Bucket, key: &str, data: &[u8]) -> ObjectMeta {
        let mut w = Writer::create(store.tmp_dir()).await.unwrap();
        w.write(data).await.unwrap();
        let sealed = w
            .finish(ObjectMeta {
                key: key.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        store.commit(bucket, sealed).unwrap()
    }

    #[tokio::test]
    async fn objects_survive_a_reopen_and_temp_files_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.create_bucket("b").unwrap();
            let b = store.bucket("b").unwrap();
            put(&store, &b, "k/1", b"one").await;
            put(&store, &b, "k/1", b"uno").await;
            put(&store, &b, "k/2", b"two").await;
            store.delete_object(&b, "k/2").unwrap();
            // An interrupted PUT: data in tmp, never renamed.
            let mut w = Writer::create(store.tmp_dir()).await.unwrap();
            w.write(b"half").await.unwrap();
            std::mem::forget(w);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        let b = store.bucket("b").unwrap();
        let keys = b
            .with_objects(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap();
        assert_eq!(keys, ["k/1"]);
        let (_, meta) = store.open_object(&b, "k/1").unwrap();
        assert_eq!(meta.size, 3);
        assert_eq!(meta.etag, hex::encode(md5::Md5::digest(b"uno")));
    }

    #[tokio::test]
    async fn a_bucket_with_objects_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b").unwrap();
        assert!(matches!(
            store.create_bucket("b"),
            Err(StoreError::BucketAlreadyOwnedByYou)
        ));
        let b = store.bucket("b").unwrap();
        put(&store, &b, "x", b"1").await;
        assert!(matches!(
            store.delete_bucket("b"),
            Err(StoreError::BucketNotEmpty)
        ));
        store.delete_object(&b, "x").unwrap();
        store.delete_bucket("b").unwrap();
        assert!(matches!(store.bucket("b"), Err(StoreError::NoSuchBucket)));
        let reopened = Store::open(dir.path()).unwrap();
        assert!(reopened.buckets().unwrap().is_empty());
    }
}
