//! `Conditions`: `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not` and `{Condition: Name}`, each
//! named condition evaluated once.

use super::{Ctx, R};
use crate::yaml::{Node, Pos, Value};

impl Ctx<'_> {
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
