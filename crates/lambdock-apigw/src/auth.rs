//! Who may call a route: the reference's login (`POST /user/auth/v1` with `x-api-key` and a
//! user name and password, answered with an HS256 `IdToken`), JWT verification for routes with
//! an authorizer, and API keys for `api_key_required` routes.
//!
//! Keys: tokens whose issuer is the platform's own (`issuer` in [`AuthConfig`]) are verified
//! with the configured HS256 secret; tokens of any other issuer (RS256, ES256, ... by `kid`)
//! with the keys of the configured JWKS document when it has the key, else with the issuer's
//! own keys found by OpenID Connect discovery, as API Gateway does ([`crate::jwks`]).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use lambdock_template::manifest::Authorizer;
use serde_json::{Map, Value, json};

use crate::event::Identity;
use crate::jwks::{IssuerKeys, key_in};
use crate::response::Body;

/// Secrets and token settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret of the platform's tokens.
    pub jwt_secret: String,
    /// `iss` of the platform's tokens.
    pub issuer: String,
    /// `aud` of the platform's tokens.
    pub audience: String,
    /// Lifetime of a login's token.
    pub token_lifetime: Duration,
    /// Valid `x-api-key` values (login and `api_key_required` routes).
    pub api_keys: Vec<String>,
    /// The login's user name.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The login path.
    pub login_path: String,
    /// Keys of other issuers, looked up before the issuers' own.
    pub jwks: Option<JwkSet>,
}

/// Why a caller is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token, or one that does not verify.
    #[error("unauthorized")]
    Unauthorized,
    /// A valid token past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// A valid token without a required scope, or no valid API key.
    #[error("forbidden")]
    Forbidden,
}

/// Compares secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// The token in a header, with or without the `Bearer` scheme.
fn bearer(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then(|| token.to_string())
}

/// `$request.header.Authorization` → `authorization`.
fn identity_header(source: &str) -> String {
    source
        .strip_prefix("$request.header.")
        .unwrap_or("Authorization")
        .to_ascii_lowercase()
}

/// Claim values as API Gateway hands them to functions: strings, lists as `[a b]`.
fn stringify(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let split = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    claims
        .get("scope")
        .or_else(|| claims.get("scp"))
        .map(split)
        .unwrap_or_default()
}

/// The authenticator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The JWT secret is not usable.
    #[error("JWT secret: {0}")]
    Secret(#[from] jsonwebtoken::errors::Error),
    /// The client for other issuers' keys (system root certificates).
    #[error("the client for issuers' keys: {0}")]
    Client(#[from] std::io::Error),
}

/// The authenticator of one API port.
pub struct Auth {
    cfg: AuthConfig,
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuers: IssuerKeys,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// An authenticator with these secrets (an empty JWT secret is refused).
    pub fn new(cfg: AuthConfig) -> Result<Auth, AuthSetupError> {
        Ok(Auth {
            encoding: EncodingKey::from_secret(cfg.jwt_secret.as_bytes())?,
            decoding: DecodingKey::from_secret(cfg.jwt_secret.as_bytes())?,
            issuers: IssuerKeys::new()?,
            cfg,
        })
    }

    /// The login path.
    pub fn login_path(&self) -> &str {
        &self.cfg.login_path
    }

    /// A token for `user`, as the login issues it.
    pub fn issue(&self, user: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_s();
        let claims = json!({
            "sub": user,
            "iat": now,
            "exp": now + self.cfg.token_lifetime.as_secs(),
            "iss": self.cfg.issuer,
            "aud": self.cfg.audience,
        });
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// `POST /user/auth/v1`: the body is validated first (422), then the API key (401), then
    /// the user and password (401 with `PADMA_USER_AUTHORIZED: true`).
    pub fn login(&self, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
        let parsed: Option<(String, String)> =
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                let p = v.get("AuthParameters")?;
                Some((
                    p.get("USERNAME")?.as_str()?.to_string(),
                    p.get("PASSWORD")?.as_str()?.to_string(),
                ))
            });
        let Some((user, password)) = parsed else {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"message": "Validation Error",
                       "detail": "AuthParameters.USERNAME and AuthParameters.PASSWORD (strings) are required"}),
            );
        };
        let unauthorized =
            || json_response(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}));
        if self.api_key(headers).is_none() {
            return unauthorized();
        }
        let mut resp = if same(&user, &self.cfg.user) & same(&password, &self.cfg.password) {
            match self.issue(&user) {
                Ok(token) => json_response(
                    StatusCode::OK,
                    json!({"AuthenticationResult": {"IdToken": token}}),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "signing a token failed");
                    json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"message": "Internal Server Error"}),
                    )
                }
            }
        } else {
            unauthorized()
        };
        resp.headers_mut()
            .insert("padma_user_authorized", HeaderValue::from_static("true"));
        resp
    }

    /// The caller's valid `x-api-key`, if any.
    pub fn api_key(&self, headers: &HeaderMap) -> Option<String> {
        let key = headers.get("x-api-key")?.to_str().ok()?;
        self.cfg
            .api_keys
            .iter()
            .any(|k| same(k, key))
            .then(|| key.to_string())
    }

    /// Verifies the caller for a route with `authorizer`, needing one of `required_scopes`.
    pub async fn authorize(
        &self,
        authorizer: &Authorizer,
        headers: &HeaderMap,
        required_scopes: &[String],
    ) -> Result<Identity, Refusal> {
        let claims = match authorizer {
            Authorizer::Lambdock => {
                let token = bearer(headers, "authorization").ok_or(Refusal::Unauthorized)?;
                let mut v = Validation::new(Algorithm::HS256);
                v.leeway = 0;
                v.validate_aud = false;
                v.set_issuer(&[&self.cfg.issuer]);
                v.set_required_spec_claims(&["exp", "sub"]);
                self.decode(&token, &self.decoding, &v)?
            }
            Authorizer::Jwt {
                identity_source,
                issuer,
                audience,
            } => {
                let token = bearer(headers, &identity_header(identity_source))
                    .ok_or(Refusal::Unauthorized)?;
                let header =
                    jsonwebtoken::decode_header(&token).map_err(|_| Refusal::Unauthorized)?;
                let key = self.key_for(issuer, &header).await?;
                let mut v = Validation::new(header.alg);
                v.leeway = 0;
                v.validate_nbf = true;
                v.validate_aud = false;
                v.set_issuer(&[issuer]);
                v.set_required_spec_claims(&["exp", "iss"]);
                let claims = self.decode(&token, &key, &v)?;
                if !audience.is_empty() && !audience_matches(&claims, audience) {
                    return Err(Refusal::Unauthorized);
                }
                claims
            }
        };
        let granted = scopes(&claims);
        if !required_scopes.is_empty() && !required_scopes.iter().any(|s| granted.contains(s)) {
            return Err(Refusal::Forbidden);
        }
        let mut shown = stringify(&claims);
        if matches!(authorizer, Authorizer::Lambdock)
            && let Some(sub) = claims.get("sub").and_then(Value::as_str)
        {
            // The reference's functions read the user from Cognito's claim names.
            for name in ["cognito:username", "username"] {
                shown.entry(name).or_insert_with(|| json!(sub));
            }
        }
        Ok(Identity {
            claims: shown,
            scopes: granted,
        })
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Map<String, Value>, Refusal> {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(Refusal::Expired),
            Err(e) => {
                tracing::debug!(error = %e, "token refused");
                Err(Refusal::Unauthorized)
            }
        }
    }

    async fn key_for(&self, issuer: &str, header: &Header) -> Result<DecodingKey, Refusal> {
        if issuer == self.cfg.issuer {
            return if header.alg == Algorithm::HS256 {
                Ok(self.decoding.clone())
            } else {
                Err(Refusal::Unauthorized)
            };
        }
        // Another issuer's symmetric token could only be checked with a secret we do not have.
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(Refusal::Unauthorized);
        }
        let kid = header.kid.as_deref();
        let configured = self.cfg.jwks.as_ref().and_then(|set| key_in(set, kid));
        let jwk = match configured {
            Some(jwk) => jwk,
            None => self
                .issuers
                .find(issuer, kid)
                .await
                .ok_or(Refusal::Unauthorized)?,
        };
        DecodingKey::from_jwk(&jwk).map_err(|_| Refusal::Unauthorized)
    }
}

/// HTTP API's audience rule: `aud` (a string or a list) or `client_id` names an audience.
fn audience_matches(claims: &Map<String, Value>, audience: &[String]) -> bool {
    let mut names: HashSet<&str> = HashSet::new();
    match claims.get("aud") {
        Some(Value::String(s)) => {
            names.insert(s);
        }
        Some(Value::Array(a)) => names.extend(a.iter().filter_map(Value::as_str)),
        _ => {}
    }
    if let Some(id) = claims.get("client_id").and_then(Value::as_str) {
        names.insert(id);
    }
    audience.iter().any(|a| names.contains(a.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn auth() -> Auth {
        Auth::new(AuthConfig {
            jwt_secret: SECRET.into(),
            issuer: "lambdock".into(),
            audience: "lambdock".into(),
            token_lifetime: Duration::from_secs(3000),
            api_keys: vec!["key-1".into()],
            user: "alice".into(),
            password: "pw".into(),
            login_path: "/user/auth/v1".into(),
            jwks: None,
        })
        .unwrap()
    }

    fn sign(claims: Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                )
            })
            .collect()
    }

    fn jwt(audience: &[&str]) -> Authorizer {
        Authorizer::Jwt {
            identity_source: "$request.header.Authorization".into(),
            issuer: "lambdock".into(),
            audience: audience.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn login_checks_body_then_key_then_password() {
        let a = auth();
        let good = br#"{"AuthParameters":{"USERNAME":"alice","PASSWORD":"pw"}}"#;
        let status = |r: Response<Body>| r.status().as_u16();
        assert_eq!(status(a.login(&headers(&[]), b"{}")), 422);
        assert_eq!(
            status(a.login(&headers(&[("x-api-key", "nope")]), good)),
            401
        );
        let wrong = a.login(
            &headers(&[("x-api-key", "key-1")]),
            br#"{"AuthParameters":{"USERNAME":"alice","PASSWORD":"no"}}"#,
        );
        assert_eq!(wrong.status(), 401);
        assert_eq!(wrong.headers()["padma_user_authorized"], "true");
        let ok = a.login(&headers(&[("x-api-key", "key-1")]), good);
        assert_eq!(ok.status(), 200);
        let body: Value =
            serde_json::from_slice(&ok.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let token = body["AuthenticationResult"]["IdToken"].as_str().unwrap();
        let id = a
            .authorize(
                &Authorizer::Lambdock,
                &headers(&[("authorization", &format!("Bearer {token}"))]),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(id.claims["sub"], "alice");
        assert_eq!(id.claims["cognito:username"], "alice");
        // Bare tokens are accepted too, as the reference does.
        assert!(
            a.authorize(
                &Authorizer::Lambdock,
                &headers(&[("authorization", token)]),
                &[]
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn tokens_are_refused_as_api_gateway_refuses_them() {
        let a = auth();
        let now = now_s();
        let valid = sign(
            json!({"sub":"u","iss":"lambdock","aud":"app","exp":now+60,"scope":"read write"}),
            SECRET,
        );
        let expired = sign(
            json!({"sub":"u","iss":"lambdock","aud":"app","exp":now-60}),
            SECRET,
        );
        let forged = sign(
            json!({"sub":"u","iss":"lambdock","aud":"app","exp":now+60}),
            "another-secret-of-32-characters!!",
        );
        let future = sign(
            json!({"sub":"u","iss":"lambdock","aud":"app","exp":now+120,"nbf":now+60}),
            SECRET,
        );
        let other_iss = sign(
            json!({"sub":"u","iss":"else","aud":"app","exp":now+60}),
            SECRET,
        );
        let h = |t: &str| headers(&[("authorization", &format!("Bearer {t}"))]);
        let auth_jwt = jwt(&["app"]);
        let id = a
            .authorize(&auth_jwt, &h(&valid), &["write".into()])
            .await
            .unwrap();
        assert_eq!(id.scopes, ["read", "write"]);
        assert_eq!(id.claims["exp"], json!((now + 60).to_string()));
        assert_eq!(
            a.authorize(&auth_jwt, &headers(&[]), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &h(&expired), &[]).await,
            Err(Refusal::Expired)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &h(&forged), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &h(&future), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &h(&other_iss), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&jwt(&["other"]), &h(&valid), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &h(&valid), &["admin".into()]).await,
            Err(Refusal::Forbidden)
        );
        let mut tampered = valid.clone();
        tampered.insert(tampered.len() - 3, 'A');
        assert_eq!(
            a.authorize(&auth_jwt, &h(&tampered), &[]).await,
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.authorize(&auth_jwt, &headers(&[("authorization", "Basic abc")]), &[])
                .await,
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn api_keys_and_claim_strings() {
        let a = auth();
        assert_eq!(
            a.api_key(&headers(&[("x-api-key", "key-1")])).as_deref(),
            Some("key-1")
        );
        assert_eq!(a.api_key(&headers(&[("x-api-key", "key-2")])), None);
        let claims = Map::from_iter([
            ("groups".to_string(), json!(["a", "b"])),
            ("n".to_string(), json!(5)),
        ]);
        let s = stringify(&claims);
        assert_eq!(s["groups"], "[a b]");
        assert_eq!(s["n"], "5");
    }

    /// A throwaway RSA key made for these tests (PKCS#1 DER) and its public JWK.
    const RSA_DER: &[u8] = include_bytes!("../testdata/rsa-test-key.der");

    fn test_jwks() -> Value {
        json!({"keys": [
            {"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "e": "AQAB", "n": "z6gYPGlFERJrFwbEcp3cdTNt3-AKFwSbMTmyk3EjtRsn3b-xsHKzaJS6gjaEFytmV7z0EYZbvLwkIjcgjdqWv-poaeeZCAxZrGJ7XbeTp-20eWlcCmVwki2MqNFtY-pHGV46K1N8tii0au4DyalbDKpHCCorc2pMoGfHpCtHn_4rVgsrZvGaRynbNtRkRB_h6lcQ07qU-wi5nP99Cfl-1axxXOKBQpWy7x5WFzhmIl_kV2pkyvepSx9EKpKkL5Fe8LrUfTdtDKvTdQ7_eZiJfnbeqZ7g-eihfDaWgo3q4cMDt_bvIinpzLDuEIGMNHIg3v2pyhsm23QyYFzKQHTXsQ"}
        ]})
    }

    fn sign_rs(kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(RSA_DER)).unwrap()
    }

    fn idp(issuer: &str) -> Authorizer {
        Authorizer::Jwt {
            identity_source: "$request.header.Authorization".into(),
            issuer: issuer.into(),
            audience: vec!["app".into()],
        }
    }

    fn bearer_headers(token: &str) -> HeaderMap {
        headers(&[("authorization", &format!("Bearer {token}"))])
    }

    #[tokio::test]
    async fn other_issuers_verify_with_the_jwks_keys() {
        let mut cfg = auth().cfg.clone();
        cfg.jwks = Some(serde_json::from_value(test_jwks()).unwrap());
        let a = Auth::new(cfg).unwrap();
        // Nothing listens there: a key missing from the file cannot be found by discovery.
        let issuer = "http://127.0.0.1:1";
        let claims = json!({"sub": "u", "iss": issuer, "client_id": "app", "exp": now_s() + 60});
        let idp = idp(issuer);
        let id = a
            .authorize(&idp, &bearer_headers(&sign_rs(Some("k1"), &claims)), &[])
            .await
            .unwrap();
        assert_eq!(id.claims["client_id"], "app");
        assert_eq!(
            a.authorize(
                &idp,
                &bearer_headers(&sign_rs(Some("unknown"), &claims)),
                &[]
            )
            .await,
            Err(Refusal::Unauthorized)
        );
        // The platform's HS256 secret does not vouch for another issuer's tokens.
        let hs = sign(claims.clone(), SECRET);
        assert_eq!(
            a.authorize(&idp, &bearer_headers(&hs), &[]).await,
            Err(Refusal::Unauthorized)
        );
    }

    /// An identity provider on loopback: its discovery document and key set, and how many
    /// requests it answered.
    async fn identity_provider() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let (base, count) = (issuer.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let n = conn.read(&mut request).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&request[..n]).into_owned();
                count.fetch_add(1, Ordering::SeqCst);
                let body = if request.starts_with("GET /.well-known/openid-configuration ") {
                    json!({"issuer": base, "jwks_uri": format!("{base}/keys")}).to_string()
                } else {
                    test_jwks().to_string()
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (issuer, served)
    }

    #[tokio::test]
    async fn other_issuers_keys_come_from_openid_discovery() {
        let (issuer, served) = identity_provider().await;
        let a = auth();
        let idp = idp(&issuer);
        let claims = json!({"sub": "u", "iss": issuer, "aud": "app", "exp": now_s() + 60});
        let id = a
            .authorize(&idp, &bearer_headers(&sign_rs(Some("k1"), &claims)), &[])
            .await
            .unwrap();
        assert_eq!(id.claims["sub"], "u");
        assert_eq!(
            served.load(Ordering::SeqCst),
            2,
            "discovery, then the key set"
        );
        // Cached: another token costs no request.
        a.authorize(&idp, &bearer_headers(&sign_rs(Some("k1"), &claims)), &[])
            .await
            .unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 2);
        // An unknown key is refused, and within the minute it does not fetch again.
        for _ in 0..3 {
            assert_eq!(
                a.authorize(&idp, &bearer_headers(&sign_rs(Some("k9"), &claims)), &[])
                    .await,
                Err(Refusal::Unauthorized)
            );
        }
        assert_eq!(served.load(Ordering::SeqCst), 2);
        // A tampered token is refused with the right key at hand.
        let mut tampered = sign_rs(Some("k1"), &claims);
        tampered.pop();
        assert_eq!(
            a.authorize(&idp, &bearer_headers(&tampered), &[]).await,
            Err(Refusal::Unauthorized)
        );
    }
}
