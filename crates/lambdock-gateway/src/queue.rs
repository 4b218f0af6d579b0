//! The durable queue behind asynchronous (`InvocationType: Event`) invocations.
//!
//! # Contract
//!
//! The gateway answers `202 Accepted` only after [`Queue::enqueue`] returned
//! `Ok`. At that point the event's record has been written to the log **and
//! `fdatasync`ed**, so the event survives both `kill -9` of the process (the
//! bytes were handed to the kernel before we returned) and a power cut (the
//! kernel confirmed they reached stable storage before we returned). Nothing
//! that was accepted is ever lost. Delivery is *at least once*: after a crash,
//! an event may be delivered again (its lease was only in memory, or its
//! `Done` record had not reached the disk yet), but it is never dropped.
//!
//! # On-disk format
//!
//! The queue directory holds an append-only log split into segment files
//! `00000001.log`, `00000002.log`, ... (numbered, replayed in numeric order),
//! plus a `LOCK` file that is `flock`ed so that two processes (or two
//! [`Queue`]s) can never write the same log. Each record is framed as
//!
//! ```text
//! +----------------+----------------+---------------------------+
//! | len: u32 LE    | crc: u32 LE    | payload: `len` bytes JSON |
//! +----------------+----------------+---------------------------+
//! crc = CRC-32 (IEEE) over the 4 length bytes followed by the payload
//! ```
//!
//! The CRC covers the length as well as the payload so that a zero-filled
//! region (what a file extended by a crashed append commonly looks like) is
//! never a valid record: `len == 0` is rejected, and even if it were not,
//! `crc32([0, 0, 0, 0]) != 0`. The payload is one of three JSON records:
//! `{"Enqueued":{..event..}}`, `{"Retry":{"id","attempt","not_before_ms"}}`
//! and `{"Done":{"id"}}`; the event's payload bytes are a base64 string.
//!
//! Replay applies the records in log order and **the latest record about an
//! id is authoritative**: `Enqueued` (re)creates the event with the state it
//! carries, `Retry` updates attempt and `not_before_ms`, `Done` removes it.
//! Records about unknown ids are ignored (see compaction).
//!
//! # Why a damaged record can only be an unacknowledged torn write
//!
//! * Records are appended strictly in order, and an append is acknowledged
//!   only after an `fdatasync` that covers it (and every earlier record) has
//!   succeeded.
//! * A new segment is created only after the previous one was `fdatasync`ed
//!   completely, and its directory entry is made durable (directory `fsync`)
//!   before anything is written into it.
//!
//! So after a crash, only the bytes appended to the **last** segment after its
//! last successful `fdatasync` can be damaged, and none of those records was
//! acknowledged. A torn write looks like: a header cut short, a length that
//! runs past the end of the file, a zero-filled or garbage region, or a record
//! whose bytes are a mix of old and new sectors (CRC mismatch). On open we stop
//! at the first such record of the last segment, copy the tail (unless it is
//! all zeroes) to a side file `NNNNNNNN.log.torn-<offset>-<unix_ms>` for
//! forensics, and truncate the segment there. A bad record in any *earlier*
//! segment cannot be explained by a crash: [`Queue::open`] fails with
//! [`QueueError::Corrupt`] naming the file and offset instead of silently
//! dropping data. A record whose CRC is valid but whose JSON does not decode is
//! also `Corrupt`, wherever it is.
//!
//! If a write fails, the segment is truncated back to the last record
//! boundary (so that later records are not stranded behind garbage). If an
//! `fsync` fails, the page cache can no longer be trusted to reflect the disk
//! (a retried `fsync` may report success for pages that were dropped), so the
//! queue is *poisoned*: every later mutating call fails with
//! [`QueueError::Poisoned`] and the process must restart, which replays what
//! is really on disk. All `fsync`s are serialized so that the one that
//! observes a write-back error poisons the queue before any other can report
//! success.
//!
//! # Group commit
//!
//! Appends happen under the state mutex (so the log order is exactly the order
//! of state changes), but the `fdatasync` happens outside it: the first caller
//! that needs durability becomes the *leader*, snapshots the highest written
//! record sequence number and syncs the active segment; callers arriving
//! meanwhile wait on a condition variable and are released together when a
//! sync covering their record completes (one of them leads the next sync if
//! needed). Concurrent `enqueue`s thus share `fdatasync`s. `Done` and `Retry`
//! records go through the same path, so they are durable when `done`/`retry`
//! return (a lost `Done` would only cause a duplicate delivery, but making them
//! durable costs little thanks to group commit and keeps the model simple).
//!
//! An event becomes visible to [`Queue::take_due`] as soon as its record is
//! written, before the `fdatasync` completes. This is deliberate: the event is
//! in memory exactly when its record is in the log, which is what compaction
//! relies on (it must see every event whose record lives in a segment before
//! deleting that segment). The consequence, an event possibly being dispatched
//! before its `202` is sent, is allowed by at-least-once semantics.
//!
//! # Compaction
//!
//! When appending a record would grow the active segment past
//! [`QueueOptions::segment_bytes`], the segment is synced and a new one is
//! started. Each pending event is accounted to the segment holding its latest
//! `Enqueued` record. Segments are deleted **only as a prefix of the log**
//! (oldest first, never the active one): a later segment holds `Done` records
//! that cancel `Enqueued` records in earlier segments, so deleting it while an
//! earlier one survives could resurrect finished events after a crash. The
//! oldest segment is deleted once no pending event is accounted to it. If it
//! still holds pending events and either they are few (live bytes at most a
//! quarter of `segment_bytes`) or the whole log is more than half garbage, they
//! are *carried forward*: re-appended as fresh `Enqueued` records with their
//! current attempt and `not_before_ms` to the active segment, which is synced
//! **before** the old segment is unlinked (and the directory is synced after
//! each unlink, so that deletions become durable in order). At most one
//! segment is carried forward per roll, which bounds both write amplification
//! and the pause. `Retry` records in a deleted segment are harmless to lose:
//! the carried `Enqueued` record holds the same state, and `Retry` records
//! found during replay for an id not (yet) known are ignored.
//!
//! # Memory
//!
//! Every pending event, payload included, is kept in memory; the log is only
//! read on [`Queue::open`]. Leases taken by [`Queue::take_due`] are memory
//! only and vanish on restart, which is what makes delivery at-least-once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Default size at which the active segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Largest encoded record (JSON, base64 payload included) the queue accepts.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

const HEADER_LEN: u64 = 8;
const SEGMENT_SUFFIX: &str = ".log";
const LOCK_FILE: &str = "LOCK";
/// How long [`Queue::open`] waits for the directory lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One asynchronous invocation waiting to be delivered.
///
/// `payload` is serialized as a base64 string (in the log and anywhere else
/// this type is serialized with serde).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (the request id returned to the caller).
    pub id: String,
    /// Target function name.
    pub function: String,
    /// Version or alias, if the caller named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    /// The invocation payload.
    #[serde(with = "b64")]
    pub payload: Vec<u8>,
    /// Headers to replay on delivery (client context, trace id, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// When the gateway accepted the event (Unix ms); drives "oldest first".
    pub enqueued_at_ms: i64,
    /// Delivery attempts made so far.
    pub attempt: u32,
    /// The event is not due before this time (Unix ms).
    pub not_before_ms: i64,
}

/// Errors returned by the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// An operating-system I/O error on `path`.
    #[error("queue I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A damaged record that cannot be explained by a torn write at the end
    /// of the log (or a checksummed record that does not decode).
    #[error("corrupt queue log {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged record's header.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process or [`Queue`] holds the queue directory.
    #[error("queue directory {} is locked by another process or Queue", path.display())]
    Locked {
        /// The queue directory.
        path: PathBuf,
    },
    /// An earlier `fsync` (or an unrecoverable write) failed; what is durable
    /// is unknown, so the queue refuses further writes. Restart to recover.
    #[error(
        "queue is unusable after an I/O failure ({reason}); restart the process to recover from disk"
    )]
    Poisoned {
        /// Description of the original failure.
        reason: String,
    },
    /// `done`/`retry` named an id that is not pending.
    #[error("event {id} is not pending in the queue")]
    NotFound {
        /// The id.
        id: String,
    },
    /// `enqueue` with the id of an event that is still pending.
    #[error("event {id} is already pending in the queue")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// The encoded record would exceed [`MAX_RECORD_BYTES`].
    #[error("queue record of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record could not be encoded.
    #[error("failed to encode queue record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Tuning for [`Queue::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Size at which the active segment is sealed and a new one started;
    /// also the granularity at which disk space is reclaimed.
    pub segment_bytes: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// Record as written (borrows, so that appending never clones a payload).
#[derive(Serialize)]
enum RecordRef<'a> {
    Enqueued(&'a Event),
    Retry {
        id: &'a str,
        attempt: u32,
        not_before_ms: i64,
    },
    Done {
        id: &'a str,
    },
}

/// Record as read back; same JSON shape as [`RecordRef`].
#[derive(Deserialize)]
enum Record {
    Enqueued(Event),
    Retry {
        id: String,
        attempt: u32,
        not_before_ms: i64,
    },
    Done {
        id: String,
    },
}

fn frame_crc(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Encodes one framed record (header + JSON).
fn encode_record(rec: &RecordRef<'_>) -> Result<Vec<u8>, QueueError> {
    let mut buf = vec![0u8; HEADER_LEN as usize];
    serde_json::to_writer(&mut buf, rec)?;
    let size = buf.len() - HEADER_LEN as usize;
    if size > MAX_RECORD_BYTES {
        return Err(QueueError::TooLarge {
            size,
            max: MAX_RECORD_BYTES,
        });
    }
    let len = size as u32; // <= MAX_RECORD_BYTES < u32::MAX
    let crc = frame_crc(len, &buf[HEADER_LEN as usize..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Takes an exclusive `flock` on `path` (created if missing), trying for up to `wait`; `None`
/// when another process (or another open file) still holds it then.
///
/// A lock that was just released can still be held for a moment by a process that its holder
/// was spawning (the forked child has a copy of every descriptor until it execs), hence the wait.
pub fn lock_file(path: &Path, wait: Duration) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn ioe(path: &Path) -> impl FnOnce(io::Error) -> QueueError + use<> {
    let path = path.to_path_buf();
    move |source| QueueError::Io { path, source }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a queue lock would be a bug in this module; the
    // log on disk stays authoritative, so keep serving rather than cascade.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(ioe(dir))? {
        let entry = entry.map_err(ioe(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Where an event sits in the in-memory indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not taken, in `delayed` (possibly already due; promoted lazily).
    Delayed,
    /// Not taken, due, in `ready`, `ready_nb` and `ready_by_fn`.
    Ready,
    /// Leased by `take_due`.
    Taken,
}

struct Entry {
    /// Current state (attempt and not_before are kept up to date).
    event: Event,
    slot: Slot,
    /// Segment holding the latest `Enqueued` record of this event.
    seg: u64,
    /// Framed size of that record.
    rec_len: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct SegMeta {
    size: u64,
    live_count: u64,
    live_bytes: u64,
}

/// In-memory view of the log. `seq` is an in-process order number (ties on
/// `enqueued_at_ms` are broken by it).
#[derive(Default)]
struct State {
    ids: HashMap<String, u64>,
    entries: HashMap<u64, Entry>,
    next_seq: u64,
    /// (not_before_ms, seq) of `Slot::Delayed` entries.
    delayed: BTreeSet<(i64, u64)>,
    /// (enqueued_at_ms, seq) of `Slot::Ready` entries.
    ready: BTreeSet<(i64, u64)>,
    /// (not_before_ms, seq) of `Slot::Ready` entries.
    ready_nb: BTreeSet<(i64, u64)>,
    /// Per function: (enqueued_at_ms, seq) of `Slot::Ready` entries.
    ready_by_fn: HashMap<String, BTreeSet<(i64, u64)>>,
    /// (enqueued_at_ms, seq) of all pending entries.
    by_age: BTreeSet<(i64, u64)>,
    by_fn: BTreeMap<String, usize>,
    segments: BTreeMap<u64, SegMeta>,
}

impl State {
    /// Removes `seq` from the slot indexes (not from the entry map).
    fn unslot(&mut self, seq: u64) {
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        match e.slot {
            Slot::Delayed => {
                self.delayed.remove(&(e.event.not_before_ms, seq));
            }
            Slot::Ready => {
                let key = (e.event.enqueued_at_ms, seq);
                self.ready.remove(&key);
                self.ready_nb.remove(&(e.event.not_before_ms, seq));
                if let Some(set) = self.ready_by_fn.get_mut(&e.event.function) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.ready_by_fn.remove(&e.event.function);
                    }
                }
            }
            Slot::Taken => {}
        }
    }

    fn make_delayed(&mut self, seq: u64) {
        self.unslot(seq);
        if let Some(e) = self.entries.get_mut(&seq) {
            e.slot = Slot::Delayed;
            self.delayed.insert((e.event.not_before_ms, seq));
        }
    }

    /// Adds (or replaces, keeping its order number) a pending event.
    fn insert(&mut self, event: Event, seg: u64, rec_len: u64) {
        let seq = match self.remove(&event.id) {
            Some((seq, _)) => seq,
            None => {
                self.next_seq += 1;
                self.next_seq
            }
        };
        self.by_age.insert((event.enqueued_at_ms, seq));
        *self.by_fn.entry(event.function.clone()).or_default() += 1;
        let meta = self.segments.entry(seg).or_default();
        meta.live_count += 1;
        meta.live_bytes += rec_len;
        self.ids.insert(event.id.clone(), seq);
        self.delayed.insert((event.not_before_ms, seq));
        self.entries.insert(
            seq,
            Entry {
                event,
                slot: Slot::Delayed,
                seg,
                rec_len,
            },
        );
    }

    fn remove(&mut self, id: &str) -> Option<(u64, Entry)> {
        let seq = *self.ids.get(id)?;
        self.unslot(seq);
        self.ids.remove(id);
        let e = self.entries.remove(&seq)?;
        self.by_age.remove(&(e.event.enqueued_at_ms, seq));
        if let Some(n) = self.by_fn.get_mut(&e.event.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_fn.remove(&e.event.function);
            }
        }
        if let Some(m) = self.segments.get_mut(&e.seg) {
            m.live_count = m.live_count.saturating_sub(1);
            m.live_bytes = m.live_bytes.saturating_sub(e.rec_len);
        }
        Some((seq, e))
    }

    /// Applies a retry; the event is no longer taken. False if unknown.
    fn reschedule(&mut self, id: &str, attempt: u32, not_before_ms: i64) -> bool {
        let Some(&seq) = self.ids.get(id) else {
            return false;
        };
        self.unslot(seq);
        if let Some(e) = self.entries.get_mut(&seq) {
            e.event.attempt = attempt;
            e.event.not_before_ms = not_before_ms;
            e.slot = Slot::Delayed;
            self.delayed.insert((not_before_ms, seq));
        }
        true
    }

    /// Moves the accounting of `seq` to a new `Enqueued` record.
    fn relocate(&mut self, seq: u64, seg: u64, rec_len: u64) {
        let Some(e) = self.entries.get_mut(&seq) else {
            return;
        };
        if let Some(m) = self.segments.get_mut(&e.seg) {
            m.live_count = m.live_count.saturating_sub(1);
            m.live_bytes = m.live_bytes.saturating_sub(e.rec_len);
        }
        let m = self.segments.entry(seg).or_default();
        m.live_count += 1;
        m.live_bytes += rec_len;
        e.seg = seg;
        e.rec_len = rec_len;
    }

    fn apply(&mut self, rec: Record, seg: u64, rec_len: u64) {
        match rec {
            Record::Enqueued(event) => self.insert(event, seg, rec_len),
            Record::Retry {
                id,
                attempt,
                not_before_ms,
            } => {
                self.reschedule(&id, attempt, not_before_ms);
            }
            Record::Done { id } => {
                self.remove(&id);
            }
        }
    }

    /// Moves delayed entries that are due at `now_ms` to the ready indexes.
    fn promote(&mut self, now_ms: i64) {
        while let Some(&(nb, seq)) = self.delayed.first() {
            if nb > now_ms {
                break;
            }
            self.delayed.pop_first();
            let Some(e) = self.entries.get_mut(&seq) else {
                continue;
            };
            e.slot = Slot::Ready;
            let key = (e.event.enqueued_at_ms, seq);
            self.ready.insert(key);
            self.ready_nb.insert((nb, seq));
            match self.ready_by_fn.get_mut(&e.event.function) {
                Some(set) => {
                    set.insert(key);
                }
                None => {
                    self.ready_by_fn
                        .insert(e.event.function.clone(), BTreeSet::from([key]));
                }
            }
        }
    }

    fn take(&mut self, now_ms: i64, max: usize, function: Option<&str>) -> Vec<Event> {
        if max == 0 {
            return Vec::new();
        }
        self.promote(now_ms);
        let set = match function {
            Some(f) => match self.ready_by_fn.get(f) {
                Some(set) => set,
                None => return Vec::new(),
            },
            None => &self.ready,
        };
        let mut picked = Vec::new();
        for &(_, seq) in set {
            if picked.len() >= max {
                break;
            }
            // An entry can be ready but not due if a caller's clock went
            // backwards; skip it rather than deliver early.
            if self
                .entries
                .get(&seq)
                .is_some_and(|e| e.event.not_before_ms <= now_ms)
            {
                picked.push(seq);
            }
        }
        let mut out = Vec::with_capacity(picked.len());
        for seq in picked {
            self.unslot(seq);
            if let Some(e) = self.entries.get_mut(&seq) {
                e.slot = Slot::Taken;
                out.push(e.event.clone());
            }
        }
        out
    }

    fn release(&mut self, id: &str) -> bool {
        let Some(&seq) = self.ids.get(id) else {
            return false;
        };
        if self
            .entries
            .get(&seq)
            .is_some_and(|e| e.slot == Slot::Taken)
        {
            self.make_delayed(seq);
            true
        } else {
            false
        }
    }

    fn next_due_ms(&self) -> Option<i64> {
        let delayed = self.delayed.first().map(|k| k.0);
        let ready = self.ready_nb.first().map(|k| k.0);
        delayed.into_iter().chain(ready).min()
    }
}

/// Outcome of scanning one segment.
struct Scan {
    /// Offset just past the last good record.
    valid_len: u64,
    file_len: u64,
    /// Why scanning stopped early, if it did.
    bad: Option<String>,
}

/// Replays one segment into `state`. Errors only on I/O failure or on a
/// checksummed record that does not decode; framing damage is reported in
/// `Scan::bad` for the caller to judge.
fn scan_segment(path: &Path, seg: u64, state: &mut State) -> Result<Scan, QueueError> {
    let file = File::open(path).map_err(ioe(path))?;
    let file_len = file.metadata().map_err(ioe(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut offset = 0u64;
    let mut header = [0u8; HEADER_LEN as usize];
    let mut payload = Vec::new();
    let bad = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < HEADER_LEN {
            break Some(format!(
                "truncated record header ({remaining} bytes at end of file)"
            ));
        }
        reader.read_exact(&mut header).map_err(ioe(path))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len as usize > MAX_RECORD_BYTES {
            break Some(format!("invalid record length {len}"));
        }
        if u64::from(len) > remaining - HEADER_LEN {
            break Some(format!(
                "record length {len} runs past the end of the file ({} bytes left)",
                remaining - HEADER_LEN
            ));
        }
        payload.clear();
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(ioe(path))?;
        if frame_crc(len, &payload) != crc {
            break Some("checksum mismatch".to_string());
        }
        let rec: Record = serde_json::from_slice(&payload).map_err(|e| QueueError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: format!("checksum is valid but the record does not decode: {e}"),
        })?;
        let rec_len = HEADER_LEN + u64::from(len);
        state.apply(rec, seg, rec_len);
        offset += rec_len;
    };
    Ok(Scan {
        valid_len: offset,
        file_len,
        bad,
    })
}

/// Cuts the torn tail off the last segment, keeping a copy of it unless it is
/// all zeroes.
fn truncate_torn_tail(path: &Path, scan: &Scan, reason: &str) -> Result<(), QueueError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(ioe(path))?;
    let torn = scan.file_len - scan.valid_len;
    let mut tail = vec![0u8; torn as usize];
    file.read_exact_at(&mut tail, scan.valid_len)
        .map_err(ioe(path))?;
    let mut kept = None;
    if tail.iter().any(|&b| b != 0) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut n = 0u32;
        let (side, mut f) = loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let side = path.with_file_name(format!("{name}.torn-{}-{ms}{suffix}", scan.valid_len));
            match OpenOptions::new().write(true).create_new(true).open(&side) {
                Ok(f) => break (side, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => {
                    return Err(QueueError::Io {
                        path: side,
                        source: e,
                    });
                }
            }
        };
        io::Write::write_all(&mut f, &tail).map_err(ioe(&side))?;
        f.sync_all().map_err(ioe(&side))?;
        kept = Some(side);
    }
    tracing::warn!(
        segment = %path.display(),
        offset = scan.valid_len,
        bytes = torn,
        reason,
        kept_in = ?kept,
        "queue: truncating torn tail of the last segment (unacknowledged writes from a crash)"
    );
    file.set_len(scan.valid_len).map_err(ioe(path))?;
    file.sync_all().map_err(ioe(path))?;
    Ok(())
}

fn sync_dir(path: &Path) -> Result<(), QueueError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(ioe(path))
}

struct Inner {
    state: State,
    active: Arc<File>,
    active_id: u64,
    /// Sequence number of the last record written (not necessarily synced).
    written_seq: u64,
}

#[derive(Default)]
struct SyncState {
    /// Every record with a sequence number up to this one is durable.
    synced_seq: u64,
    /// A leader is currently running an `fdatasync`.
    leader: bool,
}

/// The durable event queue. `Send + Sync`; share it with an `Arc`.
pub struct Queue {
    dir: PathBuf,
    opts: QueueOptions,
    dir_handle: File,
    /// Holds the `flock` on `LOCK` for the lifetime of the queue.
    _lock_file: File,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    synced_cv: Condvar,
    /// Serializes every fsync (see the module docs on poisoning).
    fsync_lock: Mutex<()>,
    poison: OnceLock<String>,
    notify: Arc<tokio::sync::Notify>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.dir)
            .field("segment_bytes", &self.opts.segment_bytes)
            .field("pending", &self.pending())
            .field("poisoned", &self.poison.get())
            .finish()
    }
}

impl Queue {
    /// Opens (creating if needed) the queue in `dir`, replays the log and
    /// returns with every pending event loaded and not taken.
    ///
    /// A torn tail of the last segment is truncated (see the module docs);
    /// damage anywhere else fails with [`QueueError::Corrupt`]. Fails with
    /// [`QueueError::Locked`] if the directory stays locked by another process
    /// or [`Queue`] for two seconds.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<Queue, QueueError> {
        let created: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
        fs::create_dir_all(dir).map_err(ioe(dir))?;
        // Make the entries of newly created directories durable.
        for new_dir in created {
            let parent = match new_dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(parent)?;
        }
        let dir_handle = File::open(dir).map_err(ioe(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = lock_file(&lock_path, LOCK_WAIT)
            .map_err(ioe(&lock_path))?
            .ok_or_else(|| QueueError::Locked {
                path: dir.to_path_buf(),
            })?;

        let mut ids = list_segments(dir)?;
        let mut state = State::default();
        for (i, &id) in ids.iter().enumerate() {
            let path = segment_path(dir, id);
            let scan = scan_segment(&path, id, &mut state)?;
            if let Some(reason) = &scan.bad {
                if i + 1 != ids.len() {
                    return Err(QueueError::Corrupt {
                        path,
                        offset: scan.valid_len,
                        reason: format!("{reason} (in a segment that is not the last one)"),
                    });
                }
                truncate_torn_tail(&path, &scan, reason)?;
            }
            state.segments.entry(id).or_default().size = scan.valid_len;
        }
        if ids.is_empty() {
            let path = segment_path(dir, 1);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(ioe(&path))?;
            state.segments.entry(1).or_default();
            ids.push(1);
        }
        // Covers a segment created above and any torn-tail side file.
        dir_handle.sync_all().map_err(ioe(dir))?;

        let active_id = ids.last().copied().unwrap_or(1);
        let active_path = segment_path(dir, active_id);
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&active_path)
            .map_err(ioe(&active_path))?;

        let pending = state.entries.len();
        let queue = Queue {
            dir: dir.to_path_buf(),
            opts,
            dir_handle,
            _lock_file: lock_file,
            inner: Mutex::new(Inner {
                state,
                active: Arc::new(active),
                active_id,
                written_seq: 0,
            }),
            sync: Mutex::new(SyncState::default()),
            synced_cv: Condvar::new(),
            fsync_lock: Mutex::new(()),
            poison: OnceLock::new(),
            notify: Arc::new(tokio::sync::Notify::new()),
        };
        {
            let mut inner = lock(&queue.inner);
            queue.compact(&mut inner, false)?;
        }
        tracing::info!(
            dir = %queue.dir.display(),
            pending,
            segments = ids.len(),
            "queue: opened"
        );
        Ok(queue)
    }

    /// Appends the event and returns once it is durable (`fdatasync`ed).
    /// Only then may the caller acknowledge it. Concurrent calls share
    /// `fdatasync`s (group commit). Fails with [`QueueError::Duplicate`] if
    /// an event with the same id is still pending.
    pub fn enqueue(&self, event: Event) -> Result<(), QueueError> {
        let rec = encode_record(&RecordRef::Enqueued(&event))?;
        let seq = {
            let mut inner = lock(&self.inner);
            self.check_poison()?;
            if inner.state.ids.contains_key(&event.id) {
                return Err(QueueError::Duplicate { id: event.id });
            }
            let (seg, seq) = self.append(&mut inner, &rec)?;
            inner.state.insert(event, seg, rec.len() as u64);
            seq
        };
        self.wait_durable(seq)?;
        self.wake();
        Ok(())
    }

    /// Takes up to `max` events that are due (`not_before_ms <= now_ms`) and
    /// not already taken, oldest (`enqueued_at_ms`) first, optionally only for
    /// one function. Taken events are leased (not returned again) until
    /// [`done`](Self::done), [`retry`](Self::retry) or
    /// [`release`](Self::release) is called for them, or the process restarts.
    pub fn take_due(&self, now_ms: i64, max: usize, function: Option<&str>) -> Vec<Event> {
        lock(&self.inner).state.take(now_ms, max, function)
    }

    /// Durably marks the event finished (delivered, or given up on) and
    /// forgets it. Fails with [`QueueError::NotFound`] if it is not pending.
    pub fn done(&self, id: &str) -> Result<(), QueueError> {
        let rec = encode_record(&RecordRef::Done { id })?;
        let seq = {
            let mut inner = lock(&self.inner);
            self.check_poison()?;
            if !inner.state.ids.contains_key(id) {
                return Err(QueueError::NotFound { id: id.to_string() });
            }
            let (_, seq) = self.append(&mut inner, &rec)?;
            let oldest = inner.state.segments.first_key_value().map(|(&k, _)| k);
            let freed = inner
                .state
                .remove(id)
                .and_then(|(_, e)| inner.state.segments.get(&e.seg).map(|m| (e.seg, *m)));
            // Reclaim the oldest segment as soon as its last event is done.
            if let Some((seg, meta)) = freed
                && Some(seg) == oldest
                && meta.live_count == 0
                && seg != inner.active_id
            {
                self.compact(&mut inner, false)?;
            }
            seq
        };
        self.wait_durable(seq)
    }

    /// Durably records a failed attempt: the event gets `attempt` and will
    /// not be due before `not_before_ms`. It is no longer taken. Fails with
    /// [`QueueError::NotFound`] if it is not pending.
    pub fn retry(&self, id: &str, attempt: u32, not_before_ms: i64) -> Result<(), QueueError> {
        let rec = encode_record(&RecordRef::Retry {
            id,
            attempt,
            not_before_ms,
        })?;
        let seq = {
            let mut inner = lock(&self.inner);
            self.check_poison()?;
            if !inner.state.ids.contains_key(id) {
                return Err(QueueError::NotFound { id: id.to_string() });
            }
            let (_, seq) = self.append(&mut inner, &rec)?;
            inner.state.reschedule(id, attempt, not_before_ms);
            seq
        };
        self.wait_durable(seq)?;
        self.wake();
        Ok(())
    }

    /// Returns a taken event to the pending set unchanged, without writing
    /// anything (e.g. the function is throttled). No-op if it is not taken.
    pub fn release(&self, id: &str) {
        let released = lock(&self.inner).state.release(id);
        if released {
            self.wake();
        }
    }

    /// Number of events not done yet (taken or not).
    pub fn pending(&self) -> usize {
        lock(&self.inner).state.entries.len()
    }

    /// Pending events (taken or not) per function.
    pub fn pending_by_function(&self) -> BTreeMap<String, usize> {
        lock(&self.inner).state.by_fn.clone()
    }

    /// `enqueued_at_ms` of the oldest pending event (taken or not), for the
    /// queue-age metric.
    pub fn oldest_enqueued_at_ms(&self) -> Option<i64> {
        lock(&self.inner).state.by_age.first().map(|k| k.0)
    }

    /// Earliest `not_before_ms` among events that are not taken: when a
    /// dispatcher with nothing to do should look again at the latest.
    pub fn next_due_ms(&self) -> Option<i64> {
        lock(&self.inner).state.next_due_ms()
    }

    /// Notified after every successful `enqueue` and `retry` and every
    /// effective `release`, so that a dispatcher can sleep without polling.
    /// All current waiters are woken, and if nobody was waiting a permit is
    /// stored so that the next `notified().await` returns at once.
    /// Wake-ups may be spurious: re-check with [`take_due`](Self::take_due).
    pub fn notifier(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.notify)
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wake(&self) {
        // notify_one stores a permit when nobody waits; notify_waiters wakes
        // every other current waiter.
        self.notify.notify_one();
        self.notify.notify_waiters();
    }

    fn seg_path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }

    fn check_poison(&self) -> Result<(), QueueError> {
        match self.poison.get() {
            Some(reason) => Err(QueueError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons the queue and turns `source` into the error to return.
    fn poison_io(&self, path: &Path, source: io::Error) -> QueueError {
        let reason = format!("{}: {source}", path.display());
        tracing::error!(%reason, "queue: I/O failure, refusing further writes until restart");
        let _ = self.poison.set(reason);
        // Wake group-commit waiters so that they observe the poison.
        let _guard = lock(&self.sync);
        self.synced_cv.notify_all();
        QueueError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// `fdatasync` (or `fsync` with `full`), serialized, poisoning on failure.
    fn fsync(&self, file: &File, path: &Path, full: bool) -> Result<(), QueueError> {
        let _guard = lock(&self.fsync_lock);
        self.check_poison()?;
        let res = if full {
            file.sync_all()
        } else {
            file.sync_data()
        };
        res.map_err(|e| self.poison_io(path, e))
    }

    fn mark_synced(&self, seq: u64) {
        let mut s = lock(&self.sync);
        if seq > s.synced_seq {
            s.synced_seq = seq;
            self.synced_cv.notify_all();
        }
    }

    /// Blocks until the record numbered `seq` is durable (group commit).
    fn wait_durable(&self, seq: u64) -> Result<(), QueueError> {
        let mut s = lock(&self.sync);
        loop {
            if s.synced_seq >= seq {
                return Ok(());
            }
            self.check_poison()?;
            if s.leader {
                s = self.synced_cv.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.leader = true;
            drop(s);
            // Records up to `target` are in the active segment or in sealed
            // segments, which are synced when sealed.
            let (target, file, id) = {
                let inner = lock(&self.inner);
                (
                    inner.written_seq,
                    Arc::clone(&inner.active),
                    inner.active_id,
                )
            };
            let res = self.fsync(&file, &self.seg_path(id), false);
            s = lock(&self.sync);
            s.leader = false;
            if res.is_ok() && target > s.synced_seq {
                s.synced_seq = target;
            }
            self.synced_cv.notify_all();
            if let Err(e) = res
                && s.synced_seq < seq
            {
                return Err(e);
            }
        }
    }

    /// Appends a framed record, rolling to a new segment first if it would
    /// not fit. Returns (segment, record sequence number).
    fn append(&self, inner: &mut Inner, rec: &[u8]) -> Result<(u64, u64), QueueError> {
        self.check_poison()?;
        let size = inner
            .state
            .segments
            .get(&inner.active_id)
            .map_or(0, |m| m.size);
        if size > 0 && size + rec.len() as u64 > self.opts.segment_bytes {
            self.roll(inner)?;
        }
        self.write_raw(inner, rec)
    }

    /// Writes a framed record at the end of the active segment.
    fn write_raw(&self, inner: &mut Inner, rec: &[u8]) -> Result<(u64, u64), QueueError> {
        let id = inner.active_id;
        let offset = inner.state.segments.get(&id).map_or(0, |m| m.size);
        if let Err(e) = inner.active.write_all_at(rec, offset) {
            let path = self.seg_path(id);
            // Never leave a partial record behind later ones.
            if let Err(e2) = inner.active.set_len(offset) {
                let _ = self.poison_io(&path, e2);
            }
            return Err(QueueError::Io { path, source: e });
        }
        inner.state.segments.entry(id).or_default().size = offset + rec.len() as u64;
        inner.written_seq += 1;
        Ok((id, inner.written_seq))
    }

    /// Seals the active segment (synced) and starts a new one.
    fn roll(&self, inner: &mut Inner) -> Result<(), QueueError> {
        let old = inner.active_id;
        self.fsync(&inner.active, &self.seg_path(old), false)?;
        self.mark_synced(inner.written_seq);
        let new_id = old + 1;
        let path = self.seg_path(new_id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(ioe(&path))?;
        self.fsync(&self.dir_handle, &self.dir, true)?;
        inner.state.segments.insert(new_id, SegMeta::default());
        inner.active = Arc::new(file);
        inner.active_id = new_id;
        tracing::debug!(segment = new_id, "queue: rolled to a new segment");
        self.compact(inner, true)
    }

    fn should_carry(&self, state: &State, meta: SegMeta) -> bool {
        let total_size: u64 = state.segments.values().map(|m| m.size).sum();
        let total_live: u64 = state.segments.values().map(|m| m.live_bytes).sum();
        meta.live_bytes.saturating_mul(4) <= self.opts.segment_bytes
            || total_live.saturating_mul(2) <= total_size
    }

    /// Deletes the dead prefix of the log, carrying forward the pending
    /// events of at most one segment if `allow_carry`.
    fn compact(&self, inner: &mut Inner, allow_carry: bool) -> Result<(), QueueError> {
        let mut carried = !allow_carry;
        let mut active_synced = false;
        while let Some((&oldest, &meta)) = inner.state.segments.first_key_value() {
            if oldest == inner.active_id {
                break;
            }
            if meta.live_count > 0 {
                if carried || !self.should_carry(&inner.state, meta) {
                    break;
                }
                self.carry_forward(inner, oldest)?;
                carried = true;
                active_synced = false;
                if inner
                    .state
                    .segments
                    .get(&oldest)
                    .is_some_and(|m| m.live_count > 0)
                {
                    tracing::error!(
                        segment = oldest,
                        "queue: carry-forward left live events; keeping segment"
                    );
                    break;
                }
            }
            // Nothing may be deleted before every record written so far
            // (carried events, Done records) is durable.
            if !active_synced {
                self.fsync(&inner.active, &self.seg_path(inner.active_id), false)?;
                self.mark_synced(inner.written_seq);
                active_synced = true;
            }
            let path = self.seg_path(oldest);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "queue: cannot delete segment; will retry");
                    break;
                }
            }
            self.fsync(&self.dir_handle, &self.dir, true)?;
            inner.state.segments.remove(&oldest);
            tracing::debug!(segment = oldest, "queue: deleted segment");
        }
        Ok(())
    }

    /// Re-appends every pending event accounted to `seg` to the active
    /// segment, with its current state. Not synced here.
    fn carry_forward(&self, inner: &mut Inner, seg: u64) -> Result<(), QueueError> {
        let mut seqs: Vec<u64> = inner
            .state
            .entries
            .iter()
            .filter(|(_, e)| e.seg == seg)
            .map(|(&seq, _)| seq)
            .collect();
        seqs.sort_unstable();
        let count = seqs.len();
        for seq in seqs {
            let Some(entry) = inner.state.entries.get(&seq) else {
                continue;
            };
            let rec = encode_record(&RecordRef::Enqueued(&entry.event))?;
            let (new_seg, _) = self.write_raw(inner, &rec)?;
            inner.state.relocate(seq, new_seg, rec.len() as u64);
        }
        tracing::debug!(
            from = seg,
            to = inner.active_id,
            count,
            "queue: carried pending events forward"
        );
        Ok(())
    }
}

/// Base64 (standard alphabet, padded) for `Event::payload`.
mod b64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for chunk in input.chunks(3) {
            let b0 = chunk.first().copied().unwrap_or(0);
            let b1 = chunk.get(1).copied().unwrap_or(0);
            let b2 = chunk.get(2).copied().unwrap_or(0);
            let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
            let sym = |shift: u32| ALPHABET[((n >> shift) & 63) as usize] as char;
            out.push(sym(18));
            out.push(sym(12));
            out.push(if chunk.len() > 1 { sym(6) } else { '=' });
            out.push(if chunk.len() > 2 { sym(0) } else { '=' });
        }
        out
    }

    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }

    pub(super) fn decode(s: &str) -> Result<Vec<u8>, String> {
        let bytes = s.as_bytes();
        if !bytes.len().is_multiple_of(4) {
            return Err(format!(
                "base64 length {} is not a multiple of 4",
                bytes.len()
            ));
        }
        let quads = bytes.len() / 4;
        let mut out = Vec::with_capacity(quads * 3);
        for (i, quad) in bytes.chunks_exact(4).enumerate() {
            let pad = if i + 1 == quads {
                quad.iter().rev().take_while(|&&c| c == b'=').count()
            } else {
                0
            };
            if pad > 2 {
                return Err("invalid base64 padding".to_string());
            }
            let mut n = 0u32;
            for (j, &c) in quad.iter().enumerate() {
                let v = if j >= 4 - pad {
                    0
                } else {
                    value(c).ok_or_else(|| format!("invalid base64 byte 0x{c:02x}"))?
                };
                n = (n << 6) | v;
            }
            out.push((n >> 16) as u8);
            if pad < 2 {
                out.push((n >> 8) as u8);
            }
            if pad < 1 {
                out.push(n as u8);
            }
        }
        Ok(out)
    }

    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        decode(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    fn ev(id: &str, function: &str, t: i64) -> Event {
        Event {
            id: id.to_string(),
            function: function.to_string(),
            qualifier: None,
            payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            headers: BTreeMap::from([("X-Amz-Invocation-Type".to_string(), "Event".to_string())]),
            enqueued_at_ms: t,
            attempt: 0,
            not_before_ms: t,
        }
    }

    fn opts(segment_bytes: u64) -> QueueOptions {
        QueueOptions { segment_bytes }
    }

    fn segment_ids(dir: &Path) -> Vec<u64> {
        list_segments(dir).unwrap()
    }

    fn all_events(q: &Queue) -> Vec<Event> {
        let evs = q.take_due(i64::MAX, usize::MAX, None);
        for e in &evs {
            q.release(&e.id);
        }
        evs
    }

    /// Name of a test in this module as libtest knows it.
    fn test_name(f: &str) -> String {
        let mp = module_path!();
        let path = mp.split_once("::").map_or(mp, |(_, rest)| rest);
        format!("{path}::{f}")
    }

    #[test]
    fn queue_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Queue>();
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..40usize {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let enc = b64::encode(&data);
            assert_eq!(b64::decode(&enc).unwrap(), data, "n={n}");
        }
        assert_eq!(b64::encode(b"hello"), "aGVsbG8=");
        assert!(b64::decode("aGVsbG8").is_err());
        assert!(b64::decode("a=Vs").is_err());
        let e = ev("x", "f", 1);
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains("\"payload\":\"eyJpZCI6IngifQ==\""), "{json}");
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    #[test]
    fn enqueue_take_done_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(q.pending(), 0);
        assert_eq!(q.next_due_ms(), None);
        q.enqueue(ev("a", "f", 10)).unwrap();
        q.enqueue(ev("b", "g", 20)).unwrap();
        q.enqueue(ev("c", "f", 30)).unwrap();
        assert!(matches!(
            q.enqueue(ev("a", "f", 40)),
            Err(QueueError::Duplicate { .. })
        ));
        assert_eq!(q.pending(), 3);
        assert_eq!(q.oldest_enqueued_at_ms(), Some(10));
        assert_eq!(q.next_due_ms(), Some(10));
        assert_eq!(
            q.pending_by_function(),
            BTreeMap::from([("f".to_string(), 2), ("g".to_string(), 1)])
        );

        // Only due events, oldest first, limited by max.
        assert!(q.take_due(5, 10, None).is_empty());
        let got = q.take_due(25, 10, None);
        assert_eq!(got, vec![ev("a", "f", 10), ev("b", "g", 20)]);
        assert!(
            q.take_due(25, 10, None).is_empty(),
            "leased events are not returned again"
        );
        assert_eq!(q.next_due_ms(), Some(30));
        let got = q.take_due(100, 10, Some("g"));
        assert!(got.is_empty());
        let got = q.take_due(100, 1, Some("f"));
        assert_eq!(got, vec![ev("c", "f", 30)]);
        assert_eq!(q.next_due_ms(), None);
        assert_eq!(q.pending(), 3);

        q.done("a").unwrap();
        assert_eq!(q.pending(), 2);
        assert_eq!(q.oldest_enqueued_at_ms(), Some(20));
        q.release("b");
        q.release("b"); // not taken any more: no-op
        assert_eq!(q.next_due_ms(), Some(20));
        assert_eq!(q.take_due(100, 10, Some("g")), vec![ev("b", "g", 20)]);
        q.done("b").unwrap();
        q.done("c").unwrap();
        assert!(matches!(q.done("c"), Err(QueueError::NotFound { .. })));
        assert!(matches!(
            q.retry("zz", 1, 0),
            Err(QueueError::NotFound { .. })
        ));
        assert_eq!(q.pending(), 0);
        assert!(q.pending_by_function().is_empty());
        assert_eq!(q.oldest_enqueued_at_ms(), None);
        // The id may be used again once done.
        q.enqueue(ev("a", "f", 50)).unwrap();
        assert_eq!(q.pending(), 1);
    }

    #[test]
    fn clock_going_backwards_does_not_deliver_early() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        q.enqueue(ev("a", "f", 100)).unwrap();
        q.enqueue(ev("b", "f", 50)).unwrap();
        assert_eq!(q.take_due(60, 1, None), vec![ev("b", "f", 50)]);
        // "a" is not due at 60.
        assert!(q.take_due(60, 10, None).is_empty());
        q.release("b");
        // Promote both at 200, then ask with an earlier clock.
        assert_eq!(q.take_due(200, 0, None), vec![]);
        assert_eq!(q.take_due(200, 1, None), vec![ev("b", "f", 50)]);
        q.release("b");
        assert_eq!(q.take_due(70, 10, None), vec![ev("b", "f", 50)]);
        assert_eq!(q.next_due_ms(), Some(100));
    }

    #[test]
    fn reopen_without_done_restores_everything_untaken() {
        let tmp = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            for i in 0..20 {
                let mut e = ev(&format!("e{i}"), if i % 2 == 0 { "f" } else { "g" }, i);
                e.qualifier = (i % 3 == 0).then(|| "prod".to_string());
                e.payload = (0..=255u8).cycle().skip(i as usize).take(300).collect();
                q.enqueue(e.clone()).unwrap();
                expected.push(e);
            }
            assert_eq!(q.take_due(i64::MAX, 5, None).len(), 5);
        }
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(q.pending(), 20);
        assert_eq!(q.take_due(i64::MAX, 100, None), expected);
    }

    #[test]
    fn reopen_after_done_forgets_event() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            q.enqueue(ev("a", "f", 1)).unwrap();
            q.enqueue(ev("b", "f", 2)).unwrap();
            q.done("a").unwrap();
        }
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(q.pending(), 1);
        assert_eq!(q.take_due(i64::MAX, 10, None), vec![ev("b", "f", 2)]);
        q.done("b").unwrap();
        drop(q);
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn retry_persists_attempt_and_not_before() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            q.enqueue(ev("a", "f", 1)).unwrap();
            assert_eq!(q.take_due(1, 1, None).len(), 1);
            q.retry("a", 1, 60_000).unwrap();
            assert!(q.take_due(59_999, 10, None).is_empty());
            assert_eq!(q.next_due_ms(), Some(60_000));
            let got = q.take_due(60_000, 10, None);
            assert_eq!(got.len(), 1);
            q.retry("a", 2, 180_000).unwrap();
        }
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(q.next_due_ms(), Some(180_000));
        assert!(q.take_due(179_999, 10, None).is_empty());
        let got = q.take_due(180_000, 10, None);
        let mut want = ev("a", "f", 1);
        want.attempt = 2;
        want.not_before_ms = 180_000;
        assert_eq!(got, vec![want]);
    }

    #[test]
    fn torn_tail_is_truncated_and_earlier_events_survive() {
        let tmp = tempfile::tempdir().unwrap();
        let seg = segment_path(tmp.path(), 1);
        let mut boundaries = Vec::new();
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            for i in 0..3 {
                q.enqueue(ev(&format!("e{i}"), "f", i)).unwrap();
                boundaries.push(fs::metadata(&seg).unwrap().len());
            }
        }
        // 1. The last record is cut short (power cut in the middle of it).
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(boundaries[2] - 5).unwrap();
        drop(f);
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            assert_eq!(fs::metadata(&seg).unwrap().len(), boundaries[1]);
            assert_eq!(
                q.take_due(i64::MAX, 10, None),
                vec![ev("e0", "f", 0), ev("e1", "f", 1)]
            );
            // Appending after recovery works and is readable.
            q.enqueue(ev("e3", "f", 3)).unwrap();
        }
        let len_before_garbage = fs::metadata(&seg).unwrap().len();
        // 2. Garbage after the last record.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0xAB; 100]).unwrap();
        drop(f);
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            assert_eq!(fs::metadata(&seg).unwrap().len(), len_before_garbage);
            let ids: Vec<String> = all_events(&q).into_iter().map(|e| e.id).collect();
            assert_eq!(ids, ["e0", "e1", "e3"]);
        }
        let sidecars: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".torn-"))
            .collect();
        assert_eq!(sidecars.len(), 2, "{sidecars:?}");
        let garbage = sidecars
            .iter()
            .find(|n| n.contains(&format!(".torn-{len_before_garbage}-")))
            .unwrap();
        assert_eq!(fs::read(tmp.path().join(garbage)).unwrap(), vec![0xAB; 100]);

        // 3. A zero-filled tail (file extended, data never written), and a
        //    header that is cut short: truncated, nothing kept.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        drop(f);
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            assert_eq!(fs::metadata(&seg).unwrap().len(), len_before_garbage);
            assert_eq!(q.pending(), 3);
        }
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[1, 0, 0]).unwrap();
        drop(f);
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), len_before_garbage);
        assert_eq!(q.pending(), 3);
        let n = fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".torn-")
            })
            .count();
        assert_eq!(n, 3);
    }

    #[test]
    fn corruption_in_an_earlier_segment_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), opts(600)).unwrap();
            for i in 0..10 {
                q.enqueue(ev(&format!("e{i}"), "f", i)).unwrap();
            }
        }
        let segs = segment_ids(tmp.path());
        assert!(segs.len() >= 3, "{segs:?}");
        let first = segment_path(tmp.path(), segs[0]);
        let mut bytes = fs::read(&first).unwrap();
        let first_len =
            u64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])) + HEADER_LEN;
        assert!(
            (first_len as usize) < bytes.len(),
            "need two records in the first segment"
        );
        // Flip one payload byte of the second record.
        bytes[first_len as usize + 12] ^= 0x01;
        fs::write(&first, &bytes).unwrap();
        match Queue::open(tmp.path(), opts(600)) {
            Err(QueueError::Corrupt {
                path,
                offset,
                reason,
            }) => {
                assert_eq!(path, first);
                assert_eq!(offset, first_len);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A truncated earlier segment is corrupt too (not a torn write).
        bytes[first_len as usize + 12] ^= 0x01;
        bytes.truncate(bytes.len() - 3);
        fs::write(&first, &bytes).unwrap();
        let err = Queue::open(tmp.path(), opts(600)).unwrap_err();
        assert!(
            matches!(err, QueueError::Corrupt { ref path, .. } if *path == first),
            "{err}"
        );
        assert!(err.to_string().contains("00000001.log"), "{err}");
    }

    #[test]
    fn valid_checksum_but_bad_json_is_corrupt_even_at_the_tail() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
            q.enqueue(ev("a", "f", 1)).unwrap();
        }
        let seg = segment_path(tmp.path(), 1);
        let payload = b"{\"Unknown\":{}}";
        let len = payload.len() as u32;
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&len.to_le_bytes()).unwrap();
        f.write_all(&frame_crc(len, payload).to_le_bytes()).unwrap();
        f.write_all(payload).unwrap();
        drop(f);
        let err = Queue::open(tmp.path(), QueueOptions::default()).unwrap_err();
        assert!(matches!(err, QueueError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn second_open_of_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path(), QueueOptions::default()).unwrap();
        assert!(matches!(
            Queue::open(tmp.path(), QueueOptions::default()),
            Err(QueueError::Locked { .. })
        ));
        drop(q);
        Queue::open(tmp.path(), QueueOptions::default()).unwrap();
    }

    #[test]
    fn open_creates_missing_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/queue");
        let q = Queue::open(&dir, QueueOptions::default()).unwrap();
        q.enqueue(ev("a", "f", 1)).unwrap();
        assert_eq!(q.dir(), dir);
        assert!(segment_path(&dir, 1).exists());
    }

    #[test]
    fn segments_roll_and_are_deleted_and_pending_events_carried_forward() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), opts(1024)).unwrap();
            q.enqueue(ev("keeper", "k", 0)).unwrap();
            q.retry("keeper", 3, 12_345).unwrap();
            for i in 0..200 {
                q.enqueue(ev(&format!("x{i}"), "f", i + 1)).unwrap();
                if i == 100 {
                    // A retry record far away from the Enqueued record.
                    q.retry("keeper", 4, 23_456).unwrap();
                }
                for e in q.take_due(i64::MAX, 10, Some("f")) {
                    q.done(&e.id).unwrap();
                }
            }
            let segs = segment_ids(tmp.path());
            assert!(!segs.contains(&1), "original segment deleted: {segs:?}");
            assert!(*segs.last().unwrap() > 20, "rolled many times: {segs:?}");
            assert!(segs.len() <= 3, "dead segments reclaimed: {segs:?}");
            assert_eq!(q.pending(), 1);
        }
        let q = Queue::open(tmp.path(), opts(1024)).unwrap();
        let mut want = ev("keeper", "k", 0);
        want.attempt = 4;
        want.not_before_ms = 23_456;
        assert_eq!(all_events(&q), vec![want.clone()]);
        // And again after more rolls that carry it once more.
        for i in 0..50 {
            q.enqueue(ev(&format!("y{i}"), "f", i)).unwrap();
            for e in q.take_due(i64::MAX, 10, Some("f")) {
                q.done(&e.id).unwrap();
            }
        }
        drop(q);
        let q = Queue::open(tmp.path(), opts(1024)).unwrap();
        assert_eq!(all_events(&q), vec![want]);
    }

    #[test]
    fn a_backlog_is_not_rewritten_over_and_over() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Queue::open(tmp.path(), opts(4096)).unwrap();
        for i in 0..500 {
            q.enqueue(ev(&format!("e{i}"), "f", i)).unwrap();
        }
        let segs = segment_ids(tmp.path());
        let total: u64 = segs
            .iter()
            .map(|&s| fs::metadata(segment_path(tmp.path(), s)).unwrap().len())
            .sum();
        // Nothing is done, so nothing is garbage: no carry, no deletion.
        let one: u64 = encode_record(&RecordRef::Enqueued(&ev("e100", "f", 100)))
            .unwrap()
            .len() as u64;
        assert!(total <= 500 * (one + 2), "total {total}");
        assert_eq!(segs.first(), Some(&1));
    }

    #[test]
    fn concurrent_enqueues_are_all_durable_exactly_once() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let q = Queue::open(tmp.path(), opts(256 * 1024)).unwrap();
            std::thread::scope(|s| {
                for t in 0..8 {
                    let q = &q;
                    s.spawn(move || {
                        for i in 0..500 {
                            q.enqueue(ev(&format!("t{t}-{i}"), &format!("fn{t}"), i))
                                .unwrap();
                        }
                    });
                }
            });
            assert_eq!(q.pending(), 4000);
        }
        let q = Queue::open(tmp.path(), opts(256 * 1024)).unwrap();
        assert_eq!(q.pending(), 4000);
        let evs = q.take_due(i64::MAX, usize::MAX, None);
        assert_eq!(evs.len(), 4000);
        let ids: HashSet<&str> = evs.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 4000);
        for t in 0..8 {
            for i in 0..500 {
                assert!(ids.contains(format!("t{t}-{i}").as_str()));
            }
        }
        assert!(
            evs.windows(2)
                .all(|w| w[0].enqueued_at_ms <= w[1].enqueued_at_ms)
        );
        assert_eq!(q.pending_by_function().len(), 8);
    }

    #[test]
    fn notifier_fires_on_enqueue_retry_and_release() {
        let tmp = tempfile::tempdir().unwrap();
        let q = Arc::new(Queue::open(tmp.path(), QueueOptions::default()).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let notify = q.notifier();
        let wait = |n: &tokio::sync::Notify| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), n.notified())
                    .await
                    .is_ok()
            })
        };
        // Nobody waiting: a permit is stored.
        q.enqueue(ev("a", "f", 1)).unwrap();
        assert!(wait(&notify));
        // A waiter woken from another thread.
        let q2 = Arc::clone(&q);
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(q2.take_due(10, 1, None).len(), 1);
            q2.retry("a", 1, 5).unwrap();
        });
        assert!(wait(&notify));
        h.join().unwrap();
        assert_eq!(q.take_due(10, 1, None).len(), 1);
        q.release("a");
        assert!(wait(&notify));
    }

    /// Tiny xorshift PRNG: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_operations_match_a_model_across_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let o = opts(2048);
        let mut q = Queue::open(tmp.path(), o.clone()).unwrap();
        let mut model: BTreeMap<String, Event> = BTreeMap::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut now = 1_000i64;
        let fns = ["alpha", "beta", "gamma"];
        let mut next_id = 0;
        for step in 0..4000 {
            now += rng.below(20) as i64;
            match rng.below(100) {
                0..=39 => {
                    let mut e = ev(&format!("id{next_id}"), fns[rng.below(3) as usize], now);
                    next_id += 1;
                    e.payload = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
                    e.not_before_ms = now + rng.below(3) as i64 * 50;
                    q.enqueue(e.clone()).unwrap();
                    model.insert(e.id.clone(), e);
                }
                40..=89 => {
                    let f = match rng.below(4) {
                        3 => None,
                        i => Some(fns[i as usize]),
                    };
                    let got = q.take_due(now, 1 + rng.below(5) as usize, f);
                    assert!(
                        got.windows(2)
                            .all(|w| w[0].enqueued_at_ms <= w[1].enqueued_at_ms)
                    );
                    for e in got {
                        assert_eq!(model.get(&e.id), Some(&e), "step {step}");
                        assert!(e.not_before_ms <= now);
                        assert!(f.is_none_or(|f| f == e.function));
                        match rng.below(10) {
                            0..=5 => {
                                q.done(&e.id).unwrap();
                                model.remove(&e.id);
                            }
                            6..=8 => {
                                let nb = now + rng.below(200) as i64;
                                q.retry(&e.id, e.attempt + 1, nb).unwrap();
                                let m = model.get_mut(&e.id).unwrap();
                                m.attempt += 1;
                                m.not_before_ms = nb;
                            }
                            _ => q.release(&e.id),
                        }
                    }
                }
                _ => {
                    drop(q);
                    q = Queue::open(tmp.path(), o.clone()).unwrap();
                    let mut got = all_events(&q);
                    got.sort_by(|a, b| a.id.cmp(&b.id));
                    let want: Vec<Event> = model.values().cloned().collect();
                    assert_eq!(got, want, "step {step}");
                }
            }
            assert_eq!(q.pending(), model.len(), "step {step}");
            assert_eq!(
                q.oldest_enqueued_at_ms(),
                model.values().map(|e| e.enqueued_at_ms).min()
            );
        }
        // Drain everything; the log shrinks back to a couple of segments.
        loop {
            let got = q.take_due(i64::MAX, 100, None);
            if got.is_empty() {
                break;
            }
            for e in got {
                q.done(&e.id).unwrap();
            }
        }
        for i in 0..40 {
            q.enqueue(ev(&format!("z{i}"), "alpha", i)).unwrap();
            q.done(&format!("z{i}")).unwrap();
        }
        assert_eq!(q.pending(), 0);
        let segs = segment_ids(tmp.path());
        assert!(segs.len() <= 2, "{segs:?}");
        drop(q);
        let q = Queue::open(tmp.path(), o).unwrap();
        assert_eq!(q.pending(), 0);
    }

    const CRASH_ENV: &str = "QUEUE_CRASH_CHILD";
    const CRASH_ROUND_ENV: &str = "QUEUE_CRASH_ROUND";

    /// Child side of the crash test: enqueue, take, retry and finish events
    /// from several threads, printing each acknowledged operation, until
    /// killed.
    fn crash_child(dir: &Path) {
        let round = std::env::var(CRASH_ROUND_ENV).unwrap_or_default();
        let q = match Queue::open(dir, opts(32 * 1024)) {
            Ok(q) => q,
            Err(e) => {
                eprintln!("child: open failed: {e}");
                std::process::exit(2);
            }
        };
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..3 {
                let q = &q;
                let round = &round;
                s.spawn(move || {
                    for i in 0u64.. {
                        if start.elapsed() > Duration::from_secs(60) {
                            std::process::exit(0);
                        }
                        let id = format!("r{round}-t{t}-{i}");
                        // Only "g" events are ever taken, so the "f" half must
                        // all be found again after the kill.
                        let mut e = ev(&id, if i % 2 == 0 { "g" } else { "f" }, i as i64);
                        e.payload = id.repeat(10).into_bytes();
                        if let Err(err) = q.enqueue(e) {
                            eprintln!("child: enqueue failed: {err}");
                            std::process::exit(2);
                        }
                        println!("ENQ:{id}");
                        if i % 3 != 0 {
                            continue;
                        }
                        for e in q.take_due(i64::MAX, 4, Some("g")) {
                            // Announced before `done` can make it vanish.
                            println!("TAKE:{}", e.id);
                            if e.attempt < 2 && e.id.len() % 2 == 0 {
                                if let Err(err) = q.retry(&e.id, e.attempt + 1, 0) {
                                    eprintln!("child: retry failed: {err}");
                                    std::process::exit(2);
                                }
                                println!("RETRY:{}:{}", e.attempt + 1, e.id);
                            } else {
                                if let Err(err) = q.done(&e.id) {
                                    eprintln!("child: done failed: {err}");
                                    std::process::exit(2);
                                }
                                println!("DONE:{}", e.id);
                            }
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn kill_9_loses_no_acknowledged_event() {
        if let Some(dir) = std::env::var_os(CRASH_ENV) {
            crash_child(Path::new(&dir));
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let name = test_name("kill_9_loses_no_acknowledged_event");
        let mut enqueued: HashSet<String> = HashSet::new();
        let mut done: HashSet<String> = HashSet::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut retried: HashMap<String, u32> = HashMap::new();
        for round in 0..3 {
            let mut child = Command::new(&exe)
                .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CRASH_ENV, tmp.path())
                .env(CRASH_ROUND_ENV, round.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel::<String>();
            let reader = std::thread::spawn(move || {
                for line in io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut record = |line: &str, n: &mut usize| {
                if let Some(p) = line.find("ENQ:") {
                    enqueued.insert(line[p + 4..].to_string());
                    *n += 1;
                } else if let Some(p) = line.find("TAKE:") {
                    taken.insert(line[p + 5..].to_string());
                } else if let Some(p) = line.find("DONE:") {
                    done.insert(line[p + 5..].to_string());
                } else if let Some(p) = line.find("RETRY:") {
                    let (attempt, id) = line[p + 6..].split_once(':').unwrap();
                    let attempt: u32 = attempt.parse().unwrap();
                    let a = retried.entry(id.to_string()).or_default();
                    *a = (*a).max(attempt);
                }
            };
            let start = Instant::now();
            let mut n = 0usize;
            let kill_after = Duration::from_millis(700 + 400 * round);
            while start.elapsed() < kill_after || n < 200 {
                assert!(start.elapsed() < Duration::from_secs(60), "child too slow");
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(line) => record(&line, &mut n),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        panic!("crash child exited early: {:?}", child.wait())
                    }
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            reader.join().unwrap();
            for line in rx.try_iter() {
                record(&line, &mut n);
            }
            assert!(n >= 200);
            assert!(
                enqueued.len() > 2 * taken.len() / 3,
                "most events stay untaken"
            );

            let q = Queue::open(tmp.path(), opts(32 * 1024)).unwrap();
            let present: HashMap<String, Event> = all_events(&q)
                .into_iter()
                .map(|e| (e.id.clone(), e))
                .collect();
            assert_eq!(present.len(), q.pending());
            for id in &enqueued {
                // A taken event may have been finished durably just before
                // the kill, without its DONE line being printed.
                if !taken.contains(id) {
                    let e = present
                        .get(id)
                        .unwrap_or_else(|| panic!("round {round}: acknowledged event {id} lost"));
                    assert_eq!(e.payload, id.repeat(10).into_bytes());
                }
            }
            for id in &done {
                assert!(
                    !present.contains_key(id),
                    "round {round}: finished event {id} came back"
                );
            }
            for (id, attempt) in &retried {
                if let Some(e) = present.get(id) {
                    assert!(e.attempt >= *attempt, "round {round}: retry of {id} lost");
                }
            }
            eprintln!(
                "crash round {round}: {} acknowledged so far, {} taken, {} done, {} retried, {} pending, segments {:?}",
                enqueued.len(),
                taken.len(),
                done.len(),
                retried.len(),
                present.len(),
                segment_ids(tmp.path())
            );
        }
    }
}
