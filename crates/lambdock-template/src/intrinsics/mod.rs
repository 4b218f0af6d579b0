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

mod conditions;
mod references;

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

    /// Runs `f` with `key` marked in progress, refusing to enter it twice (a cycle).
    pub(super) fn guarded<T>(&self, pos: Pos, key: String, f: impl FnOnce() -> R<T>) -> R<T> {
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
mod tests;
