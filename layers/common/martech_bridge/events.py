"""The events flow: one queued ESP post in, every event in it applied exactly once.

Per post: normalise (an unreadable event is recorded as rejected, never failing its post); keep only the
events a per-dispatch token authorises; find each event's message (our ids, the provider's id, or - for
SendGrid events that carry neither - the latest message sent to the address); drop events whose item is
stored already (the event item is its own dedupe marker); move each recipient's status to the furthest
this post reports, skipping what the status read already covers, in transactions that also write the
final report; apply KARTE's subscription rule to the matched recipient; queue sink deliveries; and last,
write the event items, with the day's effect counters in the same transactions. Every effect before the
last step is idempotent, so a crash only repeats harmless work, and metrics and effect counters count only
the events whose item this run wrote."""

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import msgspec
from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.config import get_settings, load_bridge_config
from martech_bridge.dependencies import delivery_engine, event_payloads, message_store, subscription_store
from martech_bridge.errors import Conflict
from martech_bridge.logic.event_effects import STRENGTH, should_suppress, status_change, suppression_for
from martech_bridge.logic.stats import counter_of
from martech_bridge.logic.strict_json import may_hold_lone_surrogate
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.email import InvalidEmail, normalize_email
from martech_bridge.models.events import NormalizedEvent
from martech_bridge.models.subscription import SubscriptionUpdate, SuppressionKind
from martech_bridge.observability import count, logger, mask_email, metrics


class PostResult(msgspec.Struct):
    provider: str
    applied: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, Any]] = msgspec.field(default_factory=list)


def process_post(envelope: dict[str, Any]) -> PostResult:
    """One queued post (the envelope the events endpoint enqueued), applied."""
    provider = PROVIDERS[envelope["provider"]]
    received_at = _received_at(envelope.get("received_at"))
    result = PostResult(provider.name)
    events = read_post(provider, event_payloads().body_of(envelope), received_at, result.rejected)
    if events is not None:
        apply_events(events, result, scope=envelope.get("scope"))
    if result.rejected:
        message_store().record_rejected(provider.name, result.rejected, received_at)
        metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(result.rejected))
        for reason, _ in result.rejected[:20]:
            logger.warning("Event rejected", extra={"provider": provider.name, "reason": reason[:200]})
    return result


def read_post(
    provider: Any, raw: str, received_at: datetime, rejected: list[tuple[str, Any]]
) -> list[NormalizedEvent] | None:
    """A post's text as the events to apply (None when it is not JSON); each unreadable or unstorable event
    goes to `rejected` with why. All the per-event CPU before the store (bench: ingest.normalise_*)."""
    try:
        payload = _parse(raw)
    except (json.JSONDecodeError, RecursionError):
        rejected.append(("post is not JSON", raw[:2000]))
        return None
    read = provider.events(payload, received_at)
    # The others are RejectedEvents (type(), cheaper than isinstance() per event).
    events = [e for e in read if type(e) is NormalizedEvent]
    if len(events) < len(read):
        rejected += [(e.reason, e.raw) for e in read if type(e) is not NormalizedEvent]
    # A lone surrogate (which no UTF-8 store takes) comes from a \ud800-\udfff escape or is in the text
    # itself: one look at the post spares the per-event check of every post without one (the events endpoint
    # refuses them, so all it queued).
    if may_hold_lone_surrogate(raw):
        storable: list[NormalizedEvent] = []
        for event in events:
            if (problem := _unstorable(event)) is None:
                storable.append(event)
            else:
                rejected.append((problem, None))
        events = storable
    return events


_DECODE = msgspec.json.Decoder().decode


def _parse(raw: str) -> Any:
    """json.loads' answer, at about half its CPU (bench: ingest.normalise_*). msgspec reads every post
    alike, integers of any length included, except that it refuses NaN, 1e400 and lone surrogates, which
    json reads: those go to json. (It also reads nesting past json's recursion limit; the events endpoint
    refuses posts nested past 64 levels, so no queued post is.)"""
    try:
        return _DECODE(raw)
    except msgspec.DecodeError:  # ValidationError (1e400) is one too
        return json.loads(raw)


def apply_events(events: list[NormalizedEvent], result: PostResult, *, scope: str | None = None) -> None:
    """Apply a post's events once each. `scope`: the dispatch an Infobip per-dispatch token authorised;
    then only events of that dispatch's Infobip messages are taken."""
    store = message_store()
    unique: dict[tuple[str, str], NormalizedEvent] = {}
    for event in events:
        unique.setdefault((event.provider, event.event_id), event)
    batch = list(unique.values())
    matches = store.match(batch)
    candidates: dict[tuple[str, str], tuple[NormalizedEvent, dict[str, Any] | None, dict[str, Any]]] = {}
    for event, (recipient, how) in zip(batch, matches, strict=True):
        if scope is not None and (
            event.dispatch_id != scope or recipient is None or recipient.get("dispatch_id") != scope
        ):
            result.rejected.append(("event is outside the dispatch its callback token authorises", event.raw))
            continue
        event.matched_by = how  # type: ignore[assignment]
        item = store.event_item(recipient, event)
        candidates.setdefault((item["pk"], item["sk"]), (event, recipient, item))
    stored = store.existing(list(candidates))
    fresh = [c for key, c in candidates.items() if key not in stored]
    if not fresh:
        result.duplicates = len(events)
        return

    furthest: dict[tuple[str, str], tuple[dict[str, Any], str, int, NormalizedEvent]] = {}
    soft_bounces = get_settings().suppress_soft_bounces
    suppressions: dict[str, tuple[SuppressionKind, NormalizedEvent]] = {}
    for event, recipient, _item in fresh:
        change = status_change(event)
        if recipient is not None and change is not None:
            key = (recipient["pk"], recipient["sk"])
            best = furthest[key][2] if key in furthest else int(recipient.get("status_rank", 0))
            if change[1] > best:  # what the status read already covers needs no write
                furthest[key] = (recipient, change[0], change[1], event)
        kind = suppression_for(event, soft_bounces=soft_bounces)
        # Effects go to the recipient we matched, not to whatever address the event names.
        email = (recipient or {}).get("email") or (event.recipient if recipient is None else None)
        stronger = email not in suppressions or STRENGTH[kind] > STRENGTH[suppressions[email][0]] if kind else False
        if kind is not None and email and stronger:
            suppressions[email] = (kind, event)
    store.advance_many(list(furthest.values()))
    for email, (kind, event) in suppressions.items():
        _suppress(email, kind, event)
    for event, recipient, _item in fresh:
        forward(event, recipient)
    # Effect measurement: each newly written event adds to its day's counter in the same transaction.
    tallies = [(e.provider, f"{e.timestamp:%Y-%m-%d}", name) if (name := counter_of(e)) else None for e, _, _ in fresh]
    written = store.record_events([item for _, _, item in fresh], tallies)
    # Counted only for the items this run wrote: a redelivered post, or a concurrent worker, counts nothing.
    keys = {(i["pk"], i["sk"]) for i in written}
    by_type: Counter[tuple[str, str]] = Counter(
        (e.provider, e.event_type.value) for e, _, item in fresh if (item["pk"], item["sk"]) in keys
    )
    for (provider, event_type), n in by_type.items():
        count(f"Events{event_type.capitalize()}", n, provider=provider)
    result.applied = len(written)
    result.duplicates = len(events) - len(written)
    if result.duplicates:
        metrics.add_metric(name="EventDuplicatesDropped", unit=MetricUnit.Count, value=result.duplicates)


def sink_payload(event: NormalizedEvent, recipient: dict[str, Any] | None) -> dict[str, Any]:
    """What a sink's mapping reads: the normalised event, the matched recipient's KARTE user key
    (`user_id`: the recipient's user_id, else the message's metadata.karte_user_id; never the address) and
    the provider as KARTE's plug-in names it (`app_name`)."""
    payload = event.model_dump(mode="json")
    # kintone's DATETIME format has whole seconds (WIRE-FORMATS 5.2); so does KARTE's event time.
    payload["timestamp"] = event.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload["app_name"] = event.provider
    payload["user_id"] = (recipient or {}).get("user_id")
    if recipient is not None:
        payload.update(
            recipient=recipient.get("email") or event.recipient,
            dispatch_id=recipient.get("dispatch_id"),
            message_id=recipient.get("message_id"),
        )
    return payload


def forward(event: NormalizedEvent, recipient: dict[str, Any] | None = None) -> None:
    """Queue a delivery to every sink whose filter takes this event. The delivery id comes from the sink and
    the event, so applying an event twice (a crash before its item) queues nothing new."""
    sinks = [
        s for s in load_bridge_config().sinks_for("events") if s.filter.accepts(event.provider, event.event_type.value)
    ]
    if not sinks:
        return
    engine = delivery_engine()
    now = datetime.now(UTC)
    base = sink_payload(event, recipient)
    for sink in sinks:
        payload = {**base, "event_name": sink.event_name(event.provider, event.event_type.value)}
        delivery = engine.sink_delivery(sink, f"{event.provider}#{event.event_id}", payload, now, "Event")
        if delivery is None:  # not this sink; the rest can
            continue
        if engine.queue_new(delivery) is None:  # stored: from here the sweeper sees it queued
            metrics.add_metric(name="SinkDeliveriesQueued", unit=MetricUnit.Count, value=1)


def _suppress(email: str, kind: SuppressionKind, event: NormalizedEvent) -> None:
    """KARTE's rule: this event sets the subscription to false, with the reason."""
    try:
        email = normalize_email(email)
    except InvalidEmail:
        # An `email` the provider reported that is no address (the event normaliser keeps it as it came): no
        # send can go to it, and a record keyed by it would be refused when read, failing every later post
        # that names it. Nothing to hold back.
        logger.warning(
            "Suppression not recorded: the event's address is not one",
            extra={"suppression": kind.value, "event": event.event_type.value},
        )
        return
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


def _unstorable(event: NormalizedEvent) -> str | None:
    """Why an event cannot be stored (a lone surrogate escape cannot be UTF-8), else None."""
    try:
        json.dumps(event.raw, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return "event holds text that is not valid Unicode (a lone surrogate)"
    return None


def _received_at(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.now(UTC)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
