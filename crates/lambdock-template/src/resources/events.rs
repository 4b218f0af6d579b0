//! A function's SAM events: `Api` and `HttpApi` become routes (on the named API or SAM's
//! implicit one, with the API's default authorizer, scopes and API-key rule unless the event
//! overrides them), `Schedule` and `ScheduleV2` become schedules. Routes and schedules of a
//! function with `AutoPublishAlias` call the alias. Other event types are reported in a warning.

use super::api::ApiDefaults;
use super::function::{Compiled, Env};
use super::{Props, R, logical_ref, to_bool, to_string, to_strings};
use crate::manifest::{ApiKind, Route, Schedule};
use crate::yaml::{Node, Value};

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

pub(crate) fn compile(
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
                // An HttpApi event without Path and Method is the API's `$default` route, as SAM
                // makes it: whatever no other route matches, `/` included.
                (None, None, ApiKind::Http) => ("$default".to_string(), "ANY".to_string()),
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
                Some(name) if defaults.authorizers.iter().any(|a| a == name) => {
                    Some(name.to_string())
                }
                Some(name) => {
                    return Err(ctx.err(
                        raw.pos,
                        format!("event {event}: authorizer {name} is not one of {api}'s Auth.Authorizers"),
                    ));
                }
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
            let read: &[&str] = if v2 {
                &[
                    "ScheduleExpression",
                    "ScheduleExpressionTimezone",
                    "Input",
                    "State",
                    "Name",
                    "GroupName",
                ]
            } else {
                &["Schedule", "Input", "Enabled", "State", "Name"]
            };
            let ignored: Vec<&str> = raw
                .as_map()
                .unwrap_or_default()
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !read.contains(k))
                .collect();
            if !ignored.is_empty() {
                // Retry policies, dead-letter queues, start and end dates, flexible windows...
                ctx.warnings.borrow_mut().push(format!(
                    "{} event {event} ({ty}): ignored properties: {}",
                    p.id,
                    ignored.join(", ")
                ));
            }
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
                    group: if v2 { string(&raw, "GroupName")? } else { None },
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
