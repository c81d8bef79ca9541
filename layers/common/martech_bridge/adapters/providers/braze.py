"""Braze transactional e-mail, `/transactional/v1/campaigns/{campaign_id}/send`: one call per recipient
(the endpoint takes one), `template_id` is the campaign's API id, template data and recipient data become
`trigger_properties` (at most 50 KB). The recipient is the caller's `user_id` (external_user_id) or the
`user_alias` the caller names: the endpoint takes only these two, and an address used as an id would create
a second, e-mail-keyed profile. Every call carries an `external_send_id`, which Braze deduplicates for 24 h:
a call that timed out is sent again, and Braze's "has been queued" answer to it means the first one was
accepted (WIRE-FORMATS 3.2), so the recipient is `accepted`, never `failed`."""

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from martech_bridge.adapters.providers.base import (
    CLEARED,
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
from martech_bridge.errors import InvalidRequest
from martech_bridge.logic.delivery import parse_retry_after
from martech_bridge.models.mail import MailRequest

MAX_TRIGGER_PROPERTIES = 50 * 1024
# Braze's troubleshooting table has two spaces after the first full stop; match the stable part only.
QUEUED = "has been queued"


def _listed(response: TargetResponse) -> bool:
    """False only for a readable answer listing no address; anything else is taken as listed, pessimistically
    (the removal that follows is idempotent, and making it is what releasing means)."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("emails"), list):
        return bool(body["emails"])
    return True


class Braze:
    name = "braze"
    label = "Braze"
    dedupes = True

    def auth(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def validate(self, request: MailRequest) -> None:
        if not request.template_id:
            raise InvalidRequest(
                "Braze sends through a transactional campaign: give its API id as template_id",
                code="validation_error",
                field="template_id",
            )
        if request.attachments:
            raise InvalidRequest(
                "Braze's transactional API takes no attachments", code="validation_error", field="attachments"
            )
        for i, recipient in enumerate(request.to):
            if recipient.email and not (recipient.user_id or recipient.user_alias):
                raise InvalidRequest(
                    "Braze needs the recipient's user_id (its external_user_id) or a user_alias; the bridge never"
                    " uses the address as an id, which would create a second profile",
                    code="validation_error",
                    field=f"to.{i}.user_id",
                )
            # Braze does not say how it counts the 50 KB: the pessimistic reading, as its sandbox takes it, is the
            # JSON with every non-ASCII character escaped (a six-byte \\u escape), the largest form it may measure.
            size = len(json.dumps({**request.template_data, **recipient.data}).encode())
            if size > MAX_TRIGGER_PROPERTIES:
                raise InvalidRequest(
                    f"trigger properties for recipient {i} are {size} bytes; Braze allows 50 KB",
                    code="validation_error",
                    field=f"to.{i}.data",
                )

    def release_steps(self, email: str, ctx: ReleaseContext) -> list[ReleaseStep]:
        """Braze keeps an address from e-mail three ways, each released in turn (braze-inc/braze-docs
        `_docs/_api/endpoints/email/`; the bodies are the pages' `{"email": "..."}`, one address):

        * hard bounces: "Braze will mark the user's email address as invalid and will not attempt to send any
          further emails to that email address" (`_docs/_user_guide/message_building_by_channel/email/
          best_practices/managing_email_subscriptions.md`). Asked first with `GET /email/hard_bounces?email=
          &end_date=` (`get_list_hard_bounces.md`: "You must provide an end_date, and either an email or a
          start_date"; with an email the range is disregarded) -> `{"emails": [{"email", "hard_bounced_at"}]}`,
          then `POST /email/bounce/remove` (`post_remove_hard_bounces.md`), which also clears the bounce list of
          Braze's own e-mail provider.
        * spam reports: `POST /email/spam/remove` (`post_remove_spam.md`; also the provider's spam list). Braze
          documents no query of its spam list, so it is cleared without a look: `cleared`, not `removed`,
          since nothing says the address was on it.
        * subscription state: `GET /email/unsubscribes?email=&end_date=` (`get_query_unsubscribed_email_
          addresses.md`: "You must provide an end_date, as well as either an email or a start_date") ->
          `{"emails": [{"email", "unsubscribed_at"}]}`, and only for an unsubscribed user `POST /email/status`
          {"email", "subscription_state": "subscribed"} (`post_email_subscription_status.md`). Setting it
          blindly would turn an `opted_in` user (our flag may have come from a SendGrid bounce) into a merely
          `subscribed` one; "subscribed" is the state of a user who has neither opted in nor out, and
          re-subscribing through the bridge is not an explicit opt-in.

        Spam comes before the state: a spam report unsubscribes the user (same page, older revisions).
        `end_date` is tomorrow (UTC): the query's dates are "treated as midnight in UTC", so a range that
        ended today would miss today's bounces if Braze applied it to an e-mail query after all - a silent
        miss (the address stays dropped), where a refusal of a future date (undocumented either way) would be
        a loud one: `failed (HTTP 400)` in the answer and the history."""
        end_date = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
        query = urlencode({"email": email, "end_date": end_date})
        reading = {**self.auth(ctx.api_key), "Accept": "application/json"}
        writing = {**self.auth(ctx.api_key), "Content-Type": "application/json"}

        def get(path: str) -> TargetRequest:
            url = f"{ctx.base_url}{path}?{query}"
            return TargetRequest("GET", url, reading, None, ctx.timeout, True, frozenset({"Authorization"}))

        def post(path: str, body: dict[str, str]) -> TargetRequest:
            return TargetRequest(
                "POST",
                f"{ctx.base_url}{path}",
                writing,
                json.dumps(body).encode(),
                ctx.timeout,
                True,
                frozenset({"Authorization"}),
            )

        return [
            ReleaseStep(
                "hard_bounces",
                remove=post("/email/bounce/remove", {"email": email}),
                check=get("/email/hard_bounces"),
                listed=_listed,
            ),
            ReleaseStep("spam", remove=post("/email/spam/remove", {"email": email}), done=CLEARED),
            ReleaseStep(
                "email_subscription",
                remove=post("/email/status", {"email": email, "subscription_state": "subscribed"}),
                check=get("/email/unsubscribes"),
                listed=_listed,
                done="subscribed",
            ),
        ]

    def calls(self, ctx: SendContext, recipients: Sequence[Outbound]) -> list[ProviderCall]:
        request = ctx.request
        out = []
        for one in recipients:
            r = one.recipient
            identity: dict[str, Any] = (
                {"user_alias": r.user_alias.model_dump()} if r.user_alias else {"external_user_id": r.user_id}
            )
            body = {
                "external_send_id": _external_send_id(request.external_send_id, one, len(recipients)),
                "trigger_properties": {**request.template_data, **r.data},
                "recipient": {**identity, "attributes": {**r.attributes, "email": r.email}},
            }
            http = TargetRequest(
                method="POST",
                url=f"{ctx.base_url}/transactional/v1/campaigns/{quote(request.template_id or '', safe='')}/send",
                headers={"Authorization": f"Bearer {ctx.api_key}", "Content-Type": "application/json"},
                body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                timeout=ctx.timeout,
                idempotent=True,
                secret_headers=frozenset({"Authorization"}),
            )
            out.append(ProviderCall(http, [one], retry_safe=True))
        return out

    def events(self, payload: Any, received_at: datetime | None = None) -> list[Any]:
        return braze_events(payload)

    def read(self, call: ProviderCall, response: TargetResponse) -> ProviderAnswer:
        body = response.json()
        kind = classify(response.status)
        if kind == "accepted" and isinstance(body, dict) and body.get("dispatch_id"):
            return ProviderAnswer(
                "accepted",
                response.status,
                provider_ids={call.recipients[0].message_id: str(body["dispatch_id"])},
                raw=body,
            )
        message = body.get("message") if isinstance(body, dict) else None
        if isinstance(message, str) and QUEUED in message:
            # This external_send_id was accepted within 24 h (by this call's first attempt, which timed out):
            # the mail is on its way. Its HTTP status is undocumented, so the text decides, whatever the status.
            return ProviderAnswer(
                "accepted",
                response.status,
                message="Braze had already accepted this external_send_id; its dispatch_id comes with the postbacks",
                raw=body,
                deduplicated=True,
            )
        if kind == "accepted":  # a 2xx without a dispatch id: Braze's non-fatal error envelope
            kind, message = "rejected", message or "Braze answered without a dispatch_id"
        wait = rate_limit_wait(response.headers)
        if wait is None:  # named only on Braze's Messaging API rate-limit page, read in case it comes
            wait = parse_retry_after(response.headers.get("X-RateLimit-Retry-After"))
        return ProviderAnswer(kind, response.status, message=message, retry_after=wait, raw=body)


_DERIVED = re.compile(r"^(d_[0-9a-f]{24})-(\d+)$")


def _our_ids(external_send_id: str | None) -> dict[str, str]:
    """Our dispatch and message ids, when the external_send_id is one the bridge derived from them: a
    postback then finds its recipient even when the send only got Braze's "has been queued" answer and
    so never learnt the dispatch_id."""
    found = _DERIVED.match(external_send_id or "")
    return {"dispatch_id": found.group(1), "message_id": f"{found.group(1)}.{found.group(2)}"} if found else {}


def _external_send_id(given: str | None, one: Outbound, count: int) -> str:
    """The caller's external_send_id for a single recipient; otherwise one per recipient, derived from it or
    from our message id (both match Braze's /^[a-zA-Z0-9-_+\\/=]+$/)."""
    if given and count == 1:
        return given
    suffix = one.message_id.rsplit(".", 1)[-1]
    return f"{given}-{suffix}" if given else one.message_id.replace(".", "-")


# ---------------------------------------------------------------------------------------- events
# Braze postback status -> normalised type (WIRE-FORMATS 3.3): `sent` (handed to the sending partner) and
# `processed` (the partner accepted it, the stage of SendGrid's `processed`) are both still queued; only
# `delivered` and `bounced` are the inbox provider's answer, and `bounced` is terminal.
_POSTBACK_TYPES = {
    "sent": "queued",
    "processed": "queued",
    "delivered": "delivered",
    "bounced": "bounced",
    "aborted": "aborted",
}
# An SMTP reply code (`452`) or enhanced status code (`4.2.2`) anywhere in the reason.
_SMTP_CODE = re.compile(r"(?<![\d.])([245])(?:\d\d|\.\d{1,3}\.\d{1,3})(?![\d])")


def bounce_class(reason: str | None) -> str | None:
    """Braze has no soft-bounce status (WIRE-FORMATS 3.3): a 4xx / 4.x.x code anywhere in the reason is
    soft, a 5xx / 5.x.x code hard, and a reason without a code is neither (it suppresses no one)."""
    codes = {m.group(1) for m in _SMTP_CODE.finditer(reason or "")}
    if "4" in codes:
        return "soft"
    if "5" in codes:
        return "hard"
    return None


def braze_events(payload: Any) -> list[Any]:
    """A Braze transactional postback (one status of one dispatch) as a normalised event. Braze sends no
    address: the recipient is found through the dispatch id."""
    from martech_bridge.logic import event_parsing as p
    from martech_bridge.models.events import EventType, NormalizedEvent, RejectedEvent

    try:
        if not isinstance(payload, dict):
            raise p.Unreadable("a Braze postback is a JSON object")
        dispatch, status = p.text(payload.get("dispatch_id")), p.text(payload.get("status"))
        if not dispatch or not status:
            raise p.Unreadable("postback needs dispatch_id and status")
        metadata = p.obj(payload.get("metadata"))
        stamp = metadata.get(f"{status}_at") or metadata.get("executed_at") or metadata.get("received_at")
        reason = p.text(metadata.get("reason"))
        ours = _our_ids(p.text(metadata.get("external_send_id")))
        return [
            NormalizedEvent(
                provider="braze",
                event_id=f"{dispatch}:{status}",
                event_type=EventType(_POSTBACK_TYPES.get(status, "unknown")),
                provider_event=status,
                timestamp=p.iso(stamp),
                provider_message_id=dispatch,
                dispatch_id=ours.get("dispatch_id"),
                message_id=ours.get("message_id"),
                external_send_id=p.text(metadata.get("external_send_id")),
                bounce=bounce_class(reason) if status == "bounced" else None,  # type: ignore[arg-type]
                description=reason,
                mta_response=reason if status == "bounced" else None,
                raw=payload,
            )
        ]
    except (p.Unreadable, ValueError) as exc:
        return [RejectedEvent(provider="braze", reason=str(exc), raw=payload)]
