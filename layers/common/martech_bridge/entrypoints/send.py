"""SendFunction: `POST /mail/send` - one mail API in front of SendGrid, Braze and Infobip.

Authenticated, validated, deduplicated (Idempotency-Key or external_send_id, 24 h), gated by subscription
(KARTE's rules) before any provider is called, sent, and recorded; the answer gives every recipient's status."""

import hashlib
import json
import secrets as random_ids
import time
from datetime import UTC, datetime
from typing import Any

import msgspec.structs
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge import quotas, secrets
from martech_bridge.adapters.idempotency_store import Claimed
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.adapters.providers.base import Outbound, Provider, ProviderAnswer, ProviderCall, SendContext
from martech_bridge.adapters.send_queue import SendQueue
from martech_bridge.api import Response, build_resolver, json_response, parse_body, require_api_key
from martech_bridge.config import Settings, get_settings, load_bridge_config
from martech_bridge.dependencies import idempotency_store, message_store, quota_store, subscription_store
from martech_bridge.errors import (
    BridgeError,
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    PayloadTooLarge,
    Unprocessable,
)
from martech_bridge.logic.event_auth import infobip_callback_token
from martech_bridge.logic.gate import decide
from martech_bridge.models.mail import RECIPIENT_STATUSES, Address, MailRequest, RecipientResult
from martech_bridge.models.routes import ProviderSending
from martech_bridge.observability import count, logger
from martech_bridge.sending import CallResult, api_key, count_outcomes, dispatch, not_queued, not_resent, record
from martech_bridge.sent_mail import queue_sent

app = build_resolver()
RESERVE_SECONDS = 4.0  # time kept back for recording the message after the provider calls


@app.post("/mail/send", middlewares=[require_api_key])
def send_mail() -> Response:
    settings = get_settings()
    request = parse_body(app, MailRequest)
    provider = PROVIDERS[request.provider or settings.default_provider]
    oversized = request.oversized()
    if oversized:  # before any provider call: a record too big to write would mean a second send
        raise PayloadTooLarge(oversized[1], code="payload_too_large", field=oversized[0])
    provider.validate(request)
    sender = request.sender or _default_sender(settings)
    reply_to = request.reply_to or (Address(email=settings.default_reply_to) if settings.default_reply_to else None)
    header_key = app.current_event.headers.get("idempotency-key")
    key = header_key or request.external_send_id
    if key is not None and len(key) > 256:
        raise InvalidRequest("Idempotency-Key is longer than 256 characters", field="Idempotency-Key")
    request_hash = hashlib.sha256(
        json.dumps(request.model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    dispatch_id = _new_dispatch_id()  # never derived from the key: a key reused after its window is a new send
    resumed: str | None = None  # the phase an abandoned first attempt with this key had reached
    if key is not None:
        earlier = idempotency_store().claim(f"send#{key}", request_hash, dispatch_id)
        if earlier is not None:
            if earlier.request_hash != request_hash:
                raise Unprocessable(
                    "This idempotency key was used for a different request", code="idempotency_key_reused"
                )
            if earlier.done:
                replayed = _replay(key, earlier)
                _record_sent(earlier.dispatch_id, provider.name, request, earlier.status_code, earlier.body)
                return replayed
            if not (earlier.stale and earlier.dispatch_id and idempotency_store().take_over(f"send#{key}", earlier)):
                return _in_progress()
            dispatch_id, resumed = earlier.dispatch_id, earlier.phase
            logger.info("Taking over an abandoned send", extra={"dispatch_id": dispatch_id, "phase": resumed})
            if message_store().exists(dispatch_id):  # it got as far as its records: answer from them
                code, body = _answer_from_records(dispatch_id, provider.name)
                _record_sent(dispatch_id, provider.name, request, code, body)
                return _finish(key, code, body)
    logger.append_keys(dispatch_id=dispatch_id, provider=provider.name)
    called = False
    deferred: list[ProviderCall] = []
    reservation: quotas.Reservation | None = None
    try:
        states = subscription_store().states([r.email for r in request.to if r.email])
        results: dict[int, RecipientResult] = {}
        outbound: list[tuple[int, Outbound]] = []
        for i, recipient in enumerate(request.to):
            message_id = f"{dispatch_id}.{i}"
            decision = decide(
                recipient.email,
                states.get(recipient.email or ""),
                transactional=request.transactional,
                unknown_subscribed=settings.unknown_recipients == "subscribed",
            )
            if decision.verdict == "send":
                outbound.append((i, Outbound(recipient, message_id)))
            else:
                results[i] = RecipientResult(
                    email=recipient.email, message_id=message_id, status=decision.verdict, reason=decision.reason
                )
        failure = None
        calls: list[CallResult] = []
        sending = load_bridge_config().sending
        spec = sending.providers.get(provider.name)  # type: ignore[call-overload]
        now = datetime.now(UTC)
        # Counted before the call (all or none of the recipients), so two sends cannot both pass the limit. A
        # take-over of a send that reached `calling` was counted by its first attempt.
        counted = outbound and resumed != "calling"
        reservation = quotas.reserve(quota_store(), provider.name, spec, len(outbound), now) if counted else None
        failover: tuple[Provider, list[CallResult], quotas.Reservation | None] | None = None
        if outbound and resumed == "calling" and not provider.dedupes:
            calls = [CallResult(not_resent(provider, [o for _, o in outbound]))]
        elif outbound:
            ctx = SendContext(
                dispatch_id=dispatch_id,
                request=request,
                sender=sender,
                reply_to=_reply_to(settings, request, dispatch_id) or reply_to,
                api_key=api_key(settings, provider),
                base_url=getattr(settings, f"{provider.name}_base_url"),
                public_base_url=settings.public_base_url,
                callback_token=_callback_token(settings, dispatch_id),
                sandbox_mode=settings.sendgrid_sandbox_mode,
                timeout=settings.provider_timeout_seconds,
            )
            deadline = time.monotonic() + min(
                settings.send_deadline_seconds,
                app.lambda_context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS,
            )
            if key is not None:
                idempotency_store().calling(f"send#{key}")
            called = True
            first_deadline = deadline
            if sending.fallback() not in (None, provider.name):
                # Half the time is kept for the fallback: a first provider that refuses connections is retried
                # only until then.
                first_deadline = time.monotonic() + (deadline - time.monotonic()) / 2
            calls = dispatch(
                provider,
                ctx,
                [o for _, o in outbound],
                first_deadline,
                settings.send_concurrency,
                may_have_sent=resumed == "calling",
            )
            fallback_name = sending.fallback()
            fb_spec = sending.providers.get(fallback_name) if fallback_name else None  # type: ignore[call-overload]
            failover = _failover(settings, fallback_name, fb_spec, provider, ctx, calls, outbound, deadline, now)
        deferred = [c.deferred for c in calls if c.deferred is not None]
        refused = _send_queue(settings).defer(dispatch_id, provider.name, deferred) if deferred else []
        for call in calls:
            if failover is not None and call.never_left:
                continue  # its recipients went to the fallback
            failure = failure or call.failure
            chosen = not_queued(provider, call.deferred) if call.deferred in refused else call.results
            for result in chosen:
                results[int(result.message_id.rsplit(".", 1)[1])] = result
        if failover is not None:
            fallback, fallback_calls, fb_reservation = failover
            fb_deferred = [c.deferred for c in fallback_calls if c.deferred is not None]
            fb_refused = _send_queue(settings).defer(dispatch_id, fallback.name, fb_deferred) if fb_deferred else []
            count_outcomes(fallback, [r for c in fallback_calls for r in c.results])
            for call in fallback_calls:
                failure = failure or call.failure
                chosen = not_queued(fallback, call.deferred) if call.deferred in fb_refused else call.results
                for result in chosen:
                    reason = f"sent through {fallback.label}: {provider.label} refused before accepting anything"
                    results[int(result.message_id.rsplit(".", 1)[1])] = result.model_copy(
                        update={"provider": fallback.name, "reason": result.reason or reason}
                    )
        ordered = [results[i] for i in range(len(request.to))]
        status = _overall(ordered)
        count_outcomes(provider, [results[i] for i, _ in outbound if not results[i].provider])
        # What provably never left is handed back to the quota; what was accepted, queued or may have left stays.
        quotas.refund(
            quota_store(),
            reservation,
            sum(1 for i, _ in outbound if results[i].status == "failed" or results[i].provider),
        )
        if failover is not None:  # the fallback's own quota: what it provably never sent is handed back too
            quotas.refund(
                quota_store(),
                failover[2],
                sum(1 for i, _ in outbound if results[i].provider and results[i].status == "failed"),
            )
    except BridgeError:
        if not called:  # nothing went out: hand the count back and let the caller try again
            quotas.refund(quota_store(), reservation, reservation.n if reservation else 0)
            if key is not None:
                idempotency_store().release(f"send#{key}")
        raise
    code, body = _answer(dispatch_id, provider.name, status, ordered, failure, outbound)
    head = MessageStore.head(request)
    save_by = time.monotonic() + max(1.0, app.lambda_context.get_remaining_time_in_millis() / 1000 - 2.0)
    if record(message_store(), dispatch_id, provider.name, head, ordered, status, save_by, fresh=resumed is None):
        queue_sent(dispatch_id, provider.name, request, ordered, datetime.now(UTC))
        if key is not None:
            _keep(key, code, body)
    elif key is not None and called:
        # The provider has it: keep the answer and what is left to write, so a repeat with the key gets the
        # answer and writes the records - never a 503 that invites a second send, never a 409 for 24 h.
        _keep(
            key,
            code,
            body,
            {"provider": provider.name, "head": head, "status": status, "results": [r.model_dump() for r in ordered]},
        )
    elif called:
        raise DependencyUnavailable(
            "The mail was handed to the provider but the bridge could not record it; do not send it again",
            code="outcome_not_recorded",
            dispatch_id=dispatch_id,
            recipients=[r.answer() for r in ordered],
        )
    else:
        raise DependencyUnavailable("Message store is unavailable")
    logger.info("Mail handled", extra={"status": status, "recipients": len(ordered)})
    quotas.warn(
        quota_store(), reservation, spec, lambda subject, text: _notify(settings, provider, spec, subject, text), now
    )
    if failover is not None:
        fallback, _, fb_reservation = failover
        fb_spec = load_bridge_config().sending.providers.get(fallback.name)  # type: ignore[call-overload]
        quotas.warn(
            quota_store(),
            fb_reservation,
            fb_spec,
            lambda subject, text: _notify(settings, fallback, fb_spec, subject, text),
            now,
        )
    return json_response(code, body)


def _failover(
    settings: Settings,
    fallback_name: str | None,
    fb_spec: ProviderSending | None,
    provider: Provider,
    ctx: SendContext,
    calls: list[CallResult],
    outbound: list[tuple[int, Outbound]],
    deadline: float,
    now: datetime,
) -> tuple[Provider, list[CallResult], quotas.Reservation | None] | None:
    """The recipients whose calls provably never left, sent through the fallback provider (never after an
    ambiguous timeout: those are `unknown`, and a second provider could mail them twice), counted against the
    fallback's own quota; a fallback past its quota, or one that cannot take the mail, leaves them `failed`."""
    if not fallback_name or fallback_name == provider.name or not any(c.never_left for c in calls):
        return None
    fallback = PROVIDERS[fallback_name]
    ids = {r.message_id for c in calls if c.never_left for r in c.results}
    again = [o for _, o in outbound if o.message_id in ids]
    try:
        fallback.validate(ctx.request)
        key = api_key(settings, fallback)
        reservation = quotas.reserve(quota_store(), fallback.name, fb_spec, len(again), now)
    except BridgeError as exc:
        logger.warning("Fallback provider cannot take this mail", extra={"fallback": fallback_name, "why": exc.code})
        return None
    fb_ctx = msgspec.structs.replace(ctx, api_key=key, base_url=getattr(settings, f"{fallback.name}_base_url"))
    logger.warning("Failing over", extra={"fallback": fallback_name, "recipients": len(again)})
    count("SendsFailedOver", len(again), provider=provider.name)
    return fallback, dispatch(fallback, fb_ctx, again, deadline, settings.send_concurrency), reservation


def _notify(settings: Settings, provider: Provider, spec: ProviderSending | None, subject: str, text: str) -> bool:
    """A quota warning to the notification address through the same provider (not counted against the quota,
    not recorded as a message). Braze sends only through a campaign, so it cannot carry one: logged instead."""
    if spec is None or not spec.notify or provider.name == "braze" or not settings.default_from_email:
        return False
    request = MailRequest.model_validate({"to": [{"email": spec.notify}], "subject": subject, "text": text})
    try:  # the send it warns about is done and answered: nothing here may turn that into an error
        ctx = SendContext(
            dispatch_id=_new_dispatch_id(),
            request=request,
            sender=_default_sender(settings),
            reply_to=None,
            api_key=api_key(settings, provider),
            base_url=getattr(settings, f"{provider.name}_base_url"),
            timeout=settings.provider_timeout_seconds,
        )
    except BridgeError:
        return False
    outcome = dispatch(provider, ctx, [Outbound(request.to[0], f"{ctx.dispatch_id}.0")], time.monotonic() + 5)
    return all(r.status == "accepted" for c in outcome for r in c.results)


def _answer(
    dispatch_id: str,
    provider: str,
    status: str,
    ordered: list[RecipientResult],
    failure: ProviderAnswer | None,
    outbound: list[tuple[int, Outbound]],
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "dispatch_id": dispatch_id,
        "provider": provider,
        "status": status,
        "recipients": [r.answer() for r in ordered],
    }
    if status != "failed" or failure is None:
        return 202, body
    kind = {"auth": "provider_auth_failed", "rejected": "provider_rejected", "retry": "provider_unavailable"}
    error = {
        "code": kind[failure.kind],
        "message": ordered[next(i for i, _ in outbound)].reason,
        "provider_status": failure.status,
        "provider_field": failure.error_field,
        "provider_message": failure.message if failure.kind != "auth" else None,
        "dispatch_id": dispatch_id,
        "recipients": body["recipients"],
    }
    return 502, {"error": {k: v for k, v in error.items() if v is not None}}


def _keep(key: str, code: int, body: dict[str, Any], unsaved: dict[str, Any] | None = None) -> None:
    """The answer into the idempotency record. If that write fails the claim stays unfinished, and once its
    lease runs out a repeat takes it over and finds the records (or, unsaved, resends only where safe)."""
    try:
        idempotency_store().finish(f"send#{key}", code, body, unsaved)
    except DependencyUnavailable:
        if unsaved is not None:
            raise
        logger.warning("Answer not kept for the idempotency key; a repeat will rebuild it from the records")


def _finish(key: str, code: int, body: dict[str, Any]) -> Response:
    _keep(key, code, body)
    return json_response(code, body, {"Idempotency-Replay": "true"})


def _replay(key: str, earlier: Claimed) -> Response:
    if earlier.unsaved is not None and earlier.dispatch_id:  # the first could not write its records: do it now
        u = earlier.unsaved
        results = [RecipientResult.model_validate(r) for r in u["results"]]
        message_store().save(earlier.dispatch_id, u["provider"], u["head"], results, u["status"], fresh=False)
        idempotency_store().saved(f"send#{key}")
    return json_response(earlier.status_code or 202, earlier.body or {}, {"Idempotency-Replay": "true"})


def _answer_from_records(dispatch_id: str, provider: str) -> tuple[int, dict[str, Any]]:
    items = sorted(message_store().recipients(dispatch_id), key=lambda i: int(str(i["message_id"]).rsplit(".")[1]))
    ordered = [
        RecipientResult.model_validate(
            {k: i.get(k) for k in RecipientResult.model_fields if k in i and k != "provider"}
            | {"email": i.get("email")}
            # A recipient's own provider is named only when a fallback sent it.
            | ({"provider": i["provider"]} if i.get("provider") not in (None, provider) else {})
            # Events move a recipient on (delivered, bounced, failed..., with a status_rank) only after its
            # provider took it: the send's answer says so, as the first attempt's did.
            | ({"status": "accepted"} if "status_rank" in i or i.get("status") not in RECIPIENT_STATUSES else {})
        )
        for i in items
    ]
    return 202, {
        "dispatch_id": dispatch_id,
        "provider": provider,
        "status": _overall(ordered),
        "recipients": [r.answer() for r in ordered],
    }


def _record_sent(
    dispatch_id: str | None, provider: str, request: MailRequest, code: int | None, body: dict[str, Any] | None
) -> None:
    """A repeat of a send queues its sent-mail records again: a crash of the first between its message
    records and its sink deliveries loses nothing (the delivery ids are the same, so nothing doubles)."""
    if not dispatch_id or code != 202 or not body or not load_bridge_config().sinks_for("sent_mail"):
        return
    try:
        results = [RecipientResult.model_validate(r) for r in body.get("recipients") or []]
    except ValueError:
        return
    queue_sent(dispatch_id, provider, request, results, datetime.now(UTC))


def _in_progress() -> Response:
    error = Conflict("The first request with this idempotency key is still being sent", code="idempotency_in_progress")
    return json_response(409, error.body(), {"Retry-After": "2", "Idempotency-Replay": "true"})


def _send_queue(settings: Settings) -> SendQueue:
    return SendQueue(settings.require("send_queue_url"))


def _overall(results: list[RecipientResult]) -> str:
    statuses = {r.status for r in results}
    if statuses <= {"accepted", "pending"}:  # pending: safely queued by the bridge, sent shortly
        return "accepted"
    if statuses & {"accepted", "pending"}:
        return "partial"
    if "unknown" in statuses:
        return "unknown"
    if "failed" in statuses:
        return "failed"
    return "not_sent"  # every recipient suppressed or invalid


def _default_sender(settings: Settings) -> Address:
    if not settings.default_from_email:
        raise InvalidRequest("from is required (no DEFAULT_FROM_EMAIL is configured)", field="from")
    return Address(email=settings.default_from_email, name=settings.default_from_name or None)


def _reply_to(settings: Settings, request: MailRequest, dispatch_id: str) -> Address | None:
    """With REPLY_DOMAIN set, replies come back to reply+<dispatch id>@<domain> (the inbound path ties them
    to this send), unless the caller chose its own reply-to."""
    if not settings.reply_domain or request.reply_to is not None:
        return None
    return Address(email=f"reply+{dispatch_id}@{settings.reply_domain}")


def _new_dispatch_id() -> str:
    return f"d_{int(time.time() * 1000):012x}{random_ids.token_hex(6)}"


def _callback_token(settings: Settings, dispatch_id: str) -> str:
    """Infobip's callbacks carry this; /events/infobip recomputes it from the same secret."""
    secret = secrets.resolve(
        "infobip_webhook_secret", settings.infobip_webhook_secret, allow_plaintext=settings.allow_plaintext_secrets
    )
    return infobip_callback_token(secret, dispatch_id) if secret else ""


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
