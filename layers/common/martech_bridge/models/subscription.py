"""Subscription state of one recipient (KARTE's `subscription` flag plus why it changed)."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

import msgspec

from martech_bridge.models import plain
from martech_bridge.models.email import email_address
from martech_bridge.models.plain import Loc, optional, string


class SuppressionKind(StrEnum):
    """Why mail to an address is held back. Hard bounces and spam reports block even transactional mail."""

    HARD_BOUNCE = "hard_bounce"
    SPAM_REPORT = "spam_report"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"
    SOFT_BOUNCE = "soft_bounce"  # only with SUPPRESS_SOFT_BOUNCES=true; transactional mail still goes


# As devkit/api_models.py states them for openapi.json.
SOURCE = plain.pattern(r"^[a-z0-9_.:-]+$")


def _reason(value: Any, loc: Loc) -> str:
    return string(value, loc, min_length=1, max_length=500)


def _source(value: Any, loc: Loc) -> str:
    return string(value, loc, min_length=1, max_length=100, match=SOURCE)


def _suppression(value: Any, loc: Loc) -> SuppressionKind:
    return plain.enum(value, loc, SuppressionKind)


def _releases(value: Any, loc: Loc) -> dict[str, str]:
    return {string(k, (*loc, k, "[key]")): string(v, (*loc, k)) for k, v in plain.mapping(value, loc).items()}


_UPDATE_FIELDS = ("subscribed", "reason", "suppression")


@dataclass(slots=True)
class SubscriptionUpdate(plain.Record):
    """Body of `PUT /subscriptions/{email}`. Re-subscribing is explicit: `subscribed: true` clears suppression."""

    subscribed: bool
    reason: str | None = None
    suppression: SuppressionKind | None = None

    def __post_init__(self) -> None:
        # Built in code too (events, tests): checked the same way as a caller's body.
        self.subscribed = plain.boolean(self.subscribed, ("subscribed",), strict=True)
        self.reason = optional(_reason, self.reason, ("reason",))
        self.suppression = optional(_suppression, self.suppression, ("suppression",))
        if self.subscribed and self.suppression is not None:
            raise plain.value_error((), "suppression can only be set with subscribed=false")

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        data = plain.fields(data, (), cls.__name__)
        subscribed = plain.boolean(plain.required(data, "subscribed", ()), ("subscribed",), strict=True)
        reason = optional(_reason, data.get("reason"), ("reason",))
        suppression = optional(_suppression, data.get("suppression"), ("suppression",))
        plain.no_extra(data, _UPDATE_FIELDS, ())
        return cls(subscribed, reason, suppression)


@dataclass(slots=True, kw_only=True)
class Subscription(plain.Record):
    """The current state, as stored and as answered by the API."""

    email: str
    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: str = "api"
    changed_at: datetime
    version: int = 1
    # After a re-subscription: each configured provider's release from its own suppression lists
    # ("pending" until done; then "removed", "not_listed", "cleared" - a list that cannot be asked was cleared
    # regardless, Braze's spam list - or "failed").
    release: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.suppression is not None:
            self.suppression = _suppression(self.suppression, ("suppression",))

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """From a stored item (keys it does not know are ignored, as pydantic's default did)."""
        data = plain.fields(data, (), cls.__name__)
        return cls(
            email=email_address(plain.required(data, "email", ()), ("email",)),
            subscribed=plain.boolean(plain.required(data, "subscribed", ()), ("subscribed",)),
            suppression=optional(_suppression, data.get("suppression"), ("suppression",)),
            reason=optional(string, data.get("reason"), ("reason",)),
            source=_source(data.get("source", "api"), ("source",)),
            changed_at=plain.timestamp(plain.required(data, "changed_at", ()), ("changed_at",)),
            version=plain.integer(data.get("version", 1), ("version",), ge=1),
            release=optional(_releases, data.get("release"), ("release",)),
        )


@dataclass(slots=True, kw_only=True)
class SubscriptionChange(plain.Record):
    """One entry of a recipient's history."""

    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: str
    changed_at: datetime
    previous_subscribed: bool | None = None
    released: dict[str, str] | None = None  # a provider's release, as its own history entry

    def __post_init__(self) -> None:
        if self.suppression is not None:
            self.suppression = _suppression(self.suppression, ("suppression",))

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        data = plain.fields(data, (), cls.__name__)
        return cls(
            subscribed=plain.boolean(plain.required(data, "subscribed", ()), ("subscribed",)),
            suppression=optional(_suppression, data.get("suppression"), ("suppression",)),
            reason=optional(string, data.get("reason"), ("reason",)),
            source=_source(plain.required(data, "source", ()), ("source",)),
            changed_at=plain.timestamp(plain.required(data, "changed_at", ()), ("changed_at",)),
            previous_subscribed=optional(plain.boolean, data.get("previous_subscribed"), ("previous_subscribed",)),
            released=optional(_releases, data.get("released"), ("released",)),
        )


class SubscriptionView(msgspec.Struct):
    """`GET /subscriptions/{email}`: the state and its recent history, newest first."""

    subscription: Subscription
    history: list[SubscriptionChange]

    def to_json(self) -> dict[str, Any]:
        state = self.subscription.model_dump(mode="json")
        return {**state, "history": [h.model_dump(mode="json") for h in self.history]}
