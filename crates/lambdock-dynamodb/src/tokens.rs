//! `TransactWriteItems` idempotency that survives restarts.
//!
//! DynamoDB answers a `TransactWriteItems` retried with the same `ClientRequestToken` within
//! ten minutes without applying it again (or with `IdempotentParameterMismatchException` when
//! the parameters differ). rustack keeps its tokens in memory only, outside its snapshots, so a
//! restart or an `UpdateTable` (which rebuilds the engine from a snapshot) forgot them and a
//! retry was applied twice. This table remembers each token's request fingerprint and first
//! answer; it is rebuilt from the log at start and saved beside each snapshot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long DynamoDB honours a token.
const WINDOW: Duration = Duration::from_secs(600);

/// One completed transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Completed {
    fingerprint: String,
    completed_ms: u64,
    answer: String,
}

/// What to do with a request that carries a known token.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The same request: answer this again, apply nothing.
    Again(String),
    /// The token was used with other parameters.
    Mismatch,
}

/// The tokens of the last ten minutes.
#[derive(Debug, Default)]
pub struct Tokens {
    completed: Mutex<HashMap<String, Completed>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The token of a `TransactWriteItems` request, and the fingerprint of the rest of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    token: String,
    fingerprint: String,
}

impl TokenKey {
    /// The key of a `TransactWriteItems` body, when it carries a token (objects sorted, so the
    /// same parameters in another key order are the same request). A body without one costs
    /// only a search for the member's name.
    pub fn of(body: &[u8]) -> Option<TokenKey> {
        const NAME: &[u8] = b"\"ClientRequestToken\"";
        body.windows(NAME.len()).position(|w| w == NAME)?;
        let mut request: serde_json::Value = serde_json::from_slice(body).ok()?;
        let token = request
            .as_object_mut()?
            .remove("ClientRequestToken")?
            .as_str()?
            .to_string();
        request.sort_all_objects();
        let canonical = serde_json::to_vec(&request).ok()?;
        Some(TokenKey {
            token,
            fingerprint: hex::encode(Sha256::digest(&canonical)),
        })
    }
}

impl Tokens {
    fn completed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Completed>> {
        self.completed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the request of `key` repeats a transaction of the last ten minutes.
    pub fn check(&self, key: &TokenKey) -> Option<Seen> {
        let mut completed = self.completed();
        let cutoff = now_ms().saturating_sub(WINDOW.as_millis() as u64);
        completed.retain(|_, c| c.completed_ms >= cutoff);
        let c = completed.get(&key.token)?;
        Some(if c.fingerprint == key.fingerprint {
            Seen::Again(c.answer.clone())
        } else {
            Seen::Mismatch
        })
    }

    /// Remembers a transaction that succeeded with `answer` (a replayed one with the time of
    /// the replay, which can only make its window longer, never let a retry apply twice).
    pub fn record(&self, key: TokenKey, answer: String) {
        self.completed().entry(key.token).or_insert(Completed {
            fingerprint: key.fingerprint,
            completed_ms: now_ms(),
            answer,
        });
    }

    /// The file saved beside `snapshot-<generation>.json`.
    pub fn path(dir: &Path, generation: u64) -> PathBuf {
        dir.join(format!("tokens-{generation:020}.json"))
    }

    /// The tokens to save with a snapshot.
    pub fn export(&self) -> Vec<u8> {
        serde_json::to_vec(&*self.completed()).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Loads the tokens saved with a snapshot (a missing file means none).
    pub fn load(path: &Path) -> std::io::Result<Tokens> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tokens::default()),
            Err(e) => return Err(e),
        };
        let completed = serde_json::from_slice(&data)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(Tokens {
            completed: Mutex::new(completed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parameters_in_any_order_repeat_and_others_mismatch() {
        let tokens = Tokens::default();
        let first = br#"{"ClientRequestToken":"t1","TransactItems":[{"Put":{"TableName":"a","Item":{"k":{"S":"1"},"v":{"N":"2"}}}}]}"#;
        let key = |body: &[u8]| TokenKey::of(body).unwrap();
        assert_eq!(tokens.check(&key(first)), None);
        tokens.record(key(first), "{}".into());
        let reordered = br#"{"TransactItems":[{"Put":{"Item":{"v":{"N":"2"},"k":{"S":"1"}},"TableName":"a"}}],"ClientRequestToken":"t1"}"#;
        assert_eq!(
            tokens.check(&key(reordered)),
            Some(Seen::Again("{}".into()))
        );
        let other = br#"{"ClientRequestToken":"t1","TransactItems":[{"Put":{"TableName":"b","Item":{"k":{"S":"1"}}}}]}"#;
        assert_eq!(tokens.check(&key(other)), Some(Seen::Mismatch));
        // A request without a token has no key.
        assert_eq!(TokenKey::of(br#"{"TransactItems":[]}"#), None);
    }

    #[test]
    fn saved_tokens_load_back_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::default();
        let key = TokenKey::of(br#"{"ClientRequestToken":"t1","TransactItems":[]}"#).unwrap();
        tokens.record(key.clone(), "{}".into());
        tokens.completed().insert(
            "old".into(),
            Completed {
                fingerprint: String::new(),
                completed_ms: now_ms() - WINDOW.as_millis() as u64 - 1,
                answer: "{}".into(),
            },
        );
        let path = Tokens::path(dir.path(), 3);
        std::fs::write(&path, tokens.export()).unwrap();
        let loaded = Tokens::load(&path).unwrap();
        assert_eq!(loaded.check(&key), Some(Seen::Again("{}".into())));
        assert!(!loaded.completed().contains_key("old"));
        assert!(
            Tokens::load(&Tokens::path(dir.path(), 4))
                .unwrap()
                .completed()
                .is_empty()
        );
    }
}
