"""DeliveryWorkerFunction: the retries. Each queue message names one delivery; the worker claims its next
attempt, makes it, and either lets the message go (settled), hands it back with its visibility set to the
backoff delay (retry), or - when the delivery is given up on - the engine has moved it to the DLQ."""

import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters.delivery_queue import parse_message
from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import lease_seconds
from martech_bridge.dependencies import delivery_engine
from martech_bridge.models.delivery import DeliveryStatus
from martech_bridge.observability import logger

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
MIN_SECONDS_FOR_AN_ATTEMPT = 5.0


class HandBack(Exception):
    """The message goes back to the queue (its visibility already set to when it is due again)."""


def record_handler(record: SQSRecord) -> None:
    engine = delivery_engine()
    try:
        delivery_id = parse_message(record.body)
    except ValueError:
        logger.error("Unreadable delivery message; moved to the DLQ", extra={"message_id": record.message_id})
        engine.queue.dead_letter("?", f"unreadable message {record.message_id}")
        return
    logger.append_keys(delivery_id=delivery_id)
    delivery = engine.store.get(delivery_id)
    if delivery is None:
        logger.error("Delivery message for an unknown delivery; dropped")
        return
    if delivery.status.final:
        return  # a duplicate message, or a replay already settled
    now = datetime.now(UTC)
    if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at and delivery.next_attempt_at > now:
        wait = (delivery.next_attempt_at - now).total_seconds()
        if wait > 1:
            engine.queue.postpone(record.receipt_handle, wait)  # arrived early (SQS delays stop at 15 min)
            raise HandBack(f"not due for {wait:.0f} s")
    route = load_bridge_config().spec(delivery.route)
    if route is None:
        engine.store.mark(
            delivery, DeliveryStatus.FAILED, last_error=f"route {delivery.route!r} is no longer configured"
        )
        engine.queue.dead_letter(delivery_id, "route no longer configured")
        return
    remaining = _remaining_seconds()
    if remaining < MIN_SECONDS_FOR_AN_ATTEMPT:
        engine.queue.postpone(record.receipt_handle, 0)
        raise HandBack("not enough time left in this invocation")
    claimed = engine.store.claim(delivery_id, delivery.attempts + 1, lease_seconds(remaining))
    if claimed is None:
        fresh = engine.store.get(delivery_id)
        if fresh is None or fresh.status.final:
            return
        # Someone else holds the attempt (the relay's own first try, or a duplicate message): look again later.
        engine.queue.postpone(record.receipt_handle, 5)
        raise HandBack("attempt held elsewhere")
    held, lapsed = claimed
    settled = engine.attempt(
        held, route, held.attempts + 1, lapsed=lapsed, deadline=remaining - MIN_SECONDS_FOR_AN_ATTEMPT / 2
    )
    if settled.retry_in is not None:
        engine.queue.postpone(record.receipt_handle, settled.retry_in)
        raise HandBack(f"retry in {settled.retry_in:.0f} s")


def _remaining_seconds() -> float:
    return processor.lambda_context.get_remaining_time_in_millis() / 1000


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    logger.debug("Batch done", extra={"seconds": round(time.monotonic() - started, 2)})
    return dict(response)
