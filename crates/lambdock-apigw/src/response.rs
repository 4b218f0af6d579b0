//! From what the function returned to the HTTP response, as API Gateway maps it (payload 1.0's
//! strict proxy shape, 2.0's inference for plain results), and API Gateway's own error answers,
//! whose shapes differ between REST and HTTP APIs.

use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use lambdock_template::manifest::ApiKind;
use serde_json::{Map, Value};

use crate::event::{matches_media, media_type};

/// A response body.
pub type Body = Full<Bytes>;

/// What API Gateway itself answers instead of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No route for the method and path.
    NoRoute,
    /// Missing or invalid token.
    Unauthorized,
    /// REST: a token past its `exp`.
    Expired,
    /// Missing scope or API key.
    Forbidden,
    /// The function failed or its result is malformed.
    Internal,
    /// The integration timeout passed.
    Timeout,
    /// The request is over the payload limit.
    TooLarge,
    /// The function's concurrency is exhausted.
    Throttled,
}

impl Failure {
    /// Status, body and REST's `x-amzn-ErrorType` for this failure on an API of `kind`.
    fn shape(self, kind: ApiKind) -> (StatusCode, &'static str, &'static str) {
        use ApiKind::{Http, Rest};
        match (self, kind) {
            (Failure::NoRoute, Rest) => (
                StatusCode::FORBIDDEN,
                r#"{"message":"Missing Authentication Token"}"#,
                "MissingAuthenticationTokenException",
            ),
            (Failure::NoRoute, Http) => (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#, ""),
            (Failure::Unauthorized, _) => (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Unauthorized"}"#,
                "UnauthorizedException",
            ),
            (Failure::Expired, Rest) => (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"The incoming token has expired"}"#,
                "UnauthorizedException",
            ),
            (Failure::Expired, Http) => (
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Unauthorized"}"#,
                "",
            ),
            (Failure::Forbidden, _) => (
                StatusCode::FORBIDDEN,
                r#"{"message":"Forbidden"}"#,
                "ForbiddenException",
            ),
            (Failure::Internal, Rest) => (
                StatusCode::BAD_GATEWAY,
                r#"{"message": "Internal server error"}"#,
                "",
            ),
            (Failure::Internal, Http) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"message":"Internal Server Error"}"#,
                "",
            ),
            (Failure::Timeout, Rest) => (
                StatusCode::GATEWAY_TIMEOUT,
                r#"{"message": "Endpoint request timed out"}"#,
                "",
            ),
            (Failure::Timeout, Http) => (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"message":"Service Unavailable"}"#,
                "",
            ),
            (Failure::TooLarge, _) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"message":"Request Entity Too Large"}"#,
                "",
            ),
            (Failure::Throttled, _) => (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"message":"Too Many Requests"}"#,
                "",
            ),
        }
    }

    /// The response.
    pub fn response(self, kind: ApiKind) -> Response<Body> {
        let (status, body, error_type) = self.shape(kind);
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if kind == ApiKind::Rest && !error_type.is_empty() {
            resp.headers_mut()
                .insert("x-amzn-errortype", HeaderValue::from_static(error_type));
        }
        resp
    }
}

/// A function result API Gateway refuses ("Malformed Lambda proxy response").
#[derive(Debug, thiserror::Error)]
#[error("malformed Lambda proxy response: {0}")]
pub struct Malformed(pub String);

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn status(v: Option<&Value>) -> Result<StatusCode, Malformed> {
    v.and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(|| Malformed("statusCode is not a valid HTTP status".into()))
}

/// Headers that describe the connection, not the content: the gateway sets its own.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

fn append(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), Malformed> {
    if hop_by_hop(name) {
        return Ok(());
    }
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Malformed(format!("invalid header name {name:?}")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| Malformed(format!("invalid value of header {name}")))?;
    headers.append(name, value);
    Ok(())
}

fn body_bytes(obj: &Map<String, Value>, decode: bool) -> Result<Bytes, Malformed> {
    let text = match obj.get("body") {
        None | Some(Value::Null) => return Ok(Bytes::new()),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Malformed("body is not a string".into())),
    };
    if decode {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|_| Malformed("body is not valid base64".into()))
    } else {
        Ok(Bytes::from(text.clone()))
    }
}

fn is_base64(obj: &Map<String, Value>) -> Result<bool, Malformed> {
    match obj.get("isBase64Encoded") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Malformed("isBase64Encoded is not a boolean".into())),
    }
}

fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// Payload 1.0: `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`, nothing
/// else accepted. A base64 body is decoded on HTTP APIs always, and on REST APIs when the
/// caller's `Accept` or the response's `Content-Type` is one of the binary media types.
pub fn map_v1(
    payload: &[u8],
    kind: ApiKind,
    accept: Option<&str>,
    binary_media_types: &[String],
) -> Result<Response<Body>, Malformed> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| Malformed("not JSON".into()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| Malformed("not a JSON object".into()))?;
    let status = status(obj.get("statusCode"))?;
    let mut headers = HeaderMap::new();
    let multi = match obj.get("multiValueHeaders") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(Malformed("multiValueHeaders is not an object".into())),
    };
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(single)) => {
            for (name, v) in single {
                // A name in both maps keeps only its multiValueHeaders values.
                if multi.keys().any(|m| m.eq_ignore_ascii_case(name)) {
                    continue;
                }
                let v =
                    scalar(v).ok_or_else(|| Malformed(format!("header {name} is not a string")))?;
                append(&mut headers, name, &v)?;
            }
        }
        Some(_) => return Err(Malformed("headers is not an object".into())),
    }
    for (name, values) in &multi {
        let values = values
            .as_array()
            .ok_or_else(|| Malformed(format!("multiValueHeaders {name} is not a list")))?;
        for v in values {
            let v = scalar(v).ok_or_else(|| Malformed(format!("header {name} is not a string")))?;
            append(&mut headers, name, &v)?;
        }
    }
    let mut decode = is_base64(obj)?;
    if decode && kind == ApiKind::Rest {
        let content_type = media_type(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()));
        let accepts = accept
            .map(|a| {
                a.split(',')
                    .filter_map(|m| media_type(Some(m)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        decode = accepts
            .iter()
            .chain(content_type.iter())
            .any(|m| matches_media(m, binary_media_types));
    }
    Ok(build(status, headers, body_bytes(obj, decode)?))
}

/// Payload 2.0: a result with `statusCode` is taken as a response (`headers`, `cookies` as
/// `Set-Cookie` headers, `body`, `isBase64Encoded`); any other valid JSON is the body of a 200
/// `application/json` response (a JSON string: its text).
pub fn map_v2(payload: &[u8]) -> Result<Response<Body>, Malformed> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| Malformed("not JSON".into()))?;
    let obj = match &value {
        Value::Object(obj) if obj.contains_key("statusCode") => obj,
        _ => {
            let body = match &value {
                Value::String(s) => Bytes::from(s.clone()),
                _ => Bytes::copy_from_slice(payload),
            };
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(build(StatusCode::OK, headers, body));
        }
    };
    let status = status(obj.get("statusCode"))?;
    let mut headers = HeaderMap::new();
    match obj.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                let v =
                    scalar(v).ok_or_else(|| Malformed(format!("header {name} is not a string")))?;
                append(&mut headers, name, &v)?;
            }
        }
        Some(_) => return Err(Malformed("headers is not an object".into())),
    }
    match obj.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for c in cookies {
                let c = c
                    .as_str()
                    .ok_or_else(|| Malformed("a cookie is not a string".into()))?;
                append(&mut headers, "set-cookie", c)?;
            }
        }
        Some(_) => return Err(Malformed("cookies is not a list".into())),
    }
    Ok(build(status, headers, body_bytes(obj, is_base64(obj)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn parts(resp: Response<Body>) -> (u16, HeaderMap, Bytes) {
        let (p, b) = resp.into_parts();
        (
            p.status.as_u16(),
            p.headers,
            b.collect().await.unwrap().to_bytes(),
        )
    }

    fn all(h: &HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn v1_merges_headers_and_decodes_binary() {
        let out = br#"{"statusCode":201,"headers":{"X-A":"1","x-b":"single","n":5},
            "multiValueHeaders":{"X-B":["m1","m2"],"Set-Cookie":["a=1","b=2"]},
            "body":"aGk=","isBase64Encoded":true}"#;
        let (status, h, body) = parts(map_v1(out, ApiKind::Http, None, &[]).unwrap()).await;
        assert_eq!(status, 201);
        assert_eq!(all(&h, "x-a"), ["1"]);
        assert_eq!(all(&h, "x-b"), ["m1", "m2"]);
        assert_eq!(all(&h, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(all(&h, "n"), ["5"]);
        assert_eq!(body, "hi");
    }

    #[tokio::test]
    async fn rest_decodes_base64_only_for_binary_media_types() {
        let out = br#"{"statusCode":200,"headers":{"Content-Type":"image/png"},"body":"aGk=","isBase64Encoded":true}"#;
        let types = vec!["image/png".to_string()];
        let (_, _, body) = parts(map_v1(out, ApiKind::Rest, None, &types).unwrap()).await;
        assert_eq!(body, "hi");
        let (_, _, body) = parts(map_v1(out, ApiKind::Rest, None, &[]).unwrap()).await;
        assert_eq!(body, "aGk=");
        let (_, _, body) =
            parts(map_v1(out, ApiKind::Rest, Some("text/html, */*"), &["*/*".into()]).unwrap())
                .await;
        assert_eq!(body, "hi");
    }

    #[test]
    fn v1_refuses_malformed_results() {
        for bad in [
            &b"not json"[..],
            br#""a string""#,
            br#"{"body":"x"}"#,
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
            br#"{"statusCode":200,"headers":["x"]}"#,
            br#"{"statusCode":200,"isBase64Encoded":"yes"}"#,
            br#"{"statusCode":99999}"#,
        ] {
            assert!(
                map_v1(bad, ApiKind::Rest, None, &[]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn v2_infers_plain_results() {
        let (s, h, b) = parts(map_v2(br#""Hello from Lambda!""#).unwrap()).await;
        assert_eq!((s, b.as_ref()), (200, &b"Hello from Lambda!"[..]));
        assert_eq!(all(&h, "content-type"), ["application/json"]);
        let (_, _, b) = parts(map_v2(br#"{"message":"hi"}"#).unwrap()).await;
        assert_eq!(b, r#"{"message":"hi"}"#);
        let (_, _, b) = parts(map_v2(b"[1,2]").unwrap()).await;
        assert_eq!(b, "[1,2]");
        assert!(map_v2(b"{oops").is_err());
    }

    #[tokio::test]
    async fn v2_maps_cookies_headers_and_binary() {
        let out = br#"{"statusCode":404,"headers":{"x-a":"1,2"},"cookies":["a=1; Path=/","b=2"],"body":"AAE=","isBase64Encoded":true}"#;
        let (s, h, b) = parts(map_v2(out).unwrap()).await;
        assert_eq!(s, 404);
        assert_eq!(all(&h, "x-a"), ["1,2"]);
        assert_eq!(all(&h, "set-cookie"), ["a=1; Path=/", "b=2"]);
        assert_eq!(b.as_ref(), &[0u8, 1]);
        assert!(map_v2(br#"{"statusCode":200,"cookies":"a=1"}"#).is_err());
    }

    #[tokio::test]
    async fn failures_have_each_kinds_shape() {
        let (s, h, b) = parts(Failure::NoRoute.response(ApiKind::Rest)).await;
        assert_eq!(
            (s, b.as_ref()),
            (403, &br#"{"message":"Missing Authentication Token"}"#[..])
        );
        assert_eq!(
            all(&h, "x-amzn-errortype"),
            ["MissingAuthenticationTokenException"]
        );
        let (s, _, b) = parts(Failure::NoRoute.response(ApiKind::Http)).await;
        assert_eq!((s, b.as_ref()), (404, &br#"{"message":"Not Found"}"#[..]));
        let (s, _, b) = parts(Failure::Internal.response(ApiKind::Rest)).await;
        assert_eq!(
            (s, b.as_ref()),
            (502, &br#"{"message": "Internal server error"}"#[..])
        );
        let (s, _, _) = parts(Failure::Timeout.response(ApiKind::Rest)).await;
        assert_eq!(s, 504);
    }
}
