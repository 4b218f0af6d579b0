//! Differential tests: the same fixtures under AWS's own emulator (`aws-lambda-rie` from the
//! `aws-sam-cli` wheel) and under `lambdock-rie`. Successes and handled errors must give the same
//! body. Where we deliberately differ (A2.2 of the protocol reference), the test shows AWS's
//! emulator's fault and asserts AWS Lambda's behaviour for ours.

mod common;

use common::{Emulator, Function, Reply, Rie, post};

/// Starts both emulators with the same function.
fn both(function: impl Fn() -> Function) -> (Rie, Rie) {
    (
        Rie::start(Emulator::Aws, function()),
        Rie::start(Emulator::Lambdock, function()),
    )
}

async fn invoke_both(aws: &Rie, ours: &Rie, payload: &str) -> (Reply, Reply) {
    let a = post(&aws.url(), payload.to_string(), &[]).await;
    let b = post(&ours.url(), payload.to_string(), &[]).await;
    (a, b)
}

/// The body with awslambdaric's per-invocation `requestId` taken out.
fn without_request_id(reply: &Reply) -> serde_json::Value {
    let mut v = reply.json();
    if let Some(map) = v.as_object_mut() {
        map.remove("requestId");
    }
    v
}

/// Same status and body for deterministic successes and handled errors.
async fn same_bodies(aws: &Rie, ours: &Rie, error_type: &str) {
    for payload in [
        r#"{"action":"noop"}"#,
        r#"{"action":"log","message":"m"}"#,
        r#"{"action":"big","bytes":1000}"#,
        r#"{"action":"sleep","seconds":0.01}"#,
    ] {
        let (a, b) = invoke_both(aws, ours, payload).await;
        assert_eq!((a.status, a.text()), (b.status, b.text()), "{payload}");
    }
    // The echo differs only in per-run fields (request id, deadline, ports, log stream).
    let (a, b) = invoke_both(
        aws,
        ours,
        r#"{"action":"echo","deep":{"list":[1,2,{"x":null}]}}"#,
    )
    .await;
    let (a, b) = (a.json(), b.json());
    assert!(a.get("event").is_some() || a.get("echo").is_some(), "{a}");
    assert_eq!(a.get("event"), b.get("event"));
    assert_eq!(a.get("echo"), b.get("echo"));

    // Handled error: same body; AWS's emulator drops X-Amz-Function-Error
    // (aws-lambda-runtime-interface-emulator#20), Lambda sends `Unhandled`.
    let (a, b) = invoke_both(aws, ours, r#"{"action":"error","message":"it broke"}"#).await;
    assert_eq!(without_request_id(&a), without_request_id(&b));
    assert_eq!(b.json()["errorType"], error_type);
    assert_eq!(
        a.header("x-amz-function-error"),
        None,
        "RIE fault #20 is still there"
    );
    assert_eq!(
        b.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
}

/// Timeout and crash: AWS's emulator's faults next to Lambda's behaviour.
async fn timeout_and_crash(aws: &Rie, ours: &Rie) {
    // RIE fault #21: 200 text/plain "Task timed out ..." instead of Sandbox.Timedout JSON.
    let (a, b) = invoke_both(aws, ours, r#"{"action":"sleep","seconds":5}"#).await;
    assert_eq!(a.status, 200);
    assert!(
        a.text().contains("Task timed out after 2.00 seconds"),
        "{}",
        a.text()
    );
    assert!(a.header("x-amz-function-error").is_none());
    assert_eq!(b.status, 200);
    assert_eq!(
        b.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(b.json()["errorType"], "Sandbox.Timedout");
    assert!(
        b.json()["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Task timed out after 2.00 seconds")
    );
    // Both recover.
    let (a, b) = invoke_both(aws, ours, r#"{"action":"noop"}"#).await;
    assert_eq!((a.status, a.text()), (b.status, b.text()));

    // RIE fault #86: a runtime that exits mid-invoke gives an empty body; Lambda gives Runtime.ExitError.
    let (a, b) = invoke_both(aws, ours, r#"{"action":"exit","code":3}"#).await;
    assert!(
        a.body.is_empty() || a.status != 200 || a.json().get("errorType").is_none(),
        "RIE fault #86: {}",
        a.text()
    );
    assert_eq!(
        b.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(b.json()["errorType"], "Runtime.ExitError");
    assert!(
        b.json()["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3")
    );
    let (a, b) = invoke_both(aws, ours, r#"{"action":"noop"}"#).await;
    assert_eq!((a.status, a.text()), (b.status, b.text()));
}

#[tokio::test]
async fn python_against_aws_rie() {
    let (aws, ours) = both(|| Function::python("app.handler").timeout(2));
    same_bodies(&aws, &ours, "ValueError").await;
    timeout_and_crash(&aws, &ours).await;
}

#[tokio::test]
async fn rust_against_aws_rie() {
    let (aws, ours) = both(|| Function::rust().timeout(2));
    same_bodies(&aws, &ours, "FixtureError").await;
    timeout_and_crash(&aws, &ours).await;
}

#[tokio::test]
async fn shell_against_aws_rie() {
    let (aws, ours) = both(|| Function::shell().timeout(2));
    let (a, b) = invoke_both(&aws, &ours, r#"{"action":"echo","n":1}"#).await;
    assert_eq!((a.status, a.text()), (b.status, b.text()));
    let (a, b) = invoke_both(&aws, &ours, r#"{"action":"error"}"#).await;
    assert_eq!(a.text(), b.text());
    assert_eq!(
        b.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
}

#[tokio::test]
async fn init_failure_against_aws_rie() {
    // RIE fault (ministack#1374): an init failure is answered with HTTP 502; Lambda answers 200
    // with `X-Amz-Function-Error: Unhandled` and the same body.
    let (aws, ours) = both(|| Function::python("broken_import.handler").timeout(5));
    let (a, b) = invoke_both(&aws, &ours, "{}").await;
    assert_eq!(a.status, 502, "RIE fault: {}", a.text());
    assert_eq!(b.status, 200);
    assert_eq!(
        b.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(a.json()["errorType"], b.json()["errorType"]);
    assert_eq!(a.json()["errorMessage"], b.json()["errorMessage"]);
}

#[tokio::test]
async fn drop_in_command_line() {
    // The harness starts both binaries with the same flags and environment; this checks the
    // default bootstrap lookup and the handler-as-last-argument convention on both.
    let (aws, ours) = both(Function::shell);
    let (a, b) = invoke_both(&aws, &ours, r#"{"action":"echo"}"#).await;
    assert_eq!(a.json()["handler"], "shell.handler");
    assert_eq!(a.text(), b.text());
}
