//! The compiler's driver: template in, [`Manifest`] out, in CloudFormation's order (parameters,
//! conditions, Globals, then resources, each name evaluated when first needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::TemplateError;
use crate::globals::Globals;
use crate::intrinsics::{Ctx, Pseudo, Resource};
use crate::manifest::{ApiKind, Manifest, ManifestError, SCHEMA_VERSION};
use crate::resources::{Props, api, function, layer, storage};
use crate::yaml::{self, Node, Pos};
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

/// The manifest being assembled, and what functions need from the resources before them.
struct Assembly<'a> {
    base: &'a Path,
    opts: &'a CompileOptions,
    manifest: Manifest,
    /// Layer ARN to content path.
    layers: BTreeMap<String, PathBuf>,
    layer_names: BTreeMap<PathBuf, String>,
    apis: BTreeMap<String, api::ApiDefaults>,
    build_methods: BTreeMap<String, String>,
    /// Function name to the logical id and place that declared it.
    origins: BTreeMap<String, (String, Pos)>,
    skipped: Vec<String>,
}

fn build_manifest(
    path: &Path,
    ctx: &Ctx<'_>,
    opts: &CompileOptions,
) -> Result<Compiled, TemplateError> {
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut a = Assembly {
        base,
        opts,
        manifest: Manifest {
            schema_version: SCHEMA_VERSION,
            functions: BTreeMap::new(),
            apis: BTreeMap::new(),
            routes: Vec::new(),
            schedules: BTreeMap::new(),
            buckets: BTreeMap::new(),
            tables: BTreeMap::new(),
        },
        layers: BTreeMap::new(),
        layer_names: BTreeMap::new(),
        apis: BTreeMap::new(),
        build_methods: BTreeMap::new(),
        origins: BTreeMap::new(),
        skipped: Vec::new(),
    };
    // Layers and APIs first: functions refer to them.
    for first_pass in [true, false] {
        for (id, r) in ctx.resources.iter().filter(|(_, r)| r.active) {
            let props = Props::new(ctx, id, r.pos, r.props.as_ref())
                .and_then(|props| a.resource(ctx, id, r, &props, first_pass));
            props.map_err(|e| e.in_resource(id))?;
        }
    }
    let mut warnings = ctx.warnings.borrow().clone();
    if !a.skipped.is_empty() {
        warnings.insert(
            0,
            format!(
                "resources Lambdock does not run (ignored): {}",
                a.skipped.join(", ")
            ),
        );
    }
    a.manifest.validate().map_err(|source| match &source {
        // Point at the function's resource when the manifest's rules name a function.
        ManifestError::Invalid { function, reason } if a.origins.contains_key(function) => {
            let (id, pos) = &a.origins[function];
            ctx.err(*pos, format!("function {function}: {reason}"))
                .in_resource(id)
        }
        _ => TemplateError::Manifest {
            file: path.to_path_buf(),
            source,
        },
    })?;
    Ok(Compiled {
        manifest: a.manifest,
        warnings,
        layer_names: a.layer_names,
        build_methods: a.build_methods,
    })
}

impl Assembly<'_> {
    fn resource(
        &mut self,
        ctx: &Ctx<'_>,
        id: &str,
        r: &Resource<'_>,
        props: &Props<'_, '_>,
        first_pass: bool,
    ) -> Result<(), TemplateError> {
        let ty = r.ty.as_str();
        let twice = |what: &str, name: &str| ctx.err(r.pos, format!("{what} {name} is used twice"));
        match (first_pass, ty) {
            (true, "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion") => {
                let path = layer::compile(props, self.base, ty)?;
                let arn = ctx
                    .reference(r.pos, id)?
                    .and_then(|n| n.scalar_string())
                    .unwrap_or_default();
                self.layer_names
                    .insert(path.clone(), ctx.physical_name(id)?);
                self.layers.insert(arn, path);
            }
            (true, "AWS::Serverless::Api" | "AWS::Serverless::HttpApi") => {
                let kind = if ty == "AWS::Serverless::Api" {
                    ApiKind::Rest
                } else {
                    ApiKind::Http
                };
                let (api, defaults) = api::compile(props, kind, ty)?;
                self.manifest.apis.insert(id.to_string(), api);
                self.apis.insert(id.to_string(), defaults);
            }
            (false, "AWS::Serverless::Function" | "AWS::Lambda::Function") => {
                let env = function::Env {
                    base: self.base,
                    layers: &self.layers,
                    apis: &self.apis,
                    runtimes: &self.opts.runtimes,
                };
                let f = function::compile(props, &env, ty, r.node)?;
                if self.manifest.functions.contains_key(&f.name) {
                    return Err(twice("function name", &f.name));
                }
                for route in f.routes {
                    let key = (&route.api, &route.method, &route.path);
                    if self
                        .manifest
                        .routes
                        .iter()
                        .any(|o| (&o.api, &o.method, &o.path) == key)
                    {
                        return Err(ctx.err(
                            r.pos,
                            format!(
                                "route {} {} on {} is defined twice",
                                route.method, route.path, route.api
                            ),
                        ));
                    }
                    self.manifest.routes.push(route);
                }
                for (name, s) in f.schedules {
                    if self.manifest.schedules.insert(name.clone(), s).is_some() {
                        return Err(twice("schedule name", &name));
                    }
                }
                if let Some(m) = f.build_method {
                    self.build_methods.insert(f.name.clone(), m);
                }
                self.origins.insert(f.name.clone(), (id.to_string(), r.pos));
                self.manifest.functions.insert(f.name, f.function);
            }
            (false, "AWS::S3::Bucket") => {
                let (name, bucket) = storage::bucket(props)?;
                if self.manifest.buckets.insert(name.clone(), bucket).is_some() {
                    return Err(twice("bucket name", &name));
                }
            }
            (false, "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable") => {
                let (name, table) = if ty == "AWS::DynamoDB::Table" {
                    storage::table(props)?
                } else {
                    storage::simple_table(props)?
                };
                if self.manifest.tables.insert(name.clone(), table).is_some() {
                    return Err(twice("table name", &name));
                }
            }
            (
                false,
                "AWS::Serverless::LayerVersion"
                | "AWS::Lambda::LayerVersion"
                | "AWS::Serverless::Api"
                | "AWS::Serverless::HttpApi",
            )
            | (true, _) => {}
            (false, other) => self.skipped.push(format!("{id} ({other})")),
        }
        Ok(())
    }
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
            "Globals:\n  Function:\n    Architectures: [x86_64]\n{FN}      Architectures: [arm64]\n"
        ));
        assert!(e.contains("a function has one architecture"), "{e}");
        let e = err(&format!("{FN}      MemorySize: 64\n"));
        assert!(
            e.starts_with(
                "t.yaml:3:5: resource Fn: function Fn: memory_mb 64 is outside 128-10240"
            ),
            "{e}"
        );
        let e = err(&format!("{FN}      Timeout: soon\n"));
        assert!(
            e.contains("t.yaml:8:16: resource Fn: expected a number, found \"soon\""),
            "{e}"
        );
    }

    #[test]
    fn image_functions_take_no_runtime_but_globals_may_carry_one() {
        let image = "Globals:\n  Function:\n    Runtime: python3.12\nResources:\n  Img:\n    Type: AWS::Serverless::Function\n    Properties:\n      PackageType: Image\n      ImageUri: img:1\n";
        let c = compile_text(image).unwrap();
        assert_eq!(c.manifest.functions["Img"].runtime, "");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let e = err(&format!("{image}      Handler: app.h\n"));
        assert!(
            e.contains("t.yaml:10:16: resource Img: Handler cannot be set on an Image function"),
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
            "{FN}      Events:\n        E: {{Type: HttpApi, Properties: {{Auth: {{Authorizer: Mine}}}}}}\n"
        ));
        assert!(e.contains("t.yaml:9:40: resource Fn: event E: authorizer Mine is not one of ServerlessHttpApi's Auth.Authorizers"), "{e}");
        let e = err(&format!(
            "{FN}      ProvisionedConcurrencyConfig: {{ProvisionedConcurrentExecutions: 1}}\n"
        ));
        assert!(
            e.starts_with(
                "t.yaml:8:37: resource Fn: ProvisionedConcurrencyConfig needs AutoPublishAlias"
            ),
            "{e}"
        );
        let e = err(&format!(
            "{FN}      Events:\n        E: {{Type: Schedule, Properties: {{Schedule: rate(1 minute), Input: 'not json'}}}}\n"
        ));
        assert!(e.contains("event E: Input is not JSON"), "{e}");
    }

    #[test]
    fn api_errors() {
        let e = err("Resources:\n  A: {Type: AWS::Serverless::Api}\n");
        assert!(
            e.contains("t.yaml:2:6: resource A: StageName is required"),
            "{e}"
        );
        let get = "{Type: Api, Properties: {Path: /x, Method: get}}";
        let e = err(&format!(
            "{FN}      Events:\n        A: {get}\n        B: {get}\n"
        ));
        assert!(
            e.contains("resource Fn: route GET /x on ServerlessRestApi is defined twice"),
            "{e}"
        );
        let e = err(&format!(
            "{FN}  Http:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n      Auth:\n        Authorizers:\n          L: {{FunctionArn: x}}\n"
        ));
        assert!(
            e.contains(
                "t.yaml:13:14: resource Http: authorizer L: Lambda authorizers are not supported"
            ),
            "{e}"
        );
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
        let c =
            compile_text("Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n").unwrap();
        assert!(c.manifest.buckets.contains_key("b"));
        let e = err("Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties: [x]\n");
        assert!(
            e.contains("t.yaml:4:17: resource B: Properties must be a mapping"),
            "{e}"
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
    fn published_layers_are_left_out_with_a_warning() {
        let c = compile_text(&format!(
            "{FN}      Layers: [arn:aws:lambda:us-east-1:1:layer:x:1]\n"
        ))
        .unwrap();
        assert!(c.manifest.functions["Fn"].layers.is_empty());
        assert_eq!(
            c.warnings,
            [
                "Fn at line 8: layer arn:aws:lambda:us-east-1:1:layer:x:1 is not a layer of this template and is left out"
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
