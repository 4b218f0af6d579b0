//! The Runtime API state machine driven directly over HTTP: the test plays the runtime (the
//! bootstrap is a process that never calls the API) and checks every error row of A1.6, the
//! Extensions API, and the Logs/Telemetry stubs.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use common::{Emulator, Function, Reply, Rie, post, request};

fn silent_runtime(timeout: u32) -> Function {
    Function {
        command: vec!["/bin/sleep".into(), "600".into()],
        dir: std::env::temp_dir(),
        env: vec![],
        flags: vec![],
    }
    .timeout(timeout)
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, Bytes::new(), headers).await
}

fn assert_error(reply: &Reply, status: u16, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.json()["errorType"], error_type, "{}", reply.text());
    assert!(reply.json()["errorMessage"].is_string());
}

fn invoke_in_background(
    rie: &Rie,
    payload: &'static str,
    id: &'static str,
) -> tokio::task::JoinHandle<Reply> {
    let url = rie.url();
    tokio::spawn(async move {
        post(
            &url,
            payload,
            &[
                ("X-Lambdock-Request-Id", id),
                (
                    "X-Amzn-Trace-Id",
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                ),
                ("X-Amz-Client-Context", "eyJjdXN0b20iOnsiayI6InYifX0="),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
        )
        .await
    })
}

/// Calls `/next` in the background: it only returns once the next event comes.
fn park_next(rie: &Rie) -> tokio::task::JoinHandle<Reply> {
    let url = rie.api("/2018-06-01/runtime/invocation/next");
    tokio::spawn(async move { get(&url, &[]).await })
}

#[tokio::test]
async fn every_runtime_api_error_row() {
    let rie = Rie::start(Emulator::Lambdock, silent_runtime(30));
    let next_url = rie.api("/2018-06-01/runtime/invocation/next");

    // Before the runtime reached /next, answering is a state violation.
    let caller = invoke_in_background(&rie, r#"{"n":1}"#, "req-1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let early = post(
        &rie.api("/2018-06-01/runtime/invocation/req-1/response"),
        "{}",
        &[],
    )
    .await;
    assert_error(&early, 403, "InvalidStateTransition");
    assert_eq!(
        early.json()["errorMessage"],
        "State transition from Started to InvocationResponse failed for runtime. Error: State transition is not allowed"
    );

    // /next: the event with every header of A1.3.
    let event = get(&next_url, &[]).await;
    assert_eq!(event.status, 200);
    assert_eq!(event.text(), r#"{"n":1}"#);
    assert_eq!(
        event.header("lambda-runtime-aws-request-id").as_deref(),
        Some("req-1")
    );
    let deadline: u128 = event
        .header("lambda-runtime-deadline-ms")
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline > now + 25_000 && deadline <= now + 30_000,
        "deadline {deadline} now {now}"
    );
    assert_eq!(
        event
            .header("lambda-runtime-invoked-function-arn")
            .as_deref(),
        Some("arn:aws:lambda:us-east-1:012345678912:function:fixture")
    );
    assert_eq!(
        event.header("lambda-runtime-trace-id").as_deref(),
        Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
    );
    assert_eq!(
        event.header("lambda-runtime-client-context").as_deref(),
        Some(r#"{"custom":{"k":"v"}}"#)
    );
    assert_eq!(
        event.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        event.header("lambda-runtime-cognito-identity").is_none(),
        "empty headers are not sent"
    );

    // /next again without answering.
    assert_error(&get(&next_url, &[]).await, 403, "InvalidStateTransition");
    // Wrong request id.
    let wrong = post(
        &rie.api("/2018-06-01/runtime/invocation/other/response"),
        "{}",
        &[],
    )
    .await;
    assert_error(&wrong, 400, "InvalidRequestID");
    assert_eq!(wrong.json()["errorMessage"], "Invalid request ID");
    // The answer.
    let ok = post(
        &rie.api("/2018-06-01/runtime/invocation/req-1/response"),
        r#"{"ok":true}"#,
        &[],
    )
    .await;
    assert_eq!((ok.status, ok.text().as_str()), (202, r#"{"status":"OK"}"#));
    // Reply after reply.
    let again = post(
        &rie.api("/2018-06-01/runtime/invocation/req-1/response"),
        "{}",
        &[],
    )
    .await;
    assert_error(&again, 403, "InvalidStateTransition");
    let again = post(
        &rie.api("/2018-06-01/runtime/invocation/req-1/error"),
        "{}",
        &[],
    )
    .await;
    assert_error(&again, 403, "InvalidStateTransition");
    let reply = caller.await.unwrap();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, r#"{"ok":true}"#)
    );
    assert_eq!(reply.header("x-amzn-requestid").as_deref(), Some("req-1"));
    assert!(reply.header("x-amz-function-error").is_none());

    // A response over 6291556 bytes: 413 to the runtime, Function.ResponseSizeTooLarge to the caller.
    let parked = park_next(&rie);
    let caller = invoke_in_background(&rie, "{}", "req-2");
    assert_eq!(
        parked
            .await
            .unwrap()
            .header("lambda-runtime-aws-request-id")
            .as_deref(),
        Some("req-2")
    );
    let big = vec![b'x'; 6_291_557];
    let too_large = post(
        &rie.api("/2018-06-01/runtime/invocation/req-2/response"),
        big,
        &[],
    )
    .await;
    assert_error(&too_large, 413, "RequestEntityTooLarge");
    assert_eq!(
        too_large.json()["errorMessage"],
        "Exceeded maximum allowed payload size (6291556 bytes)."
    );
    let reply = caller.await.unwrap();
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}"#
    );

    // An unknown response mode.
    let parked = park_next(&rie);
    let caller = invoke_in_background(&rie, "{}", "req-3");
    parked.await.unwrap();
    let bad_mode = post(
        &rie.api("/2018-06-01/runtime/invocation/req-3/response"),
        "{}",
        &[("Lambda-Runtime-Function-Response-Mode", "buffered-ish")],
    )
    .await;
    assert_error(&bad_mode, 400, "InvalidFunctionResponseMode");
    let reply = caller.await.unwrap();
    assert_eq!(
        reply.header("x-lambdock-error-type").as_deref(),
        Some("Runtime.InvalidResponseModeHeader")
    );
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );

    // A function error with an X-Ray cause: the cause is stripped for the caller.
    let parked = park_next(&rie);
    let caller = invoke_in_background(&rie, "{}", "req-4");
    parked.await.unwrap();
    let err = post(
        &rie.api("/2018-06-01/runtime/invocation/req-4/error"),
        r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a"],"errorCause":{"paths":[]}}"#,
        &[
            ("Content-Type", "application/vnd.aws.lambda.error.cause+json"),
            ("Lambda-Runtime-Function-Error-Type", "ValueError"),
        ],
    )
    .await;
    assert_eq!(err.status, 202);
    let reply = caller.await.unwrap();
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.header("x-lambdock-error-type").as_deref(),
        Some("ValueError")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a"]}"#
    );

    // A response upload cut short: 400 TruncatedHTTPRequest, Runtime.TruncatedResponse to the caller.
    let parked = park_next(&rie);
    let caller = invoke_in_background(&rie, "{}", "req-5");
    parked.await.unwrap();
    let mut raw = std::net::TcpStream::connect(rie.runtime_api).unwrap();
    raw.write_all(b"POST /2018-06-01/runtime/invocation/req-5/response HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("TruncatedHTTPRequest"), "{answer}");
    let reply = caller.await.unwrap();
    assert_eq!(
        reply.header("x-lambdock-error-type").as_deref(),
        Some("Runtime.TruncatedResponse")
    );

    // A second invocation while one runs is refused at once and does not disturb the first.
    let parked = park_next(&rie);
    let caller = invoke_in_background(&rie, r#"{"first":true}"#, "req-6");
    parked.await.unwrap();
    let second = post(&rie.url(), "{}", &[]).await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(
        second.header("x-amzn-errortype").as_deref(),
        Some("TooManyRequestsException")
    );
    assert!(second.json()["message"].as_str().unwrap().contains("req-6"));
    post(
        &rie.api("/2018-06-01/runtime/invocation/req-6/response"),
        "\"first\"",
        &[],
    )
    .await;
    assert_eq!(caller.await.unwrap().text(), "\"first\"");

    // A streamed response with Lambda's error trailers: the caller (asking for trailers) gets the
    // chunks as they come and the trailers after them.
    let parked = park_next(&rie);
    let url = rie.url();
    let caller = tokio::spawn(async move {
        post(
            &url,
            "{}",
            &[("X-Lambdock-Request-Id", "req-7"), ("TE", "trailers")],
        )
        .await
    });
    parked.await.unwrap();
    let mut raw = std::net::TcpStream::connect(rie.runtime_api).unwrap();
    raw.write_all(
        b"POST /2018-06-01/runtime/invocation/req-7/response HTTP/1.1\r\nHost: x\r\n\
          Lambda-Runtime-Function-Response-Mode: streaming\r\nContent-Type: text/plain\r\n\
          Transfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n\
          5\r\nhello\r\n0\r\nLambda-Runtime-Function-Error-Type: Function.Boom\r\n\
          Lambda-Runtime-Function-Error-Body: Ym9vbQ==\r\n\r\n",
    )
    .unwrap();
    let mut answer = [0u8; 512];
    let n = raw.read(&mut answer).unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let reply = caller.await.unwrap();
    assert_eq!(reply.text(), "hello");
    assert_eq!(reply.header("content-type").as_deref(), Some("text/plain"));
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(
        trailers.get("lambda-runtime-function-error-type").unwrap(),
        "Function.Boom"
    );
    assert_eq!(
        trailers.get("lambda-runtime-function-error-body").unwrap(),
        "Ym9vbQ=="
    );

    // Unknown paths.
    assert_eq!(
        get(&rie.api("/2018-06-01/runtime/nothing"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn init_error_reaches_the_caller_and_the_next_invoke_retries_init() {
    let rie = Rie::start(Emulator::Lambdock, silent_runtime(10));
    let caller = invoke_in_background(&rie, "{}", "req-init");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let posted = post(
        &rie.api("/2018-06-01/runtime/init/error"),
        r#"{"errorMessage":"Unable to import module 'app'","errorType":"Runtime.ImportModuleError","stackTrace":[]}"#,
        &[("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
    )
    .await;
    assert_eq!(posted.status, 202);
    let reply = caller.await.unwrap();
    // AWS's emulator answers 502 here (A2.2); Lambda answers 200 with the error.
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"Unable to import module 'app'","errorType":"Runtime.ImportModuleError","stackTrace":[]}"#
    );
    let out = rie.wait_output("REPORT RequestId: req-init").await;
    assert!(out.contains("INIT_REPORT Init Duration: "), "{out}");
    assert!(
        out.contains("Status: error\tError Type: Runtime.ImportModuleError"),
        "{out}"
    );

    // The sandbox was reset: a new runtime inits for the next invocation.
    let caller = invoke_in_background(&rie, r#"{"again":1}"#, "req-after");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = get(&rie.api("/2018-06-01/runtime/invocation/next"), &[]).await;
    assert_eq!(event.text(), r#"{"again":1}"#);
    post(
        &rie.api("/2018-06-01/runtime/invocation/req-after/response"),
        "1",
        &[],
    )
    .await;
    assert_eq!(caller.await.unwrap().text(), "1");
    // /init/error after init is over is a state violation.
    let late = post(&rie.api("/2018-06-01/runtime/init/error"), "{}", &[]).await;
    assert_error(&late, 403, "InvalidStateTransition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_take_part_in_init_and_invoke() {
    let rie = Rie::start(Emulator::Lambdock, silent_runtime(10));
    let caller = invoke_in_background(&rie, r#"{"ext":1}"#, "req-ext");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let missing = get(&rie.api("/2020-01-01/extension/event/next"), &[]).await;
    assert_error(&missing, 403, "Extension.MissingExtensionIdentifier");
    let reg = post(
        &rie.api("/2020-01-01/extension/register"),
        r#"{"events":["INVOKE","SHUTDOWN"]}"#,
        &[("Lambda-Extension-Name", "probe")],
    )
    .await;
    assert_eq!(reg.status, 200, "{}", reg.text());
    assert_eq!(reg.json()["functionName"], "fixture");
    assert_eq!(reg.json()["functionVersion"], "$LATEST");
    let ext_id = reg
        .header("lambda-extension-identifier")
        .expect("identifier");
    let bad = get(
        &rie.api("/2020-01-01/extension/event/next"),
        &[("Lambda-Extension-Identifier", "nope")],
    )
    .await;
    assert_error(&bad, 403, "Extension.InvalidExtensionIdentifier");

    let ext_url = rie.api("/2020-01-01/extension/event/next");
    let id = ext_id.clone();
    let ext_next =
        tokio::spawn(async move { get(&ext_url, &[("Lambda-Extension-Identifier", &id)]).await });
    let event = get(&rie.api("/2018-06-01/runtime/invocation/next"), &[]).await;
    assert_eq!(event.text(), r#"{"ext":1}"#);
    let invoke_event = ext_next.await.unwrap();
    assert_eq!(invoke_event.status, 200);
    let v = invoke_event.json();
    assert_eq!(v["eventType"], "INVOKE");
    assert_eq!(v["requestId"], "req-ext");
    assert_eq!(v["tracing"]["type"], "X-Amzn-Trace-Id");
    assert!(
        invoke_event
            .header("lambda-extension-event-identifier")
            .is_some()
    );

    // Registration is closed once init is over.
    let late = post(
        &rie.api("/2020-01-01/extension/register"),
        r#"{"events":[]}"#,
        &[("Lambda-Extension-Name", "late")],
    )
    .await;
    assert_error(&late, 403, "Extension.RegistrationClosed");

    post(
        &rie.api("/2018-06-01/runtime/invocation/req-ext/response"),
        "\"done\"",
        &[],
    )
    .await;
    assert_eq!(caller.await.unwrap().text(), "\"done\"");
    let _runtime_next = park_next(&rie);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !rie.output().contains("END RequestId: req-ext"),
        "the invocation waits for the extension"
    );
    let ext_url = rie.api("/2020-01-01/extension/event/next");
    let _ext_next =
        tokio::spawn(
            async move { get(&ext_url, &[("Lambda-Extension-Identifier", &ext_id)]).await },
        );
    let out = rie.wait_output("REPORT RequestId: req-ext").await;
    assert!(
        !common::report_fields(&out, "req-ext").contains_key("Status"),
        "ended normally: {out}"
    );

    let logs = request("PUT", &rie.api("/2020-08-15/logs"), Bytes::from("{}"), &[]).await;
    assert_eq!(
        (logs.status, logs.text().as_str()),
        (
            202,
            r#"{"errorMessage":"Logs API is not supported","errorType":"Logs.NotSupported"}"#
        )
    );
    let telemetry = request(
        "PUT",
        &rie.api("/2022-07-01/telemetry"),
        Bytes::from("{}"),
        &[],
    )
    .await;
    assert_eq!(telemetry.status, 202);
    assert_eq!(telemetry.json()["errorType"], "Telemetry.NotSupported");
}
