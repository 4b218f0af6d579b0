//! The durable store: rustack's in-memory engine, a write-ahead log of the requests that changed
//! it, and snapshots that let the log be dropped.
//!
//! Why requests and not item images: rustack evaluates conditions, `ADD`, `list_append` and
//! transactions against the current state only (no clock, no randomness in item writes), so
//! replaying the same successful requests in the same order on the same starting state rebuilds
//! the same items. Only table metadata that rustack stamps itself (creation time, table id) can
//! differ after a replay; the snapshot keeps them exact once taken.
//!
//! On disk, under one directory: `snapshot-<G>.json` is the state before log generation `G`
//! (with `tokens-<G>.json`, the transaction tokens of [`crate::tokens`] at that point);
//! `wal-<G>.log`, `wal-<G+1>.log`, … hold what came after. A snapshot is written to a temporary
//! file, synced and renamed, and only then are older generations deleted, so a crash at any point
//! leaves a snapshot and the complete logs that follow it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rustack_dynamodb_core::config::DynamoDBConfig;
use rustack_dynamodb_core::handler::RustackDynamoDBHandler;
use rustack_dynamodb_core::provider::RustackDynamoDB;
use rustack_dynamodb_core::snapshot::DynamoDBSnapshot;
use rustack_dynamodb_http::body::DynamoDBResponseBody;
use rustack_dynamodb_http::dispatch::DynamoDBHandler;
use rustack_dynamodb_model::error::DynamoDBError;
use rustack_dynamodb_model::operations::DynamoDBOperation;

use crate::DynamoError;
use crate::tables;
use crate::tokens::{Seen, TokenKey, Tokens};
use crate::wal::{self, Record, Wal};

/// Log records after which a snapshot replaces the logs.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 50_000;

/// Whether `op` changes state (and so must be logged before it is acknowledged).
#[must_use]
pub fn is_mutating(op: DynamoDBOperation) -> bool {
    use DynamoDBOperation as Op;
    matches!(
        op,
        Op::CreateTable
            | Op::UpdateTable
            | Op::DeleteTable
            | Op::PutItem
            | Op::UpdateItem
            | Op::DeleteItem
            | Op::BatchWriteItem
            | Op::TransactWriteItems
            | Op::UpdateTimeToLive
            | Op::TagResource
            | Op::UntagResource
            | Op::UpdateContinuousBackups
    )
}

/// Which log generation appends go to, and how many records it holds.
struct Generation {
    current: u64,
    records: u64,
}

/// The engine with its log; see the module docs.
pub struct Store {
    engine: Arc<RustackDynamoDB>,
    handler: RustackDynamoDBHandler,
    tokens: Tokens,
    wal: Wal,
    /// Held while a mutating request is applied and appended, so log order is apply order.
    apply: tokio::sync::Mutex<Generation>,
    snapshotting: AtomicBool,
    dir: PathBuf,
    snapshot_every: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("wal", &self.wal)
            .finish_non_exhaustive()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DynamoError + '_ {
    move |source| DynamoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Generations of files named `<prefix><20 digits><suffix>` in `dir`.
fn generations(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<u64>, DynamoError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(g) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(suffix))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push(g);
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}.json"))
}

impl Store {
    /// Opens the store in `dir` (created if missing): loads the newest snapshot and replays the
    /// logs after it. `region` is the region rustack puts in ARNs.
    ///
    /// # Errors
    ///
    /// The directory, snapshot or logs cannot be read, or the snapshot does not parse.
    pub async fn open(dir: &Path, region: &str, snapshot_every: u64) -> Result<Self, DynamoError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            wal::sync_dir(parent).map_err(io_err(parent))?;
        }
        let engine = Arc::new(RustackDynamoDB::new(DynamoDBConfig {
            skip_signature_validation: true,
            default_region: region.to_string(),
        }));
        let handler = RustackDynamoDBHandler::new(Arc::clone(&engine));

        let base = generations(dir, "snapshot-", ".json")?
            .last()
            .copied()
            .unwrap_or(0);
        let tokens_path = Tokens::path(dir, base);
        let tokens = Tokens::load(&tokens_path).map_err(io_err(&tokens_path))?;
        if base > 0 {
            let path = snapshot_path(dir, base);
            let data = std::fs::read(&path).map_err(io_err(&path))?;
            let snapshot: DynamoDBSnapshot =
                serde_json::from_slice(&data).map_err(|source| DynamoError::Snapshot {
                    path: path.clone(),
                    message: source.to_string(),
                })?;
            engine
                .import_snapshot(snapshot)
                .map_err(|source| DynamoError::Snapshot {
                    path,
                    message: source.to_string(),
                })?;
        }
        let logs: Vec<u64> = generations(dir, "wal-", ".log")?
            .into_iter()
            .filter(|g| *g >= base)
            .collect();
        let mut replayed = 0u64;
        for g in &logs {
            let path = wal::log_path(dir, *g);
            for record in wal::read_all(&path).map_err(io_err(&path))? {
                replay(&engine, &handler, &tokens, record).await;
                replayed += 1;
            }
        }
        let current = logs.last().copied().unwrap_or(base).max(1);
        let path = wal::log_path(dir, current);
        let wal = Wal::open(&path, 0).map_err(io_err(&path))?;
        tracing::info!(dir = %dir.display(), snapshot = base, replayed, "dynamodb store opened");
        let store = Store {
            engine,
            handler,
            tokens,
            wal,
            apply: tokio::sync::Mutex::new(Generation {
                current,
                records: replayed,
            }),
            snapshotting: AtomicBool::new(false),
            dir: dir.to_path_buf(),
            snapshot_every: snapshot_every.max(1),
        };
        if replayed > 0 {
            store.snapshot().await?;
        }
        Ok(store)
    }

    /// Runs one operation. A mutating one that succeeds is logged and synced before this
    /// returns; a read waits until every write it could have seen is durable, so nothing a
    /// client saw can be lost by a crash.
    ///
    /// The work runs in its own task: a client that hangs up must not cancel it between applying
    /// a write and logging it (the engine would then hold a write the log lacks, and a replay
    /// would diverge from what later requests saw), nor in the middle of a group commit.
    ///
    /// # Errors
    ///
    /// The engine's error for the request, or an internal error when the log cannot be synced.
    pub async fn execute(
        self: &Arc<Self>,
        op: DynamoDBOperation,
        body: Bytes,
    ) -> Result<http::Response<DynamoDBResponseBody>, DynamoDBError> {
        let store = Arc::clone(self);
        tokio::spawn(async move { store.run(op, body).await })
            .await
            .map_err(|e| DynamoDBError::internal_error(format!("DynamoDB request failed: {e}")))?
    }

    async fn run(
        self: &Arc<Self>,
        op: DynamoDBOperation,
        body: Bytes,
    ) -> Result<http::Response<DynamoDBResponseBody>, DynamoDBError> {
        let (response, seq) = if is_mutating(op) {
            let token = (op == DynamoDBOperation::TransactWriteItems)
                .then(|| TokenKey::of(&body))
                .flatten();
            let mut generation = self.apply.lock().await;
            if let Some(key) = &token {
                match self.tokens.check(key) {
                    Some(Seen::Again(answer)) => {
                        let seq = self.wal.last();
                        drop(generation);
                        self.sync(seq).await?;
                        return Ok(rustack_dynamodb_http::response::json_response(
                            answer.into_bytes(),
                            "",
                        ));
                    }
                    Some(Seen::Mismatch) => return Err(token_mismatch()),
                    None => {}
                }
            }
            let applied = apply(&self.engine, &self.handler, op, body).await;
            let applied = match (applied, token) {
                (Ok((r, logged)), Some(key)) if r.status().is_success() => {
                    remember(&self.tokens, key, r).await.map(|r| (r, logged))
                }
                (applied, _) => applied,
            };
            let seq = match &applied {
                Ok((r, logged)) if r.status().is_success() => {
                    generation.records += 1;
                    self.wal.append(&Record {
                        operation: op.as_str().to_string(),
                        body: logged.to_vec(),
                    })
                }
                _ => self.wal.last(),
            };
            let response = applied.map(|(r, _)| r);
            if generation.records >= self.snapshot_every {
                generation.records = 0;
                let store = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = store.snapshot().await {
                        tracing::error!(error = %e, "dynamodb snapshot failed; the log keeps growing");
                    }
                });
            }
            (response, seq)
        } else {
            let response = apply(&self.engine, &self.handler, op, body)
                .await
                .map(|(r, _)| r);
            // A write whose effect this read saw has finished appending once its lock is free.
            let seq = {
                let _applied = self.apply.lock().await;
                self.wal.last()
            };
            (response, seq)
        };
        self.sync(seq).await?;
        response
    }

    /// Waits until the log is durable up to `seq`.
    async fn sync(&self, seq: u64) -> Result<(), DynamoDBError> {
        self.wal.sync_to(seq).await.map_err(|e| {
            tracing::error!(error = %e, "dynamodb log sync failed");
            DynamoDBError::internal_error("Internal server error")
        })
    }

    /// Writes a snapshot of the current state and deletes the logs and snapshots it replaces.
    /// Does nothing when a snapshot is already being written.
    ///
    /// # Errors
    ///
    /// The snapshot or the new log could not be written.
    pub async fn snapshot(&self) -> Result<(), DynamoError> {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.write_snapshot().await;
        self.snapshotting.store(false, Ordering::Release);
        result
    }

    async fn write_snapshot(&self) -> Result<(), DynamoError> {
        let (generation, snapshot) = {
            let mut generation = self.apply.lock().await;
            let next = generation.current + 1;
            let path = wal::log_path(&self.dir, next);
            self.wal.rotate(&path).await.map_err(io_err(&path))?;
            generation.current = next;
            generation.records = 0;
            let engine = Arc::clone(&self.engine);
            let snapshot = tokio::task::spawn_blocking(move || engine.export_snapshot())
                .await
                .map_err(|e| DynamoError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(e),
                })?;
            (next, (snapshot, self.tokens.export()))
        };
        let dir = self.dir.clone();
        let (snapshot, tokens) = snapshot;
        tokio::task::spawn_blocking(move || persist_snapshot(&dir, generation, &snapshot, &tokens))
            .await
            .map_err(|e| DynamoError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(e),
            })??;
        tracing::debug!(generation, "dynamodb snapshot written");
        Ok(())
    }
}

/// Runs one operation on the engine, with the table metadata rustack leaves out ([`tables`]),
/// and returns the answer with the body to log if it changed state. Requests and replays both
/// come through here, so a replay rebuilds the same state.
async fn apply(
    engine: &RustackDynamoDB,
    handler: &RustackDynamoDBHandler,
    op: DynamoDBOperation,
    body: Bytes,
) -> Result<(http::Response<DynamoDBResponseBody>, Bytes), DynamoDBError> {
    if op == DynamoDBOperation::CreateTable {
        let response = handler.handle_operation(op, body.clone()).await?;
        if !response.status().is_success() {
            return Ok((response, body));
        }
        return tables::after_create(engine, body, response).await;
    }
    let response = answer(engine, handler, op, body.clone()).await?;
    Ok((response, body))
}

async fn answer(
    engine: &RustackDynamoDB,
    handler: &RustackDynamoDBHandler,
    op: DynamoDBOperation,
    body: Bytes,
) -> Result<http::Response<DynamoDBResponseBody>, DynamoDBError> {
    let response = handler.handle_operation(op, body.clone()).await?;
    if !response.status().is_success() {
        return Ok(response);
    }
    match op {
        DynamoDBOperation::UpdateTable => {
            tables::update_table(engine, &body)?;
            let name = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("TableName").cloned())
                .unwrap_or_default();
            let described = handler
                .handle_operation(
                    DynamoDBOperation::DescribeTable,
                    Bytes::from(serde_json::json!({ "TableName": name }).to_string()),
                )
                .await?;
            let mut described = tables::json_of(tables::hide_local_twins(described).await?).await?;
            let table = described["Table"].take();
            let json = serde_json::json!({ "TableDescription": table }).to_string();
            Ok(rustack_dynamodb_http::response::json_response(
                json.into_bytes(),
                "",
            ))
        }
        DynamoDBOperation::DescribeTable | DynamoDBOperation::DeleteTable => {
            tables::hide_local_twins(response).await
        }
        DynamoDBOperation::Query | DynamoDBOperation::Scan => {
            let Some(request) = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .filter(|r| r.get("IndexName").is_some())
            else {
                return Ok(response);
            };
            let described = handler
                .handle_operation(
                    DynamoDBOperation::DescribeTable,
                    Bytes::from(
                        serde_json::json!({ "TableName": request["TableName"] }).to_string(),
                    ),
                )
                .await?;
            let table = tables::json_of(described).await?;
            let mut answer = tables::json_of(response).await?;
            tables::project_index(&request, &table, &mut answer);
            Ok(rustack_dynamodb_http::response::json_response(
                answer.to_string().into_bytes(),
                "",
            ))
        }
        _ => Ok(response),
    }
}

/// Writes `path` through a synced temporary file and a rename.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), DynamoError> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes `tokens-<generation>.json`, then `snapshot-<generation>.json` (the snapshot's rename
/// makes the pair current), then removes what they supersede.
fn persist_snapshot(
    dir: &Path,
    generation: u64,
    snapshot: &DynamoDBSnapshot,
    tokens: &[u8],
) -> Result<(), DynamoError> {
    let path = snapshot_path(dir, generation);
    let data = serde_json::to_vec(snapshot).map_err(|e| DynamoError::Snapshot {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_atomically(&Tokens::path(dir, generation), tokens)?;
    write_atomically(&path, &data)?;
    wal::sync_dir(dir).map_err(io_err(dir))?;
    for g in generations(dir, "wal-", ".log")? {
        if g < generation {
            let old = wal::log_path(dir, g);
            std::fs::remove_file(&old).map_err(io_err(&old))?;
        }
    }
    for g in generations(dir, "snapshot-", ".json")? {
        if g < generation {
            let old = snapshot_path(dir, g);
            std::fs::remove_file(&old).map_err(io_err(&old))?;
        }
    }
    for g in generations(dir, "tokens-", ".json")? {
        if g < generation {
            let old = Tokens::path(dir, g);
            std::fs::remove_file(&old).map_err(io_err(&old))?;
        }
    }
    Ok(())
}

/// DynamoDB's answer to a token reused with other parameters.
fn token_mismatch() -> DynamoDBError {
    DynamoDBError::with_message(
        rustack_dynamodb_model::error::DynamoDBErrorCode::IdempotentParameterMismatchException,
        "ClientRequestToken was already used with different parameters",
    )
}

/// Records a successful `TransactWriteItems` with its answer, and gives the answer back.
async fn remember(
    tokens: &Tokens,
    key: TokenKey,
    response: http::Response<DynamoDBResponseBody>,
) -> Result<http::Response<DynamoDBResponseBody>, DynamoDBError> {
    let answer = tables::json_of(response).await?.to_string();
    tokens.record(key, answer.clone());
    Ok(rustack_dynamodb_http::response::json_response(
        answer.into_bytes(),
        "",
    ))
}

/// Applies a logged request again. It succeeded when it was logged, so an error here means the
/// engine is not deterministic for it: worth a warning, not worth refusing to start.
async fn replay(
    engine: &RustackDynamoDB,
    handler: &RustackDynamoDBHandler,
    tokens: &Tokens,
    record: Record,
) {
    let Some(op) = DynamoDBOperation::from_name(&record.operation) else {
        tracing::warn!(operation = %record.operation, "unknown operation in the dynamodb log; skipped");
        return;
    };
    let body = Bytes::from(record.body);
    match apply(engine, handler, op, body.clone()).await {
        Ok((r, _)) if r.status().is_success() => {
            if op == DynamoDBOperation::TransactWriteItems
                && let Some(key) = TokenKey::of(&body)
                && let Err(e) = remember(tokens, key, r).await
            {
                tracing::warn!(error = %e.message, "a replayed transaction's token was not kept");
            }
        }
        Ok((r, _)) => {
            tracing::warn!(operation = %record.operation, status = %r.status(), "dynamodb log record did not replay");
        }
        Err(e) => {
            tracing::warn!(operation = %record.operation, error = %e.message, "dynamodb log record did not replay");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};

    async fn call(store: &Arc<Store>, op: &str, body: Value) -> Result<Value, String> {
        let op = DynamoDBOperation::from_name(op).unwrap();
        match store
            .execute(op, Bytes::from(serde_json::to_vec(&body).unwrap()))
            .await
        {
            Ok(r) => {
                let bytes = r.into_body().collect().await.unwrap().to_bytes();
                Ok(serde_json::from_slice(&bytes).unwrap())
            }
            Err(e) => Err(format!("{}: {}", e.code.as_str(), e.message)),
        }
    }

    async fn seed(store: &Arc<Store>) {
        call(
            store,
            "CreateTable",
            json!({
                "TableName": "tbl",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST"
            }),
        )
        .await
        .unwrap();
    }

    async fn add(store: &Arc<Store>, n: i64) {
        call(
            store,
            "UpdateItem",
            json!({
                "TableName": "tbl",
                "Key": {"pk": {"S": "counter"}},
                "UpdateExpression": "ADD n :n",
                "ExpressionAttributeValues": {":n": {"N": n.to_string()}}
            }),
        )
        .await
        .unwrap();
    }

    async fn counter(store: &Arc<Store>) -> Value {
        call(
            store,
            "GetItem",
            json!({"TableName": "tbl", "Key": {"pk": {"S": "counter"}}, "ConsistentRead": true}),
        )
        .await
        .unwrap()["Item"]["n"]["N"]
            .clone()
    }

    #[tokio::test]
    async fn writes_replay_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
            seed(&store).await;
            for n in 1..=5 {
                add(&store, n).await;
            }
            // A failed conditional write does not reach the log.
            let failed = call(
                &store,
                "PutItem",
                json!({"TableName": "tbl", "Item": {"pk": {"S": "counter"}},
                       "ConditionExpression": "attribute_not_exists(pk)"}),
            )
            .await;
            assert!(
                failed
                    .unwrap_err()
                    .starts_with("ConditionalCheckFailedException")
            );
            assert_eq!(store.wal.last(), 6);
        }
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        assert_eq!(counter(&store).await, json!("15"));
    }

    #[tokio::test]
    async fn a_replayed_table_keeps_its_creation_time_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let describe = json!({"TableName": "tbl"});
        let before = {
            let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
            seed(&store).await;
            call(&store, "DescribeTable", describe.clone())
                .await
                .unwrap()
        };
        // Let the clock move on, so a re-stamp would show.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        let after = call(&store, "DescribeTable", describe).await.unwrap();
        assert_eq!(
            after["Table"]["CreationDateTime"],
            before["Table"]["CreationDateTime"]
        );
        assert_eq!(after["Table"]["TableId"], before["Table"]["TableId"]);
    }

    #[tokio::test]
    async fn snapshots_replace_the_logs_and_later_writes_replay_on_top() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
            seed(&store).await;
            add(&store, 10).await;
            store.snapshot().await.unwrap();
            add(&store, 1).await;
        }
        let snapshots = generations(dir.path(), "snapshot-", ".json").unwrap();
        let logs = generations(dir.path(), "wal-", ".log").unwrap();
        assert_eq!(snapshots, vec![2]);
        assert_eq!(logs, vec![2]);
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        assert_eq!(counter(&store).await, json!("11"));
        // Opening compacts the replayed log into a fresh snapshot.
        assert_eq!(
            generations(dir.path(), "snapshot-", ".json").unwrap(),
            vec![3]
        );
        add(&store, 100).await;
        drop(store);
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        assert_eq!(counter(&store).await, json!("111"));
    }

    async fn transact_add(store: &Arc<Store>, token: &str, n: i64) -> Result<Value, String> {
        call(
            store,
            "TransactWriteItems",
            json!({
                "ClientRequestToken": token,
                "TransactItems": [{"Update": {
                    "TableName": "tbl",
                    "Key": {"pk": {"S": "counter"}},
                    "UpdateExpression": "ADD n :n",
                    "ExpressionAttributeValues": {":n": {"N": n.to_string()}}
                }}]
            }),
        )
        .await
    }

    #[tokio::test]
    async fn a_transaction_token_is_honoured_across_reopens_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
            seed(&store).await;
            transact_add(&store, "once", 5).await.unwrap();
        }
        // Reopened from the log (which then becomes a snapshot).
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        transact_add(&store, "once", 5).await.unwrap();
        assert_eq!(counter(&store).await, json!("5"));
        drop(store);
        // Reopened from that snapshot, with no log to replay.
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        transact_add(&store, "once", 5).await.unwrap();
        assert_eq!(counter(&store).await, json!("5"));
        let err = transact_add(&store, "once", 6).await.unwrap_err();
        assert!(
            err.starts_with("IdempotentParameterMismatchException"),
            "{err}"
        );
        transact_add(&store, "twice", 5).await.unwrap();
        assert_eq!(counter(&store).await, json!("10"));
    }

    #[tokio::test]
    async fn a_crash_before_the_snapshot_rename_keeps_the_old_generation() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
            seed(&store).await;
            add(&store, 7).await;
        }
        // A half-written snapshot that never got renamed is ignored.
        std::fs::write(
            dir.path().join("snapshot-00000000000000000009.json.tmp"),
            b"{",
        )
        .unwrap();
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        assert_eq!(counter(&store).await, json!("7"));
    }

    #[tokio::test]
    async fn the_threshold_triggers_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 3).await.unwrap());
        seed(&store).await;
        add(&store, 1).await;
        add(&store, 2).await;
        // The snapshot runs in the background; wait for it with a bound.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while generations(dir.path(), "snapshot-", ".json")
            .unwrap()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "no snapshot written");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(store);
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 3).await.unwrap());
        assert_eq!(counter(&store).await, json!("3"));
    }
}
