"""SendFunction: `POST /mail/send` - one mail API in front of SendGrid, Braze and Infobip.

Authenticated, validated, deduplicated (Idempotency-Key or external_send_id, 24 h), gated by subscription
(KARTE's rules) before any provider is called, sent, and recorded; the answer gives every recipient's status."""

import hashlib
import json
import secrets as random_ids
import time
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge import secrets
from martech_bridge.adapters.providers import PROVIDERS
from martech_bridge.adapters.providers.base import Outbound, SendContext
from martech_bridge.api import build_resolver, json_response, parse_body, require_api_key
from martech_bridge.config import Settings, get_settings
from martech_bridge.dependencies import idempotency_store, message_store, subscription_store
from martech_bridge.errors import BridgeError, ConfigurationError, Conflict, InvalidRequest, Unprocessable
from martech_bridge.logic.event_auth import infobip_callback_token
from martech_bridge.logic.gate import decide
from martech_bridge.models.mail import Address, MailRequest, RecipientResult
from martech_bridge.observability import logger
from martech_bridge.sending import dispatch

app = build_resolver()
RESERVE_SECONDS = 4.0  # time kept back for recording the message after the provider calls


@app.post("/mail/send", middlewares=[require_api_key])
def send_mail() -> Response:
    settings = get_settings()
    request = parse_body(app, MailRequest)
    provider = PROVIDERS[request.provider or settings.default_provider]
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
    dispatch_id = _dispatch_id(key)
    logger.append_keys(dispatch_id=dispatch_id, provider=provider.name)
    if key is not None:
        earlier = idempotency_store().claim(f"send#{key}", request_hash)
        if earlier is not None:
            return _repeat(earlier.request_hash == request_hash, earlier.done, earlier.status_code, earlier.body)
    called = False
    try:
        api_key = secrets.resolve(
            f"{provider.name}_api_key",
            getattr(settings, f"{provider.name}_api_key"),
            allow_plaintext=settings.allow_plaintext_secrets,
        )
        if not api_key:
            raise ConfigurationError(f"{provider.label} is not configured: {provider.name.upper()}_API_KEY is empty")
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
        if outbound:
            ctx = SendContext(
                dispatch_id=dispatch_id,
                request=request,
                sender=sender,
                reply_to=reply_to,
                api_key=api_key,
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
            called = True
            for call in dispatch(provider, ctx, [o for _, o in outbound], deadline):
                failure = failure or call.failure
                for result in call.results:
                    results[int(result.message_id.rsplit(".", 1)[1])] = result
        ordered = [results[i] for i in range(len(request.to))]
        status = _overall(ordered)
        message_store().save(dispatch_id, provider.name, request, ordered, status)
    except BridgeError:
        if key is not None and not called:
            idempotency_store().release(f"send#{key}")  # nothing went out: let the caller try again
        raise
    body: dict[str, Any] = {
        "dispatch_id": dispatch_id,
        "provider": provider.name,
        "status": status,
        "recipients": [r.model_dump(exclude_none=True) for r in ordered],
    }
    code = 202
    if status == "failed" and failure is not None:
        code = 502
        kind = {"auth": "provider_auth_failed", "rejected": "provider_rejected", "retry": "provider_unavailable"}
        body = {
            "error": {
                "code": kind[failure.kind],
                "message": ordered[next(i for i, _ in outbound)].reason,
                "provider_status": failure.status,
                "provider_field": failure.error_field,
                "provider_message": failure.message if failure.kind != "auth" else None,
            }
            | {"dispatch_id": dispatch_id, "recipients": body["recipients"]}
        }
        body["error"] = {k: v for k, v in body["error"].items() if v is not None}
    if key is not None:
        idempotency_store().finish(f"send#{key}", code, body)
    logger.info("Mail handled", extra={"status": status, "recipients": len(ordered)})
    return json_response(code, body)


def _overall(results: list[RecipientResult]) -> str:
    statuses = {r.status for r in results}
    if statuses <= {"accepted"}:
        return "accepted"
    if "accepted" in statuses:
        return "partial"
    if "unknown" in statuses:
        return "unknown"
    if "failed" in statuses:
        return "failed"
    return "not_sent"  # every recipient suppressed or invalid


def _repeat(same_body: bool, done: bool, status_code: int | None, body: dict[str, Any] | None) -> Response:
    if not same_body:
        raise Unprocessable("This idempotency key was used for a different request", code="idempotency_key_reused")
    if not done or status_code is None or body is None:
        error = Conflict(
            "The first request with this idempotency key is still being sent", code="idempotency_in_progress"
        )
        return json_response(409, error.body(), {"Retry-After": "2", "Idempotency-Replay": "true"})
    return json_response(status_code, body, {"Idempotency-Replay": "true"})


def _default_sender(settings: Settings) -> Address:
    if not settings.default_from_email:
        raise InvalidRequest("from is required (no DEFAULT_FROM_EMAIL is configured)", field="from")
    return Address(email=settings.default_from_email, name=settings.default_from_name or None)


def _dispatch_id(key: str | None) -> str:
    if key:
        return "d_" + hashlib.sha256(f"send\x00{key}".encode()).hexdigest()[:24]
    return f"d_{int(time.time() * 1000):012x}{random_ids.token_hex(6)}"


def _callback_token(settings: Settings, dispatch_id: str) -> str:
    """Infobip's callbacks carry this; /events/infobip recomputes it from the same secret."""
    secret = secrets.resolve(
        "infobip_webhook_secret", settings.infobip_webhook_secret, allow_plaintext=settings.allow_plaintext_secrets
    )
    return infobip_callback_token(secret, dispatch_id) if secret else ""


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
