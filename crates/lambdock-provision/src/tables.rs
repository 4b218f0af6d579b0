//! Tables: created when missing with their keys, indexes, billing mode, stream and TTL; an
//! existing table is compared with the manifest and differences are reported, not applied
//! (except TTL, which DynamoDB changes in place).

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableDescription, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use lambdock_template::manifest::{KeyElement, SecondaryIndex, Table};

use crate::{Change, ProvisionError, describe};

/// Capacity of a `PROVISIONED` table when the manifest names none: stores on-prem do not
/// meter it, but DynamoDB's API requires a value.
const DEFAULT_CAPACITY: i64 = 5;

fn error(name: &str, action: &'static str, message: String) -> ProvisionError {
    ProvisionError {
        kind: "table",
        name: name.to_string(),
        action,
        message,
    }
}

/// Creates or checks one table.
pub(crate) async fn provision(
    db: &Client,
    name: &str,
    table: &Table,
) -> Result<Change, ProvisionError> {
    let existing = match db.describe_table().table_name(name).send().await {
        Ok(out) => out.table,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            None
        }
        Err(e) => return Err(error(name, "checking it", describe(&e))),
    };
    let Some(existing) = existing else {
        create(db, name, table).await?;
        set_ttl(db, name, table).await?;
        return Ok(Change::Created);
    };
    let differences = differences(&existing, table);
    let ttl_changed = ttl_attribute(db, name).await? != table.ttl_attribute;
    if ttl_changed {
        set_ttl(db, name, table).await?;
    }
    Ok(match (differences.is_empty(), ttl_changed) {
        (false, _) => Change::Differs(differences),
        (true, true) => Change::Updated(vec!["time to live".into()]),
        (true, false) => Change::Unchanged,
    })
}

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>, String> {
    elements
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn projection(index: &SecondaryIndex) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(index.projection.as_str()))
        .set_non_key_attributes(Some(index.non_key_attributes.clone()).filter(|a| !a.is_empty()))
        .build()
}

async fn create(db: &Client, name: &str, table: &Table) -> Result<(), ProvisionError> {
    let invalid = |message: String| error(name, "its definition", message);
    let provisioned = table.billing_mode == "PROVISIONED";
    let throughput = || {
        ProvisionedThroughput::builder()
            .read_capacity_units(DEFAULT_CAPACITY)
            .write_capacity_units(DEFAULT_CAPACITY)
            .build()
            .map_err(|e| invalid(e.to_string()))
    };
    let mut attributes = Vec::new();
    for a in &table.attributes {
        attributes.push(
            AttributeDefinition::builder()
                .attribute_name(&a.name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    let mut gsis = Vec::new();
    for index in &table.global_secondary_indexes {
        let mut b = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&index.key_schema).map_err(invalid)?))
            .projection(projection(index));
        if provisioned {
            b = b.provisioned_throughput(throughput()?);
        }
        gsis.push(b.build().map_err(|e| invalid(e.to_string()))?);
    }
    let mut lsis = Vec::new();
    for index in &table.local_secondary_indexes {
        lsis.push(
            LocalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(key_schema(&index.key_schema).map_err(invalid)?))
                .projection(projection(index))
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    let mut request = db
        .create_table()
        .table_name(name)
        .set_key_schema(Some(key_schema(&table.key_schema).map_err(invalid)?))
        .set_attribute_definitions(Some(attributes))
        .billing_mode(if provisioned {
            BillingMode::Provisioned
        } else {
            BillingMode::PayPerRequest
        })
        .set_global_secondary_indexes(Some(gsis).filter(|v| !v.is_empty()))
        .set_local_secondary_indexes(Some(lsis).filter(|v| !v.is_empty()));
    if provisioned {
        request = request.provisioned_throughput(throughput()?);
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| error(name, "creating it", describe(&e)))?;
    Ok(())
}

async fn ttl_attribute(db: &Client, name: &str) -> Result<Option<String>, ProvisionError> {
    let out = db
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| error(name, "reading its time to live", describe(&e)))?;
    Ok(out.time_to_live_description.and_then(|d| {
        matches!(
            d.time_to_live_status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        )
        .then_some(d.attribute_name)
        .flatten()
    }))
}

async fn set_ttl(db: &Client, name: &str, table: &Table) -> Result<(), ProvisionError> {
    let (attribute, enabled) = match (&table.ttl_attribute, ttl_attribute(db, name).await?) {
        (Some(wanted), _) => (wanted.clone(), true),
        (None, Some(current)) => (current, false),
        (None, None) => return Ok(()),
    };
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(enabled)
        .build()
        .map_err(|e| error(name, "its time to live", e.to_string()))?;
    db.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| error(name, "setting its time to live", describe(&e)))?;
    Ok(())
}

fn keys(elements: &[KeySchemaElement]) -> Vec<(String, String)> {
    elements
        .iter()
        .map(|k| (k.attribute_name.clone(), k.key_type.as_str().to_string()))
        .collect()
}

fn wanted_keys(elements: &[KeyElement]) -> Vec<(String, String)> {
    elements
        .iter()
        .map(|k| (k.name.clone(), k.key_type.clone()))
        .collect()
}

fn show(keys: &[(String, String)]) -> String {
    keys.iter()
        .map(|(n, t)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What differs between a table as it exists and as the manifest defines it, in words; empty
/// when they agree on everything that cannot change in place.
pub(crate) fn differences(existing: &TableDescription, wanted: &Table) -> Vec<String> {
    let mut out = Vec::new();
    let (have, want) = (keys(existing.key_schema()), wanted_keys(&wanted.key_schema));
    if have != want {
        out.push(format!(
            "key schema is {} but the template says {}",
            show(&have),
            show(&want)
        ));
    }
    let have_types: BTreeSet<(String, String)> = existing
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name.clone(),
                a.attribute_type.as_str().to_string(),
            )
        })
        .collect();
    for a in &wanted.attributes {
        let pair = (a.name.clone(), a.attribute_type.clone());
        if !have_types.contains(&pair) && have_types.iter().any(|(n, _)| *n == a.name) {
            out.push(format!(
                "attribute {} has another type than {}",
                a.name, a.attribute_type
            ));
        }
    }
    let gsis: Vec<(String, Vec<(String, String)>)> = existing
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().unwrap_or_default().to_string(),
                keys(i.key_schema()),
            )
        })
        .collect();
    let lsis: Vec<(String, Vec<(String, String)>)> = existing
        .local_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().unwrap_or_default().to_string(),
                keys(i.key_schema()),
            )
        })
        .collect();
    for (kind, have, want) in [
        ("global", &gsis, &wanted.global_secondary_indexes),
        ("local", &lsis, &wanted.local_secondary_indexes),
    ] {
        for index in want {
            match have.iter().find(|(n, _)| *n == index.name) {
                None => out.push(format!("{kind} secondary index {} is missing", index.name)),
                Some((_, k)) if *k != wanted_keys(&index.key_schema) => out.push(format!(
                    "{kind} secondary index {} has keys {} but the template says {}",
                    index.name,
                    show(k),
                    show(&wanted_keys(&index.key_schema))
                )),
                Some(_) => {}
            }
        }
        for (name, _) in have {
            if !want.iter().any(|i| i.name == *name) {
                out.push(format!(
                    "{kind} secondary index {name} is not in the template"
                ));
            }
        }
    }
    let billing = existing
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map_or("PROVISIONED", |m| m.as_str());
    if billing != wanted.billing_mode {
        out.push(format!(
            "billing mode is {billing} but the template says {}",
            wanted.billing_mode
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{BillingModeSummary, GlobalSecondaryIndexDescription};
    use lambdock_template::manifest::AttributeDefinition as Attr;

    fn element(name: &str, key_type: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .unwrap()
    }

    fn existing() -> TableDescription {
        TableDescription::builder()
            .key_schema(element("pk", KeyType::Hash))
            .key_schema(element("sk", KeyType::Range))
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name("by-sk")
                    .key_schema(element("sk", KeyType::Hash))
                    .build(),
            )
            .billing_mode_summary(
                BillingModeSummary::builder()
                    .billing_mode(BillingMode::PayPerRequest)
                    .build(),
            )
            .build()
    }

    fn wanted() -> Table {
        let key = |name: &str, key_type: &str| KeyElement {
            name: name.into(),
            key_type: key_type.into(),
        };
        Table {
            key_schema: vec![key("pk", "HASH"), key("sk", "RANGE")],
            attributes: vec![Attr {
                name: "pk".into(),
                attribute_type: "S".into(),
            }],
            global_secondary_indexes: vec![SecondaryIndex {
                name: "by-sk".into(),
                key_schema: vec![key("sk", "HASH")],
                projection: "ALL".into(),
                non_key_attributes: vec![],
            }],
            local_secondary_indexes: vec![],
            billing_mode: "PAY_PER_REQUEST".into(),
            ttl_attribute: None,
            stream_view_type: None,
        }
    }

    #[test]
    fn the_same_table_has_no_differences() {
        assert_eq!(differences(&existing(), &wanted()), Vec::<String>::new());
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let mut w = wanted();
        w.key_schema.truncate(1);
        w.attributes[0].attribute_type = "N".into();
        w.global_secondary_indexes[0].name = "by-other".into();
        w.billing_mode = "PROVISIONED".into();
        let d = differences(&existing(), &w);
        assert_eq!(
            d,
            vec![
                "key schema is HASH pk, RANGE sk but the template says HASH pk",
                "attribute pk has another type than N",
                "global secondary index by-other is missing",
                "global secondary index by-sk is not in the template",
                "billing mode is PAY_PER_REQUEST but the template says PROVISIONED",
            ]
        );
    }
}
