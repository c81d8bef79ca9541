"""The delivery machinery shared by the relay, its worker, replays and (later) event sinks: build the
target request, make one attempt, record it, and settle the delivery - delivered, rejected, retried
later, or given up on and dead-lettered. Nothing accepted is lost: every path ends in a record."""

import hashlib
import json
import secrets as random_ids
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jmespath
from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge import secrets
from martech_bridge.adapters import targets
from martech_bridge.adapters.delivery_queue import DeliveryQueue
from martech_bridge.adapters.delivery_store import DeliveryStore
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse, send
from martech_bridge.config import Settings
from martech_bridge.errors import Conflict, DependencyUnavailable, NotFound
from martech_bridge.logic.delivery import Outcome, backoff_seconds, should_give_up
from martech_bridge.models.delivery import Attempt, Delivery, DeliveryStatus
from martech_bridge.models.routes import Deliverable, KintoneTarget
from martech_bridge.observability import count, logger, metrics

LEASE_MARGIN_SECONDS = 15
# The kintone budget counter is a warning, not a limit: a warm instance adds its count every 20 requests
# or after 30 s, saving a DynamoDB write on most deliveries (an instance that dies loses at most 19).
BUDGET_FLUSH_REQUESTS = 20
BUDGET_FLUSH_SECONDS = 30.0


@dataclass(frozen=True)
class Settled:
    """What became of a delivery after an attempt, and what its caller is answered."""

    delivery: Delivery
    status_code: int
    body: dict[str, Any]
    retry_in: float | None = None  # seconds until the next attempt, when one is due


def new_delivery_id(route: str, idempotency_key: str | None) -> str:
    """Derived from the idempotency key when there is one, so a repeated webhook finds its delivery."""
    if idempotency_key:
        digest = hashlib.sha256(f"{route}\x00{idempotency_key}".encode()).hexdigest()[:26]
        return f"dl_{digest}"
    return f"dl_{int(time.time() * 1000):013x}{random_ids.token_hex(7)}"


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Engine:
    def __init__(self, store: DeliveryStore, queue: DeliveryQueue, settings: Settings) -> None:
        self.store = store
        self.queue = queue
        self.settings = settings
        # Requests counted but not yet written, per (counter, day): (count, monotonic time of last write).
        self._budget: dict[tuple[str, str], tuple[int, float]] = {}

    # ------------------------------------------------------------------ secrets
    def resolve_secrets(self, refs: Sequence[str]) -> tuple[str, ...]:
        values: list[str] = []
        for ref in refs:
            values.extend(
                secrets.resolve_list(
                    "A secret in the routes file", ref, allow_plaintext=self.settings.allow_plaintext_secrets
                )
            )
        return tuple(values)

    @property
    def local_mode(self) -> bool:
        return self.settings.stage == "local"

    def build(self, route: Deliverable, payload: dict[str, Any]) -> TargetRequest:
        return targets.for_kind(route.target.type).build(
            route, payload, self.resolve_secrets, local_mode=self.local_mode
        )

    # ------------------------------------------------------------------ one attempt
    def attempt(
        self, delivery: Delivery, route: Deliverable, number: int, *, lapsed: bool, deadline: float | None = None
    ) -> Settled:
        """Make attempt `number` (its lease is held) and settle the delivery."""
        request = self.build(route, delivery.payload)
        started = datetime.now(UTC)
        if lapsed and not request.idempotent:
            outcome = Outcome(
                "retry", None, error="an earlier attempt stopped midway; the target may have acted", ambiguous=True
            )
            return self._settle(delivery, route, number, started, 0, outcome, request)
        self._count_budget(route)
        clock = time.monotonic()
        answer = send(request, deadline)
        latency = int((time.monotonic() - clock) * 1000)
        target = targets.for_kind(route.target.type)
        outcome = target.interpret(route, answer) if isinstance(answer, TargetResponse) else answer
        return self._settle(delivery, route, number, started, latency, outcome, request)

    def _settle(
        self,
        delivery: Delivery,
        route: Deliverable,
        number: int,
        started: datetime,
        latency: int,
        outcome: Outcome,
        request: TargetRequest,
    ) -> Settled:
        attempt = Attempt(
            number=number,
            started_at=started,
            latency_ms=latency,
            status=outcome.status,
            verdict=outcome.verdict,
            error=outcome.error,
            target_code=outcome.target_code,
            target_message=_clip(outcome.target_message),
            ambiguous=outcome.ambiguous,
        )
        log = {
            "delivery_id": delivery.delivery_id,
            "route": delivery.route,
            "attempt": number,
            "target": delivery.target,
            "target_status": outcome.status,
            "latency_ms": latency,
        }
        if outcome.verdict == "delivered":
            body = self.caller_response(route, delivery, outcome)
            settled = self.store.record_attempt(
                delivery, attempt, status=DeliveryStatus.DELIVERED, response=(200, body)
            )
            _metric("DeliveriesSucceeded", route)
            logger.info("Delivered", extra=log)
            return Settled(settled, 200, body)
        if outcome.verdict == "rejected":
            body = self.rejection(delivery, outcome)
            settled = self.store.record_attempt(
                delivery, attempt, status=DeliveryStatus.REJECTED, response=(502, body), last_error=outcome.error
            )
            _metric("DeliveriesRejected", route)
            logger.warning("Target rejected the delivery", extra={**log, "target_code": outcome.target_code})
            return Settled(settled, 502, body)
        # Retryable - unless resending could do the work twice.
        if outcome.ambiguous and not request.idempotent:
            reason = (
                f"{outcome.error}; {request.method} is not idempotent, so it is not sent again "
                "(check the target, then replay if needed)"
            )
            return self._give_up(delivery, route, attempt, outcome, reason, log)
        wait = backoff_seconds(
            number,
            base=route.delivery.backoff_base_seconds,
            cap=route.delivery.backoff_max_seconds,
            retry_after=outcome.retry_after,
        )
        gave_up = should_give_up(
            number,
            delivery.max_attempts,
            delivery.created_at.timestamp(),
            route.delivery.max_age_seconds,
            time.time(),
            wait,
        )
        if gave_up:
            return self._give_up(delivery, route, attempt, outcome, f"{outcome.error}; {gave_up}", log)
        next_at = datetime.now(UTC) + timedelta(seconds=wait)
        settled = self.store.record_attempt(
            delivery, attempt, status=DeliveryStatus.PENDING, next_attempt_at=next_at, last_error=outcome.error
        )
        _metric("DeliveriesRetried", route)
        logger.info("Delivery will be retried", extra={**log, "error": outcome.error, "retry_in_s": round(wait, 1)})
        body = {
            "status": "queued",
            "delivery_id": delivery.delivery_id,
            "attempts": number,
            "last_error": outcome.error,
            "next_attempt_in_seconds": round(wait, 1),
        }
        return Settled(settled, 202, body, retry_in=wait)

    def _give_up(
        self,
        delivery: Delivery,
        route: Deliverable,
        attempt: Attempt,
        outcome: Outcome,
        reason: str,
        log: dict[str, Any],
    ) -> Settled:
        body = self.rejection(delivery, outcome, reason=reason, code="delivery_failed")
        settled = self.store.record_attempt(
            delivery, attempt, status=DeliveryStatus.FAILED, response=(502, body), last_error=reason
        )
        self.queue.dead_letter(delivery.delivery_id, reason)
        _metric("DeliveriesFailed", route)
        logger.error("Delivery failed; moved to the DLQ", extra={**log, "reason": reason})
        return Settled(settled, 502, body)

    # ------------------------------------------------------------------ answers
    def caller_response(self, route: Deliverable, delivery: Delivery, outcome: Outcome) -> dict[str, Any]:
        """Flat JSON for the caller: Marketo's response mappings read top-level keys."""
        result = {k: v for k, v in (outcome.result or {}).items() if v is not None}
        body: dict[str, Any] = {
            "status": "delivered",
            "delivery_id": delivery.delivery_id,
            **{k: v for k, v in result.items() if not isinstance(v, (dict, list))},
        }
        context = {"request": delivery.payload, "result": result, "delivery_id": delivery.delivery_id}
        for name, path in route.response.fields.items():
            value = jmespath.search(path, context)
            if value is not None:
                body[name] = value
        return body

    @staticmethod
    def rejection(
        delivery: Delivery, outcome: Outcome, *, reason: str | None = None, code: str = "target_rejected"
    ) -> dict[str, Any]:
        message = reason or (
            f"The target refused the call: {outcome.target_message}"
            if outcome.target_message
            else f"The target refused the call ({outcome.error})"
        )
        error: dict[str, Any] = {
            "code": code,
            "message": message,
            "delivery_id": delivery.delivery_id,
            "target_status": outcome.status,
            "target_code": outcome.target_code,
            "target_message": _clip(outcome.target_message),
            "target_errors": outcome.target_errors,
        }
        return {"error": {k: v for k, v in error.items() if v is not None}}

    # ------------------------------------------------------------------ budgets
    def _count_budget(self, route: Deliverable) -> None:
        """kintone counts requests per app per day (reset at 09:00 JST = 00:00 UTC) and warns its admins;
        we count too, and warn before kintone does."""
        target = route.target
        if not isinstance(target, KintoneTarget):
            return
        key = (f"kintone#{target.host}#{target.app}", datetime.now(UTC).strftime("%Y-%m-%d"))
        pending, last_flush = self._budget.get(key, (0, time.monotonic()))
        pending += 1
        if pending < BUDGET_FLUSH_REQUESTS and time.monotonic() - last_flush < BUDGET_FLUSH_SECONDS:
            self._budget[key] = (pending, last_flush)
            return
        self._budget[key] = (0, time.monotonic())
        try:
            used = self.store.count_request(*key, requests=pending)
        except DependencyUnavailable:
            logger.warning("Could not count the kintone request budget")
            return
        threshold = int(target.daily_request_budget * target.budget_warn_ratio)
        before = used - pending
        if before < threshold <= used or (used >= threshold and before // 100 < used // 100):
            metrics.add_metric(name="KintoneBudgetWarnings", unit=MetricUnit.Count, value=1)
            logger.warning(
                "kintone daily request budget nearly used",
                extra={
                    "kintone_host": target.host,
                    "app": target.app,
                    "requests_today": used,
                    "daily_budget": target.daily_request_budget,
                },
            )


def _metric(name: str, route: Deliverable) -> None:
    # By target kind (kintone, http, karte); the route itself goes into the log line beside it (a
    # dimension per route would multiply custom-metric costs).
    count(name, target=route.target.type)


def _clip(text: str | None, limit: int = 500) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def lease_seconds(function_timeout: float) -> float:
    return function_timeout + LEASE_MARGIN_SECONDS


def replay_delivery(engine: Engine, delivery_id: str, default_attempts: int = 8) -> Delivery:
    """Reopen a failed or rejected delivery and queue it: the operator's retry and the DLQ redrive."""
    from martech_bridge.config import load_bridge_config

    current = engine.store.get(delivery_id)
    if current is None:
        raise NotFound("No delivery with this id", code="delivery_not_found")
    route = load_bridge_config().spec(current.route)
    extra = route.delivery.max_attempts if route else default_attempts
    reopened = engine.store.reopen(delivery_id, extra)
    if reopened is None:
        raise Conflict(
            f"Delivery is {current.status.value}; only failed or rejected deliveries can be retried",
            code="not_retryable",
            status=current.status.value,
        )
    try:
        engine.queue.enqueue(delivery_id)
    except DependencyUnavailable:
        engine.store.mark(reopened, DeliveryStatus.FAILED, last_error="could not queue the replay")
        raise
    logger.info("Delivery reopened for replay", extra={"delivery_id": delivery_id, "replays": reopened.replays})
    return reopened
