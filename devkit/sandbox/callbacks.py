"""After a sandboxed ESP accepts mail, posts that mail's events back to the bridge as the ESP would, so a
local send reaches `delivered` (and `opened`) the way a real one does: SendGrid's signed Event Webhook,
Braze's transactional postbacks with the postback secret, Infobip's delivery report and tracking
notification to the notifyUrl / trackingUrl the send named."""

import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

from devkit.sandbox.base import Reply, Request
from devkit.sandbox.braze import BOUNCE_REASON as BRAZE_BOUNCE_REASON
from devkit.sandbox.braze import NOT_EMAILABLE
from devkit.sandbox.infobip import report_outcome
from devkit.sandbox.sendgrid import DROP_REASONS

# SendGrid posts events in batches "every 30 seconds or when the batch size reaches 768 kilobytes, whichever
# comes first" (Event Webhook reference, docs.sendgrid.com/for-developers/tracking-events/event). Locally the
# delivery batch goes after DELIVERY_DELAY and the engagement batch after OPEN_DELAY, well inside that window,
# so the story is seen in seconds; SendGrid may also post them together or in either order.
DELIVERY_DELAY = 1.0
OPEN_DELAY = 3.0


class EventCallbacks:
    """Where to post each ESP's events (the bridge's /events/<provider>), and the posting itself."""

    def __init__(
        self,
        targets: dict[str, str],
        sign: Callable[[bytes], dict[str, str]] | None = None,
        braze_secret: str = "",
    ) -> None:
        self.targets = targets  # provider -> URL (SendGrid's and Braze's are set in their consoles)
        self._sign = sign
        self._braze_secret = braze_secret
        self.posted: list[dict[str, Any]] = []  # {"provider", "status", "events"} of each post, for tests
        self._lock = threading.Lock()

    def after(self, provider: str, request: Request, reply: Reply, source: Any = None) -> None:
        """Called by the sandbox for each answered request; acts only on mail it accepted. `source`: the
        sandboxed provider that answered (SendGrid's knows each recipient's fate: delivered, bounced, dropped)."""
        if request.method != "POST" or not 200 <= reply.status < 300:
            return
        try:
            mail = request.json()
        except ValueError:
            return
        if not isinstance(mail, dict):
            return
        if provider == "sendgrid" and request.path.endswith("/v3/mail/send") and "sendgrid" in self.targets:
            self._sendgrid(mail, reply, source)
        elif provider == "braze" and "/transactional/v1/campaigns/" in request.path and "braze" in self.targets:
            self._braze(mail, reply, source)
        elif provider == "infobip" and request.path.startswith("/email/"):
            self._infobip(mail, reply, source)

    def _sendgrid(self, mail: dict[str, Any], reply: Reply, source: Any = None) -> None:
        message_id = reply.headers.get("X-Message-Id")
        # Sandbox mode mail is validated, never delivered: SendGrid sends no events for it.
        if not message_id or ((mail.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"):
            return
        fates: dict[str, str] = source.fates(message_id) if hasattr(source, "fates") else {}
        for email, fate in fates.items():
            if fate == "bounce":
                source.bounced(email, BOUNCE_REASON)
        url = self.targets["sendgrid"]
        delivery = sendgrid_events(mail, message_id, ("processed", "delivered"), fates)
        self._later(DELIVERY_DELAY, "sendgrid", url, delivery)
        self._later(OPEN_DELAY, "sendgrid", url, sendgrid_events(mail, message_id, ("open",), fates))

    def _braze(self, mail: dict[str, Any], reply: Reply, source: Any = None) -> None:
        # One postback per status of one dispatch (Braze's Transactional HTTP Event Postback; WIRE-FORMATS
        # §3.3): `sent` is in the send's own answer, `processed` and `delivered` (or `bounced`) come back here;
        # mail to an address Braze keeps from e-mail gets one `aborted` ("User not emailable") instead.
        body = reply.body if isinstance(reply.body, dict) else {}
        dispatch_id = body.get("dispatch_id")
        if not dispatch_id:
            return
        fate = source.fate(dispatch_id) if hasattr(source, "fate") else "delivered"
        steps: list[tuple[str, str | None]] = [("processed", None), ("delivered", None)]
        if fate == "bounce":
            steps = [("processed", None), ("bounced", BRAZE_BOUNCE_REASON)]
        elif fate.startswith("dropped"):
            steps = [("aborted", NOT_EMAILABLE)]
        metadata = dict(body.get("metadata") or {})
        url = self.targets["braze"]
        for status, reason in steps:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
            extra = {f"{status}_at": stamp, **({"reason": reason} if reason else {})}
            postback = {"dispatch_id": dispatch_id, "status": status, "metadata": {**metadata, **extra}}
            self._later(DELIVERY_DELAY, "braze", url, postback)

    def _infobip(self, mail: dict[str, Any], reply: Reply, source: Any = None) -> None:
        # Infobip posts each message's delivery report to the notifyUrl its send named, and opens to the
        # trackingUrl (Email API: delivery reports and tracking notifications; WIRE-FORMATS §4.5). A recipient
        # that bounced or was suppressed gets its report (devkit/sandbox/infobip.py) and no open.
        options = mail.get("options") if isinstance(mail.get("options"), dict) else {}
        bulk_id = ((options.get("schedule") or {}) if isinstance(options, dict) else {}).get("bulkId")
        tracking = (options.get("tracking") or {}) if isinstance(options, dict) else {}
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        for message in mail.get("messages") or []:
            if not isinstance(message, dict):
                continue
            hooks = message.get("webhooks") if isinstance(message.get("webhooks"), dict) else {}
            delivery_url = ((hooks.get("delivery") or {}) if isinstance(hooks, dict) else {}).get("url")
            targets = [t for group in message.get("destinations") or [] for t in (group.get("to") or [])]

            def fate(target: dict[str, Any]) -> str:
                found = source.fates(str(target.get("messageId"))) if hasattr(source, "fates") else {}
                return str(found.get(str(target.get("destination", "")).lower(), "delivered"))

            results = [
                {
                    "bulkId": bulk_id,
                    "messageId": t.get("messageId"),
                    "to": t.get("destination"),
                    "sentAt": now,
                    "doneAt": now,
                    **report_outcome(fate(t)),
                    "callbackData": hooks.get("callbackData") if isinstance(hooks, dict) else None,
                }
                for t in targets
                if isinstance(t, dict) and t.get("messageId")
            ]
            if delivery_url and results:
                self._later(DELIVERY_DELAY, "infobip", delivery_url, {"results": results})
            tracking_url = tracking.get("trackingUrl") if isinstance(tracking, dict) else None
            if tracking_url and tracking.get("trackOpens") is not False:
                for result in results:
                    if result["status"]["groupName"] != "DELIVERED":
                        continue  # no engagement with mail that never arrived
                    opened = {
                        "notificationType": "OPENED",
                        "eventId": secrets.token_hex(16),
                        "domain": str(result["to"]).rsplit("@", 1)[-1],
                        "recipient": result["to"],
                        "sendDateTime": int(time.time() * 1000),
                        "messageId": result["messageId"],
                        "bulkId": bulk_id,
                        "recipientInfo": {"deviceType": "Desktop", "os": "sandbox", "deviceName": "sandbox"},
                    }
                    self._later(OPEN_DELAY, "infobip", tracking_url, opened)

    def _later(self, delay: float, provider: str, url: str, events: Any) -> None:
        if events:
            timer = threading.Timer(delay, self._post, args=(provider, url, events))
            timer.daemon = True
            timer.start()

    def _post(self, provider: str, url: str, events: Any) -> None:
        body = json.dumps(events, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if provider == "sendgrid":
            body += b"\r\n"  # SendGrid's posts end with CRLF, and its signature covers it (WIRE-FORMATS §2)
            headers["User-Agent"] = "SendGrid Event API"
            if self._sign is not None:
                headers.update(self._sign(body))
        elif provider == "braze" and self._braze_secret:
            headers["X-Webhook-Token"] = self._braze_secret
        status = 0
        try:
            request = UrlRequest(url, data=body, method="POST", headers=headers)  # noqa: S310
            with urlopen(request, timeout=20) as answer:  # noqa: S310 - the local bridge
                status = answer.status
        except OSError as exc:
            # SendGrid retries failed posts for 24 hours; the sandbox only records that this one failed.
            status = getattr(exc, "code", 0) or 0
        with self._lock:
            self.posted.append({"provider": provider, "status": status, "events": events})


# A hard bounce as SendGrid reports it: `bounce` with type=bounce (KARTE's guide, seed 000: type=bounce is
# hard, type=blocked soft), an enhanced status and the receiving server's reply (Event Webhook reference).
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist."


def sendgrid_events(
    mail: dict[str, Any], message_id: str, kinds: tuple[str, ...], fates: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One event of each kind per recipient, shaped as SendGrid documents them: custom_args (top level and
    the personalization's) flattened into the event, sg_message_id = X-Message-Id + ".filter...".
    A recipient whose mail bounced gets `processed` + `bounce` instead of `delivered`, one on a suppression
    list only `dropped` (with its reason), and neither gets engagement events.
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
            fate = (fates or {}).get(str(email).lower(), "delivered")
            own_kinds: tuple[str, ...] = kinds
            if fate != "delivered":
                if "delivered" not in kinds:
                    continue  # no engagement with mail that never arrived
                own_kinds = ("processed", "bounce") if fate == "bounce" else ("dropped",)
            for kind in own_kinds:
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
                if kind == "bounce":
                    event.update(type="bounce", status="5.1.1", reason=BOUNCE_REASON)
                if kind == "dropped":
                    event["reason"] = DROP_REASONS.get(fate.partition(":")[2], "Bounced Address")
                if kind == "open":
                    event["useragent"] = "Mozilla/5.0 (sandbox)"
                    event["sg_machine_open"] = False
                events.append(event)
    return events
