//! The invoke interface: AWS's emulator's `POST /2015-03-31/functions/{name}/invocations`, with
//! Lambda's answers instead of the emulator's (error bodies with `X-Amz-Function-Error`,
//! `x-amzn-RequestId`, log tails, streaming), plus Lambdock's own headers for the agent.
//!
//! Request headers: `X-Amzn-Trace-Id`, `X-Amz-Client-Context` (base64), `X-Amz-Log-Type: Tail`,
//! `X-Amz-Tenant-Id`, and ours: `X-Lambdock-Content-Type` (the event's content type for the
//! runtime, `application/json` by default as in Lambda), `X-Lambdock-Request-Id`,
//! `X-Lambdock-Deadline-Ms` (absolute, epoch ms), `X-Lambdock-Invoked-Function-Arn`,
//! `X-Lambdock-Cognito-Identity`.
//!
//! Response headers: `x-amzn-RequestId`, `X-Amz-Executed-Version`, `X-Amz-Function-Error:
//! Unhandled` on failure, `X-Amz-Log-Result` when the tail was asked for, and ours:
//! `X-Lambdock-Error-Type` (the error type, for metrics) and `X-Lambdock-Init-Duration-Ms` on a
//! cold start. `GET /health` answers the agent's readiness probe.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{Body, channel_body, full, header_str, json, not_found};
use crate::sandbox::{InvokeRejected, InvokeReply, InvokeRequest, ReplyBody, Sandbox};

/// Lambda's limit for a synchronous request payload.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

/// Answers one request on the invoke interface.
pub async fn handle(sandbox: Arc<Sandbox>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::POST, ["2015-03-31", "functions", _, "invocations"]) => {
            invoke(&sandbox, req).await
        }
        (&Method::GET, ["health"]) => json(
            StatusCode::OK,
            serde_json::json!({"status": "ok", "warm": sandbox.is_warm()}).to_string(),
        ),
        _ => not_found(),
    }
}

fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let mut resp = json(
        status,
        serde_json::json!({"Type": "User", "message": message}).to_string(),
    );
    if let Ok(v) = HeaderValue::from_str(error_type) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

async fn invoke(sandbox: &Arc<Sandbox>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let client_context = match header_str(h, "x-amz-client-context") {
        None => None,
        Some(encoded) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(_) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    "X-Amz-Client-Context must be base64-encoded",
                );
            }
        },
    };
    let deadline = match header_str(h, "x-lambdock-deadline-ms") {
        None => None,
        Some(ms) => match ms.parse::<u64>() {
            Ok(ms) => Some(UNIX_EPOCH + Duration::from_millis(ms)),
            Err(_) => {
                return lambda_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    "X-Lambdock-Deadline-Ms must be a Unix time in milliseconds",
                );
            }
        },
    };
    let payload = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return lambda_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                &format!(
                    "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
                ),
            );
        }
    };
    let request = InvokeRequest {
        request_id: header_str(h, "x-lambdock-request-id")
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        payload,
        // Lambda hands every event to the runtime as `application/json`, whatever the caller's
        // Content-Type (AWS's emulator forwards it, so `curl -d` turns Python events into bytes).
        content_type: header_str(h, "x-lambdock-content-type").map(str::to_string),
        trace_id: header_str(h, "x-amzn-trace-id").map(str::to_string),
        client_context,
        cognito_identity: header_str(h, "x-lambdock-cognito-identity").map(str::to_string),
        tenant_id: header_str(h, "x-amz-tenant-id").map(str::to_string),
        invoked_function_arn: header_str(h, "x-lambdock-invoked-function-arn").map(str::to_string),
        deadline,
        want_tail: header_str(h, "x-amz-log-type").is_some_and(|t| t.eq_ignore_ascii_case("tail")),
    };
    match sandbox.invoke(request).await {
        Ok(reply) => reply_response(reply, &sandbox.config().function.version),
        Err(e @ InvokeRejected::Busy { .. }) => {
            let mut resp = json(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User", "message": e.to_string()})
                    .to_string(),
            );
            resp.headers_mut().insert(
                "x-amzn-errortype",
                HeaderValue::from_static("TooManyRequestsException"),
            );
            resp
        }
        Err(e @ InvokeRejected::ShuttingDown) => lambda_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            &e.to_string(),
        ),
    }
}

fn reply_response(reply: InvokeReply, version: &str) -> Response<Body> {
    let streamed = matches!(reply.body, ReplyBody::Stream(_));
    let body = match reply.body {
        ReplyBody::Full(bytes) => full(bytes),
        ReplyBody::Stream(rx) => channel_body(rx),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    if streamed {
        // HTTP/1.1 only carries trailers that were announced (and that the caller accepts with
        // `TE: trailers`).
        h.insert(
            header::TRAILER,
            HeaderValue::from_static(
                "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
            ),
        );
    }
    let content_type = reply.content_type.as_deref().unwrap_or("application/json");
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    if let Ok(v) = HeaderValue::from_str(&reply.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(version) {
        h.insert("x-amz-executed-version", v);
    }
    if let Some(error_type) = &reply.function_error {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
        if let Ok(v) = HeaderValue::from_str(error_type) {
            h.insert("x-lambdock-error-type", v);
        }
    }
    if let Some(tail) = &reply.log_tail
        && let Ok(v) =
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(tail))
    {
        h.insert("x-amz-log-result", v);
    }
    if let Some(init) = reply.init_duration
        && let Ok(v) = HeaderValue::from_str(&format!("{:.3}", init.as_secs_f64() * 1000.0))
    {
        h.insert("x-lambdock-init-duration-ms", v);
    }
    resp
}
