"""Floor for InboundMailFunction's first call: read the stored message from S3, parse it with the standard
library's email parser, look its In-Reply-To up once per provider (the message it answers), write the reply
once (conditional put), then store and queue its kintone sink delivery (one conditional put, one SQS
send) - the sink's kintone call is the delivery worker's, as it is for the function."""

import time

T0 = time.perf_counter()
import email  # noqa: E402
import email.policy  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from urllib.parse import unquote_plus  # noqa: E402

import boto3  # noqa: E402
from boto3.dynamodb.conditions import Key  # noqa: E402

s3 = boto3.client("s3")
sqs = boto3.client("sqs")
dynamodb = boto3.resource("dynamodb")
messages = dynamodb.Table(os.environ["MESSAGES_TABLE"])
deliveries = dynamodb.Table(os.environ["DELIVERIES_TABLE"])
sink = json.loads(open(os.environ["BRIDGE_CONFIG_FILE"]).read())["sinks"][0]


def handler(event: dict, context: object) -> dict:
    outcomes = []
    for record in event["Records"]:
        bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
        raw = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-1048575")["Body"].read()
        mail = email.message_from_bytes(raw, policy=email.policy.default)
        body = mail.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        reply_id = "rp_" + hashlib.sha256(f"{bucket}\x00{key}".encode()).hexdigest()[:26]
        local = str(mail.get("In-Reply-To", "")).strip("<>").split("@", 1)[0]
        found = None
        for provider in ("sendgrid", "braze", "infobip"):
            items = messages.query(
                IndexName="ProviderIdIndex", KeyConditionExpression=Key("gsi1pk").eq(f"PID#{provider}#{local}")
            )["Items"]
            found = found or (items[0] if items else None)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = {"from": str(mail["From"]), "subject": str(mail["Subject"]), "text": text, "received_at": now}
        messages.put_item(
            Item={"pk": f"REPLY#{reply_id}", "sk": "R", "gsi2pk": "UNMATCHED", "gsi2sk": now, **reply},
            ConditionExpression="attribute_not_exists(pk)",
        )
        target = sink["target"]
        kintone = {"app": target["app"], "record": {"subject": {"value": reply["subject"]}}}
        delivery_id = f"sink-{sink['name']}-{reply_id}"
        deliveries.put_item(
            Item={"pk": delivery_id, "sk": "D", "status": "pending", "request": json.dumps(kintone), "attempts": 0},
            ConditionExpression="attribute_not_exists(pk)",
        )
        queued = json.dumps({"delivery_id": delivery_id})
        sqs.send_message(QueueUrl=os.environ["DELIVERY_QUEUE_URL"], MessageBody=queued)
        outcomes.append("matched" if found else "unmatched")
    return {"outcomes": outcomes}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
