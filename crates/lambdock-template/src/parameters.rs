//! `Parameters`: each gets its override (`--parameter-overrides Key=Value`, as `sam deploy`
//! takes them) or its `Default`, is checked against its constraints the way CloudFormation
//! checks it at stack creation, and becomes the value `Ref` gives: a string, or a list of
//! strings for the list types.

use std::collections::BTreeMap;

use crate::error::TemplateError;
use crate::intrinsics::Ctx;
use crate::yaml::{Node, Value};

type R<T> = Result<T, TemplateError>;

/// Resolves every parameter of `section` (the template's `Parameters`), in `ctx.params`.
pub(crate) fn resolve(
    ctx: &mut Ctx<'_>,
    section: Option<&Node>,
    overrides: &BTreeMap<String, String>,
) -> R<()> {
    let entries = match section {
        Some(n) => n
            .as_map()
            .ok_or_else(|| ctx.err(n.pos, "Parameters must be a mapping"))?,
        None => &[],
    };
    if let Some(unknown) = overrides
        .keys()
        .find(|k| !entries.iter().any(|(name, _)| name == *k))
    {
        let pos = section.map(|s| s.pos).unwrap_or_default();
        return Err(ctx.err(
            pos,
            format!("parameter override {unknown}: the template has no such parameter"),
        ));
    }
    for (name, decl) in entries {
        let value = resolve_one(ctx, name, decl, overrides.get(name))?;
        ctx.params.insert(name.clone(), value);
    }
    Ok(())
}

fn resolve_one(ctx: &Ctx<'_>, name: &str, decl: &Node, given: Option<&String>) -> R<Node> {
    let err = |pos, msg: String| ctx.err(pos, format!("parameter {name}: {msg}"));
    let ty = match decl.get("Type") {
        Some(t) => t
            .as_str()
            .ok_or_else(|| err(t.pos, "Type must be a string".into()))?,
        None => return Err(err(decl.pos, "Type is required".into())),
    };
    if ty.starts_with("AWS::SSM::Parameter") {
        return Err(err(
            decl.pos,
            format!("type {ty} needs SSM Parameter Store, which Lambdock does not have"),
        ));
    }
    let (text, pos) = match (given, decl.get("Default")) {
        (Some(v), _) => (v.clone(), decl.pos),
        (None, Some(d)) => (
            default_text(d).ok_or_else(|| {
                err(
                    d.pos,
                    format!("Default must be a string, found {}", d.kind()),
                )
            })?,
            d.pos,
        ),
        (None, None) => {
            return Err(err(
                decl.pos,
                "no Default and no value given (--parameter-overrides)".into(),
            ));
        }
    };
    let is_list = ty == "CommaDelimitedList" || ty.starts_with("List<");
    let items: Vec<String> = if is_list {
        if text.is_empty() {
            Vec::new()
        } else {
            text.split(',').map(|s| s.trim().to_string()).collect()
        }
    } else {
        vec![text.clone()]
    };
    let numeric = ty == "Number" || ty == "List<Number>";
    for item in &items {
        check(ctx, name, decl, item, numeric)?;
    }
    Ok(if is_list {
        Node::new(
            pos,
            Value::List(items.into_iter().map(|s| Node::str(pos, s)).collect()),
        )
    } else {
        Node::str(pos, text)
    })
}

fn default_text(d: &Node) -> Option<String> {
    match &d.value {
        Value::List(items) => items
            .iter()
            .map(Node::scalar_string)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => d.scalar_string(),
    }
}

/// The constraints CloudFormation applies to one value.
fn check(ctx: &Ctx<'_>, name: &str, decl: &Node, value: &str, numeric: bool) -> R<()> {
    let err = |pos, msg: String| ctx.err(pos, format!("parameter {name}: {msg}"));
    if numeric && value.parse::<f64>().is_err() {
        return Err(err(decl.pos, format!("{value:?} is not a number")));
    }
    if let Some(allowed) = decl.get("AllowedValues") {
        let Value::List(options) = &allowed.value else {
            return Err(err(allowed.pos, "AllowedValues must be a list".into()));
        };
        if !options
            .iter()
            .any(|o| o.scalar_string().as_deref() == Some(value))
        {
            let options: Vec<String> = options.iter().filter_map(Node::scalar_string).collect();
            return Err(err(
                allowed.pos,
                format!(
                    "{value:?} is not one of AllowedValues [{}]",
                    options.join(", ")
                ),
            ));
        }
    }
    if let Some(pattern) = decl.get("AllowedPattern") {
        let text = pattern
            .as_str()
            .ok_or_else(|| err(pattern.pos, "AllowedPattern must be a string".into()))?;
        // CloudFormation matches the whole value (Java's `matches`).
        let re = regex::Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| err(pattern.pos, format!("AllowedPattern: {e}")))?;
        if !re.is_match(value) {
            let message = decl
                .get("ConstraintDescription")
                .and_then(Node::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{value:?} does not match AllowedPattern {text}"));
            return Err(err(pattern.pos, message));
        }
    }
    let bound = |key: &str| -> R<Option<(f64, crate::yaml::Pos)>> {
        match decl.get(key) {
            None => Ok(None),
            Some(n) => n
                .scalar_string()
                .and_then(|s| s.parse::<f64>().ok())
                .map(|v| Some((v, n.pos)))
                .ok_or_else(|| err(n.pos, format!("{key} must be a number"))),
        }
    };
    let len = value.chars().count() as f64;
    if let Some((min, pos)) = bound("MinLength")?
        && len < min
    {
        return Err(err(
            pos,
            format!("{value:?} is shorter than MinLength {min}"),
        ));
    }
    if let Some((max, pos)) = bound("MaxLength")?
        && len > max
    {
        return Err(err(
            pos,
            format!("{value:?} is longer than MaxLength {max}"),
        ));
    }
    if numeric {
        let v: f64 = value.parse().unwrap_or(f64::NAN);
        if let Some((min, pos)) = bound("MinValue")?
            && v < min
        {
            return Err(err(pos, format!("{value} is less than MinValue {min}")));
        }
        if let Some((max, pos)) = bound("MaxValue")?
            && v > max
        {
            return Err(err(pos, format!("{value} is greater than MaxValue {max}")));
        }
    }
    Ok(())
}
