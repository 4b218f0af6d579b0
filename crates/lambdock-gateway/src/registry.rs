//! The functions the gateway serves, and how a caller's `FunctionName` and `Qualifier` name one:
//! a name (`my-function`, `my-function:live`), a partial ARN
//! (`123456789012:function:my-function[:qualifier]`) or a full ARN, with `$LATEST`, a published
//! version or an alias.

use std::collections::BTreeMap;
use std::sync::Arc;

use lambdock_template::manifest::{Function, Manifest, valid_function_name};

use crate::errors::LambdaError;

/// One function of the deployment.
#[derive(Debug)]
pub struct FunctionEntry {
    /// Name.
    pub name: String,
    /// Configuration.
    pub config: Function,
    /// Unqualified ARN.
    pub arn: String,
    /// Fingerprint of the configuration: workers made for another one are not reused.
    pub fingerprint: String,
}

/// What a call resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The function.
    pub function: Arc<FunctionEntry>,
    /// The version that runs (`$LATEST` or a number), for `X-Amz-Executed-Version`.
    pub version: String,
    /// The ARN as invoked (qualified when the caller qualified it).
    pub invoked_arn: String,
}

/// The deployment the gateway serves.
#[derive(Debug)]
pub struct Registry {
    /// Region in ARNs.
    pub region: String,
    /// Account id in ARNs.
    pub account_id: String,
    /// Functions by name.
    pub functions: BTreeMap<String, Arc<FunctionEntry>>,
    /// The whole manifest (routes, schedules and resources are read from it).
    pub manifest: Arc<Manifest>,
}

fn valid_qualifier(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= 128
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '-'))
}

impl Registry {
    /// The registry of a manifest.
    pub fn new(manifest: &Manifest, region: &str, account_id: &str) -> Registry {
        let functions = manifest
            .functions
            .iter()
            .map(|(name, config)| {
                let fingerprint = format!(
                    "{:016x}",
                    fnv1a(serde_json::to_string(config).unwrap_or_default().as_bytes())
                );
                let entry = FunctionEntry {
                    name: name.clone(),
                    config: config.clone(),
                    arn: format!("arn:aws:lambda:{region}:{account_id}:function:{name}"),
                    fingerprint,
                };
                (name.clone(), Arc::new(entry))
            })
            .collect();
        Registry {
            region: region.into(),
            account_id: account_id.into(),
            functions,
            manifest: Arc::new(manifest.clone()),
        }
    }

    fn arn(&self, name: &str, qualifier: Option<&str>) -> String {
        let base = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        );
        match qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }

    /// Splits a `FunctionName` into name and qualifier suffix, checking the ARN's parts.
    fn parse<'a>(&self, function_name: &'a str) -> Result<(&'a str, Option<&'a str>), LambdaError> {
        let parts: Vec<&str> = function_name.split(':').collect();
        let invalid = || {
            LambdaError::InvalidParameterValue(format!(
                "1 validation error detected: Value '{function_name}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            ))
        };
        let (name, qualifier, region, account) = match parts.as_slice() {
            [name] => (*name, None, None, None),
            [name, q] => (*name, Some(*q), None, None),
            [account, "function", name] => (*name, None, None, Some(*account)),
            [account, "function", name, q] => (*name, Some(*q), None, Some(*account)),
            ["arn", _, "lambda", region, account, "function", name] => {
                (*name, None, Some(*region), Some(*account))
            }
            ["arn", _, "lambda", region, account, "function", name, q] => {
                (*name, Some(*q), Some(*region), Some(*account))
            }
            _ => return Err(invalid()),
        };
        if !valid_function_name(name) || qualifier.is_some_and(|q| !valid_qualifier(q)) {
            return Err(invalid());
        }
        if account.is_some_and(|a| a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit())) {
            return Err(invalid());
        }
        // Another account's or region's function does not exist here.
        if account.is_some_and(|a| a != self.account_id) || region.is_some_and(|r| r != self.region)
        {
            return Err(LambdaError::ResourceNotFound {
                arn: function_name.to_string(),
            });
        }
        Ok((name, qualifier))
    }

    /// Resolves a call's `FunctionName` and `Qualifier`.
    pub fn resolve(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Resolved, LambdaError> {
        let (name, suffix) = self.parse(function_name)?;
        let qualifier = match (suffix, qualifier.filter(|q| !q.is_empty())) {
            (Some(a), Some(b)) if a != b => {
                return Err(LambdaError::InvalidParameterValue(
                    "The derived qualifier from the function name does not match the specified qualifier.".into(),
                ));
            }
            (Some(q), _) | (None, Some(q)) => Some(q),
            (None, None) => None,
        };
        if let Some(q) = qualifier
            && !valid_qualifier(q)
        {
            return Err(LambdaError::InvalidParameterValue(format!(
                "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
            )));
        }
        let not_found = || LambdaError::ResourceNotFound {
            arn: self.arn(name, qualifier),
        };
        let function = self.functions.get(name).cloned().ok_or_else(not_found)?;
        let version = match qualifier {
            None | Some("$LATEST") => "$LATEST".to_string(),
            Some(q) if function.config.versions.iter().any(|v| v == q) => q.to_string(),
            Some(q) => function
                .config
                .aliases
                .get(q)
                .cloned()
                .ok_or_else(not_found)?,
        };
        Ok(Resolved {
            invoked_arn: self.arn(name, qualifier),
            function,
            version,
        })
    }
}

/// A stable 64-bit hash (FNV-1a): fingerprints must not change between builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let manifest: Manifest = serde_json::from_str(
            r#"{"schema_version":1,"functions":{"f":{"runtime":"python3.12","code":{"dir":"/x"},"versions":["1","2"],"aliases":{"live":"2"}}}}"#,
        )
        .unwrap();
        Registry::new(&manifest, "us-east-1", "123456789012")
    }

    #[test]
    fn every_name_form_resolves() {
        let r = registry();
        for (name, qualifier, version, arn) in [
            (
                "f",
                None,
                "$LATEST",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                "f:live",
                None,
                "2",
                "arn:aws:lambda:us-east-1:123456789012:function:f:live",
            ),
            (
                "f",
                Some("1"),
                "1",
                "arn:aws:lambda:us-east-1:123456789012:function:f:1",
            ),
            (
                "f",
                Some("$LATEST"),
                "$LATEST",
                "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
            ),
            (
                "123456789012:function:f",
                None,
                "$LATEST",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                "123456789012:function:f:2",
                None,
                "2",
                "arn:aws:lambda:us-east-1:123456789012:function:f:2",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                None,
                "$LATEST",
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:f:live",
                Some("live"),
                "2",
                "arn:aws:lambda:us-east-1:123456789012:function:f:live",
            ),
        ] {
            let got = r
                .resolve(name, qualifier)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (got.version.as_str(), got.invoked_arn.as_str()),
                (version, arn),
                "{name}"
            );
        }
    }

    #[test]
    fn misses_are_not_found_and_bad_names_invalid() {
        let r = registry();
        for (name, qualifier, message) in [
            (
                "g",
                None,
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:g",
            ),
            (
                "f:9",
                None,
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f:9",
            ),
            (
                "f",
                Some("canary"),
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f:canary",
            ),
            (
                "arn:aws:lambda:eu-west-1:123456789012:function:f",
                None,
                "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:f",
            ),
            (
                "999999999999:function:f",
                None,
                "Function not found: 999999999999:function:f",
            ),
        ] {
            let err = r.resolve(name, qualifier).unwrap_err();
            assert_eq!(err.to_string(), message);
            assert_eq!(err.code(), "ResourceNotFoundException");
        }
        for (name, qualifier) in [
            ("bad name", None),
            ("a:b:c", None),
            ("f:1", Some("2")),
            ("f", Some("no/slash")),
        ] {
            let err = r.resolve(name, qualifier).unwrap_err();
            assert_eq!(
                err.code(),
                "InvalidParameterValueException",
                "{name}: {err}"
            );
        }
    }
}
