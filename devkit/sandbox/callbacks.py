"""After the SendGrid sandbox accepts mail, posts that mail's event webhook back to the bridge, signed as
SendGrid signs it, so a local send reaches `delivered` (and `open`) the way a real one does."""

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from devkit.sandbox.base import Reply, Request

# SendGrid posts events in batches "every 30 seconds or when the batch size reaches 768 kilobytes, whichever
# comes first" (Event Webhook reference, docs.sendgrid.com/for-developers/tracking-events/event). Locally the
# delivery batch goes after DELIVERY_DELAY and the engagement batch after OPEN_DELAY, well inside that window,
# so the story is seen in seconds; SendGrid may also post them together or in either order.
DELIVERY_DELAY = 1.0
OPEN_DELAY = 3.0


class EventCallbacks:
    """Where to post each ESP's events (the bridge's /events/<provider>), and the posting itself."""

    def __init__(self, targets: dict[str, str], sign: Callable[[bytes], dict[str, str]] | None = None) -> None:
        self.targets = targets
        self._sign = sign
        self.posted: list[dict[str, Any]] = []  # {"provider", "status", "events"} of each post, for tests
        self._lock = threading.Lock()

    def after(self, provider: str, request: Request, reply: Reply) -> None:
        """Called by the sandbox for each answered request; acts only on mail it accepted."""
        if provider != "sendgrid" or "sendgrid" not in self.targets:
            return
        if request.method != "POST" or not request.path.endswith("/v3/mail/send") or reply.status != 202:
            return
        message_id = reply.headers.get("X-Message-Id")
        try:
            mail = request.json()
        except ValueError:
            return
        if not message_id or not isinstance(mail, dict):
            return
        # Sandbox mode mail is validated, never delivered: SendGrid sends no events for it.
        if ((mail.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return
        delivered = sendgrid_events(mail, message_id, ("processed", "delivered"))
        opened = sendgrid_events(mail, message_id, ("open",))
        self._later(DELIVERY_DELAY, "sendgrid", delivered)
        self._later(OPEN_DELAY, "sendgrid", opened)

    def _later(self, delay: float, provider: str, events: list[dict[str, Any]]) -> None:
        if events:
            timer = threading.Timer(delay, self._post, args=(provider, events))
            timer.daemon = True
            timer.start()

    def _post(self, provider: str, events: list[dict[str, Any]]) -> None:
        body = json.dumps(events, ensure_ascii=False).encode("utf-8") + b"\r\n"
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
        if self._sign is not None:
            headers.update(self._sign(body))
        status = 0
        try:
            request = UrlRequest(self.targets[provider], data=body, method="POST", headers=headers)  # noqa: S310
            with urlopen(request, timeout=20) as answer:  # noqa: S310 - the local bridge
                status = answer.status
        except OSError as exc:
            # SendGrid retries failed posts for 24 hours; the sandbox only records that this one failed.
            status = getattr(exc, "code", 0) or 0
        with self._lock:
            self.posted.append({"provider": provider, "status": status, "events": events})


def sendgrid_events(mail: dict[str, Any], message_id: str, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """One event of each kind per recipient, shaped as SendGrid documents them: custom_args (top level and
    the personalization's) flattened into the event, sg_message_id = X-Message-Id + ".filter...".
    Source: the Event Webhook reference's event examples (WIRE-FORMATS §2)."""
    events = []
    now = int(time.time())
    shared: dict[str, Any] = mail["custom_args"] if isinstance(mail.get("custom_args"), dict) else {}
    for n, personalization in enumerate(mail.get("personalizations") or []):
        if not isinstance(personalization, dict):
            continue
        own: dict[str, Any] = personalization.get("custom_args") or {}
        if not isinstance(own, dict):
            own = {}
        for to in personalization.get("to") or []:
            email = to.get("email") if isinstance(to, dict) else None
            if not email:
                continue
            for kind in kinds:
                event: dict[str, Any] = {
                    **shared,
                    **own,
                    "email": email,
                    "timestamp": now,
                    "event": kind,
                    "sg_event_id": secrets.token_urlsafe(16),
                    "sg_message_id": f"{message_id}.filter0001.{n}.{secrets.token_hex(4).upper()}.0",
                    "smtp-id": f"<{message_id}@ismtpd0001p1.sendgrid.net>",
                }
                if kind == "delivered":
                    event["response"] = "250 2.0.0 OK"
                if kind == "open":
                    event["useragent"] = "Mozilla/5.0 (sandbox)"
                    event["sg_machine_open"] = False
                events.append(event)
    return events
