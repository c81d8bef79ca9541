"""Floor for SendWorkerFunction's first call: for each queued Braze call, check the message's head record
is written (one DynamoDB get), make the call with one HTTP request, settle the recipient with one
conditional DynamoDB update."""

import time

T0 = time.perf_counter()
import base64  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["MESSAGES_TABLE"])


def handler(event: dict, context: object) -> dict:
    failures = []
    for record in event["Records"]:
        job = json.loads(record["body"])
        dispatch_id = job["dispatch_id"]
        if "Item" not in table.get_item(Key={"pk": f"MSG#{dispatch_id}", "sk": "M"}, ConsistentRead=True):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        url = urlsplit(job["url"])
        conn = http.client.HTTPConnection(url.netloc, timeout=job["timeout"])
        headers = {**job["headers"], "Authorization": f"Bearer {os.environ['BRAZE_API_KEY']}"}
        conn.request(job["method"], url.path, body=base64.b64decode(job["body"]), headers=headers)
        answer = conn.getresponse()
        reply = json.loads(answer.read())
        if answer.status // 100 != 2 or "dispatch_id" not in reply:
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        message_id = job["recipients"][0]["message_id"]
        table.update_item(
            Key={"pk": f"MSG#{dispatch_id}", "sk": f"R#{message_id}"},
            UpdateExpression="SET #s = :s, provider_message_id = :id, gsi1pk = :g, gsi1sk = :m REMOVE reason",
            ConditionExpression="#s = :p",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": "accepted",
                ":p": "pending",
                ":id": reply["dispatch_id"],
                ":g": f"PID#braze#{reply['dispatch_id']}",
                ":m": message_id,
            },
        )
    return {"batchItemFailures": failures}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
