"""Subscription state of one recipient (KARTE's `subscription` flag plus why it changed)."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from martech_bridge.models.email import EmailAddress


class SuppressionKind(StrEnum):
    """Why mail to an address is held back. Hard bounces and spam reports block even transactional mail."""

    HARD_BOUNCE = "hard_bounce"
    SPAM_REPORT = "spam_report"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    SOFT_BOUNCE = "soft_bounce"  # only with SUPPRESS_SOFT_BOUNCES=true; transactional mail still goes


Reason = Annotated[str, Field(min_length=1, max_length=500)]
Source = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_.:-]+$")]


class SubscriptionUpdate(BaseModel):
    """Body of `PUT /subscriptions/{email}`. Re-subscribing is explicit: `subscribed: true` clears suppression."""

    # The validator below, stated for openapi.json.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"subscribed": {"const": True}}},
            "then": {"properties": {"suppression": {"type": "null"}}},
        },
    )

    subscribed: StrictBool
    reason: Reason | None = None
    suppression: SuppressionKind | None = None

    @model_validator(mode="after")
    def _suppression_only_when_unsubscribed(self) -> "SubscriptionUpdate":
        if self.subscribed and self.suppression is not None:
            raise ValueError("suppression can only be set with subscribed=false")
        return self


class Subscription(BaseModel):
    """The current state, as stored and as answered by the API."""

    email: EmailAddress
    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: Source = "api"
    changed_at: datetime
    version: int = Field(default=1, ge=1)
    # After a re-subscription: each configured provider's release from its own suppression lists
    # ("pending" until done; then "removed", "not_listed", "cleared" - a list that cannot be asked was cleared
    # regardless, Braze's spam list - or "failed").
    release: dict[str, str] | None = None


class SubscriptionChange(BaseModel):
    """One entry of a recipient's history."""

    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: Source
    changed_at: datetime
    previous_subscribed: bool | None = None
    released: dict[str, str] | None = None  # a provider's release, as its own history entry


class SubscriptionView(BaseModel):
    """`GET /subscriptions/{email}`: the state and its recent history, newest first."""

    subscription: Subscription
    history: list[SubscriptionChange]

    def to_json(self) -> dict[str, Any]:
        state = self.subscription.model_dump(mode="json")
        return {**state, "history": [h.model_dump(mode="json") for h in self.history]}
