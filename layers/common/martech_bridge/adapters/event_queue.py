"""The event queue: each accepted post is enqueued as it arrived (raw body, provider, receipt time). A post
too large for one SQS message (SendGrid batches reach 768 KB) is stored in the payload bucket and
enqueued as a pointer, so nothing is cut or lost."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.config import get_settings
from martech_bridge.errors import DependencyUnavailable

MAX_INLINE_BYTES = 240 * 1024  # under SQS's 256 KiB with room for the envelope


class EventQueue:
    def __init__(self, queue_url: str, bucket: str) -> None:
        self.queue_url = queue_url
        self.bucket = bucket

    def enqueue(
        self, provider: str, body: bytes, received_at: datetime | None = None, scope: str | None = None
    ) -> dict[str, Any]:
        """The envelope that was queued (with `s3_key` instead of `body` when it went through the bucket).
        `scope`: the one dispatch a per-dispatch callback token authorised, for the worker to enforce."""
        received = (received_at or datetime.now(UTC)).isoformat()
        envelope: dict[str, Any] = {"provider": provider, "received_at": received}
        if scope is not None:
            envelope["scope"] = scope
        try:
            text = body.decode("utf-8")
            inline = len(body) <= MAX_INLINE_BYTES
        except UnicodeDecodeError:
            text, inline = "", False
        try:
            if inline:
                envelope["body"] = text
            else:
                key = f"events/{provider}/{received[:10]}/{uuid.uuid4().hex}.json"
                aws.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
                envelope["s3_key"] = key
            aws.client("sqs").send_message(
                QueueUrl=self.queue_url, MessageBody=json.dumps(envelope, ensure_ascii=False)
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Event queue is unavailable") from exc
        return envelope

    def body_of(self, envelope: dict[str, Any]) -> str:
        """A queued post's body, read back from the bucket when it was enqueued by pointer."""
        if "s3_key" not in envelope:
            return str(envelope["body"])
        try:
            obj = aws.client("s3").get_object(Bucket=self.bucket, Key=envelope["s3_key"])
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Payload bucket is unavailable") from exc
        return obj["Body"].read().decode("utf-8", errors="replace")


@aws.factory
def event_queue() -> EventQueue:
    settings = get_settings()
    return EventQueue(settings.require("event_queue_url"), settings.require("payload_bucket"))


@aws.factory
def event_payloads() -> EventQueue:
    """The event queue as the worker reads it: a queued post's body, from the bucket when by pointer."""
    settings = get_settings()
    return EventQueue(settings.event_queue_url, settings.require("payload_bucket"))
