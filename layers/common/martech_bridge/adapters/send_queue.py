"""The send queue: provider calls a request could not make within its deadline (Braze recipients), each
as one message, made later by SendWorkerFunction. A message holds the call without its credentials; the
call's own body is the only place the address appears (Braze needs it there). It also carries the delayed
release checks of re-subscriptions (releases.py): {"kind": "release", "email", "version"}."""

import base64
import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.adapters.providers.base import Outbound, ProviderCall
from martech_bridge.adapters.targets.base import TargetRequest
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.mail import Recipient

MAX_BATCH_BYTES = 200_000  # below SQS's 256 KiB for one SendMessageBatch


def encode(dispatch_id: str, provider: str, call: ProviderCall) -> str:
    request = call.request
    return json.dumps(
        {
            "dispatch_id": dispatch_id,
            "provider": provider,
            "method": request.method,
            "url": request.url,
            "headers": {k: v for k, v in request.headers.items() if k not in request.secret_headers},
            "secret_headers": sorted(request.secret_headers),
            "body": base64.b64encode(request.body or b"").decode(),
            "timeout": request.timeout,
            "retry_safe": call.retry_safe,
            "may_have_sent": call.may_have_sent,
            "recipients": [{"message_id": o.message_id} for o in call.recipients],  # the address is in the record
        },
        ensure_ascii=False,
    )


def decode(body: str) -> tuple[str, str, ProviderCall]:
    """(dispatch id, provider, the call without its credential headers); ValueError when unreadable."""
    try:
        data = json.loads(body)
        request = TargetRequest(
            method=str(data["method"]),
            url=str(data["url"]),
            headers=dict(data["headers"]),
            body=base64.b64decode(data["body"]),
            timeout=float(data["timeout"]),
            idempotent=bool(data["retry_safe"]),
            secret_headers=frozenset(data["secret_headers"]),
        )
        recipients = [Outbound(Recipient(), str(r["message_id"])) for r in data["recipients"]]
        return (
            str(data["dispatch_id"]),
            str(data["provider"]),
            ProviderCall(request, recipients, data["retry_safe"], bool(data.get("may_have_sent", True))),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a send message: {type(exc).__name__}") from None


def decode_release(body: str) -> tuple[str, int] | None:
    """(address, subscription version) of a release check; None when the message is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") != "release":
        return None
    email, version = data.get("email"), data.get("version")
    if not isinstance(email, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    return email, version


class SendQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def check_release(self, email: str, version: int, delay_seconds: int) -> None:
        """Queue the check that finishes a re-subscription's releases; DependencyUnavailable if SQS refuses."""
        body = json.dumps({"kind": "release", "email": email, "version": version}, ensure_ascii=False)
        try:
            aws.client("sqs").send_message(
                QueueUrl=self.queue_url, MessageBody=body, DelaySeconds=max(0, min(900, delay_seconds))
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("The send queue is unavailable") from exc

    def defer(self, dispatch_id: str, provider: str, calls: Sequence[ProviderCall]) -> list[ProviderCall]:
        """Each call into the queue; the calls that could not be queued (SQS unavailable) are returned.
        SQS's batches (10 messages, 256 KiB) are filled in order; an entry SQS did not take is sent again."""
        left: list[ProviderCall] = []
        batch: list[tuple[ProviderCall, str]] = []
        size = 0
        for call in calls:
            body = encode(dispatch_id, provider, call)
            if batch and (len(batch) == 10 or size + len(body.encode()) > MAX_BATCH_BYTES):
                left += self._send(batch)
                batch, size = [], 0
            batch.append((call, body))
            size += len(body.encode())
        if batch:
            left += self._send(batch)
        return left

    def _send(self, batch: list[tuple[ProviderCall, str]]) -> list[ProviderCall]:
        entries: list[dict[str, Any]] = [{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)]
        for _ in range(3):
            try:
                answer = aws.client("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError):
                continue
            failed = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                return []
        return [batch[int(e["Id"])][0] for e in entries]
