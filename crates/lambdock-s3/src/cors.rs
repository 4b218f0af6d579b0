//! CORS as S3 applies a bucket's configuration: preflight `OPTIONS` answered from the rules
//! (unauthenticated, as browsers send it), and `Access-Control-*` headers added to answers of
//! requests carrying an `Origin` a rule allows. Browsers uploading with presigned URLs need both.

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use s3s::dto::CORSRule;

use crate::store::Store;

/// Whether `value` matches `pattern`, which may hold one `*` wildcard (S3 allows one).
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value[..head.len()].eq_ignore_ascii_case(head)
                && value[value.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

/// The first rule allowing `origin`, `method` and every one of `headers`.
pub fn matching_rule<'a>(
    rules: &'a [CORSRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CORSRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.allowed_headers
                    .as_ref()
                    .is_some_and(|allowed| allowed.iter().any(|a| wildcard(a, h)))
            })
    })
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Sets the `Access-Control-*` answer headers for `rule`.
fn allow(headers: &mut HeaderMap, rule: &CORSRule, origin: &str) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    put(
        headers,
        "access-control-allow-origin",
        if any_origin { "*" } else { origin },
    );
    if !any_origin {
        put(headers, "access-control-allow-credentials", "true");
    }
    put(
        headers,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if let Some(expose) = rule.expose_headers.as_ref().filter(|e| !e.is_empty()) {
        put(headers, "access-control-expose-headers", &expose.join(", "));
    }
    if let Some(age) = rule.max_age_seconds {
        put(headers, "access-control-max-age", &age.to_string());
    }
    put(
        headers,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

/// The bucket a path-style request addresses.
fn bucket_of(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .filter(|b| !b.is_empty())
}

fn rules(store: &Store, path: &str) -> Vec<CORSRule> {
    bucket_of(path)
        .and_then(|b| store.bucket(b).ok())
        .and_then(|b| b.config().ok())
        .and_then(|c| c.cors)
        .unwrap_or_default()
}

/// Whether a request is a CORS preflight.
pub fn is_preflight<B>(req: &http::Request<B>) -> bool {
    req.method() == Method::OPTIONS && req.headers().contains_key(http::header::ORIGIN)
}

/// Answers a preflight request from the bucket's rules (200, or 403 as S3 does).
pub fn preflight<B>(store: &Store, req: &http::Request<B>) -> http::Response<s3s::Body> {
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let origin = header(http::header::ORIGIN);
    let method = header(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let requested: Vec<&str> = header(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let rules = rules(store, req.uri().path());
    let mut resp = http::Response::new(s3s::Body::empty());
    match matching_rule(&rules, origin, method, &requested) {
        Some(rule) => {
            allow(resp.headers_mut(), rule, origin);
            if !requested.is_empty() {
                put(
                    resp.headers_mut(),
                    "access-control-allow-headers",
                    &requested.join(", "),
                );
            }
        }
        None => {
            *resp.status_mut() = StatusCode::FORBIDDEN;
            put(resp.headers_mut(), "content-type", "application/xml");
            *resp.body_mut() = s3s::Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessForbidden</Code><Message>CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.</Message></Error>"
                    .to_string(),
            );
        }
    }
    resp
}

/// What an actual (non-preflight) cross-origin request needs to decorate its answer.
pub struct CrossOrigin {
    origin: String,
    method: String,
    path: String,
}

impl CrossOrigin {
    /// `Some` when the request carries an `Origin`.
    pub fn of<B>(req: &http::Request<B>) -> Option<Self> {
        let origin = req.headers().get(http::header::ORIGIN)?.to_str().ok()?;
        Some(Self {
            origin: origin.to_string(),
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
        })
    }

    /// Adds the `Access-Control-*` headers when a rule of the bucket allows the request.
    pub fn decorate(&self, store: &Store, headers: &mut HeaderMap) {
        let rules = rules(store, &self.path);
        if let Some(rule) = matching_rule(&rules, &self.origin, &self.method, &[]) {
            allow(headers, rule, &self.origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: Option<&[&str]>) -> CORSRule {
        CORSRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.map(|h| h.iter().map(|s| s.to_string()).collect()),
            expose_headers: None,
            id: None,
            max_age_seconds: None,
        }
    }

    #[test]
    fn origins_methods_and_headers_must_all_match() {
        let rules = [
            rule(
                &["https://*.example.com"],
                &["PUT"],
                Some(&["content-type"]),
            ),
            rule(&["*"], &["GET"], None),
        ];
        assert!(
            matching_rule(&rules, "https://app.example.com", "PUT", &["Content-Type"]).is_some()
        );
        assert!(matching_rule(&rules, "https://app.example.com", "PUT", &["x-other"]).is_none());
        assert!(matching_rule(&rules, "https://evil.org", "PUT", &[]).is_none());
        assert!(matching_rule(&rules, "https://evil.org", "GET", &[]).is_some());
        assert!(matching_rule(&rules, "https://evil.org", "GET", &["x-h"]).is_none());
        assert!(matching_rule(&rules, "https://evil.org", "DELETE", &[]).is_none());
    }

    #[test]
    fn wildcard_is_anchored() {
        assert!(wildcard("http://*.a.com", "http://x.a.com"));
        assert!(!wildcard("http://*.a.com", "http://x.a.com.evil"));
        assert!(wildcard("*", "anything"));
        assert!(!wildcard("http://a.com", "http://a.co"));
    }

    #[test]
    fn the_bucket_is_the_first_path_segment() {
        assert_eq!(bucket_of("/b/k/x"), Some("b"));
        assert_eq!(bucket_of("/"), None);
    }
}
