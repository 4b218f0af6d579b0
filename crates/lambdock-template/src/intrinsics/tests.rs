//! Every intrinsic, condition and reference, against one template.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value as J, json};

use crate::compile::{CompileOptions, context};
use crate::yaml::parse;

const BASE: &str = r#"
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Size: {Type: Number, Default: 256, MinValue: 128, MaxValue: 1024}
  Zones: {Type: CommaDelimitedList, Default: "a, b,c"}
  Ports: {Type: List<Number>, Default: "80,443"}
  Prefix: {Type: String, Default: app, AllowedPattern: "[a-z]+"}
Mappings:
  Sizes:
    dev: {memory: 128}
    prod: {memory: 1024}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [{Condition: IsProd}]
  Both: !And [{Condition: IsDev}, !Equals [!Ref Prefix, app]]
  Either: !Or [{Condition: IsProd}, !Equals [x, y]]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-${Prefix}-fn"
      Events:
        Get: {Type: Api, Properties: {Path: /, Method: get}}
  Aliased: {Type: AWS::Serverless::Function, Properties: {AutoPublishAlias: live}}
  Bucket: {Type: AWS::S3::Bucket}
  Named: {Type: AWS::S3::Bucket, Properties: {BucketName: !Join ["-", [!Ref Prefix, data]]}}
  Table: {Type: AWS::DynamoDB::Table, Properties: {TableName: items}}
  Layer: {Type: AWS::Serverless::LayerVersion, Properties: {LayerName: common}}
  MyApi: {Type: AWS::Serverless::Api}
  MyHttp: {Type: AWS::Serverless::HttpApi}
  Role: {Type: AWS::IAM::Role}
  ProdOnly: {Type: AWS::S3::Bucket, Condition: IsProd}
  LoopA: {Type: AWS::S3::Bucket, Properties: {BucketName: !Sub "${LoopB}-a"}}
  LoopB: {Type: AWS::S3::Bucket, Properties: {BucketName: !Ref LoopA}}
"#;

fn ev_with(overrides: &[(&str, &str)], expr: &str) -> Result<J, String> {
    let root = parse(Path::new("t.yaml"), BASE).map_err(|e| e.to_string())?;
    let opts = CompileOptions {
        parameter_overrides: overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        stack_name: "st".into(),
        ..CompileOptions::default()
    };
    let ctx = context(Path::new("t.yaml"), &root, &opts).map_err(|e| e.to_string())?;
    let expr = parse(Path::new("t.yaml"), &format!("X: {expr}")).map_err(|e| e.to_string())?;
    let value = ctx
        .eval(expr.get("X").unwrap())
        .map_err(|e| e.to_string())?;
    Ok(value.map_or(J::String("<NoValue>".into()), |v| v.to_json()))
}

fn ev(expr: &str) -> J {
    ev_with(&[], expr).unwrap()
}

fn fails(expr: &str, expected: &str) {
    let e = ev_with(&[], expr).unwrap_err();
    assert!(e.contains(expected), "{expr}: {e}");
}

#[test]
fn ref_parameters_and_pseudo_parameters() {
    assert_eq!(ev("!Ref Env"), json!("dev"));
    assert_eq!(ev("!Ref Size"), json!("256"));
    assert_eq!(ev("!Ref Zones"), json!(["a", "b", "c"]));
    assert_eq!(ev("!Ref Ports"), json!(["80", "443"]));
    assert_eq!(
        ev_with(&[("Env", "prod")], "!Ref Env").unwrap(),
        json!("prod")
    );
    assert_eq!(
        ev(
            "[!Ref 'AWS::Region', !Ref 'AWS::AccountId', !Ref 'AWS::StackName', !Ref 'AWS::Partition', !Ref 'AWS::URLSuffix']"
        ),
        json!(["us-east-1", "123456789012", "st", "aws", "amazonaws.com"])
    );
}

#[test]
fn no_value_removes_keys_and_items() {
    assert_eq!(ev("!Ref AWS::NoValue"), json!("<NoValue>"));
    assert_eq!(ev("{a: 1, b: !Ref AWS::NoValue}"), json!({"a": 1}));
    assert_eq!(ev("[1, !Ref AWS::NoValue, 2]"), json!([1, 2]));
    assert_eq!(ev("{a: !If [IsProd, x, !Ref AWS::NoValue]}"), json!({}));
}

#[test]
fn ref_and_getatt_of_resources() {
    assert_eq!(ev("!Ref Fn"), json!("st-app-fn"));
    let arn = json!("arn:aws:lambda:us-east-1:123456789012:function:st-app-fn");
    assert_eq!(ev("!GetAtt Fn.Arn"), arn);
    assert_eq!(ev("!GetAtt [Fn, Arn]"), arn);
    assert_eq!(ev("{'Fn::GetAtt': [Fn, !Sub Arn]}"), arn);
    assert_eq!(ev("!Ref Bucket"), json!("bucket"));
    assert_eq!(ev("!Ref Named"), json!("app-data"));
    assert_eq!(ev("!GetAtt Named.Arn"), json!("arn:aws:s3:::app-data"));
    assert_eq!(
        ev("!GetAtt Named.RegionalDomainName"),
        json!("app-data.s3.us-east-1.amazonaws.com")
    );
    assert_eq!(ev("!Ref Table"), json!("items"));
    assert_eq!(
        ev("!GetAtt Table.Arn"),
        json!("arn:aws:dynamodb:us-east-1:123456789012:table/items")
    );
    assert!(
        ev("!GetAtt Table.StreamArn")
            .as_str()
            .unwrap()
            .starts_with("arn:aws:dynamodb:us-east-1:123456789012:table/items/stream/")
    );
    assert_eq!(
        ev("!Ref Layer"),
        json!("arn:aws:lambda:us-east-1:123456789012:layer:common:1")
    );
    let id = ev("!Ref MyApi");
    assert_eq!(id.as_str().unwrap().len(), 10);
    assert_eq!(ev("!Ref MyApi"), id, "stable");
    assert_ne!(ev("!Ref ServerlessRestApi"), id);
    assert_eq!(
        ev("!GetAtt MyHttp.ApiEndpoint"),
        json!(format!(
            "https://{}.execute-api.us-east-1.amazonaws.com",
            ev("!Ref MyHttp").as_str().unwrap()
        ))
    );
    assert_eq!(
        ev("!Ref Aliased.Alias"),
        json!("arn:aws:lambda:us-east-1:123456789012:function:Aliased:live")
    );
    assert_eq!(
        ev("!Ref Aliased.Version"),
        json!("arn:aws:lambda:us-east-1:123456789012:function:Aliased:1")
    );
    fails(
        "!Ref Fn.Alias",
        "Ref Fn.Alias: Fn is not a function with AutoPublishAlias",
    );
    assert_eq!(ev("!Ref Role"), json!("Role"));
    assert_eq!(
        ev("!GetAtt Role.Arn"),
        json!("arn:aws:iam:us-east-1:123456789012:Role")
    );
}

#[test]
fn sub_forms() {
    assert_eq!(
        ev("!Sub 'arn:${AWS::Partition}:s3:::${Named}/*'"),
        json!("arn:aws:s3:::app-data/*")
    );
    assert_eq!(
        ev("!Sub '${Fn.Arn}:live'"),
        json!("arn:aws:lambda:us-east-1:123456789012:function:st-app-fn:live")
    );
    assert_eq!(
        ev("!Sub '${!Literal} and ${ Env }'"),
        json!("${Literal} and dev")
    );
    assert_eq!(
        ev("!Sub ['${A}-${Env}', {A: !Ref Table}]"),
        json!("items-dev")
    );
    assert_eq!(ev("!Sub 'no vars'"), json!("no vars"));
    fails("!Sub '${Env'", "unclosed");
    fails("!Sub '${Zones}'", "is a list");
    fails("!Sub '${Nope}'", "unknown Ref Nope");
}

#[test]
fn join_select_split() {
    assert_eq!(ev("!Join [':', [a, !Ref Env, 3]]"), json!("a:dev:3"));
    assert_eq!(ev("!Join ['', !Ref Zones]"), json!("abc"));
    assert_eq!(ev("!Select [1, !Ref Zones]"), json!("b"));
    assert_eq!(ev("!Select ['0', [x, y]]"), json!("x"));
    assert_eq!(ev("!Split [',', 'a,b,,c']"), json!(["a", "b", "", "c"]));
    assert_eq!(ev("!Select [2, !Split ['/', 'x/y/z']]"), json!("z"));
    fails("!Select [5, [a]]", "out of range");
    fails("!Join [',', [[a]]]", "joins strings");
    fails("!Split ['', a]", "non-empty delimiter");
    fails("!Join [',']", "list of 2 elements");
}

#[test]
fn conditions_and_if() {
    assert_eq!(ev("!If [IsProd, big, small]"), json!("small"));
    assert_eq!(
        ev_with(&[("Env", "prod")], "!If [IsProd, big, small]").unwrap(),
        json!("big")
    );
    assert_eq!(ev("!If [IsDev, yes, no]"), json!("yes"));
    assert_eq!(ev("!If [Both, yes, no]"), json!("yes"));
    assert_eq!(ev("!If [Either, yes, no]"), json!("no"));
    fails("!If [Nope, a, b]", "unknown condition Nope");
    fails("!Equals [a, a]", "condition function");
}

#[test]
fn find_in_map_base64_getazs_length_tojson() {
    assert_eq!(ev("!FindInMap [Sizes, !Ref Env, memory]"), json!(128));
    assert_eq!(
        ev_with(&[("Env", "prod")], "!FindInMap [Sizes, !Ref Env, memory]").unwrap(),
        json!(1024)
    );
    fails("!FindInMap [Sizes, test, memory]", "no key \"test\"");
    assert_eq!(ev("!Base64 hello"), json!("aGVsbG8="));
    assert_eq!(
        ev("!GetAZs ''"),
        json!(["us-east-1a", "us-east-1b", "us-east-1c"])
    );
    assert_eq!(ev("!Length [a, b]"), json!(2));
    assert_eq!(ev("!ToJsonString {a: [1]}"), json!("{\"a\":[1]}"));
}

#[test]
fn reference_errors_have_positions() {
    let e = ev_with(&[], "!Ref Nope").unwrap_err();
    assert_eq!(
        e,
        "t.yaml:1:4: unknown Ref Nope: not a parameter, resource or pseudo parameter"
    );
    fails(
        "!GetAtt Fn.Nope",
        "AWS::Serverless::Function Fn has no attribute Nope",
    );
    fails("!GetAtt Bucket.StreamArn", "has no attribute StreamArn");
    fails("!GetAtt Nope.Arn", "Fn::GetAtt: unknown resource Nope");
    fails("!GetAtt FnArn", "is not Resource.Attribute");
    fails(
        "{'Fn::Bogus': 1}",
        "unknown or unsupported intrinsic function Fn::Bogus",
    );
    fails("!ImportValue x", "Fn::ImportValue is not supported");
    fails(
        "!Ref ProdOnly",
        "ProdOnly is not created: its Condition is false",
    );
}

#[test]
fn cycles_are_reported_with_their_chain() {
    let e = ev_with(&[], "!Ref LoopA").unwrap_err();
    assert!(
        e.contains("circular reference: LoopA -> LoopB -> LoopA"),
        "{e}"
    );
    assert!(e.contains("resource LoopA"), "{e}");
}

#[test]
fn parameter_constraints() {
    let e = ev_with(&[("Env", "qa")], "x").unwrap_err();
    assert!(
        e.contains("parameter Env: \"qa\" is not one of AllowedValues [dev, prod]"),
        "{e}"
    );
    let e = ev_with(&[("Size", "64")], "x").unwrap_err();
    assert!(e.contains("less than MinValue 128"), "{e}");
    let e = ev_with(&[("Size", "lots")], "x").unwrap_err();
    assert!(e.contains("is not a number"), "{e}");
    let e = ev_with(&[("Prefix", "App1")], "x").unwrap_err();
    assert!(e.contains("does not match AllowedPattern"), "{e}");
    let e = ev_with(&[("Ghost", "1")], "x").unwrap_err();
    assert!(
        e.contains("parameter override Ghost: the template has no such parameter"),
        "{e}"
    );
}
