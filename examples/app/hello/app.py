"""GET /hello?name=...: greets, and records the visit in DynamoDB and S3.

boto3 finds the platform's S3 and DynamoDB through AWS_ENDPOINT_URL_S3 and
AWS_ENDPOINT_URL_DYNAMODB, as it would find AWS's: nothing here names an endpoint.
"""

import json
import os

import boto3

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")


def handler(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    greeting = f"{os.environ['GREETING']}, {name}!"
    visit = context.aws_request_id
    dynamodb.put_item(
        TableName=os.environ["TABLE_NAME"],
        Item={"pk": {"S": f"visit#{visit}"}, "name": {"S": name}},
    )
    s3.put_object(
        Bucket=os.environ["BUCKET_NAME"],
        Key=f"visits/{visit}.json",
        Body=json.dumps({"name": name}).encode(),
        ContentType="application/json",
    )
    stored = s3.get_object(Bucket=os.environ["BUCKET_NAME"], Key=f"visits/{visit}.json")
    item = dynamodb.get_item(
        TableName=os.environ["TABLE_NAME"], Key={"pk": {"S": f"visit#{visit}"}}
    )["Item"]
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {
                "message": greeting,
                "visit": visit,
                "stored_object": json.loads(stored["Body"].read()),
                "stored_item": item["name"]["S"],
                "version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
            }
        ),
    }
