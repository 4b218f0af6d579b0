//! Table metadata rustack accepts but does not act on: `UpdateTable` (rustack returns the table
//! unchanged) and queries on local secondary indexes (rustack only looks indexes up among the
//! global ones).
//!
//! Both are done by editing the engine's state through its snapshot (export, change the table,
//! import), under the store's apply lock. That costs a copy of the data, which is fine for
//! operations as rare as these. rustack's indexes are evaluated by scanning the base table, so
//! an index added this way answers at once, for old items too. A local index is registered as a
//! global one with the same key schema (that is what makes it queryable) and hidden again from
//! table descriptions.

use std::collections::HashSet;

use bytes::Bytes;
use http_body_util::BodyExt;
use rustack_dynamodb_core::provider::RustackDynamoDB;
use rustack_dynamodb_core::snapshot::DynamoDBTableSnapshot;
use rustack_dynamodb_http::body::DynamoDBResponseBody;
use rustack_dynamodb_http::response::json_response;
use rustack_dynamodb_model::error::DynamoDBError;
use rustack_dynamodb_model::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, ProvisionedThroughput,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Applies `change` to table `name` in the engine's state.
fn edit_table(
    engine: &RustackDynamoDB,
    name: &str,
    change: impl FnOnce(&mut DynamoDBTableSnapshot) -> Result<(), DynamoDBError>,
) -> Result<(), DynamoDBError> {
    let mut snapshot = engine.export_snapshot();
    let table = snapshot
        .tables
        .iter_mut()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            DynamoDBError::resource_not_found(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })?;
    change(table)?;
    engine
        .import_snapshot(snapshot)
        .map_err(|e| DynamoDBError::internal_error(e.to_string()))
}

/// What rustack stamps on a table at creation (time and id): logged with the `CreateTable`
/// request so that a replay gives the table back the same values.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stamp {
    creation_millis: i64,
    table_id: String,
}

/// The request field the stamp is logged under (no DynamoDB field starts with `Lambdock`).
const STAMP_FIELD: &str = "LambdockStamp";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateTable {
    table_name: String,
    #[serde(default)]
    local_secondary_indexes: Vec<rustack_dynamodb_model::types::LocalSecondaryIndex>,
    #[serde(rename = "LambdockStamp")]
    stamp: Option<Stamp>,
}

/// After a successful `CreateTable`: makes its local secondary indexes queryable and, when
/// replaying, restores the logged stamp. Returns the response and the body to log (the request
/// with the stamp added).
///
/// # Errors
///
/// The engine state could not be rebuilt.
pub async fn after_create(
    engine: &RustackDynamoDB,
    body: Bytes,
    response: http::Response<DynamoDBResponseBody>,
) -> Result<(http::Response<DynamoDBResponseBody>, Bytes), DynamoDBError> {
    let Ok(input) = serde_json::from_slice::<CreateTable>(&body) else {
        return Ok((response, body));
    };
    if input.stamp.is_some() || !input.local_secondary_indexes.is_empty() {
        edit_table(engine, &input.table_name, |table| {
            for lsi in &table.lsi_definitions {
                table.gsi_definitions.push(GlobalSecondaryIndex {
                    index_name: lsi.index_name.clone(),
                    key_schema: lsi.key_schema.clone(),
                    projection: lsi.projection.clone(),
                    provisioned_throughput: None,
                });
            }
            if let Some(stamp) = &input.stamp {
                if let Some(at) = chrono::DateTime::from_timestamp_millis(stamp.creation_millis) {
                    table.created_at = at;
                }
                table.table_id.clone_from(&stamp.table_id);
            }
            Ok(())
        })?;
    }
    if input.stamp.is_some() {
        return Ok((response, body));
    }
    let answer = json_of(response).await?;
    let description = &answer["TableDescription"];
    let stamp = Stamp {
        // Whole milliseconds: what rustack keeps.
        #[allow(clippy::cast_possible_truncation)]
        creation_millis: (description["CreationDateTime"].as_f64().unwrap_or(0.0) * 1000.0).round()
            as i64,
        table_id: description["TableId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let mut logged: Value = serde_json::from_slice(&body)
        .map_err(|e| DynamoDBError::serialization_exception(e.to_string()))?;
    logged[STAMP_FIELD] =
        serde_json::to_value(&stamp).map_err(|e| DynamoDBError::internal_error(e.to_string()))?;
    Ok((
        json_response(answer.to_string().into_bytes(), ""),
        Bytes::from(logged.to_string()),
    ))
}

/// A response's JSON body.
///
/// # Errors
///
/// The body could not be read or is not JSON.
pub async fn json_of(
    response: http::Response<DynamoDBResponseBody>,
) -> Result<Value, DynamoDBError> {
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| DynamoDBError::internal_error(e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| DynamoDBError::internal_error(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateTable {
    table_name: String,
    billing_mode: Option<BillingMode>,
    provisioned_throughput: Option<ProvisionedThroughput>,
    #[serde(default)]
    attribute_definitions: Vec<AttributeDefinition>,
    #[serde(default)]
    global_secondary_index_updates: Vec<IndexUpdate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexUpdate {
    create: Option<GlobalSecondaryIndex>,
    delete: Option<IndexName>,
    update: Option<IndexThroughput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexName {
    index_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexThroughput {
    index_name: String,
    provisioned_throughput: Option<ProvisionedThroughput>,
}

/// Applies an `UpdateTable` (already accepted by rustack, so the table exists): billing mode,
/// throughput, attribute definitions and global index creation, deletion and update.
///
/// # Errors
///
/// `ValidationException` for an index that exists already, does not exist, or uses an
/// attribute without a definition.
pub fn update_table(engine: &RustackDynamoDB, body: &[u8]) -> Result<(), DynamoDBError> {
    let input: UpdateTable = serde_json::from_slice(body)
        .map_err(|e| DynamoDBError::serialization_exception(e.to_string()))?;
    edit_table(engine, &input.table_name, |table| {
        if let Some(mode) = input.billing_mode {
            table.billing_mode = mode;
        }
        if let Some(throughput) = input.provisioned_throughput {
            table.provisioned_throughput = Some(throughput);
        }
        for def in input.attribute_definitions {
            table
                .attribute_definitions
                .retain(|d| d.attribute_name != def.attribute_name);
            table.attribute_definitions.push(def);
        }
        for update in input.global_secondary_index_updates {
            if let Some(create) = update.create {
                create_index(table, create)?;
            }
            if let Some(delete) = update.delete {
                let before = table.gsi_definitions.len();
                table
                    .gsi_definitions
                    .retain(|g| g.index_name != delete.index_name);
                if table.gsi_definitions.len() == before {
                    return Err(DynamoDBError::resource_not_found(format!(
                        "Requested resource not found: Index: {} not found",
                        delete.index_name
                    )));
                }
            }
            if let Some(change) = update.update {
                let gsi = table
                    .gsi_definitions
                    .iter_mut()
                    .find(|g| g.index_name == change.index_name)
                    .ok_or_else(|| {
                        DynamoDBError::resource_not_found(format!(
                            "Requested resource not found: Index: {} not found",
                            change.index_name
                        ))
                    })?;
                gsi.provisioned_throughput = change.provisioned_throughput;
            }
        }
        Ok(())
    })
}

fn create_index(
    table: &mut DynamoDBTableSnapshot,
    index: GlobalSecondaryIndex,
) -> Result<(), DynamoDBError> {
    if table
        .gsi_definitions
        .iter()
        .any(|g| g.index_name == index.index_name)
    {
        return Err(DynamoDBError::validation(format!(
            "One or more parameter values were invalid: Index with name: {} already exists",
            index.index_name
        )));
    }
    for element in &index.key_schema {
        if !table
            .attribute_definitions
            .iter()
            .any(|d| d.attribute_name == element.attribute_name)
        {
            return Err(DynamoDBError::validation(format!(
                "One or more parameter values were invalid: Global Secondary Index KeySchema \
                 attribute {} is not defined in AttributeDefinitions",
                element.attribute_name
            )));
        }
    }
    table.gsi_definitions.push(index);
    Ok(())
}

/// Removes the global-index twins of local indexes from a table description response
/// (`Table` or `TableDescription`).
pub async fn hide_local_twins(
    response: http::Response<DynamoDBResponseBody>,
) -> Result<http::Response<DynamoDBResponseBody>, DynamoDBError> {
    let (parts, body) = response.into_parts();
    let bytes: Bytes = body
        .collect()
        .await
        .map_err(|e| DynamoDBError::internal_error(e.to_string()))?
        .to_bytes();
    let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(http::Response::from_parts(
            parts,
            DynamoDBResponseBody::from_bytes(bytes),
        ));
    };
    for key in ["Table", "TableDescription"] {
        if let Some(table) = json.get_mut(key).and_then(Value::as_object_mut) {
            let local: HashSet<String> = table
                .get("LocalSecondaryIndexes")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|i| i.get("IndexName")?.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(globals) = table
                .get_mut("GlobalSecondaryIndexes")
                .and_then(Value::as_array_mut)
            {
                globals.retain(|g| {
                    g.get("IndexName")
                        .and_then(Value::as_str)
                        .is_none_or(|n| !local.contains(n))
                });
                if globals.is_empty() {
                    table.remove("GlobalSecondaryIndexes");
                }
            }
        }
    }
    let data =
        serde_json::to_vec(&json).map_err(|e| DynamoDBError::internal_error(e.to_string()))?;
    Ok(json_response(data, ""))
}

/// The attributes an index holds, from a `DescribeTable` answer: `None` for `ALL`.
fn index_attributes(table: &Value, index: &str) -> Option<HashSet<String>> {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["AttributeName"].as_str().map(str::to_string))
            .collect()
    };
    let definition = ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"]
        .iter()
        .flat_map(|kind| table[*kind].as_array().into_iter().flatten())
        .find(|i| i["IndexName"] == index)?;
    let projection = &definition["Projection"];
    if projection["ProjectionType"].as_str().unwrap_or("ALL") == "ALL" {
        return None;
    }
    let mut keep: HashSet<String> = names(&table["KeySchema"]).into_iter().collect();
    keep.extend(names(&definition["KeySchema"]));
    keep.extend(
        projection["NonKeyAttributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string)),
    );
    Some(keep)
}

/// Applies a `KEYS_ONLY` or `INCLUDE` index projection to a `Query` or `Scan` answer, which
/// rustack fills with whole items. `table` is the table's `DescribeTable` answer; a request that
/// chose its own attributes (`ProjectionExpression`, `AttributesToGet`, `Select`) is left alone.
pub fn project_index(request: &Value, table: &Value, answer: &mut Value) {
    if ["ProjectionExpression", "AttributesToGet", "Select"]
        .iter()
        .any(|k| request.get(*k).is_some())
    {
        return;
    }
    let Some(index) = request["IndexName"].as_str() else {
        return;
    };
    let Some(keep) = index_attributes(&table["Table"], index) else {
        return;
    };
    for item in answer["Items"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        item.retain(|name, _| keep.contains(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(projection: Value) -> Value {
        json!({"Table": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [{"IndexName": "g", "Projection": projection,
                "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"}]}]
        }})
    }

    fn answer() -> Value {
        json!({"Items": [{"pk": {"S": "a"}, "sk": {"N": "1"}, "gk": {"S": "x"}, "inc": {"S": "i"}, "other": {"S": "o"}}]})
    }

    #[test]
    fn keys_only_keeps_the_table_and_index_keys() {
        let mut out = answer();
        project_index(
            &json!({"IndexName": "g"}),
            &table(json!({"ProjectionType": "KEYS_ONLY"})),
            &mut out,
        );
        let mut names: Vec<&String> = out["Items"][0].as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["gk", "pk", "sk"]);
    }

    #[test]
    fn include_adds_the_listed_attributes() {
        let mut out = answer();
        project_index(
            &json!({"IndexName": "g"}),
            &table(json!({"ProjectionType": "INCLUDE", "NonKeyAttributes": ["inc"]})),
            &mut out,
        );
        assert!(out["Items"][0].get("inc").is_some());
        assert!(out["Items"][0].get("other").is_none());
    }

    #[test]
    fn all_and_explicit_projections_are_left_alone() {
        let mut out = answer();
        project_index(
            &json!({"IndexName": "g"}),
            &table(json!({"ProjectionType": "ALL"})),
            &mut out,
        );
        assert_eq!(out, answer());
        project_index(
            &json!({"IndexName": "g", "ProjectionExpression": "other"}),
            &table(json!({"ProjectionType": "KEYS_ONLY"})),
            &mut out,
        );
        assert_eq!(out, answer());
    }
}
