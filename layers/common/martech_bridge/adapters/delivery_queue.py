"""The delivery queue. One message per delivery, carrying only its id: every attempt claims "the next
attempt" from the delivery record, and a retry hands the same message back with its visibility set to the
backoff delay (SQS does the waiting, not a Lambda). Given-up deliveries are moved to the DLQ with a reason."""

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.logic import strict_json

MAX_DELAY = 900  # SQS DelaySeconds limit
MAX_VISIBILITY = 43_200  # SQS visibility timeout limit (12 h)


def parse_message(body: str) -> str:
    """The delivery id a queue message is about; ValueError for anything else."""
    data = strict_json.loads(body)  # JsonRefused is a ValueError
    if not isinstance(data, dict) or not isinstance(data.get("delivery_id"), str) or not data["delivery_id"]:
        raise ValueError("not a delivery message")
    return data["delivery_id"]


class DeliveryQueue:
    def __init__(self, queue_url: str, dlq_url: str) -> None:
        self.queue_url = queue_url
        self.dlq_url = dlq_url

    def enqueue(self, delivery_id: str, delay_seconds: float = 0) -> None:
        self._call(
            "send_message",
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"delivery_id": delivery_id}),
            DelaySeconds=min(MAX_DELAY, max(0, int(delay_seconds))),
        )

    def postpone(self, receipt_handle: str, delay_seconds: float) -> None:
        """Make an in-flight message reappear after `delay_seconds` (its retry)."""
        self._call(
            "change_message_visibility",
            QueueUrl=self.queue_url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=min(MAX_VISIBILITY, max(0, int(delay_seconds))),
        )

    def dead_letter(self, delivery_id: str, reason: str) -> None:
        if not self.dlq_url:
            from martech_bridge.errors import ConfigurationError

            raise ConfigurationError("Setting DELIVERY_DLQ_URL is not configured for this function")
        self._call(
            "send_message",
            QueueUrl=self.dlq_url,
            MessageBody=json.dumps({"delivery_id": delivery_id, "reason": reason}, ensure_ascii=False),
        )

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(aws.client("sqs"), operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery queue is unavailable") from exc
