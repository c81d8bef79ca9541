"""The relay flow: a Marketo / KARTE webhook becomes the call its route's target needs.

Order of checks: route, method, size, authentication, payload, required fields, mapping, stored size - so
nothing is stored or sent for a request that fails any of them. Then, by the route's delivery mode:
- async: the delivery is stored `pending` and queued; 202.
- sync with an idempotency key: the delivery is stored `in_progress` under a lease, attempted within a
  deadline well inside Marketo's 30 s, and its outcome recorded; a repeat is answered from the record.
- sync without a key: no repeat can ever be recognised, so nothing is written before the call; the settled
  delivery is written once, after it (one DynamoDB write per webhook)."""

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgspec
from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge.adapters import delivery_store
from martech_bridge.config import load_bridge_config
from martech_bridge.deliveries import (
    RECORD_RESERVE_SECONDS,
    Engine,
    check_stored_size,
    lease_seconds,
    new_delivery_id,
    request_hash,
)
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
from martech_bridge.logic.inbound import parse_payload, without_query_param
from martech_bridge.logic.webhook_auth import AuthFailure, verify
from martech_bridge.models.delivery import Delivery, DeliveryStatus
from martech_bridge.models.routes import MappingFailed, Route, SharedSecretAuth, search
from martech_bridge.observability import logger, metrics


class Webhook(msgspec.Struct, frozen=True):
    """An inbound request, as the entrypoint read it."""

    route: str
    method: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    raw_query: str
    body: bytes


class Reply(msgspec.Struct, frozen=True):
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = msgspec.field(default_factory=dict)


def relay(engine: Engine, hook: Webhook, remaining: Callable[[], float]) -> Reply:
    """`remaining()` is the function's time left, read again just before the target call."""
    spec = load_bridge_config().routes.get(hook.route)
    if spec is None:
        raise NotFound(f"No relay route named {hook.route!r}", code="route_not_found")
    if hook.method not in spec.methods:
        raise MethodNotAllowed(
            f"Route {hook.route!r} accepts {', '.join(spec.methods)}, not {hook.method}", allow=", ".join(spec.methods)
        )
    if len(hook.body) > spec.max_body_bytes:
        raise PayloadTooLarge(
            f"Body is {len(hook.body)} bytes; route {hook.route!r} accepts {spec.max_body_bytes}",
            limit_bytes=spec.max_body_bytes,
        )
    try:
        verify(spec.auth, headers=hook.headers, query=hook.query, body=hook.body, secrets=engine.resolve_secrets)
    except AuthFailure as failure:
        metrics.add_metric(name="WebhooksRejectedAuth", unit=MetricUnit.Count, value=1)
        raise Unauthorized(str(failure)) from None
    # A query-string token authenticates; it is never payload (stored, hashed, mapped or forwarded).
    raw_query = hook.raw_query
    if isinstance(spec.auth, SharedSecretAuth) and spec.auth.query_param:
        raw_query = without_query_param(raw_query, spec.auth.query_param)
    payload = parse_payload(hook.body, hook.headers.get("content-type"), raw_query)
    for path in spec.input.required:
        if _search(path, payload) in (None, "", [], {}):
            metrics.add_metric(name="WebhooksRejectedValidation", unit=MetricUnit.Count, value=1)
            raise InvalidRequest(f"Missing required field {path}", code="missing_field", field=path)
    metrics.add_metric(name="WebhooksReceived", unit=MetricUnit.Count, value=1)
    request = engine.build(spec, payload)  # refuses a payload the mapping cannot use, before storing it
    check_stored_size(payload)
    key = _idempotency_key(spec, hook.headers, payload)
    now = delivery_store.now()
    sync = spec.delivery.mode == "sync"
    delivery = Delivery(
        delivery_id=new_delivery_id(hook.route, key),
        route=hook.route,
        target=request.describe(),
        status=DeliveryStatus.IN_PROGRESS if sync else DeliveryStatus.PENDING,
        max_attempts=spec.delivery.max_attempts,
        created_at=now,
        updated_at=now,
        request_hash=request_hash(payload),
        payload=payload,
        idempotency_key=key,
    )
    logger.append_keys(delivery_id=delivery.delivery_id)
    if not sync:
        existing = engine.queue_new(delivery)
        if existing is not None:
            return _repeat(engine, existing, delivery.request_hash)
        return Reply(202, {"status": "queued", "delivery_id": delivery.delivery_id})
    if key is None:
        deadline = min(spec.delivery.deadline_seconds, remaining() - RECORD_RESERVE_SECONDS)
        settled = engine.attempt(delivery, spec, 1, deadline=deadline, request=request, stored=False)
        return Reply(settled.status_code, settled.body)
    lease = lease_seconds(remaining())
    leased = delivery.updated(lease_until_ms=int((now + timedelta(seconds=lease)).timestamp() * 1000))
    try:
        existing = engine.store.create(leased)
    except DependencyUnavailable:
        # The write may have landed (a timeout) and the target was not called: hand it to the worker rather
        # than let its lease lapse into `outcome_unknown`.
        with contextlib.suppress(DependencyUnavailable):
            engine.store.release(leased)
        raise
    if existing is not None:
        return _repeat(engine, existing, delivery.request_hash)
    deadline = min(spec.delivery.deadline_seconds, remaining() - RECORD_RESERVE_SECONDS)
    settled = engine.attempt(leased, spec, 1, deadline=deadline, request=request)
    return Reply(settled.status_code, settled.body)


def _search(path: str, payload: dict[str, Any]) -> Any:
    try:
        return search(path, payload)
    except MappingFailed as exc:
        raise exc.as_error() from None


def _idempotency_key(spec: Route, headers: dict[str, str], payload: dict[str, Any]) -> str | None:
    rule = spec.delivery.idempotency
    value: Any = headers.get(rule.header.lower()) if rule.header else None
    if not value and rule.path:
        value = _search(rule.path, payload)
    if value in (None, ""):
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > 256:
        raise InvalidRequest("Idempotency key is longer than 256 characters", code="invalid_idempotency_key")
    return text


def _repeat(engine: Engine, existing: Delivery, payload_hash: str) -> Reply:
    """The same webhook again: never a second call to the target. Answered from the record: its stored
    answer once settled; `queued` while pending; 409 while an attempt holds a live lease, with the lease's
    remaining time as Retry-After; once that lease has lapsed the delivery is queued for recovery."""
    if existing.request_hash != payload_hash:
        raise Unprocessable(
            "This idempotency key was used for a different request",
            code="idempotency_key_reused",
            delivery_id=existing.delivery_id,
        )
    replay = {"Idempotency-Replay": "true"}
    if existing.status.final:
        if existing.response_status and existing.response_body is not None:
            return Reply(existing.response_status, existing.response_body, replay)
        return Reply(
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
    queued = {
        "status": "queued",
        "delivery_id": existing.delivery_id,
        "attempts": existing.attempts,
        "last_error": existing.last_error,
    }
    if existing.status == DeliveryStatus.PENDING:
        return Reply(202, queued, replay)
    left_ms = (existing.lease_until_ms or 0) - delivery_store.now().timestamp() * 1000
    if left_ms <= 0:
        # Its holder died mid-attempt: the worker takes it from here (and decides whether it may be resent).
        engine.requeue(existing.delivery_id, 0)
        return Reply(202, queued, replay)
    error = Conflict(
        "The first request with this idempotency key is still in progress",
        code="idempotency_in_progress",
        delivery_id=existing.delivery_id,
    )
    return Reply(409, error.body(), {**replay, "Retry-After": str(max(1, int(left_ms / 1000) + 1))})
