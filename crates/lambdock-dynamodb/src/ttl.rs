//! Time to live: rustack stores a table's TTL setting but never deletes anything, so a sweeper
//! does what DynamoDB's background process does. Every pass scans the tables with TTL enabled
//! for items whose TTL attribute is a number of epoch seconds in the past (but not more than
//! five years in the past: DynamoDB leaves those alone) and deletes each with a `DeleteItem`
//! conditioned on the value it saw. The deletes go through the store like any client's, so they
//! are logged and replay exactly, and an item rewritten meanwhile is left alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use rustack_dynamodb_model::operations::DynamoDBOperation;
use serde_json::{Value, json};

use crate::store::Store;

/// DynamoDB does not delete items whose TTL lies more than five years in the past.
const FIVE_YEARS_SECS: u64 = 5 * 365 * 24 * 3600;

async fn call(store: &Arc<Store>, op: DynamoDBOperation, body: Value) -> Option<Value> {
    let response = store
        .execute(op, Bytes::from(body.to_string()))
        .await
        .ok()?;
    let bytes = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Runs a sweep every `every` until the task is dropped.
pub async fn sweep_forever(store: Arc<Store>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let deleted = sweep(&store, SystemTime::now()).await;
        if deleted > 0 {
            tracing::debug!(deleted, "dynamodb TTL sweep");
        }
    }
}

/// One pass over every table; returns how many items were deleted.
pub async fn sweep(store: &Arc<Store>, now: SystemTime) -> usize {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut deleted = 0;
    let mut start: Option<Value> = None;
    loop {
        let mut body = json!({});
        if let Some(s) = &start {
            body["ExclusiveStartTableName"] = s.clone();
        }
        let Some(page) = call(store, DynamoDBOperation::ListTables, body).await else {
            return deleted;
        };
        for table in page["TableNames"].as_array().into_iter().flatten() {
            if let Some(table) = table.as_str() {
                deleted += sweep_table(store, table, now).await;
            }
        }
        match page.get("LastEvaluatedTableName") {
            Some(next) if !next.is_null() => start = Some(next.clone()),
            _ => return deleted,
        }
    }
}

async fn sweep_table(store: &Arc<Store>, table: &str, now: u64) -> usize {
    let Some(ttl) = call(
        store,
        DynamoDBOperation::DescribeTimeToLive,
        json!({ "TableName": table }),
    )
    .await
    else {
        return 0;
    };
    let description = &ttl["TimeToLiveDescription"];
    if description["TimeToLiveStatus"] != "ENABLED" {
        return 0;
    }
    let Some(attribute) = description["AttributeName"].as_str() else {
        return 0;
    };
    let Some(described) = call(
        store,
        DynamoDBOperation::DescribeTable,
        json!({ "TableName": table }),
    )
    .await
    else {
        return 0;
    };
    let keys: Vec<String> = described["Table"]["KeySchema"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["AttributeName"].as_str().map(str::to_string))
        .collect();
    let mut deleted = 0;
    let mut start: Option<Value> = None;
    loop {
        let mut scan = json!({
            "TableName": table,
            "FilterExpression": "#ttl BETWEEN :oldest AND :now",
            "ExpressionAttributeNames": { "#ttl": attribute },
            "ExpressionAttributeValues": {
                ":oldest": { "N": now.saturating_sub(FIVE_YEARS_SECS).to_string() },
                ":now": { "N": now.saturating_sub(1).to_string() },
            },
        });
        if let Some(s) = &start {
            scan["ExclusiveStartKey"] = s.clone();
        }
        let Some(page) = call(store, DynamoDBOperation::Scan, scan).await else {
            return deleted;
        };
        for item in page["Items"].as_array().into_iter().flatten() {
            let key: serde_json::Map<String, Value> = keys
                .iter()
                .filter_map(|k| Some((k.clone(), item.get(k)?.clone())))
                .collect();
            let delete = json!({
                "TableName": table,
                "Key": key,
                "ConditionExpression": "#ttl = :seen",
                "ExpressionAttributeNames": { "#ttl": attribute },
                "ExpressionAttributeValues": { ":seen": item[attribute].clone() },
            });
            if call(store, DynamoDBOperation::DeleteItem, delete)
                .await
                .is_some()
            {
                deleted += 1;
            }
        }
        match page.get("LastEvaluatedKey") {
            Some(next) if !next.is_null() => start = Some(next.clone()),
            _ => return deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(store: &Arc<Store>, op: &str, body: Value) -> Value {
        call(store, DynamoDBOperation::from_name(op).unwrap(), body)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn expired_items_are_deleted_and_the_deletes_are_logged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        run(
            &store,
            "CreateTable",
            json!({"TableName": "ttl-table", "BillingMode": "PAY_PER_REQUEST",
                   "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                   "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}),
        )
        .await;
        let now = 2_000_000_000u64;
        for (pk, exp) in [
            ("expired", json!({"N": (now - 10).to_string()})),
            ("future", json!({"N": (now + 10).to_string()})),
            (
                "ancient",
                json!({"N": (now - FIVE_YEARS_SECS - 10).to_string()}),
            ),
            ("not-a-number", json!({"S": "1"})),
        ] {
            run(
                &store,
                "PutItem",
                json!({"TableName": "ttl-table", "Item": {"pk": {"S": pk}, "exp": exp}}),
            )
            .await;
        }
        let at = UNIX_EPOCH + Duration::from_secs(now);
        // TTL off: nothing goes.
        assert_eq!(sweep(&store, at).await, 0);
        run(
            &store,
            "UpdateTimeToLive",
            json!({"TableName": "ttl-table",
                   "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "exp"}}),
        )
        .await;
        assert_eq!(sweep(&store, at).await, 1);
        drop(store);
        let store = Arc::new(Store::open(dir.path(), "us-east-1", 1000).await.unwrap());
        let left = run(&store, "Scan", json!({"TableName": "ttl-table"})).await;
        let mut names: Vec<&str> = left["Items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["pk"]["S"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["ancient", "future", "not-a-number"]);
    }
}
