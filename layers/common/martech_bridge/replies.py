"""The replies flow: a message SES stored in the inbound bucket becomes a stored reply, tied to the mail it
answers when it can be, and queued to every `replies` sink (a kintone record linked to the original).

Steps: read the object (at most MAX bytes), parse it (never raises: what cannot be read is noted), tie it to
its original (the reply+<dispatch id>@ address the send set as Reply-To, else In-Reply-To / References
against our message ids and the providers' ids; only when its sender is a recipient of that message), store
it (written once, keyed by the object, so a repeated S3 event finds it), queue the sink deliveries (ids from
the sink and the reply: a repeat queues nothing new). A crash anywhere is repaired by the next invocation
for the same object (Lambda's async retries, then the function's dead-letter queue), which repeats only
idempotent steps; unmatched replies (and unverified ones, with the reason) are kept and listed by GET /replies."""

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge.adapters import delivery_store, inbound_mail
from martech_bridge.adapters.delivery_store import MAX_STORED_PAYLOAD_BYTES, payload_json
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.adapters.reply_store import ReplyStore
from martech_bridge.config import load_bridge_config
from martech_bridge.dependencies import delivery_engine
from martech_bridge.logic import replies as reading
from martech_bridge.models.email import normalize_email
from martech_bridge.models.routes import Sink
from martech_bridge.observability import count, logger, metrics
from martech_bridge.sent_mail import clip

PROVIDERS = ("sendgrid", "braze", "infobip")
MAX_REFERENCES_LOOKED_UP = 5  # DynamoDB reads per reply stay bounded whatever References holds
STORED_TEXT_CHARS = 16_384  # of a reply's text kept on its item (the sinks get up to their max_body_chars)


def reply_id_for(bucket: str, key: str) -> str:
    """One id per stored object: SES writes each received message once, under its own key."""
    return "rp_" + hashlib.sha256(f"{bucket}\x00{key}".encode()).hexdigest()[:26]


def receive(
    bucket: str, key: str, *, messages: MessageStore, store: ReplyStore, max_bytes: int, require_auth: bool = True
) -> str:
    """Handle one stored message; returns what happened (for the log)."""
    reply_id = reply_id_for(bucket, key)
    stored = store.get(reply_id)
    if stored is None:
        raw = inbound_mail.read(bucket, key, max_bytes)
        if raw is None:
            logger.warning("Inbound mail object not found; nothing to do", extra={"reply_id": reply_id})
            return "object not found"
        parsed = reading.parse(raw.data) if raw.complete else _too_large(raw)
        link = authenticated(tie(parsed, messages), parsed, require_auth)
        stored = store.save(_item(reply_id, bucket, key, raw.size, parsed, link))
        matched = "yes" if link.get("dispatch_id") else "unverified" if link.get("claimed_by") else "no"
        count("RepliesReceived", matched=matched)
        logger.info(
            "Reply stored",
            extra={
                "reply_id": reply_id,
                "matched_by": link.get("matched_by"),
                "claimed_by": link.get("claimed_by"),
                **reading.summary(parsed),
            },
        )
        payload = sink_payload(stored, parsed)
    else:
        # Stored by an earlier run that may have stopped before its deliveries: the full bodies are read
        # again only if a sink needs them.
        raw = inbound_mail.read(bucket, key, max_bytes) if load_bridge_config().sinks_for("replies") else None
        again = reading.parse(raw.data) if raw is not None and raw.complete else None
        payload = sink_payload(stored, again)
    forward(reply_id, payload)
    return "matched" if stored.get("dispatch_id") else "unmatched"


def _too_large(raw: inbound_mail.RawMail) -> reading.ParsedReply:
    """Only the headers of a message too large to read whole (its text is cut where the read stopped)."""
    head = raw.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = reading.parse(head + b"\r\n\r\n")
    parsed.problems.append(f"message of {raw.size} bytes is larger than the bridge reads; body not read")
    return parsed


# Why a reply whose headers name a message is not tied to it (stored on the reply; no address in it).
NOT_A_RECIPIENT = "the sender is not a recipient of the message the reply names; not linked (headers can be forged)"
NO_SENDER = "the reply has no readable sender address; not linked to the message it names"
NO_SES_RESULTS = (
    "no Authentication-Results from SES at the top of the message, so its sender is not authenticated; "
    "not linked (the From header can be forged)"
)


def authenticated(link: dict[str, Any], parsed: reading.ParsedReply, require_auth: bool) -> dict[str, Any]:
    """The link, kept only when SES authenticated the From domain (its topmost Authentication-Results:
    dmarc=pass, or a strictly aligned dkim or spf pass; logic/mail_auth.py); otherwise the reply is kept
    unlinked and unverified, with the results as the reason. REPLY_REQUIRE_AUTH=false skips the check, for an
    inbound path that is not SES and writes no such field."""
    if not require_auth or not link.get("dispatch_id"):
        return link
    sender = _normal(parsed.sender)
    if parsed.ses.authenticates(sender.rsplit("@", 1)[-1] if sender else None):
        return link
    reason = (
        f"SES did not authenticate the sender's domain ({parsed.ses.summary()}); "
        "not linked (the From header can be forged)"
        if parsed.ses.found
        else NO_SES_RESULTS
    )
    return {"claimed_by": link["matched_by"], "claimed_dispatch_id": link["dispatch_id"], "unmatched_reason": reason}


def tie(parsed: reading.ParsedReply, messages: MessageStore) -> dict[str, Any]:
    """The original message this reply answers: {matched_by, dispatch_id, message_id, recipient, provider,
    provider_message_id}, or {} when nothing ties it.

    A reply+<dispatch id>@ address, In-Reply-To and References can be written by anyone, so a message they
    name counts only when the reply's sender is one of that message's recipients (as the send flow stored
    them, normalised alike). A reply naming a message whose recipients do not include its sender is kept
    unlinked, with {claimed_by, claimed_dispatch_id, unmatched_reason}, and listed with the unmatched ones."""
    sender = _normal(parsed.sender)
    claims: list[tuple[str, str]] = []
    for dispatch_id in parsed.reply_tokens()[:3]:
        recipients = messages.recipients(dispatch_id)
        if not recipients:
            continue
        # The reply address is per dispatch: any of its recipients may answer through it.
        own = [r for r in recipients if _sent_to(r, sender)]
        if own:
            return _link("reply_address", dispatch_id, own[0])
        claims.append(("reply_address", dispatch_id))
    for ref in parsed.referenced_ids()[:MAX_REFERENCES_LOOKED_UP]:
        own_id = reading.OWN_MESSAGE_ID.match(ref)
        if own_id:
            message_id = own_id.group(1)
            dispatch_id = message_id.rsplit(".", 1)[0]
            found = [r for r in messages.recipients(dispatch_id) if r.get("message_id") == message_id]
            if found:
                # Our message id is one recipient's message: only that recipient answers it.
                if _sent_to(found[0], sender):
                    return _link("in_reply_to", dispatch_id, found[0])
                claims.append(("in_reply_to", dispatch_id))
                continue
        local = ref.split("@", 1)[0]
        for provider in PROVIDERS:
            items = messages.recipients_by_provider_id(provider, local)
            if not items:
                continue
            # A provider's id may cover several recipients (SendGrid's X-Message-Id is per request).
            own = [i for i in items if _sent_to(i, sender)]
            if own:
                return _link("in_reply_to", str(own[0]["dispatch_id"]), own[0])
            claims.append(("in_reply_to", str(items[0]["dispatch_id"])))
            break
    if not claims:
        return {}
    how, dispatch_id = claims[0]
    return {
        "claimed_by": how,
        "claimed_dispatch_id": dispatch_id,
        "unmatched_reason": NOT_A_RECIPIENT if sender else NO_SENDER,
    }


def _normal(address: str | None) -> str | None:
    """An address as the send flow stores a recipient's (trimmed, lower-cased, IDN domain punycoded)."""
    if not address:
        return None
    try:
        return normalize_email(address)
    except ValueError:  # InvalidEmail, or an IDN codec's error: not an address we sent to
        return None


def _sent_to(recipient: dict[str, Any], sender: str | None) -> bool:
    return sender is not None and _normal(recipient.get("email")) == sender


def _link(how: str, dispatch_id: str, recipient: dict[str, Any] | None) -> dict[str, Any]:
    link: dict[str, Any] = {"matched_by": how, "dispatch_id": dispatch_id}
    if recipient is not None:
        link.update(
            message_id=recipient.get("message_id"),
            recipient=recipient.get("email"),
            provider=recipient.get("provider"),
            provider_message_id=recipient.get("provider_message_id"),
        )
    return link


def _item(
    reply_id: str, bucket: str, key: str, size: int, parsed: reading.ParsedReply, link: dict[str, Any]
) -> dict[str, Any]:
    text, cut = clip(parsed.new_text, STORED_TEXT_CHARS, STORED_TEXT_CHARS * 4)
    return {
        "reply_id": reply_id,
        "received_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sent_at": parsed.date,
        "from": parsed.sender,
        "from_name": (parsed.sender_name or "")[:256] or None,
        "subject": parsed.subject,
        "text": text,
        "text_truncated": cut or None,
        "message_id_header": (parsed.message_id or "")[:500] or None,
        "in_reply_to": parsed.in_reply_to[:5] or None,
        "attachments": [msgspec.structs.asdict(a) for a in parsed.attachments] or None,
        "problems": [p[:300] for p in parsed.problems[:20]] or None,
        "size": size,
        "object": f"s3://{bucket}/{key}"[:1024],
        "matched": bool(link.get("dispatch_id")),
        # SES's verdicts as it prepended them (None: not there); a FAIL is kept, flagged, and listed.
        "sender_auth": parsed.ses.summary() if parsed.ses.found else None,
        "spam_verdict": parsed.ses.spam,
        "virus_verdict": parsed.ses.virus,
        "flagged": [n for n, v in (("spam", parsed.ses.spam), ("virus", parsed.ses.virus)) if v == "FAIL"] or None,
        **link,
    }


def sink_payload(stored: dict[str, Any], parsed: reading.ParsedReply | None) -> dict[str, Any]:
    """What a replies sink's mapping reads: the stored reply, with the full new text and the HTML when the
    message could be read again, and the attachments as one line each."""
    payload = {k: v for k, v in stored.items() if k not in ("attachments", "in_reply_to", "problems", "flagged")}
    payload["attachments"] = (
        "\n".join(reading.Attachment(**a).describe() for a in stored.get("attachments") or []) or None
    )
    payload["in_reply_to"] = " ".join(f"<{i}>" for i in stored.get("in_reply_to") or []) or None
    payload["problems"] = "\n".join(stored.get("problems") or []) or None
    payload["flagged"] = " ".join(stored.get("flagged") or []) or None  # "spam", "virus", "spam virus"
    if parsed is not None:
        payload["text"] = parsed.new_text
        payload["full_text"] = parsed.text
        payload["html"] = parsed.html
    return payload


def _for_sink(sink: Sink, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload with its bodies cut to what kintone takes and what a delivery record holds."""
    out = {**payload, "html": payload.get("html") if sink.include_html else None}
    room = (
        MAX_STORED_PAYLOAD_BYTES
        - 8 * 1024
        - len(payload_json({k: v for k, v in out.items() if k not in ("text", "full_text", "html")}).encode())
    )
    truncated = False
    for name in ("text", "html", "full_text"):
        value, cut = clip(out.get(name), sink.max_body_chars, max(0, room))
        out[name] = value
        truncated = truncated or cut
        room -= len(payload_json({"t": value}).encode()) if value else 0
    out["truncated"] = truncated or bool(payload.get("text_truncated"))
    return out


def forward(reply_id: str, payload: dict[str, Any]) -> None:
    """Queue a delivery to every replies sink; the delivery id comes from the sink and the reply."""
    sinks = load_bridge_config().sinks_for("replies")
    if not sinks:
        return
    engine = delivery_engine()
    now = delivery_store.now()  # the deliveries' one clock
    for sink in sinks:
        delivery = engine.sink_delivery(sink, reply_id, _for_sink(sink, payload), now, "Reply")
        if delivery is None:
            continue
        if engine.queue_new(delivery) is None:
            metrics.add_metric(name="SinkDeliveriesQueued", unit=MetricUnit.Count, value=1)
