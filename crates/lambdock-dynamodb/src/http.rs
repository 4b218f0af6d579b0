//! The DynamoDB JSON protocol front: SigV4 with the platform's credentials, `X-Amz-Target`
//! routing, then the durable store.
//!
//! rustack ships its own hyper service, but it verifies signatures with rustack-auth and
//! answers failures with `AccessDeniedException`; DynamoDB answers them with the Coral error
//! shapes (`com.amazon.coral.service#UnrecognizedClientException`, …, HTTP 400). This front uses
//! the gateway's verifier (the same rules as the Lambda API) and those shapes, and keeps
//! rustack's response helpers for everything else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use lambdock_gateway::sigv4::{SigV4Error, Verifier};
use rustack_dynamodb_http::body::DynamoDBResponseBody;
use rustack_dynamodb_http::response::error_to_response;
use rustack_dynamodb_http::router::resolve_operation;
use rustack_dynamodb_model::error::DynamoDBError;

use crate::store::Store;

/// The largest request DynamoDB accepts (a BatchWriteItem of 25 items of 400 KB fits).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// What every request goes through.
pub struct Front {
    store: Arc<Store>,
    verifier: Option<Verifier<HashMap<String, String>>>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("store", &self.store)
            .field("verifier", &self.verifier)
            .finish()
    }
}

impl Front {
    /// A front for `store`; with `credentials` (access key id, secret) every request must be
    /// signed with them, without them signatures are not checked.
    #[must_use]
    pub fn new(store: Arc<Store>, credentials: Option<(String, String)>) -> Self {
        let verifier = credentials.map(|(key, secret)| {
            Verifier::new(HashMap::from([(key, secret)]), "dynamodb".to_string())
        });
        Front { store, verifier }
    }

    /// Handles one HTTP request.
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
    ) -> Result<http::Response<DynamoDBResponseBody>, Infallible>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = req.into_parts();
        let response = match self.respond(parts, body).await {
            Ok(r) => r,
            Err(Failure::Service(e)) => error_to_response(&e, &request_id),
            Err(Failure::Auth(e)) => {
                let message = match e {
                    SigV4Error::MissingAuthenticationToken => {
                        "Request is missing Authentication Token".to_string()
                    }
                    ref other => other.to_string(),
                };
                coral_error(e.code(), Some(&message))
            }
            Err(Failure::UnknownOperation) => coral_error("UnknownOperationException", None),
        };
        Ok(with_request_id(response, &request_id))
    }

    async fn respond<B>(
        &self,
        parts: http::request::Parts,
        body: B,
    ) -> Result<http::Response<DynamoDBResponseBody>, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if parts.method != http::Method::POST {
            return Err(Failure::Service(DynamoDBError::serialization_exception(
                "DynamoDB requires the POST method",
            )));
        }
        let body = Limited::new(body, MAX_REQUEST_BYTES)
            .collect()
            .await
            .map_err(|e| {
                Failure::Service(DynamoDBError::validation(format!(
                    "Request body could not be read: {e}"
                )))
            })?
            .to_bytes();
        if let Some(verifier) = &self.verifier {
            verifier
                .verify(&parts, &body, SystemTime::now())
                .map_err(Failure::Auth)?;
        }
        let op = resolve_operation(&parts.headers).map_err(|e| {
            // rustack calls an unknown target an unrecognized client; DynamoDB's front end
            // answers it like an authentication failure, with a Coral type.
            if e.code
                == rustack_dynamodb_model::error::DynamoDBErrorCode::UnrecognizedClientException
            {
                Failure::UnknownOperation
            } else {
                Failure::Service(e)
            }
        })?;
        crate::placeholders::check(&body).map_err(Failure::Service)?;
        self.store
            .execute(op, body)
            .await
            .map_err(|e| Failure::Service(crate::conform::to_aws(op, e)))
    }
}

enum Failure {
    Service(DynamoDBError),
    Auth(SigV4Error),
    UnknownOperation,
}

/// DynamoDB reports authentication failures and unknown operations from its Coral front end: a
/// different namespace and a lowercase `message`, HTTP 400.
fn coral_error(code: &str, message: Option<&str>) -> http::Response<DynamoDBResponseBody> {
    let mut json = serde_json::json!({ "__type": format!("com.amazon.coral.service#{code}") });
    if let Some(message) = message {
        json["message"] = message.into();
    }
    let json = serde_json::to_vec(&json).unwrap_or_default();
    let crc = crc32fast::hash(&json);
    let mut response = http::Response::new(DynamoDBResponseBody::from_json(json));
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(rustack_dynamodb_http::response::CONTENT_TYPE),
    );
    if let Ok(v) = http::HeaderValue::from_str(&crc.to_string()) {
        headers.insert("x-amz-crc32", v);
    }
    response
}

fn with_request_id(
    mut response: http::Response<DynamoDBResponseBody>,
    request_id: &str,
) -> http::Response<DynamoDBResponseBody> {
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::{Value, json};

    async fn front() -> (tempfile::TempDir, Front) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        let front = Front::new(store, Some(("key".into(), "secret".into())));
        (dir, front)
    }

    fn request(secret: Option<&str>) -> http::Request<Full<Bytes>> {
        let body = Bytes::from_static(b"{}");
        let (mut parts, ()) = http::Request::post("http://127.0.0.1:8000/")
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .body(())
            .unwrap()
            .into_parts();
        if let Some(secret) = secret {
            lambdock_gateway::sigv4::sign(
                &mut parts,
                &body,
                "key",
                secret,
                "us-east-1",
                "dynamodb",
                SystemTime::now(),
            );
        }
        http::Request::from_parts(parts, Full::new(body))
    }

    async fn answer(front: &Front, req: http::Request<Full<Bytes>>) -> (u16, Value) {
        let resp = front.handle(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_signed_request_is_served() {
        let (_dir, front) = front().await;
        let (status, body) = answer(&front, request(Some("secret"))).await;
        assert_eq!((status, body), (200, json!({"TableNames": []})));
    }

    #[tokio::test]
    async fn authentication_failures_have_the_coral_shape() {
        let (_dir, front) = front().await;
        let (status, body) = answer(&front, request(None)).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"__type": "com.amazon.coral.service#MissingAuthenticationTokenException",
                   "message": "Request is missing Authentication Token"})
        );
        let (status, body) = answer(&front, request(Some("wrong"))).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["__type"],
            "com.amazon.coral.service#InvalidSignatureException"
        );
    }

    #[tokio::test]
    async fn an_unknown_target_is_an_unknown_operation() {
        let (_dir, front) = front().await;
        let mut req = request(Some("secret"));
        req.headers_mut().insert(
            "x-amz-target",
            http::HeaderValue::from_static("DynamoDB_20120810.NoSuchThing"),
        );
        // The target is signed, so re-sign after changing it.
        let (mut parts, body) = req.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        lambdock_gateway::sigv4::sign(
            &mut parts,
            &bytes,
            "key",
            "secret",
            "us-east-1",
            "dynamodb",
            SystemTime::now(),
        );
        let (status, body) =
            answer(&front, http::Request::from_parts(parts, Full::new(bytes))).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"__type": "com.amazon.coral.service#UnknownOperationException"})
        );
    }
}
