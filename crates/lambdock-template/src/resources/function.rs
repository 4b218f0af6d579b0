//! `AWS::Serverless::Function` and `AWS::Lambda::Function`: code (a local folder or `.zip`, or
//! an image), runtime, configuration, layers and `AutoPublishAlias`; their events are compiled
//! by [`super::events`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::api::ApiDefaults;
use super::events;
use super::layer::local_path;
use super::{Props, R, to_f64, to_string, to_strings, to_u32};
use crate::manifest::{Code, Function, ImageConfig, Route, Schedule};
use crate::yaml::Node;

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
    resource: Option<&Node>,
) -> R<Compiled> {
    let ctx = p.ctx;
    let serverless = ty == "AWS::Serverless::Function";
    let name = ctx.physical_name(p.id)?;
    p.raw("FunctionName");
    let image = p.string("PackageType")?.as_deref() == Some("Image");
    let CodeParts {
        code,
        runtime,
        handler,
        image_config,
    } = if image {
        image_code(p, serverless, resource)?
    } else {
        zip_code(p, env, serverless)?
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
            // A published layer (Powertools, ...) has no code here; the function may still run
            // if it does not import it, so this is a warning, not an error.
            match env.layers.get(&arn) {
                Some(path) => layers.push(path.clone()),
                None => ctx.warnings.borrow_mut().push(format!(
                    "{} at line {}: layer {arn} is not a layer of this template and is left out",
                    p.id, list.pos.line
                )),
            }
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
    let provisioned = p.raw("ProvisionedConcurrencyConfig").map(|n| n.pos);
    let alias = if serverless {
        p.string("AutoPublishAlias")?
    } else {
        None
    };
    if let (Some(pos), None, true) = (provisioned, &alias, serverless) {
        // SAM puts provisioned concurrency on the alias, so it refuses it without one.
        return Err(ctx.err(pos, "ProvisionedConcurrencyConfig needs AutoPublishAlias"));
    }
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
        build_method: resource
            .and_then(|r| r.get("Metadata")?.get("BuildMethod"))
            .and_then(Node::scalar_string),
    };
    if serverless && let Some(events) = p.raw("Events") {
        let entries = events
            .as_map()
            .ok_or_else(|| ctx.err(events.pos, "Events must be a mapping"))?;
        for (event, def) in entries {
            events::compile(p, env, &mut out, alias.as_deref(), event, def)?;
        }
    }
    p.warn_ignored(ty);
    Ok(out)
}

/// What the package type decides.
struct CodeParts {
    code: Code,
    runtime: String,
    handler: String,
    image_config: Option<ImageConfig>,
}

fn image_code(p: &Props<'_, '_>, serverless: bool, resource: Option<&Node>) -> R<CodeParts> {
    let ctx = p.ctx;
    let uri = if serverless {
        p.string("ImageUri")?
    } else {
        p.get("Code")?
            .and_then(|c| c.get("ImageUri").cloned())
            .map(|u| to_string(ctx, &u))
            .transpose()?
    };
    let uri = uri.ok_or_else(|| {
        ctx.err(
            p.pos,
            "an Image function needs ImageUri (building images from a Dockerfile is not supported)",
        )
    })?;
    let config = p
        .get("ImageConfig")?
        .map(|c| image_config(p, &c))
        .transpose()?;
    // Runtime, Handler and Layers belong to the image. Lambda refuses them on the function
    // itself; from Globals (SAM refuses those too) they are dropped, so a template whose
    // Globals serve its Zip functions can hold an image function as well.
    let own = resource.and_then(|r| r.get("Properties"));
    for key in ["Runtime", "Handler", "Layers"] {
        if let Some(n) = own.and_then(|o| o.get(key)) {
            return Err(ctx.err(n.pos, format!("{key} cannot be set on an Image function")));
        }
        p.raw(key);
    }
    Ok(CodeParts {
        code: Code::Image(uri),
        runtime: String::new(),
        handler: String::new(),
        image_config: config,
    })
}

fn zip_code(p: &Props<'_, '_>, env: &Env<'_>, serverless: bool) -> R<CodeParts> {
    let ctx = p.ctx;
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
    Ok(CodeParts {
        code: Code::Dir(dir),
        runtime,
        handler: p.required_string("Handler")?,
        image_config: None,
    })
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
