//! `AWS::S3::Bucket`, `AWS::DynamoDB::Table` and `AWS::Serverless::SimpleTable`: what the
//! provisioner creates (names, keys, indexes, billing, TTL, streams, lifecycle and CORS rules).

use super::{Props, R, to_bool, to_string, to_strings, to_u32};
use crate::intrinsics::Ctx;
use crate::manifest::{
    AttributeDefinition, Bucket, BucketCorsRule, KeyElement, LifecycleRule, SecondaryIndex, Table,
};
use crate::yaml::{Node, Value};

fn items<'n>(ctx: &Ctx<'_>, n: &'n Node) -> R<&'n [Node]> {
    match &n.value {
        Value::List(items) => Ok(items),
        _ => Err(ctx.err(n.pos, format!("expected a list, found {}", n.kind()))),
    }
}

fn field<'n>(ctx: &Ctx<'_>, n: &'n Node, key: &str) -> R<&'n Node> {
    n.get(key)
        .ok_or_else(|| ctx.err(n.pos, format!("{key} is required")))
}

/// An S3 bucket.
pub(crate) fn bucket(p: &Props<'_, '_>) -> R<(String, Bucket)> {
    let ctx = p.ctx;
    let name = ctx.physical_name(p.id)?;
    p.raw("BucketName");
    let mut bucket = Bucket::default();
    if let Some(lc) = p.get("LifecycleConfiguration")? {
        for rule in items(ctx, field(ctx, &lc, "Rules")?)? {
            let status = to_string(ctx, field(ctx, rule, "Status")?)?;
            let prefix = match (
                rule.get("Prefix"),
                rule.get("Filter").and_then(|f| f.get("Prefix")),
            ) {
                (Some(p), _) | (None, Some(p)) => to_string(ctx, p)?,
                (None, None) => String::new(),
            };
            let known = [
                "Id",
                "Status",
                "Prefix",
                "Filter",
                "ExpirationInDays",
                "AbortIncompleteMultipartUpload",
            ];
            if let Some(map) = rule.as_map()
                && let Some((k, _)) = map.iter().find(|(k, _)| !known.contains(&k.as_str()))
            {
                ctx.warnings.borrow_mut().push(format!(
                    "{} (AWS::S3::Bucket): lifecycle rule property {k} is ignored (only expiration is applied)",
                    p.id
                ));
            }
            bucket.lifecycle_rules.push(LifecycleRule {
                id: rule.get("Id").map(|i| to_string(ctx, i)).transpose()?,
                enabled: status == "Enabled",
                prefix,
                expiration_days: rule
                    .get("ExpirationInDays")
                    .map(|d| to_u32(ctx, d))
                    .transpose()?,
                abort_incomplete_multipart_days: rule
                    .get("AbortIncompleteMultipartUpload")
                    .map(|a| to_u32(ctx, field(ctx, a, "DaysAfterInitiation")?))
                    .transpose()?,
            });
        }
    }
    if let Some(cors) = p.get("CorsConfiguration")? {
        for rule in items(ctx, field(ctx, &cors, "CorsRules")?)? {
            let list = |k: &str| rule.get(k).map_or(Ok(Vec::new()), |v| to_strings(ctx, v));
            bucket.cors_rules.push(BucketCorsRule {
                allowed_origins: to_strings(ctx, field(ctx, rule, "AllowedOrigins")?)?,
                allowed_methods: to_strings(ctx, field(ctx, rule, "AllowedMethods")?)?,
                allowed_headers: list("AllowedHeaders")?,
                exposed_headers: list("ExposedHeaders")?,
                max_age_s: rule.get("MaxAge").map(|m| to_u32(ctx, m)).transpose()?,
            });
        }
    }
    p.warn_ignored("AWS::S3::Bucket");
    Ok((name, bucket))
}

fn key_schema(ctx: &Ctx<'_>, n: &Node) -> R<Vec<KeyElement>> {
    items(ctx, n)?
        .iter()
        .map(|k| {
            Ok(KeyElement {
                name: to_string(ctx, field(ctx, k, "AttributeName")?)?,
                key_type: to_string(ctx, field(ctx, k, "KeyType")?)?,
            })
        })
        .collect()
}

fn indexes(ctx: &Ctx<'_>, n: Option<Node>) -> R<Vec<SecondaryIndex>> {
    let Some(n) = n else { return Ok(Vec::new()) };
    items(ctx, &n)?
        .iter()
        .map(|i| {
            let projection = field(ctx, i, "Projection")?;
            Ok(SecondaryIndex {
                name: to_string(ctx, field(ctx, i, "IndexName")?)?,
                key_schema: key_schema(ctx, field(ctx, i, "KeySchema")?)?,
                projection: match projection.get("ProjectionType") {
                    Some(t) => to_string(ctx, t)?,
                    None => "KEYS_ONLY".to_string(),
                },
                non_key_attributes: projection
                    .get("NonKeyAttributes")
                    .map_or(Ok(Vec::new()), |a| to_strings(ctx, a))?,
            })
        })
        .collect()
}

/// A DynamoDB table.
pub(crate) fn table(p: &Props<'_, '_>) -> R<(String, Table)> {
    let ctx = p.ctx;
    let name = ctx.physical_name(p.id)?;
    p.raw("TableName");
    let schema_node = p
        .get("KeySchema")?
        .ok_or_else(|| ctx.err(p.pos, "KeySchema is required"))?;
    let key_schema = key_schema(ctx, &schema_node)?;
    let attributes = match p.get("AttributeDefinitions")? {
        Some(n) => items(ctx, &n)?
            .iter()
            .map(|a| {
                Ok(AttributeDefinition {
                    name: to_string(ctx, field(ctx, a, "AttributeName")?)?,
                    attribute_type: to_string(ctx, field(ctx, a, "AttributeType")?)?,
                })
            })
            .collect::<R<Vec<_>>>()?,
        None => Vec::new(),
    };
    let gsis = indexes(ctx, p.get("GlobalSecondaryIndexes")?)?;
    let lsis = indexes(ctx, p.get("LocalSecondaryIndexes")?)?;
    // CloudFormation refuses a key attribute that AttributeDefinitions does not type.
    for key in key_schema
        .iter()
        .chain(gsis.iter().chain(&lsis).flat_map(|i| &i.key_schema))
    {
        if !attributes.iter().any(|a| a.name == key.name) {
            return Err(ctx.err(
                schema_node.pos,
                format!("key attribute {} is not in AttributeDefinitions", key.name),
            ));
        }
    }
    let ttl_attribute = match p.get("TimeToLiveSpecification")? {
        Some(t) if t.get("Enabled").map(|e| to_bool(ctx, e)).transpose()? == Some(true) => {
            Some(to_string(ctx, field(ctx, &t, "AttributeName")?)?)
        }
        _ => None,
    };
    let stream_view_type = p
        .get("StreamSpecification")?
        .map(|s| to_string(ctx, field(ctx, &s, "StreamViewType")?))
        .transpose()?;
    p.raw("ProvisionedThroughput");
    let table = Table {
        key_schema,
        attributes,
        global_secondary_indexes: gsis,
        local_secondary_indexes: lsis,
        billing_mode: p
            .string("BillingMode")?
            .unwrap_or_else(|| "PROVISIONED".into()),
        ttl_attribute,
        stream_view_type,
    };
    p.warn_ignored("AWS::DynamoDB::Table");
    Ok((name, table))
}

/// A SAM `SimpleTable`: one hash key (`PrimaryKey`, by default `id` of type String).
pub(crate) fn simple_table(p: &Props<'_, '_>) -> R<(String, Table)> {
    let ctx = p.ctx;
    let name = ctx.physical_name(p.id)?;
    p.raw("TableName");
    let (key, ty) = match p.get("PrimaryKey")? {
        Some(k) => {
            let ty = to_string(ctx, field(ctx, &k, "Type")?)?;
            let ty = match ty.as_str() {
                "String" => "S",
                "Number" => "N",
                "Binary" => "B",
                other => {
                    return Err(ctx.err(
                        k.pos,
                        format!("PrimaryKey.Type {other:?} is not String, Number or Binary"),
                    ));
                }
            };
            (to_string(ctx, field(ctx, &k, "Name")?)?, ty)
        }
        None => ("id".to_string(), "S"),
    };
    let billing_mode = if p.raw("ProvisionedThroughput").is_some() {
        "PROVISIONED"
    } else {
        "PAY_PER_REQUEST"
    };
    p.warn_ignored("AWS::Serverless::SimpleTable");
    Ok((
        name,
        Table {
            key_schema: vec![KeyElement {
                name: key.clone(),
                key_type: "HASH".into(),
            }],
            attributes: vec![AttributeDefinition {
                name: key,
                attribute_type: ty.into(),
            }],
            global_secondary_indexes: Vec::new(),
            local_secondary_indexes: Vec::new(),
            billing_mode: billing_mode.into(),
            ttl_attribute: None,
            stream_view_type: None,
        },
    ))
}
