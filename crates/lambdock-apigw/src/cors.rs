//! CORS as API Gateway applies an API's `Cors` settings. HTTP APIs answer preflights
//! themselves and decorate every routed response for an allowed origin; REST APIs (SAM's
//! `Cors`) get an `OPTIONS` mock integration returning the configured headers, and their
//! functions add `Access-Control-Allow-Origin` to actual responses themselves.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use lambdock_template::manifest::{ApiKind, Cors};

use crate::response::Body;

/// `https://*.example.com` style patterns: `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text),
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len()
                && text[..head.len()].eq_ignore_ascii_case(head)
                && text[text.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

/// The `Access-Control-Allow-Origin` value for `origin`, when it is allowed.
fn allow_origin(cors: &Cors, origin: &str) -> Option<String> {
    if cors.allow_origins.iter().any(|o| o == "*") {
        // A credentialed request cannot be answered with `*`.
        return Some(if cors.allow_credentials {
            origin.to_string()
        } else {
            "*".to_string()
        });
    }
    cors.allow_origins
        .iter()
        .any(|o| glob(o, origin))
        .then(|| origin.to_string())
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The answer to a preflight (`OPTIONS`) for a path whose routes allow `path_methods`.
pub fn preflight(
    kind: ApiKind,
    cors: &Cors,
    request: &HeaderMap,
    path_methods: &[String],
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let methods = if cors.allow_methods.is_empty() {
        let mut m: Vec<String> = path_methods
            .iter()
            .flat_map(|m| {
                if m == "ANY" {
                    ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
                        .map(String::from)
                        .to_vec()
                } else {
                    vec![m.clone()]
                }
            })
            .chain(std::iter::once("OPTIONS".to_string()))
            .collect();
        m.sort();
        m.dedup();
        m
    } else {
        cors.allow_methods.clone()
    };
    let requested_headers = request
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok());
    let allow_headers = if cors.allow_headers.iter().any(|h| h == "*") {
        requested_headers.map(str::to_string)
    } else if cors.allow_headers.is_empty() {
        None
    } else {
        Some(cors.allow_headers.join(","))
    };
    match kind {
        ApiKind::Rest => {
            *resp.status_mut() = StatusCode::OK;
            let h = resp.headers_mut();
            set(
                h,
                "access-control-allow-origin",
                cors.allow_origins.first().map_or("*", String::as_str),
            );
            set(h, "access-control-allow-methods", &methods.join(","));
            if let Some(v) = allow_headers {
                set(h, "access-control-allow-headers", &v);
            }
            if let Some(age) = cors.max_age_s {
                set(h, "access-control-max-age", &age.to_string());
            }
            if cors.allow_credentials {
                set(h, "access-control-allow-credentials", "true");
            }
            set(h, "content-type", "application/json");
        }
        ApiKind::Http => {
            *resp.status_mut() = StatusCode::NO_CONTENT;
            let h = resp.headers_mut();
            let origin = request.get("origin").and_then(|v| v.to_str().ok());
            let method = request
                .get("access-control-request-method")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let method_allowed = methods
                .iter()
                .any(|m| m == "*" || m.eq_ignore_ascii_case(method));
            if let Some(allowed) = origin.and_then(|o| allow_origin(cors, o))
                && method_allowed
            {
                set(h, "access-control-allow-origin", &allowed);
                set(h, "access-control-allow-methods", &methods.join(","));
                if let Some(v) = allow_headers {
                    set(h, "access-control-allow-headers", &v);
                }
                if let Some(age) = cors.max_age_s {
                    set(h, "access-control-max-age", &age.to_string());
                }
                if cors.allow_credentials {
                    set(h, "access-control-allow-credentials", "true");
                }
            }
        }
    }
    resp
}

/// HTTP APIs: an actual response to an allowed origin carries the API's CORS headers, in place
/// of any the function set.
pub fn decorate(cors: &Cors, origin: Option<&str>, h: &mut HeaderMap) {
    let Some(allowed) = origin.and_then(|o| allow_origin(cors, o)) else {
        return;
    };
    for name in [
        "access-control-allow-origin",
        "access-control-expose-headers",
        "access-control-allow-credentials",
    ] {
        h.remove(name);
    }
    set(h, "access-control-allow-origin", &allowed);
    if !cors.expose_headers.is_empty() {
        set(
            h,
            "access-control-expose-headers",
            &cors.expose_headers.join(","),
        );
    }
    if cors.allow_credentials {
        set(h, "access-control-allow-credentials", "true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors {
            allow_origins: vec![
                "https://*.example.com".into(),
                "http://localhost:8080".into(),
            ],
            allow_methods: vec!["GET".into(), "PUT".into()],
            allow_headers: vec!["x-custom".into(), "content-type".into()],
            expose_headers: vec!["x-exposed".into()],
            max_age_s: Some(600),
            allow_credentials: false,
        }
    }

    fn request(origin: &str, method: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("origin", origin.parse().unwrap());
        h.insert("access-control-request-method", method.parse().unwrap());
        h
    }

    fn get<'a>(r: &'a Response<Body>, name: &str) -> Option<&'a str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn http_preflight_allows_configured_origins_and_methods() {
        let r = preflight(
            ApiKind::Http,
            &cors(),
            &request("https://app.example.com", "PUT"),
            &[],
        );
        assert_eq!(r.status(), 204);
        assert_eq!(
            get(&r, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&r, "access-control-allow-methods"), Some("GET,PUT"));
        assert_eq!(
            get(&r, "access-control-allow-headers"),
            Some("x-custom,content-type")
        );
        assert_eq!(get(&r, "access-control-max-age"), Some("600"));
        let denied = preflight(
            ApiKind::Http,
            &cors(),
            &request("https://evil.test", "PUT"),
            &[],
        );
        assert_eq!(denied.status(), 204);
        assert_eq!(get(&denied, "access-control-allow-origin"), None);
        let wrong_method = preflight(
            ApiKind::Http,
            &cors(),
            &request("http://localhost:8080", "DELETE"),
            &[],
        );
        assert_eq!(get(&wrong_method, "access-control-allow-origin"), None);
    }

    #[test]
    fn rest_preflight_is_the_mock_integration() {
        let c = Cors {
            allow_origins: vec!["https://a.test".into()],
            ..Cors::default()
        };
        let r = preflight(
            ApiKind::Rest,
            &c,
            &HeaderMap::new(),
            &["GET".into(), "POST".into()],
        );
        assert_eq!(r.status(), 200);
        assert_eq!(
            get(&r, "access-control-allow-origin"),
            Some("https://a.test")
        );
        assert_eq!(
            get(&r, "access-control-allow-methods"),
            Some("GET,OPTIONS,POST")
        );
    }

    #[test]
    fn actual_responses_get_the_apis_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "access-control-allow-origin",
            "https://other".parse().unwrap(),
        );
        decorate(&cors(), Some("http://localhost:8080"), &mut h);
        assert_eq!(h["access-control-allow-origin"], "http://localhost:8080");
        assert_eq!(h["access-control-expose-headers"], "x-exposed");
        let mut none = HeaderMap::new();
        decorate(&cors(), Some("https://evil.test"), &mut none);
        assert!(none.is_empty());
        let mut star = HeaderMap::new();
        let any = Cors {
            allow_origins: vec!["*".into()],
            ..Cors::default()
        };
        decorate(&any, Some("https://x.test"), &mut star);
        assert_eq!(star["access-control-allow-origin"], "*");
    }
}
