"""Floor for RelayFunction's first call (a sync relay): check the shared token, parse the JSON body, add
the kintone record with one HTTP call, write the settled delivery with one DynamoDB put, answer."""

import time

T0 = time.perf_counter()
import hmac  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["DELIVERIES_TABLE"])
route = json.loads(open(os.environ["BRIDGE_CONFIG_FILE"]).read())["routes"]["bench"]


def handler(event: dict, context: object) -> dict:
    if not hmac.compare_digest(event["headers"]["x-webhook-token"], route["auth"]["secrets"][0]):
        return {"statusCode": 401}
    payload = json.loads(event["body"])
    target = route["target"]
    url = urlsplit(target["base_url"])
    conn = http.client.HTTPConnection(url.netloc, timeout=8)
    body = json.dumps({"app": target["app"], "record": {"email": {"value": payload["email"]}}})
    headers = {"Content-Type": "application/json", "X-Cybozu-API-Token": target["api_tokens"][0]}
    conn.request("POST", url.path + "/k/v1/record.json", body=body, headers=headers)
    answer = conn.getresponse()
    reply = json.loads(answer.read())
    table.put_item(
        Item={"pk": context.aws_request_id, "sk": "DELIVERY", "status": "succeeded", "payload": event["body"]}
    )  # type: ignore[attr-defined]
    return {"statusCode": 200, "body": json.dumps({"status": "delivered", "target_status": answer.status, **reply})}


class Context:
    aws_request_id = "floor-1"


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), Context())
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
