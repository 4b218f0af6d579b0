//! Intrinsic functions, conditions and references, evaluated the way CloudFormation does at
//! stack creation, with what a Lambdock deployment gives for each resource (the function name
//! for `Ref` of a function, `arn:aws:lambda:...` for its `Arn`, ...).
//!
//! Evaluation is lazy: a resource's physical name is evaluated the first time something refers
//! to it, so names may themselves use `!Sub`/`!Ref`. A stack of what is being evaluated catches
//! cycles (`A`'s name refers to `B`'s, which refers to `A`) and reports the chain.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;

use crate::error::{TemplateError, at};
use crate::yaml::{Node, Pos, Value};

/// The values of CloudFormation's pseudo parameters for this deployment.
#[derive(Debug, Clone)]
pub struct Pseudo {
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::StackName`.
    pub stack_name: String,
}

/// One resource of the template, as the evaluator sees it.
#[derive(Debug)]
pub(crate) struct Resource<'t> {
    /// `Type`.
    pub ty: String,
    /// `Properties` (after Globals), absent for the implicit APIs SAM creates.
    pub props: Option<Node>,
    /// Where the resource is declared.
    pub pos: Pos,
    /// `false` when its `Condition` is false: it is not created.
    pub active: bool,
    /// The whole resource node, for `Metadata` and `Condition`.
    pub node: Option<&'t Node>,
}

/// Everything intrinsics can refer to.
pub(crate) struct Ctx<'t> {
    pub file: PathBuf,
    pub pseudo: Pseudo,
    pub params: BTreeMap<String, Node>,
    pub conditions: BTreeMap<String, &'t Node>,
    pub mappings: Option<&'t Node>,
    pub resources: BTreeMap<String, Resource<'t>>,
    pub warnings: RefCell<Vec<String>>,
    condition_values: RefCell<BTreeMap<String, bool>>,
    names: RefCell<BTreeMap<String, String>>,
    in_progress: RefCell<Vec<String>>,
}

type R<T> = Result<T, TemplateError>;

impl<'t> Ctx<'t> {
    pub fn new(file: PathBuf, pseudo: Pseudo) -> Ctx<'t> {
        Ctx {
            file,
            pseudo,
            params: BTreeMap::new(),
            conditions: BTreeMap::new(),
            mappings: None,
            resources: BTreeMap::new(),
            warnings: RefCell::new(Vec::new()),
            condition_values: RefCell::new(BTreeMap::new()),
            names: RefCell::new(BTreeMap::new()),
            in_progress: RefCell::new(Vec::new()),
        }
    }

    pub fn err(&self, pos: Pos, message: impl Into<String>) -> TemplateError {
        at(&self.file, pos, message)
    }

    fn partition(&self) -> &'static str {
        if self.pseudo.region.starts_with("cn-") {
            "aws-cn"
        } else if self.pseudo.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    fn url_suffix(&self) -> &'static str {
        if self.pseudo.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }

    /// Evaluates every intrinsic in `node`. `None` is `AWS::NoValue`: the caller drops the key
    /// or list element that held it.
    pub fn eval(&self, node: &Node) -> R<Option<Node>> {
        if let Some((name, arg)) = node.intrinsic() {
            return self.call(node.pos, name, arg);
        }
        Ok(Some(match &node.value {
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.extend(self.eval(item)?);
                }
                Node::new(node.pos, Value::List(out))
            }
            Value::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    if let Some(v) = self.eval(v)? {
                        out.push((k.clone(), v));
                    }
                }
                Node::new(node.pos, Value::Map(out))
            }
            _ => node.clone(),
        }))
    }

    /// Evaluates a node that must yield a value (not `AWS::NoValue`).
    pub fn eval_some(&self, node: &Node) -> R<Node> {
        self.eval(node)?
            .ok_or_else(|| self.err(node.pos, "AWS::NoValue is not allowed here"))
    }

    /// Evaluates a node that must yield a string (numbers and booleans are turned into one).
    pub fn eval_string(&self, node: &Node) -> R<String> {
        let v = self.eval_some(node)?;
        v.scalar_string()
            .ok_or_else(|| self.err(node.pos, format!("expected a string, found {}", v.kind())))
    }

    fn eval_list(&self, node: &Node, what: &str) -> R<Vec<Node>> {
        match self.eval_some(node)?.value {
            Value::List(items) => Ok(items),
            _ => Err(self.err(node.pos, format!("{what} takes a list"))),
        }
    }

    fn args<'n>(&self, pos: Pos, name: &str, arg: &'n Node, n: usize) -> R<&'n [Node]> {
        match &arg.value {
            Value::List(items) if items.len() == n => Ok(items),
            _ => Err(self.err(pos, format!("{name} takes a list of {n} elements"))),
        }
    }

    fn call(&self, pos: Pos, name: &str, arg: &Node) -> R<Option<Node>> {
        let s = |v: String| Ok(Some(Node::str(pos, v)));
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| self.err(pos, "Ref takes the name of a parameter or resource"))?;
                self.reference(pos, target)
            }
            "Fn::GetAtt" => {
                let (id, attr) = match &arg.value {
                    Value::Str(s) => match s.split_once('.') {
                        Some((id, attr)) => (id.to_string(), attr.to_string()),
                        None => {
                            return Err(self.err(pos, format!("Fn::GetAtt {s:?} is not Resource.Attribute")));
                        }
                    },
                    Value::List(items) if items.len() == 2 => {
                        let id = items[0].as_str().ok_or_else(|| {
                            self.err(items[0].pos, "Fn::GetAtt takes a resource's logical id first")
                        })?;
                        (id.to_string(), self.eval_string(&items[1])?)
                    }
                    _ => return Err(self.err(pos, "Fn::GetAtt takes [Resource, Attribute] or \"Resource.Attribute\"")),
                };
                s(self.attribute(pos, &id, &attr)?)
            }
            "Fn::Sub" => s(self.sub(pos, arg)?),
            "Fn::Join" => {
                let a = self.args(pos, name, arg, 2)?;
                let delimiter = self.eval_string(&a[0])?;
                let parts = self
                    .eval_list(&a[1], "Fn::Join")?
                    .iter()
                    .map(|p| {
                        p.scalar_string().ok_or_else(|| {
                            self.err(p.pos, format!("Fn::Join joins strings, found {}", p.kind()))
                        })
                    })
                    .collect::<R<Vec<_>>>()?;
                s(parts.join(&delimiter))
            }
            "Fn::Select" => {
                let a = self.args(pos, name, arg, 2)?;
                let index = self.eval_string(&a[0])?;
                let index: usize = index
                    .parse()
                    .map_err(|_| self.err(a[0].pos, format!("Fn::Select index {index:?} is not a number")))?;
                let items = self.eval_list(&a[1], "Fn::Select")?;
                let len = items.len();
                items.into_iter().nth(index).map(Some).ok_or_else(|| {
                    self.err(pos, format!("Fn::Select index {index} is out of range (list of {len})"))
                })
            }
            "Fn::Split" => {
                let a = self.args(pos, name, arg, 2)?;
                let delimiter = self.eval_string(&a[0])?;
                if delimiter.is_empty() {
                    return Err(self.err(a[0].pos, "Fn::Split needs a non-empty delimiter"));
                }
                let source = self.eval_string(&a[1])?;
                let parts = source.split(&delimiter).map(|p| Node::str(pos, p)).collect();
                Ok(Some(Node::new(pos, Value::List(parts))))
            }
            "Fn::If" => {
                let a = self.args(pos, name, arg, 3)?;
                let cond = a[0]
                    .as_str()
                    .ok_or_else(|| self.err(a[0].pos, "Fn::If takes a condition name first"))?;
                let branch = if self.condition(a[0].pos, cond)? { &a[1] } else { &a[2] };
                self.eval(branch)
            }
            "Fn::FindInMap" => {
                let a = self.args(pos, name, arg, 3)?;
                let keys = a.iter().map(|k| self.eval_string(k)).collect::<R<Vec<_>>>()?;
                let mut node = self
                    .mappings
                    .ok_or_else(|| self.err(pos, "Fn::FindInMap: the template has no Mappings"))?;
                for (key, arg) in keys.iter().zip(a) {
                    node = node.get(key).ok_or_else(|| {
                        self.err(arg.pos, format!("Fn::FindInMap: no key {key:?} in Mappings"))
                    })?;
                }
                self.eval(node)
            }
            "Fn::Base64" => s(base64::engine::general_purpose::STANDARD.encode(self.eval_string(arg)?)),
            "Fn::GetAZs" => {
                let region = self.eval_string(arg)?;
                let region = if region.is_empty() { self.pseudo.region.clone() } else { region };
                let zones = ["a", "b", "c"]
                    .iter()
                    .map(|z| Node::str(pos, format!("{region}{z}")))
                    .collect();
                Ok(Some(Node::new(pos, Value::List(zones))))
            }
            "Fn::Length" => {
                let n = self.eval_list(arg, "Fn::Length")?.len();
                Ok(Some(Node::new(pos, Value::Int(n as i64))))
            }
            "Fn::ToJsonString" => s(self.eval_some(arg)?.to_json().to_string()),
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" => Err(self.err(
                pos,
                format!("{name} is a condition function: use it in Conditions or Fn::If's condition"),
            )),
            "Fn::ImportValue" => Err(self.err(
                pos,
                "Fn::ImportValue is not supported: a Lambdock deployment has no other stacks to import from",
            )),
            other => Err(self.err(pos, format!("unknown or unsupported intrinsic function {other}"))),
        }
    }

    /// `Fn::Sub`, both forms.
    fn sub(&self, pos: Pos, arg: &Node) -> R<String> {
        let (template, vars) = match &arg.value {
            Value::Str(t) => (t.as_str(), BTreeMap::new()),
            Value::List(items) if items.len() == 2 => {
                let t = items[0]
                    .as_str()
                    .ok_or_else(|| self.err(items[0].pos, "Fn::Sub takes a string first"))?;
                let map = items[1].as_map().ok_or_else(|| {
                    self.err(items[1].pos, "Fn::Sub takes a mapping of variables second")
                })?;
                let mut vars = BTreeMap::new();
                for (k, v) in map {
                    vars.insert(k.as_str(), v);
                }
                (t, vars)
            }
            _ => return Err(self.err(pos, "Fn::Sub takes a string or [string, {variables}]")),
        };
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.err(pos, format!("Fn::Sub: unclosed ${{ in {template:?}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                out.push_str(&self.sub_var(pos, name.trim(), &vars)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn sub_var(&self, pos: Pos, name: &str, vars: &BTreeMap<&str, &Node>) -> R<String> {
        if let Some(v) = vars.get(name) {
            return self.eval_string(v);
        }
        let value = match name.split_once('.') {
            Some((id, attr)) if !name.starts_with("AWS::") => {
                Node::str(pos, self.attribute(pos, id, attr)?)
            }
            _ => self
                .reference(pos, name)?
                .ok_or_else(|| self.err(pos, format!("Fn::Sub: ${{{name}}} is AWS::NoValue")))?,
        };
        value.scalar_string().ok_or_else(|| {
            self.err(
                pos,
                format!("Fn::Sub: ${{{name}}} is {}, not a string", value.kind()),
            )
        })
    }

    /// `Ref`.
    pub fn reference(&self, pos: Pos, name: &str) -> R<Option<Node>> {
        let s = |v: String| Ok(Some(Node::str(pos, v)));
        match name {
            "AWS::Region" => return s(self.pseudo.region.clone()),
            "AWS::AccountId" => return s(self.pseudo.account_id.clone()),
            "AWS::StackName" => return s(self.pseudo.stack_name.clone()),
            "AWS::StackId" => {
                return s(format!(
                    "arn:{}:cloudformation:{}:{}:stack/{}/lambdock",
                    self.partition(),
                    self.pseudo.region,
                    self.pseudo.account_id,
                    self.pseudo.stack_name
                ));
            }
            "AWS::Partition" => return s(self.partition().into()),
            "AWS::URLSuffix" => return s(self.url_suffix().into()),
            "AWS::NoValue" => return Ok(None),
            "AWS::NotificationARNs" => return Ok(Some(Node::new(pos, Value::List(Vec::new())))),
            _ => {}
        }
        if let Some(v) = self.params.get(name) {
            return Ok(Some(Node::new(pos, v.value.clone())));
        }
        let resource = self.resource(pos, name)?;
        let value = match resource.ty.as_str() {
            "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion" => {
                self.layer_arn(name)?
            }
            "AWS::Serverless::Api" | "AWS::Serverless::HttpApi" => {
                api_id(&self.pseudo.stack_name, name)
            }
            ty if name_property(ty).is_some() => self.physical_name(name)?,
            _ => name.to_string(),
        };
        s(value)
    }

    fn resource(&self, pos: Pos, id: &str) -> R<&Resource<'t>> {
        let resource = self.resources.get(id).ok_or_else(|| {
            self.err(
                pos,
                format!("unknown Ref {id}: not a parameter, resource or pseudo parameter"),
            )
        })?;
        if !resource.active {
            return Err(self.err(pos, format!("{id} is not created: its Condition is false")));
        }
        Ok(resource)
    }

    /// `Fn::GetAtt`.
    pub fn attribute(&self, pos: Pos, id: &str, attr: &str) -> R<String> {
        let resource = self
            .resources
            .get(id)
            .ok_or_else(|| self.err(pos, format!("Fn::GetAtt: unknown resource {id}")))?;
        let resource = self.resource(pos, id).map(|_| resource)?;
        let (p, region, account) = (
            self.partition(),
            &self.pseudo.region,
            &self.pseudo.account_id,
        );
        let bad = || {
            self.err(
                pos,
                format!("Fn::GetAtt: {} {id} has no attribute {attr}", resource.ty),
            )
        };
        Ok(match (resource.ty.as_str(), attr) {
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                format!(
                    "arn:{p}:lambda:{region}:{account}:function:{}",
                    self.physical_name(id)?
                )
            }
            ("AWS::Lambda::LayerVersion", "LayerVersionArn") => self.layer_arn(id)?,
            ("AWS::S3::Bucket", "Arn") => format!("arn:{p}:s3:::{}", self.physical_name(id)?),
            ("AWS::S3::Bucket", "DomainName") => {
                format!("{}.s3.{}", self.physical_name(id)?, self.url_suffix())
            }
            ("AWS::S3::Bucket", "RegionalDomainName") => {
                format!(
                    "{}.s3.{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::S3::Bucket", "DualStackDomainName") => {
                format!(
                    "{}.s3.dualstack.{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::S3::Bucket", "WebsiteURL") => {
                format!(
                    "http://{}.s3-website-{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable", "Arn") => {
                format!(
                    "arn:{p}:dynamodb:{region}:{account}:table/{}",
                    self.physical_name(id)?
                )
            }
            ("AWS::DynamoDB::Table", "StreamArn") => format!(
                "arn:{p}:dynamodb:{region}:{account}:table/{}/stream/lambdock",
                self.physical_name(id)?
            ),
            ("AWS::Serverless::Api", "RootResourceId") => {
                api_id(&self.pseudo.stack_name, &format!("{id}/"))
            }
            ("AWS::Serverless::HttpApi", "ApiId") => api_id(&self.pseudo.stack_name, id),
            ("AWS::Serverless::HttpApi", "ApiEndpoint") => format!(
                "https://{}.execute-api.{region}.{}",
                api_id(&self.pseudo.stack_name, id),
                self.url_suffix()
            ),
            (ty, _)
                if ty.starts_with("AWS::Serverless::")
                    || ty == "AWS::Lambda::Function"
                    || ty == "AWS::S3::Bucket"
                    || ty == "AWS::DynamoDB::Table" =>
            {
                return Err(bad());
            }
            (ty, _) => {
                let service = ty.split("::").nth(1).unwrap_or("unknown").to_lowercase();
                self.warnings.borrow_mut().push(format!(
                    "Fn::GetAtt {id}.{attr} at line {}: {ty} is not run by Lambdock; using a placeholder ARN",
                    pos.line
                ));
                format!("arn:{p}:{service}:{region}:{account}:{id}")
            }
        })
    }

    fn layer_arn(&self, id: &str) -> R<String> {
        Ok(format!(
            "arn:{}:lambda:{}:{}:layer:{}:1",
            self.partition(),
            self.pseudo.region,
            self.pseudo.account_id,
            self.physical_name(id)?
        ))
    }

    /// Runs `f` with `key` marked in progress, refusing to enter it twice (a cycle).
    fn guarded<T>(&self, pos: Pos, key: String, f: impl FnOnce() -> R<T>) -> R<T> {
        if self.in_progress.borrow().contains(&key) {
            let mut chain = self.in_progress.borrow().clone();
            let first = chain.iter().position(|k| *k == key).unwrap_or(0);
            chain.drain(..first);
            chain.push(key);
            return Err(self.err(pos, format!("circular reference: {}", chain.join(" -> "))));
        }
        self.in_progress.borrow_mut().push(key);
        let out = f();
        self.in_progress.borrow_mut().pop();
        out
    }

    /// The name a resource gets: its name property when set, else the logical id (lower-cased
    /// for buckets, whose names must be).
    pub fn physical_name(&self, id: &str) -> R<String> {
        if let Some(name) = self.names.borrow().get(id) {
            return Ok(name.clone());
        }
        let resource = self
            .resources
            .get(id)
            .ok_or_else(|| self.err(Pos::default(), format!("unknown resource {id}")))?;
        let property = name_property(&resource.ty);
        let explicit = match (property, &resource.props) {
            (Some(p), Some(props)) => props.get(p),
            _ => None,
        };
        let name = match explicit {
            Some(node) => self
                .guarded(node.pos, id.to_string(), || self.eval_string(node))
                .map_err(|e| e.in_resource(id))?,
            None if resource.ty == "AWS::S3::Bucket" => id.to_lowercase(),
            None => id.to_string(),
        };
        self.names.borrow_mut().insert(id.to_string(), name.clone());
        Ok(name)
    }

    /// The value of a named condition.
    pub fn condition(&self, pos: Pos, name: &str) -> R<bool> {
        if let Some(v) = self.condition_values.borrow().get(name) {
            return Ok(*v);
        }
        let node = *self
            .conditions
            .get(name)
            .ok_or_else(|| self.err(pos, format!("unknown condition {name}")))?;
        let value = self.guarded(pos, format!("Condition {name}"), || {
            self.eval_condition(node)
        })?;
        self.condition_values
            .borrow_mut()
            .insert(name.to_string(), value);
        Ok(value)
    }

    fn eval_condition(&self, node: &Node) -> R<bool> {
        if let Some(name) = node
            .get("Condition")
            .filter(|_| node.as_map().is_some_and(|m| m.len() == 1))
        {
            let name = name
                .as_str()
                .ok_or_else(|| self.err(name.pos, "Condition takes a condition name"))?;
            return self.condition(node.pos, name);
        }
        let pos = node.pos;
        match node.intrinsic() {
            Some(("Fn::Equals", arg)) => {
                let a = self.args(pos, "Fn::Equals", arg, 2)?;
                let (x, y) = (self.eval_some(&a[0])?, self.eval_some(&a[1])?);
                Ok(match (x.scalar_string(), y.scalar_string()) {
                    (Some(x), Some(y)) => x == y,
                    _ => x.to_json() == y.to_json(),
                })
            }
            Some((op @ ("Fn::And" | "Fn::Or"), arg)) => {
                let items = match &arg.value {
                    Value::List(items) if (2..=10).contains(&items.len()) => items,
                    _ => {
                        return Err(
                            self.err(pos, format!("{op} takes a list of 2 to 10 conditions"))
                        );
                    }
                };
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.eval_condition(item)?);
                }
                Ok(if op == "Fn::And" {
                    values.iter().all(|v| *v)
                } else {
                    values.iter().any(|v| *v)
                })
            }
            Some(("Fn::Not", arg)) => {
                let a = self.args(pos, "Fn::Not", arg, 1)?;
                Ok(!self.eval_condition(&a[0])?)
            }
            _ => Err(self.err(
                pos,
                "a condition is Fn::Equals, Fn::And, Fn::Or, Fn::Not or {Condition: Name}",
            )),
        }
    }
}

/// The property that names a resource of this type, for the types Lambdock creates.
pub(crate) fn name_property(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
        "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion" => "LayerName",
        "AWS::S3::Bucket" => "BucketName",
        "AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable" => "TableName",
        _ => return None,
    })
}

/// A stable 10-character API id (API Gateway ids are 10 lower-case letters and digits): the
/// same stack and logical id always give the same id, so URLs survive redeploys.
pub(crate) fn api_id(stack: &str, logical_id: &str) -> String {
    // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in stack.bytes().chain([0]).chain(logical_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let d = DIGITS[(h % 36) as usize] as char;
            h /= 36;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::{Value as J, json};

    use crate::compile::{CompileOptions, context};
    use crate::yaml::parse;

    const BASE: &str = r#"
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Size: {Type: Number, Default: 256, MinValue: 128, MaxValue: 1024}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
  Ports: {Type: List<Number>, Default: "80,443"}
  Prefix: {Type: String, Default: app, AllowedPattern: "[a-z]+"}
Mappings:
  Sizes:
    dev: {memory: 128}
    prod: {memory: 1024}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [{Condition: IsProd}]
  Both: !And [{Condition: IsDev}, !Equals [!Ref Prefix, app]]
  Either: !Or [{Condition: IsProd}, !Equals [x, y]]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-${Prefix}-fn"
      Events:
        Get: {Type: Api, Properties: {Path: /, Method: get}}
  Bucket: {Type: AWS::S3::Bucket}
  Named: {Type: AWS::S3::Bucket, Properties: {BucketName: !Join ["-", [!Ref Prefix, data]]}}
  Table: {Type: AWS::DynamoDB::Table, Properties: {TableName: items}}
  Layer: {Type: AWS::Serverless::LayerVersion, Properties: {LayerName: common}}
  MyApi: {Type: AWS::Serverless::Api}
  MyHttp: {Type: AWS::Serverless::HttpApi}
  Role: {Type: AWS::IAM::Role}
  ProdOnly: {Type: AWS::S3::Bucket, Condition: IsProd}
  LoopA: {Type: AWS::S3::Bucket, Properties: {BucketName: !Sub "${LoopB}-a"}}
  LoopB: {Type: AWS::S3::Bucket, Properties: {BucketName: !Ref LoopA}}
"#;

    fn ev_with(overrides: &[(&str, &str)], expr: &str) -> Result<J, String> {
        let root = parse(Path::new("t.yaml"), BASE).map_err(|e| e.to_string())?;
        let opts = CompileOptions {
            parameter_overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            stack_name: "st".into(),
            ..CompileOptions::default()
        };
        let ctx = context(Path::new("t.yaml"), &root, &opts).map_err(|e| e.to_string())?;
        let expr = parse(Path::new("t.yaml"), &format!("X: {expr}")).map_err(|e| e.to_string())?;
        let value = ctx
            .eval(expr.get("X").unwrap())
            .map_err(|e| e.to_string())?;
        Ok(value.map_or(J::String("<NoValue>".into()), |v| v.to_json()))
    }

    fn ev(expr: &str) -> J {
        ev_with(&[], expr).unwrap()
    }

    fn fails(expr: &str, expected: &str) {
        let e = ev_with(&[], expr).unwrap_err();
        assert!(e.contains(expected), "{expr}: {e}");
    }

    #[test]
    fn ref_parameters_and_pseudo_parameters() {
        assert_eq!(ev("!Ref Env"), json!("dev"));
        assert_eq!(ev("!Ref Size"), json!("256"));
        assert_eq!(ev("!Ref Zones"), json!(["a", "b", "c"]));
        assert_eq!(ev("!Ref Ports"), json!(["80", "443"]));
        assert_eq!(
            ev_with(&[("Env", "prod")], "!Ref Env").unwrap(),
            json!("prod")
        );
        assert_eq!(
            ev(
                "[!Ref 'AWS::Region', !Ref 'AWS::AccountId', !Ref 'AWS::StackName', !Ref 'AWS::Partition', !Ref 'AWS::URLSuffix']"
            ),
            json!(["us-east-1", "123456789012", "st", "aws", "amazonaws.com"])
        );
    }

    #[test]
    fn no_value_removes_keys_and_items() {
        assert_eq!(ev("!Ref AWS::NoValue"), json!("<NoValue>"));
        assert_eq!(ev("{a: 1, b: !Ref AWS::NoValue}"), json!({"a": 1}));
        assert_eq!(ev("[1, !Ref AWS::NoValue, 2]"), json!([1, 2]));
        assert_eq!(ev("{a: !If [IsProd, x, !Ref AWS::NoValue]}"), json!({}));
    }

    #[test]
    fn ref_and_getatt_of_resources() {
        assert_eq!(ev("!Ref Fn"), json!("st-app-fn"));
        let arn = json!("arn:aws:lambda:us-east-1:123456789012:function:st-app-fn");
        assert_eq!(ev("!GetAtt Fn.Arn"), arn);
        assert_eq!(ev("!GetAtt [Fn, Arn]"), arn);
        assert_eq!(ev("{'Fn::GetAtt': [Fn, !Sub Arn]}"), arn);
        assert_eq!(ev("!Ref Bucket"), json!("bucket"));
        assert_eq!(ev("!Ref Named"), json!("app-data"));
        assert_eq!(ev("!GetAtt Named.Arn"), json!("arn:aws:s3:::app-data"));
        assert_eq!(
            ev("!GetAtt Named.RegionalDomainName"),
            json!("app-data.s3.us-east-1.amazonaws.com")
        );
        assert_eq!(ev("!Ref Table"), json!("items"));
        assert_eq!(
            ev("!GetAtt Table.Arn"),
            json!("arn:aws:dynamodb:us-east-1:123456789012:table/items")
        );
        assert!(
            ev("!GetAtt Table.StreamArn")
                .as_str()
                .unwrap()
                .starts_with("arn:aws:dynamodb:us-east-1:123456789012:table/items/stream/")
        );
        assert_eq!(
            ev("!Ref Layer"),
            json!("arn:aws:lambda:us-east-1:123456789012:layer:common:1")
        );
        let id = ev("!Ref MyApi");
        assert_eq!(id.as_str().unwrap().len(), 10);
        assert_eq!(ev("!Ref MyApi"), id, "stable");
        assert_ne!(ev("!Ref ServerlessRestApi"), id);
        assert_eq!(
            ev("!GetAtt MyHttp.ApiEndpoint"),
            json!(format!(
                "https://{}.execute-api.us-east-1.amazonaws.com",
                ev("!Ref MyHttp").as_str().unwrap()
            ))
        );
        assert_eq!(ev("!Ref Role"), json!("Role"));
        assert_eq!(
            ev("!GetAtt Role.Arn"),
            json!("arn:aws:iam:us-east-1:123456789012:Role")
        );
    }

    #[test]
    fn sub_forms() {
        assert_eq!(
            ev("!Sub 'arn:${AWS::Partition}:s3:::${Named}/*'"),
            json!("arn:aws:s3:::app-data/*")
        );
        assert_eq!(
            ev("!Sub '${Fn.Arn}:live'"),
            json!("arn:aws:lambda:us-east-1:123456789012:function:st-app-fn:live")
        );
        assert_eq!(
            ev("!Sub '${!Literal} and ${ Env }'"),
            json!("${Literal} and dev")
        );
        assert_eq!(
            ev("!Sub ['${A}-${Env}', {A: !Ref Table}]"),
            json!("items-dev")
        );
        assert_eq!(ev("!Sub 'no vars'"), json!("no vars"));
        fails("!Sub '${Env'", "unclosed");
        fails("!Sub '${Zones}'", "is a list");
        fails("!Sub '${Nope}'", "unknown Ref Nope");
    }

    #[test]
    fn join_select_split() {
        assert_eq!(ev("!Join [':', [a, !Ref Env, 3]]"), json!("a:dev:3"));
        assert_eq!(ev("!Join ['', !Ref Zones]"), json!("abc"));
        assert_eq!(ev("!Select [1, !Ref Zones]"), json!("b"));
        assert_eq!(ev("!Select ['0', [x, y]]"), json!("x"));
        assert_eq!(ev("!Split [',', 'a,b,,c']"), json!(["a", "b", "", "c"]));
        assert_eq!(ev("!Select [2, !Split ['/', 'x/y/z']]"), json!("z"));
        fails("!Select [5, [a]]", "out of range");
        fails("!Join [',', [[a]]]", "joins strings");
        fails("!Split ['', a]", "non-empty delimiter");
        fails("!Join [',']", "list of 2 elements");
    }

    #[test]
    fn conditions_and_if() {
        assert_eq!(ev("!If [IsProd, big, small]"), json!("small"));
        assert_eq!(
            ev_with(&[("Env", "prod")], "!If [IsProd, big, small]").unwrap(),
            json!("big")
        );
        assert_eq!(ev("!If [IsDev, yes, no]"), json!("yes"));
        assert_eq!(ev("!If [Both, yes, no]"), json!("yes"));
        assert_eq!(ev("!If [Either, yes, no]"), json!("no"));
        fails("!If [Nope, a, b]", "unknown condition Nope");
        fails("!Equals [a, a]", "condition function");
    }

    #[test]
    fn find_in_map_base64_getazs_length_tojson() {
        assert_eq!(ev("!FindInMap [Sizes, !Ref Env, memory]"), json!(128));
        assert_eq!(
            ev_with(&[("Env", "prod")], "!FindInMap [Sizes, !Ref Env, memory]").unwrap(),
            json!(1024)
        );
        fails("!FindInMap [Sizes, test, memory]", "no key \"test\"");
        assert_eq!(ev("!Base64 hello"), json!("aGVsbG8="));
        assert_eq!(
            ev("!GetAZs ''"),
            json!(["us-east-1a", "us-east-1b", "us-east-1c"])
        );
        assert_eq!(ev("!Length [a, b]"), json!(2));
        assert_eq!(ev("!ToJsonString {a: [1]}"), json!("{\"a\":[1]}"));
    }

    #[test]
    fn reference_errors_have_positions() {
        let e = ev_with(&[], "!Ref Nope").unwrap_err();
        assert_eq!(
            e,
            "t.yaml:1:4: unknown Ref Nope: not a parameter, resource or pseudo parameter"
        );
        fails(
            "!GetAtt Fn.Nope",
            "AWS::Serverless::Function Fn has no attribute Nope",
        );
        fails("!GetAtt Bucket.StreamArn", "has no attribute StreamArn");
        fails("!GetAtt Nope.Arn", "Fn::GetAtt: unknown resource Nope");
        fails("!GetAtt FnArn", "is not Resource.Attribute");
        fails(
            "{'Fn::Bogus': 1}",
            "unknown or unsupported intrinsic function Fn::Bogus",
        );
        fails("!ImportValue x", "Fn::ImportValue is not supported");
        fails(
            "!Ref ProdOnly",
            "ProdOnly is not created: its Condition is false",
        );
    }

    #[test]
    fn cycles_are_reported_with_their_chain() {
        let e = ev_with(&[], "!Ref LoopA").unwrap_err();
        assert!(
            e.contains("circular reference: LoopA -> LoopB -> LoopA"),
            "{e}"
        );
        assert!(e.contains("resource LoopA"), "{e}");
    }

    #[test]
    fn parameter_constraints() {
        let e = ev_with(&[("Env", "qa")], "x").unwrap_err();
        assert!(
            e.contains("parameter Env: \"qa\" is not one of AllowedValues [dev, prod]"),
            "{e}"
        );
        let e = ev_with(&[("Size", "64")], "x").unwrap_err();
        assert!(e.contains("less than MinValue 128"), "{e}");
        let e = ev_with(&[("Size", "lots")], "x").unwrap_err();
        assert!(e.contains("is not a number"), "{e}");
        let e = ev_with(&[("Prefix", "App1")], "x").unwrap_err();
        assert!(e.contains("does not match AllowedPattern"), "{e}");
        let e = ev_with(&[("Ghost", "1")], "x").unwrap_err();
        assert!(
            e.contains("parameter override Ghost: the template has no such parameter"),
            "{e}"
        );
    }
}
