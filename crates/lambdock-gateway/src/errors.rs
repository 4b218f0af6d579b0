//! The Lambda API's error responses: `x-amzn-ErrorType`, `x-amzn-RequestId` and a JSON body
//! with the members AWS's model names (`Type` plus `Message` or `message`, `Reason` for
//! throttles), which every SDK reads.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// A Lambda API error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LambdaError {
    /// 404: unknown function, version or alias.
    #[error("Function not found: {arn}")]
    ResourceNotFound {
        /// The ARN as asked.
        arn: String,
    },
    /// 400: a bad parameter.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// 400: the body is not JSON.
    #[error("{0}")]
    InvalidRequestContent(String),
    /// 413: payload over the limit.
    #[error("{0}")]
    RequestTooLarge(String),
    /// 429: throttled.
    #[error("Rate Exceeded.")]
    TooManyRequests {
        /// Lambda's reason code.
        reason: &'static str,
    },
    /// 403: signature problems.
    #[error("{message}")]
    Auth {
        /// `InvalidSignatureException`, `UnrecognizedClientException`, ...
        code: &'static str,
        /// AWS's message.
        message: String,
    },
    /// 500: ours.
    #[error("{0}")]
    Service(String),
    /// 502: the function's sandbox could not be reached or started.
    #[error("{0}")]
    ResourceNotReady(String),
    /// 404 for paths we don't serve.
    #[error("{0}")]
    UnknownOperation(String),
}

impl LambdaError {
    /// `x-amzn-ErrorType`.
    pub fn code(&self) -> &'static str {
        match self {
            LambdaError::ResourceNotFound { .. } => "ResourceNotFoundException",
            LambdaError::InvalidParameterValue(_) => "InvalidParameterValueException",
            LambdaError::InvalidRequestContent(_) => "InvalidRequestContentException",
            LambdaError::RequestTooLarge(_) => "RequestTooLargeException",
            LambdaError::TooManyRequests { .. } => "TooManyRequestsException",
            LambdaError::Auth { code, .. } => code,
            LambdaError::Service(_) => "ServiceException",
            LambdaError::ResourceNotReady(_) => "ResourceNotReadyException",
            LambdaError::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            LambdaError::ResourceNotFound { .. } | LambdaError::UnknownOperation(_) => {
                StatusCode::NOT_FOUND
            }
            LambdaError::InvalidParameterValue(_) | LambdaError::InvalidRequestContent(_) => {
                StatusCode::BAD_REQUEST
            }
            LambdaError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LambdaError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            LambdaError::Auth { .. } => StatusCode::FORBIDDEN,
            LambdaError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
            LambdaError::ResourceNotReady(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The JSON body, with the member names of AWS's model for this error.
    pub fn body(&self) -> String {
        let message = self.to_string();
        let v = match self {
            LambdaError::ResourceNotFound { .. } | LambdaError::Service(_) => {
                serde_json::json!({"Type": "User", "Message": message})
            }
            LambdaError::TooManyRequests { reason } => {
                serde_json::json!({"Type": "User", "message": message, "Reason": reason})
            }
            LambdaError::Auth { .. } => serde_json::json!({"message": message}),
            _ => serde_json::json!({"Type": "User", "message": message}),
        };
        v.to_string()
    }

    /// The whole response.
    pub fn response(&self, request_id: &str) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(Bytes::from(self.body())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code()));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amzn-requestid", v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_model() {
        let e = LambdaError::ResourceNotFound {
            arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        };
        assert_eq!(e.status(), 404);
        assert_eq!(
            e.body(),
            r#"{"Message":"Function not found: arn:aws:lambda:us-east-1:123456789012:function:f","Type":"User"}"#
        );
        let t = LambdaError::TooManyRequests {
            reason: "ReservedFunctionConcurrentInvocationLimitExceeded",
        };
        assert_eq!(t.status(), 429);
        let v: serde_json::Value = serde_json::from_str(&t.body()).unwrap();
        assert_eq!(
            v["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        assert_eq!(v["message"], "Rate Exceeded.");
        let r = t.response("rid");
        assert_eq!(r.headers()["x-amzn-errortype"], "TooManyRequestsException");
        assert_eq!(r.headers()["x-amzn-requestid"], "rid");
    }
}
