//! The on-disk object format and its crash-safe writer.
//!
//! An object is one file: its bytes, then its metadata as JSON, then the JSON's length and a
//! magic trailer. Data and metadata therefore appear together, by one `rename`, or not at all:
//! a PUT is written to a temporary file in the same filesystem, fsynced, renamed over the final
//! name, and the directory fsynced before the PUT is acknowledged. The trailer goes last
//! because the ETag (MD5) is only known once the body has streamed through.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"LDKS3OB1";
const TRAILER: u64 = 16;

/// What S3 reports about an object, stored in the object's trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object key (file names are hashes of it).
    pub key: String,
    /// Length of the data in bytes.
    pub size: u64,
    /// ETag without quotes: hex MD5, or `md5-of-md5s-N` for a multipart object.
    pub etag: String,
    /// Last-Modified, milliseconds since the epoch.
    pub last_modified_ms: u64,
    /// Headers stored with the object and returned on GET/HEAD.
    #[serde(default)]
    pub headers: StoredHeaders,
    /// `x-amz-meta-*` user metadata (names without the prefix).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Representation headers S3 keeps with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHeaders {
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A body being streamed into a temporary file, MD5 computed on the way.
pub struct Writer {
    file: tokio::fs::File,
    path: PathBuf,
    md5: Md5,
    size: u64,
}

impl Writer {
    /// Creates a fresh temporary file in `tmp_dir` (same filesystem as the destination).
    pub async fn create(tmp_dir: &Path) -> Result<Self, StoreError> {
        let path = tmp_dir.join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Self {
            file,
            path,
            md5: Md5::new(),
            size: 0,
        })
    }

    /// Appends a chunk of the body.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.md5.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk).await?;
        Ok(())
    }

    /// Appends a whole stream; a stream error (client gone) fails the write.
    pub async fn write_stream<S, E>(&mut self, mut body: S) -> Result<(), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Body(e.to_string()))?;
            self.write(&chunk).await?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The MD5 of the bytes written so far.
    pub fn md5(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }

    /// Writes the trailer and fsyncs; the file is then ready to be renamed into place.
    /// `meta.size` is set here; `meta.etag` is set to the MD5 unless already given.
    pub async fn finish(mut self, mut meta: ObjectMeta) -> Result<Sealed, StoreError> {
        meta.size = self.size;
        if meta.etag.is_empty() {
            meta.etag = hex::encode(self.md5());
        }
        let json = serde_json::to_vec(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.file.write_all(&json).await?;
        self.file
            .write_all(&(json.len() as u64).to_le_bytes())
            .await?;
        self.file.write_all(MAGIC).await?;
        self.file.flush().await?;
        self.file.sync_all().await?;
        let path = std::mem::take(&mut self.path);
        Ok(Sealed { path, meta })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // An abandoned write (error, client gone) leaves nothing behind.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A complete, fsynced temporary object file waiting for its rename.
#[derive(Debug)]
pub struct Sealed {
    /// The temporary file.
    pub path: PathBuf,
    /// Its metadata.
    pub meta: ObjectMeta,
}

impl Sealed {
    /// Deletes the temporary file (the object was not committed).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads an object file's metadata from its trailer.
pub fn read_meta(path: &Path) -> Result<ObjectMeta, StoreError> {
    let mut file = std::fs::File::open(path)?;
    read_meta_from(&mut file)
}

/// Reads the metadata from an open object file (the data is `0..meta.size`).
pub fn read_meta_from(file: &mut std::fs::File) -> Result<ObjectMeta, StoreError> {
    let len = file.metadata()?.len();
    let corrupt = |why: &str| StoreError::Corrupt(why.to_string());
    if len < TRAILER {
        return Err(corrupt("object file shorter than its trailer"));
    }
    file.seek(SeekFrom::Start(len - TRAILER))?;
    let mut trailer = [0u8; TRAILER as usize];
    file.read_exact(&mut trailer)?;
    if &trailer[8..] != MAGIC {
        return Err(corrupt("object file without trailer magic"));
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&trailer[..8]);
    let json_len = u64::from_le_bytes(n);
    if json_len > len - TRAILER {
        return Err(corrupt("object metadata longer than the file"));
    }
    file.seek(SeekFrom::Start(len - TRAILER - json_len))?;
    let mut json = vec![0u8; json_len as usize];
    file.read_exact(&mut json)?;
    let meta: ObjectMeta = serde_json::from_slice(&json).map_err(|e| corrupt(&e.to_string()))?;
    if meta.size != len - TRAILER - json_len {
        return Err(corrupt("object size disagrees with its metadata"));
    }
    Ok(meta)
}

/// Streams `range` of an open object file's data in chunks.
pub fn read_stream(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static {
    const CHUNK: u64 = 256 * 1024;
    let file = tokio::fs::File::from_std(file);
    futures::stream::try_unfold(
        (file, range.start, range.end, false),
        |(mut file, pos, end, seeked)| async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            if pos >= end {
                return Ok(None);
            }
            if !seeked {
                file.seek(SeekFrom::Start(pos)).await?;
            }
            let want = (end - pos).min(CHUNK) as usize;
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf).await?;
            Ok(Some((
                Bytes::from(buf),
                (file, pos + want as u64, end, true),
            )))
        },
    )
}

/// fsyncs a directory so a rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a small file atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = tmp_dir.join(format!("{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trailer_round_trips_and_the_data_is_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(dir.path()).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        let sealed = w
            .finish(ObjectMeta {
                key: "a/b".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(sealed.meta.size, 11);
        assert_eq!(sealed.meta.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let meta = read_meta(&sealed.path).unwrap();
        assert_eq!(meta, sealed.meta);
        let file = std::fs::File::open(&sealed.path).unwrap();
        let chunks: Vec<_> = read_stream(file, 6..11).collect().await;
        let data: Vec<u8> = chunks.into_iter().flat_map(|c| c.unwrap()).collect();
        assert_eq!(data, b"world");
    }

    #[tokio::test]
    async fn an_abandoned_writer_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(dir.path()).await.unwrap();
        w.write(b"partial").await.unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"data without a trailer").unwrap();
        assert!(matches!(read_meta(&p), Err(StoreError::Corrupt(_))));
    }
}
