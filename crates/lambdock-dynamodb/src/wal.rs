//! The write-ahead log: every mutating request that succeeded, in the order it was applied.
//!
//! The engine (rustack) keeps its tables in memory, so durability is a log of the requests that
//! changed them. Records are framed `[len u32 LE][crc32 u32 LE][payload]` so that a record torn
//! by a crash (kill -9 in the middle of a `write`) is detected and dropped at replay: it was never
//! acknowledged, because acknowledgement waits for the `fdatasync` that covers it.
//!
//! Appends only buffer in memory (cheap, done under the store's apply lock so log order is apply
//! order); [`Wal::sync_to`] makes a position durable. Whoever calls it first writes and syncs the
//! whole buffer for everybody waiting behind it: group commit, one `fdatasync` per batch.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A record's payload: the operation name (`PutItem`, …) and its JSON request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The `X-Amz-Target` operation name without the `DynamoDB_20120810.` prefix.
    pub operation: String,
    /// The request body exactly as received.
    pub body: Vec<u8>,
}

/// Records appended but not yet handed to the file, and the position they end at.
struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record appended (written or not).
    last: u64,
    file: Arc<Mutex<File>>,
}

/// An append-only log file with group commit.
pub struct Wal {
    pending: Mutex<Pending>,
    /// Serialises writers of the file so a batch is written and synced before the next one.
    flush: tokio::sync::Mutex<()>,
    durable: AtomicU64,
    /// Set when a write or sync failed: the batch that failed is gone from memory, so any later
    /// record would follow a gap in the log. Every later sync fails instead.
    broken: AtomicBool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("durable", &self.durable.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if needed, durably) the log at `path` for appending; `last` is the
    /// sequence number of the last record already in the file or replayed before it.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn open(path: &Path, last: u64) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        // A synced record is only reachable if the file's directory entry is durable too.
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(dir)?;
        }
        Ok(Wal {
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                last,
                file: Arc::new(Mutex::new(file)),
            }),
            flush: tokio::sync::Mutex::new(()),
            durable: AtomicU64::new(last),
            broken: AtomicBool::new(false),
        })
    }

    /// Buffers a record and returns its sequence number (not yet durable).
    pub fn append(&self, record: &Record) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        encode(record, &mut pending.buf);
        pending.last += 1;
        pending.last
    }

    /// The sequence number of the last record appended.
    pub fn last(&self) -> u64 {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
    }

    /// Waits until every record up to `seq` is on disk, writing and syncing if nobody else is.
    ///
    /// # Errors
    ///
    /// Writing or syncing failed: the records are then not durable and must not be acknowledged.
    pub async fn sync_to(&self, seq: u64) -> io::Result<()> {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _writer = self.flush.lock().await;
        if self.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        if self.broken.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "the dynamodb log failed earlier; refusing writes",
            ));
        }
        let (buf, last, file) = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            (
                std::mem::take(&mut pending.buf),
                pending.last,
                Arc::clone(&pending.file),
            )
        };
        let written = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            file.write_all(&buf)?;
            file.sync_data()
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        if let Err(e) = written {
            self.broken.store(true, Ordering::Release);
            return Err(e);
        }
        self.durable.store(last, Ordering::Release);
        Ok(())
    }

    /// Writes and syncs everything buffered, then points future appends at a fresh file `path`
    /// (the next generation). Call with the store's apply lock held so no record lands in
    /// between.
    ///
    /// # Errors
    ///
    /// The old log could not be synced or the new one created.
    pub async fn rotate(&self, path: &Path) -> io::Result<()> {
        let last = self.last();
        self.sync_to(last).await?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(dir)?;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.file = Arc::new(Mutex::new(file));
        Ok(())
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(2 + record.operation.len() + record.body.len());
    // Operation names are short ASCII identifiers; u16 is plenty.
    let op = record.operation.as_bytes();
    payload.extend_from_slice(&u16::try_from(op.len()).unwrap_or(u16::MAX).to_le_bytes());
    payload.extend_from_slice(&op[..op.len().min(usize::from(u16::MAX))]);
    payload.extend_from_slice(&record.body);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Reads every intact record of the log at `path` and truncates a torn or corrupt tail away, so
/// that records appended later follow the last good one.
///
/// # Errors
///
/// The file cannot be read or truncated.
pub fn read_all(path: &Path) -> io::Result<Vec<Record>> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some((record, next)) = decode(&data, at) {
        records.push(record);
        at = next;
    }
    if at < data.len() {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = data.len() - at,
            "dynamodb log ends with a torn record (never acknowledged); truncating it"
        );
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(at as u64)?;
        f.sync_all()?;
    }
    Ok(records)
}

fn decode(data: &[u8], at: usize) -> Option<(Record, usize)> {
    let header = data.get(at..at + 8)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let payload = data.get(at + 8..at + 8 + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let op_len = usize::from(u16::from_le_bytes(payload.get(0..2)?.try_into().ok()?));
    let operation = std::str::from_utf8(payload.get(2..2 + op_len)?).ok()?;
    Some((
        Record {
            operation: operation.to_string(),
            body: payload[2 + op_len..].to_vec(),
        },
        at + 8 + len,
    ))
}

/// Makes a rename or creation in `dir` durable.
///
/// # Errors
///
/// The directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The log file of generation `generation` in `dir`.
pub fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:020}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(op: &str, body: &str) -> Record {
        Record {
            operation: op.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn appended_records_read_back_in_order_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path(), 1);
        let wal = Wal::open(&path, 0).unwrap();
        let a = wal.append(&rec("PutItem", "{\"a\":1}"));
        let b = wal.append(&rec("DeleteItem", "{}"));
        assert_eq!((a, b), (1, 2));
        // Nothing reaches the file before a sync: unacknowledged records may be lost.
        assert!(read_all(&path).unwrap().is_empty());
        wal.sync_to(b).await.unwrap();
        assert_eq!(
            read_all(&path).unwrap(),
            vec![rec("PutItem", "{\"a\":1}"), rec("DeleteItem", "{}")]
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_dropped_and_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path(), 1);
        let wal = Wal::open(&path, 0).unwrap();
        let s = wal.append(&rec("PutItem", "{\"k\":\"first\"}"));
        wal.sync_to(s).await.unwrap();
        let good_len = std::fs::metadata(&path).unwrap().len();
        // A crash halfway through writing the second record.
        let mut torn = Vec::new();
        encode(&rec("PutItem", "{\"k\":\"second\"}"), &mut torn);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(f);
        assert_eq!(
            read_all(&path).unwrap(),
            vec![rec("PutItem", "{\"k\":\"first\"}")]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    }

    #[tokio::test]
    async fn a_corrupt_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path(), 1);
        let wal = Wal::open(&path, 0).unwrap();
        wal.append(&rec("PutItem", "one"));
        let s = wal.append(&rec("PutItem", "two"));
        wal.sync_to(s).await.unwrap();
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        assert_eq!(read_all(&path).unwrap(), vec![rec("PutItem", "one")]);
    }

    #[tokio::test]
    async fn rotation_moves_appends_to_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(&log_path(dir.path(), 1), 0).unwrap();
        wal.append(&rec("PutItem", "old"));
        wal.rotate(&log_path(dir.path(), 2)).await.unwrap();
        let s = wal.append(&rec("PutItem", "new"));
        assert_eq!(s, 2);
        wal.sync_to(s).await.unwrap();
        assert_eq!(
            read_all(&log_path(dir.path(), 1)).unwrap(),
            vec![rec("PutItem", "old")]
        );
        assert_eq!(
            read_all(&log_path(dir.path(), 2)).unwrap(),
            vec![rec("PutItem", "new")]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_are_all_durable_when_their_syncs_return() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(dir.path(), 1);
        let wal = Arc::new(Wal::open(&path, 0).unwrap());
        let mut tasks = Vec::new();
        for i in 0..64 {
            let wal = Arc::clone(&wal);
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let mine = rec("PutItem", &i.to_string());
                let seq = wal.append(&mine);
                wal.sync_to(seq).await.unwrap();
                // What this writer would acknowledge is in the file now (read without
                // truncating: others may be mid-write).
                let data = std::fs::read(&path).unwrap();
                let mut at = 0;
                let mut found = false;
                while let Some((r, next)) = decode(&data, at) {
                    found |= r == mine;
                    at = next;
                }
                assert!(found, "record {i} not on disk after its sync");
                seq
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=64).collect::<Vec<_>>());
        let mut bodies: Vec<i32> = read_all(&path)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.body).unwrap().parse().unwrap())
            .collect();
        bodies.sort_unstable();
        assert_eq!(bodies, (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn a_missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_all(&log_path(dir.path(), 7)).unwrap().is_empty());
    }
}
