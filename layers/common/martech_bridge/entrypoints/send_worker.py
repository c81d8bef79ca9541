"""SendWorkerFunction: the send queue. Each message is one provider call that a `POST /mail/send` could not
make within its deadline (a Braze recipient, whose external_send_id Braze deduplicates); the call is made
now and the recipient's `pending` record settled. A message whose records are not written yet, or that
finds no time left, goes back to the queue; the redrive moves one that keeps failing to the DLQ. A release
check (releases.py) makes a re-subscription's still-pending suppression releases, and goes back likewise."""

import time
from typing import Any

import msgspec.structs
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.adapters.send_queue import decode, decode_release
from martech_bridge.config import get_settings
from martech_bridge.dependencies import message_store, subscription_store
from martech_bridge.observability import logger
from martech_bridge.releases import resume
from martech_bridge.sending import api_key, count_outcomes, run_calls
from martech_bridge.sqs_batch import Message, process

RESERVE_SECONDS = 5.0  # kept back for settling the records


class HandBack(Exception):
    """The message goes back to the queue, to be tried again after its visibility timeout."""


def record_handler(record: Message, context: LambdaContext) -> None:
    settings = get_settings()
    check = decode_release(record.body)
    if check is not None:
        remaining = context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
        deadline = time.monotonic() + min(settings.send_deadline_seconds, remaining)
        if not resume(*check, settings=settings, store=subscription_store(), deadline=deadline):
            raise HandBack("a provider's suppression release is still pending")
        return
    try:
        dispatch_id, name, call = decode(record.body)
        provider = PROVIDERS[name]
    except (ValueError, KeyError):
        logger.error("Unreadable send message; dropped", extra={"message_id": record.message_id})
        return
    logger.append_keys(dispatch_id=dispatch_id, provider=name)
    store = message_store()
    if not store.exists(dispatch_id):
        raise HandBack("the message's records are not written yet")
    if not call.retry_safe:
        logger.error("A send message for a call that cannot be repeated safely; dropped")
        return
    request = msgspec.structs.replace(
        call.request, headers={**call.request.headers, **provider.auth(api_key(settings, provider))}
    )
    remaining = context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
    deadline = time.monotonic() + min(settings.send_deadline_seconds, remaining)
    (result,) = run_calls(provider, [msgspec.structs.replace(call, request=request)], deadline)
    if result.deferred is not None:
        raise HandBack("no time left for the call")
    if result.failure is not None and result.failure.kind == "retry":
        raise HandBack("the provider is unavailable; the queue tries again")  # Braze dedupes the repeat
    for recipient in result.results:
        store.settle_pending(dispatch_id, recipient, provider.name)
    count_outcomes(provider, result.results)
    logger.info("Deferred send made", extra={"statuses": [r.status for r in result.results]})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process(event, lambda message: record_handler(message, context))
