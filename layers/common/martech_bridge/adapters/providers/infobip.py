"""Infobip e-mail, `POST /email/3/send` (multipart/form-data): many recipients in one call (each `to` a
JSON destination carrying our message id), attachments as file parts, delivery reports and tracking sent
to the bridge's own /events/infobip with a token, our ids in `bulkId`, `messageId` and `callbackData`.

v3 rather than v4: v3 is fully documented with attachments and per-recipient message ids; v4's attachment
and response shapes are not (see WIRE-FORMATS 4.2-4.4). Infobip accepts our own ids, so a call that timed
out is sent again with the same ones."""

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from urllib3.filepost import encode_multipart_formdata

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

MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # UNCONFIRMED upper bound for attachments in one message; conservative


class Infobip:
    name = "infobip"
    label = "Infobip"

    def validate(self, request: MailRequest) -> None:
        total = sum(a.size for a in request.attachments)
        if total > MAX_MESSAGE_BYTES:
            raise InvalidRequest(
                f"Attachments total {total} bytes; the bridge sends at most 20 MB through Infobip",
                code="attachment_too_large",
                field="attachments",
            )
        if request.template_id and not request.template_id.isdigit():
            raise InvalidRequest("Infobip's templateId is a number", code="validation_error", field="template_id")

    def calls(self, ctx: SendContext, recipients: Sequence[Outbound]) -> list[ProviderCall]:
        request = ctx.request
        sender = f"{ctx.sender.name} <{ctx.sender.email}>" if ctx.sender.name else ctx.sender.email
        fields: list[tuple[str, Any]] = [("from", sender)]
        for out in recipients:
            destination: dict[str, Any] = {"to": out.recipient.email, "messageId": out.message_id}
            placeholders = {**request.template_data, **out.recipient.data}
            if placeholders:
                destination["placeholders"] = placeholders
            fields.append(("to", json.dumps(destination, ensure_ascii=False)))
        for name, value in (
            ("subject", request.subject),
            ("text", request.text),
            ("html", request.html),
            ("templateId", request.template_id),
        ):
            if value:
                fields.append((name, value))
        if ctx.reply_to:
            fields.append(("replyTo", ctx.reply_to.email))
        fields.append(("bulkId", ctx.dispatch_id))
        fields.append(("callbackData", json.dumps({"dispatch_id": ctx.dispatch_id})))
        if ctx.public_base_url:
            callback = f"{ctx.public_base_url}/events/infobip?token={ctx.callback_token}"
            fields += [("notifyUrl", callback), ("notifyContentType", "application/json"), ("trackingUrl", callback)]
        if request.track_opens is not None:
            fields.append(("trackOpens", "true" if request.track_opens else "false"))
        if request.track_clicks is not None:
            fields.append(("trackClicks", "true" if request.track_clicks else "false"))
        if request.categories:
            fields.append(("campaignReferenceId", request.categories[0]))
        for attachment in request.attachments:
            part = "inlineImage" if attachment.disposition == "inline" else "attachment"
            fields.append((part, (attachment.filename, base64.b64decode(attachment.content), attachment.type)))
        body, content_type = encode_multipart_formdata(fields)
        http = TargetRequest(
            method="POST",
            url=f"{ctx.base_url}/email/3/send",
            headers={"Authorization": f"App {ctx.api_key}", "Content-Type": content_type, "Accept": "application/json"},
            body=body,
            timeout=ctx.timeout,
            idempotent=True,
            secret_headers=frozenset({"Authorization"}),
        )
        return [ProviderCall(http, list(recipients), retry_safe=True)]

    def events(self, payload: Any, received_at: datetime | None = None) -> list[Any]:
        return infobip_events(payload, received_at)

    def read(self, call: ProviderCall, response: TargetResponse) -> ProviderAnswer:
        body = response.json()
        kind = classify(response.status)
        if kind == "accepted" and isinstance(body, dict):
            ids = {
                str(m.get("messageId")): str(m.get("messageId"))
                for m in body.get("messages", [])
                if isinstance(m, dict) and m.get("messageId")
            }
            return ProviderAnswer("accepted", response.status, provider_ids=ids, raw=body)
        exception = (body or {}).get("requestError", {}).get("serviceException", {}) if isinstance(body, dict) else {}
        validation = exception.get("validationErrors") or {}
        field = next(iter(validation), None) if isinstance(validation, dict) else None
        message = exception.get("text") or None
        if field:
            message = f"{message}: {field} {'; '.join(validation[field])}"
        return ProviderAnswer(
            kind,
            response.status,
            message=message,
            error_field=field,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            raw=body,
        )


# ---------------------------------------------------------------------------------------- events
# Delivery report status group -> normalised type; every group but PENDING is final (WIRE-FORMATS 4.8).
_GROUPS = {
    "PENDING": "queued",
    "DELIVERED": "delivered",
    "UNDELIVERABLE": "bounced",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}
_INTERMEDIATE = {"DELIVERED_TO_OPERATOR": "sent"}  # DELIVERED group, id 2: not yet the handset (4.8)
# Tracking notificationType -> normalised type (4.5: exactly these five; BOUNCED kept for older payloads).
_TRACKING = {
    "OPENED": "opened",
    "CLICKED": "clicked",
    "COMPLAINED": "complained",
    "UNSUBSCRIBED": "unsubscribed",
    "LATE_BOUNCE": "bounced",
    "BOUNCED": "bounced",
}


def infobip_events(payload: Any, received_at: datetime | None = None) -> list[Any]:
    """Infobip delivery reports ({"results": [...]}) or a tracking notification, normalised. Tracking
    notifications carry no event time (`sendDateTime` is the send time, 4.5): they are stamped with the
    time the bridge received the post."""
    from martech_bridge.logic import event_parsing as p
    from martech_bridge.models.events import NormalizedEvent, RejectedEvent

    if not isinstance(payload, dict):
        return [RejectedEvent(provider="infobip", reason="an Infobip post is a JSON object", raw=payload)]
    items = payload["results"] if isinstance(payload.get("results"), list) else [payload]
    received = received_at or datetime.now(UTC)
    out: list[Any] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise p.Unreadable("a report is a JSON object")
            message_id = p.text(item.get("messageId"))
            if not message_id:
                raise p.Unreadable("report has no messageId")
            dispatch = p.text(item.get("bulkId")) or (message_id.rsplit(".", 1)[0] if "." in message_id else None)
            tags = p.tags(item.get("campaignReferenceId"))
            metadata = p.json_object(item.get("callbackData"))
            if "notificationType" in item:
                kind = str(item["notificationType"]).upper()
                url = p.text(item.get("url"))
                # eventId is the dedupe key (4.5); without it, the receive time keeps two opens apart while a
                # redelivery of the same queued post (same receive time) still collapses.
                event_id = p.text(item.get("eventId")) or f"{message_id}:{kind}:{url or ''}:{p.stamp(received)}"
                out.append(
                    NormalizedEvent(
                        provider="infobip",
                        event_id=event_id,
                        event_type=_TRACKING.get(kind, "unknown"),  # type: ignore[arg-type]
                        provider_event=kind,
                        timestamp=received,
                        recipient=p.recipient(item.get("recipient")),
                        dispatch_id=dispatch,
                        message_id=message_id,
                        provider_message_id=message_id,
                        # A late bounce names no code (4.5): it is an asynchronous rejection after acceptance,
                        # taken as permanent - the pessimistic reading, so we stop mailing the address.
                        bounce="hard" if kind in ("LATE_BOUNCE", "BOUNCED") else None,
                        url=url,
                        tags=tags,
                        metadata=metadata,
                        raw=item,
                    )
                )
                continue
            status = p.obj(item.get("status"))
            group = str(status.get("groupName") or "").upper()
            name = str(status.get("name") or "")
            error = p.obj(item.get("error"))
            event_type = _INTERMEDIATE.get(name) or _GROUPS.get(group, "unknown")
            out.append(
                NormalizedEvent(
                    provider="infobip",
                    event_id=f"{message_id}:{name or group or 'UNKNOWN'}",
                    event_type=event_type,  # type: ignore[arg-type]
                    provider_event=f"{group}:{name}".rstrip(":") or "UNKNOWN",
                    timestamp=p.iso(item.get("doneAt") or item.get("sentAt")),
                    recipient=p.recipient(item.get("to")),
                    dispatch_id=dispatch,
                    message_id=message_id,
                    provider_message_id=message_id,
                    # UNDELIVERABLE is final whatever `permanent` says (4.8); `permanent` tells hard from soft.
                    bounce=("hard" if error.get("permanent") is True else "soft") if event_type == "bounced" else None,
                    reject_reason="other" if event_type == "rejected" else None,
                    description=p.text(error.get("description") or status.get("description")),
                    mta_response=p.text(p.obj(item.get("smtp")).get("response")),
                    tags=tags,
                    metadata=metadata,
                    raw=item,
                )
            )
        except (p.Unreadable, ValueError) as exc:
            out.append(RejectedEvent(provider="infobip", reason=str(exc), raw=item))
    return out
