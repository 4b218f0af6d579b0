//! One compiler per resource type. Each reads its properties through [`Props`], which evaluates
//! intrinsics on demand and remembers what was read, so properties Lambdock does not use are
//! reported as ignored instead of silently dropped.

pub(crate) mod api;
pub(crate) mod function;
pub(crate) mod layer;
pub(crate) mod storage;

use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::error::TemplateError;
use crate::intrinsics::Ctx;
use crate::yaml::{Node, Pos, Value};

pub(crate) type R<T> = Result<T, TemplateError>;

/// The properties of one resource.
pub(crate) struct Props<'c, 't> {
    pub ctx: &'c Ctx<'t>,
    pub id: &'c str,
    pub pos: Pos,
    node: Node,
    used: RefCell<BTreeSet<String>>,
}

impl<'c, 't> Props<'c, 't> {
    /// `node` is the resource's `Properties` (`None`: it has none).
    pub fn new(ctx: &'c Ctx<'t>, id: &'c str, pos: Pos, node: Option<&Node>) -> R<Self> {
        let node = match node {
            Some(n) if n.as_map().is_some() => n.clone(),
            Some(n) => return Err(ctx.err(n.pos, "Properties must be a mapping")),
            None => Node::new(pos, Value::Map(Vec::new())),
        };
        Ok(Props {
            ctx,
            id,
            pos,
            node,
            used: RefCell::new(BTreeSet::new()),
        })
    }

    /// The unevaluated value of `key`.
    pub fn raw(&self, key: &str) -> Option<&Node> {
        self.used.borrow_mut().insert(key.to_string());
        self.node.get(key)
    }

    /// The evaluated value of `key` (`None` when absent or `AWS::NoValue`).
    pub fn get(&self, key: &str) -> R<Option<Node>> {
        match self.raw(key) {
            Some(n) => self.ctx.eval(n),
            None => Ok(None),
        }
    }

    pub fn string(&self, key: &str) -> R<Option<String>> {
        self.get(key)?.map(|n| to_string(self.ctx, &n)).transpose()
    }

    pub fn required_string(&self, key: &str) -> R<String> {
        self.string(key)?
            .ok_or_else(|| self.ctx.err(self.pos, format!("{key} is required")))
    }

    pub fn u32(&self, key: &str) -> R<Option<u32>> {
        self.get(key)?.map(|n| to_u32(self.ctx, &n)).transpose()
    }

    pub fn strings(&self, key: &str) -> R<Vec<String>> {
        match self.get(key)? {
            Some(n) => to_strings(self.ctx, &n),
            None => Ok(Vec::new()),
        }
    }

    /// Properties present in the template that nothing read.
    pub fn ignored(&self) -> Vec<String> {
        let used = self.used.borrow();
        self.node
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !used.contains(k))
            .collect()
    }

    /// Records a warning naming the properties of this resource that Lambdock ignores.
    pub fn warn_ignored(&self, ty: &str) {
        let ignored = self.ignored();
        if !ignored.is_empty() {
            self.ctx.warnings.borrow_mut().push(format!(
                "{} ({ty}): ignored properties: {}",
                self.id,
                ignored.join(", ")
            ));
        }
    }
}

pub(crate) fn to_string(ctx: &Ctx<'_>, n: &Node) -> R<String> {
    n.scalar_string()
        .ok_or_else(|| ctx.err(n.pos, format!("expected a string, found {}", n.kind())))
}

pub(crate) fn to_u32(ctx: &Ctx<'_>, n: &Node) -> R<u32> {
    let text = n.scalar_string().unwrap_or_default();
    text.trim().parse().map_err(|_| {
        ctx.err(
            n.pos,
            format!("expected a whole number, found {}", describe(n)),
        )
    })
}

pub(crate) fn to_f64(ctx: &Ctx<'_>, n: &Node) -> R<f64> {
    let text = n.scalar_string().unwrap_or_default();
    text.trim()
        .parse()
        .map_err(|_| ctx.err(n.pos, format!("expected a number, found {}", describe(n))))
}

pub(crate) fn to_bool(ctx: &Ctx<'_>, n: &Node) -> R<bool> {
    match n.scalar_string().as_deref() {
        Some("true" | "True" | "TRUE") => Ok(true),
        Some("false" | "False" | "FALSE") => Ok(false),
        _ => Err(ctx.err(
            n.pos,
            format!("expected true or false, found {}", describe(n)),
        )),
    }
}

pub(crate) fn to_strings(ctx: &Ctx<'_>, n: &Node) -> R<Vec<String>> {
    match &n.value {
        Value::List(items) => items.iter().map(|i| to_string(ctx, i)).collect(),
        _ => Err(ctx.err(n.pos, format!("expected a list, found {}", n.kind()))),
    }
}

fn describe(n: &Node) -> String {
    match n.scalar_string() {
        Some(s) => format!("{s:?}"),
        None => n.kind().to_string(),
    }
}

/// The logical id a property refers to: `!Ref Id` or a plain `Id` string (SAM accepts both
/// for `RestApiId`/`ApiId`).
pub(crate) fn logical_ref(ctx: &Ctx<'_>, n: &Node) -> R<String> {
    match (n.intrinsic(), &n.value) {
        (Some(("Ref", target)), _) => to_string(ctx, target),
        (None, Value::Str(s)) => Ok(s.clone()),
        _ => Err(ctx.err(n.pos, "expected !Ref of a resource of this template")),
    }
}
