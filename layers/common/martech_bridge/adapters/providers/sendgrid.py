"""SendGrid v3 `/v3/mail/send`: one personalization per recipient, our dispatch and message ids in
`custom_args` (SendGrid returns no per-recipient id; events come back with these), all recipients in one
call (at most 1000). SendGrid cannot deduplicate, so a call that timed out is never sent again."""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from martech_bridge.adapters.providers.base import (
    Outbound,
    ProviderAnswer,
    ProviderCall,
    SendContext,
    classify,
)
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse
from martech_bridge.errors import InvalidRequest
from martech_bridge.logic.delivery import parse_retry_after
from martech_bridge.models.mail import MailRequest

MAX_TOTAL_BYTES = 30 * 1024 * 1024  # the whole message, attachments included
MAX_CUSTOM_ARGS_BYTES = 10_000


def _address(address: Any) -> dict[str, str]:
    return {"email": address.email, **({"name": address.name} if address.name else {})}


class SendGrid:
    name = "sendgrid"
    label = "SendGrid"

    def validate(self, request: MailRequest) -> None:
        total = sum(a.size for a in request.attachments) + len((request.html or "") + (request.text or ""))
        if total > MAX_TOTAL_BYTES:
            raise InvalidRequest(
                f"SendGrid accepts messages up to 30 MB; this one is {total} bytes",
                code="attachment_too_large",
                field="attachments",
            )
        args = json.dumps({**request.metadata, "dispatch_id": "x" * 40, "message_id": "x" * 48})
        if len(args.encode()) > MAX_CUSTOM_ARGS_BYTES:
            raise InvalidRequest(
                "metadata is too large: SendGrid's custom_args are limited to 10,000 bytes",
                code="validation_error",
                field="metadata",
            )

    def calls(self, ctx: SendContext, recipients: Sequence[Outbound]) -> list[ProviderCall]:
        request = ctx.request
        personalizations = []
        for out in recipients:
            p: dict[str, Any] = {
                "to": [{"email": out.recipient.email, **({"name": out.recipient.name} if out.recipient.name else {})}],
                "custom_args": {**request.metadata, "dispatch_id": ctx.dispatch_id, "message_id": out.message_id},
            }
            if request.template_id:
                p["dynamic_template_data"] = {**request.template_data, **out.recipient.data}
            personalizations.append(p)
        mail: dict[str, Any] = {"personalizations": personalizations, "from": _address(ctx.sender)}
        if ctx.reply_to:
            mail["reply_to"] = _address(ctx.reply_to)
        if request.template_id:
            mail["template_id"] = request.template_id
        if request.subject:
            mail["subject"] = request.subject
        content = [{"type": t, "value": v} for t, v in (("text/plain", request.text), ("text/html", request.html)) if v]
        if content:
            mail["content"] = content
        if request.attachments:
            mail["attachments"] = [
                {
                    "content": a.content,
                    "filename": a.filename,
                    "type": a.type,
                    "disposition": a.disposition,
                    **({"content_id": a.content_id} if a.content_id else {}),
                }
                for a in request.attachments
            ]
        if request.categories:
            mail["categories"] = request.categories
        tracking = {}
        if request.track_clicks is not None:
            tracking["click_tracking"] = {"enable": request.track_clicks, "enable_text": request.track_clicks}
        if request.track_opens is not None:
            tracking["open_tracking"] = {"enable": request.track_opens}
        if tracking:
            mail["tracking_settings"] = tracking
        if ctx.sandbox_mode:
            mail["mail_settings"] = {"sandbox_mode": {"enable": True}}
        http = TargetRequest(
            method="POST",
            url=f"{ctx.base_url}/v3/mail/send",
            headers={"Authorization": f"Bearer {ctx.api_key}", "Content-Type": "application/json"},
            body=json.dumps(mail, ensure_ascii=False).encode("utf-8"),
            timeout=ctx.timeout,
            idempotent=False,
            secret_headers=frozenset({"Authorization"}),
        )
        return [ProviderCall(http, list(recipients), retry_safe=False)]

    def events(self, payload: Any, received_at: datetime | None = None) -> list[Any]:
        return sendgrid_events(payload)

    def read(self, call: ProviderCall, response: TargetResponse) -> ProviderAnswer:
        kind = classify(response.status)
        if kind == "accepted":
            message_id = response.headers.get("X-Message-Id") or response.headers.get("x-message-id")
            ids = {out.message_id: message_id for out in call.recipients} if message_id else {}
            return ProviderAnswer("accepted", response.status, provider_ids=ids)
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        field = first.get("field") if first.get("field") not in (None, "null") else None
        return ProviderAnswer(
            kind,
            response.status,
            message=first.get("message"),
            error_field=field,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            raw=body,
        )


# ---------------------------------------------------------------------------------------- events
# SendGrid event -> normalised type, as django-anymail maps them (its SendGridTrackingWebhookView).
_TYPES = {
    "processed": "queued",
    "dropped": "rejected",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "subscribed",
}
# Drop reasons, verbatim from SendGrid's event.md (WIRE-FORMATS 2.2), lower-cased.
_DROP_REASONS = {
    "bounced address": "bounced",
    "unsubscribed address": "unsubscribed",
    "spam reporting address": "spam",
    "invalid": "invalid",
    "invalid smtpapi header": "invalid",
}
# Keys SendGrid itself puts on an event (anymail's list plus sg_machine_open, smtp-id, bounce_classification):
# every other top-level key is a custom arg, i.e. metadata (event.md, "Reserved Keys in Unique Arguments").
_SENDGRID_KEYS = frozenset(
    {
        "anymail_id", "asm_group_id", "attempt", "bounce_classification", "category", "cert_err", "email", "event",
        "ip", "marketing_campaign_id", "marketing_campaign_name", "marketing_campaign_version",
        "marketing_campaign_split_id", "newsletter", "nlvx_campaign_id", "nlvx_campaign_split_id", "nlvx_user_id",
        "pool", "post_type", "reason", "response", "send_at", "sg_event_id", "sg_machine_open", "sg_message_id",
        "sg_template_id", "sg_template_name", "sg_user_id", "smtp-id", "status", "timestamp", "tls", "type", "url",
        "url_offset", "useragent",
    }
)  # fmt: skip


def sendgrid_events(payload: Any) -> list[Any]:
    """SendGrid's Event Webhook post (a JSON array) as normalised events; one unreadable event is one
    RejectedEvent, never the post's failure."""
    from martech_bridge.logic import event_parsing as p
    from martech_bridge.models.events import EventType, NormalizedEvent, RejectedEvent

    if not isinstance(payload, list):
        return [RejectedEvent(provider="sendgrid", reason="a SendGrid post is a JSON array", raw=payload)]
    out: list[Any] = []
    text = p.text
    for item in payload:
        try:
            if not isinstance(item, dict):
                raise p.Unreadable("an event is a JSON object")
            kind = item.get("event")
            if not isinstance(kind, str) or not kind:
                raise p.Unreadable("event has no `event` type")
            reason = text(item.get("reason"))
            bounce: Any = None
            reject_reason: Any = None
            mta_response = None
            provider_event = kind
            if kind == "dropped":
                # anymail: the cause is in `type` or `reason`; a drop never reached an MTA.
                cause = item.get("type") or reason or ""
                reject_reason = _DROP_REASONS.get(str(cause).lower(), "other")
            else:
                mta_response = text(item.get("response") or reason)
                if kind == "bounce":
                    # type=bounce is hard, type=blocked is soft ("would not accept temporarily"), event.md.
                    bounce = "soft" if item.get("type") == "blocked" else "hard"
                    if item.get("type"):
                        provider_event = f"bounce:{item['type']}"
            metadata = {k: v for k, v in item.items() if k not in _SENDGRID_KEYS}
            machine = item.get("sg_machine_open")
            # Validated field by field above; constructing without pydantic's second pass keeps the
            # normaliser near json.loads' own cost (bench: ingest.normalise_ratio_to_json).
            out.append(
                NormalizedEvent.model_construct(
                    provider="sendgrid",
                    event_id=text(item.get("sg_event_id")) or p.fingerprint(item),
                    event_type=EventType(_TYPES.get(kind, "unknown")),
                    provider_event=provider_event,
                    timestamp=p.epoch(item.get("timestamp")),
                    recipient=p.recipient(item.get("email")),
                    dispatch_id=text(item.get("dispatch_id")),
                    message_id=text(item.get("message_id")),
                    provider_message_id=text(item.get("sg_message_id")),
                    external_send_id=None,
                    bounce=bounce,
                    reject_reason=reject_reason,
                    description=reason,
                    mta_response=mta_response,
                    url=text(item.get("url")),
                    user_agent=text(item.get("useragent")),
                    machine_open=machine if isinstance(machine, bool) else None,
                    tags=p.tags(item.get("category")),
                    metadata=metadata,
                    matched_by=None,
                    raw=item,
                )
            )
        except (p.Unreadable, ValueError) as exc:
            out.append(RejectedEvent(provider="sendgrid", reason=str(exc), raw=item))
    return out
