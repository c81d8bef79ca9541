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
* `GET /email/unsubscribes?email=&end_date=` (braze-docs `_docs/_api/endpoints/email/get_query_unsubscribed_email_
  addresses.md`: "You must provide an end_date, as well as either an email or a start_date") -> `{"emails":
  [{"email", "unsubscribed_at"}], "message": "success"}`, the addresses whose state is `unsubscribed`. Without
  `end_date`, or without `email` and `start_date`, a 400 (constructed text; the status is undocumented).
* hard bounces: `GET /email/hard_bounces?email=&end_date=` (`get_list_hard_bounces.md`: `end_date` required,
  and one of `email` or `start_date`; with an email the range is disregarded) -> `{"emails": [{"email",
  "hard_bounced_at"}], "message": "success"}`; `POST /email/bounce/remove` {"email": one or up to 50}
  (`post_remove_hard_bounces.md`). A receiving server's 5xx for the address (set up with POST
  /_sandbox/braze/mailboxes {"email", "outcome": "bounce"}) is a hard bounce: a `bounced` postback whose reason
  holds the SMTP reply, and the address goes on the list ("Braze will mark the user's email address as invalid
  and will not attempt to send any further emails to that email address", `_docs/_user_guide/message_building_
  by_channel/email/best_practices/managing_email_subscriptions.md`).
* spam: `POST /email/spam/remove` {"email": one or up to 50} (`post_remove_spam.md`, which also clears "the spam
  list maintained by your email provider"); no query of the spam list is documented, so the fake has none
  (its list is at GET /_sandbox/braze/suppressions). A spam-marked user gets "only transactional emails"
  (`managing_email_subscriptions.md`), yet the remove page says Braze's e-mail provider keeps a spam list of
  its own, and whether that provider lets transactional mail through is not documented: the fake takes the
  pessimistic reading and drops it, like mail to a hard-bounced address.
* dropping: the send is answered 200 with a dispatch_id as usual (the docs name no synchronous refusal for
  an address), then one `aborted` postback with reason "User not emailable" (the postback include's verbatim
  example, `_includes/http_event_postback.md`) instead of `processed`/`delivered`.
* unsubscribed users are not dropped: a transactional e-mail campaign takes "your entire user base
  as eligible (including unsubscribed users)" (`_docs/_user_guide/message_building_by_channel/email/
  transactional_message_api_campaign.md`, "The Target Audiences step has been removed").
* the recipient's address is `recipient.attributes.email`, else the one an earlier send gave that user
  (attributes "create or overwrite profile attributes before send", WIRE-FORMATS 3.2).
* remove answers: undocumented (UNCONFIRMED: 201 `{"message": "success"}`, as for /email/status); removing an
  address that is not listed is a success too (pessimistic: a success is no proof the address was there).
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
NOT_EMAILABLE = "User not emailable"  # the `aborted` postback's reason, verbatim from its example
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist"  # the `bounced` example
LISTS = ("hard_bounces", "spam")
MAX_EMAILS = 50  # "an array of up to 50 email addresses" (every /email/* write page)


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
        # list -> address -> when it went on it (ISO 8601): what keeps Braze from mailing an address
        self.lists: dict[str, dict[str, str]] = {name: {} for name in LISTS}
        self.mailboxes: dict[str, str] = {}  # address -> "bounce": what the receiving server will do
        self.profiles: dict[str, str] = {}  # user (external id or alias) -> the address its attributes gave
        self._fates: dict[str, str] = {}  # dispatch id -> delivered / bounce / dropped:<list>

    def reset(self) -> None:
        super().reset()
        with self._dedupe_lock:
            self.campaigns.clear()
            self._by_external_id.clear()
            self.email_status.clear()
            self.lists = {name: {} for name in LISTS}
            self.mailboxes.clear()
            self.profiles.clear()
            self._fates.clear()

    def fate(self, dispatch_id: str) -> str:
        """What became of an accepted send (read by callbacks.py for its postbacks)."""
        with self._dedupe_lock:
            return self._fates.get(dispatch_id, "delivered")

    @staticmethod
    def _emails(request: Request) -> tuple[dict[str, Any], list[str]] | Reply:
        """The body and its `email`: "String email address to modify, or an array of up to 50" (every
        /email/* write page). The error texts are constructed; their status is undocumented."""
        try:
            body = request.json()
        except ValueError:
            return braze_error(400, "Invalid JSON")
        emails = body.get("email") if isinstance(body, dict) else None
        if isinstance(emails, str):
            emails = [emails]
        if (
            not isinstance(emails, list)
            or not 1 <= len(emails) <= MAX_EMAILS
            or not all(isinstance(e, str) and "@" in e for e in emails)
        ):
            return braze_error(400, "email must be an email address or an array of at most 50 of them")
        assert isinstance(body, dict)
        return body, [e.strip().lower() for e in emails]

    def _email_status(self, request: Request) -> Reply:
        read = self._emails(request)
        if isinstance(read, Reply):
            return read
        body, emails = read
        state = body.get("subscription_state")
        if state not in ("subscribed", "unsubscribed", "opted_in"):
            return braze_error(400, "subscription_state must be subscribed, unsubscribed or opted_in")  # constructed
        with self._dedupe_lock:
            for email in emails:
                self.email_status[email] = state
        return Reply(201, {"message": "success"})

    def _remove(self, request: Request, name: str) -> Reply:
        """POST /email/bounce/remove, /email/spam/remove: off the list, listed or not."""
        read = self._emails(request)
        if isinstance(read, Reply):
            return read
        with self._dedupe_lock:
            for email in read[1]:
                self.lists[name].pop(email, None)
        return Reply(201, {"message": "success"})

    @staticmethod
    def _query(request: Request) -> str | Reply:
        """The address a GET /email/hard_bounces or /email/unsubscribes asks about: both pages require
        `end_date`, and `email` or `start_date`. The date-range form is not used by the bridge: the fake
        refuses it (a constructed 400) rather than answer it wrongly."""
        email = (request.query.get("email") or [""])[0].strip().lower()
        if not (request.query.get("end_date") or [""])[0]:
            return braze_error(400, "end_date is required")  # constructed text
        if not email:
            return braze_error(400, "email, or start_date and end_date, required")  # constructed text
        return email

    def bounced(self, email: str) -> None:
        """A hard bounce: Braze marks the address invalid (managing_email_subscriptions.md)."""
        with self._dedupe_lock:
            self.lists["hard_bounces"][email.lower()] = _now()

    def _fate(self, recipient: dict[str, Any]) -> tuple[str | None, str]:
        """(the recipient's address, what becomes of the mail: delivered / bounce / dropped:<list>)."""
        alias = recipient.get("user_alias")
        user = (
            f"id:{recipient['external_user_id']}"
            if "external_user_id" in recipient
            else f"alias:{alias.get('alias_label')}:{alias.get('alias_name')}"
            if isinstance(alias, dict)
            else ""
        )
        attributes = recipient.get("attributes") if isinstance(recipient.get("attributes"), dict) else {}
        given = attributes.get("email") if isinstance(attributes, dict) else None
        with self._dedupe_lock:
            if isinstance(given, str) and given:
                self.profiles[user] = given.strip().lower()
            email = self.profiles.get(user)
            if email is None:
                return None, "delivered"
            for name in LISTS:
                if email in self.lists[name]:
                    return email, f"dropped:{name}"
            if self.mailboxes.get(email) == "bounce":
                self.lists["hard_bounces"][email] = _now()
                return email, "bounce"
        return email, "delivered"

    @staticmethod
    def pacing_headers(wait: float | None) -> dict[str, str]:
        return rate_limit_headers(250_000, wait)  # the docs' example: 250,000 requests an hour, all endpoints

    def control(self, method: str, path: str, body: Any) -> Reply | None:
        if path == "/suppressions" and method == "GET":
            with self._dedupe_lock:
                unsubscribed = [e for e, state in self.email_status.items() if state == "unsubscribed"]
                return Reply(
                    200,
                    {**{n: sorted(entries) for n, entries in self.lists.items()}, "unsubscribed": sorted(unsubscribed)},
                )
        if path == "/suppressions" and method == "POST":
            if not isinstance(body, dict) or body.get("list") not in LISTS or not isinstance(body.get("email"), str):
                return Reply(400, {"error": f"give {{'list': one of {list(LISTS)}, 'email': ...}}"})
            with self._dedupe_lock:
                self.lists[body["list"]][body["email"].strip().lower()] = _now()
            return Reply(204)
        if path == "/mailboxes" and method == "POST":
            if not isinstance(body, dict) or body.get("outcome") not in ("bounce", "deliver"):
                return Reply(400, {"error": "give {'email': ..., 'outcome': 'bounce' | 'deliver'}"})
            with self._dedupe_lock:
                self.mailboxes[str(body.get("email", "")).strip().lower()] = body["outcome"]
            return Reply(204)
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
            email = self._query(request)
            if isinstance(email, Reply):
                return email
            with self._dedupe_lock:
                listed = self.email_status.get(email) == "unsubscribed"
            emails = [{"email": email, "unsubscribed_at": "2026-01-01 00:00:00 +0000"}] if listed else []
            return Reply(200, {"emails": emails, "message": "success"})
        if request.path == "/email/hard_bounces" and request.method == "GET":
            email = self._query(request)
            if isinstance(email, Reply):
                return email
            with self._dedupe_lock:
                at = self.lists["hard_bounces"].get(email)
            return Reply(200, {"emails": [{"email": email, "hard_bounced_at": at}] if at else [], "message": "success"})
        if request.path == "/email/bounce/remove" and request.method == "POST":
            return self._remove(request, "hard_bounces")
        if request.path == "/email/spam/remove" and request.method == "POST":
            return self._remove(request, "spam")
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
        fate = self._fate(recipient)[1]
        self.accept({"dispatch_id": dispatch_id, "campaign_id": campaign, "request": body, "fate": fate})
        with self._dedupe_lock:
            self._fates[dispatch_id] = fate
        metadata: dict[str, Any] = {"campaign_api_id": campaign}
        if external_send_id:
            metadata["external_send_id"] = external_send_id
        return Reply(200, {"dispatch_id": dispatch_id, "status": "sent", "metadata": metadata})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
