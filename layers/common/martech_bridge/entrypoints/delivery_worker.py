"""DeliveryWorkerFunction: translates the delivery queue's SQS batch into the deliveries flow. Each message
names one delivery; the engine claims its next attempt, makes it and settles it (deliveries.py). A message
is let go once handled - a retry is a fresh, delayed message - so a message's receive count only climbs
when handling it raised, and the queue's redrive moves it to the DLQ after a few such failures (the
sweeper still recovers the delivery itself)."""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters.delivery_queue import parse_message
from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import delivery_engine
from martech_bridge.observability import logger
from martech_bridge.sqs_batch import Message, process

# At INIT: a routes file that somehow skipped the build's check stops the function here, naming the file, the
# route and the field, instead of failing every request (models/routes.py loads it; cached for the requests).
load_bridge_config()


def record_handler(record: Message, context: LambdaContext) -> None:
    engine = delivery_engine()
    try:
        delivery_id = parse_message(record.body)
    except ValueError:
        logger.error("Unreadable delivery message; moved to the DLQ", extra={"message_id": record.message_id})
        engine.queue.dead_letter("?", f"unreadable message {record.message_id}")
        return
    logger.append_keys(delivery_id=delivery_id)
    outcome = engine.process(delivery_id, lambda: context.get_remaining_time_in_millis() / 1000)
    logger.debug("Delivery message handled", extra={"outcome": outcome})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    response = process(event, lambda message: record_handler(message, context))
    logger.debug("Batch done", extra={"seconds": round(time.monotonic() - started, 2)})
    return dict(response)
