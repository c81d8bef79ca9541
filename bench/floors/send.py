"""Floor for SendFunction's first call: check the API key, read the recipient's subscription (one
DynamoDB get), post the mail to SendGrid with one HTTP call, record the recipient and then the message
(two DynamoDB puts: the message's item, written last, says its recipients are all recorded), and queue the
sent mail to the shipped config's kintone `sent_mail` sink (one put of its delivery, one SQS send)."""

import time

T0 = time.perf_counter()
import hmac  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import boto3  # noqa: E402

dynamodb = boto3.resource("dynamodb")
subscriptions = dynamodb.Table(os.environ["SUBSCRIPTIONS_TABLE"])
messages = dynamodb.Table(os.environ["MESSAGES_TABLE"])
deliveries = dynamodb.Table(os.environ["DELIVERIES_TABLE"])
sqs = boto3.client("sqs")


def handler(event: dict, context: object) -> dict:
    keys = os.environ["API_KEYS"].split(",")
    if not any(hmac.compare_digest(event["headers"]["x-api-key"], k) for k in keys):
        return {"statusCode": 401}
    mail = json.loads(event["body"])
    to = mail["to"][0]["email"]
    subscriptions.get_item(Key={"pk": to, "sk": "STATE"})
    url = urlsplit(os.environ["SENDGRID_BASE_URL"])
    conn = http.client.HTTPConnection(url.netloc, timeout=10)
    body = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": mail["from"]["email"]},
        "subject": mail["subject"],
        "content": [{"type": "text/plain", "value": mail["text"]}],
    }
    headers = {"Authorization": f"Bearer {os.environ['SENDGRID_API_KEY']}", "Content-Type": "application/json"}
    conn.request("POST", url.path + "/v3/mail/send", body=json.dumps(body), headers=headers)
    answer = conn.getresponse()
    answer.read()
    dispatch_id = f"d_floor{time.time_ns()}"
    messages.put_item(Item={"pk": f"MSG#{dispatch_id}", "sk": "R#1", "email": to, "status": "accepted"})
    messages.put_item(
        Item={"pk": f"MSG#{dispatch_id}", "sk": "M", "subject": mail["subject"], "recipients": 1},
        ConditionExpression="attribute_not_exists(pk)",
    )
    delivery_id = f"sink-kintone-sent-mail-{dispatch_id}"
    deliveries.put_item(
        Item={"pk": delivery_id, "sk": "D", "status": "pending", "payload": json.dumps(body), "attempts": 0},
        ConditionExpression="attribute_not_exists(pk)",
    )
    sqs.send_message(QueueUrl=os.environ["DELIVERY_QUEUE_URL"], MessageBody=json.dumps({"delivery_id": delivery_id}))
    return {"statusCode": 202 if answer.status == 202 else 502, "body": json.dumps({"status": "accepted"})}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
