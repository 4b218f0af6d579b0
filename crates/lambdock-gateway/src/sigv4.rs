//! Server-side verification of AWS Signature Version 4 (`SigV4`) requests.
//!
//! The gateway's AWS-compatible endpoint (Lambda `Invoke` and the management
//! API, service name `lambda`) accepts requests signed by the AWS SDKs and the
//! AWS CLI. [`Verifier::verify`] recomputes the signature from the request as
//! it was received and compares it, in constant time, with the one the client
//! sent. Both forms are supported:
//!
//! * the `Authorization` header form:
//!   `AWS4-HMAC-SHA256 Credential=<AKID>/<yyyymmdd>/<region>/<service>/aws4_request,
//!   SignedHeaders=<h1;h2;…>, Signature=<64 hex>`;
//! * the presigned (query string) form with `X-Amz-Algorithm`,
//!   `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires` (at most 604800),
//!   `X-Amz-SignedHeaders`, `X-Amz-Signature` and an optional
//!   `X-Amz-Security-Token`.
//!
//! # The double-encoding trap
//!
//! The most common interoperability bug in `SigV4` servers is the canonical URI.
//! An SDK builds the request path by percent-encoding each label once, so
//! invoking `arn:aws:lambda:us-east-1:123456789012:function:foo` puts
//! `/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afoo/invocations`
//! on the wire. For every service except S3 the signer then URI-encodes that
//! *already encoded* path a second time when it builds the canonical request,
//! so `%3A` becomes `%253A`. The server must therefore take the path exactly as
//! received (never the decoded path a router hands out), normalise it (drop
//! `.`/`..` segments and empty segments from duplicate slashes; an empty path
//! is `/`) and encode it again, segment by segment, leaving only the RFC 3986
//! unreserved characters `A-Z a-z 0-9 - _ . ~` (and the `/` separators) as
//! they are. Decoding first, or encoding only once, makes every request whose
//! path contains a `%` (function ARNs, qualified names, aliases) fail with a
//! signature mismatch while plain names keep working — which is why the bug
//! hides so well. Only for service `s3` is the wire path (already encoded
//! once) used as is, without normalisation.
//!
//! Query strings are different: each name and value is decoded from the wire
//! (a raw `+` is a space, `%2B` is a literal `+`) and re-encoded exactly once
//! with the same unreserved set (a space becomes `%20`), then the pairs are
//! sorted by encoded name, then encoded value.
//!
//! # The clock-skew rule
//!
//! The request time comes from `X-Amz-Date` (`YYYYMMDD'T'HHMMSS'Z'`; a header,
//! or the query parameter for presigned requests) or else from the `Date`
//! header (RFC 1123). The date in the credential scope must equal its date
//! part. A header-signed request is rejected when it is more than the allowed
//! skew (5 minutes by default, see [`Verifier::with_max_skew`]) away from the
//! server's clock in either direction, with AWS's message, e.g.
//! `Signature expired: 20190430T075732Z is now earlier than 20190430T105409Z (20190430T105909Z - 5 min.)`
//! (or `... is now later than ... (... + 5 min.)` for a request from the
//! future). Presigned requests are valid from their `X-Amz-Date` (less the
//! skew) until `X-Amz-Date + X-Amz-Expires`.
//!
//! # Choices worth knowing
//!
//! * `host` must be among the signed headers; a request that does not sign it
//!   is rejected with [`SigV4Error::IncompleteSignature`] before any signature
//!   is computed. When no `Host` header is present (HTTP/2) the authority of
//!   the request URI is used as its value.
//! * The payload hash is the SHA-256 of the body, unless `x-amz-content-sha256`
//!   is signed: then `UNSIGNED-PAYLOAD` is taken as is, and a hex digest is
//!   used only if it is the body's actual digest (otherwise the real digest is
//!   used, so a swapped body is still a signature mismatch). Presigned requests
//!   use `UNSIGNED-PAYLOAD`; the SHA-256 of the body is accepted as well,
//!   because botocore's `SigV4QueryAuth` (non-S3 presigning, e.g. `aws
//!   lambda` or EKS-style tokens) hashes the (empty) body instead.
//! * Signing keys are derived per request (four HMAC-SHA256 operations, about
//!   a microsecond); nothing is cached, so a rotated secret takes effect at
//!   once and no derived keys linger in memory.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only algorithm `SigV4` verification accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The credential scope terminator.
const TERMINATOR: &str = "aws4_request";
/// The payload hash placeholder for unsigned bodies.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The longest validity of a presigned request (7 days), in seconds.
pub const MAX_PRESIGNED_EXPIRES: u64 = 604_800;
/// The default allowed clock skew between client and server.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_mins(5);

const X_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
const X_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
const X_AMZ_DATE: &str = "X-Amz-Date";
const X_AMZ_EXPIRES: &str = "X-Amz-Expires";
const X_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";
const X_AMZ_SECURITY_TOKEN: &str = "X-Amz-Security-Token";
const CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Everything but the RFC 3986 unreserved characters gets `%XX` (uppercase).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Secret lookup: access key id → secret access key (and an optional session
/// token that must match `X-Amz-Security-Token` when present).
pub trait Credentials: Send + Sync {
    /// The secret access key of `access_key_id`, or `None` when the key is
    /// unknown (the request then fails with [`SigV4Error::UnrecognizedClient`]).
    fn secret(&self, access_key_id: &str) -> Option<String>;

    /// The session token bound to `access_key_id`, if any.
    ///
    /// When this returns `Some`, the request must carry the same token in
    /// `X-Amz-Security-Token` (header, or query parameter when presigned),
    /// otherwise it fails with [`SigV4Error::UnrecognizedClient`]. The default
    /// returns `None`: tokens sent by clients are then not checked (they are
    /// still covered by the signature when the client signed them).
    fn session_token(&self, access_key_id: &str) -> Option<String> {
        let _ = access_key_id;
        None
    }
}

/// A plain map from access key id to secret access key (no session tokens).
impl<S: BuildHasher + Send + Sync> Credentials for HashMap<String, String, S> {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

impl<T: Credentials + ?Sized> Credentials for Arc<T> {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        (**self).secret(access_key_id)
    }
    fn session_token(&self, access_key_id: &str) -> Option<String> {
        (**self).session_token(access_key_id)
    }
}

impl<T: Credentials + ?Sized> Credentials for &T {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        (**self).secret(access_key_id)
    }
    fn session_token(&self, access_key_id: &str) -> Option<String> {
        (**self).session_token(access_key_id)
    }
}

/// Verifies SigV4-signed requests for one service against a credential store.
///
/// `Debug` never prints the credentials.
#[derive(Clone)]
pub struct Verifier<C> {
    credentials: C,
    service: String,
    max_skew: Duration,
}

impl<C> fmt::Debug for Verifier<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("credentials", &"<redacted>")
            .field("service", &self.service)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

/// Who signed a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The access key id from the credential scope.
    pub access_key_id: String,
    /// The region from the credential scope (any region string is accepted).
    pub region: String,
}

/// Why a request failed verification. `Display` gives the message AWS would
/// send; [`code`](SigV4Error::code) and [`status`](SigV4Error::status) give the
/// Lambda API error type and HTTP status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor `SigV4` query parameters.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// A malformed `Authorization` header or credential, or missing parts; the
    /// message names what is wrong.
    #[error("{0}")]
    IncompleteSignature(String),
    /// Unknown access key id (or a session token that does not match).
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The signature differs from the one computed by the server, which shows
    /// the canonical request and string to sign it used.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service documentation \
         for details.\n\nThe Canonical String for this request should have been\n\
         '{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )]
    SignatureDoesNotMatch {
        /// The canonical request the server computed.
        canonical_request: String,
        /// The string to sign the server computed.
        string_to_sign: String,
    },
    /// The request time is too far from the server's clock, or a presigned
    /// request has expired.
    #[error("{0}")]
    SignatureExpired(String),
    /// The credential scope is wrong: service, terminator, region or date.
    #[error("{0}")]
    InvalidSignatureScope(String),
}

impl SigV4Error {
    /// The AWS error code for `x-amzn-ErrorType` on the Lambda API.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignatureException",
            SigV4Error::UnrecognizedClient => "UnrecognizedClientException",
            SigV4Error::SignatureDoesNotMatch { .. }
            | SigV4Error::SignatureExpired(_)
            | SigV4Error::InvalidSignatureScope(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status: 403 for every error on the Lambda API.
    #[must_use]
    pub fn status(&self) -> u16 {
        403
    }
}

/// What the request claims, parsed from either form.
struct Claim {
    presigned: bool,
    access_key_id: String,
    scope_date: String,
    region: String,
    service: String,
    /// Lowercase, sorted, deduplicated.
    signed_headers: Vec<String>,
    /// Lowercased as received.
    signature: String,
    /// The request time, whole seconds since the epoch.
    time: i64,
    /// Validity in seconds (presigned only).
    expires: Option<u64>,
    security_token: Option<String>,
}

impl<C: Credentials> Verifier<C> {
    /// A verifier for `service` (e.g. `"lambda"`) with a maximum clock skew of
    /// 5 minutes.
    #[must_use]
    pub fn new(credentials: C, service: impl Into<String>) -> Self {
        Verifier {
            credentials,
            service: service.into(),
            max_skew: DEFAULT_MAX_SKEW,
        }
    }

    /// Sets the largest allowed distance between the request time and `now`
    /// (for presigned requests: how far in the future `X-Amz-Date` may be).
    #[must_use]
    pub fn with_max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// Verifies a request. `parts` as received (path and query exactly as on
    /// the wire), `body` the full body, `now` the server's clock.
    ///
    /// # Errors
    ///
    /// A [`SigV4Error`] saying why the request is not authenticated; checks
    /// run in this order: form and syntax ([`MissingAuthenticationToken`],
    /// [`IncompleteSignature`]), credential scope ([`InvalidSignatureScope`]),
    /// `host` signed, time ([`SignatureExpired`]), access key and session
    /// token ([`UnrecognizedClient`]), signature ([`SignatureDoesNotMatch`]).
    ///
    /// [`MissingAuthenticationToken`]: SigV4Error::MissingAuthenticationToken
    /// [`IncompleteSignature`]: SigV4Error::IncompleteSignature
    /// [`InvalidSignatureScope`]: SigV4Error::InvalidSignatureScope
    /// [`SignatureExpired`]: SigV4Error::SignatureExpired
    /// [`UnrecognizedClient`]: SigV4Error::UnrecognizedClient
    /// [`SignatureDoesNotMatch`]: SigV4Error::SignatureDoesNotMatch
    pub fn verify(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Identity, SigV4Error> {
        let raw_query = parts.uri.query().unwrap_or("");
        let query = parse_query(raw_query);

        let claim = parse_claim(parts, &query)?;
        self.check_scope(&claim)?;
        if !claim.signed_headers.iter().any(|h| h == "host") {
            return Err(SigV4Error::IncompleteSignature(
                "Signed headers must include 'host': the 'host' header must be signed.".into(),
            ));
        }
        self.check_time(&claim, now)?;

        let secret = self
            .credentials
            .secret(&claim.access_key_id)
            .ok_or(SigV4Error::UnrecognizedClient)?;
        if let Some(expected) = self.credentials.session_token(&claim.access_key_id) {
            let ok = claim
                .security_token
                .as_deref()
                .is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected.as_bytes())));
            if !ok {
                return Err(SigV4Error::UnrecognizedClient);
            }
        }

        // Everything of the canonical request but the payload hash.
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b'\n');
        head.extend_from_slice(canonical_uri(parts.uri.path(), &self.service).as_bytes());
        head.push(b'\n');
        head.extend_from_slice(canonical_query(&query, claim.presigned).as_bytes());
        head.push(b'\n');
        for name in &claim.signed_headers {
            head.extend_from_slice(name.as_bytes());
            head.push(b':');
            head.extend_from_slice(&canonical_header_value(parts, name));
            head.push(b'\n');
        }
        head.push(b'\n');
        head.extend_from_slice(claim.signed_headers.join(";").as_bytes());
        head.push(b'\n');

        let amz_date = format_amz_date(claim.time);
        let scope = format!(
            "{}/{}/{}/{TERMINATOR}",
            claim.scope_date, claim.region, claim.service
        );
        let signing_key = signing_key(&secret, &claim.scope_date, &claim.region, &claim.service);

        let mut first: Option<(Vec<u8>, String)> = None;
        for payload_hash in payload_hashes(parts, body, &claim) {
            let mut canonical = head.clone();
            canonical.extend_from_slice(payload_hash.as_bytes());
            let string_to_sign = format!(
                "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
                hex::encode(Sha256::digest(&canonical))
            );
            let expected = hex::encode(hmac_sha256(&signing_key, string_to_sign.as_bytes()));
            if bool::from(expected.as_bytes().ct_eq(claim.signature.as_bytes())) {
                return Ok(Identity {
                    access_key_id: claim.access_key_id,
                    region: claim.region,
                });
            }
            if first.is_none() {
                first = Some((canonical, string_to_sign));
            }
        }
        let (canonical, string_to_sign) = first.unwrap_or_default();
        Err(SigV4Error::SignatureDoesNotMatch {
            canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
            string_to_sign,
        })
    }

    fn check_scope(&self, claim: &Claim) -> Result<(), SigV4Error> {
        if claim.service != self.service {
            return Err(SigV4Error::InvalidSignatureScope(format!(
                "Credential should be scoped to correct service: '{}'.",
                self.service
            )));
        }
        if claim.region.is_empty() {
            return Err(SigV4Error::InvalidSignatureScope(
                "Credential should be scoped to a valid region.".into(),
            ));
        }
        let amz_date = format_amz_date(claim.time);
        if claim.scope_date != amz_date[..8] {
            return Err(SigV4Error::InvalidSignatureScope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                claim.scope_date,
                &amz_date[..8],
                amz_date
            )));
        }
        Ok(())
    }

    fn check_time(&self, claim: &Claim, now: SystemTime) -> Result<(), SigV4Error> {
        let signed_at = epoch_to_system_time(claim.time);
        let now_str = format_amz_date(system_time_to_epoch(now));
        let skew = fmt_duration(self.max_skew);
        // From the future: never more than the skew, for either form.
        if let Ok(ahead) = signed_at.duration_since(now) {
            if ahead > self.max_skew {
                let limit = system_time_to_epoch(now.checked_add(self.max_skew).unwrap_or(now));
                return Err(SigV4Error::SignatureExpired(format!(
                    "Signature expired: {} is now later than {} ({now_str} + {skew})",
                    format_amz_date(claim.time),
                    format_amz_date(limit),
                )));
            }
            return Ok(());
        }
        let behind = now.duration_since(signed_at).unwrap_or_default();
        match claim.expires {
            Some(expires) => {
                if behind > Duration::from_secs(expires) {
                    let end = claim
                        .time
                        .saturating_add(i64::try_from(expires).unwrap_or(0));
                    return Err(SigV4Error::SignatureExpired(format!(
                        "Signature expired: {} ({} + {expires} sec.) is now earlier than {now_str}",
                        format_amz_date(end),
                        format_amz_date(claim.time),
                    )));
                }
            }
            None => {
                if behind > self.max_skew {
                    let limit = system_time_to_epoch(now.checked_sub(self.max_skew).unwrap_or(now));
                    return Err(SigV4Error::SignatureExpired(format!(
                        "Signature expired: {} is now earlier than {} ({now_str} - {skew})",
                        format_amz_date(claim.time),
                        format_amz_date(limit),
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Signs a request in the header form, as the AWS SDKs do, for Lambdock's own callers
/// (`lambdock invoke`, the benchmark): sets `x-amz-date` and `authorization`, signing every
/// header present (`host` is taken from the URI when missing). The path and query must be as
/// they will be sent.
pub fn sign(
    parts: &mut http::request::Parts,
    body: &[u8],
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    now: SystemTime,
) {
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(http::header::HOST, authority);
    }
    let amz_date = format_amz_date(system_time_to_epoch(now));
    if let Ok(v) = http::HeaderValue::from_str(&amz_date) {
        parts.headers.insert("x-amz-date", v);
    }
    parts.headers.remove(http::header::AUTHORIZATION);
    let mut names: Vec<String> = parts
        .headers
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    names.sort();
    names.dedup();
    let mut canonical = Vec::with_capacity(512);
    canonical.extend_from_slice(parts.method.as_str().as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(canonical_uri(parts.uri.path(), service).as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(
        canonical_query(&parse_query(parts.uri.query().unwrap_or("")), false).as_bytes(),
    );
    canonical.push(b'\n');
    for name in &names {
        canonical.extend_from_slice(name.as_bytes());
        canonical.push(b':');
        canonical.extend_from_slice(&canonical_header_value(parts, name));
        canonical.push(b'\n');
    }
    canonical.push(b'\n');
    canonical.extend_from_slice(names.join(";").as_bytes());
    canonical.push(b'\n');
    canonical.extend_from_slice(hex::encode(Sha256::digest(body)).as_bytes());
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/{service}/{TERMINATOR}");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(&canonical))
    );
    let signature = hex::encode(hmac_sha256(
        &signing_key(secret, date, region, service),
        string_to_sign.as_bytes(),
    ));
    let authorization = format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        names.join(";")
    );
    if let Ok(v) = http::HeaderValue::from_str(&authorization) {
        parts.headers.insert(http::header::AUTHORIZATION, v);
    }
}

/// Finds out which form the request uses and parses it.
fn parse_claim(parts: &http::request::Parts, query: &[QueryParam]) -> Result<Claim, SigV4Error> {
    let mut auth_headers = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let auth = auth_headers.next();
    if auth.is_some() && auth_headers.next().is_some() {
        return Err(SigV4Error::IncompleteSignature(
            "Only one Authorization header is allowed.".into(),
        ));
    }
    // Any of these marks an attempt at the presigned form.
    let presigned = query.iter().any(|p| {
        matches!(
            p.name.as_slice(),
            b"X-Amz-Algorithm" | b"X-Amz-Credential" | b"X-Amz-Signature"
        )
    });
    match (auth, presigned) {
        (None, false) => Err(SigV4Error::MissingAuthenticationToken),
        (Some(_), true) => Err(SigV4Error::IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or \
             the Authorization header should be specified."
                .into(),
        )),
        (Some(value), false) => parse_header_claim(parts, value),
        (None, true) => parse_query_claim(query),
    }
}

/// Parses `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_header_claim(
    parts: &http::request::Parts,
    value: &http::HeaderValue,
) -> Result<Claim, SigV4Error> {
    let value = value.to_str().map_err(|_| {
        SigV4Error::IncompleteSignature(
            "Authorization header contains characters that are not visible ASCII.".into(),
        )
    })?;
    let value = value.trim();
    let (algorithm, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(SigV4Error::IncompleteSignature(format!(
            "Unsupported Authorization algorithm; only '{ALGORITHM}' is accepted."
        )));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((key, val)) = component.split_once('=') else {
            return Err(SigV4Error::IncompleteSignature(format!(
                "'{component}' not a valid key=value pair (missing equal-sign) in Authorization \
                 header."
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(SigV4Error::IncompleteSignature(format!(
                "Authorization header has more than one '{}' parameter.",
                key.trim()
            )));
        }
        *slot = Some(val.trim()).filter(|v| !v.is_empty());
    }

    let date = header_date(parts);
    let mut missing = String::new();
    for (name, present) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !present {
            missing.push_str("Authorization header requires '");
            missing.push_str(name);
            missing.push_str("' parameter. ");
        }
    }
    if matches!(date, HeaderDate::Missing) {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(SigV4Error::IncompleteSignature(
            missing.trim_end().to_owned(),
        ));
    };
    let time = match date {
        HeaderDate::Parsed(t) => t,
        HeaderDate::Missing => {
            return Err(SigV4Error::IncompleteSignature(
                missing.trim_end().to_owned(),
            ));
        }
        HeaderDate::Invalid(msg) => return Err(SigV4Error::IncompleteSignature(msg)),
    };

    let (access_key_id, scope_date, region, service) = parse_credential(credential)?;
    let security_token = parts
        .headers
        .get(X_AMZ_SECURITY_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    Ok(Claim {
        presigned: false,
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_ascii_lowercase(),
        time,
        expires: None,
        security_token,
    })
}

enum HeaderDate {
    Parsed(i64),
    Missing,
    Invalid(String),
}

/// The request time from `X-Amz-Date`, else from `Date`.
fn header_date(parts: &http::request::Parts) -> HeaderDate {
    if let Some(v) = parts.headers.get(X_AMZ_DATE) {
        let s = v.to_str().unwrap_or("").trim();
        return match parse_amz_date(s) {
            Some(t) => HeaderDate::Parsed(t),
            None => HeaderDate::Invalid(format!(
                "Date must be in ISO-8601 'basic format' (yyyyMMdd'T'HHmmss'Z'); got '{s}' in \
                 the X-Amz-Date header."
            )),
        };
    }
    if let Some(v) = parts.headers.get(http::header::DATE) {
        let s = v.to_str().unwrap_or("").trim();
        return match parse_http_date(s) {
            Some(t) => HeaderDate::Parsed(t),
            None => HeaderDate::Invalid(format!(
                "Date header must be in RFC 1123 format (e.g. 'Tue, 30 Apr 2019 10:54:09 GMT'); \
                 got '{s}'."
            )),
        };
    }
    HeaderDate::Missing
}

/// Parses the presigned form from the query parameters.
fn parse_query_claim(query: &[QueryParam]) -> Result<Claim, SigV4Error> {
    let get = |name: &str| -> Result<Option<String>, SigV4Error> {
        let mut found = query.iter().filter(|p| p.name == name.as_bytes());
        let first = found.next();
        if found.next().is_some() {
            return Err(SigV4Error::IncompleteSignature(format!(
                "Query-string parameter '{name}' must appear only once."
            )));
        }
        first
            .map(|p| {
                String::from_utf8(p.value.clone()).map_err(|_| {
                    SigV4Error::IncompleteSignature(format!(
                        "Query-string parameter '{name}' is not valid UTF-8."
                    ))
                })
            })
            .transpose()
            .map(|v| v.filter(|v| !v.is_empty()))
    };
    let algorithm = get(X_AMZ_ALGORITHM)?;
    let credential = get(X_AMZ_CREDENTIAL)?;
    let signature = get(X_AMZ_SIGNATURE)?;
    let date = get(X_AMZ_DATE)?;
    let signed_headers = get(X_AMZ_SIGNED_HEADERS)?;
    let expires = get(X_AMZ_EXPIRES)?;
    let security_token = get(X_AMZ_SECURITY_TOKEN)?;

    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(date),
        Some(signed_headers),
        Some(expires),
    ) = (
        &algorithm,
        &credential,
        &signature,
        &date,
        &signed_headers,
        &expires,
    )
    else {
        let missing: Vec<String> = [
            (X_AMZ_ALGORITHM, algorithm.is_none()),
            (X_AMZ_CREDENTIAL, credential.is_none()),
            (X_AMZ_SIGNATURE, signature.is_none()),
            (X_AMZ_DATE, date.is_none()),
            (X_AMZ_SIGNED_HEADERS, signed_headers.is_none()),
            (X_AMZ_EXPIRES, expires.is_none()),
        ]
        .into_iter()
        .filter(|(_, absent)| *absent)
        .map(|(name, _)| format!("'{name}'"))
        .collect();
        return Err(SigV4Error::IncompleteSignature(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing.join(", ")
        )));
    };
    if algorithm != ALGORITHM {
        return Err(SigV4Error::IncompleteSignature(format!(
            "X-Amz-Algorithm only supports '{ALGORITHM}'."
        )));
    }
    let time = parse_amz_date(date).ok_or_else(|| {
        SigV4Error::IncompleteSignature(format!(
            "X-Amz-Date must be in the ISO-8601 'basic format' (yyyyMMdd'T'HHmmss'Z'); got '{date}'."
        ))
    })?;
    let expires = expires
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| expires.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| {
            SigV4Error::IncompleteSignature(
                "X-Amz-Expires should be a number of seconds.".to_owned(),
            )
        })?;
    if expires > MAX_PRESIGNED_EXPIRES {
        return Err(SigV4Error::IncompleteSignature(format!(
            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES}."
        )));
    }
    let (access_key_id, scope_date, region, service) = parse_credential(credential)?;
    Ok(Claim {
        presigned: true,
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_ascii_lowercase(),
        time,
        expires: Some(expires),
        security_token,
    })
}

/// `<AKID>/<yyyymmdd>/<region>/<service>/aws4_request` → (akid, date, region, service).
fn parse_credential(credential: &str) -> Result<(String, String, String, String), SigV4Error> {
    let elements: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = elements.as_slice() else {
        return Err(SigV4Error::IncompleteSignature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'."
        )));
    };
    if akid.is_empty() {
        return Err(SigV4Error::IncompleteSignature(
            "Credential must name an access key id.".into(),
        ));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigV4Error::InvalidSignatureScope(format!(
            "Credential should be scoped to a valid date (yyyyMMdd), not '{date}'."
        )));
    }
    if *terminator != TERMINATOR {
        return Err(SigV4Error::InvalidSignatureScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not \
             '{terminator}'."
        )));
    }
    Ok((
        (*akid).to_owned(),
        (*date).to_owned(),
        (*region).to_owned(),
        (*service).to_owned(),
    ))
}

/// `h1;h2;…` → lowercase, sorted, deduplicated names.
fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigV4Error> {
    let mut names = Vec::new();
    for name in value.split(';') {
        let name = name.trim();
        if name.is_empty() {
            return Err(SigV4Error::IncompleteSignature(format!(
                "SignedHeaders '{value}' contains an empty header name."
            )));
        }
        names.push(name.to_ascii_lowercase());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// One query parameter: decoded name and value (bytes) and their canonical encodings.
struct QueryParam {
    name: Vec<u8>,
    value: Vec<u8>,
    enc_name: String,
    enc_value: String,
}

/// Splits the raw query on `&` (empty pieces skipped) and `=`; a raw `+` is a space.
fn parse_query(raw: &str) -> Vec<QueryParam> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_query_component(name);
            let value = decode_query_component(value);
            QueryParam {
                enc_name: encode_unreserved(&name),
                enc_value: encode_unreserved(&value),
                name,
                value,
            }
        })
        .collect()
}

fn decode_query_component(s: &str) -> Vec<u8> {
    let plus_as_space = s.replace('+', " ");
    percent_decode(plus_as_space.as_bytes()).collect()
}

fn encode_unreserved(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, UNRESERVED).to_string()
}

/// Sorted `name=value` pairs joined by `&` (without `X-Amz-Signature` when presigned).
fn canonical_query(params: &[QueryParam], presigned: bool) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .filter(|p| !(presigned && p.name == X_AMZ_SIGNATURE.as_bytes()))
        .map(|p| (p.enc_name.as_str(), p.enc_value.as_str()))
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The canonical URI of the wire path: for `s3` as is (already encoded once);
/// otherwise normalised and encoded again, segment by segment.
fn canonical_uri(path: &str, service: &str) -> String {
    if service == "s3" {
        return if path.is_empty() {
            "/".into()
        } else {
            path.into()
        };
    }
    normalize_path(path)
        .split('/')
        .map(|segment| utf8_percent_encode(segment, UNRESERVED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// RFC 3986 §5.2.4 dot-segment removal plus removal of empty segments
/// (duplicate slashes); the result is absolute and keeps a trailing slash.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    let trailing =
        ["/", "/.", "/.."].iter().any(|s| path.ends_with(s)) || path == "." || path == "..";
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// `value1,value2,…` for a signed header: each value trimmed, runs of spaces collapsed.
fn canonical_header_value(parts: &http::request::Parts, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut any = false;
    for (i, value) in parts.headers.get_all(name).iter().enumerate() {
        any = true;
        if i > 0 {
            out.push(b',');
        }
        trim_all(value.as_bytes(), &mut out);
    }
    if !any
        && name == "host"
        && let Some(authority) = parts.uri.authority()
    {
        out.extend_from_slice(authority.as_str().as_bytes());
    }
    out
}

fn trim_all(value: &[u8], out: &mut Vec<u8>) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' {
            pending_space = started;
        } else {
            if pending_space {
                out.push(b' ');
                pending_space = false;
            }
            out.push(b);
            started = true;
        }
    }
}

/// The payload hashes to try, the preferred one first (see the module docs).
fn payload_hashes(parts: &http::request::Parts, body: &[u8], claim: &Claim) -> Vec<String> {
    let body_hash = || hex::encode(Sha256::digest(body));
    let declared = claim
        .signed_headers
        .iter()
        .any(|h| h == CONTENT_SHA256)
        .then(|| parts.headers.get(CONTENT_SHA256))
        .flatten()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
    match declared {
        Some(v) if v == UNSIGNED_PAYLOAD => vec![v],
        Some(v) => {
            let actual = body_hash();
            if v.len() == 64 && v.eq_ignore_ascii_case(&actual) {
                vec![v]
            } else {
                vec![actual]
            }
        }
        None if claim.presigned => vec![UNSIGNED_PAYLOAD.to_owned(), body_hash()],
        None => vec![body_hash()],
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(60) {
        format!("{} min.", secs / 60)
    } else {
        format!("{secs} sec.")
    }
}

// ---- time helpers (UTC, proleptic Gregorian) ----

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn to_epoch(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59
    {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYYMMDD'T'HHMMSS'Z'` → seconds since the epoch.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    to_epoch(
        i64::from(digits(s.get(0..4)?)?),
        digits(s.get(4..6)?)?,
        digits(s.get(6..8)?)?,
        digits(s.get(9..11)?)?,
        digits(s.get(11..13)?)?,
        digits(s.get(13..15)?)?,
    )
}

/// RFC 1123 `Tue, 30 Apr 2019 10:54:09 GMT` → seconds since the epoch.
fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_weekday, rest) = s.split_once(',')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, zone] = fields.as_slice() else {
        return None;
    };
    if (*zone != "GMT" && *zone != "UTC") || year.len() != 4 || day.len() > 2 {
        return None;
    }
    let month = (1..=12)
        .zip(MONTHS)
        .find(|(_, m)| m.eq_ignore_ascii_case(month))?
        .0;
    let hms: Vec<&str> = time.split(':').collect();
    let [h, mi, sec] = hms.as_slice() else {
        return None;
    };
    if h.len() != 2 || mi.len() != 2 || sec.len() != 2 {
        return None;
    }
    to_epoch(
        i64::from(digits(year)?),
        month,
        digits(day)?,
        digits(h)?,
        digits(mi)?,
        digits(sec)?,
    )
}

/// Seconds since the epoch → `YYYYMMDD'T'HHMMSS'Z'`.
fn format_amz_date(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn system_time_to_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            // Round towards negative infinity.
            -secs - i64::from(d.subsec_nanos() > 0)
        }
    }
}

fn epoch_to_system_time(t: i64) -> SystemTime {
    let magnitude = Duration::from_secs(t.unsigned_abs());
    if t >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
    .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    //! The vectors below were signed by real AWS signers and are hard-coded so
    //! the tests need no dev-dependencies: `BOTO_*` by botocore 1.44.8 (boto3
    //! `lambda` client against `endpoint_url=http://localhost:9000`, captured
    //! in `before-send`; `SigV4Auth` / `SigV4QueryAuth` for the direct ones),
    //! `SDK_*` by the AWS SDK for Rust's signer (`aws-sigv4` 1.6.6, default
    //! settings unless noted). All were signed at 2019-04-30T10:54:09Z with
    //! `AKIDEXAMPLE` / `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`. Paths and
    //! queries are exactly as sent on the wire; `Host` is what the HTTP client
    //! sends.

    use super::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SIGNED_AT: &str = "20190430T105409Z";

    struct Vector {
        method: &'static str,
        path_and_query: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
    }

    const BOTO_UA: &str = "Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux#6.18.44-fc-v1147 \
         md/arch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/e,E,N,Z,b \
         cfg/retry-mode#standard Botocore/1.44.8";

    /// boto3 `invoke(FunctionName="my-func", Payload=b'{"hello": "world"}')`.
    const BOTO_INVOKE_NAME: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/my-func/invocations",
        headers: &[
            ("Host", "localhost:9000"),
            ("User-Agent", BOTO_UA),
            ("X-Amz-Date", "20190430T105409Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=ce27b9137bc9c00d6cd6eaddff3507a30160a677746768a3f544852b890de6c4",
            ),
            (
                "amz-sdk-invocation-id",
                "bb891538-ae9e-4180-b09f-be168301c2cb",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "18"),
        ],
        body: "{\"hello\": \"world\"}",
    };

    /// boto3 `invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:foo",
    /// InvocationType="Event", Payload=b'{"k":1}')`.
    const BOTO_INVOKE_ARN: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afoo/invocations",
        headers: &[
            ("Host", "localhost:9000"),
            ("X-Amz-Invocation-Type", "Event"),
            ("User-Agent", BOTO_UA),
            ("X-Amz-Date", "20190430T105409Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-invocation-type, \
                 Signature=af301d1694b609f75d0354aaa563c58019afc9de78c1529acfcfc841e061c193",
            ),
            (
                "amz-sdk-invocation-id",
                "a480c2c6-8193-4e70-add9-8189bf308811",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
            ("Content-Length", "7"),
        ],
        body: "{\"k\":1}",
    };

    /// boto3 `list_functions(MaxItems=10, Marker="abc")`.
    const BOTO_LIST_FUNCTIONS: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions?MaxItems=10&Marker=abc",
        headers: &[
            ("Host", "localhost:9000"),
            ("User-Agent", BOTO_UA),
            ("X-Amz-Date", "20190430T105409Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=c7114122e52a104fb288074e6a6440c822269908b88ca2386081735ae5125a92",
            ),
            (
                "amz-sdk-invocation-id",
                "57e97d6f-e06b-4f75-98b5-096dd79d79a6",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
        ],
        body: "",
    };

    /// boto3 `list_functions(Marker="a b+c", MaxItems=5)`.
    const BOTO_LIST_SPACE_PLUS: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions?Marker=a%20b%2Bc&MaxItems=5",
        headers: &[
            ("Host", "localhost:9000"),
            ("User-Agent", BOTO_UA),
            ("X-Amz-Date", "20190430T105409Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=3a162eeccc1782134b3bf36246ad1244abbbed48ebc061643b2e9fe10a549327",
            ),
            (
                "amz-sdk-invocation-id",
                "4d75ee45-ba58-40b1-8749-59bf7d2ad41c",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
        ],
        body: "",
    };

    /// boto3 `generate_presigned_url("list_functions", Params={"MaxItems": 10,
    /// "Marker": "x y+z"}, ExpiresIn=900)` (botocore's `SigV4QueryAuth`).
    const BOTO_PRESIGNED_CLIENT: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions?MaxItems=10&Marker=x%20y%2Bz&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20190430%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20190430T105409Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=52edb54908817010b3f9c405391a912973c06711a1b49dcdceaa0bf5ff3320e9",
        headers: &[("Host", "localhost:9000")],
        body: "",
    };

    /// `SigV4QueryAuth(Credentials(AKID, SECRET, "SESSIONTOKEN/abc="), "lambda",
    /// "eu-west-1", expires=300)` on `GET /2015-03-31/functions/?FunctionVersion=ALL`.
    const BOTO_PRESIGNED_DIRECT: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/?FunctionVersion=ALL&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20190430%2Feu-west-1%2Flambda%2Faws4_request&X-Amz-Date=20190430T105409Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SESSIONTOKEN%2Fabc%3D&X-Amz-Signature=e97d8c6efd236b1eeb6ba433b5106f3149c8056b847d0ca58d3105bb344d8cf8",
        headers: &[("Host", "lambda.eu-west-1.amazonaws.com")],
        body: "",
    };

    /// `SigV4Auth(..., "lambda", "us-west-2")` with a header value full of spaces.
    const BOTO_SPACES_HEADER: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/my-func/invocations",
        headers: &[
            ("Host", "127.0.0.1:9000"),
            ("X-Amz-Client-Context", "  a   b  c  "),
            ("Content-Type", "application/json"),
            ("X-Amz-Date", "20190430T105409Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-west-2/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-client-context;x-amz-date, \
                 Signature=9b662b064f9d72579ee2c48c651142dde684bec352c3f10a7646d9e4d4bf0a99",
            ),
            ("Content-Length", "2"),
        ],
        body: "{}",
    };

    /// botocore `SigV4Auth` canonical request / string to sign / signature
    /// computed by hand for a request carrying only a `Date` header.
    const BOTO_DATE_HEADER: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/my-func",
        headers: &[
            ("Host", "localhost:9000"),
            ("Date", "Tue, 30 Apr 2019 10:54:09 GMT"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/ap-southeast-2/lambda/aws4_request, \
                 SignedHeaders=date;host, \
                 Signature=18bc7aa2a7a12deaafd6d913be6cb0809a0ebd53943ebc4f943aa91d560a3857",
            ),
        ],
        body: "",
    };

    const SDK_INVOKE_NAME: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/my-func/invocations",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "application/json"),
            ("x-amz-invocation-type", "RequestResponse"),
            ("x-amz-log-type", "Tail"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;x-amz-log-type, \
                 Signature=166838bd366f96477ac44f6e8c539cf21e096d40ba6594314ed30cad6e89d343",
            ),
        ],
        body: "{\"hello\": \"world\"}",
    };

    const SDK_INVOKE_ARN: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Afoo/invocations",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "application/json"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=3779d4e5037a8aaf28c0f81623b9ba3e0b92c91db457f3355e2a7938537dce23",
            ),
        ],
        body: "{\"k\":1}",
    };

    const SDK_LIST_FUNCTIONS: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/?MaxItems=10&Marker=abc",
        headers: &[
            ("host", "localhost:9000"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=8dc383747fe84196cefacdad2a8116d835fc0e20c5587cbe2fcd870d9124a960",
            ),
        ],
        body: "",
    };

    const SDK_QUERY_SPACE_PLUS: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/?Marker=a%20b%2Bc&FunctionVersion=ALL",
        headers: &[
            ("host", "localhost:9000"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=f3012183e5d9adbbc3e80ec0f7785943857e4a822a7dd872fd344feb4db4be59",
            ),
        ],
        body: "",
    };

    /// A raw `+` in the query: the SDK (like AWS) decodes it as a space.
    const SDK_QUERY_RAW_PLUS: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/?Marker=a+b",
        headers: &[
            ("host", "localhost:9000"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=f673055ea3206ea0cd61b9bbcf47fe21ddeb28dcd544af2b44ebea90e9a1be60",
            ),
        ],
        body: "",
    };

    const SDK_DOT_SEGMENTS: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31//functions/./x/../my-func/invocations",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "application/json"),
            ("x-amz-client-context", "  eyJ4IjogMX0=   and   more  "),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-client-context;x-amz-date, \
                 Signature=68295f63b895e0944f8a62491660a8a317288e93ff582b64e40f3f65dcabb716",
            ),
        ],
        body: "{}",
    };

    /// Session token and `PayloadChecksumKind::XAmzSha256`, region eu-central-1.
    const SDK_TOKEN_CONTENT_SHA: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/my-func/invocations",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "application/json"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/eu-central-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
                 Signature=617d68fd340f27309898be58cfd912fda08edb0c2a85c2d9f788042e2d889ef0",
            ),
            (
                "x-amz-content-sha256",
                "730bc329ebcd24c6c9663ca4bb0e199a090dbf9d9d1058651d8560236abb1095",
            ),
            ("x-amz-security-token", "FwoGZXIvYXdzEXAMPLETOKEN+/="),
        ],
        body: "{\"a\":[1,2,3]}",
    };
    const SDK_TOKEN: &str = "FwoGZXIvYXdzEXAMPLETOKEN+/=";

    /// `SignatureLocation::QueryParams`, expires 900 s, `UnsignedPayload`,
    /// session token `SESSION/TOKEN=`.
    const SDK_PRESIGNED: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/my-func?Qualifier=%24LATEST&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20190430%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20190430T105409Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=f94e88c948e804bb75dadd0b9fad44a160f88d2d4394f28041b961a130a28b43&X-Amz-Security-Token=SESSION%2FTOKEN%3D",
        headers: &[("host", "lambda.us-east-1.amazonaws.com")],
        body: "",
    };

    /// Presigned with expires 60 s.
    const SDK_PRESIGNED_60: Vector = Vector {
        method: "GET",
        path_and_query: "/2015-03-31/functions/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20190430%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20190430T105409Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=3259eae636ab0bf3fd1e64ad470d537ac99feea97f3485b2e9ab1d7c1c49a460",
        headers: &[("host", "lambda.us-east-1.amazonaws.com")],
        body: "",
    };

    /// Service `s3`: `PercentEncodingMode::Single`, normalisation disabled,
    /// `PayloadChecksumKind::XAmzSha256`.
    const SDK_S3: Vector = Vector {
        method: "PUT",
        path_and_query: "/my-bucket/a%20b/c%3Ad//e.txt",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "text/plain"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/s3/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature=4d5263a382ca2242d46711e0fcac7382c6a6da23b8cdf33300ac9572850c3e6b",
            ),
            (
                "x-amz-content-sha256",
                "f2ff189a4ef686231302becc266e6c8d5eee814b868d11631f7660073fc9b613",
            ),
        ],
        body: "hello s3",
    };

    /// Two header lines with the same name.
    const SDK_MULTI_HEADER: Vector = Vector {
        method: "PUT",
        path_and_query: "/2015-03-31/functions/my-func/concurrency",
        headers: &[
            ("host", "localhost:9000"),
            ("content-type", "application/json"),
            ("x-amz-meta-tag", "one"),
            ("x-amz-meta-tag", "  two   words "),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-meta-tag, \
                 Signature=2a44678121366f39a325c087888cf915efd78bf086b3828d15d224ccaf28ec70",
            ),
        ],
        body: "{\"ReservedConcurrentExecutions\":5}",
    };

    /// `SignableBody::UnsignedPayload` with the header `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    const SDK_UNSIGNED_PAYLOAD: Vector = Vector {
        method: "POST",
        path_and_query: "/2015-03-31/functions/my-func/invocations",
        headers: &[
            ("host", "localhost:9000"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-date", "20190430T105409Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                 Signature=0361ffa5f0f636d8a42d15e3bdeedfe2782ab5ff52076c092bca2c888887c4df",
            ),
        ],
        body: "anything",
    };

    impl Vector {
        fn parts(&self) -> http::request::Parts {
            self.parts_with(self.path_and_query, |_| {})
        }

        fn parts_with(
            &self,
            path_and_query: &str,
            edit: impl FnOnce(&mut http::HeaderMap),
        ) -> http::request::Parts {
            let mut builder = http::Request::builder()
                .method(self.method)
                .uri(path_and_query);
            for (name, value) in self.headers {
                builder = builder.header(*name, *value);
            }
            let (mut parts, ()) = builder.body(()).expect("valid test request").into_parts();
            edit(&mut parts.headers);
            parts
        }

        fn with_header(&self, name: &'static str, value: &str) -> http::request::Parts {
            self.parts_with(self.path_and_query, |h| {
                h.insert(
                    name,
                    http::HeaderValue::from_str(value).expect("header value"),
                );
            })
        }

        fn authorization(&self) -> &'static str {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| *v)
                .expect("vector has an Authorization header")
        }
    }

    fn creds() -> HashMap<String, String> {
        HashMap::from([(AKID.to_owned(), SECRET.to_owned())])
    }

    fn lambda() -> Verifier<HashMap<String, String>> {
        Verifier::new(creds(), "lambda")
    }

    fn at(amz_date: &str) -> SystemTime {
        epoch_to_system_time(parse_amz_date(amz_date).expect("valid amz date"))
    }

    fn signed_at() -> SystemTime {
        at(SIGNED_AT)
    }

    fn ok(v: &Vector, region: &str) {
        assert_eq!(
            lambda().verify(&v.parts(), v.body.as_bytes(), signed_at()),
            Ok(Identity {
                access_key_id: AKID.into(),
                region: region.into()
            })
        );
    }

    fn canonical_with_wrong_secret(v: &Vector, parts: &http::request::Parts) -> String {
        let wrong = HashMap::from([(AKID.to_owned(), "not-the-secret".to_owned())]);
        match Verifier::new(wrong, "lambda").verify(parts, v.body.as_bytes(), signed_at()) {
            Err(SigV4Error::SignatureDoesNotMatch {
                canonical_request, ..
            }) => canonical_request,
            other => panic!("expected SignatureDoesNotMatch, got {other:?}"),
        }
    }

    // (1) Requests signed by real AWS signers.

    #[test]
    fn botocore_invoke_by_name() {
        ok(&BOTO_INVOKE_NAME, "us-east-1");
    }

    #[test]
    fn sdk_invoke_by_name() {
        ok(&SDK_INVOKE_NAME, "us-east-1");
    }

    #[test]
    fn invoke_by_arn_needs_double_encoding() {
        ok(&BOTO_INVOKE_ARN, "us-east-1");
        ok(&SDK_INVOKE_ARN, "us-east-1");
        let canonical = canonical_with_wrong_secret(&SDK_INVOKE_ARN, &SDK_INVOKE_ARN.parts());
        assert!(canonical.contains(
            "\n/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A123456789012%253Afunction%253Afoo/invocations\n"
        ));
        // The same request with the path decoded (as a router would hand it
        // out) is canonicalised with single encoding only, and fails.
        let decoded = SDK_INVOKE_ARN.parts_with(
            "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:foo/invocations",
            |_| {},
        );
        assert!(matches!(
            lambda().verify(&decoded, SDK_INVOKE_ARN.body.as_bytes(), signed_at()),
            Err(SigV4Error::SignatureDoesNotMatch { .. })
        ));
        assert_eq!(
            canonical_uri("/functions/arn%3Aa:b/x", "lambda"),
            "/functions/arn%253Aa%3Ab/x"
        );
    }

    #[test]
    fn list_functions_query_is_sorted() {
        ok(&BOTO_LIST_FUNCTIONS, "us-east-1");
        ok(&SDK_LIST_FUNCTIONS, "us-east-1");
        for v in [&BOTO_LIST_FUNCTIONS, &SDK_LIST_FUNCTIONS] {
            let canonical = canonical_with_wrong_secret(v, &v.parts());
            assert!(
                canonical.contains("\nMarker=abc&MaxItems=10\n"),
                "{canonical}"
            );
        }
        // Reordering the parameters on the wire changes nothing.
        let reordered =
            BOTO_LIST_FUNCTIONS.parts_with("/2015-03-31/functions?Marker=abc&MaxItems=10", |_| {});
        assert!(lambda().verify(&reordered, b"", signed_at()).is_ok());
    }

    #[test]
    fn query_value_with_space_and_plus() {
        ok(&BOTO_LIST_SPACE_PLUS, "us-east-1");
        ok(&SDK_QUERY_SPACE_PLUS, "us-east-1");
        let canonical =
            canonical_with_wrong_secret(&BOTO_LIST_SPACE_PLUS, &BOTO_LIST_SPACE_PLUS.parts());
        assert!(
            canonical.contains("\nMarker=a%20b%2Bc&MaxItems=5\n"),
            "{canonical}"
        );
        let canonical =
            canonical_with_wrong_secret(&SDK_QUERY_SPACE_PLUS, &SDK_QUERY_SPACE_PLUS.parts());
        assert!(
            canonical.contains("\nFunctionVersion=ALL&Marker=a%20b%2Bc\n"),
            "{canonical}"
        );
    }

    #[test]
    fn raw_plus_in_query_is_a_space() {
        ok(&SDK_QUERY_RAW_PLUS, "us-east-1");
        let canonical =
            canonical_with_wrong_secret(&SDK_QUERY_RAW_PLUS, &SDK_QUERY_RAW_PLUS.parts());
        assert!(canonical.contains("\nMarker=a%20b\n"), "{canonical}");
        // `%20` on the wire is the same value; `%2B` is a different one.
        let same = SDK_QUERY_RAW_PLUS.parts_with("/2015-03-31/functions/?Marker=a%20b", |_| {});
        assert!(lambda().verify(&same, b"", signed_at()).is_ok());
        let plus = SDK_QUERY_RAW_PLUS.parts_with("/2015-03-31/functions/?Marker=a%2Bb", |_| {});
        assert!(matches!(
            lambda().verify(&plus, b"", signed_at()),
            Err(SigV4Error::SignatureDoesNotMatch { .. })
        ));
    }

    #[test]
    fn date_header_instead_of_x_amz_date() {
        ok(&BOTO_DATE_HEADER, "ap-southeast-2");
        let late = at("20190430T110010Z");
        assert!(matches!(
            lambda().verify(&BOTO_DATE_HEADER.parts(), b"", late),
            Err(SigV4Error::SignatureExpired(_))
        ));
    }

    #[test]
    fn other_sdk_vectors() {
        ok(&SDK_DOT_SEGMENTS, "us-east-1");
        ok(&SDK_MULTI_HEADER, "us-east-1");
        ok(&SDK_UNSIGNED_PAYLOAD, "us-east-1");
        ok(&SDK_TOKEN_CONTENT_SHA, "eu-central-1");
        let canonical = canonical_with_wrong_secret(&SDK_MULTI_HEADER, &SDK_MULTI_HEADER.parts());
        assert!(
            canonical.contains("\nx-amz-meta-tag:one,two words\n"),
            "{canonical}"
        );
        let canonical = canonical_with_wrong_secret(&SDK_DOT_SEGMENTS, &SDK_DOT_SEGMENTS.parts());
        assert!(
            canonical.starts_with("POST\n/2015-03-31/functions/my-func/invocations\n"),
            "{canonical}"
        );
    }

    #[test]
    fn unsigned_payload_header_accepts_any_body() {
        let v = &SDK_UNSIGNED_PAYLOAD;
        assert!(
            lambda()
                .verify(&v.parts(), b"something else", signed_at())
                .is_ok()
        );
    }

    #[test]
    fn s3_uses_the_wire_path_once() {
        let s3 = Verifier::new(creds(), "s3");
        assert_eq!(
            s3.verify(&SDK_S3.parts(), SDK_S3.body.as_bytes(), signed_at()),
            Ok(Identity {
                access_key_id: AKID.into(),
                region: "us-east-1".into()
            })
        );
        assert_eq!(canonical_uri("/b/a%20b//./c", "s3"), "/b/a%20b//./c");
        // A lambda verifier refuses the s3 scope.
        assert!(matches!(
            lambda().verify(&SDK_S3.parts(), SDK_S3.body.as_bytes(), signed_at()),
            Err(SigV4Error::InvalidSignatureScope(m)) if m.contains("'lambda'")
        ));
    }

    #[test]
    fn host_from_uri_authority_when_no_host_header() {
        let v = &SDK_INVOKE_NAME;
        let parts = v.parts_with(
            "http://localhost:9000/2015-03-31/functions/my-func/invocations",
            |h| {
                h.remove(http::header::HOST);
            },
        );
        assert!(
            lambda()
                .verify(&parts, v.body.as_bytes(), signed_at())
                .is_ok()
        );
    }

    // (2) Wrong secret.

    #[test]
    fn wrong_secret_reports_canonical_request() {
        let v = &BOTO_INVOKE_NAME;
        let wrong = HashMap::from([(AKID.to_owned(), "wrong".to_owned())]);
        let err = Verifier::new(wrong, "lambda")
            .verify(&v.parts(), v.body.as_bytes(), signed_at())
            .expect_err("wrong secret");
        let expected_canonical = "POST\n\
             /2015-03-31/functions/my-func/invocations\n\
             \n\
             host:localhost:9000\n\
             x-amz-date:20190430T105409Z\n\
             \n\
             host;x-amz-date\n\
             5f8f04f6a3a892aaabbddb6cf273894493773960d4a325b105fee46eef4304f1";
        let SigV4Error::SignatureDoesNotMatch {
            canonical_request,
            string_to_sign,
        } = &err
        else {
            panic!("expected SignatureDoesNotMatch, got {err:?}");
        };
        assert_eq!(canonical_request, expected_canonical);
        assert_eq!(
            string_to_sign,
            &format!(
                "AWS4-HMAC-SHA256\n20190430T105409Z\n20190430/us-east-1/lambda/aws4_request\n{}",
                hex::encode(Sha256::digest(expected_canonical))
            )
        );
        assert_eq!(
            err.to_string(),
            format!(
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service \
                 documentation for details.\n\nThe Canonical String for this request should have \
                 been\n'{expected_canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            )
        );
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(err.status(), 403);
    }

    // (3) Unknown key.

    #[test]
    fn unknown_access_key() {
        let v = &BOTO_INVOKE_NAME;
        let other = HashMap::from([("AKIAOTHER".to_owned(), SECRET.to_owned())]);
        let err = Verifier::new(other, "lambda")
            .verify(&v.parts(), v.body.as_bytes(), signed_at())
            .expect_err("unknown key");
        assert_eq!(err, SigV4Error::UnrecognizedClient);
        assert_eq!(
            err.to_string(),
            "The security token included in the request is invalid."
        );
        assert_eq!(err.code(), "UnrecognizedClientException");
        assert_eq!(err.status(), 403);
    }

    // (4) Clock skew.

    #[test]
    fn clock_six_minutes_off_is_rejected() {
        let v = &SDK_INVOKE_NAME;
        let err = lambda()
            .verify(&v.parts(), v.body.as_bytes(), at("20190430T110009Z"))
            .expect_err("too old");
        assert_eq!(
            err,
            SigV4Error::SignatureExpired(
                "Signature expired: 20190430T105409Z is now earlier than 20190430T105509Z \
                 (20190430T110009Z - 5 min.)"
                    .into()
            )
        );
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(err.status(), 403);
        let err = lambda()
            .verify(&v.parts(), v.body.as_bytes(), at("20190430T104809Z"))
            .expect_err("from the future");
        assert_eq!(
            err,
            SigV4Error::SignatureExpired(
                "Signature expired: 20190430T105409Z is now later than 20190430T105309Z \
                 (20190430T104809Z + 5 min.)"
                    .into()
            )
        );
    }

    #[test]
    fn clock_four_minutes_off_is_fine() {
        let v = &SDK_INVOKE_NAME;
        for now in [
            "20190430T105809Z",
            "20190430T105009Z",
            "20190430T105909Z",
            "20190430T104909Z",
        ] {
            assert!(
                lambda()
                    .verify(&v.parts(), v.body.as_bytes(), at(now))
                    .is_ok(),
                "{now}"
            );
        }
    }

    #[test]
    fn aws_example_expiry_message() {
        // The time check comes before the signature check, so any request
        // dated 20190430T075732Z shows AWS's own example message.
        let parts = BOTO_INVOKE_NAME.with_header("x-amz-date", "20190430T075732Z");
        let err = lambda()
            .verify(&parts, b"", at("20190430T105909Z"))
            .expect_err("expired");
        assert_eq!(
            err.to_string(),
            "Signature expired: 20190430T075732Z is now earlier than 20190430T105409Z \
             (20190430T105909Z - 5 min.)"
        );
    }

    #[test]
    fn configurable_skew() {
        let v = &SDK_INVOKE_NAME;
        let strict = lambda().with_max_skew(Duration::from_secs(30));
        assert!(
            strict
                .verify(&v.parts(), v.body.as_bytes(), at("20190430T105439Z"))
                .is_ok()
        );
        assert_eq!(
            strict.verify(&v.parts(), v.body.as_bytes(), at("20190430T105440Z")),
            Err(SigV4Error::SignatureExpired(
                "Signature expired: 20190430T105409Z is now earlier than 20190430T105410Z \
                 (20190430T105440Z - 30 sec.)"
                    .into()
            ))
        );
        let lax = lambda().with_max_skew(Duration::from_mins(15));
        assert!(
            lax.verify(&v.parts(), v.body.as_bytes(), at("20190430T110809Z"))
                .is_ok()
        );
        assert!(matches!(
            lax.verify(&v.parts(), v.body.as_bytes(), at("20190430T111000Z")),
            Err(SigV4Error::SignatureExpired(m)) if m.ends_with("(20190430T111000Z - 15 min.)")
        ));
    }

    // (5) Missing Authorization.

    #[test]
    fn missing_authorization() {
        let v = &BOTO_INVOKE_NAME;
        let parts = v.parts_with(v.path_and_query, |h| {
            h.remove(http::header::AUTHORIZATION);
        });
        let err = lambda()
            .verify(&parts, v.body.as_bytes(), signed_at())
            .expect_err("no auth");
        assert_eq!(err, SigV4Error::MissingAuthenticationToken);
        assert_eq!(err.code(), "MissingAuthenticationTokenException");
        assert_eq!(err.to_string(), "Missing Authentication Token");
        assert_eq!(err.status(), 403);
    }

    // (6) Malformed Authorization.

    #[test]
    fn authorization_without_signature() {
        let v = &BOTO_INVOKE_NAME;
        let auth = v.authorization();
        let cut = &auth[..auth.find(", Signature=").expect("has signature")];
        let err = lambda()
            .verify(
                &v.with_header("authorization", cut),
                v.body.as_bytes(),
                signed_at(),
            )
            .expect_err("no signature");
        assert_eq!(
            err,
            SigV4Error::IncompleteSignature(
                "Authorization header requires 'Signature' parameter.".into()
            )
        );
        assert_eq!(err.code(), "IncompleteSignatureException");
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn other_malformed_authorizations() {
        let v = &BOTO_INVOKE_NAME;
        let check = |auth: &str, needle: &str| match lambda().verify(
            &v.with_header("authorization", auth),
            b"",
            signed_at(),
        ) {
            Err(SigV4Error::IncompleteSignature(m)) => {
                assert!(m.contains(needle), "{auth:?}: {m}");
            }
            other => panic!("{auth:?}: expected IncompleteSignature, got {other:?}"),
        };
        check(
            "AWS4-HMAC-SHA256",
            "requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter.",
        );
        check("", "only 'AWS4-HMAC-SHA256'");
        check("Bearer abc", "only 'AWS4-HMAC-SHA256'");
        check(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            "exactly 5 slash-delimited elements",
        );
        check(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, SignedHeaders, Signature=00",
            "not a valid key=value pair",
        );
        check(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20190430/us-east-1/lambda/aws4_request, SignedHeaders=host;;x-amz-date, Signature=00",
            "empty header name",
        );
        // No date at all.
        let parts = v.parts_with(v.path_and_query, |h| {
            h.remove("x-amz-date");
        });
        assert_eq!(
            lambda().verify(&parts, b"", signed_at()),
            Err(SigV4Error::IncompleteSignature(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                    .into()
            ))
        );
        let parts = v.with_header("x-amz-date", "2019-04-30T10:54:09Z");
        assert!(matches!(
            lambda().verify(&parts, b"", signed_at()),
            Err(SigV4Error::IncompleteSignature(m)) if m.contains("ISO-8601")
        ));
    }

    #[test]
    fn bad_scopes() {
        let v = &BOTO_INVOKE_NAME;
        let auth = v.authorization();
        let scope = |from: &str, to: &str| {
            let parts = v.with_header("authorization", &auth.replace(from, to));
            lambda().verify(&parts, v.body.as_bytes(), signed_at())
        };
        assert!(matches!(
            scope("/lambda/", "/iam/"),
            Err(SigV4Error::InvalidSignatureScope(m)) if m == "Credential should be scoped to correct service: 'lambda'."
        ));
        assert!(matches!(
            scope("/aws4_request", "/aws4_reqest"),
            Err(SigV4Error::InvalidSignatureScope(m)) if m.contains("valid terminator")
        ));
        assert!(matches!(
            scope("/us-east-1/", "//"),
            Err(SigV4Error::InvalidSignatureScope(m)) if m.contains("valid region")
        ));
        assert_eq!(
            scope("/20190430/", "/20190429/"),
            Err(SigV4Error::InvalidSignatureScope(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20190429' != '20190430', from '20190430T105409Z'."
                    .into()
            ))
        );
        // Any region is accepted, but it is part of the signature.
        assert!(matches!(
            scope("/us-east-1/", "/lambdock-local/"),
            Err(SigV4Error::SignatureDoesNotMatch { .. })
        ));
        assert_eq!(
            scope("/20190430/", "/20190429/").map_err(|e| e.code()),
            Err("InvalidSignatureException")
        );
    }

    // (7) `host` must be signed: IncompleteSignature, before any signature check.

    #[test]
    fn host_must_be_signed() {
        let v = &BOTO_INVOKE_NAME;
        let auth = v
            .authorization()
            .replace("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date");
        let err = lambda()
            .verify(
                &v.with_header("authorization", &auth),
                v.body.as_bytes(),
                signed_at(),
            )
            .expect_err("host not signed");
        assert!(
            matches!(&err, SigV4Error::IncompleteSignature(m) if m.contains("'host'")),
            "{err:?}"
        );
    }

    // (8) Presigned URLs.

    #[test]
    fn botocore_presigned_urls() {
        let v = &BOTO_PRESIGNED_CLIENT;
        assert_eq!(
            lambda().verify(&v.parts(), b"", at("20190430T110000Z")),
            Ok(Identity {
                access_key_id: AKID.into(),
                region: "us-east-1".into()
            })
        );
        assert_eq!(
            lambda().verify(&BOTO_PRESIGNED_DIRECT.parts(), b"", signed_at()),
            Ok(Identity {
                access_key_id: AKID.into(),
                region: "eu-west-1".into()
            })
        );
        // Expired: signed 10:54:09 + 900 s.
        assert!(
            lambda()
                .verify(&v.parts(), b"", at("20190430T110909Z"))
                .is_ok()
        );
        assert_eq!(
            lambda().verify(&v.parts(), b"", at("20190430T110910Z")),
            Err(SigV4Error::SignatureExpired(
                "Signature expired: 20190430T110909Z (20190430T105409Z + 900 sec.) is now \
                 earlier than 20190430T110910Z"
                    .into()
            ))
        );
        // Not usable from too far in the past either.
        assert!(matches!(
            lambda().verify(&v.parts(), b"", at("20190430T104800Z")),
            Err(SigV4Error::SignatureExpired(m)) if m.contains("is now later than")
        ));
    }

    #[test]
    fn sdk_presigned_urls() {
        let with_token = SessionTokens(HashMap::from([(
            AKID.to_owned(),
            (SECRET.to_owned(), "SESSION/TOKEN=".to_owned()),
        )]));
        assert!(
            Verifier::new(&with_token, "lambda")
                .verify(&SDK_PRESIGNED.parts(), b"", at("20190430T110000Z"))
                .is_ok()
        );
        let v = &SDK_PRESIGNED_60;
        assert!(
            lambda()
                .verify(&v.parts(), b"", at("20190430T105509Z"))
                .is_ok()
        );
        assert!(matches!(
            lambda().verify(&v.parts(), b"", at("20190430T105510Z")),
            Err(SigV4Error::SignatureExpired(m)) if m.starts_with("Signature expired: 20190430T105509Z")
        ));
    }

    #[test]
    fn presigned_tampering_and_limits() {
        let v = &BOTO_PRESIGNED_CLIENT;
        let tampered = v
            .path_and_query
            .replace("Marker=x%20y%2Bz", "Marker=x%20y%2Bzz");
        let canonical = canonical_with_wrong_secret(v, &v.parts());
        assert!(
            canonical.contains("\nMarker=x%20y%2Bz&MaxItems=10&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20190430%2Fus-east-1%2Flambda%2Faws4_request&X-Amz-Date=20190430T105409Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\n"),
            "{canonical}"
        );
        assert!(
            canonical.ends_with("\nhost\nUNSIGNED-PAYLOAD"),
            "{canonical}"
        );
        assert!(matches!(
            lambda().verify(&v.parts_with(&tampered, |_| {}), b"", signed_at()),
            Err(SigV4Error::SignatureDoesNotMatch { .. })
        ));
        let long = v
            .path_and_query
            .replace("X-Amz-Expires=900", "X-Amz-Expires=604801");
        assert!(matches!(
            lambda().verify(&v.parts_with(&long, |_| {}), b"", signed_at()),
            Err(SigV4Error::IncompleteSignature(m)) if m.contains("604800")
        ));
        let missing = v.path_and_query.replace("&X-Amz-SignedHeaders=host", "");
        assert!(matches!(
            lambda().verify(&v.parts_with(&missing, |_| {}), b"", signed_at()),
            Err(SigV4Error::IncompleteSignature(m)) if m.contains("'X-Amz-SignedHeaders'")
        ));
        // Both mechanisms at once.
        let both = v.with_header("authorization", BOTO_INVOKE_NAME.authorization());
        assert!(matches!(
            lambda().verify(&both, b"", signed_at()),
            Err(SigV4Error::IncompleteSignature(m)) if m.contains("Only one auth mechanism")
        ));
    }

    // (9) Body tampered.

    #[test]
    fn tampered_body_is_a_mismatch() {
        for v in [&BOTO_INVOKE_NAME, &SDK_INVOKE_NAME, &SDK_TOKEN_CONTENT_SHA] {
            let err = lambda()
                .verify(&v.parts(), b"{\"hello\": \"w0rld\"}", signed_at())
                .expect_err("tampered body");
            assert!(
                matches!(err, SigV4Error::SignatureDoesNotMatch { .. }),
                "{err:?}"
            );
        }
        // With a signed x-amz-content-sha256, the real body digest is what counts.
        let v = &SDK_TOKEN_CONTENT_SHA;
        let canonical = canonical_with_wrong_secret(v, &v.parts());
        assert!(canonical.ends_with(&hex::encode(Sha256::digest(v.body))));
    }

    // (10) Header values with runs of spaces.

    #[test]
    fn header_spaces_are_canonicalised() {
        ok(&BOTO_SPACES_HEADER, "us-west-2");
        let v = &BOTO_SPACES_HEADER;
        let canonical = canonical_with_wrong_secret(v, &v.parts());
        assert!(
            canonical.contains("\nx-amz-client-context:a b c\n"),
            "{canonical}"
        );
        let canonical = canonical_with_wrong_secret(&SDK_DOT_SEGMENTS, &SDK_DOT_SEGMENTS.parts());
        assert!(
            canonical.contains("\nx-amz-client-context:eyJ4IjogMX0= and more\n"),
            "{canonical}"
        );
        // A different inner spacing of the same words is the same canonical value.
        let respaced = v.with_header("x-amz-client-context", "a b     c");
        assert!(
            lambda()
                .verify(&respaced, v.body.as_bytes(), signed_at())
                .is_ok()
        );
    }

    // Session tokens.

    struct SessionTokens(HashMap<String, (String, String)>);

    impl Credentials for SessionTokens {
        fn secret(&self, access_key_id: &str) -> Option<String> {
            self.0.get(access_key_id).map(|(s, _)| s.clone())
        }
        fn session_token(&self, access_key_id: &str) -> Option<String> {
            self.0.get(access_key_id).map(|(_, t)| t.clone())
        }
    }

    #[test]
    fn session_token_must_match_when_configured() {
        let v = &SDK_TOKEN_CONTENT_SHA;
        let store = |token: &str| {
            Arc::new(SessionTokens(HashMap::from([(
                AKID.to_owned(),
                (SECRET.to_owned(), token.to_owned()),
            )])))
        };
        assert!(
            Verifier::new(store(SDK_TOKEN), "lambda")
                .verify(&v.parts(), v.body.as_bytes(), signed_at())
                .is_ok()
        );
        assert_eq!(
            Verifier::new(store("other"), "lambda").verify(
                &v.parts(),
                v.body.as_bytes(),
                signed_at()
            ),
            Err(SigV4Error::UnrecognizedClient)
        );
        // A token is required when one is configured.
        assert_eq!(
            Verifier::new(store(SDK_TOKEN), "lambda").verify(
                &BOTO_INVOKE_NAME.parts(),
                BOTO_INVOKE_NAME.body.as_bytes(),
                signed_at()
            ),
            Err(SigV4Error::UnrecognizedClient)
        );
    }

    // Helpers.

    #[test]
    fn path_normalisation() {
        for (input, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a//b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("a/b", "/a/b"),
        ] {
            assert_eq!(normalize_path(input), expected, "{input:?}");
        }
        assert_eq!(canonical_uri("/a b/~x!", "lambda"), "/a%20b/~x%21");
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("20190430T105409Z"), Some(1_556_621_649));
        assert_eq!(format_amz_date(1_556_621_649), "20190430T105409Z");
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_amz_date("20190229T000000Z"), None);
        assert_eq!(parse_amz_date("20191301T000000Z"), None);
        assert_eq!(parse_amz_date("20190430T245409Z"), None);
        assert_eq!(parse_amz_date("20190430T105409"), None);
        assert_eq!(parse_amz_date("2019043OT105409Z"), None);
        assert_eq!(parse_amz_date("+0190430T105409Z"), None);
        assert_eq!(
            parse_http_date("Tue, 30 Apr 2019 10:54:09 GMT"),
            Some(1_556_621_649)
        );
        assert_eq!(parse_http_date("Tue, 30 Apr 2019 10:54:09 +0200"), None);
        assert_eq!(parse_http_date("Tue 30 Apr 2019 10:54:09 GMT"), None);
        assert_eq!(parse_http_date("Tue, 31 Apr 2019 10:54:09 GMT"), None);
        assert_eq!(system_time_to_epoch(signed_at()), 1_556_621_649);
        assert_eq!(
            system_time_to_epoch(UNIX_EPOCH - Duration::from_millis(1500)),
            -2
        );
    }

    #[test]
    fn trim_all_collapses_spaces() {
        let mut out = Vec::new();
        trim_all(b"   a   b c  ", &mut out);
        assert_eq!(out, b"a b c");
        out.clear();
        trim_all(b"    ", &mut out);
        assert_eq!(out, b"");
    }

    #[test]
    fn signing_key_matches_aws_documentation() {
        // From the AWS General Reference "Examples of how to derive a signing key".
        let key = signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let shown = format!("{:?}", lambda());
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("lambda"));
    }

    #[test]
    fn own_signatures_verify() {
        let now = SystemTime::now();
        for path in [
            "/2015-03-31/functions/f/invocations",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations",
        ] {
            let (mut parts, ()) =
                http::Request::post(format!("http://127.0.0.1:3001{path}?Qualifier=live"))
                    .header("content-type", "application/json")
                    .body(())
                    .unwrap()
                    .into_parts();
            sign(
                &mut parts,
                b"{}",
                "AKID",
                "secret",
                "us-east-1",
                "lambda",
                now,
            );
            let creds: HashMap<String, String> = HashMap::from([("AKID".into(), "secret".into())]);
            let verifier = Verifier::new(creds, "lambda");
            assert!(verifier.verify(&parts, b"{}", now).is_ok(), "{path}");
            assert!(
                verifier.verify(&parts, b"{ }", now).is_err(),
                "the body is signed"
            );
        }
    }
}
