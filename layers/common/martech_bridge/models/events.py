"""One normalised ESP event (a superset of django-anymail's), whatever provider it came from."""

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


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


@dataclass(slots=True)
class NormalizedEvent:
    """A plain slotted record, not a pydantic model: the providers' normalisers check every field as they
    read it, and building tens of thousands a second is the ingest path's CPU budget (bench: ingest.
    normalise_ratio_to_json; the SendGrid normaliser passes the fields by position, in this order). The
    stored and forwarded form is `model_dump(mode="json")`."""

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
    tags: list[str] = field(default_factory=list)  # anymail's tags: SendGrid category, Infobip campaignReferenceId
    metadata: dict[str, Any] = field(default_factory=dict)  # anymail's metadata: custom_args, callbackData
    matched_by: Literal["id", "provider_id", "address"] | None = None  # how the bridge found the message
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.event_type) is not EventType:
            self.event_type = EventType(self.event_type)  # ValueError for a name that is not a type
        if self.timestamp.tzinfo is None:
            raise ValueError("an event's timestamp is an aware UTC time")

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        """Every field, JSON-ready (the type's value, the time in ISO 8601)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        out["event_type"] = self.event_type.value
        out["timestamp"] = self.timestamp.isoformat()
        return out


_FIELDS = tuple(f.name for f in fields(NormalizedEvent))
_new = object.__new__


def checked_event(
    provider: str,
    event_id: str,
    event_type: EventType,
    provider_event: str,
    timestamp: datetime,
    recipient: str | None,
    dispatch_id: str | None,
    message_id: str | None,
    provider_message_id: str | None,
    external_send_id: str | None,
    bounce: Literal["hard", "soft"] | None,
    reject_reason: RejectReason | None,
    description: str | None,
    mta_response: str | None,
    url: str | None,
    user_agent: str | None,
    machine_open: bool | None,
    tags: list[str],
    metadata: dict[str, Any],
    matched_by: Literal["id", "provider_id", "address"] | None,
    raw: dict[str, Any],
) -> NormalizedEvent:
    """A NormalizedEvent from every field, by position, for a normaliser that has checked them itself (an
    EventType, an aware UTC time): without the class call and __post_init__, a third of the cost of
    building one (bench: ingest.normalise_*). Every field is set, as __init__ sets them."""
    e = _new(NormalizedEvent)
    e.provider = provider
    e.event_id = event_id
    e.event_type = event_type
    e.provider_event = provider_event
    e.timestamp = timestamp
    e.recipient = recipient
    e.dispatch_id = dispatch_id
    e.message_id = message_id
    e.provider_message_id = provider_message_id
    e.external_send_id = external_send_id
    e.bounce = bounce
    e.reject_reason = reject_reason
    e.description = description
    e.mta_response = mta_response
    e.url = url
    e.user_agent = user_agent
    e.machine_open = machine_open
    e.tags = tags
    e.metadata = metadata
    e.matched_by = matched_by
    e.raw = raw
    return e


@dataclass(slots=True)
class RejectedEvent:
    """An event in a batch that could not be read; recorded with why, never failing its batch. A plain record:
    this module is on the send and query paths, which do not load pydantic."""

    provider: str
    reason: str
    raw: Any = None
