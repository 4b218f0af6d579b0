//! The Runtime API (2018-06-01) and the Extensions API (2020-01-01) the runtime talks to, plus
//! the stubs AWS's emulator serves for the Logs and Telemetry APIs when telemetry is off: they
//! answer 202 with `Logs.NotSupported` / `Telemetry.NotSupported`, so extensions that subscribe
//! keep running instead of crashing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{Body, full, header_str, json, not_found};
use crate::errors::{ErrorBody, MAX_RESPONSE_BYTES, PlatformError};
use crate::sandbox::{ApiError, Delivery, NextEvent, NextExtensionEvent, Sandbox, Signal};

const ACCEPTED: &str = r#"{"status":"OK"}"#;
/// Lambda's documented limit for a streamed response.
const MAX_STREAMED_BYTES: u64 = 200 * 1024 * 1024;
const ERROR_CAUSE_CONTENT_TYPE: &str = "application/vnd.aws.lambda.error.cause+json";

/// Answers one Runtime API request.
pub async fn handle(sandbox: Arc<Sandbox>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => next(&sandbox).await,
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => {
            let id = id.to_string();
            response(&sandbox, &id, req).await
        }
        (Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => {
            let id = id.to_string();
            error(&sandbox, &id, req).await
        }
        (Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            init_error(&sandbox, req).await
        }
        (Method::GET, ["2018-06-01", "ping"]) => Response::new(full("pong")),
        (Method::POST, ["2020-01-01", "extension", "register"]) => register(&sandbox, req).await,
        (Method::GET, ["2020-01-01", "extension", "event", "next"]) => {
            extension_next(&sandbox, req.headers()).await
        }
        (Method::POST, ["2020-01-01", "extension", kind @ ("init" | "exit"), "error"]) => {
            let init = *kind == "init";
            extension_error(&sandbox, req.headers(), init)
        }
        (Method::PUT, ["2020-08-15", "logs"]) => {
            stub("Logs.NotSupported", "Logs API is not supported")
        }
        (Method::PUT, ["2022-07-01", "telemetry"]) => {
            stub("Telemetry.NotSupported", "Telemetry API is not supported")
        }
        _ => not_found(),
    }
}

fn stub(error_type: &str, message: &str) -> Response<Body> {
    json(
        StatusCode::ACCEPTED,
        ErrorBody::new(error_type, message).to_bytes(),
    )
}

fn api_error(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
    json(
        status,
        ErrorBody::new(e.error_type(), e.to_string()).to_bytes(),
    )
}

async fn next(sandbox: &Sandbox) -> Response<Body> {
    let delivery = match sandbox.runtime_next() {
        Ok(NextEvent::Now(d)) => *d,
        Ok(NextEvent::Wait(rx)) => match rx.await {
            Ok(d) => d,
            // The sandbox was reset while the runtime waited; its process is being killed.
            Err(_) => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::new("InternalServerError", "Sandbox reset").to_bytes(),
                );
            }
        },
        Err(e) => return api_error(&e),
    };
    event_response(delivery)
}

fn event_response(d: Delivery) -> Response<Body> {
    let mut resp = Response::new(full(d.payload));
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(v) = value
            .filter(|v| !v.is_empty())
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            h.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", Some(&d.request_id));
    set(
        "lambda-runtime-deadline-ms",
        Some(&d.deadline_ms.to_string()),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        Some(&d.invoked_function_arn),
    );
    set("lambda-runtime-trace-id", d.trace_id.as_deref());
    set("lambda-runtime-client-context", d.client_context.as_deref());
    set(
        "lambda-runtime-cognito-identity",
        d.cognito_identity.as_deref(),
    );
    set("lambda-runtime-aws-tenant-id", d.tenant_id.as_deref());
    set(
        "content-type",
        Some(d.content_type.as_deref().unwrap_or("application/json")),
    );
    resp
}

/// Reads a whole body up to `limit`; over it, drains the rest to report the real size.
async fn read_limited(body: Incoming, limit: u64) -> Result<Bytes, ReadError> {
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ReadError::Truncated)?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if total > limit {
        return Err(ReadError::TooLarge(total));
    }
    Ok(buf.freeze())
}

enum ReadError {
    Truncated,
    TooLarge(u64),
}

fn too_large_response() -> Response<Body> {
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorBody::new(
            "RequestEntityTooLarge",
            format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        )
        .to_bytes(),
    )
}

fn truncated_response() -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        ErrorBody::new("TruncatedHTTPRequest", "HTTP request detected as truncated").to_bytes(),
    )
}

async fn response(sandbox: &Sandbox, id: &str, req: Request<Incoming>) -> Response<Body> {
    let driver = match sandbox.begin_answer(id, "InvocationResponse") {
        Ok(d) => d,
        Err(e) => return api_error(&e),
    };
    let content_type = header_str(req.headers(), "content-type").map(str::to_string);
    match header_str(req.headers(), "lambda-runtime-function-response-mode") {
        None => {}
        Some("streaming") => return stream_response(driver, content_type, req.into_body()).await,
        Some(_) => {
            let _ = driver.send(Signal::Failed(PlatformError::InvalidResponseMode));
            return json(
                StatusCode::BAD_REQUEST,
                ErrorBody::new(
                    "InvalidFunctionResponseMode",
                    "Invalid function response mode",
                )
                .to_bytes(),
            );
        }
    }
    match read_limited(req.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(body) => {
            let _ = driver.send(Signal::Response { body, content_type });
            json(StatusCode::ACCEPTED, ACCEPTED)
        }
        Err(ReadError::TooLarge(size)) => {
            let _ = driver.send(Signal::Failed(PlatformError::ResponseTooLarge { size }));
            too_large_response()
        }
        Err(ReadError::Truncated) => {
            let _ = driver.send(Signal::Failed(PlatformError::TruncatedResponse {
                request_id: id.to_string(),
            }));
            truncated_response()
        }
    }
}

/// Pumps a streamed response to the caller as it comes, trailers included.
async fn stream_response(
    driver: mpsc::UnboundedSender<Signal>,
    content_type: Option<String>,
    mut body: Incoming,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(16);
    let _ = driver.send(Signal::Stream {
        content_type,
        frames: rx,
    });
    let mut total: u64 = 0;
    let mut caller_gone = false;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                if !caller_gone {
                    let _ = tx
                        .send(Err(std::io::Error::other(format!(
                            "runtime aborted the stream: {e}"
                        ))))
                        .await;
                }
                return truncated_response();
            }
        };
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            if total > MAX_STREAMED_BYTES {
                let err = PlatformError::ResponseTooLarge { size: total };
                let _ = tx
                    .send(Ok(error_trailers(err.error_type(), &err.body())))
                    .await;
                return too_large_response();
            }
        }
        if !caller_gone && tx.send(Ok(frame)).await.is_err() {
            // Keep reading so the runtime can finish; nobody listens any more.
            caller_gone = true;
        }
    }
    json(StatusCode::ACCEPTED, ACCEPTED)
}

/// The trailers Lambda uses to fail a stream that already started.
fn error_trailers(error_type: &str, body: &[u8]) -> Frame<Bytes> {
    use base64::Engine;
    let mut trailers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(error_type) {
        trailers.insert("lambda-runtime-function-error-type", v);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        trailers.insert("lambda-runtime-function-error-body", v);
    }
    Frame::trailers(trailers)
}

/// The body of `/error` as the caller sees it: the error-cause variant loses `errorCause`.
fn caller_error_body(content_type: Option<&str>, body: Bytes, error_type: &str) -> Bytes {
    if body.is_empty() {
        return ErrorBody::new(error_type, "").to_bytes();
    }
    if content_type.is_some_and(|ct| ct.starts_with(ERROR_CAUSE_CONTENT_TYPE))
        && let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&body)
    {
        map.retain(|k, _| matches!(k.as_str(), "errorMessage" | "errorType" | "stackTrace"));
        return Bytes::from(serde_json::Value::Object(map).to_string());
    }
    body
}

/// The error type of a failure: the header, else the body's `errorType`, else Lambda's default.
fn error_type_of(headers: &HeaderMap, body: &[u8]) -> String {
    if let Some(t) = header_str(headers, "lambda-runtime-function-error-type") {
        return t.to_string();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorType")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Runtime.Unknown".to_string())
}

async fn error(sandbox: &Sandbox, id: &str, req: Request<Incoming>) -> Response<Body> {
    let driver = match sandbox.begin_answer(id, "InvocationErrorResponse") {
        Ok(d) => d,
        Err(e) => return api_error(&e),
    };
    let (parts, body) = req.into_parts();
    match read_limited(body, MAX_RESPONSE_BYTES).await {
        Ok(body) => {
            let error_type = error_type_of(&parts.headers, &body);
            let body = caller_error_body(
                header_str(&parts.headers, "content-type"),
                body,
                &error_type,
            );
            let _ = driver.send(Signal::Error { body, error_type });
            json(StatusCode::ACCEPTED, ACCEPTED)
        }
        Err(ReadError::TooLarge(size)) => {
            let _ = driver.send(Signal::Failed(PlatformError::ResponseTooLarge { size }));
            too_large_response()
        }
        Err(ReadError::Truncated) => {
            let _ = driver.send(Signal::Failed(PlatformError::TruncatedResponse {
                request_id: id.to_string(),
            }));
            truncated_response()
        }
    }
}

async fn init_error(sandbox: &Sandbox, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match read_limited(body, MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(ReadError::TooLarge(_)) => return too_large_response(),
        Err(ReadError::Truncated) => return truncated_response(),
    };
    let error_type = error_type_of(&parts.headers, &body);
    let body = caller_error_body(
        header_str(&parts.headers, "content-type"),
        body,
        &error_type,
    );
    match sandbox.init_error(body, error_type) {
        Ok(()) => json(StatusCode::ACCEPTED, ACCEPTED),
        Err(e) => api_error(&e),
    }
}

#[derive(serde::Deserialize)]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
}

async fn register(sandbox: &Sandbox, req: Request<Incoming>) -> Response<Body> {
    let name = header_str(req.headers(), "lambda-extension-name")
        .unwrap_or_default()
        .to_string();
    let body = match read_limited(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return api_error(&ApiError::InvalidEventType("unreadable body".into())),
    };
    let events = match serde_json::from_slice::<RegisterBody>(&body) {
        Ok(b) => b.events,
        Err(e) => return api_error(&ApiError::InvalidEventType(e.to_string())),
    };
    match sandbox.register_extension(&name, &events) {
        Ok(reg) => {
            let mut resp = json(StatusCode::OK, serde_json::to_vec(&reg).unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&reg.id) {
                resp.headers_mut().insert("lambda-extension-identifier", v);
            }
            resp
        }
        Err(e) => api_error(&e),
    }
}

async fn extension_next(sandbox: &Sandbox, headers: &HeaderMap) -> Response<Body> {
    let id = header_str(headers, "lambda-extension-identifier");
    let event = match sandbox.extension_next(id) {
        Ok(NextExtensionEvent::Now(e)) => e,
        Ok(NextExtensionEvent::Wait(rx)) => match rx.await {
            Ok(e) => e,
            Err(_) => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::new("InternalServerError", "Sandbox reset").to_bytes(),
                );
            }
        },
        Err(e) => return api_error(&e),
    };
    let mut resp = json(
        StatusCode::OK,
        serde_json::to_vec(&event).unwrap_or_default(),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        resp.headers_mut()
            .insert("lambda-extension-event-identifier", v);
    }
    resp
}

fn extension_error(sandbox: &Sandbox, headers: &HeaderMap, init: bool) -> Response<Body> {
    let id = header_str(headers, "lambda-extension-identifier");
    let Some(error_type) = header_str(headers, "lambda-extension-function-error-type") else {
        return json(
            StatusCode::BAD_REQUEST,
            ErrorBody::new(
                "Extension.MissingHeader",
                "Missing Lambda-Extension-Function-Error-Type header",
            )
            .to_bytes(),
        );
    };
    match sandbox.extension_error(id, error_type.to_string(), init) {
        Ok(()) => json(StatusCode::ACCEPTED, ACCEPTED),
        Err(e) => api_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_cause_is_stripped() {
        let body = Bytes::from(
            r#"{"errorMessage":"m","errorType":"T","stackTrace":[],"errorCause":{"x":1}}"#,
        );
        let out = caller_error_body(Some(ERROR_CAUSE_CONTENT_TYPE), body.clone(), "T");
        assert_eq!(
            out,
            r#"{"errorMessage":"m","errorType":"T","stackTrace":[]}"#
        );
        assert_eq!(
            caller_error_body(Some("application/json"), body.clone(), "T"),
            body
        );
    }

    #[test]
    fn error_type_falls_back_to_body() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            error_type_of(&headers, br#"{"errorType":"ValueError"}"#),
            "ValueError"
        );
        assert_eq!(error_type_of(&headers, b"not json"), "Runtime.Unknown");
        headers.insert(
            "lambda-runtime-function-error-type",
            HeaderValue::from_static("Runtime.X"),
        );
        assert_eq!(
            error_type_of(&headers, br#"{"errorType":"ValueError"}"#),
            "Runtime.X"
        );
    }
}
