"""The deliveries flow, shared by the relay, its worker, the sweeper, replays and event sinks: build the
target request, make one attempt, record it, and settle the delivery - delivered, rejected, retried later,
or given up on and dead-lettered. The states and who moves each edge are in logic/delivery_states.py.

What holds after any crash, at any step (tests/integration/test_delivery_faults.py checks it):
- every delivery is final, or `pending`/`in_progress` and in the sweep index, so the sweeper re-queues it
  once its due time (or lease) has passed by a grace period;
- every `failed` delivery gets its DLQ message and its metric exactly once (`dead_letter_pending` until the
  message is sent; the sweeper finishes what a crash cut short);
- an attempt that may have reached a target whose call is not idempotent is never repeated automatically:
  the delivery ends `failed` / `outcome_unknown` for an operator to check and replay;
- a caller is answered 2xx or 502 only after the record that backs the answer is written."""

import hashlib
import json
import secrets as random_ids
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from aws_lambda_powertools.metrics import MetricUnit

from martech_bridge import secrets
from martech_bridge.adapters import aws, delivery_store, targets
from martech_bridge.adapters.delivery_queue import MAX_DELAY, DeliveryQueue
from martech_bridge.adapters.delivery_store import (
    MAX_STORED_ANSWER_BYTES,
    MAX_STORED_PAYLOAD_BYTES,
    SWEEP_SHARDS,
    DeliveryStore,
    StateChanged,
    after_attempt,
    payload_json,
)
from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse, send
from martech_bridge.config import Settings, get_settings
from martech_bridge.errors import (
    BridgeError,
    ConfigurationError,
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from martech_bridge.logic.delivery import Outcome, backoff_seconds, should_give_up
from martech_bridge.models.delivery import Attempt, Delivery, DeliveryStatus, FailureReason
from martech_bridge.models.routes import SINK_PREFIX, Deliverable, KintoneTarget, MappingFailed, search
from martech_bridge.observability import count, logger, metrics

LEASE_MARGIN_SECONDS = 15
# The kintone budget counter is a warning, not a limit: a warm instance adds its count every 100 requests
# or after 30 s, saving a DynamoDB write on most deliveries (an instance that dies loses at most 99), and
# keeping the counter's one key far below DynamoDB's per-key write rate.
BUDGET_FLUSH_REQUESTS = 100
BUDGET_FLUSH_SECONDS = 30.0
# The sweeper re-queues a delivery after 1, 2, 4 ... grace periods, at most this many.
MAX_SWEEP_BACKOFF = 32
# Leave this much of the function's time after an attempt's deadline for recording its outcome: more than
# one whole DynamoDB attempt (adapters/aws.py: 2 s connect + 5 s read at worst, usually milliseconds).
RECORD_RESERVE_SECONDS = 6.0
MIN_SECONDS_FOR_AN_ATTEMPT = RECORD_RESERVE_SECONDS + 2


class Settled(msgspec.Struct, frozen=True):
    """What became of a delivery after an attempt, and what its caller is answered."""

    delivery: Delivery
    status_code: int
    body: dict[str, Any]


class SweepReport(msgspec.Struct):
    requeued: int = 0
    dead_lettered: int = 0
    stuck: int = 0


def new_delivery_id(route: str, idempotency_key: str | None) -> str:
    """Derived from the idempotency key when there is one, so a repeated webhook finds its delivery."""
    if idempotency_key:
        digest = hashlib.sha256(f"{route}\x00{idempotency_key}".encode()).hexdigest()[:26]
        return f"dl_{digest}"
    return f"dl_{int(time.time() * 1000):013x}{random_ids.token_hex(7)}"


def request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def lease_seconds(holder_lifetime: float) -> float:
    """A lease outlives its holder: a live holder never loses it, a dead one's lapses soon after."""
    return holder_lifetime + LEASE_MARGIN_SECONDS


def check_stored_size(payload: dict[str, Any]) -> None:
    """413 before any target call when the delivery record could not hold the payload as stored (JSON with
    escapes can be several times the raw body: a form's %01 is stored as \\u0001). The other attributes are
    bounded on their own (the target's description, the answer, 50 attempts)."""
    size = len(payload_json(payload).encode("utf-8"))
    if size > MAX_STORED_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"The payload takes {size} bytes as stored; a delivery holds at most {MAX_STORED_PAYLOAD_BYTES}",
            limit_bytes=MAX_STORED_PAYLOAD_BYTES,
        )


class Engine:
    def __init__(self, store: DeliveryStore, queue: DeliveryQueue, settings: Settings) -> None:
        self.store = store
        self.queue = queue
        self.settings = settings
        # Requests counted but not yet written, per (counter, day): (count, monotonic time of last write).
        self._budget: dict[tuple[str, str], tuple[int, float]] = {}

    # ------------------------------------------------------------------ requests
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
        """The target request; a 400/422 naming the field when the payload cannot make one."""
        try:
            return targets.for_kind(route.target.type).build(
                route, payload, self.resolve_secrets, local_mode=self.local_mode
            )
        except MappingFailed as exc:
            raise exc.as_error() from None

    # ------------------------------------------------------------------ new deliveries
    def sink_delivery(self, sink: Any, key: str, payload: dict[str, Any], now: datetime, what: str) -> Delivery | None:
        """A pending delivery of `payload` to a sink, its id from the sink and `key` (so a repeat finds the
        same one); None, counted and logged, when this sink cannot take it (the other sinks still may)."""
        name = f"{SINK_PREFIX}{sink.name}"
        try:
            request = self.build(sink, payload)
        except (InvalidRequest, Unprocessable, ConfigurationError) as exc:
            metrics.add_metric(name="SinkDeliveriesSkipped", unit=MetricUnit.Count, value=1)
            logger.warning(f"{what} not forwarded to a sink", extra={"sink": sink.name, "reason": exc.message})
            return None
        return Delivery(
            delivery_id=new_delivery_id(name, key),
            route=name,
            target=request.describe(),
            status=DeliveryStatus.PENDING,
            max_attempts=sink.delivery.max_attempts,
            created_at=now,
            updated_at=now,
            request_hash=request_hash(payload),
            payload=payload,
        )

    def queue_new(self, delivery: Delivery) -> Delivery | None:
        """Store a `pending` delivery and queue it; the existing delivery when the id was taken. Once stored
        it cannot be lost: if the queue is unavailable the sweeper queues it after the grace period."""
        existing = self.store.create(delivery)
        if existing is not None:
            return existing
        self.requeue(delivery.delivery_id, 0)
        return None

    # ------------------------------------------------------------------ one attempt
    def attempt(
        self,
        delivery: Delivery,
        route: Deliverable,
        number: int,
        *,
        lapsed: bool = False,
        deadline: float | None = None,
        request: TargetRequest | None = None,
        stored: bool = True,
    ) -> Settled:
        """Make attempt `number` and settle the delivery. `stored` is False for a keyless sync delivery,
        which is written once, already settled, after its call; otherwise the caller holds the lease."""
        request = request or self.build(route, delivery.payload)
        started = delivery_store.now()
        if lapsed and not request.idempotent:
            outcome = Outcome(
                "retry", None, error="an earlier attempt stopped midway; the target may have acted", ambiguous=True
            )
            return self._settle(delivery, route, number, started, 0, outcome, request, stored=stored)
        self._count_budget(route)
        clock = time.monotonic()
        answer = send(request, deadline)
        latency = int((time.monotonic() - clock) * 1000)
        target = targets.for_kind(route.target.type)
        outcome = target.interpret(route, answer) if isinstance(answer, TargetResponse) else answer
        outcome = _redacted(outcome, request.secret_values())
        return self._settle(delivery, route, number, started, latency, outcome, request, stored=stored)

    def _settle(
        self,
        delivery: Delivery,
        route: Deliverable,
        number: int,
        started: datetime,
        latency: int,
        outcome: Outcome,
        request: TargetRequest,
        *,
        stored: bool,
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
        write = _Writer(self.store, delivery, attempt, stored)
        if outcome.verdict == "delivered":
            body = _bounded(self.caller_response(route, delivery, outcome), delivery)
            settled = write(DeliveryStatus.DELIVERED, response=(200, body))
            _metric("DeliveriesSucceeded", route)
            logger.info("Delivered", extra=log)
            return Settled(settled, 200, body)
        if outcome.verdict == "rejected":
            body = _bounded(self.rejection(delivery, outcome), delivery)
            settled = write(DeliveryStatus.REJECTED, response=(502, body), last_error=outcome.error)
            _metric("DeliveriesRejected", route)
            logger.warning("Target rejected the delivery", extra={**log, "target_code": outcome.target_code})
            return Settled(settled, 502, body)
        # Retryable - unless resending could do the work twice.
        if outcome.ambiguous and not request.idempotent:
            reason = (
                f"outcome unknown: {outcome.error}; {request.method} is not idempotent, so it is not sent again "
                "(check the target, then replay if needed)"
            )
            return self._give_up(write, route, outcome, reason, FailureReason.OUTCOME_UNKNOWN, log)
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
            delivery_store.now().timestamp(),
            wait,
        )
        if gave_up:
            return self._give_up(write, route, outcome, f"{outcome.error}; {gave_up}", FailureReason.GAVE_UP, log)
        next_at = delivery_store.now() + timedelta(seconds=wait)
        settled = write(DeliveryStatus.PENDING, next_attempt_at=next_at, last_error=outcome.error)
        self.requeue(delivery.delivery_id, wait)
        _metric("DeliveriesRetried", route)
        logger.info("Delivery will be retried", extra={**log, "error": outcome.error, "retry_in_s": round(wait, 1)})
        body = {
            "status": "queued",
            "delivery_id": delivery.delivery_id,
            "attempts": number,
            "last_error": outcome.error,
            "next_attempt_in_seconds": round(wait, 1),
        }
        return Settled(settled, 202, body)

    def _give_up(
        self,
        write: "_Writer",
        route: Deliverable,
        outcome: Outcome,
        reason: str,
        failure: FailureReason,
        log: dict[str, Any],
    ) -> Settled:
        body = _bounded(self.rejection(write.delivery, outcome, reason=reason, code="delivery_failed"), write.delivery)
        settled = write(DeliveryStatus.FAILED, response=(502, body), last_error=reason, failure=failure)
        logger.error("Delivery failed", extra={**log, "reason": reason, "failure": failure.value})
        self.dead_letter(settled, route.target.type)
        return Settled(settled, 502, body)

    def dead_letter(self, delivery: Delivery, target_kind: str | None = None) -> bool:
        """Send a failed delivery's DLQ message, then clear its flag; the metric counts the one that clears
        it. If either step fails the flag stays and the sweeper sends it again (the DLQ may then hold the
        message twice; a replay of an already reopened delivery is a no-op)."""
        try:
            self.queue.dead_letter(delivery.delivery_id, delivery.last_error or "failed")
            cleared = self.store.dead_lettered(delivery.delivery_id)
        except DependencyUnavailable:
            logger.warning(
                "Could not dead-letter the delivery yet; the sweeper will", extra={"delivery_id": delivery.delivery_id}
            )
            return False
        if cleared:
            count("DeliveriesFailed", target=target_kind or _target_kind(delivery))
            if delivery.failure == FailureReason.OUTCOME_UNKNOWN:
                metrics.add_metric(name="DeliveriesOutcomeUnknown", unit=MetricUnit.Count, value=1)
        return cleared

    def requeue(self, delivery_id: str, delay: float) -> None:
        """Queue the next attempt. A failure loses nothing: the record is pending and in the sweep index."""
        try:
            self.queue.enqueue(delivery_id, min(delay, MAX_DELAY))
        except DependencyUnavailable:
            logger.warning("Could not queue the delivery; the sweeper will", extra={"delivery_id": delivery_id})

    # ------------------------------------------------------------------ the worker's step
    def process(self, delivery_id: str, remaining: Callable[[], float]) -> str:
        """Handle one queue message about `delivery_id`; returns what happened (for the log). The message is
        always let go: anything still to do is queued again or left to the sweeper. `remaining()` is the
        function's time left, read again before the lease is taken and before the call."""
        from martech_bridge.config import load_bridge_config

        delivery = self.store.get(delivery_id)
        if delivery is None:
            logger.error("Delivery message for an unknown delivery; dropped")
            return "unknown delivery"
        if delivery.status.final:
            if delivery.dead_letter_pending:
                self.dead_letter(delivery)
            return "already settled"
        now = delivery_store.now()
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at and delivery.next_attempt_at > now:
            wait = (delivery.next_attempt_at - now).total_seconds()
            if wait > 1:
                self.requeue(delivery_id, wait)  # early (SQS delays stop at 15 min): a fresh message
                return f"not due for {wait:.0f} s"
        if delivery.status == DeliveryStatus.IN_PROGRESS and (delivery.lease_until_ms or 0) > now.timestamp() * 1000:
            return "attempt held elsewhere"  # its holder settles it, or its lease lapses and the sweeper acts
        route = load_bridge_config().spec(delivery.route)
        if route is None:
            self._fail_unattempted(
                delivery, f"route {delivery.route!r} is no longer configured", FailureReason.ROUTE_REMOVED
            )
            return "route removed"
        if remaining() < MIN_SECONDS_FOR_AN_ATTEMPT:
            self.requeue(delivery_id, 0)
            return "not enough time left in this invocation"
        claimed = self.store.claim(delivery_id, delivery.attempts + 1, lease_seconds(remaining()))
        if claimed is None:
            return "attempt held elsewhere"
        held, lapsed = claimed
        try:
            request = self.build(route, held.payload)
        except BridgeError as exc:
            if isinstance(exc, DependencyUnavailable):  # e.g. SSM did not answer: try again later
                self.store.release(held)
                raise
            self._fail_unattempted(held, f"the request cannot be built: {exc.message}", FailureReason.UNBUILDABLE)
            return "unbuildable"
        except BaseException:
            self.store.release(held)
            raise
        self.attempt(
            held,
            route,
            held.attempts + 1,
            lapsed=lapsed,
            deadline=remaining() - RECORD_RESERVE_SECONDS,
            request=request,
        )
        return "attempted"

    def _fail_unattempted(self, delivery: Delivery, reason: str, failure: FailureReason) -> None:
        try:
            failed = self.store.settle_without_attempt(
                delivery, DeliveryStatus.FAILED, last_error=reason, failure=failure
            )
        except StateChanged:
            return
        logger.error("Delivery failed", extra={"delivery_id": delivery.delivery_id, "reason": reason})
        self.dead_letter(failed)

    # ------------------------------------------------------------------ the sweeper
    def sweep(self, now: datetime | None = None, per_shard: int = 100, seconds: float | None = None) -> SweepReport:
        """Find deliveries whose due time or lease has passed by the grace period and move them on:
        re-queue them (the worker decides whether a lapsed attempt may be repeated), finish an unsent DLQ
        message, or fail one that never gets attempted. Stops after `seconds`; the next run goes on."""
        now = now or delivery_store.now()
        stop = time.monotonic() + seconds if seconds is not None else None
        report = SweepReport()
        first = random_ids.randbelow(SWEEP_SHARDS)  # a run cut short does not always leave the same shards out
        for offset in range(SWEEP_SHARDS):
            if stop is not None and time.monotonic() > stop:
                break
            try:
                due = self.store.due((first + offset) % SWEEP_SHARDS, now, per_shard)
            except DependencyUnavailable:
                logger.warning("Sweeper could not read a shard; the next run will")
                continue
            for delivery_id in due:
                try:
                    delivery = self.store.get(delivery_id)
                    if delivery is not None:
                        self._sweep_one(delivery, now, report)
                except StateChanged:
                    continue  # it moved while we looked: whoever moved it is in charge
                except DependencyUnavailable:
                    logger.warning(
                        "Sweeper could not move a delivery on; the next run will", extra={"delivery_id": delivery_id}
                    )
        if report.requeued or report.dead_lettered or report.stuck:
            logger.warning("Sweeper moved deliveries on", extra=msgspec.structs.asdict(report))
            metrics.add_metric(name="DeliveriesRecovered", unit=MetricUnit.Count, value=report.requeued)
        return report

    def _sweep_one(self, delivery: Delivery, now: datetime, report: SweepReport) -> None:
        from martech_bridge.config import load_bridge_config

        if delivery.dead_letter_pending:
            if self.dead_letter(delivery):
                report.dead_lettered += 1
            return
        if delivery.status.final:
            return
        if delivery.status == DeliveryStatus.IN_PROGRESS and (delivery.lease_until_ms or 0) > now.timestamp() * 1000:
            return
        route = load_bridge_config().spec(delivery.route)
        max_age = route.delivery.max_age_seconds if route else 0
        if (now - delivery.created_at).total_seconds() > max_age + self.store.grace.total_seconds():
            # Past the route's max_age with its next attempt still not made (a worker that crashes on it, a
            # route that is gone): no point queueing it again.
            reason = f"no attempt could be made within max_age_seconds ({max_age} s); re-queued {delivery.sweeps} times"
            failed = self.store.settle_without_attempt(
                delivery, DeliveryStatus.FAILED, last_error=reason, failure=FailureReason.STUCK
            )
            report.stuck += 1
            self.dead_letter(failed)
            return
        self.queue.enqueue(delivery.delivery_id)
        # A queue that is merely behind gets the message again ever more rarely, not every minute.
        self.store.swept(delivery, backoff=min(2**delivery.sweeps, MAX_SWEEP_BACKOFF))
        report.requeued += 1

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
            try:
                value = search(path, context)
            except MappingFailed:
                continue  # the target acted: a response field that cannot be computed is left out
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
        key = (f"kintone#{target.host}#{target.app}", delivery_store.now().strftime("%Y-%m-%d"))
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


class _Writer:
    """Writes an attempt's outcome: one conditional update of a stored delivery whose lease the caller
    holds, or - for a keyless sync delivery - the delivery's one and only write."""

    def __init__(self, store: DeliveryStore, delivery: Delivery, attempt: Attempt, stored: bool) -> None:
        self.store, self.delivery, self.attempt, self.stored = store, delivery, attempt, stored

    def __call__(self, status: DeliveryStatus, **outcome: Any) -> Delivery:
        if self.stored:
            return self.store.record_attempt(self.delivery, self.attempt, status=status, **outcome)
        settled = after_attempt(self.delivery, self.attempt, status=status, **outcome)
        if self.store.create(settled) is not None:  # a random id: cannot happen short of a collision
            raise DependencyUnavailable("Delivery id collision; not recorded")
        return settled


def _metric(name: str, route: Deliverable) -> None:
    # By target kind (kintone, http, karte); the route itself goes into the log line beside it (a
    # dimension per route would multiply custom-metric costs).
    count(name, target=route.target.type)


def _target_kind(delivery: Delivery) -> str:
    from martech_bridge.config import load_bridge_config

    spec = load_bridge_config().spec(delivery.route)
    return spec.target.type if spec else "unknown"


def _redacted(outcome: Outcome, secrets: Sequence[str]) -> Outcome:
    """A target may quote our credential back ("bad credentials: Bearer ..."): what it says is stored and
    answered, so the credential is masked out of every text it returned."""
    if not secrets:
        return outcome

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, "***")
            return value
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return msgspec.structs.replace(
        outcome,
        target_message=clean(outcome.target_message),
        target_errors=clean(outcome.target_errors),
        result=clean(outcome.result),
        target_code=clean(outcome.target_code),
    )


def _clip(text: str | None, limit: int = 500) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "…"


def _bounded(body: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """An answer small enough to store with the delivery (a target's huge answer must not make the record
    fail after the target acted): the target's details are dropped when the whole would not fit."""
    if len(json.dumps(body, ensure_ascii=False).encode("utf-8")) <= MAX_STORED_ANSWER_BYTES:
        return body
    if "error" in body:
        error = body["error"]
        kept = {k: error[k] for k in ("code", "delivery_id", "target_status", "target_code") if k in error}
        return {"error": {**kept, "message": _clip(str(error.get("message")), 1000), "truncated": True}}
    return {"status": body.get("status"), "delivery_id": delivery.delivery_id, "response_truncated": True}


def replay_delivery(engine: Engine, delivery_id: str, default_attempts: int = 8) -> Delivery:
    """Reopen a failed or rejected delivery and queue it: the operator's retry and the DLQ redrive. An
    `outcome_unknown` delivery is replayed like any other: the operator has checked the target."""
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
    engine.requeue(delivery_id, 0)  # reopened is pending and swept: a failed enqueue loses nothing
    logger.info("Delivery reopened for replay", extra={"delivery_id": delivery_id, "replays": reopened.replays})
    return reopened


@aws.factory
def delivery_engine() -> Engine:
    settings = get_settings()
    store = DeliveryStore(
        settings.require("deliveries_table"), settings.retention_days, grace_seconds=settings.sweep_grace_seconds
    )
    queue = DeliveryQueue(settings.require("delivery_queue_url"), settings.delivery_dlq_url)
    return Engine(store, queue, settings)
