"""A delivery: one inbound webhook (or event) on its way to a target, with every attempt, and the state
machine it moves through (README, "Delivery states"; logic/delivery_states.py holds the edges)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

# deliveries.new_delivery_id: "dl_" + 26 hex digits from the idempotency key, or 13 (time) + 14 (random).
DELIVERY_ID_PATTERN = r"^dl_[0-9a-f]{26,27}$"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt: a queue message is in flight, or the sweeper sends one
    IN_PROGRESS = "in_progress"  # an attempt holds the lease (lease_until_ms)
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the target refused it for good (a 4xx): retrying will not help
    FAILED = "failed"  # gave up (attempts, age, outcome unknown, ...): its message sits in the DLQ

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.REJECTED, DeliveryStatus.FAILED)


class FailureReason(StrEnum):
    """Why a delivery is `failed`: what an operator reads before replaying it."""

    GAVE_UP = "gave_up"  # max_attempts or max_age_seconds reached
    OUTCOME_UNKNOWN = "outcome_unknown"  # a non-idempotent call may have reached the target: check it first
    UNBUILDABLE = "unbuildable"  # the request cannot be built any more (mapping or secret changed)
    ROUTE_REMOVED = "route_removed"
    STUCK = "stuck"  # its next attempt was still not made when the route's max_age_seconds ran out


# msgspec Structs, not pydantic models: every delivery function builds these at INIT, and pydantic with its
# model classes costs a cold start ~70 ms (issue 13). A Struct does not check its arguments when built in
# code (the code that builds one passes typed values); `from_stored` checks a stored item field by field.
class Attempt(Struct, kw_only=True):
    number: Annotated[int, Meta(ge=1)]
    started_at: datetime
    latency_ms: Annotated[int, Meta(ge=0)]
    status: int | None = None  # the target's HTTP status; None when no answer came
    verdict: str
    error: str | None = None
    target_code: str | None = None
    target_message: str | None = None
    ambiguous: bool = False


_NOT_PUBLIC = frozenset({"lease_until_ms", "request_hash", "response_body", "dead_letter_pending", "sweeps"})


class Delivery(Struct, kw_only=True):
    delivery_id: str
    route: str
    target: str  # "PUT https://example.cybozu.com/k/v1/record.json": the URL actually called, never secrets
    status: DeliveryStatus
    attempts: int = 0
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    request_hash: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    lease_until_ms: int | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    failure: FailureReason | None = None
    # Set with `failed` and cleared once the DLQ message is sent: the sweeper finishes what a crash cut short.
    dead_letter_pending: bool = False
    sweeps: int = 0  # times the sweeper re-queued it since its last attempt
    response_status: int | None = None  # what the caller was (or will be) answered, for replays
    response_body: dict[str, Any] | None = None
    replays: int = 0
    attempt_history: list[Attempt] = msgspec.field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """`GET /deliveries/{id}`: the delivery and every attempt (not its lease or answer bookkeeping)."""
        return self.as_json(
            exclude={"lease_until_ms", "request_hash", "response_body", "dead_letter_pending", "sweeps"}
        )

    def as_json(self, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
        """Every field as JSON values (datetimes as RFC 3339 with `Z`, enums as their values), in field order."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        for name in exclude:
            del data[name]
        return data

    def updated(self, **changes: Any) -> "Delivery":
        """A copy with these fields changed (not checked: the callers pass typed values)."""
        return msgspec.structs.replace(self, **changes)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> "Delivery":
        """A delivery from its stored JSON values, every field checked; msgspec.ValidationError names the one
        that is wrong."""
        return msgspec.convert(data, cls, strict=False)
