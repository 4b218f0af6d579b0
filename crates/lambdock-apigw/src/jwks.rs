//! Keys of other issuers, found as API Gateway's JWT authorizers find them: OpenID Connect
//! discovery (`{issuer}/.well-known/openid-configuration`, then the JWKS at its `jwks_uri`).
//!
//! Key sets are cached per issuer for an hour. A token naming a key the cached set does not
//! have (the issuer rotated its keys) fetches the set again, at most once a minute per issuer,
//! so a flood of tokens with made-up `kid`s cannot turn into a flood of requests to the issuer.
//! A fetch that fails is remembered for that minute too; its tokens are refused meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::de::DeserializeOwned;

/// How long a fetched key set is used before it is fetched again.
const FRESH_FOR: Duration = Duration::from_secs(3600);
/// The least time between two fetches for one issuer.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Bound on one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a discovery document or key set.
const MAX_DOCUMENT: usize = 1 << 20;

/// Why an issuer's keys could not be had.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct JwksError {
    url: String,
    reason: String,
}

struct Cached {
    fetched: Instant,
    set: Option<JwkSet>,
}

/// The key `kid` of `set` (without a `kid`, the set's only key).
pub fn key_in(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => set.find(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// One issuer's cached set; its lock is held across a fetch, so concurrent tokens of that
/// issuer wait for one fetch while other issuers are not held up.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The key sets of other issuers, fetched on demand.
pub struct IssuerKeys {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    issuers: std::sync::Mutex<HashMap<String, Slot>>,
}

impl IssuerKeys {
    /// A cache over an HTTPS (or, for issuers on a local network, HTTP) client that trusts the
    /// system's root certificates.
    pub fn new() -> std::io::Result<IssuerKeys> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(IssuerKeys {
            client: Client::builder(TokioExecutor::new()).build(https),
            issuers: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The key `kid` of `issuer` (without a `kid`, the set's only key).
    pub async fn find(&self, issuer: &str, kid: Option<&str>) -> Option<Jwk> {
        let slot = self
            .issuers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(issuer.to_string())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        let lookup = |set: &JwkSet| key_in(set, kid);
        if let Some(cached) = cached.as_ref() {
            let found = cached.set.as_ref().and_then(lookup);
            let age = cached.fetched.elapsed();
            if (found.is_some() && age < FRESH_FOR) || age < REFETCH_AFTER {
                return found;
            }
        }
        let set = match self.fetch(issuer).await {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::warn!(issuer, error = %e, "fetching the issuer's keys failed; its tokens are refused");
                None
            }
        };
        let found = set.as_ref().and_then(lookup);
        *cached = Some(Cached {
            fetched: Instant::now(),
            set,
        });
        found
    }

    async fn fetch(&self, issuer: &str) -> Result<JwkSet, JwksError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let Discovery { jwks_uri } = self.get_json(&discovery).await?;
        self.get_json(&jwks_uri).await
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, JwksError> {
        let error = |reason: String| JwksError {
            url: url.to_string(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|e| error(format!("bad URL: {e}")))?;
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.get(uri))
            .await
            .map_err(|_| error("no answer in time".into()))?
            .map_err(|e| error(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(error(format!("answered {}", resp.status())));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(resp.into_body(), MAX_DOCUMENT).collect(),
        )
        .await
        .map_err(|_| error("no answer in time".into()))?
        .map_err(|e| error(e.to_string()))?
        .to_bytes();
        serde_json::from_slice(&body).map_err(|e| error(format!("not the expected JSON: {e}")))
    }
}
