//! Templates as a tree that remembers where every node came from.
//!
//! YAML and JSON templates both go through `saphyr` (JSON is YAML 1.2 flow syntax), which keeps
//! custom tags and source positions. Short-form tags (`!Ref X`, `!GetAtt a.b`, `!Sub ...`) are
//! rewritten here into the long form (`{"Ref": X}`, `{"Fn::GetAtt": "a.b"}`), so the evaluator
//! only knows one spelling of each intrinsic.

use std::fmt;
use std::path::Path;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::error::{TemplateError, at};

/// A place in the template: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A template value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: Value,
}

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, in template order.
    Map(Vec<(String, Node)>),
}

/// The short-form tags CloudFormation accepts, and their long names.
const SHORT_FORMS: &[(&str, &str)] = &[
    ("Ref", "Ref"),
    ("Condition", "Condition"),
    ("Base64", "Fn::Base64"),
    ("Cidr", "Fn::Cidr"),
    ("FindInMap", "Fn::FindInMap"),
    ("GetAtt", "Fn::GetAtt"),
    ("GetAZs", "Fn::GetAZs"),
    ("ImportValue", "Fn::ImportValue"),
    ("Join", "Fn::Join"),
    ("Select", "Fn::Select"),
    ("Split", "Fn::Split"),
    ("Sub", "Fn::Sub"),
    ("Transform", "Fn::Transform"),
    ("If", "Fn::If"),
    ("Equals", "Fn::Equals"),
    ("And", "Fn::And"),
    ("Or", "Fn::Or"),
    ("Not", "Fn::Not"),
    ("Length", "Fn::Length"),
    ("ToJsonString", "Fn::ToJsonString"),
];

impl Node {
    /// A node at `pos`.
    pub fn new(pos: Pos, value: Value) -> Node {
        Node { pos, value }
    }

    /// A string node.
    pub fn str(pos: Pos, s: impl Into<String>) -> Node {
        Node::new(pos, Value::Str(s.into()))
    }

    /// The value of `key` when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The entries, when this is a mapping.
    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// `(name, argument)` when this is an intrinsic function call: a one-key mapping whose key
    /// is `Ref` or starts with `Fn::`.
    pub fn intrinsic(&self) -> Option<(&str, &Node)> {
        match &self.value {
            Value::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                (k == "Ref" || k.starts_with("Fn::")).then_some((k.as_str(), v))
            }
            _ => None,
        }
    }

    /// A scalar as CloudFormation turns it into a string (numbers and booleans included).
    pub fn scalar_string(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The value as JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::List(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Reads and parses a template file.
pub fn load(path: &Path) -> Result<Node, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses template text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Node, TemplateError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        at(
            path,
            Pos {
                line: m.line() as u32,
                col: m.col() as u32 + 1,
            },
            format!("syntax error: {}", e.info()),
        )
    })?;
    match docs.as_slice() {
        [doc] => convert(path, doc),
        [] => Err(at(path, Pos { line: 1, col: 1 }, "the template is empty")),
        [_, second, ..] => Err(at(
            path,
            pos_of(second),
            "a template is one YAML document; found a second one",
        )),
    }
}

fn pos_of(node: &MarkedYaml) -> Pos {
    Pos {
        line: node.span.start.line() as u32,
        col: node.span.start.col() as u32 + 1,
    }
}

fn convert(path: &Path, node: &MarkedYaml) -> Result<Node, TemplateError> {
    let pos = pos_of(node);
    let value = match &node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(*b),
            Scalar::Integer(i) => Value::Int(*i),
            Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
            Scalar::String(s) => Value::Str(s.to_string()),
        },
        YamlData::Representation(text, _, _) => Value::Str(text.to_string()),
        YamlData::Sequence(items) => Value::List(
            items
                .iter()
                .map(|item| convert(path, item))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(Scalar::Integer(i)) => i.to_string(),
                    YamlData::Value(Scalar::Boolean(b)) => b.to_string(),
                    _ => return Err(at(path, pos_of(k), "mapping keys must be strings")),
                };
                out.push((key, convert(path, v)?));
            }
            Value::Map(out)
        }
        YamlData::Tagged(tag, inner) => {
            let inner = convert(path, inner)?;
            if tag.handle == "!!" {
                return Ok(inner);
            }
            let long = SHORT_FORMS
                .iter()
                .find(|(short, _)| tag.handle == "!" && *short == tag.suffix)
                .map(|(_, long)| *long)
                .ok_or_else(|| {
                    at(
                        path,
                        pos,
                        format!("unknown tag {}{}", tag.handle, tag.suffix),
                    )
                })?;
            Value::Map(vec![(long.to_string(), inner)])
        }
        YamlData::Alias(_) | YamlData::BadValue => {
            return Err(at(path, pos, "a value that is not valid YAML"));
        }
    };
    Ok(Node { pos, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Node, TemplateError> {
        parse(Path::new("t.yaml"), text)
    }

    #[test]
    fn short_forms_become_long_forms() {
        let n = p("a: !Ref X\nb: !GetAtt F.Arn\nc: !If [C, 1, '2']\n").unwrap();
        assert_eq!(
            n.to_json(),
            serde_json::json!({"a": {"Ref": "X"}, "b": {"Fn::GetAtt": "F.Arn"}, "c": {"Fn::If": ["C", 1, "2"]}})
        );
        assert_eq!(n.get("b").unwrap().pos, Pos { line: 2, col: 4 });
    }

    #[test]
    fn json_templates_keep_positions() {
        let n = p("{\n\t\"a\": {\"Ref\": \"y\"}\n}").unwrap();
        assert_eq!(n.get("a").unwrap().intrinsic().unwrap().0, "Ref");
        assert_eq!(n.get("a").unwrap().pos.line, 2);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = p("a: b\n  c: d\n").unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(e.to_string().starts_with("t.yaml:2:"), "{e}");
        let e = p("a: 1\nb: !Bogus x\n").unwrap_err().to_string();
        assert!(e.contains("t.yaml:2:4: unknown tag !Bogus"), "{e}");
        let e = p("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(e.contains("duplicated key"), "{e}");
    }
}
