"""`python -m devkit post-eml FILE` (`make post-eml EML=FILE`): a received message, as SES would store it,
through InboundMailFunction. The file goes into the inbound bucket of the embedded AWS under inbound/, then
the function is invoked with the notification S3 sends for a new object - its documented structure
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html), key
URL-encoded as S3 encodes it. With `make run` going, its stack's AWS and sandbox are used, so its delivery
worker writes the reply's kintone record; otherwise a stack of its own is brought up for the one call.

Before storing it, the file gets the header fields SES's receipt rule prepends (as_ses_stores): the spam
and virus verdicts and SES's Authentication-Results. Nothing here checks SPF, DKIM or DMARC: `--auth pass`
(the default) writes the passing results SES would write for a sender whose domain is authenticated,
`--auth fail` failing ones, `--auth none` stores the file as it is (one saved from a real SES bucket
carries SES's own fields)."""

import email.utils
import hashlib
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from devkit.aws import FAKE_CREDENTIALS, MotoServer, create_resources
from devkit.invoke import _running_stack
from devkit.runtime import (
    DEFAULT_API_ADDRESS,
    DEFAULT_SANDBOX_ADDRESS,
    ENV_JSON,
    STDERR,
    InvocationError,
    LocalFunction,
    function_environment,
    load_env_json,
    runtime_environment,
)
from devkit.sandbox.server import Sandbox
from devkit.template import REGION, Resolver, Template, local_physical_name

FUNCTION = "InboundMailFunction"
BUCKET = local_physical_name("InboundMailBucket", "AWS::S3::Bucket")


def s3_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """S3's ObjectCreated notification for one object (event version 2.1, as AWS documents it)."""
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AROAEXAMPLE:ses"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": etag[:16].upper(), "x-amz-id-2": etag},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ReceivedMail",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "sequencer": "0A1B2C3D4E5F678901",
                    },
                },
            }
        ]
    }


def put_and_event(s3: Any, data: bytes, bucket: str = BUCKET) -> dict[str, Any]:
    """Store the message as SES's S3 action would (inbound/<id>) and return the notification for it."""
    digest = hashlib.sha256(data).hexdigest()
    key = f"inbound/{digest[:32]}"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return s3_event(bucket, key, len(data), digest[:32])


def addressed_to(data: bytes, dispatch_id: str) -> bytes:
    """The message with its reply+<dispatch id>@ address naming `dispatch_id` (a sample reply made to answer
    a send of your own)."""
    return re.sub(rb"reply\+d_[0-9a-fA-F]{12,32}@", f"reply+{dispatch_id}@".encode(), data)


AUTH_CHOICES = ("pass", "fail", "none")


def as_ses_stores(data: bytes, auth: str = "pass", *, spam: str = "PASS", virus: str = "PASS") -> bytes:
    """The message with the fields SES's receipt rule prepends, in SES's order, above the sender's own
    (Return-Path, Received, X-SES-Spam-Verdict, X-SES-Virus-Verdict, Received-SPF, Authentication-Results:
    amazonses.com; ..., X-SES-RECEIPT as in messages SES stores; the verdict values are the statuses
    docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html lists). SIMULATED: `auth`
    says what the results claim ("pass": spf, dkim and dmarc pass for the From domain; "fail": all fail;
    "none": the message is returned unchanged); no signature or DNS record is checked."""
    if auth == "none":
        return data
    if auth not in AUTH_CHOICES:
        raise ValueError(f"auth must be one of {AUTH_CHOICES}")
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("ascii", "replace")
    found = re.search(r"(?im)^From:(.*(?:\r?\n[ \t].*)*)", head)
    sender = email.utils.parseaddr(re.sub(r"\r?\n[ \t]", " ", found.group(1)) if found else "")[1]
    domain = sender.rsplit("@", 1)[-1].lower() if "@" in sender else "unknown.invalid"
    dated = re.search(r"(?im)^Date:[ \t]*(.+)$", head)
    # The message's own date, not the clock: the same file gives the same stored object (and reply id)
    when = dated.group(1).strip() if dated else email.utils.formatdate(0, usegmt=True)
    verdict = "pass" if auth == "pass" else "fail"
    spf = (
        f"spf={verdict} (spfCheck: simulated by devkit post-eml, nothing checked) client-ip=127.0.0.1;"
        f" envelope-from={sender or 'unknown@unknown.invalid'}; helo=localhost;"
    )
    fields = [
        f"Return-Path: <{sender}>",
        "Received: from localhost (localhost [127.0.0.1])",
        f" by inbound-smtp.{REGION}.amazonaws.com with SMTP id devkit{hashlib.sha256(data).hexdigest()[:24]};",
        f" {when}",
        f"X-SES-Spam-Verdict: {spam}",
        f"X-SES-Virus-Verdict: {virus}",
        f"Received-SPF: {spf}",
        "Authentication-Results: amazonses.com;",
        f" {spf}",
        f" dkim={verdict} header.i=@{domain};",
        f" dmarc={verdict} header.from={domain};",
        "X-SES-RECEIPT: simulated-by-devkit",
    ]
    newline = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
    return newline.join(f.encode() for f in fields) + newline + data


def post_eml(
    path: Path,
    env_json_path: Path = ENV_JSON,
    dispatch_id: str | None = None,
    *,
    stack: dict[str, Any] | None = None,
    auth: str = "pass",
) -> int:
    """Post the file through InboundMailFunction; `stack`: the running stack's {"api", "sandbox",
    "aws_endpoint"} (default: the one the state file names, else a stack of its own for the one call)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"Cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if dispatch_id is not None:
        if not re.fullmatch(r"d_[0-9a-f]{12,32}", dispatch_id):
            print(f"Not a dispatch id: {dispatch_id!r}", file=sys.stderr)
            return 2
        data = addressed_to(data, dispatch_id)
    if auth not in AUTH_CHOICES:
        print(f"--auth must be one of {', '.join(AUTH_CHOICES)}", file=sys.stderr)
        return 2
    data = as_ses_stores(data, auth)
    template = Template()
    resolver = Resolver(template)
    stack = stack or _running_stack()
    owned: list[Any] = []
    if stack:
        aws_env = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": stack["aws_endpoint"]}
        addresses = {DEFAULT_API_ADDRESS: stack["api"], DEFAULT_SANDBOX_ADDRESS: stack["sandbox"]}
        print(f"Using the running local stack ({stack['api']})", file=sys.stderr)
    else:
        moto = MotoServer().start()
        create_resources(template, resolver, moto)
        sandbox = Sandbox(port=0).start()
        owned += [sandbox, moto]
        aws_env = moto.env()
        addresses = {DEFAULT_SANDBOX_ADDRESS: sandbox.url}
    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    ).client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    spec = template.functions()[FUNCTION]
    env = function_environment(
        spec, resolver, env_json=load_env_json(env_json_path), shell=os.environ, addresses=addresses
    )
    function = LocalFunction(spec, {**runtime_environment(spec, aws_env), **env}, log_file=STDERR)
    try:
        event = put_and_event(s3, data)
        result = function.invoke(event)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    except InvocationError as exc:
        print(json.dumps({"errorType": exc.error_type, "errorMessage": exc.message}, ensure_ascii=False, indent=2))
        return 1
    finally:
        function.close()
        for thing in owned:
            thing.stop()
