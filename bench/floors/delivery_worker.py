"""Floor for DeliveryWorkerFunction's first call: read the queued delivery (one DynamoDB get), claim it
(one conditional update: SQS delivers at least once, and a second worker must not call kintone too), add
its kintone record with one HTTP call, record the outcome with one DynamoDB update."""

import time

T0 = time.perf_counter()
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["DELIVERIES_TABLE"])
routes = json.loads(open(os.environ["BRIDGE_CONFIG_FILE"]).read())["routes"]


def handler(event: dict, context: object) -> dict:
    for record in event["Records"]:
        delivery_id = json.loads(record["body"])["delivery_id"]
        delivery = table.get_item(Key={"pk": delivery_id, "sk": "D"}, ConsistentRead=True)["Item"]
        table.update_item(
            Key={"pk": delivery_id, "sk": "D"},
            UpdateExpression="SET #s = :running, lease_until_ms = :lease",
            ConditionExpression="#s = :pending AND attempts = :attempts",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":running": "in_progress",
                ":pending": "pending",
                ":attempts": delivery["attempts"],
                ":lease": int(time.time() * 1000) + 30_000,
            },
        )
        target = routes[delivery["route"]]["target"]
        url = urlsplit(target["base_url"])
        conn = http.client.HTTPConnection(url.netloc, timeout=8)
        body = json.dumps(
            {"app": target["app"], "record": {"email": {"value": json.loads(delivery["payload_json"])["email"]}}}
        )
        headers = {"Content-Type": "application/json", "X-Cybozu-API-Token": target["api_tokens"][0]}
        conn.request("POST", url.path + "/k/v1/record.json", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        table.update_item(
            Key={"pk": delivery_id, "sk": "D"},
            UpdateExpression="SET #s = :s, target_status = :t, attempts = attempts + :one",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": "succeeded", ":t": answer.status, ":one": 1},
        )
    return {"batchItemFailures": []}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
