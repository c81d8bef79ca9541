"""Floor for EventWorkerFunction's first call: read the queued post of 50 SendGrid events, find each
event's message (one ProviderIdIndex query per distinct X-Message-Id: applying an event needs the message
it is about), drop the events stored already (one BatchGetItem: SendGrid posts at least once), and write
the rest with DynamoDB batch writes (25 items a request)."""

import time

T0 = time.perf_counter()
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import boto3  # noqa: E402
from boto3.dynamodb.conditions import Key  # noqa: E402

dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(os.environ["MESSAGES_TABLE"])


def handler(event: dict, context: object) -> dict:
    for record in event["Records"]:
        events = json.loads(json.loads(record["body"])["body"])
        messages = {}
        for item in events:
            x_message_id = item["sg_message_id"].split(".", 1)[0]
            if x_message_id not in messages:
                found = table.query(
                    IndexName="ProviderIdIndex", KeyConditionExpression=Key("gsi1pk").eq(f"PID#sendgrid#{x_message_id}")
                )["Items"]
                messages[x_message_id] = found[0] if found else None
        keys = [{"pk": f"EVENT#{item['sg_message_id']}", "sk": item["sg_event_id"]} for item in events]
        stored = dynamodb.batch_get_item(RequestItems={table.name: {"Keys": keys, "ProjectionExpression": "pk, sk"}})
        seen = {(i["pk"], i["sk"]) for i in stored["Responses"][table.name]}
        with table.batch_writer() as batch:
            for key, item in zip(keys, events, strict=True):
                if (key["pk"], key["sk"]) not in seen:
                    batch.put_item(Item={**key, "event": item["event"]})
    return {"batchItemFailures": []}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
