//! Placeholders (`#name`, `:value`) used in an expression but missing from
//! `ExpressionAttributeNames`/`ExpressionAttributeValues`. rustack lets an undefined `#name`
//! through as a literal attribute name (`SET #m = :v` then writes an attribute called `#m`);
//! DynamoDB refuses the request. Checked before the engine runs, on the request JSON.
//!
//! Expressions have no string literals, so every `#…`/`:…` token is a placeholder.

use rustack_dynamodb_model::error::DynamoDBError;
use serde_json::Value;

/// The expression fields of one request (or one transaction/batch element) and how DynamoDB
/// names them in messages.
const EXPRESSIONS: [(&str, &str); 5] = [
    ("KeyConditionExpression", "KeyConditionExpression"),
    ("UpdateExpression", "UpdateExpression"),
    ("ConditionExpression", "ConditionExpression"),
    ("FilterExpression", "FilterExpression"),
    ("ProjectionExpression", "ProjectionExpression"),
];

fn tokens(expression: &str, sigil: char) -> impl Iterator<Item = &str> {
    expression.match_indices(sigil).filter_map(move |(at, _)| {
        let rest = &expression[at + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (len > 0).then(|| &expression[at..=at + len])
    })
}

/// Checks one object holding expressions and their maps.
fn check_object(request: &Value) -> Result<(), DynamoDBError> {
    let names = request.get("ExpressionAttributeNames");
    let values = request.get("ExpressionAttributeValues");
    for (field, label) in EXPRESSIONS {
        let Some(expression) = request.get(field).and_then(Value::as_str) else {
            continue;
        };
        for name in tokens(expression, '#') {
            if names.and_then(|n| n.get(name)).is_none() {
                return Err(DynamoDBError::validation(format!(
                    "Invalid {label}: An expression attribute name used in the document path is \
                     not defined; attribute name: {name}"
                )));
            }
        }
        // A projection takes no values.
        if field == "ProjectionExpression" {
            continue;
        }
        for value in tokens(expression, ':') {
            if values.and_then(|v| v.get(value)).is_none() {
                return Err(DynamoDBError::validation(format!(
                    "Invalid {label}: An expression attribute value used in expression is not \
                     defined; attribute value: {value}"
                )));
            }
        }
    }
    Ok(())
}

/// Checks a request body: the request itself, each transaction element and each batch table.
///
/// # Errors
///
/// `ValidationException` naming the first undefined placeholder.
pub fn check(body: &[u8]) -> Result<(), DynamoDBError> {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        // Malformed JSON is the engine's to report.
        return Ok(());
    };
    check_object(&request)?;
    for element in request["TransactItems"].as_array().into_iter().flatten() {
        for kind in ["Put", "Update", "Delete", "ConditionCheck", "Get"] {
            if let Some(inner) = element.get(kind) {
                check_object(inner)?;
            }
        }
    }
    for table in request["RequestItems"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        if table.is_object() {
            check_object(table)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(body: Value) -> Option<String> {
        check(body.to_string().as_bytes()).err().map(|e| e.message)
    }

    #[test]
    fn defined_placeholders_pass() {
        assert_eq!(
            message(json!({"UpdateExpression": "SET #a = :v, b_2 = :w",
                           "ExpressionAttributeNames": {"#a": "a"},
                           "ExpressionAttributeValues": {":v": {"S": "1"}, ":w": {"S": "2"}}})),
            None
        );
    }

    #[test]
    fn an_undefined_name_is_refused() {
        assert_eq!(
            message(json!({"UpdateExpression": "SET #m = :v",
                           "ExpressionAttributeValues": {":v": {"S": "1"}}})),
            Some(
                "Invalid UpdateExpression: An expression attribute name used in the document \
                 path is not defined; attribute name: #m"
                    .into()
            )
        );
    }

    #[test]
    fn an_undefined_value_is_refused() {
        assert_eq!(
            message(json!({"ConditionExpression": "a = :missing"})),
            Some(
                "Invalid ConditionExpression: An expression attribute value used in expression \
                 is not defined; attribute value: :missing"
                    .into()
            )
        );
    }

    #[test]
    fn transaction_elements_and_batch_tables_are_checked() {
        assert!(
            message(json!({"TransactItems": [
                {"ConditionCheck": {"ConditionExpression": "attribute_exists(#k)"}}]}))
            .is_some()
        );
        assert!(
            message(json!({"RequestItems": {"t": {"Keys": [], "ProjectionExpression": "#p"}}}))
                .is_some()
        );
    }
}
