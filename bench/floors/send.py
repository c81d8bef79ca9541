"""Floor for SendFunction's first call: check the API key, read the recipient's subscription (one
DynamoDB get), post the mail to SendGrid with one HTTP call, record the message with one DynamoDB put."""

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
    messages.put_item(Item={"pk": "d_floor", "sk": "0", "email": to, "status": "accepted"})
    return {"statusCode": 202 if answer.status == 202 else 502, "body": json.dumps({"status": "accepted"})}


def rss() -> int:
    """Peak RSS in KiB (VmHWM: unlike ru_maxrss, not inherited from the forking parent)."""
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


result = handler(json.loads(open(sys.argv[1]).read()), None)
print(json.dumps({"ms": (time.perf_counter() - T0) * 1000, "result": result, "rss_kb": rss()}))
