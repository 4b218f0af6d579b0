//! `AWS::Serverless::Api` (REST) and `AWS::Serverless::HttpApi`, explicit or the implicit
//! `ServerlessRestApi`/`ServerlessHttpApi` SAM creates for events that name no API.
//!
//! Authorizers: an HTTP API's `JwtConfiguration` becomes a JWT authorizer; a REST API's Cognito
//! authorizer (`UserPoolArn`) becomes the platform's own token scheme (the reference
//! implementation's login endpoint issues Cognito-shaped tokens). Lambda and IAM authorizers
//! cannot be honoured here and are refused rather than leaving the routes open.

use std::collections::BTreeMap;

use super::{Props, R, to_string, to_strings, to_u32};
use crate::manifest::{Api, ApiKind, Authorizer, Cors};
use crate::yaml::{Node, Value};

/// What routes of an API inherit.
#[derive(Debug, Clone)]
pub(crate) struct ApiDefaults {
    pub kind: ApiKind,
    pub default_authorizer: Option<String>,
    pub api_key_required: bool,
    /// Default scopes per authorizer.
    pub scopes: BTreeMap<String, Vec<String>>,
}

/// Compiles one API.
pub(crate) fn compile(p: &Props<'_, '_>, kind: ApiKind, ty: &str) -> R<(Api, ApiDefaults)> {
    let implicit = matches!(p.id, "ServerlessRestApi" | "ServerlessHttpApi");
    let stage = match (p.string("StageName")?, kind) {
        (Some(s), _) => s,
        (None, ApiKind::Http) => "$default".to_string(),
        (None, ApiKind::Rest) if implicit => "Prod".to_string(),
        (None, ApiKind::Rest) => return Err(p.ctx.err(p.pos, "StageName is required")),
    };
    let cors = match kind {
        ApiKind::Rest => p.get("Cors")?.map(|c| rest_cors(p, &c)).transpose()?,
        ApiKind::Http => p
            .get("CorsConfiguration")?
            .map(|c| http_cors(p, &c))
            .transpose()?
            .flatten(),
    };
    let mut defaults = ApiDefaults {
        kind,
        default_authorizer: None,
        api_key_required: false,
        scopes: BTreeMap::new(),
    };
    let mut authorizers = BTreeMap::new();
    if let Some(auth) = p.get("Auth")? {
        read_auth(p, kind, &auth, &mut authorizers, &mut defaults)?;
    }
    for key in ["DefinitionBody", "DefinitionUri"] {
        if p.raw(key).is_some() {
            p.ctx.warnings.borrow_mut().push(format!(
                "{} ({ty}): {key} is not read; routes come from the functions' Events",
                p.id
            ));
        }
    }
    // SAM writes the slash of a media type as `~1` (JSON Pointer escaping): `image~1png`.
    let binary_media_types = p
        .strings("BinaryMediaTypes")?
        .into_iter()
        .map(|t| t.replace("~1", "/"))
        .collect();
    p.warn_ignored(ty);
    let api = Api {
        kind,
        stage,
        cors,
        authorizers,
        binary_media_types,
    };
    Ok((api, defaults))
}

fn read_auth(
    p: &Props<'_, '_>,
    kind: ApiKind,
    auth: &Node,
    authorizers: &mut BTreeMap<String, Authorizer>,
    defaults: &mut ApiDefaults,
) -> R<()> {
    let ctx = p.ctx;
    if let Some(list) = auth.get("Authorizers") {
        let entries = list
            .as_map()
            .ok_or_else(|| ctx.err(list.pos, "Auth.Authorizers must be a mapping"))?;
        for (name, def) in entries {
            let unsupported = |what: &str| {
                ctx.err(
                    def.pos,
                    format!("authorizer {name}: {what} authorizers are not supported by Lambdock"),
                )
            };
            if def.get("FunctionArn").is_some() {
                return Err(unsupported("Lambda"));
            }
            let authorizer = match kind {
                ApiKind::Rest if def.get("UserPoolArn").is_some() => Authorizer::Lambdock,
                ApiKind::Rest => return Err(unsupported("this kind of")),
                ApiKind::Http => {
                    let jwt = def
                        .get("JwtConfiguration")
                        .ok_or_else(|| unsupported("this kind of"))?;
                    let issuer = jwt
                        .get("issuer")
                        .ok_or_else(|| ctx.err(jwt.pos, "JwtConfiguration.issuer is required"))?;
                    Authorizer::Jwt {
                        identity_source: match def.get("IdentitySource") {
                            Some(s) => to_string(ctx, s)?,
                            None => "$request.header.Authorization".to_string(),
                        },
                        issuer: to_string(ctx, issuer)?,
                        audience: match jwt.get("audience") {
                            Some(a) => to_strings(ctx, a)?,
                            None => Vec::new(),
                        },
                    }
                }
            };
            if let Some(scopes) = def.get("AuthorizationScopes") {
                defaults
                    .scopes
                    .insert(name.clone(), to_strings(ctx, scopes)?);
            }
            authorizers.insert(name.clone(), authorizer);
        }
    }
    if let Some(default) = auth.get("DefaultAuthorizer") {
        let name = to_string(ctx, default)?;
        if name == "AWS_IAM" {
            return Err(ctx.err(
                default.pos,
                "AWS_IAM authorization is not supported by Lambdock",
            ));
        }
        if !authorizers.contains_key(&name) {
            return Err(ctx.err(
                default.pos,
                format!("DefaultAuthorizer {name} is not one of Auth.Authorizers"),
            ));
        }
        defaults.default_authorizer = Some(name);
    }
    if let Some(key) = auth.get("ApiKeyRequired") {
        defaults.api_key_required = super::to_bool(ctx, key)?;
    }
    if let Some(iam) = auth.get("EnableIamAuthorizer")
        && super::to_bool(ctx, iam)?
    {
        return Err(ctx.err(iam.pos, "IAM authorization is not supported by Lambdock"));
    }
    Ok(())
}

/// REST `Cors`: a quoted origin (`"'*'"`), or `AllowOrigin`/`AllowMethods`/`AllowHeaders`/
/// `MaxAge` strings in API Gateway's quoted, comma-separated form.
fn rest_cors(p: &Props<'_, '_>, c: &Node) -> R<Cors> {
    let ctx = p.ctx;
    let unquote = |s: String| s.trim().trim_matches('\'').to_string();
    let list = |key: &str| -> R<Vec<String>> {
        Ok(match c.get(key) {
            Some(v) => unquote(to_string(ctx, v)?)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => Vec::new(),
        })
    };
    if let Value::Str(origin) = &c.value {
        return Ok(Cors {
            allow_origins: vec![unquote(origin.clone())],
            ..Cors::default()
        });
    }
    Ok(Cors {
        allow_origins: list("AllowOrigin")?,
        allow_methods: list("AllowMethods")?,
        allow_headers: list("AllowHeaders")?,
        expose_headers: Vec::new(),
        max_age_s: match c.get("MaxAge") {
            Some(v) => Some(u64::from(to_u32(
                ctx,
                &Node::str(v.pos, unquote(to_string(ctx, v)?)),
            )?)),
            None => None,
        },
        allow_credentials: match c.get("AllowCredentials") {
            Some(v) => super::to_bool(ctx, v)?,
            None => false,
        },
    })
}

/// HTTP `CorsConfiguration`: `true` (everything allowed) or lists.
fn http_cors(p: &Props<'_, '_>, c: &Node) -> R<Option<Cors>> {
    let ctx = p.ctx;
    if let Value::Bool(on) = c.value {
        let all = vec!["*".to_string()];
        return Ok(on.then(|| Cors {
            allow_origins: all.clone(),
            allow_methods: all.clone(),
            allow_headers: all,
            ..Cors::default()
        }));
    }
    let list =
        |key: &str| -> R<Vec<String>> { c.get(key).map_or(Ok(Vec::new()), |v| to_strings(ctx, v)) };
    Ok(Some(Cors {
        allow_origins: list("AllowOrigins")?,
        allow_methods: list("AllowMethods")?,
        allow_headers: list("AllowHeaders")?,
        expose_headers: list("ExposeHeaders")?,
        max_age_s: c
            .get("MaxAge")
            .map(|v| to_u32(ctx, v).map(u64::from))
            .transpose()?,
        allow_credentials: match c.get("AllowCredentials") {
            Some(v) => super::to_bool(ctx, v)?,
            None => false,
        },
    }))
}
