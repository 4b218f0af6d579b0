//! SAM's `Globals`, merged into each resource before anything else reads its properties, with
//! the SAM translator's rules: a mapping is merged key by key (recursively; the resource wins on
//! a conflict), lists are concatenated (the Globals' items first), and anything else (strings,
//! numbers, intrinsic calls, values of different kinds) is taken from the resource.

use crate::error::TemplateError;
use crate::intrinsics::Ctx;
use crate::yaml::{Node, Value};

/// The Globals sections and the properties each accepts (SAM's lists).
const SECTIONS: &[(&str, &str, &[&str])] = &[
    (
        "Function",
        "AWS::Serverless::Function",
        &[
            "Handler",
            "Runtime",
            "CodeUri",
            "DeadLetterQueue",
            "Description",
            "MemorySize",
            "Timeout",
            "VpcConfig",
            "Environment",
            "Tags",
            "PropagateTags",
            "Tracing",
            "KmsKeyArn",
            "Layers",
            "AutoPublishAlias",
            "AutoPublishAliasAllProperties",
            "DeploymentPreference",
            "PermissionsBoundary",
            "ReservedConcurrentExecutions",
            "ProvisionedConcurrencyConfig",
            "AssumeRolePolicyDocument",
            "EventInvokeConfig",
            "Architectures",
            "EphemeralStorage",
            "SnapStart",
            "RuntimeManagementConfig",
            "LoggingConfig",
            "RecursiveLoop",
            "SourceKMSKeyArn",
            "FunctionUrlConfig",
            "FileSystemConfigs",
            "CodeSigningConfigArn",
            "PackageType",
            "ImageConfig",
        ],
    ),
    (
        "Api",
        "AWS::Serverless::Api",
        &[
            "Auth",
            "Name",
            "DefinitionUri",
            "CacheClusterEnabled",
            "CacheClusterSize",
            "MergeDefinitions",
            "Variables",
            "EndpointConfiguration",
            "MethodSettings",
            "BinaryMediaTypes",
            "MinimumCompressionSize",
            "Cors",
            "GatewayResponses",
            "AccessLogSetting",
            "CanarySetting",
            "TracingEnabled",
            "OpenApiVersion",
            "Domain",
            "AlwaysDeploy",
            "PropagateTags",
        ],
    ),
    (
        "HttpApi",
        "AWS::Serverless::HttpApi",
        &[
            "Auth",
            "CorsConfiguration",
            "AccessLogSettings",
            "Tags",
            "DefaultRouteSettings",
            "Domain",
            "RouteSettings",
            "StageVariables",
            "PropagateTags",
        ],
    ),
    (
        "SimpleTable",
        "AWS::Serverless::SimpleTable",
        &["SSESpecification", "PointInTimeRecoverySpecification"],
    ),
    (
        "LayerVersion",
        "AWS::Serverless::LayerVersion",
        &["PropagateTags"],
    ),
    (
        "StateMachine",
        "AWS::Serverless::StateMachine",
        &["PropagateTags"],
    ),
];

/// The checked `Globals` section.
pub(crate) struct Globals<'t> {
    sections: Vec<(&'static str, &'t Node)>,
}

impl<'t> Globals<'t> {
    /// Checks `Globals` against SAM's lists of sections and properties.
    pub fn new(ctx: &Ctx<'_>, node: Option<&'t Node>) -> Result<Globals<'t>, TemplateError> {
        let mut sections = Vec::new();
        let Some(node) = node else {
            return Ok(Globals { sections });
        };
        let entries = node
            .as_map()
            .ok_or_else(|| ctx.err(node.pos, "Globals must be a mapping"))?;
        for (name, section) in entries {
            let (_, ty, allowed) = SECTIONS
                .iter()
                .find(|(n, _, _)| n == name)
                .ok_or_else(|| ctx.err(section.pos, format!("Globals: unknown section {name}")))?;
            let props = section
                .as_map()
                .ok_or_else(|| ctx.err(section.pos, format!("Globals.{name} must be a mapping")))?;
            for (prop, value) in props {
                if !allowed.contains(&prop.as_str()) {
                    return Err(ctx.err(
                        value.pos,
                        format!("{prop} is not a supported property of Globals.{name}"),
                    ));
                }
            }
            sections.push((*ty, section));
        }
        Ok(Globals { sections })
    }

    /// The properties of a resource of type `ty` with the Globals merged in (the implicit APIs
    /// pass an empty mapping).
    pub fn apply(&self, ty: &str, props: Option<&Node>) -> Option<Node> {
        let global = self
            .sections
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, n)| *n);
        match (global, props) {
            (Some(g), Some(p)) => Some(merge(g, p)),
            (Some(g), None) => Some(g.clone()),
            (None, p) => p.cloned(),
        }
    }
}

/// Merges a Globals value with a resource's value (see the module docs).
pub(crate) fn merge(global: &Node, local: &Node) -> Node {
    let plain_map = |n: &Node| n.as_map().is_some() && n.intrinsic().is_none();
    match (&global.value, &local.value) {
        (Value::Map(g), Value::Map(l)) if plain_map(global) && plain_map(local) => {
            let mut out: Vec<(String, Node)> = g
                .iter()
                .map(|(k, gv)| match local.get(k) {
                    Some(lv) => (k.clone(), merge(gv, lv)),
                    None => (k.clone(), gv.clone()),
                })
                .collect();
            for (k, lv) in l {
                if global.get(k).is_none() {
                    out.push((k.clone(), lv.clone()));
                }
            }
            Node::new(local.pos, Value::Map(out))
        }
        (Value::List(g), Value::List(l)) => {
            Node::new(local.pos, Value::List(g.iter().chain(l).cloned().collect()))
        }
        _ => local.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intrinsics::Pseudo;
    use std::path::Path;

    fn y(text: &str) -> Node {
        crate::yaml::parse(Path::new("t.yaml"), text).unwrap()
    }

    #[test]
    fn primitives_resource_wins() {
        let m = merge(&y("Timeout: 3\nRuntime: python3.12"), &y("Timeout: 30"));
        assert_eq!(
            m.to_json(),
            serde_json::json!({"Timeout": 30, "Runtime": "python3.12"})
        );
    }

    #[test]
    fn maps_merge_recursively_resource_wins_per_key() {
        let m = merge(
            &y("Environment: {Variables: {A: g, B: g}}"),
            &y("Environment: {Variables: {B: l, C: l}}"),
        );
        assert_eq!(
            m.to_json(),
            serde_json::json!({"Environment": {"Variables": {"A": "g", "B": "l", "C": "l"}}})
        );
    }

    #[test]
    fn lists_concatenate_globals_first() {
        let m = merge(&y("Layers: [a, b]"), &y("Layers: [c]"));
        assert_eq!(m.to_json(), serde_json::json!({"Layers": ["a", "b", "c"]}));
        let m = merge(&y("Layers: [a]"), &y("Layers: []"));
        assert_eq!(m.to_json(), serde_json::json!({"Layers": ["a"]}));
    }

    #[test]
    fn intrinsics_and_mismatched_kinds_take_the_resource_value() {
        let m = merge(&y("CodeUri: {Ref: P}"), &y("CodeUri: {Bucket: b}"));
        assert_eq!(m.to_json(), serde_json::json!({"CodeUri": {"Bucket": "b"}}));
        let m = merge(&y("Layers: [a]"), &y("Layers: !Ref L"));
        assert_eq!(m.to_json(), serde_json::json!({"Layers": {"Ref": "L"}}));
    }

    #[test]
    fn unknown_sections_and_properties_are_errors() {
        let pseudo = Pseudo {
            region: "r".into(),
            account_id: "1".into(),
            stack_name: "s".into(),
        };
        let ctx = Ctx::new("t.yaml".into(), pseudo);
        let g = y("Function:\n  Timeout: 3\n  Bogus: 1\n");
        let e = Globals::new(&ctx, Some(&g)).err().unwrap().to_string();
        assert!(
            e.contains("t.yaml:3:10: Bogus is not a supported property of Globals.Function"),
            "{e}"
        );
        let g = y("Queue:\n  X: 1\n");
        let e = Globals::new(&ctx, Some(&g)).err().unwrap().to_string();
        assert!(e.contains("unknown section Queue"), "{e}");
        let g = y("Function:\n  Timeout: 3\n");
        let globals = Globals::new(&ctx, Some(&g)).unwrap();
        let merged = globals
            .apply("AWS::Serverless::Function", Some(&y("Handler: h")))
            .unwrap();
        assert_eq!(
            merged.to_json(),
            serde_json::json!({"Timeout": 3, "Handler": "h"})
        );
        assert!(globals.apply("AWS::S3::Bucket", None).is_none());
    }
}
