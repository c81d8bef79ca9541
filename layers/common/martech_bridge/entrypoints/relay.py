"""RelayFunction: a Marketo / KARTE webhook becomes the call its route's target needs.

Order of checks: route, method, size, authentication, payload, required fields, mapping - so nothing is
stored or sent for a request that fails any of them. Then the delivery is recorded (idempotently) and
either attempted now, within a deadline well inside Marketo's 30 s, or queued."""

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import jmespath
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from martech_bridge.api import build_resolver, json_response, raw_body
from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import Engine, lease_seconds, new_delivery_id, request_hash
from martech_bridge.dependencies import delivery_engine
from martech_bridge.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unprocessable,
)
from martech_bridge.logic.inbound import parse_payload
from martech_bridge.logic.webhook_auth import AuthFailure, verify
from martech_bridge.models.delivery import Delivery, DeliveryStatus
from martech_bridge.models.routes import Route
from martech_bridge.observability import logger, metrics

app = build_resolver()
# Leave this much of the function's own time for recording the outcome after the target call.
RESERVE_SECONDS = 3.0


@app.route("/relay/<route>", method=["GET", "POST"])
def relay(route: str) -> Response:
    name = unquote(route)
    logger.append_keys(route=name)
    spec = load_bridge_config().routes.get(name)
    if spec is None:
        raise NotFound(f"No relay route named {name!r}", code="route_not_found")
    event = app.current_event
    method = event.request_context.http.method
    if method not in spec.methods:
        raise MethodNotAllowed(f"Route {name!r} accepts {', '.join(spec.methods)}, not {method}")
    body = raw_body(app)
    if len(body) > spec.max_body_bytes:
        raise PayloadTooLarge(
            f"Body is {len(body)} bytes; route {name!r} accepts {spec.max_body_bytes}", limit_bytes=spec.max_body_bytes
        )
    engine = delivery_engine()
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    try:
        verify(
            spec.auth,
            headers=headers,
            query=event.query_string_parameters or {},
            body=body,
            secrets=engine.resolve_secrets,
        )
    except AuthFailure as failure:
        metrics.add_metric(name="WebhooksRejectedAuth", unit=MetricUnit.Count, value=1)
        raise Unauthorized(str(failure)) from None
    payload = parse_payload(body, headers.get("content-type"), event.raw_query_string or "")
    for path in spec.input.required:
        if jmespath.search(path, payload) in (None, "", [], {}):
            metrics.add_metric(name="WebhooksRejectedValidation", unit=MetricUnit.Count, value=1)
            raise InvalidRequest(f"Missing required field {path}", code="missing_field", field=path)
    metrics.add_metric(name="WebhooksReceived", unit=MetricUnit.Count, value=1)
    request = engine.build(spec, payload)  # refuses a payload the mapping cannot use, before storing it
    key = _idempotency_key(spec, headers, payload)
    now = datetime.now(UTC)
    sync = spec.delivery.mode == "sync"
    lease = lease_seconds(spec.delivery.deadline_seconds)
    delivery = Delivery(
        delivery_id=new_delivery_id(name, key),
        route=name,
        target=request.describe(),
        status=DeliveryStatus.IN_PROGRESS if sync else DeliveryStatus.PENDING,
        max_attempts=spec.delivery.max_attempts,
        created_at=now,
        updated_at=now,
        request_hash=request_hash(payload),
        payload=payload,
        idempotency_key=key,
        lease_until_ms=int((now + timedelta(seconds=lease)).timestamp() * 1000) if sync else None,
    )
    existing = engine.store.create(delivery)
    if existing is not None:
        return _repeat(existing, delivery.request_hash)
    logger.append_keys(delivery_id=delivery.delivery_id)
    if not sync:
        _enqueue_or_release(engine, delivery)
        return json_response(202, {"status": "queued", "delivery_id": delivery.delivery_id})
    deadline = min(spec.delivery.deadline_seconds, _remaining_seconds() - RESERVE_SECONDS)
    settled = engine.attempt(delivery, spec, 1, lapsed=False, deadline=deadline)
    if settled.retry_in is not None:
        try:
            engine.queue.enqueue(delivery.delivery_id, settled.retry_in)
        except DependencyUnavailable:
            engine.store.mark(settled.delivery, DeliveryStatus.FAILED, last_error="could not queue the retry")
            raise
    return json_response(settled.status_code, settled.body)


def _idempotency_key(spec: Route, headers: dict[str, str], payload: dict[str, Any]) -> str | None:
    rule = spec.delivery.idempotency
    value: Any = headers.get(rule.header.lower()) if rule.header else None
    if not value and rule.path:
        value = jmespath.search(rule.path, payload)
    if value in (None, ""):
        return None
    text = str(value)
    if len(text) > 256:
        raise InvalidRequest("Idempotency key is longer than 256 characters", code="invalid_idempotency_key")
    return text


def _repeat(existing: Delivery, payload_hash: str) -> Response:
    """The same webhook again: never a second call to the target."""
    if existing.request_hash != payload_hash:
        raise Unprocessable(
            "This idempotency key was used for a different request",
            code="idempotency_key_reused",
            delivery_id=existing.delivery_id,
        )
    replay = {"Idempotency-Replay": "true"}
    if not existing.status.final:
        if existing.status == DeliveryStatus.PENDING and existing.attempts > 0:
            return json_response(
                202,
                {
                    "status": "queued",
                    "delivery_id": existing.delivery_id,
                    "attempts": existing.attempts,
                    "last_error": existing.last_error,
                },
                replay,
            )
        error = Conflict(
            "The first request with this idempotency key is still in progress",
            code="idempotency_in_progress",
            delivery_id=existing.delivery_id,
        )
        return json_response(409, error.body(), {**replay, "Retry-After": "2"})
    if existing.response_status and existing.response_body is not None:
        return json_response(existing.response_status, existing.response_body, replay)
    return json_response(
        502,
        {
            "error": {
                "code": "delivery_failed",
                "message": existing.last_error or "failed",
                "delivery_id": existing.delivery_id,
            }
        },
        replay,
    )


def _enqueue_or_release(engine: Engine, delivery: Delivery) -> None:
    """A 202 promises the delivery is queued; if it cannot be, forget it so the caller's retry starts afresh."""
    try:
        engine.queue.enqueue(delivery.delivery_id)
    except DependencyUnavailable:
        engine.store.delete(delivery.delivery_id)
        raise


def _remaining_seconds() -> float:
    return app.lambda_context.get_remaining_time_in_millis() / 1000


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
