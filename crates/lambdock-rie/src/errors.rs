//! The JSON error bodies of the Runtime API and of the invoke interface.
//!
//! Field order and wording follow what AWS sends, because callers compare bodies as text more
//! often than they should.

use bytes::Bytes;
use serde::Serialize;

/// `{"errorMessage": ..., "errorType": ...}`, Lambda's error shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(rename = "errorMessage")]
    pub message: String,
    /// `Category.Reason` error type.
    #[serde(rename = "errorType")]
    pub error_type: String,
}

impl ErrorBody {
    /// A body with this type and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            message: message.into(),
            error_type: error_type.into(),
        }
    }

    /// The serialized body.
    pub fn to_bytes(&self) -> Bytes {
        // Serializing two strings cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The platform errors a caller can get instead of the function's own answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformError {
    /// The function ran past its timeout.
    Timeout {
        /// Request id.
        request_id: String,
        /// The configured timeout in seconds.
        seconds: f64,
    },
    /// The runtime process ended during the invocation or its init.
    RuntimeExit {
        /// Request id.
        request_id: String,
        /// Go-style exit description (`exit status 3`, `signal: killed`), `None` for exit 0.
        status: Option<String>,
    },
    /// The buffered response was over the limit.
    ResponseTooLarge {
        /// Bytes the runtime tried to send.
        size: u64,
    },
    /// The runtime closed its response upload early.
    TruncatedResponse {
        /// Request id.
        request_id: String,
    },
    /// The runtime sent an unknown response mode.
    InvalidResponseMode,
    /// Init did not finish within its bound.
    InitTimeout {
        /// Request id.
        request_id: String,
        /// The bound in seconds.
        seconds: f64,
    },
}

/// `Exceeded maximum allowed payload size (6291556 bytes).`: the Runtime API's limit.
pub const MAX_RESPONSE_BYTES: u64 = 6 * 1024 * 1024 + 100;

impl PlatformError {
    /// The `errorType` of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            PlatformError::Timeout { .. } => "Sandbox.Timedout",
            PlatformError::RuntimeExit { .. } => "Runtime.ExitError",
            PlatformError::ResponseTooLarge { .. } => "Function.ResponseSizeTooLarge",
            PlatformError::TruncatedResponse { .. } => "Runtime.TruncatedResponse",
            PlatformError::InvalidResponseMode => "Runtime.InvalidResponseModeHeader",
            PlatformError::InitTimeout { .. } => "Sandbox.Timedout",
        }
    }

    /// The body the caller receives.
    pub fn body(&self) -> Bytes {
        let message = match self {
            PlatformError::Timeout {
                request_id,
                seconds,
            } => {
                format!("RequestId: {request_id} Error: Task timed out after {seconds:.2} seconds")
            }
            PlatformError::RuntimeExit {
                request_id,
                status: Some(status),
            } => {
                format!("RequestId: {request_id} Error: Runtime exited with error: {status}")
            }
            PlatformError::RuntimeExit {
                request_id,
                status: None,
            } => {
                format!("RequestId: {request_id} Error: Runtime exited without providing a reason")
            }
            PlatformError::ResponseTooLarge { size } => format!(
                "Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
            ),
            PlatformError::TruncatedResponse { request_id } => {
                format!(
                    "RequestId: {request_id} Error: Runtime closed the response before it was complete"
                )
            }
            PlatformError::InvalidResponseMode => "Invalid response mode header".to_string(),
            PlatformError::InitTimeout {
                request_id,
                seconds,
            } => {
                format!("RequestId: {request_id} Error: Init timed out after {seconds:.2} seconds")
            }
        };
        if let PlatformError::Timeout { .. } | PlatformError::InitTimeout { .. } = self {
            // Lambda puts the type first for timeouts.
            let quoted = |v: &str| serde_json::Value::from(v).to_string();
            return Bytes::from(format!(
                r#"{{"errorType":{},"errorMessage":{}}}"#,
                quoted(self.error_type()),
                quoted(&message)
            ));
        }
        ErrorBody::new(self.error_type(), message).to_bytes()
    }
}

/// Go's `ProcessState.String()` for an exit status, as Lambda prints it.
pub fn describe_exit(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return (code != 0).then(|| format!("exit status {code}"));
    }
    let signal = status.signal().unwrap_or(0);
    let name = match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        11 => "segmentation fault",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        other => return Some(format!("signal: signal {other}")),
    };
    let core = if status.core_dumped() {
        " (core dumped)"
    } else {
        ""
    };
    Some(format!("signal: {name}{core}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn timeout_body_matches_lambda() {
        let body = PlatformError::Timeout {
            request_id: "abc".into(),
            seconds: 3.0,
        }
        .body();
        assert_eq!(
            body,
            r#"{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: abc Error: Task timed out after 3.00 seconds"}"#
        );
    }

    #[test]
    fn exit_bodies_match_lambda() {
        let body = PlatformError::RuntimeExit {
            request_id: "r".into(),
            status: None,
        }
        .body();
        assert_eq!(
            body,
            r#"{"errorMessage":"RequestId: r Error: Runtime exited without providing a reason","errorType":"Runtime.ExitError"}"#
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)).as_deref(),
            Some("exit status 3")
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)).as_deref(),
            Some("signal: killed")
        );
        assert_eq!(describe_exit(ExitStatus::from_raw(0)), None);
    }

    #[test]
    fn too_large_body_names_both_sizes() {
        let body = PlatformError::ResponseTooLarge { size: 9706999 }.body();
        assert_eq!(
            body,
            r#"{"errorMessage":"Response payload size (9706999 bytes) exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}"#
        );
    }

    use std::process::ExitStatus;
}
