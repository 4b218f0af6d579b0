//! The events a routed function receives: REST's proxy event (payload 1.0) and HTTP API's
//! payload 2.0, field by field as API Gateway builds them, because functions (and frameworks
//! such as Mangum or aws-serverless-express) parse them exactly.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine;
use http::HeaderMap;
use lambdock_template::manifest::ApiKind;
use serde_json::{Map, Value, json};

use crate::table::{Entry, short_id};

/// What an authorizer established about the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    /// The token's claims, every value a string as API Gateway passes them.
    pub claims: Map<String, Value>,
    /// The token's scopes (`scope`/`scp`).
    pub scopes: Vec<String>,
}

/// The request as it arrived.
#[derive(Debug)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Raw (encoded) path, without a REST stage prefix.
    pub path: &'a str,
    /// Raw query string (empty when none).
    pub query: &'a str,
    /// Headers (hyper's lower-case names).
    pub headers: &'a HeaderMap,
    /// Original spelling of header names, by lower-case name, where known.
    pub header_case: &'a BTreeMap<String, String>,
    /// Body.
    pub body: &'a [u8],
    /// Caller's IP address.
    pub source_ip: String,
    /// `HTTP/1.1`.
    pub protocol: &'a str,
    /// The request id (also `x-amzn-RequestId` / `apigw-requestid`).
    pub request_id: &'a str,
    /// Arrival time.
    pub time: SystemTime,
}

/// The matched route and what the gateway decided about the request.
#[derive(Debug)]
pub struct Routed<'a> {
    /// The route.
    pub entry: &'a Entry,
    /// Path parameters.
    pub params: &'a BTreeMap<String, String>,
    /// Account id.
    pub account_id: &'a str,
    /// The authorizer's result, when the route has one.
    pub identity: Option<&'a Identity>,
    /// The API key the caller presented on an `api_key_required` route.
    pub api_key: Option<&'a str>,
}

/// `10/Mar/2020:00:03:59 +0000`.
pub fn request_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // humantime: 2020-03-10T00:03:59Z
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let month = s[5..7].parse::<usize>().unwrap_or(1).clamp(1, 12);
    format!(
        "{}/{}/{}:{} +0000",
        &s[8..10],
        MONTHS[month - 1],
        &s[0..4],
        &s[11..19]
    )
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `Content-Type` without parameters, lower case.
pub fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// HTTP API's rule: bodies of text content types reach the function as text, everything else
/// base64-encoded.
pub fn is_text_media(media: Option<&str>) -> bool {
    let Some(m) = media else { return true };
    m.starts_with("text/")
        || m.ends_with("+json")
        || m.ends_with("+xml")
        || matches!(
            m,
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/yaml"
        )
}

/// Whether `media` is one of REST's `binaryMediaTypes` (`*` wildcards allowed).
pub fn matches_media(media: &str, patterns: &[String]) -> bool {
    let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
    patterns.iter().any(|p| {
        let (pty, psub) = p.split_once('/').unwrap_or((p, ""));
        (pty == "*" || pty.eq_ignore_ascii_case(ty))
            && (psub == "*" || psub.eq_ignore_ascii_case(sub))
    })
}

/// The body as the event carries it: `(body, isBase64Encoded)`.
fn body(req: &Request, routed: &Routed) -> (Option<String>, bool) {
    if req.body.is_empty() {
        return (None, false);
    }
    let media = media_type(header(req.headers, "content-type"));
    let encoded = header(req.headers, "content-encoding").is_some_and(|e| e != "identity");
    let binary = match routed.entry.api.kind {
        ApiKind::Http => encoded || !is_text_media(media.as_deref()),
        ApiKind::Rest => media
            .as_deref()
            .is_some_and(|m| matches_media(m, &routed.entry.api.binary_media_types)),
    };
    match std::str::from_utf8(req.body) {
        // Bytes that are not UTF-8 cannot travel as a JSON string without loss.
        Ok(text) if !binary => (Some(text.to_string()), false),
        _ => (
            Some(base64::engine::general_purpose::STANDARD.encode(req.body)),
            true,
        ),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters in order, decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Header values in order of arrival, by name (lower case).
fn header_values(h: &HeaderMap) -> Vec<(String, Vec<String>)> {
    h.keys()
        .map(|name| {
            let values = h
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_string(), values)
        })
        .collect()
}

/// `content-type` → `Content-Type`, for names whose original spelling is unknown.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn domain(req: &Request) -> (String, String) {
    let host = header(req.headers, "host")
        .unwrap_or("localhost")
        .to_string();
    let prefix = host.split('.').next().unwrap_or_default().to_string();
    (host, prefix)
}

fn string_map(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn null_if_empty(v: Value) -> Value {
    match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        _ => v,
    }
}

/// The REST proxy event (payload 1.0).
pub fn v1(req: &Request, routed: &Routed) -> Value {
    let entry = routed.entry;
    let (body, is_base64) = body(req, routed);
    let mut headers = Map::new();
    let mut multi_headers = Map::new();
    for (name, values) in header_values(req.headers) {
        let spelled = req
            .header_case
            .get(&name)
            .cloned()
            .unwrap_or_else(|| title_case(&name));
        if let Some(last) = values.last() {
            headers.insert(spelled.clone(), Value::String(last.clone()));
        }
        multi_headers.insert(spelled, json!(values));
    }
    let pairs = query_pairs(req.query);
    let mut multi_query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &pairs {
        multi_query.entry(k.clone()).or_default().push(v.clone());
    }
    let (domain_name, domain_prefix) = domain(req);
    let stage = &entry.api.stage;
    let mut identity = json!({
        "cognitoIdentityPoolId": null, "accountId": null, "cognitoIdentityId": null,
        "caller": null, "sourceIp": req.source_ip, "principalOrgId": null, "accessKey": null,
        "cognitoAuthenticationType": null, "cognitoAuthenticationProvider": null,
        "userArn": null, "userAgent": header(req.headers, "user-agent"), "user": null,
        "apiKey": routed.api_key, "clientCert": null,
    });
    if let Some(key) = routed.api_key {
        identity["apiKeyId"] = json!(short_id(key, 10));
    }
    let mut context = json!({
        "accountId": routed.account_id,
        "apiId": entry.api_id,
        "resourceId": entry.resource_id(),
        "resourcePath": entry.route.path,
        "httpMethod": req.method,
        "path": format!("/{stage}{}", req.path),
        "stage": stage,
        "protocol": req.protocol,
        "requestId": req.request_id,
        "extendedRequestId": short_id(req.request_id, 16),
        "requestTime": request_time(req.time),
        "requestTimeEpoch": epoch_ms(req.time),
        "domainName": domain_name,
        "domainPrefix": domain_prefix,
        "identity": identity,
    });
    if let Some(id) = routed.identity {
        context["authorizer"] = json!({"claims": id.claims});
    }
    let mut event = json!({
        "resource": entry.route.path,
        "path": decode_path(req.path),
        "httpMethod": req.method,
        "headers": null_if_empty(Value::Object(headers)),
        "multiValueHeaders": null_if_empty(Value::Object(multi_headers)),
        "queryStringParameters": null_if_empty(string_map(pairs.clone())),
        "multiValueQueryStringParameters": null_if_empty(json!(multi_query)),
        "pathParameters": null_if_empty(string_map(routed.params.clone())),
        "stageVariables": null,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    });
    if entry.api.kind == ApiKind::Http {
        event["version"] = json!("1.0");
    }
    event
}

fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The HTTP API event (payload 2.0). Absent members are left out, as API Gateway does.
pub fn v2(req: &Request, routed: &Routed) -> Value {
    let entry = routed.entry;
    let (body, is_base64) = body(req, routed);
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, values) in header_values(req.headers) {
        if name == "cookie" {
            for v in &values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
            }
            continue;
        }
        headers.insert(name, Value::String(values.join(",")));
    }
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in query_pairs(req.query) {
        match query.iter_mut().find(|(name, _)| *name == k) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&v);
            }
            None => query.push((k, v)),
        }
    }
    let (domain_name, domain_prefix) = domain(req);
    let route_key = entry.route_key();
    let mut context = json!({
        "accountId": routed.account_id,
        "apiId": entry.api_id,
        "domainName": domain_name,
        "domainPrefix": domain_prefix,
        "http": {
            "method": req.method,
            "path": decode_path(req.path),
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": header(req.headers, "user-agent").unwrap_or_default(),
        },
        "requestId": req.request_id,
        "routeKey": route_key,
        "stage": entry.api.stage,
        "time": request_time(req.time),
        "timeEpoch": epoch_ms(req.time),
    });
    if let Some(id) = routed.identity {
        context["authorizer"] = json!({"jwt": {"claims": id.claims, "scopes": id.scopes}});
    }
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route_key));
    event.insert("rawPath".into(), json!(req.path));
    event.insert("rawQueryString".into(), json!(req.query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), string_map(query));
    }
    if !routed.params.is_empty() {
        event.insert("pathParameters".into(), string_map(routed.params.clone()));
    }
    event.insert("requestContext".into(), context);
    if let Some(body) = body {
        event.insert("body".into(), json!(body));
    }
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Found, Table};
    use std::time::Duration;

    fn table() -> Table {
        Table::new(
            &serde_json::from_value(json!({
                "schema_version": 1,
                "apis": {
                    "R": {"kind": "rest", "stage": "Prod", "binary_media_types": ["image/*"]},
                    "H": {"kind": "http", "stage": "$default"}
                },
                "routes": [
                    {"api": "R", "method": "ANY", "path": "/r/{proxy+}", "function": "f", "payload_version": "1.0"},
                    {"api": "H", "method": "GET", "path": "/h/{id}", "function": "f", "payload_version": "2.0"}
                ]
            }))
            .unwrap(),
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn build(path: &str, query: &str, h: &HeaderMap, body: &[u8], v2_event: bool) -> Value {
        let t = table();
        let Found::Route(entry, params, _) = t.find("GET", path) else {
            panic!("no route for {path}")
        };
        let case = BTreeMap::from([("x-custom".to_string(), "X-CUSTOM".to_string())]);
        let req = Request {
            method: "GET",
            path,
            query,
            headers: h,
            header_case: &case,
            body,
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
            request_id: "rid",
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_583_798_639_123),
        };
        let identity = Identity {
            claims: Map::from_iter([("sub".to_string(), json!("alice"))]),
            scopes: vec!["read".into()],
        };
        let routed = Routed {
            entry,
            params: &params,
            account_id: "123456789012",
            identity: Some(&identity),
            api_key: None,
        };
        if v2_event {
            v2(&req, &routed)
        } else {
            v1(&req, &routed)
        }
    }

    #[test]
    fn request_time_is_api_gateways() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_583_798_639);
        assert_eq!(request_time(t), "10/Mar/2020:00:03:59 +0000");
    }

    #[test]
    fn v1_has_every_field() {
        let h = headers(&[
            ("host", "localhost:3000"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("user-agent", "ua"),
            ("content-type", "text/plain"),
        ]);
        let e = build("/r/a/b%20c", "x=1&x=2&y=%2F", &h, b"hello", false);
        assert_eq!(e["resource"], "/r/{proxy+}");
        assert_eq!(e["path"], "/r/a/b c");
        assert_eq!(e["httpMethod"], "GET");
        assert_eq!(e["headers"]["X-CUSTOM"], "b");
        assert_eq!(e["headers"]["User-Agent"], "ua");
        assert_eq!(e["multiValueHeaders"]["X-CUSTOM"], json!(["a", "b"]));
        assert_eq!(e["queryStringParameters"], json!({"x": "2", "y": "/"}));
        assert_eq!(
            e["multiValueQueryStringParameters"],
            json!({"x": ["1", "2"], "y": ["/"]})
        );
        assert_eq!(e["pathParameters"], json!({"proxy": "a/b c"}));
        assert_eq!(e["stageVariables"], Value::Null);
        assert_eq!(e["body"], "hello");
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("version").is_none());
        let c = &e["requestContext"];
        assert_eq!(c["path"], "/Prod/r/a/b%20c");
        assert_eq!(c["stage"], "Prod");
        assert_eq!(c["resourcePath"], "/r/{proxy+}");
        assert_eq!(c["requestTime"], "10/Mar/2020:00:03:59 +0000");
        assert_eq!(c["requestTimeEpoch"], 1_583_798_639_123u64);
        assert_eq!(c["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(c["identity"]["userAgent"], "ua");
        assert_eq!(c["domainName"], "localhost:3000");
        assert_eq!(c["accountId"], "123456789012");
        assert_eq!(c["authorizer"]["claims"]["sub"], "alice");
    }

    #[test]
    fn v1_absent_maps_are_null_and_binary_types_are_base64() {
        let h = headers(&[("content-type", "image/png")]);
        let e = build("/r/x", "", &h, &[0, 159, 146, 150], false);
        assert_eq!(e["queryStringParameters"], Value::Null);
        assert_eq!(e["multiValueQueryStringParameters"], Value::Null);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "AJ+Slg==");
        let none = build("/r/x", "", &HeaderMap::new(), b"", false);
        assert_eq!(none["body"], Value::Null);
        assert_eq!(none["headers"], Value::Null);
    }

    #[test]
    fn v2_has_every_field() {
        let h = headers(&[
            ("host", "api.example.com"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("cookie", "c1=v1; c2=v2"),
            ("cookie", "c3=v3"),
            ("user-agent", "ua"),
        ]);
        let e = build("/h/42", "a=1&a=2&b=x%20y", &h, b"", true);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "GET /h/{id}");
        assert_eq!(e["rawPath"], "/h/42");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y");
        assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2", "c3=v3"]));
        assert_eq!(e["headers"]["x-custom"], "a,b");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
        assert_eq!(e["pathParameters"], json!({"id": "42"}));
        assert!(e.get("body").is_none());
        assert!(e.get("stageVariables").is_none());
        assert_eq!(e["isBase64Encoded"], false);
        let c = &e["requestContext"];
        assert_eq!(c["domainName"], "api.example.com");
        assert_eq!(c["domainPrefix"], "api");
        assert_eq!(c["http"]["method"], "GET");
        assert_eq!(c["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(c["http"]["userAgent"], "ua");
        assert_eq!(c["stage"], "$default");
        assert_eq!(c["timeEpoch"], 1_583_798_639_123u64);
        assert_eq!(c["authorizer"]["jwt"]["scopes"], json!(["read"]));
    }

    #[test]
    fn v2_bodies_of_non_text_types_are_base64() {
        let bin = build(
            "/h/1",
            "",
            &headers(&[("content-type", "application/octet-stream")]),
            b"ab",
            true,
        );
        assert_eq!(
            (bin["body"].as_str(), bin["isBase64Encoded"].as_bool()),
            (Some("YWI="), Some(true))
        );
        let json_body = build(
            "/h/1",
            "",
            &headers(&[("content-type", "application/json; charset=utf-8")]),
            b"{}",
            true,
        );
        assert_eq!(json_body["body"], "{}");
        assert_eq!(json_body["isBase64Encoded"], false);
    }

    #[test]
    fn media_types_match_with_wildcards() {
        let p = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(matches_media("image/png", &p));
        assert!(matches_media("application/pdf", &p));
        assert!(!matches_media("text/plain", &p));
        assert!(matches_media("text/plain", &["*/*".to_string()]));
    }
}
