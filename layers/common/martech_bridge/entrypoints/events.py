"""EventsFunction: `POST /events/{provider}` - verify, enqueue the raw post, answer 2xx fast.

Nothing heavy runs here: no normalising, no DynamoDB. A 2xx means the post is in SQS (or S3 with a pointer
in SQS); the event worker does the rest. Every provider's endpoint fails closed: without its key or secret
it refuses everything (401), unless INSECURE_ACCEPT_UNSIGNED_EVENTS is on."""

from functools import cache
from typing import Any

# What verify_sendgrid needs, loaded at INIT rather than in the first SendGrid post (logic/event_auth.py
# imports it only when called: only this function's artifact carries cryptography).
import cryptography.hazmat.primitives.asymmetric.ec  # noqa: F401
import cryptography.hazmat.primitives.serialization  # noqa: F401
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge import secrets
from martech_bridge.adapters.event_queue import event_queue
from martech_bridge.api import Response, build_resolver, json_response, raw_body
from martech_bridge.config import Settings, get_settings
from martech_bridge.errors import InvalidRequest, NotFound, Unauthorized
from martech_bridge.logic import strict_json
from martech_bridge.logic.event_auth import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    EventAuthFailure,
    infobip_callback_token,
    matches_any,
    verify_sendgrid,
)
from martech_bridge.observability import logger, metrics

app = build_resolver()
PROVIDERS = ("sendgrid", "braze", "infobip")


@cache
def _start_report() -> bool:
    """Once per container: which endpoints refuse everything, and whether verification is switched off."""
    settings = get_settings()
    unset = [
        name
        for name, value in (
            ("sendgrid", settings.sendgrid_webhook_public_keys),
            ("braze", settings.braze_postback_secret),
            ("infobip", settings.infobip_webhook_secret),
        )
        if not value
    ]
    if settings.insecure_accept_unsigned_events:
        logger.warning(
            "INSECURE_ACCEPT_UNSIGNED_EVENTS is on: posts to endpoints without a key or secret are accepted unverified",
            extra={"unverified_endpoints": unset},
        )
    elif unset:
        logger.warning("Event endpoints without a key or secret refuse every post", extra={"refusing": unset})
    return True


@app.post("/events/<provider>")
def receive(provider: str) -> Response:
    if provider not in PROVIDERS:
        raise NotFound(
            f"No event endpoint for {provider!r}; use one of {', '.join(PROVIDERS)}", code="unknown_provider"
        )
    logger.append_keys(provider=provider)
    settings = get_settings()
    body = raw_body(app)
    # Authenticate before parsing: an anonymous caller's body is never parsed.
    try:
        scope = _verify(provider, settings, body)
    except EventAuthFailure as failure:
        metrics.add_metric(name="EventPostsRejectedAuth", unit=MetricUnit.Count, value=1)
        raise Unauthorized(str(failure)) from None
    try:
        payload = strict_json.loads(body) if body.strip() else None
    except strict_json.JsonRefused as exc:
        raise InvalidRequest(f"Event post is not acceptable JSON: {exc}", code="invalid_json") from None
    if provider == "sendgrid" and not isinstance(payload, list):
        raise InvalidRequest("A SendGrid event post is a JSON array of events", code="invalid_json")
    if provider != "sendgrid" and not isinstance(payload, dict):
        raise InvalidRequest("An event post is a JSON object", code="invalid_json")
    envelope = event_queue().enqueue(provider, body, scope=scope)
    metrics.add_metric(name="EventPostsAccepted", unit=MetricUnit.Count, value=1)
    results = payload.get("results") if isinstance(payload, dict) else None
    events = len(payload) if isinstance(payload, list) else len(results) if isinstance(results, list) else 1
    logger.info("Event post queued", extra={"events": events, "via_s3": "s3_key" in envelope})
    return json_response(200, {"status": "queued", "events": events})


def _verify(provider: str, settings: Settings, body: bytes) -> str | None:
    """Raises EventAuthFailure, or returns the one dispatch a per-dispatch Infobip token authorises (None
    when the post is authorised as a whole)."""
    headers = app.current_event.headers
    query = app.current_event.query_string_parameters or {}
    allow = settings.allow_plaintext_secrets
    if provider == "sendgrid":
        keys = secrets.resolve_list(
            "sendgrid_webhook_public_keys", settings.sendgrid_webhook_public_keys, allow_plaintext=allow
        )
        if keys:
            verify_sendgrid(
                keys,
                headers.get(SENDGRID_SIGNATURE),
                headers.get(SENDGRID_TIMESTAMP),
                body,
                max_age_seconds=settings.sendgrid_webhook_max_age_seconds,
            )
            return None
    elif provider == "braze":
        accepted = secrets.resolve_list("braze_postback_secret", settings.braze_postback_secret, allow_plaintext=allow)
        if accepted:
            given = headers.get("x-webhook-token") or query.get("token")
            if not given:
                raise EventAuthFailure("Missing the postback secret (X-Webhook-Token header or token query parameter)")
            if not matches_any(given, accepted):
                raise EventAuthFailure("Invalid postback secret")
            return None
    else:
        accepted = secrets.resolve_list(
            "infobip_webhook_secret", settings.infobip_webhook_secret, allow_plaintext=allow
        )
        if accepted:
            given = query.get("token") or headers.get("x-webhook-token")
            if not given:
                raise EventAuthFailure("Missing the token (the bridge puts it into notifyUrl and trackingUrl)")
            # Mail the bridge sent carries a per-dispatch token; mail sent elsewhere, the shared secret itself.
            if matches_any(given, accepted):
                return None
            # A per-dispatch token authorises one dispatch, and only its Infobip messages: the worker checks
            # every item against it, those without a bulkId included.
            bulk_ids = _infobip_bulk_ids(body)
            scope = next(iter(bulk_ids)) if len(bulk_ids) == 1 else None
            if scope is not None and matches_any(given, [infobip_callback_token(s, scope) for s in accepted]):
                return scope
            raise EventAuthFailure("Invalid token")
    if settings.insecure_accept_unsigned_events:
        return None
    raise EventAuthFailure(f"The {provider} event endpoint has no key or secret configured; every post is refused")


def _infobip_bulk_ids(body: bytes) -> set[str]:
    """The bulk ids a per-dispatch token must cover; a body that is not JSON has none (so: 401)."""
    try:
        payload = strict_json.loads(body)
    except strict_json.JsonRefused:
        return set()
    if not isinstance(payload, dict):
        return set()
    results = payload.get("results")
    items: list[Any] = results if isinstance(results, list) else [payload]
    return {str(i["bulkId"]) for i in items if isinstance(i, dict) and i.get("bulkId")}


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _start_report()
    return app.resolve(event, context)
