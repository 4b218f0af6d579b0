//! Real runtime clients under `lambdock-rie`: Python's awslambdaric, Rust's lambda_runtime and a
//! shell bootstrap. For each: success, handled error, timeout, crash, init failure, oversize
//! response, log tail, client context and trace id, and a working invoke after every failure.

mod common;

use base64::Engine;
use common::{Emulator, Function, Rie, post, report_fields};

const TRACE: &str = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1";

fn client_context() -> String {
    let cc = r#"{"custom":{"tenant":"t1"},"env":{"platform":"test"},"client":{"installation_id":"i-1","app_title":"app","app_version_name":"1","app_version_code":"1","app_package_name":"p"}}"#;
    base64::engine::general_purpose::STANDARD.encode(cc)
}

async fn assert_echo_works(rie: &Rie) {
    let reply = rie.invoke(r#"{"action":"echo","n":42}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.header("x-amz-function-error").is_none(),
        "{}",
        reply.text()
    );
    let v = reply.json();
    assert!(v["event"]["n"] == 42 || v["echo"]["n"] == 42, "{v}");
}

async fn success_context_and_trace(rie: &Rie) {
    let cc = client_context();
    let reply = post(
        &rie.url(),
        r#"{"action":"echo","n":1}"#,
        &[
            ("X-Amzn-Trace-Id", TRACE),
            ("X-Amz-Client-Context", &cc),
            ("X-Lambdock-Request-Id", "rid-echo"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["event"], serde_json::json!({"action": "echo", "n": 1}));
    assert_eq!(v["request_id"], "rid-echo");
    assert_eq!(
        reply.header("x-amzn-requestid").as_deref(),
        Some("rid-echo")
    );
    assert_eq!(v["trace_id"], TRACE);
    assert_eq!(v["client_context"]["custom"]["tenant"], "t1", "{v}");
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:fixture"
    );
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_NAME"], "fixture");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(v["env"]["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/fixture");
    let stream = v["env"]["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap();
    assert!(stream.contains("/[$LATEST]"), "{stream}");
    assert_eq!(
        v["env"]["AWS_LAMBDA_RUNTIME_API"],
        rie.runtime_api.to_string()
    );
    let deadline = v["deadline_ms"].as_u64().unwrap() as u128;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline > now && deadline < now + 31_000,
        "deadline {deadline} now {now}"
    );
    let out = rie.wait_output("REPORT RequestId: rid-echo").await;
    let report = report_fields(&out, "rid-echo");
    assert_eq!(report["Memory Size"], "256 MB");
    assert!(
        report.contains_key("Init Duration"),
        "first invoke is a cold start: {out}"
    );
    let used: u64 = report["Max Memory Used"]
        .trim_end_matches(" MB")
        .parse()
        .unwrap();
    assert!(used > 0, "memory is measured: {out}");
}

async fn handled_error(rie: &Rie, error_type: &str) {
    let reply = rie
        .invoke(r#"{"action":"error","message":"it broke"}"#)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let v = reply.json();
    assert_eq!(v["errorType"], error_type, "{v}");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("it broke"),
        "{v}"
    );
    assert_echo_works(rie).await;
}

async fn timeout(rie: &Rie) {
    let reply = post(
        &rie.url(),
        r#"{"action":"sleep","seconds":5}"#,
        &[("X-Lambdock-Request-Id", "rid-timeout")],
    )
    .await;
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: rid-timeout Error: Task timed out after 2.00 seconds"}"#
    );
    let out = rie.wait_output("REPORT RequestId: rid-timeout").await;
    assert!(
        out.contains("rid-timeout Task timed out after 2.00 seconds"),
        "{out}"
    );
    assert_eq!(report_fields(&out, "rid-timeout")["Status"], "timeout");
    assert_echo_works(rie).await;
}

async fn crash(rie: &Rie) {
    let reply = post(
        &rie.url(),
        r#"{"action":"exit","code":3}"#,
        &[("X-Lambdock-Request-Id", "rid-crash")],
    )
    .await;
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"RequestId: rid-crash Error: Runtime exited with error: exit status 3","errorType":"Runtime.ExitError"}"#
    );
    assert_echo_works(rie).await;
}

async fn oversize(rie: &Rie) {
    let reply = rie.invoke(r#"{"action":"big","bytes":7000000}"#).await;
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.json()["errorType"],
        "Function.ResponseSizeTooLarge",
        "{}",
        reply.text()
    );
    assert!(
        reply.json()["errorMessage"]
            .as_str()
            .unwrap()
            .contains("(7000002 bytes) exceeded maximum allowed payload size (6291556 bytes)")
    );
    assert_echo_works(rie).await;
}

async fn tail(rie: &Rie) {
    let reply = post(
        &rie.url(),
        r#"{"action":"log","message":"hello from the function"}"#,
        &[
            ("X-Amz-Log-Type", "Tail"),
            ("X-Lambdock-Request-Id", "rid-tail"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    let log = reply.log_tail();
    assert!(
        log.starts_with("START RequestId: rid-tail Version: $LATEST\n"),
        "{log}"
    );
    assert!(log.contains("hello from the function\n"), "{log}");
    assert!(log.contains("stderr: hello from the function\n"), "{log}");
    assert!(log.contains("END RequestId: rid-tail\n"), "{log}");
    assert!(
        log.contains("REPORT RequestId: rid-tail\tDuration: "),
        "{log}"
    );
    let plain = rie.invoke(r#"{"action":"noop"}"#).await;
    assert!(
        plain.header("x-amz-log-result").is_none(),
        "no tail unless asked"
    );
}

#[tokio::test]
async fn python_awslambdaric() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function::python("app.handler").timeout(2),
    );
    success_context_and_trace(&rie).await;
    handled_error(&rie, "ValueError").await;
    timeout(&rie).await;
    crash(&rie).await;
    oversize(&rie).await;
    tail(&rie).await;
}

#[tokio::test]
async fn python_init_failure_is_reported_and_retried() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function::python("broken_import.handler").timeout(5),
    );
    for attempt in 0..2 {
        let reply = rie.invoke("{}").await;
        assert_eq!(reply.status, 200, "attempt {attempt}: {}", reply.text());
        assert_eq!(
            reply.header("x-amz-function-error").as_deref(),
            Some("Unhandled")
        );
        let v = reply.json();
        assert_eq!(v["errorType"], "Runtime.ImportModuleError", "{v}");
        assert!(
            v["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("Unable to import module 'broken_import'"),
            "{v}"
        );
    }
    let out = rie.output();
    assert_eq!(
        out.matches("INIT_REPORT").count(),
        2,
        "init is retried at each invoke: {out}"
    );
    let bad_handler = Rie::start(
        Emulator::Lambdock,
        Function::python("app.no_such_function").timeout(5),
    );
    let v = bad_handler.invoke("{}").await.json();
    assert_eq!(v["errorType"], "Runtime.HandlerNotFound", "{v}");
}

#[tokio::test]
async fn rust_lambda_runtime() {
    let rie = Rie::start(Emulator::Lambdock, Function::rust().timeout(2));
    success_context_and_trace(&rie).await;
    handled_error(&rie, "FixtureError").await;
    timeout(&rie).await;
    crash(&rie).await;
    oversize(&rie).await;
    tail(&rie).await;
}

#[tokio::test]
async fn rust_panicking_init() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function::rust().env("FIXTURE_PANIC_INIT", "1").timeout(5),
    );
    let reply = post(&rie.url(), "{}", &[("X-Lambdock-Request-Id", "rid-panic")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"RequestId: rid-panic Error: Runtime exited with error: exit status 101","errorType":"Runtime.ExitError"}"#
    );
    let out = rie.wait_output("REPORT RequestId: rid-panic").await;
    assert!(out.contains("INIT_REPORT Init Duration: "), "{out}");
    assert!(
        out.contains("panicked"),
        "the panic message is in the log: {out}"
    );
}

#[tokio::test]
async fn rust_streaming_response() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function::rust().env("FIXTURE_MODE", "stream").timeout(5),
    );
    // lambda_runtime streams HTTP-shaped responses: a JSON prelude, 8 NUL bytes, the body.
    let prelude = "{\"statusCode\":200,\"headers\":{\"content-type\":\"application/octet-stream\"},\"cookies\":[]}\0\0\0\0\0\0\0\0";
    let reply = rie.invoke(r#"{"chunks":4,"delay_ms":150}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    assert_eq!(
        reply.text(),
        format!("{prelude}chunk 1\nchunk 2\nchunk 3\nchunk 4\n")
    );
    assert!(
        reply.chunks.len() >= 4,
        "the body arrives as it is written: {:?}",
        reply.chunks
    );
    let spread = reply.chunks.last().unwrap().0 - reply.chunks.first().unwrap().0;
    assert!(
        spread.as_millis() >= 300,
        "chunks were not buffered until the end: {spread:?}"
    );
    assert!(
        reply
            .trailers
            .as_ref()
            .is_none_or(|t| t.get("lambda-runtime-function-error-type").is_none())
    );

    // lambda_runtime 1.5 reports a mid-stream error by writing the trailer lines as a body chunk
    // (`ToStreamErrorTrailer`), not as HTTP trailers; they reach the caller as the runtime sent
    // them, as in Lambda. Real HTTP trailers are covered in runtime_api.rs.
    let failed = rie
        .invoke(r#"{"chunks":5,"delay_ms":10,"fail_after":2}"#)
        .await;
    let text = failed.text();
    assert!(
        text.starts_with(&format!("{prelude}chunk 1\nchunk 2\n")),
        "{text}"
    );
    assert!(!text.contains("chunk 3"), "{text}");
    let expected = base64::engine::general_purpose::STANDARD.encode("stream failed after 2 chunks");
    assert!(
        text.contains(&format!("Lambda-Runtime-Function-Error-Body: {expected}")),
        "{text}"
    );
    let again = rie.invoke(r#"{"chunks":1,"delay_ms":0}"#).await;
    assert_eq!(again.text(), format!("{prelude}chunk 1\n"));
}

#[tokio::test]
async fn shell_bootstrap() {
    let rie = Rie::start(Emulator::Lambdock, Function::shell().timeout(2));
    let reply = rie.invoke(r#"{"action":"echo","n":42}"#).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["echo"]["n"], 42);
    assert_eq!(reply.json()["handler"], "shell.handler");
    let err = rie.invoke(r#"{"action":"error"}"#).await;
    assert_eq!(
        err.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        err.text(),
        r#"{"errorMessage":"shell error","errorType":"ShellError"}"#
    );
    timeout(&rie).await;
    crash(&rie).await;
    let reply = post(
        &rie.url(),
        r#"{"action":"echo"}"#,
        &[("X-Amz-Log-Type", "Tail")],
    )
    .await;
    assert!(
        reply.log_tail().contains("shell handling"),
        "{}",
        reply.log_tail()
    );

    let failing = Rie::start(
        Emulator::Lambdock,
        Function::shell().env("BOOTSTRAP_INIT_FAIL", "1").timeout(2),
    );
    let reply = failing.invoke("{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"init failed on purpose","errorType":"Runtime.InitFailed"}"#
    );
}

#[tokio::test]
async fn missing_bootstrap_is_an_invalid_entrypoint() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function {
            command: vec!["/nonexistent/bootstrap".into()],
            dir: std::env::temp_dir(),
            env: vec![],
            flags: vec![],
        },
    );
    let reply = post(&rie.url(), "{}", &[("X-Lambdock-Request-Id", "rid-x")]).await;
    assert_eq!(
        reply.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        reply.text(),
        r#"{"errorMessage":"RequestId: rid-x Error: fork/exec /nonexistent/bootstrap: no such file or directory","errorType":"Runtime.InvalidEntrypoint"}"#
    );
}

#[tokio::test]
async fn eager_init_starts_the_runtime_before_the_first_invoke() {
    let rie = Rie::start(
        Emulator::Lambdock,
        Function::python("app.handler")
            .flag("--init-mode")
            .flag("eager"),
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let health = common::request(
            "GET",
            &format!("http://{}/health", rie.invoke),
            bytes::Bytes::new(),
            &[],
        )
        .await;
        if health.json()["warm"] == true {
            break;
        }
        assert!(std::time::Instant::now() < until, "never warm");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let reply = rie.invoke(r#"{"action":"noop"}"#).await;
    assert!(
        reply.header("x-lambdock-init-duration-ms").is_none(),
        "no cold start left for the caller"
    );
}
