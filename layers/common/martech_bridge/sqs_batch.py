"""SQS batches with partial failure: each message handled in turn, and those whose handling raised reported
back (batchItemFailures), so SQS delivers only them again.

Ours, not Powertools' BatchProcessor: importing that one loads asyncio and every event data class (DynamoDB
streams, S3 batch operations ...), 30-50 ms of each worker's cold start (docs/design.md, "Cold starts")."""

from collections.abc import Callable
from typing import Any

import msgspec

from martech_bridge.observability import logger


class Message(msgspec.Struct, frozen=True):
    message_id: str
    body: str


def process(event: dict[str, Any], handle: Callable[[Message], None]) -> dict[str, Any]:
    failures = []
    for record in event.get("Records") or []:
        message = Message(str(record["messageId"]), str(record["body"]))
        try:
            handle(message)
        except Exception as exc:  # noqa: BLE001 - any failure puts the message back on the queue
            # The class only: a message may carry what must not reach the log.
            logger.warning(
                "Message not handled; SQS delivers it again",
                extra={"message_id": message.message_id, "error": type(exc).__name__},
            )
            failures.append({"itemIdentifier": message.message_id})
    return {"batchItemFailures": failures}
