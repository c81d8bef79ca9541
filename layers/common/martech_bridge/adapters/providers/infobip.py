"""Infobip e-mail, `POST /email/4/messages` (JSON): many recipients in one call, each `to` destination
carrying our own message id (v4 is the only Infobip send API that takes a caller-chosen id per recipient,
WIRE-FORMATS 4.2/4.4), attachments and inline images as base64 `binary` objects, delivery reports and
tracking sent to the bridge's own /events/infobip with a token, our dispatch id as the bulk id.

Infobip documents no deduplication of `messageId`, so a call that timed out is never sent again: its
recipients are `unknown` and Infobip's reports settle them."""

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from martech_bridge.adapters.providers.base import (
    Outbound,
    ProviderAnswer,
    ProviderCall,
    ReleaseContext,
    ReleaseStep,
    SendContext,
    SuppressionDomain,
    classify,
    rate_limit_wait,
)
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse
from martech_bridge.errors import InvalidRequest, PayloadTooLarge
from martech_bridge.models.mail import MailRequest

MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # UNCONFIRMED upper bound for attachments in one message; conservative
MAX_MESSAGE_ID = 200  # EmailToDestination.messageId (SDK 6.0.0)
MAX_CALLBACK_DATA = 4000  # EmailWebhooks.callbackData (SDK 6.0.0)


# Infobip's suppression types (infobip-api-python-client 6.0.0 `EmailSuppressionType`; Infobip docs, *Delete
# suppressions*: enum BOUNCE, COMPLAINT, OVER_QUOTA - there is no unsubscribe type), and the permission flags
# *Get suppression domains* reports for each (`EmailDomainInfo`: readBounces, deleteBounces, ...).
SUPPRESSION_TYPES = ("BOUNCE", "COMPLAINT", "OVER_QUOTA")
_PERMISSIONS = {
    "BOUNCE": ("readBounces", "deleteBounces"),
    "COMPLAINT": ("readComplaints", "deleteComplaints"),
    "OVER_QUOTA": ("readOverquotas", "deleteOverquotas"),
}
DOMAIN_PAGE_SIZE = 100
MAX_DOMAIN_PAGES = 50  # 5,000 sending domains: far past any account; a paging loop can never run away


_DOMAIN_NAME = re.compile(r"[^\s\x00-\x1f\x7f]{1,253}")


def _suppressed(response: TargetResponse) -> bool:
    """False only for a readable answer listing nothing; an unreadable one is taken as listed, pessimistically
    (the DELETE that follows is idempotent)."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return bool(body["results"])
    return True


def read_suppression_domains(response: TargetResponse) -> list[SuppressionDomain] | None:
    """The domains of one page of *Get suppression domains* ({"results": [EmailDomainInfo], "paging": {page,
    size}}), or None for an answer that cannot be read. A permission flag that is missing counts as granted:
    the call is made and Infobip's own answer (403) decides, rather than skipping a list that may hold the
    address."""
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return None
    found = []
    for item in body["results"]:
        if not isinstance(item, dict) or not isinstance(item.get("domainName"), str):
            return None
        if not _DOMAIN_NAME.fullmatch(item["domainName"]):
            # No DNS name is longer than 253 characters or holds a space, a line break or a control character:
            # such text is not a domain, and would go into every call's query and the history entry.
            return None
        readable = frozenset(t for t, (read, _) in _PERMISSIONS.items() if item.get(read, True) is not False)
        deletable = frozenset(t for t, (_, delete) in _PERMISSIONS.items() if item.get(delete, True) is not False)
        found.append(SuppressionDomain(item["domainName"], readable, deletable))
    return found


class Infobip:
    name = "infobip"
    label = "Infobip"
    dedupes = False

    def auth(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"App {api_key}"}

    def suppression_domains_request(self, ctx: ReleaseContext, page: int) -> TargetRequest:
        """One page of *Get suppression domains* (infobip.com/docs/api/channels/email/get-domains: GET
        /email/1/suppressions/domains?page&size, "domains that can be managed for suppressions and are either
        owned or have granted permissions"; SDK 6.0.0 `EmailApi.get_domains`)."""
        query = urlencode({"page": page, "size": DOMAIN_PAGE_SIZE})
        return TargetRequest(
            "GET",
            f"{ctx.base_url}/email/1/suppressions/domains?{query}",
            {**self.auth(ctx.api_key), "Accept": "application/json"},
            None,
            ctx.timeout,
            True,
            frozenset({"Authorization"}),
        )

    def suppression_domains(self, response: TargetResponse) -> list[SuppressionDomain] | None:
        return read_suppression_domains(response)

    def release_steps(self, email: str, ctx: ReleaseContext) -> list[ReleaseStep]:
        """Infobip keeps suppressions per sending domain and type, and a send may use any of the account's
        domains, so every domain the account may manage (`ctx.domains`, listed at release time) is cleared,
        each type in turn (infobip.com/docs/api/channels/email: "Get suppressions" GET
        /email/1/suppressions?domainName&type&emailAddress -> {"results": [...]}; "Delete suppressions" DELETE
        /email/1/suppressions with {"suppressions": [{domainName, emailAddress, type}]} -> 204, deleted
        asynchronously). A list the account may not read is deleted unasked; one it may not delete is only
        read, and an address found there is reported failed. Without a listing (`ctx.domains` None): the
        sender domain alone."""
        domains = ctx.domains
        if domains is None:
            everything = frozenset(SUPPRESSION_TYPES)
            domains = (SuppressionDomain(ctx.sender_domain, everything, everything),) if ctx.sender_domain else ()
        headers = {**self.auth(ctx.api_key), "Accept": "application/json"}
        steps = []
        for domain in domains:
            for kind in SUPPRESSION_TYPES:
                query = urlencode({"domainName": domain.name, "type": kind, "emailAddress": email})
                body = {"suppressions": [{"domainName": domain.name, "emailAddress": [email], "type": kind}]}
                check = TargetRequest(
                    "GET",
                    f"{ctx.base_url}/email/1/suppressions?{query}",
                    headers,
                    None,
                    ctx.timeout,
                    True,
                    frozenset({"Authorization"}),
                )
                remove = TargetRequest(
                    "DELETE",
                    f"{ctx.base_url}/email/1/suppressions",
                    {**headers, "Content-Type": "application/json"},
                    json.dumps(body).encode(),
                    ctx.timeout,
                    True,
                    frozenset({"Authorization"}),
                )
                steps.append(
                    ReleaseStep(
                        f"{domain.name} {kind.lower()}",
                        remove=remove if kind in domain.deletable else None,
                        check=check if kind in domain.readable else None,
                        listed=_suppressed,
                    )
                )
        return steps

    def validate(self, request: MailRequest) -> None:
        total = sum(a.size for a in request.attachments)
        if total > MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(
                f"Attachments total {total} bytes; the bridge sends at most 20 MB through Infobip",
                code="payload_too_large",
                field="attachments",
            )
        if request.template_id and not request.template_id.isdigit():
            raise InvalidRequest("Infobip's templateId is a number", code="validation_error", field="template_id")

    def calls(self, ctx: SendContext, recipients: Sequence[Outbound]) -> list[ProviderCall]:
        request = ctx.request
        sender = f"{_display_name(ctx.sender.name)} <{ctx.sender.email}>" if ctx.sender.name else ctx.sender.email
        to = []
        for out in recipients:
            destination: dict[str, Any] = {"destination": out.recipient.email, "messageId": out.message_id}
            placeholders = {**request.template_data, **out.recipient.data}
            if placeholders:  # a JSON-encoded string in v4 (EmailToDestination.placeholders)
                destination["placeholders"] = json.dumps(placeholders, ensure_ascii=False)
            to.append(destination)
        group: dict[str, Any] = {"to": to}
        if ctx.reply_to:
            group["replyTo"] = ctx.reply_to.email
        content: dict[str, Any] = {
            k: v
            for k, v in (
                ("subject", request.subject),
                ("text", request.text),
                ("html", request.html),
                ("templateId", request.template_id),  # a string in v4
            )
            if v
        }
        attachments = [a for a in request.attachments if a.disposition == "attachment"]
        inline = [a for a in request.attachments if a.disposition == "inline"]
        if attachments:
            content["attachments"] = [
                {"type": "binary", "content": a.content, "contentType": a.type, "fileName": a.filename}
                for a in attachments
            ]
        if inline:  # the HTML names an inline image as cid:FILENAME, so the file is named after its content id
            content["inlineImages"] = [
                {"type": "binary", "content": a.content, "contentType": a.type, "fileName": a.content_id or a.filename}
                for a in inline
            ]
        message: dict[str, Any] = {"sender": sender, "destinations": [group], "content": content}
        if request.categories:
            message["options"] = {"campaignReferenceId": request.categories[0]}
        webhooks: dict[str, Any] = {"callbackData": json.dumps({"dispatch_id": ctx.dispatch_id})}
        tracking: dict[str, Any] = {}
        if ctx.public_base_url:
            callback = f"{ctx.public_base_url}/events/infobip?token={ctx.callback_token}"
            webhooks["delivery"] = {"url": callback, "notify": True}
            webhooks["contentType"] = "application/json"
            tracking["trackingUrl"] = callback
        message["webhooks"] = webhooks
        if request.track_opens is not None:
            tracking["trackOpens"] = request.track_opens
        if request.track_clicks is not None:
            tracking["trackClicks"] = request.track_clicks
        options: dict[str, Any] = {"schedule": {"bulkId": ctx.dispatch_id}}
        if tracking:
            options["tracking"] = tracking
        body = {"messages": [message], "options": options}
        http = TargetRequest(
            method="POST",
            url=f"{ctx.base_url}/email/4/messages",
            headers={
                "Authorization": f"App {ctx.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            timeout=ctx.timeout,
            idempotent=False,
            secret_headers=frozenset({"Authorization"}),
        )
        return [ProviderCall(http, list(recipients), retry_safe=False)]

    def events(self, payload: Any, received_at: datetime | None = None) -> list[Any]:
        return infobip_events(payload, received_at)

    def read(self, call: ProviderCall, response: TargetResponse) -> ProviderAnswer:
        body = response.json()
        kind = classify(response.status)
        if kind == "accepted" and isinstance(body, dict):
            return ProviderAnswer("accepted", response.status, provider_ids=_ids(call, body), raw=body)
        message, field = _error(body)
        return ProviderAnswer(
            kind,
            response.status,
            message=message,
            error_field=field,
            retry_after=rate_limit_wait(response.headers),
            raw=body,
        )


def _ids(call: ProviderCall, body: dict[str, Any]) -> dict[str, str]:
    """Our message id -> Infobip's, from `messages[]`: by the id when Infobip echoes ours, else by the
    address (`destination` in v4, `to` in v3), so a recipient never goes without its provider id."""
    ours = {out.message_id for out in call.recipients}
    by_address = {str(out.recipient.email).lower(): out.message_id for out in call.recipients}
    ids: dict[str, str] = {}
    for m in body.get("messages") or []:
        if not isinstance(m, dict) or not m.get("messageId"):
            continue
        theirs = str(m["messageId"])
        if theirs in ours:
            ids[theirs] = theirs
            continue
        address = str(m.get("destination") or m.get("to") or "").lower()
        if address in by_address:
            ids[by_address[address]] = theirs
    return ids


def _error(body: Any) -> tuple[str | None, str | None]:
    """(message, field) from either of Infobip's error shapes (WIRE-FORMATS 4.1): the older
    requestError.serviceException, and the newer flat {errorCode, description, violations}."""
    if not isinstance(body, dict):
        return None, None
    message: str | None
    if isinstance(body.get("errorCode"), str):
        violations = [v for v in body.get("violations") or [] if isinstance(v, dict)]
        field = str(violations[0].get("property")) if violations and violations[0].get("property") else None
        message = f"{body['errorCode']}: {body.get('description') or 'no description'}"
        if field:
            message = f"{message}: {field} {violations[0].get('violation') or ''}".rstrip()
        return message, field
    request_error = body.get("requestError")
    exception = request_error.get("serviceException") if isinstance(request_error, dict) else None
    if not isinstance(exception, dict):
        return None, None
    validation = exception.get("validationErrors") or {}
    field = next(iter(validation), None) if isinstance(validation, dict) else None
    text = exception.get("text")
    message = str(text) if text else None
    if field:
        message = f"{message}: {field} {'; '.join(map(str, validation[field]))}"
    return message, field


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


_SPECIALS = set('()<>[]:;@\\,."')


def _display_name(name: str) -> str:
    """A sender name as one RFC 5322 phrase: quoted when it holds a special (`<`, `>`, `,` would otherwise
    make a second address), Japanese kept as UTF-8 text as Infobip's examples send it."""
    if not _SPECIALS.intersection(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
