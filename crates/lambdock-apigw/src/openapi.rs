//! `GET /openapi.json`: the routes as an OpenAPI 3 document with API Gateway's extensions
//! (`x-amazon-apigateway-any-method`, `x-amazon-apigateway-integration`), so tools such as
//! Swagger UI or client generators can read what is deployed.

use lambdock_template::manifest::Authorizer;
use serde_json::{Map, Value, json};

use crate::table::Table;

/// The document for `table`; `login_path` is the platform's login, `region` and `account_id`
/// name the functions' ARNs.
pub fn document(table: &Table, login_path: &str, region: &str, account_id: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut schemes: Map<String, Value> = Map::new();
    for e in &table.entries {
        let r = &e.route;
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name.trim_end_matches('+'), "in": "path", "required": true,
                       "schema": {"type": "string"}})
            })
            .collect();
        let function_arn = match &r.qualifier {
            Some(q) => format!(
                "arn:aws:lambda:{region}:{account_id}:function:{}:{q}",
                r.function
            ),
            None => format!(
                "arn:aws:lambda:{region}:{account_id}:function:{}",
                r.function
            ),
        };
        let mut op = json!({
            "operationId": format!("{}_{}_{}", r.api, r.method.to_lowercase(), r.function),
            "tags": [r.api],
            "parameters": params,
            "responses": {"default": {"description": "The function's response"}},
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": format!("arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"),
                "payloadFormatVersion": r.payload_version,
            },
        });
        let mut security = Map::new();
        if let Some(name) = &r.authorizer {
            security.insert(name.clone(), json!(r.authorization_scopes));
            let scheme = match e.api.authorizers.get(name) {
                Some(Authorizer::Jwt {
                    issuer, audience, ..
                }) => json!({
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "x-amazon-apigateway-authorizer": {"type": "jwt",
                        "jwtConfiguration": {"issuer": issuer, "audience": audience}},
                }),
                _ => json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                            "description": format!("IdToken from POST {login_path}")}),
            };
            schemes.insert(name.clone(), scheme);
        }
        if r.api_key_required {
            security.insert("api_key".into(), json!([]));
            schemes.insert(
                "api_key".into(),
                json!({"type": "apiKey", "name": "x-api-key", "in": "header"}),
            );
        }
        if !security.is_empty() {
            op["security"] = json!([security]);
        }
        let method = if r.method == "ANY" {
            "x-amazon-apigateway-any-method".to_string()
        } else {
            r.method.to_lowercase()
        };
        let item = paths.entry(r.path.clone()).or_insert_with(|| json!({}));
        item[method] = op;
    }
    paths.insert(
        login_path.to_string(),
        json!({"post": {
            "operationId": "login",
            "tags": ["lambdock"],
            "parameters": [{"name": "x-api-key", "in": "header", "required": true, "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["AuthParameters"],
                "properties": {"AuthParameters": {"type": "object", "required": ["USERNAME", "PASSWORD"],
                    "properties": {"USERNAME": {"type": "string"}, "PASSWORD": {"type": "string"}}}}}}}},
            "responses": {
                "200": {"description": "`{\"AuthenticationResult\": {\"IdToken\": \"<jwt>\"}}`"},
                "401": {"description": "Wrong API key, user name or password"},
                "422": {"description": "Malformed body"}
            }
        }}),
    );
    json!({
        "openapi": "3.0.1",
        "info": {"title": "Lambdock routes", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"securitySchemes": schemes},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_an_operation() {
        let manifest = serde_json::from_value(json!({
            "schema_version": 1,
            "apis": {"H": {"kind": "http", "stage": "$default", "authorizers": {
                "Jwt": {"type": "jwt", "identity_source": "$request.header.Authorization",
                        "issuer": "lambdock", "audience": ["app"]}}}},
            "routes": [
                {"api": "H", "method": "GET", "path": "/items/{id}", "function": "f",
                 "payload_version": "2.0", "authorizer": "Jwt", "authorization_scopes": ["read"]},
                {"api": "H", "method": "ANY", "path": "/{proxy+}", "function": "g",
                 "payload_version": "2.0", "api_key_required": true}
            ]
        }))
        .unwrap();
        let doc = document(
            &Table::new(&manifest),
            "/user/auth/v1",
            "us-east-1",
            "123456789012",
        );
        let get = &doc["paths"]["/items/{id}"]["get"];
        assert_eq!(get["parameters"][0]["name"], "id");
        assert_eq!(get["security"][0]["Jwt"], json!(["read"]));
        assert_eq!(
            get["x-amazon-apigateway-integration"]["uri"],
            "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f/invocations"
        );
        let any = &doc["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"];
        assert_eq!(any["parameters"][0]["name"], "proxy");
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["name"],
            "x-api-key"
        );
        assert!(doc["paths"]["/user/auth/v1"]["post"].is_object());
    }
}
