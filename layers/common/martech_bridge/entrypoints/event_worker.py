"""EventWorkerFunction: each queued post is read (from S3 when it came by pointer), normalised by its
provider's module, and every event in it applied once - however often the provider posted it.

Per post, in batches: drop events whose dedupe marker exists; find their messages; keep each event in its
recipient's history and move each recipient's status forward; apply KARTE's subscription rule; queue
sink deliveries; then write the markers. Every effect is idempotent, so a crash before the markers only
repeats harmless work. An unreadable event is
recorded as rejected with its reason and never fails its batch; a failure of AWS fails the post's record,
which SQS delivers again (partial batch failure)."""

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.adapters import aws
from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.config import get_settings, load_bridge_config
from martech_bridge.deliveries import new_delivery_id, request_hash
from martech_bridge.dependencies import dedupe_store, delivery_engine, message_store, subscription_store
from martech_bridge.errors import ConfigurationError, Conflict, InvalidRequest, Unprocessable
from martech_bridge.logic.event_effects import STRENGTH, should_suppress, status_change, suppression_for
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.delivery import Delivery, DeliveryStatus
from martech_bridge.models.events import NormalizedEvent, RejectedEvent
from martech_bridge.models.routes import SINK_PREFIX
from martech_bridge.models.subscription import SubscriptionUpdate
from martech_bridge.observability import count, logger, mask_email, metrics

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    envelope = json.loads(record.body)
    provider = PROVIDERS[envelope["provider"]]
    if "s3_key" in envelope:
        obj = aws.client("s3").get_object(Bucket=get_settings().require("payload_bucket"), Key=envelope["s3_key"])
        raw = obj["Body"].read().decode("utf-8")
    else:
        raw = envelope["body"]
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        reject(provider.name, f"post is not JSON: {exc.msg}", raw[:2000])
        return
    events: list[NormalizedEvent] = []
    rejected = 0
    for item in provider.events(payload):
        if isinstance(item, RejectedEvent):
            reject(item.provider, item.reason, item.raw)
            rejected += 1
        else:
            events.append(item)
    applied = apply_post(events)
    logger.info(
        "Event post processed",
        extra={
            "provider": provider.name,
            "applied": applied,
            "duplicates": len(events) - applied,
            "rejected": rejected,
        },
    )


def apply_post(events: list[NormalizedEvent]) -> int:
    """Apply a post's events once each, in batches: one read for the dedupe markers and one for the
    recipients, batched writes for history and markers, and one conditional status update per recipient
    (its furthest status in this post). Returns how many events were new."""
    fresh: dict[str, NormalizedEvent] = {}
    for event in events:
        fresh.setdefault(f"{event.provider}#{event.event_id}", event)  # duplicates within the post
    seen = dedupe_store().seen_many(list(fresh))
    fresh = {k: e for k, e in fresh.items() if k not in seen}
    if len(events) > len(fresh):
        metrics.add_metric(name="EventDuplicatesDropped", unit=MetricUnit.Count, value=len(events) - len(fresh))
    if not fresh:
        return 0
    messages = message_store()
    batch = list(fresh.values())
    recipients = messages.find_recipients(batch)
    messages.record_history(list(zip(recipients, batch, strict=True)))
    furthest: dict[tuple[str, str], tuple[tuple[str, int], dict[str, Any], NormalizedEvent]] = {}
    suppressions: dict[str, tuple[Any, NormalizedEvent]] = {}
    by_type: Counter[tuple[str, str]] = Counter()
    for recipient, event in zip(recipients, batch, strict=True):
        change = status_change(event)
        if recipient is not None and change is not None:
            key = (recipient["pk"], recipient["sk"])
            if key not in furthest or change[1] > furthest[key][0][1]:
                furthest[key] = (change, recipient, event)
        kind = suppression_for(event)
        email = event.recipient or (recipient or {}).get("email")
        if (
            kind is not None
            and email
            and (email not in suppressions or STRENGTH[kind] > STRENGTH[suppressions[email][0]])
        ):
            suppressions[email] = (kind, event)
        by_type[(event.provider, event.event_type.value)] += 1
    for (provider, event_type), n in by_type.items():
        count(f"Events{event_type.capitalize()}", n, provider=provider)
    for change, recipient, event in furthest.values():
        messages.advance(recipient, change, event)
    for email, (kind, event) in suppressions.items():
        _suppress(email, kind, event)
    for event in batch:
        forward(event)
    dedupe_store().mark_many(list(fresh))
    return len(fresh)


def forward(event: NormalizedEvent) -> None:
    """Queue a delivery to every sink whose filter takes this event. The delivery id comes from the sink and
    the event, so applying an event twice (a crash before its marker) queues nothing new."""
    sinks = [s for s in load_bridge_config().sinks if s.filter.accepts(event.provider, event.event_type.value)]
    if not sinks:
        return
    engine = delivery_engine()
    now = datetime.now(UTC)
    for sink in sinks:
        payload = {
            **event.model_dump(mode="json"),
            "event_name": sink.event_name(event.provider, event.event_type.value),
            "app_name": event.provider,
        }
        name = f"{SINK_PREFIX}{sink.name}"
        try:
            request = engine.build(sink, payload)
        except (InvalidRequest, Unprocessable, ConfigurationError) as exc:  # not this sink; the rest can
            metrics.add_metric(name="SinkDeliveriesSkipped", unit=MetricUnit.Count, value=1)
            logger.warning("Event not forwarded to a sink", extra={"sink": sink.name, "reason": exc.message})
            continue
        delivery = Delivery(
            delivery_id=new_delivery_id(name, f"{event.provider}#{event.event_id}"),
            route=name,
            target=request.describe(),
            status=DeliveryStatus.PENDING,
            max_attempts=sink.delivery.max_attempts,
            created_at=now,
            updated_at=now,
            request_hash=request_hash(payload),
            payload=payload,
        )
        if engine.queue_new(delivery) is None:  # stored: from here the sweeper sees it queued
            metrics.add_metric(name="SinkDeliveriesQueued", unit=MetricUnit.Count, value=1)


def _suppress(email: str, kind: Any, event: NormalizedEvent) -> None:
    """KARTE's rule: this event sets the subscription to false, with the reason."""
    store = subscription_store()
    reason = f"{event.provider} {event.provider_event}" + (f": {event.description}" if event.description else "")
    for _ in range(3):  # a concurrent writer: read again and retry
        current, _history = store.get(email)
        if not should_suppress(current.subscribed if current else None, current.suppression if current else None, kind):
            return
        update = SubscriptionUpdate(subscribed=False, suppression=kind, reason=reason[:500])
        new, change = apply_update(email, current, update, source=f"event:{event.provider}", now=datetime.now(UTC))
        try:
            store.save(new, change, expected_version=current.version if current else None)
        except Conflict:
            continue
        metrics.add_metric(name="Suppressions", unit=MetricUnit.Count, value=1)
        logger.info(
            "Subscription set to false by an event",
            extra={"recipient": mask_email(email), "suppression": kind.value, "event": event.event_type.value},
        )
        return
    raise Conflict("Subscription kept changing while an event was applied")


def reject(provider: str, reason: str, raw: Any) -> None:
    message_store().record_rejected(provider, reason, raw)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=1)
    logger.warning("Event rejected", extra={"provider": provider, "reason": reason})


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    )
