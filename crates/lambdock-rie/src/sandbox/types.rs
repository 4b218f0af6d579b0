//! What flows between the invoke interface, the sandbox and the Runtime API.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

/// One invocation as the caller asked for it.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    /// Request id; generated when the caller gave none.
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// Content type of the event, passed to the runtime.
    pub content_type: Option<String>,
    /// X-Ray trace header value.
    pub trace_id: Option<String>,
    /// Client context, already base64-decoded.
    pub client_context: Option<String>,
    /// Cognito identity JSON.
    pub cognito_identity: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// The ARN as invoked (with qualifier); the function's own ARN when `None`.
    pub invoked_function_arn: Option<String>,
    /// Absolute deadline set by the caller; `now + timeout` when `None`.
    pub deadline: Option<SystemTime>,
    /// Whether the caller wants the log tail (`X-Amz-Log-Type: Tail`).
    pub want_tail: bool,
}

/// The event as the runtime receives it from `/next`.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Request id.
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// Absolute deadline in Unix epoch milliseconds.
    pub deadline_ms: u128,
    /// ARN as invoked.
    pub invoked_function_arn: String,
    /// X-Ray header.
    pub trace_id: Option<String>,
    /// Decoded client context.
    pub client_context: Option<String>,
    /// Cognito identity.
    pub cognito_identity: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// Content type of the event.
    pub content_type: Option<String>,
}

/// A streamed body frame; an `Err` ends the stream abnormally.
pub type StreamFrame = Result<Frame<Bytes>, std::io::Error>;

/// The body of what the caller gets.
#[derive(Debug)]
pub enum ReplyBody {
    /// A buffered body.
    Full(Bytes),
    /// A streamed body; error trailers arrive as a trailers frame.
    Stream(mpsc::Receiver<StreamFrame>),
}

/// What the caller gets.
#[derive(Debug)]
pub struct InvokeReply {
    /// Request id.
    pub request_id: String,
    /// The body.
    pub body: ReplyBody,
    /// Content type of the body.
    pub content_type: Option<String>,
    /// The error type when the function failed (`X-Amz-Function-Error: Unhandled`).
    pub function_error: Option<String>,
    /// The invocation's log tail when asked for.
    pub log_tail: Option<Vec<u8>>,
    /// Init duration when this invocation paid a cold start.
    pub init_duration: Option<Duration>,
}

/// An invocation the sandbox cannot take.
#[derive(Debug, thiserror::Error)]
pub enum InvokeRejected {
    /// Another invocation is running: one at a time per sandbox, as in Lambda.
    #[error(
        "this sandbox is already running invocation {running}; Lambda runs one invocation at a time per execution environment"
    )]
    Busy {
        /// Request id of the running invocation.
        running: String,
    },
    /// The sandbox is shutting down.
    #[error("the sandbox is shutting down")]
    ShuttingDown,
}
