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
    let ctx = context(path, root, opts)?;
    build_manifest(path, &ctx, opts)
}

/// Everything up to the resources' properties: parameters, conditions, Globals, the resource
/// table (with SAM's implicit APIs).
pub(crate) fn context<'t>(
    path: &Path,
    root: &'t Node,
    opts: &CompileOptions,
) -> Result<Ctx<'t>, TemplateError> {
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
    Ok(ctx)
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

/// Compiles template text as if it were the file `t.yaml` in the current folder.
#[cfg(test)]
pub(crate) fn compile_text(text: &str) -> Result<Compiled, TemplateError> {
    let root = yaml::parse(Path::new("t.yaml"), text)?;
    compile_node(Path::new("t.yaml"), &root, &CompileOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FN: &str = "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src\n      Handler: app.handler\n      Runtime: python3.12\n";

    fn err(text: &str) -> String {
        compile_text(text).unwrap_err().to_string()
    }

    #[test]
    fn function_errors_name_line_and_resource() {
        let e = err(&FN.replace("python3.12", "nodejs20.x"));
        assert!(e.starts_with("t.yaml:7:16: resource Fn: runtime nodejs20.x is not supported; Lambdock runs: provided,"), "{e}");
        let e = err(&FN.replace("CodeUri: src", "CodeUri: missing/"));
        assert!(
            e.starts_with(
                "t.yaml:5:16: resource Fn: CodeUri \"missing/\": no such folder or .zip file"
            ),
            "{e}"
        );
        let e = err(&FN.replace("      CodeUri: src\n", ""));
        assert!(e.contains("resource Fn: CodeUri is required"), "{e}");
        let e = err(&FN.replace("CodeUri: src", "CodeUri: {Bucket: b, Key: k}"));
        assert!(e.contains("S3 locations are not supported"), "{e}");
        let e = err(&format!(
            "{FN}      Layers: [arn:aws:lambda:us-east-1:1:layer:x:1]\n"
        ));
        assert!(e.contains("t.yaml:8:15: resource Fn: layer arn:aws:lambda:us-east-1:1:layer:x:1 is not a layer of this template"), "{e}");
        let e = err(&format!(
            "Globals:\n  Function:\n    Architectures: [x86_64]\n{FN}      Architectures: [arm64]\n"
        ));
        assert!(e.contains("a function has one architecture"), "{e}");
        let e = err(&format!("{FN}      MemorySize: 64\n"));
        assert!(
            e.contains("function Fn: memory_mb 64 is outside 128-10240"),
            "{e}"
        );
        let e = err(&format!("{FN}      Timeout: soon\n"));
        assert!(
            e.contains("t.yaml:8:16: resource Fn: expected a number, found \"soon\""),
            "{e}"
        );
    }

    #[test]
    fn event_errors() {
        let e = err(&format!(
            "{FN}      Events:\n        E: {{Type: Api, Properties: {{Path: /, Method: get, RestApiId: !Ref Nope}}}}\n"
        ));
        assert!(
            e.contains(
                "resource Fn: RestApiId Nope is not an AWS::Serverless::Api of this template"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{FN}      Events:\n        E: {{Type: Api, Properties: {{Path: /}}}}\n"
        ));
        assert!(e.contains("event E: Path and Method are required"), "{e}");
        let e = err(&format!(
            "{FN}      Events:\n        E: {{Type: Schedule, Properties: {{Schedule: rate(1 minute), Input: 'not json'}}}}\n"
        ));
        assert!(e.contains("event E: Input is not JSON"), "{e}");
    }

    #[test]
    fn template_shape_errors() {
        assert!(
            err("Resources: {}\nOutput: {}\n")
                .contains("t.yaml:2:9: unknown top-level section Output")
        );
        assert!(err("Description: x\n").contains("Resources is required"));
        assert!(
            err("Resources:\n  X: {Properties: {}}\n").contains("resource X: Type is required")
        );
        let e = err(
            "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      KeySchema: [{AttributeName: id, KeyType: HASH}]\n",
        );
        assert!(
            e.contains("t.yaml:5:18: resource T: key attribute id is not in AttributeDefinitions"),
            "{e}"
        );
        let e = err(
            "Resources:\n  A: {Type: AWS::S3::Bucket, Properties: {BucketName: x}}\n  B: {Type: AWS::S3::Bucket, Properties: {BucketName: x}}\n",
        );
        assert!(e.contains("resource B: bucket name x is used twice"), "{e}");
    }

    #[test]
    fn unsupported_resources_and_events_are_warnings() {
        let text = format!(
            "{FN}      Policies: [AWSLambdaBasicExecutionRole]\n      Events:\n        Q: {{Type: SQS, Properties: {{Queue: !GetAtt Queue.Arn}}}}\n  Queue: {{Type: AWS::SQS::Queue}}\n  Role: {{Type: AWS::IAM::Role}}\n"
        );
        let c = compile_text(&text).unwrap();
        assert_eq!(
            c.warnings,
            [
                "resources Lambdock does not run (ignored): Queue (AWS::SQS::Queue), Role (AWS::IAM::Role)",
                "Fn event Q: events of type SQS are not run by Lambdock",
                "Fn (AWS::Serverless::Function): ignored properties: Policies",
            ]
        );
    }

    #[test]
    fn overrides_parse_like_sam() {
        let o = parse_overrides(&["A=1", "B=x=y", "ParameterKey=C,ParameterValue=z"]).unwrap();
        assert_eq!(o["A"], "1");
        assert_eq!(o["B"], "x=y");
        assert_eq!(o["C"], "z");
        assert!(parse_overrides(&["nope"]).is_err());
        assert!(parse_overrides(&["=1"]).is_err());
    }
}
