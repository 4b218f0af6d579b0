//! GET /items/{id} on the HTTP API: answers with the item id and the configured greeting.
//!
//! The HTTP API's payload 2.0 event arrives as JSON; the answer uses 2.0's full response shape.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let id = event.payload["pathParameters"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let greeting = std::env::var("GREETING").unwrap_or_default();
    let body = json!({
        "id": id,
        "greeting": greeting,
        "route": event.payload["routeKey"],
        "request_id": event.context.request_id,
    });
    Ok(json!({
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
