"""SendGrid v3 `/v3/mail/send`: one personalization per recipient, our dispatch and message ids in
`custom_args` (SendGrid returns no per-recipient id; events come back with these), all recipients in one
call (at most 1000). SendGrid cannot deduplicate, so a call that timed out is never sent again."""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from martech_bridge.adapters.providers.base import (
    Outbound,
    ProviderAnswer,
    ProviderCall,
    ReleaseContext,
    ReleaseStep,
    SendContext,
    classify,
    rate_limit_wait,
)
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse
from martech_bridge.errors import InvalidRequest, PayloadTooLarge
from martech_bridge.models.mail import MailRequest

MAX_TOTAL_BYTES = 30 * 1024 * 1024  # the whole message, attachments included
MAX_CUSTOM_ARGS_BYTES = 10_000


def _address(address: Any) -> dict[str, str]:
    return {"email": address.email, **({"name": address.name} if address.name else {})}


# SendGrid's own suppression lists and where each is read and cleared for one address (twilio/sendgrid-oai
# spec/yaml/tsg_suppressions_v3.yaml): GET answers an array of entries (empty when not listed), the global
# unsubscribes an object with `recipient_email` ({} when not listed); DELETE answers 204.
SUPPRESSION_LISTS = {
    "bounces": "/v3/suppression/bounces/",
    "blocks": "/v3/suppression/blocks/",
    "spam_reports": "/v3/suppression/spam_reports/",
    "invalid_emails": "/v3/suppression/invalid_emails/",
    "global_unsubscribes": "/v3/asm/suppressions/global/",
}


def _listed(response: TargetResponse) -> bool:
    """False only for the documented "not listed" answers; anything else (an unreadable body, an unknown
    shape) is taken as listed, pessimistically: the DELETE that follows is idempotent, a 404 is 'not_listed'."""
    body = response.json()
    if isinstance(body, list):
        return bool(body)
    if isinstance(body, dict):
        return bool(body.get("recipient_email"))
    return True


class SendGrid:
    name = "sendgrid"
    label = "SendGrid"
    dedupes = False

    def release_steps(self, email: str, ctx: ReleaseContext) -> list[ReleaseStep]:
        headers = {**self.auth(ctx.api_key), "Accept": "application/json"}

        def request(method: str, path: str) -> TargetRequest:
            url = f"{ctx.base_url}{path}{quote(email, safe='@')}"
            return TargetRequest(method, url, headers, None, ctx.timeout, True, frozenset({"Authorization"}))

        return [
            ReleaseStep(name, remove=request("DELETE", path), check=request("GET", path), listed=_listed)
            for name, path in SUPPRESSION_LISTS.items()
        ]

    def auth(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def validate(self, request: MailRequest) -> None:
        total = sum(a.size for a in request.attachments) + len((request.html or "") + (request.text or ""))
        if total > MAX_TOTAL_BYTES:
            raise PayloadTooLarge(
                f"SendGrid accepts messages up to 30 MB; this one is {total} bytes",
                code="payload_too_large",
                field="attachments",
            )
        for i, category in enumerate(request.categories):
            if not category.isascii():  # "Categories can not contain non-ASCII characters." (WIRE-FORMATS 1.2)
                raise InvalidRequest(
                    "SendGrid accepts only ASCII categories", code="validation_error", field=f"categories.{i}"
                )
        for i, a in enumerate(request.attachments):
            # SendGrid's Mail Send errors page, "Attachment errors": these characters are a 400.
            if any(ch in a.filename for ch in ";,\r\n"):
                raise InvalidRequest(
                    "SendGrid refuses ';', ',' and line breaks in an attachment filename",
                    code="validation_error",
                    field=f"attachments.{i}.filename",
                )
            if a.content_id and any(ch in a.content_id for ch in ";\r\n"):
                raise InvalidRequest(
                    "SendGrid refuses ';' and line breaks in an attachment content_id",
                    code="validation_error",
                    field=f"attachments.{i}.content_id",
                )
        args = json.dumps({**request.metadata, "dispatch_id": "x" * 40, "message_id": "x" * 48})
        if len(args.encode()) > MAX_CUSTOM_ARGS_BYTES:
            raise PayloadTooLarge(
                "metadata is too large: SendGrid's custom_args are limited to 10,000 bytes",
                code="payload_too_large",
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
            retry_after=rate_limit_wait(response.headers),
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


def _event_types() -> dict[str, Any]:
    from martech_bridge.models.events import EventType

    return {kind: EventType(name) for kind, name in _TYPES.items()}


_EVENT_TYPES = _event_types()


def sendgrid_events(payload: Any) -> list[Any]:
    """SendGrid's Event Webhook post (a JSON array) as normalised events; one unreadable event is one
    RejectedEvent, never the post's failure."""
    from martech_bridge.logic import event_parsing as p
    from martech_bridge.models.events import EventType, RejectedEvent, checked_event

    if not isinstance(payload, list):
        return [RejectedEvent(provider="sendgrid", reason="a SendGrid post is a JSON array", raw=payload)]
    out: list[Any] = []
    text, epoch, recipient, types, reserved = p.text, p.epoch, p.recipient, _EVENT_TYPES, _SENDGRID_KEYS
    unknown = EventType.UNKNOWN
    fromtimestamp, earliest, latest = datetime.fromtimestamp, p.EARLIEST, p.LATEST
    # Per post, each worked out once: SendGrid posts what one server gathered in up to 30 s, so a post's
    # events share a few key layouts, a few dozen seconds and, per message, one address (its processed,
    # delivered and open often travel together).
    layouts: dict[tuple[str, ...], tuple[str, ...]] = {}
    times: dict[int, Any] = {}
    addresses: dict[str, str | None] = {}
    tags: list[str]
    for item in payload:
        try:
            if type(item) is not dict:
                raise p.Unreadable("an event is a JSON object")
            kind = item.get("event")
            if type(kind) is not str or not kind:
                raise p.Unreadable("event has no `event` type")
            reason = item.get("reason")
            if reason is not None and type(reason) is not str:
                reason = text(reason)
            bounce: Any = None
            reject_reason: Any = None
            provider_event = kind
            if kind == "dropped":
                # anymail: the cause is in `type` or `reason`; a drop never reached an MTA.
                mta_response = None
                reject_reason = _DROP_REASONS.get(str(item.get("type") or reason or "").lower(), "other")
            else:
                mta_response = item.get("response") or reason or None
                if mta_response is not None and type(mta_response) is not str:
                    mta_response = str(mta_response)
                if kind == "bounce":
                    # type=bounce is hard, type=blocked is soft ("would not accept temporarily"), event.md.
                    bounce = "soft" if item.get("type") == "blocked" else "hard"
                    if item.get("type"):
                        provider_event = f"bounce:{item['type']}"
            layout = tuple(item)
            extra = layouts.get(layout)
            if extra is None:
                extra = layouts[layout] = tuple(k for k in layout if k not in reserved)
            seconds = item.get("timestamp")
            if type(seconds) is int and earliest <= seconds <= latest:  # SendGrid's own form
                when = times.get(seconds)
                if when is None:
                    when = times[seconds] = fromtimestamp(seconds, UTC)
            else:
                when = epoch(seconds)  # the others, and the refusal of what is not a time
            email = item.get("email")
            address = addresses.get(email, "") if type(email) is str else ""
            if address == "":
                # Nearly every address is printable ASCII, name@domain, without spaces or a root dot: its
                # stored form is its lower case (recipient() says why; this is its first test, inline).
                if (
                    type(email) is str
                    and email.isascii()
                    and email.isprintable()
                    and " " not in email
                    and "@" in email
                    and email[0] != "@"
                    and email[-1] not in ".@"
                ):
                    address = email.lower()
                else:
                    address = recipient(email)
                if type(email) is str:
                    addresses[email] = address
            machine = item.get("sg_machine_open")
            event_id = item.get("sg_event_id")
            if type(event_id) is not str or not event_id:
                event_id = text(event_id) or p.fingerprint(item)
            category = item.get("category")
            if category is None:
                tags = []
            elif type(category) is str:
                tags = [category] if category else []
            else:
                tags = p.tags(category)
            dispatch_id, message_id = item.get("dispatch_id"), item.get("message_id")
            sg_message_id = item.get("sg_message_id")
            url, useragent = item.get("url"), item.get("useragent")
            # Every field checked above or here (a field that is absent, None, or already text needs no
            # call), so by position and without the class's own checks.
            out.append(
                checked_event(
                    "sendgrid",
                    event_id,
                    types.get(kind, unknown),
                    provider_event,
                    when,
                    address,
                    dispatch_id if dispatch_id is None or type(dispatch_id) is str else text(dispatch_id),
                    message_id if message_id is None or type(message_id) is str else text(message_id),
                    sg_message_id if sg_message_id is None or type(sg_message_id) is str else text(sg_message_id),
                    None,  # external_send_id
                    bounce,
                    reject_reason,
                    reason or None,
                    mta_response,
                    url if url is None or type(url) is str else text(url),
                    useragent if useragent is None or type(useragent) is str else text(useragent),
                    machine if type(machine) is bool else None,
                    tags,
                    {k: item[k] for k in extra} if extra else {},
                    None,  # matched_by
                    item,
                )
            )
        except (p.Unreadable, ValueError) as exc:
            out.append(RejectedEvent(provider="sendgrid", reason=str(exc), raw=item))
    return out
