//! The read side of Lambda's management API, enough for `aws lambda list-functions`,
//! `get-function`, `get-function-configuration`, `list-aliases` and
//! `list-versions-by-function`.

use serde_json::{Value, json};

use crate::registry::{FunctionEntry, Registry};
use lambdock_template::manifest::Code;

/// `FunctionConfiguration` of a function at a version.
pub fn configuration(
    registry: &Registry,
    f: &FunctionEntry,
    version: &str,
    last_modified: &str,
) -> Value {
    let c = &f.config;
    let arn = if version == "$LATEST" {
        f.arn.clone()
    } else {
        format!("{}:{version}", f.arn)
    };
    let (package_type, mut extra) = match &c.code {
        Code::Dir(_) => ("Zip", json!({"Runtime": c.runtime, "Handler": c.handler})),
        Code::Image(image) => (
            "Image",
            json!({"ImageConfigResponse": {}, "CodeSha256": "", "ImageUri": image}),
        ),
    };
    let mut v = json!({
        "FunctionName": f.name,
        "FunctionArn": arn,
        "Role": format!("arn:aws:iam::{}:role/lambdock-execution", registry.account_id),
        "CodeSize": 0,
        "CodeSha256": f.fingerprint,
        "Description": c.description,
        "Timeout": c.timeout_s.ceil() as u64,
        "MemorySize": c.memory_mb,
        "LastModified": last_modified,
        "Version": version,
        "Environment": {"Variables": c.environment},
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": f.fingerprint,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": package_type,
        "Architectures": if c.architectures.is_empty() { vec!["x86_64".to_string()] } else { c.architectures.clone() },
        "EphemeralStorage": {"Size": c.ephemeral_storage_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name)},
    });
    if let (Some(map), Some(more)) = (v.as_object_mut(), extra.as_object_mut()) {
        map.append(more);
    }
    if !c.layers.is_empty()
        && let Some(map) = v.as_object_mut()
    {
        let layers: Vec<Value> = c
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let name = l.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| format!("layer{i}"));
                json!({"Arn": format!("arn:aws:lambda:{}:{}:layer:{name}:1", registry.region, registry.account_id), "CodeSize": 0})
            })
            .collect();
        map.insert("Layers".into(), Value::Array(layers));
    }
    v
}

/// `GetFunction`.
pub fn get_function(
    registry: &Registry,
    f: &FunctionEntry,
    version: &str,
    last_modified: &str,
) -> Value {
    let mut v = json!({
        "Configuration": configuration(registry, f, version, last_modified),
        "Code": {"RepositoryType": "Lambdock", "Location": ""},
        "Tags": {},
    });
    if let (Some(reserved), Some(map)) = (f.config.reserved_concurrency, v.as_object_mut()) {
        map.insert(
            "Concurrency".into(),
            json!({"ReservedConcurrentExecutions": reserved}),
        );
    }
    v
}

/// `ListFunctions` (every function, `$LATEST`; one page).
pub fn list_functions(registry: &Registry, last_modified: &str) -> Value {
    let functions: Vec<Value> = registry
        .functions
        .values()
        .map(|f| configuration(registry, f, "$LATEST", last_modified))
        .collect();
    json!({"Functions": functions})
}

/// `ListVersionsByFunction`: `$LATEST` and every published version.
pub fn list_versions(registry: &Registry, f: &FunctionEntry, last_modified: &str) -> Value {
    let versions: Vec<Value> = std::iter::once("$LATEST")
        .chain(f.config.versions.iter().map(String::as_str))
        .map(|v| configuration(registry, f, v, last_modified))
        .collect();
    json!({"Versions": versions})
}

/// `ListAliases`.
pub fn list_aliases(f: &FunctionEntry) -> Value {
    let aliases: Vec<Value> = f
        .config
        .aliases
        .iter()
        .map(|(name, version)| {
            json!({
                "AliasArn": format!("{}:{name}", f.arn),
                "Name": name,
                "FunctionVersion": version,
                "Description": "",
                "RevisionId": f.fingerprint,
            })
        })
        .collect();
    json!({"Aliases": aliases})
}
