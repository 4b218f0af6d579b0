//! What `Ref` and `Fn::GetAtt` give for each resource type Lambdock creates, and resources'
//! physical names, evaluated lazily with a guard against reference cycles.

use super::{Ctx, R, Resource, api_id, name_property};
use crate::yaml::{Node, Pos, Value};

impl<'t> Ctx<'t> {
    /// `Ref`.
    pub fn reference(&self, pos: Pos, name: &str) -> R<Option<Node>> {
        let s = |v: String| Ok(Some(Node::str(pos, v)));
        match name {
            "AWS::Region" => return s(self.pseudo.region.clone()),
            "AWS::AccountId" => return s(self.pseudo.account_id.clone()),
            "AWS::StackName" => return s(self.pseudo.stack_name.clone()),
            "AWS::StackId" => {
                return s(format!(
                    "arn:{}:cloudformation:{}:{}:stack/{}/lambdock",
                    self.partition(),
                    self.pseudo.region,
                    self.pseudo.account_id,
                    self.pseudo.stack_name
                ));
            }
            "AWS::Partition" => return s(self.partition().into()),
            "AWS::URLSuffix" => return s(self.url_suffix().into()),
            "AWS::NoValue" => return Ok(None),
            "AWS::NotificationARNs" => return Ok(Some(Node::new(pos, Value::List(Vec::new())))),
            _ => {}
        }
        if let Some(v) = self.params.get(name) {
            return Ok(Some(Node::new(pos, v.value.clone())));
        }
        if let Some((id, what @ ("Alias" | "Version"))) = name.split_once('.') {
            return s(self.function_qualifier_arn(pos, id, what)?);
        }
        let resource = self.resource(pos, name)?;
        let value = match resource.ty.as_str() {
            "AWS::Serverless::LayerVersion" | "AWS::Lambda::LayerVersion" => {
                self.layer_arn(name)?
            }
            "AWS::Serverless::Api" | "AWS::Serverless::HttpApi" => {
                api_id(&self.pseudo.stack_name, name)
            }
            ty if name_property(ty).is_some() => self.physical_name(name)?,
            _ => name.to_string(),
        };
        s(value)
    }

    fn resource(&self, pos: Pos, id: &str) -> R<&Resource<'t>> {
        let resource = self.resources.get(id).ok_or_else(|| {
            self.err(
                pos,
                format!("unknown Ref {id}: not a parameter, resource or pseudo parameter"),
            )
        })?;
        if !resource.active {
            return Err(self.err(pos, format!("{id} is not created: its Condition is false")));
        }
        Ok(resource)
    }

    /// `Fn::GetAtt`.
    pub fn attribute(&self, pos: Pos, id: &str, attr: &str) -> R<String> {
        let resource = self
            .resources
            .get(id)
            .ok_or_else(|| self.err(pos, format!("Fn::GetAtt: unknown resource {id}")))?;
        let resource = self.resource(pos, id).map(|_| resource)?;
        let (p, region, account) = (
            self.partition(),
            &self.pseudo.region,
            &self.pseudo.account_id,
        );
        let bad = || {
            self.err(
                pos,
                format!("Fn::GetAtt: {} {id} has no attribute {attr}", resource.ty),
            )
        };
        Ok(match (resource.ty.as_str(), attr) {
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                format!(
                    "arn:{p}:lambda:{region}:{account}:function:{}",
                    self.physical_name(id)?
                )
            }
            ("AWS::Lambda::LayerVersion", "LayerVersionArn") => self.layer_arn(id)?,
            ("AWS::S3::Bucket", "Arn") => format!("arn:{p}:s3:::{}", self.physical_name(id)?),
            ("AWS::S3::Bucket", "DomainName") => {
                format!("{}.s3.{}", self.physical_name(id)?, self.url_suffix())
            }
            ("AWS::S3::Bucket", "RegionalDomainName") => {
                format!(
                    "{}.s3.{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::S3::Bucket", "DualStackDomainName") => {
                format!(
                    "{}.s3.dualstack.{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::S3::Bucket", "WebsiteURL") => {
                format!(
                    "http://{}.s3-website-{region}.{}",
                    self.physical_name(id)?,
                    self.url_suffix()
                )
            }
            ("AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable", "Arn") => {
                format!(
                    "arn:{p}:dynamodb:{region}:{account}:table/{}",
                    self.physical_name(id)?
                )
            }
            ("AWS::DynamoDB::Table", "StreamArn") => format!(
                "arn:{p}:dynamodb:{region}:{account}:table/{}/stream/lambdock",
                self.physical_name(id)?
            ),
            ("AWS::Serverless::Api", "RootResourceId") => {
                api_id(&self.pseudo.stack_name, &format!("{id}/"))
            }
            ("AWS::Serverless::HttpApi", "ApiId") => api_id(&self.pseudo.stack_name, id),
            ("AWS::Serverless::HttpApi", "ApiEndpoint") => format!(
                "https://{}.execute-api.{region}.{}",
                api_id(&self.pseudo.stack_name, id),
                self.url_suffix()
            ),
            (ty, _)
                if ty.starts_with("AWS::Serverless::")
                    || ty == "AWS::Lambda::Function"
                    || ty == "AWS::S3::Bucket"
                    || ty == "AWS::DynamoDB::Table" =>
            {
                return Err(bad());
            }
            (ty, _) => {
                let service = ty.split("::").nth(1).unwrap_or("unknown").to_lowercase();
                self.warnings.borrow_mut().push(format!(
                    "Fn::GetAtt {id}.{attr} at line {}: {ty} is not run by Lambdock; using a placeholder ARN",
                    pos.line
                ));
                format!("arn:{p}:{service}:{region}:{account}:{id}")
            }
        })
    }

    /// SAM's `!Ref Function.Alias` / `!Ref Function.Version`: the ARN of the version
    /// `AutoPublishAlias` publishes, or of the alias.
    fn function_qualifier_arn(&self, pos: Pos, id: &str, what: &str) -> R<String> {
        let resource = self.resource(pos, id)?;
        let alias = resource
            .props
            .as_ref()
            .and_then(|p| p.get("AutoPublishAlias"))
            .filter(|_| resource.ty == "AWS::Serverless::Function")
            .ok_or_else(|| {
                self.err(
                    pos,
                    format!("Ref {id}.{what}: {id} is not a function with AutoPublishAlias"),
                )
            })?;
        let qualifier = match what {
            "Alias" => self.eval_string(alias)?,
            _ => "1".to_string(),
        };
        Ok(format!(
            "arn:{}:lambda:{}:{}:function:{}:{qualifier}",
            self.partition(),
            self.pseudo.region,
            self.pseudo.account_id,
            self.physical_name(id)?
        ))
    }

    fn layer_arn(&self, id: &str) -> R<String> {
        Ok(format!(
            "arn:{}:lambda:{}:{}:layer:{}:1",
            self.partition(),
            self.pseudo.region,
            self.pseudo.account_id,
            self.physical_name(id)?
        ))
    }

    /// The name a resource gets: its name property when set, else the logical id (lower-cased
    /// for buckets, whose names must be).
    pub fn physical_name(&self, id: &str) -> R<String> {
        if let Some(name) = self.names.borrow().get(id) {
            return Ok(name.clone());
        }
        let resource = self
            .resources
            .get(id)
            .ok_or_else(|| self.err(Pos::default(), format!("unknown resource {id}")))?;
        let property = name_property(&resource.ty);
        let explicit = match (property, &resource.props) {
            (Some(p), Some(props)) => props.get(p),
            _ => None,
        };
        let name = match explicit {
            Some(node) => self
                .guarded(node.pos, id.to_string(), || self.eval_string(node))
                .map_err(|e| e.in_resource(id))?,
            None if resource.ty == "AWS::S3::Bucket" => id.to_lowercase(),
            None => id.to_string(),
        };
        self.names.borrow_mut().insert(id.to_string(), name.clone());
        Ok(name)
    }
}
