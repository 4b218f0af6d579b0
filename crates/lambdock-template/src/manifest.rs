//! The deployment manifest: what the gateway runs. Versioned JSON, so a gateway can refuse a
//! manifest newer than it understands instead of misreading it.
//!
//! ```json
//! {
//!   "schema_version": 1,
//!   "functions": {
//!     "hello": {
//!       "runtime": "python3.12", "handler": "app.handler", "code": { "dir": "hello" },
//!       "memory_mb": 128, "timeout_s": 3, "environment": { "K": "V" },
//!       "reserved_concurrency": 5, "provisioned_concurrency": 1,
//!       "versions": ["1"], "aliases": { "live": "1" }
//!     }
//!   }
//! }
//! ```
//!
//! Relative code and layer paths are relative to the manifest file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The newest schema this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version of this document.
    pub schema_version: u32,
    /// Functions by name.
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
    /// HTTP APIs (`AWS::Serverless::Api` / `HttpApi`, and the implicit ones SAM creates) by
    /// logical id.
    #[serde(default)]
    pub apis: BTreeMap<String, Api>,
    /// Routes of the APIs, each to one function.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Scheduled invocations (`Schedule`, `ScheduleV2` events) by name.
    #[serde(default)]
    pub schedules: BTreeMap<String, Schedule>,
    /// S3 buckets to provision, by bucket name.
    #[serde(default)]
    pub buckets: BTreeMap<String, Bucket>,
    /// DynamoDB tables to provision, by table name.
    #[serde(default)]
    pub tables: BTreeMap<String, Table>,
}

/// Which API Gateway flavour serves an API, which fixes its event payload and error shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// REST API (`AWS::Serverless::Api`, `Api` events): payload 1.0, 403 on unknown routes.
    Rest,
    /// HTTP API (`AWS::Serverless::HttpApi`, `HttpApi` events): payload 2.0 by default, 404.
    Http,
}

/// One API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Api {
    /// REST or HTTP.
    pub kind: ApiKind,
    /// `StageName` (REST: `Prod` by SAM's default; HTTP: `$default`).
    pub stage: String,
    /// CORS settings, when the API has them.
    #[serde(default)]
    pub cors: Option<Cors>,
    /// Authorizers by name (routes refer to them).
    #[serde(default)]
    pub authorizers: BTreeMap<String, Authorizer>,
    /// REST's `BinaryMediaTypes` (`image/png`, `image/*`, `*/*`): request bodies of these
    /// content types reach the function base64-encoded, and base64 results are decoded for
    /// callers accepting them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binary_media_types: Vec<String>,
}

/// CORS as API Gateway applies it (answers preflights, decorates responses).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cors {
    /// Allowed origins (`*` for any).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Allowed methods.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age`, seconds.
    #[serde(default)]
    pub max_age_s: Option<u64>,
    /// `Access-Control-Allow-Credentials`.
    #[serde(default)]
    pub allow_credentials: bool,
}

/// How a route's callers are authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Authorizer {
    /// A JWT authorizer (HTTP API `JwtConfiguration`): tokens from `identity_source` are verified
    /// against the issuer's keys and must carry one of the audiences.
    Jwt {
        /// `IdentitySource`, such as `$request.header.Authorization`.
        identity_source: String,
        /// `issuer`.
        issuer: String,
        /// `audience`.
        #[serde(default)]
        audience: Vec<String>,
    },
    /// Tokens issued by the platform's own login endpoint (the reference's scheme), in the
    /// `Authorization` header.
    Lambdock,
}

/// One route: a method and path of an API to a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The API's logical id (a key of [`Manifest::apis`]).
    pub api: String,
    /// Upper-case HTTP method, or `ANY`.
    pub method: String,
    /// Path with `{param}` and a trailing `{proxy+}`, as in the template; or `$default`, an
    /// HTTP API's catch-all route (method `ANY`), which serves what no other route matches.
    pub path: String,
    /// The function.
    pub function: String,
    /// Version or alias to invoke (`AutoPublishAlias` routes call the alias), `None` for
    /// `$LATEST`.
    #[serde(default)]
    pub qualifier: Option<String>,
    /// Event payload version, `1.0` or `2.0`.
    pub payload_version: String,
    /// Authorizer name (a key of the API's authorizers); `None` for an open route.
    #[serde(default)]
    pub authorizer: Option<String>,
    /// OAuth scopes the authorizer must find in the token.
    #[serde(default)]
    pub authorization_scopes: Vec<String>,
    /// Callers must send a valid `x-api-key`.
    #[serde(default)]
    pub api_key_required: bool,
}

/// A scheduled invocation (EventBridge rule or EventBridge Scheduler schedule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The function.
    pub function: String,
    /// Version or alias to invoke, `None` for `$LATEST`.
    #[serde(default)]
    pub qualifier: Option<String>,
    /// `rate(...)` or `cron(...)`, EventBridge syntax.
    pub expression: String,
    /// IANA time zone of a cron expression (`ScheduleV2`'s `ScheduleExpressionTimezone`);
    /// `None` is UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The event sent instead of EventBridge's scheduled event (`Input`, a JSON text).
    #[serde(default)]
    pub input: Option<String>,
    /// `false` keeps the schedule but never fires it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `ScheduleV2` (EventBridge Scheduler) rather than an EventBridge rule.
    #[serde(default)]
    pub scheduler: bool,
    /// The EventBridge Scheduler schedule group (`ScheduleV2`'s `GroupName`); `None` is
    /// `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

fn default_true() -> bool {
    true
}

/// An S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bucket {
    /// Lifecycle rules.
    #[serde(default)]
    pub lifecycle_rules: Vec<LifecycleRule>,
    /// CORS rules.
    #[serde(default)]
    pub cors_rules: Vec<BucketCorsRule>,
}

/// A bucket lifecycle rule (the subset with an effect on-prem: expiration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// `Id`.
    #[serde(default)]
    pub id: Option<String>,
    /// `Status: Enabled`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Key prefix the rule applies to (empty: every object).
    #[serde(default)]
    pub prefix: String,
    /// `ExpirationInDays`.
    #[serde(default)]
    pub expiration_days: Option<u32>,
    /// `AbortIncompleteMultipartUpload.DaysAfterInitiation`.
    #[serde(default)]
    pub abort_incomplete_multipart_days: Option<u32>,
}

/// A bucket CORS rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BucketCorsRule {
    /// `AllowedOrigins`.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// `AllowedMethods`.
    #[serde(default)]
    pub allowed_methods: Vec<String>,
    /// `AllowedHeaders`.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// `ExposedHeaders`.
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    /// `MaxAge`, seconds.
    #[serde(default)]
    pub max_age_s: Option<u32>,
}

/// A DynamoDB table, in the terms of `CreateTable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// `KeySchema`.
    pub key_schema: Vec<KeyElement>,
    /// `AttributeDefinitions`.
    pub attributes: Vec<AttributeDefinition>,
    /// `GlobalSecondaryIndexes`.
    #[serde(default)]
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    /// `LocalSecondaryIndexes`.
    #[serde(default)]
    pub local_secondary_indexes: Vec<SecondaryIndex>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    pub billing_mode: String,
    /// `TimeToLiveSpecification.AttributeName` when enabled.
    #[serde(default)]
    pub ttl_attribute: Option<String>,
    /// `StreamSpecification.StreamViewType`, when streams are on.
    #[serde(default)]
    pub stream_view_type: Option<String>,
}

/// A key attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyElement {
    /// Attribute name.
    pub name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// An attribute's type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    /// Attribute name.
    pub name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// A global or local secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondaryIndex {
    /// `IndexName`.
    pub name: String,
    /// `KeySchema`.
    pub key_schema: Vec<KeyElement>,
    /// `Projection.ProjectionType`: `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
    /// `Projection.NonKeyAttributes`.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// Where a function's code is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// A directory (`/var/task`).
    Dir(PathBuf),
    /// An image reference (container backends).
    Image(String),
}

fn default_memory() -> u32 {
    128
}
fn default_timeout() -> f64 {
    3.0
}
fn default_storage() -> u32 {
    512
}

/// One function, as AWS Lambda describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Runtime identifier (`python3.12`, `provided.al2023`).
    pub runtime: String,
    /// Handler.
    #[serde(default)]
    pub handler: String,
    /// Code.
    pub code: Code,
    /// Layer directories, in order.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
    /// `MemorySize`, MB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// `Timeout`, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// `EphemeralStorage`, MB.
    #[serde(default = "default_storage")]
    pub ephemeral_storage_mb: u32,
    /// `Environment.Variables`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `ReservedConcurrentExecutions`.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
    /// `ProvisionedConcurrencyConfig.ProvisionedConcurrentExecutions`, kept warm for the
    /// version [`Function::provisioned_version`] names.
    #[serde(default)]
    pub provisioned_concurrency: u32,
    /// `Description`.
    #[serde(default)]
    pub description: String,
    /// `Architectures`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Published version numbers (each runs this configuration).
    #[serde(default)]
    pub versions: Vec<String>,
    /// Aliases to version numbers (`live` → `1`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// `ImageConfig` of an image function.
    #[serde(default)]
    pub image_config: Option<ImageConfig>,
}

impl Function {
    /// The version provisioned concurrency applies to. Lambda configures it on an alias or a
    /// published version, never on `$LATEST` (SAM puts it on the `AutoPublishAlias`): the first
    /// alias's version, else the newest published version, else `$LATEST` for a manifest that
    /// publishes none.
    pub fn provisioned_version(&self) -> &str {
        self.aliases
            .values()
            .next()
            .or(self.versions.last())
            .map_or("$LATEST", String::as_str)
    }
}

/// An image function's overrides of its image's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `EntryPoint`.
    #[serde(default)]
    pub entry_point: Vec<String>,
    /// `Command`.
    #[serde(default)]
    pub command: Vec<String>,
    /// `WorkingDirectory`.
    #[serde(default)]
    pub working_directory: Option<String>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable file.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not the expected JSON.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with line and column.
        source: serde_json::Error,
    },
    /// A schema newer than this build.
    #[error(
        "{path}: schema_version {found} is newer than this Lambdock understands ({SCHEMA_VERSION}); upgrade Lambdock"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// A function that cannot work.
    #[error("function {function}: {reason}")]
    Invalid {
        /// Function name.
        function: String,
        /// What is wrong.
        reason: String,
    },
}

/// Lambda's function name rule: 1-64 letters, digits, hyphens or underscores.
pub fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Manifest {
    /// A deployment with nothing in it.
    pub fn empty() -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            functions: BTreeMap::new(),
            apis: BTreeMap::new(),
            routes: Vec::new(),
            schedules: BTreeMap::new(),
            buckets: BTreeMap::new(),
            tables: BTreeMap::new(),
        }
    }

    /// Reads a manifest file and resolves its relative paths.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?;
        Manifest::parse(&text, path, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and validates a manifest; `origin` names it in errors and relative code and layer
    /// paths are resolved against `base`.
    pub fn parse(text: &[u8], origin: &Path, base: &Path) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest =
            serde_json::from_slice(text).map_err(|source| ManifestError::Parse {
                path: origin.into(),
                source,
            })?;
        if manifest.schema_version > SCHEMA_VERSION {
            return Err(ManifestError::TooNew {
                path: origin.into(),
                found: manifest.schema_version,
            });
        }
        for function in manifest.functions.values_mut() {
            if let Code::Dir(dir) = &mut function.code
                && dir.is_relative()
            {
                *dir = base.join(&*dir);
            }
            for layer in &mut function.layers {
                if layer.is_relative() {
                    *layer = base.join(&*layer);
                }
            }
        }
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what Lambda itself would refuse.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for (name, f) in &self.functions {
            let invalid = |reason: String| ManifestError::Invalid {
                function: name.clone(),
                reason,
            };
            if !valid_function_name(name) {
                return Err(invalid(
                    "names are 1-64 letters, digits, hyphens or underscores".into(),
                ));
            }
            if !(128..=10240).contains(&f.memory_mb) {
                return Err(invalid(format!(
                    "memory_mb {} is outside 128-10240",
                    f.memory_mb
                )));
            }
            if !(f.timeout_s > 0.0 && f.timeout_s <= 900.0) {
                return Err(invalid(format!(
                    "timeout_s {} is outside 1-900",
                    f.timeout_s
                )));
            }
            if let Some(reserved) = f.reserved_concurrency
                && f.provisioned_concurrency > reserved
            {
                return Err(invalid(format!(
                    "provisioned_concurrency {} exceeds reserved_concurrency {reserved}",
                    f.provisioned_concurrency
                )));
            }
            for (alias, version) in &f.aliases {
                if version != "$LATEST" && !f.versions.contains(version) {
                    return Err(invalid(format!(
                        "alias {alias} points at version {version}, which is not published"
                    )));
                }
            }
        }
        let invalid = |kind: &str, name: &str, reason: String| ManifestError::Invalid {
            function: format!("{kind} {name}"),
            reason,
        };
        for route in &self.routes {
            let name = format!("{} {} ({})", route.method, route.path, route.api);
            let api = self.apis.get(&route.api).ok_or_else(|| {
                invalid("route", &name, format!("API {} is not defined", route.api))
            })?;
            if !self.functions.contains_key(&route.function) {
                return Err(invalid(
                    "route",
                    &name,
                    format!("function {} is not defined", route.function),
                ));
            }
            if !matches!(route.payload_version.as_str(), "1.0" | "2.0") {
                return Err(invalid(
                    "route",
                    &name,
                    format!(
                        "payload_version {} is not 1.0 or 2.0",
                        route.payload_version
                    ),
                ));
            }
            if let Some(authorizer) = &route.authorizer
                && !api.authorizers.contains_key(authorizer)
            {
                return Err(invalid(
                    "route",
                    &name,
                    format!("authorizer {authorizer} is not defined on its API"),
                ));
            }
        }
        for (name, schedule) in &self.schedules {
            if !self.functions.contains_key(&schedule.function) {
                return Err(invalid(
                    "schedule",
                    name,
                    format!("function {} is not defined", schedule.function),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_resolves_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(
            &path,
            r#"{"schema_version":1,"functions":{"f":{"runtime":"python3.12","handler":"app.h","code":{"dir":"code"},"versions":["1"],"aliases":{"live":"1"}}}}"#,
        )
        .unwrap();
        let m = Manifest::load(&path).unwrap();
        let f = &m.functions["f"];
        assert_eq!(f.code, Code::Dir(dir.path().join("code")));
        assert_eq!(
            (f.memory_mb, f.timeout_s, f.ephemeral_storage_mb),
            (128, 3.0, 512)
        );
    }

    #[test]
    fn refuses_what_lambda_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let cases = [
            (r#"{"schema_version":2}"#, "newer than this Lambdock"),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"memory_mb":64}}}"#,
                "memory_mb 64",
            ),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"aliases":{"live":"3"}}}}"#,
                "alias live points at version 3",
            ),
            (
                r#"{"schema_version":1,"functions":{"bad name":{"runtime":"x","code":{"dir":"."}}}}"#,
                "names are",
            ),
            (
                r#"{"schema_version":1,"functions":{"f":{"runtime":"x","code":{"dir":"."},"reserved_concurrency":1,"provisioned_concurrency":2}}}"#,
                "exceeds reserved",
            ),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Manifest::load(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn provisioned_concurrency_goes_to_the_alias_version() {
        let mut f: Function = serde_json::from_str(
            r#"{"runtime":"python3.12","code":{"dir":"."},"provisioned_concurrency":1}"#,
        )
        .expect("function");
        assert_eq!(f.provisioned_version(), "$LATEST");
        f.versions = vec!["1".into(), "2".into()];
        assert_eq!(f.provisioned_version(), "2");
        f.aliases.insert("live".into(), "1".into());
        assert_eq!(f.provisioned_version(), "1");
    }
}
