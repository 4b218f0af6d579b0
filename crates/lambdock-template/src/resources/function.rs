//! `AWS::Serverless::Function` and `AWS::Lambda::Function`, with the SAM events Lambdock runs:
//! `Api` and `HttpApi` (routes) and `Schedule`/`ScheduleV2` (schedules). Other event types are
//! reported in a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::api::ApiDefaults;
use super::layer::local_path;
use super::{Props, R, logical_ref, to_bool, to_f64, to_string, to_strings, to_u32};
use crate::manifest::{ApiKind, Code, Function, ImageConfig, Route, Schedule};
use crate::yaml::{Node, Value};

/// What a function compiles against.
pub(crate) struct Env<'a> {
    /// The template's folder.
    pub base: &'a Path,
    /// Layer ARN to content path.
    pub layers: &'a BTreeMap<String, PathBuf>,
    /// APIs by logical id.
    pub apis: &'a BTreeMap<String, ApiDefaults>,
    /// Runtime names this platform runs.
    pub runtimes: &'a [String],
}

/// A compiled function and what it brings along.
pub(crate) struct Compiled {
    pub name: String,
    pub function: Function,
    pub routes: Vec<Route>,
    pub schedules: Vec<(String, Schedule)>,
    /// `Metadata.BuildMethod`, when `sam build` would run a builder for this function.
    pub build_method: Option<String>,
}

/// Compiles either function type.
pub(crate) fn compile(
    p: &Props<'_, '_>,
    env: &Env<'_>,
    ty: &str,
    metadata: Option<&Node>,
) -> R<Compiled> {
    let ctx = p.ctx;
    let serverless = ty == "AWS::Serverless::Function";
    let name = ctx.physical_name(p.id)?;
    p.raw("FunctionName");
    let image = p.string("PackageType")?.as_deref() == Some("Image");
    let (code, runtime, handler, image_config) = if image {
        let uri = if serverless {
            p.string("ImageUri")?
        } else {
            p.get("Code")?
                .and_then(|c| c.get("ImageUri").cloned())
                .map(|u| to_string(ctx, &u))
                .transpose()?
        };
        let uri = uri.ok_or_else(|| {
            ctx.err(p.pos, "an Image function needs ImageUri (building images from a Dockerfile is not supported)")
        })?;
        let config = p
            .get("ImageConfig")?
            .map(|c| image_config(p, &c))
            .transpose()?;
        // Runtime, Handler and Layers belong to the image; Globals may still carry them.
        for key in ["Runtime", "Handler", "Layers"] {
            p.raw(key);
        }
        (Code::Image(uri), String::new(), String::new(), config)
    } else {
        let key = if serverless { "CodeUri" } else { "Code" };
        if serverless && p.raw("InlineCode").is_some() {
            return Err(ctx.err(
                p.pos,
                "InlineCode is not supported: put the code in a CodeUri folder",
            ));
        }
        let node = p
            .get(key)?
            .ok_or_else(|| ctx.err(p.pos, format!("{key} is required")))?;
        if let Some(zip_file) = node.get("ZipFile") {
            return Err(ctx.err(
                zip_file.pos,
                "Code.ZipFile is not supported: put the code in a folder and give its path as Code",
            ));
        }
        let dir = local_path(p, env.base, &node, key)?;
        let runtime_node = p.raw("Runtime").cloned();
        let runtime = p.required_string("Runtime")?;
        if !env.runtimes.contains(&runtime) {
            let pos = runtime_node.map_or(p.pos, |n| n.pos);
            return Err(ctx.err(
                pos,
                format!(
                    "runtime {runtime} is not supported; Lambdock runs: {}",
                    env.runtimes.join(", ")
                ),
            ));
        }
        (Code::Dir(dir), runtime, p.required_string("Handler")?, None)
    };
    let environment = match p.get("Environment")? {
        Some(e) => match e.get("Variables") {
            Some(vars) => vars
                .as_map()
                .ok_or_else(|| ctx.err(vars.pos, "Environment.Variables must be a mapping"))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), to_string(ctx, v)?)))
                .collect::<R<_>>()?,
            None => BTreeMap::new(),
        },
        None => BTreeMap::new(),
    };
    let mut layers = Vec::new();
    if !image && let Some(list) = p.get("Layers")? {
        for arn in to_strings(ctx, &list)? {
            let path = env.layers.get(&arn).ok_or_else(|| {
                ctx.err(
                    list.pos,
                    format!("layer {arn} is not a layer of this template"),
                )
            })?;
            layers.push(path.clone());
        }
    }
    let architectures = p.strings("Architectures")?;
    if architectures.len() > 1 {
        return Err(ctx.err(
            p.raw("Architectures").map_or(p.pos, |n| n.pos),
            format!(
                "a function has one architecture, found {architectures:?} (SAM concatenates Globals lists: set Architectures in one place)"
            ),
        ));
    }
    let alias = if serverless {
        p.string("AutoPublishAlias")?
    } else {
        None
    };
    let (versions, aliases) = match &alias {
        Some(a) => (
            vec!["1".to_string()],
            BTreeMap::from([(a.clone(), "1".to_string())]),
        ),
        None => (Vec::new(), BTreeMap::new()),
    };
    let function = Function {
        runtime,
        handler,
        code,
        layers,
        memory_mb: p.u32("MemorySize")?.unwrap_or(128),
        timeout_s: p
            .get("Timeout")?
            .map(|t| to_f64(ctx, &t))
            .transpose()?
            .unwrap_or(3.0),
        ephemeral_storage_mb: p
            .get("EphemeralStorage")?
            .and_then(|e| e.get("Size").cloned())
            .map(|s| to_u32(ctx, &s))
            .transpose()?
            .unwrap_or(512),
        environment,
        reserved_concurrency: p.u32("ReservedConcurrentExecutions")?,
        provisioned_concurrency: p
            .get("ProvisionedConcurrencyConfig")?
            .and_then(|c| c.get("ProvisionedConcurrentExecutions").cloned())
            .map(|n| to_u32(ctx, &n))
            .transpose()?
            .unwrap_or(0),
        description: p.string("Description")?.unwrap_or_default(),
        architectures,
        versions,
        aliases,
        image_config,
    };
    let mut out = Compiled {
        name,
        function,
        routes: Vec::new(),
        schedules: Vec::new(),
        build_method: metadata
            .and_then(|m| m.get("BuildMethod"))
            .and_then(Node::scalar_string),
    };
    if serverless && let Some(events) = p.raw("Events") {
        let entries = events
            .as_map()
            .ok_or_else(|| ctx.err(events.pos, "Events must be a mapping"))?;
        for (event, def) in entries {
            compile_event(p, env, &mut out, alias.as_deref(), event, def)?;
        }
    }
    p.warn_ignored(ty);
    Ok(out)
}

fn image_config(p: &Props<'_, '_>, c: &Node) -> R<ImageConfig> {
    let ctx = p.ctx;
    Ok(ImageConfig {
        entry_point: c
            .get("EntryPoint")
            .map_or(Ok(Vec::new()), |v| to_strings(ctx, v))?,
        command: c
            .get("Command")
            .map_or(Ok(Vec::new()), |v| to_strings(ctx, v))?,
        working_directory: c
            .get("WorkingDirectory")
            .map(|v| to_string(ctx, v))
            .transpose()?,
    })
}

/// Where an event names its API: the explicit `RestApiId`/`ApiId` or SAM's implicit API.
fn event_api(
    p: &Props<'_, '_>,
    env: &Env<'_>,
    props: &Node,
    key: &str,
    implicit: &str,
    kind: ApiKind,
) -> R<(String, ApiDefaults)> {
    let id = match props.get(key) {
        Some(n) => logical_ref(p.ctx, n)?,
        None => implicit.to_string(),
    };
    let pos = props.get(key).map_or(props.pos, |n| n.pos);
    match env.apis.get(&id) {
        Some(defaults) if defaults.kind == kind => Ok((id, defaults.clone())),
        _ => Err(p.ctx.err(
            pos,
            format!(
                "{key} {id} is not an {} of this template",
                match kind {
                    ApiKind::Rest => "AWS::Serverless::Api",
                    ApiKind::Http => "AWS::Serverless::HttpApi",
                }
            ),
        )),
    }
}

fn compile_event(
    p: &Props<'_, '_>,
    env: &Env<'_>,
    out: &mut Compiled,
    alias: Option<&str>,
    event: &str,
    def: &Node,
) -> R<()> {
    let ctx = p.ctx;
    let ty = def
        .get("Type")
        .ok_or_else(|| ctx.err(def.pos, format!("event {event}: Type is required")))?;
    let ty = to_string(ctx, &ctx.eval_some(ty)?)?;
    let raw = def
        .get("Properties")
        .cloned()
        .unwrap_or_else(|| Node::new(def.pos, Value::Map(Vec::new())));
    let qualifier = alias.map(str::to_string);
    let field = |props: &Node, key: &str| -> R<Option<Node>> {
        match props.get(key) {
            Some(n) => ctx.eval(n),
            None => Ok(None),
        }
    };
    let string = |props: &Node, key: &str| -> R<Option<String>> {
        field(props, key)?.map(|n| to_string(ctx, &n)).transpose()
    };
    match ty.as_str() {
        "Api" | "HttpApi" => {
            let (kind, key, implicit) = if ty == "Api" {
                (ApiKind::Rest, "RestApiId", "ServerlessRestApi")
            } else {
                (ApiKind::Http, "ApiId", "ServerlessHttpApi")
            };
            let (api, defaults) = event_api(p, env, &raw, key, implicit, kind)?;
            let path = string(&raw, "Path")?;
            let method = string(&raw, "Method")?;
            let (path, method) = match (path, method, kind) {
                (Some(path), Some(method), _) => (path, method.to_uppercase()),
                // An HttpApi event without Path and Method is the API's catch-all route.
                (None, None, ApiKind::Http) => ("/{proxy+}".to_string(), "ANY".to_string()),
                _ => {
                    return Err(ctx.err(
                        raw.pos,
                        format!("event {event}: Path and Method are required"),
                    ));
                }
            };
            let auth = field(&raw, "Auth")?;
            let named = auth
                .as_ref()
                .and_then(|a| a.get("Authorizer"))
                .map(|a| to_string(ctx, a))
                .transpose()?;
            let authorizer = match named.as_deref() {
                Some("NONE") => None,
                Some("AWS_IAM") => {
                    return Err(ctx.err(
                        raw.pos,
                        format!(
                            "event {event}: AWS_IAM authorization is not supported by Lambdock"
                        ),
                    ));
                }
                Some(name) => Some(name.to_string()),
                None => defaults.default_authorizer.clone(),
            };
            let scopes = match auth.as_ref().and_then(|a| a.get("AuthorizationScopes")) {
                Some(s) => to_strings(ctx, s)?,
                None => authorizer
                    .as_ref()
                    .and_then(|a| defaults.scopes.get(a))
                    .cloned()
                    .unwrap_or_default(),
            };
            let api_key_required = match auth.as_ref().and_then(|a| a.get("ApiKeyRequired")) {
                Some(k) => to_bool(ctx, k)?,
                None => defaults.api_key_required,
            };
            let payload_version = match kind {
                ApiKind::Rest => "1.0".to_string(),
                ApiKind::Http => {
                    string(&raw, "PayloadFormatVersion")?.unwrap_or_else(|| "2.0".into())
                }
            };
            out.routes.push(Route {
                api,
                method,
                path,
                function: out.name.clone(),
                qualifier,
                payload_version,
                authorizer,
                authorization_scopes: scopes,
                api_key_required,
            });
        }
        "Schedule" | "ScheduleV2" => {
            let v2 = ty == "ScheduleV2";
            let expr_key = if v2 { "ScheduleExpression" } else { "Schedule" };
            let expression = string(&raw, expr_key)?.ok_or_else(|| {
                ctx.err(raw.pos, format!("event {event}: {expr_key} is required"))
            })?;
            let input = match field(&raw, "Input")? {
                Some(n) => match &n.value {
                    Value::Str(s) => {
                        serde_json::from_str::<serde_json::Value>(s).map_err(|e| {
                            ctx.err(n.pos, format!("event {event}: Input is not JSON: {e}"))
                        })?;
                        Some(s.clone())
                    }
                    _ => {
                        return Err(ctx.err(
                            n.pos,
                            format!("event {event}: Input must be a JSON text (a string)"),
                        ));
                    }
                },
                None => None,
            };
            let enabled = match (field(&raw, "Enabled")?, string(&raw, "State")?) {
                (Some(e), _) => to_bool(ctx, &e)?,
                (None, Some(state)) => state != "DISABLED",
                (None, None) => true,
            };
            let name = string(&raw, "Name")?.unwrap_or_else(|| format!("{}{event}", p.id));
            out.schedules.push((
                name,
                Schedule {
                    function: out.name.clone(),
                    qualifier,
                    expression,
                    timezone: if v2 {
                        string(&raw, "ScheduleExpressionTimezone")?
                    } else {
                        None
                    },
                    input,
                    enabled,
                    scheduler: v2,
                },
            ));
        }
        other => ctx.warnings.borrow_mut().push(format!(
            "{} event {event}: events of type {other} are not run by Lambdock",
            p.id
        )),
    }
    Ok(())
}
