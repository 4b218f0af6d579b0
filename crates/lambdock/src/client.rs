//! `lambdock invoke`, `lambdock ps` and `lambdock schedules`: small SigV4-signing clients of the AWS endpoint.

use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type Error = Box<dyn std::error::Error>;

/// Where the gateway is and how to sign.
#[derive(Args, Debug)]
pub struct Endpoint {
    /// The AWS endpoint of the gateway.
    #[arg(
        long,
        env = "LAMBDOCK_ENDPOINT",
        default_value = "http://127.0.0.1:3001"
    )]
    pub(crate) endpoint: String,
    /// Access key.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "lambdock")]
    pub(crate) access_key: String,
    /// Secret key.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "lambdock-secret",
        hide_env_values = true
    )]
    pub(crate) secret_key: String,
    /// Region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
}

/// Options of `lambdock invoke`.
#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// Function name, name:qualifier or ARN.
    function: String,
    /// Event: JSON text, or @file.
    #[arg(long, default_value = "{}")]
    payload: String,
    /// RequestResponse, Event or DryRun.
    #[arg(long, default_value = "RequestResponse")]
    invocation_type: String,
    /// Tail to print the invocation's log.
    #[arg(long)]
    log_type: Option<String>,
    /// Version or alias.
    #[arg(long)]
    qualifier: Option<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// One SigV4-signed request to the gateway, its answer read whole.
pub(crate) async fn call(
    endpoint: &Endpoint,
    method: http::Method,
    path: &str,
    body: Bytes,
    headers: &[(&str, String)],
) -> Result<http::Response<Bytes>, Error> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", endpoint.endpoint.trim_end_matches('/')));
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    let (mut parts, ()) = builder.body(())?.into_parts();
    lambdock_gateway::sigv4::sign(
        &mut parts,
        &body,
        &endpoint.access_key,
        &endpoint.secret_key,
        &endpoint.region,
        "lambda",
        SystemTime::now(),
    );
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("calling {}: {e}", endpoint.endpoint))?;
    let (parts, body) = resp.into_parts();
    Ok(http::Response::from_parts(
        parts,
        body.collect().await?.to_bytes(),
    ))
}

fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~$".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs `lambdock invoke`: the function's answer on stdout, the call's metadata on stderr.
pub async fn invoke(args: InvokeArgs) -> Result<(), Error> {
    let payload = match args.payload.strip_prefix('@') {
        Some(file) => std::fs::read(file).map_err(|e| format!("reading {file}: {e}"))?,
        None => args.payload.clone().into_bytes(),
    };
    let mut path = format!(
        "/2015-03-31/functions/{}/invocations",
        encode_segment(&args.function)
    );
    if let Some(q) = &args.qualifier {
        path.push_str(&format!("?Qualifier={}", encode_segment(q)));
    }
    let mut headers = vec![("x-amz-invocation-type", args.invocation_type.clone())];
    if let Some(t) = &args.log_type {
        headers.push(("x-amz-log-type", t.clone()));
    }
    let resp = call(
        &args.endpoint,
        http::Method::POST,
        &path,
        Bytes::from(payload),
        &headers,
    )
    .await?;
    let h = resp.headers();
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(kind) = h.get("x-amzn-errortype").and_then(|v| v.to_str().ok()) {
        return Err(format!(
            "{} {kind}: {}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .into());
    }
    eprintln!(
        "StatusCode: {}  ExecutedVersion: {}  RequestId: {}",
        resp.status().as_u16(),
        get("x-amz-executed-version"),
        get("x-amzn-requestid")
    );
    if !get("x-amz-function-error").is_empty() {
        eprintln!("FunctionError: {}", get("x-amz-function-error"));
    }
    if let Ok(log) = base64::engine::general_purpose::STANDARD.decode(get("x-amz-log-result")) {
        eprint!("{}", String::from_utf8_lossy(&log));
    }
    println!("{}", String::from_utf8_lossy(resp.body()));
    Ok(())
}

/// GETs one of Lambdock's own JSON resources.
pub async fn get_json(endpoint: &Endpoint, path: &str) -> Result<serde_json::Value, Error> {
    let resp = call(endpoint, http::Method::GET, path, Bytes::new(), &[]).await?;
    if !resp.status().is_success() {
        return Err(format!(
            "{}: {}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .into());
    }
    Ok(serde_json::from_slice(resp.body())?)
}

/// Runs `lambdock ps`: workers per function and version, state, age, memory.
pub async fn ps(endpoint: Endpoint) -> Result<(), Error> {
    let v = get_json(&endpoint, "/lambdock/v1/workers").await?;
    let mut workers = v["Workers"].as_array().cloned().unwrap_or_default();
    workers.sort_by_key(|w| {
        (
            w["function"].as_str().unwrap_or("").to_string(),
            w["worker"].as_str().unwrap_or("").to_string(),
        )
    });
    println!(
        "{:<24} {:<8} {:<32} {:<8} {:>8} {:>12}  ADDRESS",
        "FUNCTION", "VERSION", "WORKER", "STATE", "AGE", "MEMORY"
    );
    for w in workers {
        let mib = |k: &str| w[k].as_u64().unwrap_or(0) as f64 / 1048576.0;
        let memory = if w["memory_limit_bytes"].as_u64().unwrap_or(0) > 0 {
            format!(
                "{:.1}/{:.0} MiB",
                mib("memory_bytes"),
                mib("memory_limit_bytes")
            )
        } else {
            format!("{:.1} MiB", mib("memory_bytes"))
        };
        println!(
            "{:<24} {:<8} {:<32} {:<8} {:>7}s {:>12}  {}",
            w["function"].as_str().unwrap_or(""),
            w["version"].as_str().unwrap_or("-"),
            w["worker"].as_str().unwrap_or(""),
            w["state"].as_str().unwrap_or(""),
            w["age_seconds"].as_i64().unwrap_or(0),
            memory,
            w["invoke_address"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Runs `lambdock schedules`: each schedule, its expression and time zone, whether it is
/// enabled, its next run and its last run with what became of it.
pub async fn schedules(endpoint: Endpoint) -> Result<(), Error> {
    let v = get_json(&endpoint, "/lambdock/v1/schedules").await?;
    println!(
        "{:<24} {:<20} {:<28} {:<16} {:<7} {:<20} {:<20} {:>5}  LAST RESULT",
        "NAME", "FUNCTION", "EXPRESSION", "TIMEZONE", "ENABLED", "NEXT RUN", "LAST RUN", "FIRES"
    );
    let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
    for sch in v["Schedules"].as_array().into_iter().flatten() {
        let result = match sch["Error"].as_str() {
            Some(e) => format!("invalid: {e}"),
            None => s(&sch["LastResult"]),
        };
        println!(
            "{:<24} {:<20} {:<28} {:<16} {:<7} {:<20} {:<20} {:>5}  {}",
            s(&sch["Name"]),
            s(&sch["Function"]),
            s(&sch["Expression"]),
            s(&sch["Timezone"]),
            sch["Enabled"].as_bool().unwrap_or(false),
            s(&sch["NextRun"]),
            s(&sch["LastRun"]),
            sch["Fires"].as_u64().unwrap_or(0),
            result
        );
    }
    Ok(())
}
