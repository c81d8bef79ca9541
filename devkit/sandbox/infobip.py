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
  {"results": [{domainName, emailAddress, type, createdDate, reason}], "paging": {page, size}} (SDK 6.0.0
  `EmailSuppressionInfoPageResponse`, `EmailPageDetails`); "Delete suppressions": DELETE /email/1/suppressions
  {"suppressions": [1..10 of {domainName, emailAddress: [1..1000], type}]} -> 204, deleted "asynchronously" -
  the fake deletes at once). Errors of these endpoints are the newer `ApiError` body (SDK 6.0.0 `EmailApi`
  declares ApiError for their 400/401/403/429/500).
* "Get suppression domains" (infobip.com/docs/api/channels/email/get-domains): GET
  /email/1/suppressions/domains?page&size -> {"results": [EmailDomainInfo {domainName, dataAccess OWNER|GRANTED,
  readBounces, createBounces, deleteBounces, readComplaints, createComplaints, deleteComplaints,
  readOverquotas, deleteOverquotas}], "paging": {page, size}}: the domains "either owned or [with] granted
  permissions". The account's domains are the ones set up at POST /_sandbox/infobip/domains, plus (a sandbox
  simplification: Infobip sends only from the account's verified domains) every domain mail was sent from or
  a suppression was set up for, as OWNER with every permission. Reading or deleting on a domain the account
  may not manage, or without the type's permission, is refused with 403 - the docs list 403 Forbidden and are
  silent on which calls get it: the pessimistic reading. *Suppression management* (infobip.com/docs/email/
  email-deliverability/suppression-management) adds that deleting needs a dedicated IP on the domain: that
  is a domain without delete permissions here.
* Suppressed recipients are dropped: "Infobip automatically excludes suppressed contacts from future sends"
  (*Suppression management*); the send is still accepted (200, PENDING), and the delivery report says the
  mail was not sent, with error 6034 EC_SUPPRESSED_BOUNCE or 6035 EC_SUPPRESSED_SPAM_COMPLAINT "without the
  delivery attempt" (infobip.com/docs/email/email-error-codes-update). Which status group such a report has
  is not documented: the fake uses REJECTED ("rejected by Infobip ... before it could be sent", *Response
  codes*), and 6034 for OVER_QUOTA too (no over-quota code is published; the support article on 6034 counts
  over-quota mailboxes among that list). Only the sending domain's suppressions apply.
* A hard bounce adds the address to the sending domain's BOUNCE list ("Addresses that hard bounced ... are
  automatically suppressed", *Suppression management*) and its report is UNDELIVERABLE with a permanent
  error. Which mailboxes bounce is set up at POST /_sandbox/infobip/mailboxes {"email", "outcome": "bounce" |
  "deliver"}; the error's id and name are constructed (Infobip's e-mail bounce error names were not read).
* Set-up: POST /_sandbox/infobip/suppressions {"domainName", "emailAddress", "type"}, listed at GET
  /_sandbox/infobip/suppressions; POST /_sandbox/infobip/outages {"domainName", "status"} makes every
  suppression call about that domain answer `status` (one domain's lists unreachable), DELETE clears them.
"""

import json
import re
import secrets
import threading
import time
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


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
PERMISSIONS = (
    "readBounces",
    "createBounces",
    "deleteBounces",
    "readComplaints",
    "createComplaints",
    "deleteComplaints",
    "readOverquotas",
    "deleteOverquotas",
)
_READ = {"BOUNCE": "readBounces", "COMPLAINT": "readComplaints", "OVER_QUOTA": "readOverquotas"}
_DELETE = {"BOUNCE": "deleteBounces", "COMPLAINT": "deleteComplaints", "OVER_QUOTA": "deleteOverquotas"}
BOUNCE_RESPONSE = "550 5.1.1 The email account that you tried to reach does not exist."
# The error of a report for mail Infobip did not send because of a suppression (email-error-codes-update).
SUPPRESSED_ERRORS = {
    "BOUNCE": (6034, "EC_SUPPRESSED_BOUNCE"),
    "COMPLAINT": (6035, "EC_SUPPRESSED_SPAM_COMPLAINT"),
    "OVER_QUOTA": (6034, "EC_SUPPRESSED_BOUNCE"),
}


def api_error(status: int, description: str, code: str | None = None) -> Reply:
    """The newer ApiError body (SDK 6.0.0 `api_error.py`); codes follow the spec's `E429` pattern (constructed)."""
    return Reply(
        status,
        {
            "errorCode": code or f"E{status}",
            "description": description,
            "action": "Check the request against the API endpoint documentation resource.",
            "violations": [],
            "resources": [],
        },
    )


def report_outcome(fate: str) -> dict[str, Any]:
    """The status, error (and SMTP reply) of the delivery report for one recipient's fate."""
    ok = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": False}
    if fate == "bounce":
        return {
            "status": {
                "groupId": 2,
                "groupName": "UNDELIVERABLE",
                "id": 9,
                "name": "UNDELIVERABLE_NOT_DELIVERED",
                "description": "Message sent not delivered",
            },
            # Constructed id and name: Infobip's e-mail bounce error names were not read (WIRE-FORMATS 4.5).
            "error": {
                "groupId": 1,
                "groupName": "HANDSET_ERRORS",
                "id": 6001,
                "name": "EC_HARD_BOUNCE",
                "description": BOUNCE_RESPONSE,
                "permanent": True,
            },
            "smtp": {"response": BOUNCE_RESPONSE},
        }
    if fate.startswith("suppressed:"):
        error_id, error_name = SUPPRESSED_ERRORS[fate.partition(":")[2]]
        return {
            "status": {
                "groupId": 5,
                "groupName": "REJECTED",
                "id": 14,
                "name": "REJECTED_DESTINATION",
                "description": "Message rejected: the destination is suppressed",
            },
            "error": {
                "groupId": 1,
                "groupName": "HANDSET_ERRORS",
                "id": error_id,
                "name": error_name,
                "description": "The recipient's address is suppressed for this sending domain",
                "permanent": True,
            },
        }
    return {
        "status": {
            "groupId": 3,
            "groupName": "DELIVERED",
            "id": 5,
            "name": "DELIVERED_TO_HANDSET",
            "description": "Message delivered to handset",
        },
        "error": ok,
        "smtp": {"response": "250 2.0.0 OK"},
    }


def _domain_of(sender: Any) -> str:
    return parseaddr(str(sender or ""))[1].rpartition("@")[2].lower()


class Infobip(AcceptedLog):
    """Accepted sends (v3 form fields or v4 request, with the ids issued and each recipient's fate) at
    /_sandbox/infobip/sent; suppressions at /_sandbox/infobip/suppressions, domains at .../domains."""

    name = "infobip"

    def __init__(self, api_keys: list[str]) -> None:
        super().__init__()
        self.api_keys = list(api_keys)
        self._state_lock = threading.Lock()
        # (domainName, emailAddress lower-cased, type) -> the entry's createdDate and reason
        self.suppressions: dict[tuple[str, str, str], dict[str, str]] = {}
        self.domains: dict[str, dict[str, Any]] = {}  # domainName -> EmailDomainInfo
        self.mailboxes: dict[str, str] = {}  # address -> "bounce" | "deliver"
        self.outages: dict[str, int] = {}  # domainName -> the status its suppression calls get
        self._fates: dict[str, dict[str, str]] = {}  # messageId -> address -> delivered | bounce | suppressed:TYPE

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self.suppressions.clear()
            self.domains.clear()
            self.mailboxes.clear()
            self.outages.clear()
            self._fates.clear()

    def fates(self, message_id: str) -> dict[str, str]:
        """What became of each recipient of one message (read by callbacks.py for its reports)."""
        with self._state_lock:
            return dict(self._fates.get(message_id, {}))

    def _own_domain(self, name: str) -> None:
        """A domain the account sends from (or holds suppressions for) is its own: OWNER, every permission."""
        if name and name not in self.domains:
            self.domains[name] = {"domainName": name, "dataAccess": "OWNER", **dict.fromkeys(PERMISSIONS, True)}

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        with self._state_lock:
            if path == "/suppressions" and method == "GET":
                return Reply(
                    200, [{"domainName": d, "emailAddress": e, "type": t} for d, e, t in sorted(self.suppressions)]
                )
            if path == "/suppressions" and method == "POST":
                if not isinstance(body, dict) or body.get("type") not in SUPPRESSION_TYPES:
                    return Reply(
                        400, {"error": "give {'domainName', 'emailAddress', 'type': BOUNCE|COMPLAINT|OVER_QUOTA}"}
                    )
                domain = str(body.get("domainName")).lower()
                self._own_domain(domain)
                key = (domain, str(body.get("emailAddress")).lower(), body["type"])
                self.suppressions[key] = {"createdDate": _now(), "reason": body["type"].lower()}
                return Reply(204)
            if path == "/domains" and method == "GET":
                return Reply(200, [self.domains[d] for d in sorted(self.domains)])
            if path == "/domains" and method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("domainName"), str):
                    return Reply(400, {"error": "give {'domainName', 'dataAccess'?, permission flags?}"})
                domain = body["domainName"].lower()
                info = {"domainName": domain, "dataAccess": body.get("dataAccess", "GRANTED")}
                info.update({flag: bool(body.get(flag, True)) for flag in PERMISSIONS})
                self.domains[domain] = info
                return Reply(204)
            if path == "/mailboxes" and method == "POST":
                if not isinstance(body, dict) or body.get("outcome") not in ("bounce", "deliver"):
                    return Reply(400, {"error": "give {'email': ..., 'outcome': 'bounce' | 'deliver'}"})
                self.mailboxes[str(body.get("email", "")).lower()] = body["outcome"]
                return Reply(204)
            if path == "/outages" and method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("domainName"), str):
                    return Reply(400, {"error": "give {'domainName', 'status'}"})
                self.outages[body["domainName"].lower()] = int(body.get("status", 503))
                return Reply(204)
            if path == "/outages" and method == "DELETE":
                self.outages.clear()
                return Reply(204)
        return super().control(method, path, body)

    def _refused(self, domain: str, permission: str) -> Reply | None:
        """An outage set up for the domain, or 403 where the account may not do this (see the docstring)."""
        if domain in self.outages:
            status = self.outages[domain]
            return Reply(status, dict(E429)) if status == 429 else api_error(status, "Service unavailable")
        info = self.domains.get(domain)
        if info is None or not info.get(permission):
            return api_error(403, "Forbidden")  # constructed text
        return None

    def _domains(self, request: Request) -> Reply:
        try:
            page = int((request.query.get("page") or ["0"])[0])
            size = int((request.query.get("size") or ["100"])[0])
            if page < 0 or size < 1:
                raise ValueError("paging")
        except ValueError:
            return api_error(400, "Bad request")
        with self._state_lock:
            names = sorted(self.domains)
            results = [dict(self.domains[n]) for n in names[page * size : (page + 1) * size]]
        return Reply(200, {"results": results, "paging": {"page": page, "size": size}})

    def _suppressions(self, request: Request) -> Reply:
        if request.method == "GET":
            domain = (request.query.get("domainName") or [""])[0].lower()
            kind = (request.query.get("type") or [""])[0]
            if not domain or kind not in SUPPRESSION_TYPES:
                return api_error(400, "domainName and type are required")  # constructed text
            email = (request.query.get("emailAddress") or [""])[0].lower()
            with self._state_lock:
                refused = self._refused(domain, _READ[kind])
                if refused is not None:
                    return refused
                found = [
                    # Every field EmailSuppressionInfo (SDK 6.0.0) requires, `reason` included.
                    {"domainName": d, "emailAddress": e, "type": t, **entry}
                    for (d, e, t), entry in sorted(self.suppressions.items())
                    if d == domain and t == kind and (not email or e == email)
                ]
            return Reply(200, {"results": found, "paging": {"page": 0, "size": 100}})
        try:
            body = request.json()
            groups = body["suppressions"]
            if not isinstance(groups, list) or not 1 <= len(groups) <= 10:
                raise ValueError("suppressions")
            for group in groups:
                emails = group["emailAddress"]
                if group["type"] not in SUPPRESSION_TYPES or not isinstance(group["domainName"], str):
                    raise ValueError("type")
                if not isinstance(emails, list) or not 1 <= len(emails) <= 1000:
                    raise ValueError("emailAddress")
        except (ValueError, KeyError, TypeError):
            return api_error(400, "Bad request")
        with self._state_lock:
            for group in groups:  # the whole request is refused if any part of it is
                refused = self._refused(group["domainName"].lower(), _DELETE[group["type"]])
                if refused is not None:
                    return refused
            for group in groups:
                for email in group["emailAddress"]:
                    self.suppressions.pop((group["domainName"].lower(), str(email).lower(), group["type"]), None)
        return Reply(204)

    def _fate(self, domain: str, email: str) -> str:
        """Called under the state lock: a suppressed address is dropped; a bouncing mailbox is suppressed."""
        address = email.lower()
        for kind in SUPPRESSION_TYPES:
            if (domain, address, kind) in self.suppressions:
                return f"suppressed:{kind}"
        if self.mailboxes.get(address) == "bounce":
            self.suppressions[(domain, address, "BOUNCE")] = {"createdDate": _now(), "reason": BOUNCE_RESPONSE}
            return "bounce"
        return "delivered"

    def _settle(self, sender: Any, messages: list[dict[str, Any]], to_field: str) -> dict[str, str]:
        """Each accepted message's fate (messageId -> fate), by the sending domain's suppressions and the
        recipient's mailbox."""
        domain = _domain_of(sender)
        fates = {}
        with self._state_lock:
            self._own_domain(domain)
            for message in messages:
                fate = self._fate(domain, str(message[to_field]))
                self._fates[message["messageId"]] = {str(message[to_field]).lower(): fate}
                fates[message["messageId"]] = fate
        return fates

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
        if request.method == "GET" and request.path == "/email/1/suppressions/domains":
            return self._domains(request)
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
        fates = self._settle((fields.get("from") or [""])[0], messages, "to")
        self.accept({"api": "v3", "bulkId": bulk_id, "fields": fields, "messages": messages, "fates": fates})
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
        fates: dict[str, str] = {}
        for message in body["messages"]:
            own = []
            for group in message["destinations"]:
                for to in group.get("to") or []:
                    own.append(
                        {
                            "messageId": to.get("messageId") or secrets.token_hex(12),
                            "status": dict(PENDING_ENROUTE),
                            "destination": to["destination"],
                        }
                    )
            fates.update(self._settle(message.get("sender"), own, "destination"))
            results.extend(own)
        bulk_id = ((body.get("options") or {}).get("schedule") or {}).get("bulkId") or secrets.token_hex(10)
        self.accept({"api": "v4", "bulkId": bulk_id, "request": body, "messages": results, "fates": fates})
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
