//! Where rustack's error texts differ from DynamoDB's, DynamoDB's wording wins: SDK users match
//! on messages (and tests compare them with AWS and moto).

use rustack_dynamodb_model::error::{DynamoDBError, DynamoDBErrorCode};
use rustack_dynamodb_model::operations::DynamoDBOperation;

const INVALID_PATH: &str =
    "The document path provided in the update expression is invalid for update";

/// Rewrites `error` (raised by `op`) into DynamoDB's wording.
#[must_use]
pub fn to_aws(op: DynamoDBOperation, mut error: DynamoDBError) -> DynamoDBError {
    match error.code {
        DynamoDBErrorCode::ValidationException => {
            if error
                .message
                .starts_with("Item size has exceeded the maximum allowed size")
            {
                "Item size has exceeded the maximum allowed size".clone_into(&mut error.message);
            } else if let Some(attr) = error
                .message
                .strip_prefix("Cannot update attribute (")
                .and_then(|m| m.strip_suffix("). This attribute is part of the key"))
            {
                error.message = format!(
                    "One or more parameter values were invalid: Cannot update attribute {attr}. \
                     This attribute is part of the key"
                );
            } else if error
                .message
                .ends_with("was not present in the request when parameter Segment is present")
            {
                "The TotalSegments parameter is required but was not present in the request when \
                 Segment parameter is present"
                    .clone_into(&mut error.message);
            } else if error.message.ends_with(INVALID_PATH) {
                // rustack prefixes the clause ("Invalid operand for SET: "); DynamoDB does not.
                INVALID_PATH.clone_into(&mut error.message);
            } else if let Some(attr) = error
                .message
                .strip_prefix("missing required key attribute: ")
            {
                error.message = if op == DynamoDBOperation::PutItem {
                    format!(
                        "One or more parameter values were invalid: Missing the key {attr} in the item"
                    )
                } else {
                    "The provided key element does not match the schema".to_string()
                };
            }
        }
        DynamoDBErrorCode::TransactionCanceledException => {
            // DynamoDB lists the reason codes in the message, and a reason without a failure is
            // just `{"Code": "None"}`.
            let codes: Vec<&str> = error
                .cancellation_reasons
                .iter()
                .map(|r| r.code.as_deref().unwrap_or("None"))
                .collect();
            let message = format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            );
            for reason in &mut error.cancellation_reasons {
                if reason.code.as_deref() == Some("None") {
                    reason.message = None;
                }
            }
            error.message = message;
        }
        _ => {}
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustack_dynamodb_model::types::CancellationReason;

    #[test]
    fn item_size_loses_the_byte_count() {
        let e = DynamoDBError::validation(
            "Item size has exceeded the maximum allowed size of 409600 bytes",
        );
        assert_eq!(
            to_aws(DynamoDBOperation::PutItem, e).message,
            "Item size has exceeded the maximum allowed size"
        );
    }

    #[test]
    fn an_invalid_document_path_loses_the_clause_prefix() {
        let e = DynamoDBError::validation(format!("Invalid operand for SET: {INVALID_PATH}"));
        assert_eq!(
            to_aws(DynamoDBOperation::UpdateItem, e).message,
            INVALID_PATH
        );
    }

    #[test]
    fn key_updates_and_segments_use_dynamodb_wording() {
        let e = DynamoDBError::validation(
            "Cannot update attribute (pk). This attribute is part of the key",
        );
        assert_eq!(
            to_aws(DynamoDBOperation::UpdateItem, e).message,
            "One or more parameter values were invalid: Cannot update attribute pk. This \
             attribute is part of the key"
        );
        let e = DynamoDBError::validation(
            "The TotalSegments parameter is required but was not present in the request when \
             parameter Segment is present",
        );
        assert_eq!(
            to_aws(DynamoDBOperation::Scan, e).message,
            "The TotalSegments parameter is required but was not present in the request when \
             Segment parameter is present"
        );
    }

    #[test]
    fn a_missing_key_is_worded_per_operation() {
        let put = to_aws(
            DynamoDBOperation::PutItem,
            DynamoDBError::validation("missing required key attribute: sk"),
        );
        assert_eq!(
            put.message,
            "One or more parameter values were invalid: Missing the key sk in the item"
        );
        let get = to_aws(
            DynamoDBOperation::GetItem,
            DynamoDBError::validation("missing required key attribute: sk"),
        );
        assert_eq!(
            get.message,
            "The provided key element does not match the schema"
        );
    }

    #[test]
    fn transaction_reasons_are_listed_in_the_message() {
        let reason = |code: &str, message: &str| CancellationReason {
            code: Some(code.into()),
            message: Some(message.into()),
            item: None,
        };
        let e = DynamoDBError::transaction_cancelled(vec![
            reason("None", "None"),
            reason("ConditionalCheckFailed", "The conditional request failed"),
        ]);
        let e = to_aws(DynamoDBOperation::TransactWriteItems, e);
        assert_eq!(
            e.message,
            "Transaction cancelled, please refer cancellation reasons for specific reasons \
             [None, ConditionalCheckFailed]"
        );
        assert_eq!(e.cancellation_reasons[0].message, None);
        assert_eq!(
            e.cancellation_reasons[1].message.as_deref(),
            Some("The conditional request failed")
        );
    }
}
