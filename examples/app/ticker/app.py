"""Runs every minute (an EventBridge scheduled event) and counts its ticks in DynamoDB."""

import os

import boto3

dynamodb = boto3.client("dynamodb")


def handler(event, context):
    result = dynamodb.update_item(
        TableName=os.environ["TABLE_NAME"],
        Key={"pk": {"S": "ticks"}},
        UpdateExpression="ADD #n :one SET last_time = :t",
        ExpressionAttributeNames={"#n": "count"},
        ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"S": event.get("time", "")}},
        ReturnValues="UPDATED_NEW",
    )
    return {"ticks": int(result["Attributes"]["count"]["N"]), "source": event.get("source")}
