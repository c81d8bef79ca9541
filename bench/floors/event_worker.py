"""Floor for EventWorkerFunction's first call: read the queued post of 50 SendGrid events and write each
event with DynamoDB batch writes (25 items a request)."""

import time

T0 = time.perf_counter()
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import boto3  # noqa: E402

table = boto3.resource("dynamodb").Table(os.environ["MESSAGES_TABLE"])


def handler(event: dict, context: object) -> dict:
    for record in event["Records"]:
        envelope = json.loads(record["body"])
        with table.batch_writer() as batch:
            for item in json.loads(envelope["body"]):
                batch.put_item(Item={"pk": item["sg_message_id"], "sk": item["sg_event_id"], "event": item["event"]})
    return {"batchItemFailures": []}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
