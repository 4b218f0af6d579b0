//! HTTP routes as API Gateway serves them, on the API port (3000 by default, as
//! `sam local start-api`): the manifest's REST APIs (payload 1.0) and HTTP APIs (payload 2.0 by
//! default) in one route table, with their authorizers, API keys and CORS, in front of the
//! gateway's synchronous invocations.
//!
//! - [`table`]: route matching (literal over `{param}` over `{proxy+}`, methods over `ANY`).
//! - [`event`] and [`response`]: the proxy events and the mapping of results, AWS's errors.
//! - [`auth`]: login, JWT and API keys; [`cors`]: preflights and response headers.
//! - [`openapi`]: `GET /openapi.json`.
//!
//! The table follows hot reloads: it is rebuilt when the gateway's registry changes.

pub mod auth;
pub mod case;
pub mod cors;
pub mod event;
pub mod jwks;
pub mod openapi;
pub mod response;
pub mod table;

mod server;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use lambdock_gateway::errors::LambdaError;
use lambdock_gateway::gateway::{Gateway, MAX_SYNC_REQUEST, new_trace_id};
use lambdock_gateway::registry::Registry;
use lambdock_gateway::run_to_end::RunToEnd;
use lambdock_template::manifest::ApiKind;

use crate::auth::{Auth, AuthConfig, Refusal};
use crate::event::Identity;
use crate::response::{Body, Failure};
use crate::table::{Entry, Found, Table};

pub use server::serve;

/// API Gateway's request payload limit.
pub const MAX_API_PAYLOAD: usize = 10 * 1024 * 1024;

/// Settings of the API port.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long API Gateway waits for the function (29 s on AWS).
    pub integration_timeout: Duration,
    /// Secrets and token settings.
    pub auth: AuthConfig,
}

/// One request, read.
struct Incoming<'a> {
    parts: &'a http::request::Parts,
    body: Bytes,
    peer: SocketAddr,
    header_case: &'a BTreeMap<String, String>,
    request_id: &'a str,
}

/// Settings the API port cannot run with.
#[derive(Debug, thiserror::Error)]
#[error("API port configuration: {0}")]
pub struct ConfigError(pub String);

/// The API port's request handler.
pub struct ApiGateway {
    gateway: Arc<Gateway>,
    timeout: Duration,
    auth: Auth,
    table: Mutex<(Arc<Registry>, Arc<Table>)>,
}

impl std::fmt::Debug for ApiGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiGateway")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The raw path without its first segment (the REST stage).
fn strip_first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

impl ApiGateway {
    /// The API port of `gateway`.
    pub fn new(gateway: Arc<Gateway>, cfg: ApiConfig) -> Result<ApiGateway, ConfigError> {
        let registry = gateway.registry();
        let table = Arc::new(Table::new(&registry.manifest));
        Ok(ApiGateway {
            gateway,
            timeout: cfg.integration_timeout,
            auth: Auth::new(cfg.auth).map_err(|e| ConfigError(format!("route auth: {e}")))?,
            table: Mutex::new((registry, table)),
        })
    }

    /// The route table of the deployment being served.
    pub fn table(&self) -> Arc<Table> {
        let registry = self.gateway.registry();
        let mut cached = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&cached.0, &registry) {
            let table = Arc::new(Table::new(&registry.manifest));
            *cached = (registry, table);
        }
        cached.1.clone()
    }

    /// The route table as `lambdock up` prints it, with URLs under `base_url`.
    pub fn render_routes(&self, base_url: &str) -> String {
        self.table().render(base_url)
    }

    /// Answers one request from `peer`; `header_case` maps its lower-case header names to
    /// their original spelling (see [`case`]).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
        header_case: BTreeMap<String, String>,
    ) -> Result<Response<Body>, Infallible> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = req.into_parts();
        let table = self.table();
        let mut resp = match Limited::new(body, MAX_API_PAYLOAD + 1).collect().await {
            Ok(body) => {
                let incoming = Incoming {
                    parts: &parts,
                    body: body.to_bytes(),
                    peer,
                    header_case: &header_case,
                    request_id: &request_id,
                };
                self.answer(&table, incoming).await
            }
            Err(_) => Failure::TooLarge.response(table.unknown_kind()),
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-amzn-requestid", v.clone());
            resp.headers_mut().insert("apigw-requestid", v);
        }
        tracing::info!(
            request_id,
            method = %parts.method,
            path = parts.uri.path(),
            status = resp.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "api request"
        );
        Ok(resp)
    }

    async fn answer(&self, table: &Table, req: Incoming<'_>) -> Response<Body> {
        let (parts, body) = (req.parts, &req.body);
        let path = parts.uri.path();
        let method = parts.method.as_str();
        if parts.method == Method::POST && path == self.auth.login_path() {
            return self.auth.login(&parts.headers, body);
        }
        if parts.method == Method::GET && path == "/openapi.json" {
            let registry = self.gateway.registry();
            let doc = openapi::document(
                table,
                self.auth.login_path(),
                &registry.region,
                &registry.account_id,
            );
            let mut resp = Response::new(Full::new(Bytes::from(doc.to_string())));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            return resp;
        }
        if parts.method == Method::OPTIONS
            && let Some(resp) = preflight(table, &parts.headers, path)
        {
            return resp;
        }
        let (entry, params, staged) = match table.find(method, path) {
            Found::Route(e, p, staged) => (e, p, staged),
            Found::None(kind) => return Failure::NoRoute.response(kind),
        };
        let origin = header(&parts.headers, "origin");
        let mut resp = self.invoke(entry, &params, &req, staged).await;
        if entry.api.kind == ApiKind::Http
            && let Some(cors) = &entry.api.cors
        {
            cors::decorate(cors, origin, resp.headers_mut());
        }
        resp
    }

    async fn invoke(
        &self,
        entry: &Entry,
        params: &BTreeMap<String, String>,
        req: &Incoming<'_>,
        staged: bool,
    ) -> Response<Body> {
        let (parts, request_id) = (req.parts, req.request_id);
        let kind = entry.api.kind;
        let route = &entry.route;
        let identity: Option<Identity> = match &route.authorizer {
            None => None,
            Some(name) => {
                let Some(authorizer) = entry.api.authorizers.get(name) else {
                    return Failure::Unauthorized.response(kind);
                };
                match self
                    .auth
                    .authorize(authorizer, &parts.headers, &route.authorization_scopes)
                    .await
                {
                    Ok(id) => Some(id),
                    Err(Refusal::Unauthorized) => return Failure::Unauthorized.response(kind),
                    Err(Refusal::Expired) => return Failure::Expired.response(kind),
                    Err(Refusal::Forbidden) => return Failure::Forbidden.response(kind),
                }
            }
        };
        let api_key = if route.api_key_required {
            match self.auth.api_key(&parts.headers) {
                Some(k) => Some(k),
                None => return Failure::Forbidden.response(kind),
            }
        } else {
            None
        };
        let raw_path = parts.uri.path();
        let path = if staged {
            strip_first_segment(raw_path)
        } else {
            raw_path
        };
        let protocol = match parts.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        };
        let registry = self.gateway.registry();
        let request = event::Request {
            method: parts.method.as_str(),
            path,
            query: parts.uri.query().unwrap_or_default(),
            headers: &parts.headers,
            header_case: req.header_case,
            body: &req.body,
            source_ip: req.peer.ip().to_string(),
            protocol,
            request_id,
            time: SystemTime::now(),
        };
        let routed = event::Routed {
            entry,
            params,
            account_id: &registry.account_id,
            identity: identity.as_ref(),
            api_key: api_key.as_deref(),
        };
        let event = if route.payload_version == "1.0" {
            event::v1(&request, &routed)
        } else {
            event::v2(&request, &routed)
        };
        let payload = Bytes::from(event.to_string());
        if payload.len() > MAX_SYNC_REQUEST {
            // Lambda refuses the invoke (RequestTooLargeException) and API Gateway passes 413 on.
            return Failure::TooLarge.response(kind);
        }
        let resolved = match registry.resolve(&route.function, route.qualifier.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(request_id, function = route.function, error = %e, "route's function cannot be invoked");
                return Failure::Internal.response(kind);
            }
        };
        let trace_id =
            header(&parts.headers, "x-amzn-trace-id").map_or_else(new_trace_id, str::to_string);
        // At the integration timeout (or when the caller hangs up) the invocation goes on: the
        // function finishes and its worker goes back to the pool.
        let gateway = self.gateway.clone();
        let (rid, trace) = (request_id.to_string(), trace_id.clone());
        let invocation = RunToEnd::new(async move {
            gateway
                .execute(&HeaderMap::new(), &resolved, payload, &rid, &trace)
                .await
        });
        let outcome = match tokio::time::timeout(self.timeout, invocation).await {
            Err(_) => {
                tracing::warn!(request_id, timeout = ?self.timeout, "integration timed out");
                return Failure::Timeout.response(kind);
            }
            Ok(Err(LambdaError::TooManyRequests { .. })) => {
                return Failure::Throttled.response(kind);
            }
            Ok(Err(e)) => {
                tracing::error!(request_id, error = %e, "invocation failed");
                return Failure::Internal.response(kind);
            }
            Ok(Ok(outcome)) => outcome,
        };
        if let Some(error_type) = &outcome.error_type {
            tracing::warn!(request_id, error_type, "the function failed");
            return Failure::Internal.response(kind);
        }
        let mapped = if route.payload_version == "1.0" {
            response::map_v1(
                &outcome.payload,
                kind,
                header(&parts.headers, "accept"),
                &entry.api.binary_media_types,
            )
        } else {
            response::map_v2(&outcome.payload)
        };
        let mut resp = match mapped {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(request_id, function = route.function, error = %e, "Malformed Lambda proxy response");
                return Failure::Internal.response(kind);
            }
        };
        if kind == ApiKind::Rest
            && let Ok(v) = HeaderValue::from_str(&trace_id)
        {
            resp.headers_mut().insert("x-amzn-trace-id", v);
        }
        resp
    }
}

/// A preflight answered by the API, when the path belongs to an API with CORS: HTTP APIs
/// answer real preflights (`Origin` and `Access-Control-Request-Method`), REST APIs any
/// `OPTIONS` (SAM's mock integration).
fn preflight(table: &Table, headers: &HeaderMap, path: &str) -> Option<Response<Body>> {
    let entries = table.for_path(path);
    let with_cors = entries.iter().find(|e| e.api.cors.is_some())?;
    let cors = with_cors.api.cors.as_ref()?;
    let kind = with_cors.api.kind;
    let is_preflight =
        headers.contains_key("origin") && headers.contains_key("access-control-request-method");
    if kind == ApiKind::Http && !is_preflight {
        return None;
    }
    let methods: Vec<String> = entries
        .iter()
        .filter(|e| e.route.api == with_cors.route.api)
        .map(|e| e.route.method.clone())
        .collect();
    Some(cors::preflight(kind, cors, headers, &methods))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_prefix_is_stripped() {
        assert_eq!(strip_first_segment("/Prod/a/b"), "/a/b");
        assert_eq!(strip_first_segment("/Prod"), "/");
        assert_eq!(strip_first_segment(""), "/");
    }
}
