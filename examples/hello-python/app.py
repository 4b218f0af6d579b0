"""The example function of the quick start: greets whoever the event names."""

import json
import os


def handler(event, context):
    name = (event or {}).get("name", "world") if isinstance(event, dict) else "world"
    print(f"greeting {name} from {os.environ.get('AWS_LAMBDA_FUNCTION_NAME')}")
    return {
        "statusCode": 200,
        "body": json.dumps({"message": f"hello, {name}", "request_id": context.aws_request_id}),
    }
