"""Floor for QueryFunction's first call: check the API key, look the address up with one DynamoDB query,
answer with what was found."""

import time

T0 = time.perf_counter()
import hmac  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["SUBSCRIPTIONS_TABLE"])


def handler(event: dict, context: object) -> dict:
    keys = os.environ["API_KEYS"].split(",")
    if not any(hmac.compare_digest(event["headers"]["x-api-key"], k) for k in keys):
        return {"statusCode": 401}
    email = event["queryStringParameters"]["email"]
    items = table.query(KeyConditionExpression="pk = :e", ExpressionAttributeValues={":e": email})["Items"]
    return {"statusCode": 200 if items else 404, "body": json.dumps({"items": len(items)})}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
