"""Infobip e-mail stand-in: `Authorization: App <key>`, the v3 multipart send and the v4 JSON send as Infobip
documents them, PENDING per recipient, and Infobip's two error shapes. Sources, per behaviour:

* v3 `POST /email/3/send` form fields: infobip-api-python-client 5.1.1 `api/email_api.py`
  `_send_email_serialize()` (WIRE-FORMATS 4.3). The JSON form of `to` documents only `to` and `placeholders`;
  `messageId` is one top-level field. Whether a `messageId` inside `to` is honoured is undocumented: the
  pessimistic reading is taken - it is ignored and Infobip mints its own ids. Which recipient gets a
  top-level `messageId` when there are several is undocumented too: only a single recipient gets it.
* v4 `POST /email/4/messages`: infobip-api-python-client 6.0.0 models `email_request.py`, `email_message.py`,
  `email_group_destination.py`, `email_to_destination.py` (messageId <= 200), `email_message_content.py`
  (subject 1-1000), `email_media_binary_attachment.py`, `email_media_binary_image.py`,
  `email_message_request_options.py`, `email_request_scheduling_settings.py` (bulkId <= 100),
  `email_webhooks.py` (callbackData <= 4000); Infobip OpenAPI 3.210.0. There is no top-level `bulkId`;
  placeholders are JSON-encoded strings. Unknown fields are refused (pessimistic: the SDK never sends them).
  Response `{bulkId, messages[{messageId, status, destination}]}` with the spec example's PENDING_ENROUTE.
* No deduplication of `messageId` is documented in either version: a repeated call sends again.
* Errors: `requestError.serviceException` (SDK `api_exception.py`) for 400/401; a throttled call (429) gets
  the newer `{"errorCode": "E429", ...}` body (Infobip *Rate limits and throttling* page, WIRE-FORMATS 4.1).
* Suppressions, per sending domain and type BOUNCE/COMPLAINT/OVER_QUOTA (infobip.com/docs/api/channels/email,
  "Get suppressions": GET /email/1/suppressions?domainName&type (both required)&emailAddress ->
  {"results": [{domainName, emailAddress, type, createdDate, reason}], "paging": {...}}; "Delete suppressions":
  DELETE /email/1/suppressions {"suppressions": [1..10 of {domainName, emailAddress: [1..1000], type}]} -> 204,
  deleted "asynchronously" - the fake deletes at once). Set up with POST /_sandbox/infobip/suppressions
  {"domainName", "emailAddress", "type"}; listed at GET /_sandbox/infobip/suppressions.
"""

import json
import re
import secrets
from email import policy
from email.parser import BytesParser
from typing import Any

from devkit.sandbox.base import AcceptedLog, Reply, Request

PENDING = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 26,
    "name": "PENDING_ACCEPTED",
    "description": "Message accepted, pending for delivery.",
}
PENDING_ENROUTE = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 7,
    "name": "PENDING_ENROUTE",
    "description": "Message sent to next instance",
}
MAX_RECIPIENTS = 1000
E429 = {
    "errorCode": "E429",
    "description": "Too many requests sent.",
    "action": "Check request rate limit specified in the API endpoint documentation resource.",
    "violations": [],
    "resources": [
        {
            "name": "Throttling handling errors",
            "url": "https://www.infobip.com/docs/essentials/integration-best-practices#throttling-handling-errors",
        }
    ],
}


def infobip_error(status: int, message_id: str, text: str, validation: dict[str, list[str]] | None = None) -> Reply:
    exception: dict[str, Any] = {"messageId": message_id, "text": text}
    if validation:
        exception["validationErrors"] = validation
    return Reply(status, {"requestError": {"serviceException": exception}})


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | bytes, str | None]]:
    """(field name, value, filename) for each part; text parts decoded, file parts as bytes."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("body is not multipart")
    parts: list[tuple[str, str | bytes, str | None]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if filename is None:
            charset = part.get_content_charset() or "utf-8"
            parts.append((str(name), payload.decode(charset), None))
        else:
            parts.append((str(name), payload, filename))
    return parts


SUPPRESSION_TYPES = ("BOUNCE", "COMPLAINT", "OVER_QUOTA")


class Infobip(AcceptedLog):
    """Accepted sends (v3 form fields or v4 request, with the ids issued) at /_sandbox/infobip/sent."""

    name = "infobip"

    def __init__(self, api_keys: list[str]) -> None:
        super().__init__()
        self.api_keys = list(api_keys)
        self.suppressions: set[tuple[str, str, str]] = set()  # (domainName, emailAddress lower-cased, type)

    def reset(self) -> None:
        super().reset()
        self.suppressions.clear()

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == "/suppressions" and method == "GET":
            return Reply(
                200, [{"domainName": d, "emailAddress": e, "type": t} for d, e, t in sorted(self.suppressions)]
            )
        if path == "/suppressions" and method == "POST":
            if not isinstance(body, dict) or body.get("type") not in SUPPRESSION_TYPES:
                return Reply(400, {"error": "give {'domainName', 'emailAddress', 'type': BOUNCE|COMPLAINT|OVER_QUOTA}"})
            self.suppressions.add((str(body.get("domainName")), str(body.get("emailAddress")).lower(), body["type"]))
            return Reply(204)
        return super().control(method, path, body)

    def _suppressions(self, request: Request) -> Reply:
        if request.method == "GET":
            domain = (request.query.get("domainName") or [""])[0]
            kind = (request.query.get("type") or [""])[0]
            if not domain or kind not in SUPPRESSION_TYPES:
                return infobip_error(400, "BAD_REQUEST", "domainName and type are required")  # constructed text
            email = (request.query.get("emailAddress") or [""])[0].lower()
            found = [
                # Every field EmailSuppressionInfo (SDK 6.0.0) requires, `reason` included.
                {
                    "domainName": d,
                    "emailAddress": e,
                    "type": t,
                    "createdDate": "2026-01-01T00:00:00.000Z",
                    "reason": "550 5.1.1 user does not exist" if t == "BOUNCE" else t.lower(),
                }
                for d, e, t in sorted(self.suppressions)
                if d == domain and t == kind and (not email or e == email)
            ]
            return Reply(
                200, {"results": found, "paging": {"page": 0, "size": 100, "totalPages": 1, "totalResults": len(found)}}
            )
        try:
            body = request.json()
            groups = body["suppressions"]
            if not isinstance(groups, list) or not 1 <= len(groups) <= 10:
                raise ValueError("suppressions")
            for group in groups:
                if group["type"] not in SUPPRESSION_TYPES or not isinstance(group["emailAddress"], list):
                    raise ValueError("type")
        except (ValueError, KeyError, TypeError):
            return infobip_error(400, "BAD_REQUEST", "Bad request")
        for group in groups:
            for email in group["emailAddress"]:
                self.suppressions.discard((str(group["domainName"]), str(email).lower(), group["type"]))
        return Reply(204)

    def handle(self, request: Request) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "App" or key.strip() not in self.api_keys:
            return infobip_error(401, "UNAUTHORIZED", "Invalid login details")
        if request.method == "POST" and request.path == "/email/3/send":
            return self._send_v3(request)
        if request.method == "POST" and request.path == "/email/4/messages":
            return self._send_v4(request)
        if request.method in ("GET", "DELETE") and request.path == "/email/1/suppressions":
            return self._suppressions(request)
        return infobip_error(404, "NOT_FOUND", "Requested URL not found: " + request.path)

    def _send_v3(self, request: Request) -> Reply:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return infobip_error(415, "UNSUPPORTED_MEDIA_TYPE", "Content type must be multipart/form-data")
        try:
            parts = parse_multipart(content_type, request.body)
        except ValueError:
            return infobip_error(400, "BAD_REQUEST", "Bad request")
        fields: dict[str, list[Any]] = {}
        for name, value, filename in parts:
            fields.setdefault(name, []).append({"filename": filename, "size": len(value)} if filename else value)
        recipients = []
        for raw in fields.get("to", []):
            try:
                parsed = json.loads(raw) if raw.lstrip().startswith("{") else {"to": raw}
            except json.JSONDecodeError:
                return infobip_error(400, "BAD_REQUEST", "Bad request", {"to": ["invalid JSON destination"]})
            recipients.append(parsed)
        problems: dict[str, list[str]] = {}
        if not recipients:
            problems["to"] = ["must not be empty"]
        if len(recipients) + len(fields.get("cc", [])) + len(fields.get("bcc", [])) > MAX_RECIPIENTS:
            problems["to"] = [f"must not have more than {MAX_RECIPIENTS} recipients"]
        if not fields.get("templateId"):
            if not fields.get("from"):
                problems["from"] = ["must not be empty"]
            if not fields.get("subject"):
                problems["subject"] = ["must not be empty"]
            if not (fields.get("text") or fields.get("html")):
                problems["text"] = ["text or html must be present"]
        for r in recipients:
            if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", str(r.get("to", ""))):
                problems.setdefault("to", []).append(f"invalid destination address {r.get('to')!r}")
        if problems:
            return infobip_error(400, "BAD_REQUEST", "Bad request", problems)
        bulk_id = (fields.get("bulkId") or [secrets.token_hex(10)])[0]
        own_id = (fields.get("messageId") or [None])[0]
        messages = []
        for r in recipients:
            # A messageId inside `to` is not part of v3: ignored. The top-level one only for a single recipient.
            message_id = own_id if own_id and len(recipients) == 1 else secrets.token_hex(12)
            messages.append({"to": r["to"], "messageId": message_id, "status": dict(PENDING)})
        self.accept({"api": "v3", "bulkId": bulk_id, "fields": fields, "messages": messages})
        return Reply(200, {"bulkId": bulk_id, "messages": messages})

    def _send_v4(self, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return infobip_error(400, "BAD_REQUEST", "Bad request")
        problems = validate_v4(body)
        if problems:
            return infobip_error(400, "BAD_REQUEST", "Bad request", problems)
        results = []
        for message in body["messages"]:
            for group in message["destinations"]:
                for to in group.get("to") or []:
                    results.append(
                        {
                            "messageId": to.get("messageId") or secrets.token_hex(12),
                            "status": dict(PENDING_ENROUTE),
                            "destination": to["destination"],
                        }
                    )
        bulk_id = ((body.get("options") or {}).get("schedule") or {}).get("bulkId") or secrets.token_hex(10)
        self.accept({"api": "v4", "bulkId": bulk_id, "request": body, "messages": results})
        return Reply(200, {"bulkId": bulk_id, "messages": results})


_V4_FIELDS = {
    "request": {"messages", "options"},
    "message": {"sender", "destinations", "content", "options", "webhooks", "ips"},
    "group": {"to", "cc", "bcc", "replyTo", "preserveRecipients"},
    "to": {"destination", "messageId", "placeholders"},
    "content": {
        "subject", "text", "html", "ampHtml", "templateId", "attachments", "inlineImages",
        "defaultPlaceholders", "landingPagePlaceholders", "landingPageId", "templateLanguageVersion", "headers",
    },
    "media": {"type", "content", "contentType", "fileName", "contentId"},
    "webhooks": {"delivery", "contentType", "callbackData"},
    "delivery": {"url", "intermediateReport", "notify"},
    "request_options": {"schedule", "tracking", "clientPriority "},
    "schedule": {"bulkId", "sendAt"},
    "tracking": {"track", "trackOpens", "trackClicks", "trackingUrl", "trackingPixelPosition"},
}  # fmt: skip


def validate_v4(body: Any) -> dict[str, list[str]]:
    """What Infobip's v4 model would refuse, as validationErrors (field -> problems)."""
    problems: dict[str, list[str]] = {}

    def bad(field: str, problem: str) -> None:
        problems.setdefault(field, []).append(problem)

    def shape(value: Any, kind: str, where: str) -> bool:
        if not isinstance(value, dict):
            bad(where, "must be an object")
            return False
        for unknown in sorted(set(value) - _V4_FIELDS[kind]):
            bad(f"{where}.{unknown}" if where else unknown, "unknown field")
        return True

    if not shape(body, "request", ""):
        return problems
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        bad("messages", "must not be empty")
        return problems
    total = 0
    for m, message in enumerate(messages):
        where = f"messages[{m}]"
        if not shape(message, "message", where):
            continue
        content = message.get("content")
        if shape(content, "content", f"{where}.content"):
            template = content.get("templateId")
            if template is not None and not isinstance(template, str):
                bad(f"{where}.content.templateId", "must be a string")
            if template is None:
                subject = content.get("subject")
                if not isinstance(subject, str) or not 1 <= len(subject) <= 1000:
                    bad(f"{where}.content.subject", "size must be between 1 and 1000")
                if not message.get("sender"):
                    bad(f"{where}.sender", "must not be empty")
                if not (content.get("text") or content.get("html")):
                    bad(f"{where}.content", "text or html must be present")
            for name in ("defaultPlaceholders", "headers"):
                if name in content and not isinstance(content[name], str):
                    bad(f"{where}.content.{name}", "must be a JSON string")
            for name in ("attachments", "inlineImages"):
                for a, media in enumerate(content.get(name) or []):
                    at = f"{where}.content.{name}[{a}]"
                    if not shape(media, "media", at):
                        continue
                    if media.get("type") == "binary":
                        for required in ("content", "contentType", "fileName"):
                            if not isinstance(media.get(required), str) or not media[required]:
                                bad(f"{at}.{required}", "must not be empty")
                    elif media.get("type") == "uploadedReference":
                        if not media.get("contentId"):
                            bad(f"{at}.contentId", "must not be empty")
                    else:
                        bad(f"{at}.type", "must be binary or uploadedReference")
        destinations = message.get("destinations")
        if not isinstance(destinations, list) or not destinations:
            bad(f"{where}.destinations", "must not be empty")
            continue
        for g, group in enumerate(destinations):
            gw = f"{where}.destinations[{g}]"
            if not shape(group, "group", gw):
                continue
            if "preserveRecipients" in group and not isinstance(group["preserveRecipients"], bool):
                bad(f"{gw}.preserveRecipients", "must be a boolean")
            for kind in ("to", "cc", "bcc"):
                for t, to in enumerate(group.get(kind) or []):
                    tw = f"{gw}.{kind}[{t}]"
                    if not shape(to, "to", tw):
                        continue
                    total += 1
                    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", str(to.get("destination", ""))):
                        bad(f"{tw}.destination", "invalid destination address")
                    own = to.get("messageId")
                    if own is not None and (not isinstance(own, str) or len(own) > 200):
                        bad(f"{tw}.messageId", "size must be between 0 and 200")
                    if "placeholders" in to and not isinstance(to["placeholders"], str):
                        bad(f"{tw}.placeholders", "must be a JSON string")
        webhooks = message.get("webhooks")
        if webhooks is not None and shape(webhooks, "webhooks", f"{where}.webhooks"):
            data = webhooks.get("callbackData")
            if data is not None and (not isinstance(data, str) or len(data) > 4000):
                bad(f"{where}.webhooks.callbackData", "size must be between 0 and 4000")
            if webhooks.get("delivery") is not None:
                shape(webhooks["delivery"], "delivery", f"{where}.webhooks.delivery")
    if total > MAX_RECIPIENTS:
        bad("messages", f"must not have more than {MAX_RECIPIENTS} recipients")
    options = body.get("options")
    if options is not None and shape(options, "request_options", "options"):
        schedule = options.get("schedule")
        if schedule is not None and shape(schedule, "schedule", "options.schedule"):
            bulk = schedule.get("bulkId")
            if bulk is not None and (not isinstance(bulk, str) or len(bulk) > 100):
                bad("options.schedule.bulkId", "size must be between 0 and 100")
        tracking = options.get("tracking")
        if tracking is not None and shape(tracking, "tracking", "options.tracking"):
            for flag in ("track", "trackOpens", "trackClicks"):
                if flag in tracking and not isinstance(tracking[flag], bool):
                    bad(f"options.tracking.{flag}", "must be a boolean")
    return problems
