"""The sent-mail flow: what a send handed to its provider, queued to every `sent_mail` sink (kintone, ...).

One delivery per sink per block of 100 recipients (kintone's bulk limit), through the same machinery as
every sink (records, retries, DLQ, replay). The delivery id comes from the sink, the dispatch and the block,
so queueing the same send again (a repeat with its idempotency key, a take-over) queues nothing new; the
sample kintone app upserts by message id, so even a replayed delivery leaves one record per recipient."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge.adapters import delivery_store
from martech_bridge.adapters.delivery_store import MAX_STORED_PAYLOAD_BYTES, payload_json
from martech_bridge.config import load_bridge_config
from martech_bridge.dependencies import delivery_engine
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.mail import MailRequest, RecipientResult
from martech_bridge.models.routes import Sink
from martech_bridge.observability import logger, metrics

BLOCK = 100  # recipients per delivery: kintone's records.json takes at most 100 (WIRE-FORMATS 5.4)
RECORDED = ("accepted", "pending")  # pending: safely queued by the bridge and sent shortly
# Room kept in a stored payload for everything but the bodies (100 recipients' ids and addresses, the head).
_PAYLOAD_MARGIN = 4 * 1024


def clip(text: str | None, max_chars: int, max_bytes: int) -> tuple[str | None, bool]:
    """`text` cut to at most `max_chars` characters and `max_bytes` UTF-8 bytes (as stored, JSON-escaped),
    on a character boundary; and whether it was cut."""
    if text is None:
        return None, False
    cut = text[:max_chars]
    while cut and len(payload_json({"t": cut}).encode("utf-8")) - 8 > max_bytes:
        cut = cut[: max(0, len(cut) - max(1, (len(cut) // 8)))]
    return cut, cut != text


def payloads(
    sink: Sink,
    dispatch_id: str,
    provider: str,
    request: MailRequest,
    results: Sequence[RecipientResult],
    sent_at: datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """(block key, payload) per block of recipients the provider took, bodies clipped so that kintone takes
    them (the sink's max_body_chars) and the delivery record can hold them (MAX_STORED_PAYLOAD_BYTES)."""
    user_ids = {r.email: r.user_id for r in request.to if r.email and r.user_id}
    blocks: dict[int, list[dict[str, Any]]] = {}
    for result in results:
        if result.status not in RECORDED or not result.email:
            continue
        index = int(result.message_id.rsplit(".", 1)[1])
        blocks.setdefault(index // BLOCK, []).append(
            {
                "recipient": result.email,
                "message_id": result.message_id,
                "provider_message_id": result.provider_message_id,
                "status": result.status,
                "user_id": user_ids.get(result.email),
                "provider": result.provider or provider,  # a recipient the fallback sent names the fallback
            }
        )
    budget = MAX_STORED_PAYLOAD_BYTES - _PAYLOAD_MARGIN
    out = []
    for block, recipients in sorted(blocks.items()):
        head: dict[str, Any] = {
            "dispatch_id": dispatch_id,
            "provider": provider,
            "subject": request.subject,
            "template_id": request.template_id,
            "from": request.sender.email if request.sender else None,
            # kintone's DATETIME has whole seconds (WIRE-FORMATS 5.2).
            "sent_at": sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "categories": ",".join(request.categories) or None,
            "recipients": recipients,
        }
        room = budget - len(payload_json(head).encode("utf-8"))
        text, text_cut = clip(request.text, sink.max_body_chars, room)
        room -= len(payload_json({"t": text}).encode("utf-8")) if text else 0
        html, html_cut = clip(request.html if sink.include_html else None, sink.max_body_chars, max(0, room))
        payload = {**head, "text": text, "html": html, "truncated": text_cut or html_cut}
        out.append((f"{dispatch_id}#{block}", payload))
    return out


def queue_sent(
    dispatch_id: str, provider: str, request: MailRequest, results: Sequence[RecipientResult], sent_at: datetime
) -> bool:
    """Queue the sent-mail deliveries of one send; False when some could not be stored now (the send is
    answered anyway: a repeat of the request with its idempotency key queues what is missing)."""
    sinks = load_bridge_config().sinks_for("sent_mail")
    if not sinks:
        return True
    engine = delivery_engine()
    now = delivery_store.now()  # the deliveries' one clock
    complete = True
    for sink in sinks:
        for key, payload in payloads(sink, dispatch_id, provider, request, results, sent_at):
            delivery = engine.sink_delivery(sink, key, payload, now, "Sent mail")
            if delivery is None:  # this sink cannot; others may
                continue
            try:
                if engine.queue_new(delivery) is None:
                    metrics.add_metric(name="SinkDeliveriesQueued", unit=MetricUnit.Count, value=1)
            except DependencyUnavailable:
                complete = False
                logger.warning("Sent mail could not be queued to a sink yet", extra={"sink": sink.name})
    return complete
