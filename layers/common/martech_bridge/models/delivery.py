"""A delivery: one inbound webhook (or event) on its way to a target, with every attempt."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (queued)
    IN_PROGRESS = "in_progress"  # an attempt holds the lease
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the target refused it for good (a 4xx): retrying will not help
    FAILED = "failed"  # gave up (attempts, age, ambiguous outcome): its message sits in the DLQ

    @property
    def final(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.REJECTED, DeliveryStatus.FAILED)


class Attempt(BaseModel):
    number: int = Field(ge=1)
    started_at: datetime
    latency_ms: int = Field(ge=0)
    status: int | None = None  # the target's HTTP status; None when no answer came
    verdict: str
    error: str | None = None
    target_code: str | None = None
    target_message: str | None = None
    ambiguous: bool = False


class Delivery(BaseModel):
    delivery_id: str
    route: str
    target: str  # "PUT https://example.cybozu.com/k/v1/record.json", never with secrets
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
    response_status: int | None = None  # what the caller was (or will be) answered, for replays
    response_body: dict[str, Any] | None = None
    replays: int = 0
    attempt_history: list[Attempt] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """`GET /deliveries/{id}`: the delivery and every attempt (not its lease or answer bookkeeping)."""
        return self.model_dump(mode="json", exclude={"lease_until_ms", "request_hash", "response_body"})
