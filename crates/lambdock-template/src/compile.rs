//! The compiler's driver: template in, [`Manifest`] out, in CloudFormation's order (parameters,
//! conditions, Globals, then resources, each name evaluated when first needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::TemplateError;
use crate::globals::Globals;
use crate::intrinsics::{Ctx, Pseudo, Resource};
use crate::manifest::{ApiKind, Manifest, SCHEMA_VERSION};
use crate::resources::{Props, api, function, layer, storage};
use crate::yaml::{self, Node};
use crate::{parameters, runtimes};

/// How to compile a template.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `--parameter-overrides`, by parameter name.
    pub parameter_overrides: BTreeMap<String, String>,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::StackName`.
    pub stack_name: String,
    /// Runtime names functions may use (the built-in ones plus those a `lambdock.toml` adds).
    pub runtimes: Vec<String>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            parameter_overrides: BTreeMap::new(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            stack_name: "lambdock".into(),
            runtimes: runtimes::builtin(),
        }
    }
}

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The deployment. Code and layer paths are absolute and point at the template's sources
    /// (a `.zip` stays a `.zip` until [`crate::build`] unpacks it).
    pub manifest: Manifest,
    /// What the template asks for that Lambdock does not do.
    pub warnings: Vec<String>,
    /// Layer names by content path, to name the layers' build folders.
    pub layer_names: BTreeMap<PathBuf, String>,
    /// `Metadata.BuildMethod` by function name, for the functions that declare one.
    pub build_methods: BTreeMap<String, String>,
}

const TOP_LEVEL: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Transform",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Globals",
    "Resources",
    "Outputs",
];

/// Compiles the template at `path`.
pub fn compile(path: &Path, opts: &CompileOptions) -> Result<Compiled, TemplateError> {
    let root = yaml::load(path)?;
    compile_node(path, &root, opts)
}

fn compile_node(
    path: &Path,
    root: &Node,
    opts: &CompileOptions,
) -> Result<Compiled, TemplateError> {
    let pseudo = Pseudo {
        region: opts.region.clone(),
        account_id: opts.account_id.clone(),
        stack_name: opts.stack_name.clone(),
    };
    let mut ctx = Ctx::new(path.to_path_buf(), pseudo);
    let top = root
        .as_map()
        .ok_or_else(|| ctx.err(root.pos, "a template is a mapping"))?;
    if let Some((key, node)) = top.iter().find(|(k, _)| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(ctx.err(node.pos, format!("unknown top-level section {key}")));
    }
    parameters::resolve(&mut ctx, root.get("Parameters"), &opts.parameter_overrides)?;
    ctx.mappings = root.get("Mappings");
    if let Some(conditions) = root.get("Conditions") {
        let entries = conditions
            .as_map()
            .ok_or_else(|| ctx.err(conditions.pos, "Conditions must be a mapping"))?;
        ctx.conditions = entries.iter().map(|(k, v)| (k.clone(), v)).collect();
    }
    let globals = Globals::new(&ctx, root.get("Globals"))?;
    let resources = root
        .get("Resources")
        .ok_or_else(|| ctx.err(root.pos, "Resources is required"))?;
    let entries = resources
        .as_map()
        .ok_or_else(|| ctx.err(resources.pos, "Resources must be a mapping"))?;
    for (id, res) in entries {
        let resource = declare(&ctx, &globals, res).map_err(|e| e.in_resource(id))?;
        ctx.resources.insert(id.clone(), resource);
    }
    for (id, ty) in implicit_apis(&ctx) {
        ctx.resources.entry(id.to_string()).or_insert(Resource {
            ty: ty.to_string(),
            props: globals.apply(ty, None),
            pos: resources.pos,
            active: true,
            node: None,
        });
    }
    build_manifest(path, &ctx, opts)
}

fn declare<'t>(
    ctx: &Ctx<'t>,
    globals: &Globals<'_>,
    res: &'t Node,
) -> Result<Resource<'t>, TemplateError> {
    let ty = res
        .get("Type")
        .and_then(Node::as_str)
        .ok_or_else(|| ctx.err(res.pos, "Type is required and must be a string"))?;
    let active = match res.get("Condition") {
        Some(c) => {
            let name = c
                .as_str()
                .ok_or_else(|| ctx.err(c.pos, "Condition takes a condition name"))?;
            ctx.condition(c.pos, name)?
        }
        None => true,
    };
    let props = res.get("Properties");
    let props = if ty.starts_with("AWS::Serverless::") {
        globals.apply(ty, props)
    } else {
        props.cloned()
    };
    Ok(Resource {
        ty: ty.to_string(),
        props,
        pos: res.pos,
        active,
        node: Some(res),
    })
}

/// SAM's implicit APIs: `ServerlessRestApi` when an `Api` event names no `RestApiId`,
/// `ServerlessHttpApi` when an `HttpApi` event names no `ApiId`.
fn implicit_apis(ctx: &Ctx<'_>) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let events = ctx
        .resources
        .values()
        .filter(|r| r.active && r.ty == "AWS::Serverless::Function")
        .filter_map(|r| r.props.as_ref()?.get("Events")?.as_map().map(<[_]>::to_vec))
        .flatten();
    for (_, event) in events {
        let props = event.get("Properties");
        let names = |key: &str| props.and_then(|p| p.get(key)).is_some();
        let implicit = match event.get("Type").and_then(Node::as_str) {
            Some("Api") if !names("RestApiId") => ("ServerlessRestApi", "AWS::Serverless::Api"),
            Some("HttpApi") if !names("ApiId") => ("ServerlessHttpApi", "AWS::Serverless::HttpApi"),
            _ => continue,
        };
        if !out.contains(&implicit) {
            out.push(implicit);
        }
    }
    out
}

fn build_manifest(
    path: &Path,
    ctx: &Ctx<'_>,
    opts: &CompileOptions,
) -> Result<Compiled, TemplateError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let mut manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        functions: BTreeMap::new(),
        apis: BTreeMap::new(),
        routes: Vec::new(),
        schedules: BTreeMap::new(),
        buckets: BTreeMap::new(),
        tables: BTreeMap::new(),
    };
    let mut layers = BTreeMap::new();
    let mut layer_names = BTreeMap::new();
    let mut api_defaults = BTreeMap::new();
    let mut build_methods = BTreeMap::new();
    let mut skipped = Vec::new();
    let active = || ctx.resources.iter().filter(|(_, r)| r.active);
    // Layers and APIs first: functions refer to them.
    for pass in 0..2 {
        for (id, r) in active() {
            let props =
                Props::new(ctx, id, r.pos, r.props.as_ref()).map_err(|e| e.in_resource(id))?;
            let ty = r.ty.as_str();
            let result: Result<(), TemplateError> = (|| {
                match (pass, ty) {
                    (0, "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion") => {
                        let path = layer::compile(&props, base, ty)?;
                        let arn = ctx
                            .reference(r.pos, id)?
                            .and_then(|n| n.as_str().map(str::to_string))
                            .unwrap_or_default();
                        layer_names.insert(path.clone(), ctx.physical_name(id)?);
                        layers.insert(arn, path);
                    }
                    (0, "AWS::Serverless::Api" | "AWS::Serverless::HttpApi") => {
                        let kind = if ty == "AWS::Serverless::Api" {
                            ApiKind::Rest
                        } else {
                            ApiKind::Http
                        };
                        let (api, defaults) = api::compile(&props, kind, ty)?;
                        manifest.apis.insert(id.clone(), api);
                        api_defaults.insert(id.clone(), defaults);
                    }
                    (1, "AWS::Serverless::Function" | "AWS::Lambda::Function") => {
                        let env = function::Env {
                            base,
                            layers: &layers,
                            apis: &api_defaults,
                            runtimes: &opts.runtimes,
                        };
                        let metadata = r.node.and_then(|n| n.get("Metadata"));
                        let f = function::compile(&props, &env, ty, metadata)?;
                        if manifest.functions.contains_key(&f.name) {
                            return Err(
                                ctx.err(r.pos, format!("function name {} is used twice", f.name))
                            );
                        }
                        if let Some(m) = f.build_method {
                            build_methods.insert(f.name.clone(), m);
                        }
                        manifest.routes.extend(f.routes);
                        for (name, s) in f.schedules {
                            if manifest.schedules.insert(name.clone(), s).is_some() {
                                return Err(
                                    ctx.err(r.pos, format!("schedule name {name} is used twice"))
                                );
                            }
                        }
                        manifest.functions.insert(f.name, f.function);
                    }
                    (1, "AWS::S3::Bucket") => {
                        let (name, bucket) = storage::bucket(&props)?;
                        if manifest.buckets.insert(name.clone(), bucket).is_some() {
                            return Err(ctx.err(r.pos, format!("bucket name {name} is used twice")));
                        }
                    }
                    (1, "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable") => {
                        let (name, table) = if ty == "AWS::DynamoDB::Table" {
                            storage::table(&props)?
                        } else {
                            storage::simple_table(&props)?
                        };
                        if manifest.tables.insert(name.clone(), table).is_some() {
                            return Err(ctx.err(r.pos, format!("table name {name} is used twice")));
                        }
                    }
                    (
                        1,
                        "AWS::Serverless::LayerVersion"
                        | "AWS::Lambda::LayerVersion"
                        | "AWS::Serverless::Api"
                        | "AWS::Serverless::HttpApi",
                    )
                    | (0, _) => {}
                    (_, other) => skipped.push(format!("{id} ({other})")),
                }
                Ok(())
            })();
            result.map_err(|e| e.in_resource(id))?;
        }
    }
    let mut warnings = ctx.warnings.borrow().clone();
    if !skipped.is_empty() {
        warnings.insert(
            0,
            format!(
                "resources Lambdock does not run (ignored): {}",
                skipped.join(", ")
            ),
        );
    }
    manifest
        .validate()
        .map_err(|source| TemplateError::Manifest {
            file: path.to_path_buf(),
            source,
        })?;
    Ok(Compiled {
        manifest,
        warnings,
        layer_names,
        build_methods,
    })
}

/// Parses `--parameter-overrides` the way `sam deploy` does: `Key=Value` words, or the
/// CloudFormation form `ParameterKey=Key,ParameterValue=Value`.
pub fn parse_overrides<S: AsRef<str>>(words: &[S]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for word in words {
        let word = word.as_ref();
        let (key, value) = if let Some(rest) = word.strip_prefix("ParameterKey=") {
            rest.split_once(",ParameterValue=")
                .ok_or_else(|| format!("{word:?}: expected ParameterKey=K,ParameterValue=V"))?
        } else {
            word.split_once('=')
                .ok_or_else(|| format!("{word:?}: expected Key=Value"))?
        };
        if key.is_empty() {
            return Err(format!("{word:?}: empty parameter name"));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) fn compile_text(text: &str, opts: &CompileOptions) -> Result<Compiled, TemplateError> {
    let root = yaml::parse(Path::new("t.yaml"), text)?;
    compile_node(Path::new("t.yaml"), &root, opts)
}
