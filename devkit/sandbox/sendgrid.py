"""SendGrid v3 Mail Send stand-in: Bearer key, the documented validation errors in SendGrid's error shape,
202 with X-Message-Id (200 and no message in sandbox mode). Sources, per behaviour:

* request schema and limits: twilio/sendgrid-oai `spec/yaml/tsg_mail_v3.yaml`; Twilio SendGrid *Mail Send -
  Errors* and *Limitations* pages (WIRE-FORMATS 1.2, 1.4, 1.5). Error texts are verbatim where the errors
  page gives them, constructed otherwise (marked below).
* categories: ASCII only, "Categories can not contain non-ASCII characters." (errors page, "Categories errors").
* attachments: `filename` and `type` without `;`, `,`, CR, LF; `content_id` without `;`, CR, LF (errors
  page, "Attachment errors"; message texts constructed).
* custom_args: at most 10,000 bytes per personalization after merging. The current errors page says 50,000;
  older pages say 10,000: the fake takes the stricter, pessimistic figure.
* 429: `X-RateLimit-Limit/Remaining/Reset` (reset in epoch seconds) and no `Retry-After` (*Rate limits* page,
  WIRE-FORMATS 1.6); see `pacing_headers`.
* suppression lists (bounces, blocks, spam_reports, invalid_emails, global unsubscribes): twilio/sendgrid-oai
  `spec/yaml/tsg_suppressions_v3.yaml` - GET `/v3/suppression/<list>/{email}` answers an array of entries (empty
  when not listed), GET `/v3/asm/suppressions/global/{email}` `{"recipient_email": ...}` or `{}`, DELETE 204.
  The spec documents only 204 for a DELETE; for an address not listed the fake answers 204 too (the
  pessimistic reading: a "removed" is no proof it was there).
* a hard bounce puts the address on the bounce list, and mail to a listed address is accepted (202) and then
  dropped, with a `dropped` event ("Bounced Address", "Spam Reporting Address", "Invalid", "Unsubscribed
  Address") instead of a delivery (Twilio SendGrid docs: *Suppressions* overview, *Event Webhook reference*,
  `dropped` reasons). Which mailboxes bounce is the sandbox's set-up: POST /_sandbox/sendgrid/mailboxes
  {"email", "outcome": "bounce"}.
"""

import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import unquote

from devkit.sandbox.base import AcceptedLog, Reply, Request, bearer_token, rate_limit_headers

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


def sendgrid_error(status: int, message: str, field: str | None = None) -> Reply:
    anchor = f"#message.{field}" if field else ""
    return Reply(status, {"errors": [{"message": message, "field": field, "help": f"{_HELP}{anchor}"}]})


LISTS = ("bounces", "blocks", "spam_reports", "invalid_emails", "global_unsubscribes")
# The `dropped` event's reason for an address on each list (Event Webhook reference, `dropped`).
DROP_REASONS = {
    "bounces": "Bounced Address",
    "blocks": "Bounced Address",
    "spam_reports": "Spam Reporting Address",
    "invalid_emails": "Invalid",
    "global_unsubscribes": "Unsubscribed Address",
}
_LIST_PATH = re.compile(
    r"^/v3/(?:suppression/(bounces|blocks|spam_reports|invalid_emails)|asm/suppressions/(global))/([^/]+)$"
)


class SendGrid(AcceptedLog):
    """Accepted mail: {"x_message_id", "request", "fates"} at /_sandbox/sendgrid/sent; its suppression lists
    at /_sandbox/sendgrid/suppressions."""

    name = "sendgrid"

    def __init__(self, api_keys: list[str]) -> None:
        super().__init__()
        self.api_keys = list(api_keys)
        self.lists: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in LISTS}
        self.mailboxes: dict[str, str] = {}  # address -> "bounce": what the receiving server will do
        self._fates: dict[str, dict[str, str]] = {}  # X-Message-Id -> address -> delivered/bounce/dropped:<list>
        self._state_lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        with self._state_lock:
            self.lists = {name: {} for name in LISTS}
            self.mailboxes.clear()
            self._fates.clear()

    def fates(self, message_id: str) -> dict[str, str]:
        """What became of each recipient of an accepted mail (read by callbacks.py for its events)."""
        with self._state_lock:
            return dict(self._fates.get(message_id, {}))

    def bounced(self, email: str, reason: str) -> None:
        """A hard bounce: SendGrid adds the address to its bounce list."""
        with self._state_lock:
            self.lists["bounces"][email.lower()] = {
                "created": int(time.time()),
                "email": email,
                "reason": reason,
                "status": "5.1.1",
            }

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == "/suppressions" and method == "GET":
            with self._state_lock:
                return Reply(200, {name: sorted(entries) for name, entries in self.lists.items()})
        if path == "/suppressions" and method == "POST":
            if not isinstance(body, dict) or body.get("list") not in LISTS or not isinstance(body.get("email"), str):
                return Reply(400, {"error": f"give {{'list': one of {list(LISTS)}, 'email': ...}}"})
            with self._state_lock:
                self.lists[body["list"]][body["email"].lower()] = {"created": int(time.time()), "email": body["email"]}
            return Reply(204)
        if path == "/mailboxes" and method == "POST":
            if not isinstance(body, dict) or body.get("outcome") not in ("bounce", "deliver"):
                return Reply(400, {"error": "give {'email': ..., 'outcome': 'bounce' | 'deliver'}"})
            with self._state_lock:
                self.mailboxes[str(body.get("email", "")).lower()] = body["outcome"]
            return Reply(204)
        return super().control(method, path, body)

    def _suppression(self, request: Request) -> Reply:
        match = _LIST_PATH.match(request.path)
        if match is None:
            return sendgrid_error(404, "not found")
        name = match.group(1) or "global_unsubscribes"
        email = unquote(match.group(3)).lower()
        with self._state_lock:
            entry = self.lists[name].get(email)
            if request.method == "DELETE":
                self.lists[name].pop(email, None)
                return Reply(204)
        if request.method != "GET":
            return sendgrid_error(405, "method not allowed")  # constructed text
        if name == "global_unsubscribes":
            return Reply(200, {"recipient_email": entry["email"]} if entry else {})
        return Reply(200, [entry] if entry else [])

    def _fate(self, email: str) -> str:
        address = email.lower()
        with self._state_lock:
            for name in LISTS:
                if address in self.lists[name]:
                    return f"dropped:{name}"
            return "bounce" if self.mailboxes.get(address) == "bounce" else "delivered"

    @staticmethod
    def pacing_headers(wait: float | None) -> dict[str, str]:
        # No number is published for /v3/mail/send; 600 is the default of other v3 endpoints [3P].
        return rate_limit_headers(600, wait)

    def handle(self, request: Request) -> Reply:
        suppression = request.path.startswith(("/v3/suppression/", "/v3/asm/suppressions/"))
        if not suppression and (request.path != "/v3/mail/send" or request.method != "POST"):
            return sendgrid_error(404, "not found")
        token = bearer_token(request)
        if token is None:
            return sendgrid_error(401, "authorization required")
        if token not in self.api_keys:
            return sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
        if suppression:
            return self._suppression(request)
        try:
            mail = request.json()
        except ValueError:
            return sendgrid_error(400, "Bad Request", None)
        problem = validate_mail(mail)
        if problem:
            return sendgrid_error(400, *problem)
        if (mail.get("mail_settings") or {}).get("sandbox_mode", {}).get("enable") is True:
            return Reply(200)
        message_id = secrets.token_urlsafe(16)[:22]
        fates = {
            str(to["email"]).lower(): self._fate(str(to["email"]))
            for p in mail["personalizations"]
            for to in p.get("to") or []
        }
        with self._state_lock:
            self._fates[message_id] = fates
        self.accept({"x_message_id": message_id, "request": mail, "fates": fates})
        return Reply(202, None, {"X-Message-Id": message_id})


def validate_mail(mail: Any) -> tuple[str, str | None] | None:
    """The first problem SendGrid would report, as (message, field), or None."""
    if not isinstance(mail, dict):
        return "Bad Request", None
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return "The personalizations field is required and must have at least one personalization.", "personalizations"
    if len(personalizations) > 1000:
        return "The personalizations field must have no more than 1000 items.", "personalizations"
    sender = mail.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        return (
            "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.",
            "from.email",
        )
    if not _looks_like_email(sender["email"]):
        return "The from email does not contain a valid address.", "from.email"
    if sender.get("name") and any(ord(c) > 127 for c in str(sender.get("email"))):
        return "Unicode encoding is not supported for the from field.", "from.email"
    if "reply_to" in mail and "reply_to_list" in mail:
        return "The reply_to and reply_to_list fields are mutually exclusive.", "reply_to"
    seen: set[str] = set()
    total = 0
    for i, p in enumerate(personalizations):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            return (
                "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                f"personalizations.{i}.to",
            )
        for kind in ("to", "cc", "bcc"):
            for recipient in p.get(kind) or []:
                total += 1
                address = str(recipient.get("email", "")).lower() if isinstance(recipient, dict) else ""
                if not _looks_like_email(address):
                    return "Does not contain a valid address.", f"personalizations.{i}.{kind}"
                if address in seen:
                    return (
                        "Each unique email address in the personalizations array should only be included once.",
                        f"personalizations.{i}.{kind}",
                    )
                seen.add(address)
                name = recipient.get("name") or ""
                if ";" in name or "," in name:
                    return f"The {kind}.name cannot contain ';' or ','.", f"personalizations.{i}.{kind}.name"
        args = {**(mail.get("custom_args") or {}), **(p.get("custom_args") or {})}
        if any(not isinstance(v, str) for v in args.values()):
            return "All values of custom arguments object must be strings.", f"personalizations.{i}.custom_args"
        if len(str(args).encode("utf-8")) > 10_000:
            return "The custom arguments must be less than 10,000 bytes.", f"personalizations.{i}.custom_args"
    if total > 1000:
        return "There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations"
    template_id = mail.get("template_id")
    if not template_id:
        subject_everywhere = mail.get("subject") or all(
            isinstance(p, dict) and p.get("subject") for p in personalizations
        )
        if not subject_everywhere:
            return (
                "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                "subject",
            )
        content = mail.get("content")
        if (
            not isinstance(content, list)
            or not content
            or not all(isinstance(c, dict) and c.get("type") and c.get("value") for c in content)
        ):
            return (
                "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.",
                "content",
            )
    categories = mail.get("categories") or []
    if len(categories) > 10:
        return "Too many categories. You may only specify up to 10 categories per request.", "categories"
    if len(set(categories)) != len(categories):
        return "The categories parameter must contain unique values.", "categories"
    if any(not isinstance(c, str) or not c.isascii() for c in categories):
        return "Categories can not contain non-ASCII characters.", "categories"
    for i, attachment in enumerate(mail.get("attachments") or []):
        if not isinstance(attachment, dict) or not attachment.get("content") or not attachment.get("filename"):
            return "The attachment content and filename are required.", f"attachments.{i}"  # constructed text
        for name, forbidden in (("filename", ";,\r\n"), ("type", ";,\r\n"), ("content_id", ";\r\n")):
            value = str(attachment.get(name) or "")
            if any(ch in value for ch in forbidden):  # constructed text; the rule is the errors page's
                return (
                    f"The attachment {name} cannot contain {', '.join(map(repr, forbidden))}.",
                    f"attachments.{i}.{name}",
                )
    sandbox = (mail.get("mail_settings") or {}).get("sandbox_mode")
    if sandbox is not None and not isinstance(sandbox.get("enable"), bool):
        return "The sandbox mode enable param should be a boolean value.", "mail_settings.sandbox_mode.enable"
    return None


def _looks_like_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 320 and bool(re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value))
