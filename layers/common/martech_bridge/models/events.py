"""One normalised ESP event (a superset of django-anymail's), whatever provider it came from."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class EventType(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    REJECTED = "rejected"
    FAILED = "failed"
    BOUNCED = "bounced"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    AUTORESPONDED = "autoresponded"
    OPENED = "opened"
    CLICKED = "clicked"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBED = "subscribed"
    ABORTED = "aborted"  # Braze: the send was cancelled (user not emailable, Liquid abort)
    EXPIRED = "expired"  # Infobip EXPIRED: no outcome before the validity period ran out (final, WIRE-FORMATS 4.8)
    UNKNOWN = "unknown"


RejectReason = Literal["invalid", "bounced", "timed_out", "blocked", "spam", "unsubscribed", "other"]


class NormalizedEvent(BaseModel):
    provider: str
    event_id: str  # the provider's dedupe key (SendGrid sg_event_id, Braze dispatch_id+status, ...)
    event_type: EventType
    provider_event: str  # the provider's own name: "bounce", "DELIVERED", "OPENED"...
    timestamp: datetime  # provider time, always UTC
    recipient: str | None = None
    dispatch_id: str | None = None
    message_id: str | None = None  # ours
    provider_message_id: str | None = None
    external_send_id: str | None = None
    bounce: Literal["hard", "soft"] | None = None
    reject_reason: RejectReason | None = None
    description: str | None = None
    mta_response: str | None = None
    url: str | None = None
    user_agent: str | None = None
    machine_open: bool | None = None  # SendGrid sg_machine_open (Apple Mail Privacy Protection)
    tags: list[str] = Field(default_factory=list)  # anymail's tags: SendGrid category, Infobip campaignReferenceId
    metadata: dict[str, Any] = Field(default_factory=dict)  # anymail's metadata: custom_args, callbackData
    matched_by: Literal["id", "provider_id", "address"] | None = None  # how the bridge found the message
    raw: dict[str, Any] = Field(default_factory=dict)


class RejectedEvent(BaseModel):
    """An event in a batch that could not be read; recorded with why, never failing its batch."""

    provider: str
    reason: str
    raw: Any = None
