"""Floor for EventsFunction's first call: what a person would write by hand - verify SendGrid's signature
with `cryptography`, check the body is a JSON array, put it on the queue with one SQS call, answer 200."""

import time

T0 = time.perf_counter()
import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import boto3  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: E402

sqs = boto3.client("sqs")
key = load_der_public_key(base64.b64decode(os.environ["SENDGRID_WEBHOOK_PUBLIC_KEYS"]))


def handler(event: dict, context: object) -> dict:
    body = event["body"].encode()
    headers = event["headers"]
    signed = headers["x-twilio-email-event-webhook-timestamp"].encode() + body
    signature = base64.b64decode(headers["x-twilio-email-event-webhook-signature"])
    key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr, call-arg]
    events = json.loads(body)
    sqs.send_message(QueueUrl=os.environ["EVENT_QUEUE_URL"], MessageBody=json.dumps({"body": body.decode()}))
    return {"statusCode": 200, "body": json.dumps({"status": "queued", "events": len(events)})}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
