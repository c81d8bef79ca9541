r"""Braze transactional e-mail stand-in: Bearer REST key, one recipient given by exactly one of
external_user_id or user_alias, external_send_id validated and deduplicated for 24 h, Braze's error texts.
Sources, per behaviour (braze-inc/braze-docs `_docs/_api/endpoints/messaging/send_messages/
post_send_transactional_message.md`, WIRE-FORMATS 3.2):

* recipient: exactly one of `external_user_id` or `user_alias` {alias_name, alias_label}, plus attributes.
* `external_send_id`: /^[a-zA-Z0-9-_+\/=]+$/, a dedupe key for 24 h. A repeat within that window creates no
  send and is answered with the troubleshooting table's error "The external reference has been queued.
  Please retry to obtain send_id." (two spaces, verbatim) - not with the first dispatch_id. Its HTTP status
  is undocumented: the fake takes the pessimistic reading, a 400 like Braze's other request errors, so a
  client that trusts the status alone would wrongly call the mail failed.
* trigger_properties at most 50 KB (how Braze counts is UNCONFIRMED: pessimistically, as ASCII-escaped JSON); campaign states and their error texts from the troubleshooting table.
* 429: `X-RateLimit-Limit/Remaining/Reset` (reset in epoch seconds), no `Retry-After` (*API Rate Limits*,
  `_docs/_api/api_limits.md`); see `pacing_headers`.
* The 200 answer's `status` value is undocumented (UNCONFIRMED "sent"); `metadata` mirrors the postbacks.
* `POST /email/status` {"email": one or up to 50, "subscription_state": "subscribed"|"unsubscribed"|"opted_in"}
  (braze-docs `_docs/_api/endpoints/email/post_email_subscription_status.md`); the answer is undocumented
  (UNCONFIRMED: the fake answers 201 `{"message": "success"}`, as Braze's /users/track does). States at GET /_sandbox/braze/email_status.
* `GET /email/unsubscribes?email=` (braze-docs `_docs/_api/endpoints/email/get_query_unsubscribed_email_addresses.md`:
  either `email` or `start_date` and `end_date`) -> `{"emails": [{"email", "unsubscribed_at"}], "message": "success"}`,
  the addresses whose state is `unsubscribed`. The fake answers only the `email` form; without it, a 400
  (constructed text: the date-range form is not used by the bridge).
"""

import json
import re
import secrets
import threading
import time
from typing import Any

from devkit.sandbox.base import AcceptedLog, Reply, Request, bearer_token, rate_limit_headers

_SEND = re.compile(r"^/transactional/v1/campaigns/(?P<campaign>[^/]+)/send$")
_EXTERNAL_SEND_ID = re.compile(r"^[a-zA-Z0-9-_+/=]+$")
DEDUPE_SECONDS = 24 * 3600
MAX_TRIGGER_PROPERTIES = 50 * 1024
QUEUED = "The external reference has been queued.  Please retry to obtain send_id."
QUEUED_STATUS = 400  # undocumented; pessimistic (see the module docstring)


def braze_error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


class Braze(AcceptedLog):
    """Sends that created a dispatch ({"dispatch_id", "campaign_id", "request"}) at /_sandbox/braze/sent."""

    name = "braze"

    def __init__(self, api_keys: list[str]) -> None:
        super().__init__()
        self.api_keys = list(api_keys)
        # campaign id -> state; unknown ids are accepted as active transactional campaigns.
        self.campaigns: dict[str, str] = {}
        self._by_external_id: dict[str, tuple[float, str]] = {}
        self._dedupe_lock = threading.Lock()
        self.email_status: dict[str, str] = {}  # address -> subscription state set through /email/status

    def reset(self) -> None:
        super().reset()
        with self._dedupe_lock:
            self.campaigns.clear()
            self._by_external_id.clear()
            self.email_status.clear()

    def _email_status(self, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return braze_error(400, "Invalid JSON")  # constructed text
        emails = body.get("email") if isinstance(body, dict) else None
        state = body.get("subscription_state") if isinstance(body, dict) else None
        if isinstance(emails, str):
            emails = [emails]
        if not isinstance(emails, list) or not 1 <= len(emails) <= 50 or not all(isinstance(e, str) for e in emails):
            return braze_error(400, "email must be a string or an array of at most 50 strings")  # constructed
        if state not in ("subscribed", "unsubscribed", "opted_in"):
            return braze_error(400, "subscription_state must be subscribed, unsubscribed or opted_in")  # constructed
        with self._dedupe_lock:
            for email in emails:
                self.email_status[email.lower()] = state
        return Reply(201, {"message": "success"})

    @staticmethod
    def pacing_headers(wait: float | None) -> dict[str, str]:
        return rate_limit_headers(250_000, wait)  # the docs' example: 250,000 requests an hour, all endpoints

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == "/email_status" and method == "GET":
            with self._dedupe_lock:
                return Reply(200, dict(self.email_status))
        if path == "/email_status" and method == "POST" and isinstance(body, dict):
            with self._dedupe_lock:
                self.email_status[str(body.get("email", "")).lower()] = str(body.get("subscription_state"))
            return Reply(204)
        found = re.match(r"^/campaigns/([^/]+)$", path)
        if found and method == "PUT":
            state = (body or {}).get("state", "active")
            if state not in ("active", "paused", "archived", "missing", "not_transactional"):
                return Reply(400, {"error": f"unknown state {state}"})
            self.campaigns[found.group(1)] = state
            return Reply(200, {"campaign": found.group(1), "state": state})
        return super().control(method, path, body)

    def handle(self, request: Request) -> Reply:
        token = bearer_token(request)
        if token is None or token not in self.api_keys:
            return braze_error(401, "Error authenticating credentials")
        if request.path == "/email/status" and request.method == "POST":
            return self._email_status(request)
        if request.path == "/email/unsubscribes" and request.method == "GET":
            email = (request.query.get("email") or [""])[0].lower()
            if not email:
                return braze_error(400, "email, or start_date and end_date, required")  # constructed text
            with self._dedupe_lock:
                listed = self.email_status.get(email) == "unsubscribed"
            emails = [{"email": email, "unsubscribed_at": "2026-01-01 00:00:00 +0000"}] if listed else []
            return Reply(200, {"emails": emails, "message": "success"})
        found = _SEND.match(request.path)
        if not found or request.method != "POST":
            return braze_error(404, "Not Found")
        campaign = found.group("campaign")
        state = self.campaigns.get(campaign, "active")
        if state == "missing":
            return braze_error(404, "Campaign does not exist")
        if state == "not_transactional":
            return braze_error(
                400, "The campaign is not a transactional campaign. Only transactional campaigns may use this endpoint"
            )
        if state == "archived":
            return braze_error(
                400, "The campaign is archived. Unarchive the campaign in order for trigger requests to take effect."
            )
        if state == "paused":
            return braze_error(
                400, "The campaign is paused. Resume the campaign in order for trigger requests to take effect."
            )
        try:
            body = request.json()
        except ValueError:
            return braze_error(400, "Invalid JSON body")
        if not isinstance(body, dict):
            return braze_error(400, "Invalid JSON body")
        recipient = body.get("recipient")
        if not isinstance(recipient, dict):
            return braze_error(400, "recipient is required")
        if ("external_user_id" in recipient) == ("user_alias" in recipient):
            return braze_error(400, "recipient must include exactly one of external_user_id or user_alias")
        alias = recipient.get("user_alias")
        if alias is not None and not (isinstance(alias, dict) and alias.get("alias_name") and alias.get("alias_label")):
            return braze_error(400, "user_alias must include alias_name and alias_label")
        external_send_id = body.get("external_send_id")
        if external_send_id is not None and (
            not isinstance(external_send_id, str) or not _EXTERNAL_SEND_ID.match(external_send_id)
        ):
            return braze_error(
                400, "external_send_id must be a Base64 compatible string matching /^[a-zA-Z0-9-_+\\/=]+$/"
            )
        trigger = body.get("trigger_properties")
        if trigger is not None and (
            not isinstance(trigger, dict) or len(json.dumps(trigger).encode("utf-8")) > MAX_TRIGGER_PROPERTIES
        ):
            return braze_error(400, "trigger_properties must be an object of at most 50 KB")
        with self._dedupe_lock:
            now = time.time()
            if external_send_id:
                seen = self._by_external_id.get(external_send_id)
                if seen and now - seen[0] < DEDUPE_SECONDS:
                    return braze_error(QUEUED_STATUS, QUEUED)  # same identifier within 24 h: no new send
            dispatch_id = secrets.token_hex(16)
            if external_send_id:
                self._by_external_id[external_send_id] = (now, dispatch_id)
            self.accept({"dispatch_id": dispatch_id, "campaign_id": campaign, "request": body})
        metadata: dict[str, Any] = {"campaign_api_id": campaign}
        if external_send_id:
            metadata["external_send_id"] = external_send_id
        return Reply(200, {"dispatch_id": dispatch_id, "status": "sent", "metadata": metadata})
