"""The ESP interface: each provider module turns one send into its HTTP call(s) and reads the answers."""

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

import msgspec

from martech_bridge.adapters.targets.base import TargetRequest, TargetResponse
from martech_bridge.logic.delivery import MAX_RETRY_AFTER, parse_retry_after
from martech_bridge.models.mail import Address, MailRequest, Recipient


class Outbound(msgspec.Struct, frozen=True):
    """One recipient on its way out, with the message id the bridge gave it."""

    recipient: Recipient
    message_id: str


class SendContext(msgspec.Struct, frozen=True):
    dispatch_id: str
    request: MailRequest
    sender: Address
    reply_to: Address | None
    api_key: str
    base_url: str
    public_base_url: str = ""  # for callbacks (Infobip notifyUrl / trackingUrl)
    callback_token: str = ""  # proves a callback is about this dispatch
    sandbox_mode: bool = False
    timeout: float = 10.0


class ProviderCall(msgspec.Struct, frozen=True):
    request: TargetRequest
    recipients: Sequence[Outbound]
    retry_safe: bool  # the provider deduplicates it, so a resend after a timeout cannot double the mail
    may_have_sent: bool = False  # an earlier attempt of this very call may have reached the provider


class ProviderAnswer(msgspec.Struct, frozen=True):
    """What a provider said about one call."""

    kind: Literal["accepted", "auth", "rejected", "retry"]
    status: int | None
    message: str | None = None
    error_field: str | None = None
    provider_ids: dict[str, str] = msgspec.field(default_factory=dict)  # our message id -> the provider's id
    retry_after: float | None = None
    raw: Any = None
    deduplicated: bool = False  # the provider says it already holds this call (Braze's "has been queued")


class SuppressionDomain(msgspec.Struct, frozen=True):
    """A sending domain whose suppression lists the account may manage (Infobip keeps them per domain), and
    which lists (by type) it may read and delete there."""

    name: str
    readable: frozenset[str]
    deletable: frozenset[str]


class ReleaseContext(msgspec.Struct, frozen=True):
    """What a release of an address from a provider's suppression lists needs."""

    api_key: str
    base_url: str
    sender_domain: str = ""  # Infobip keeps its suppressions per sending domain
    timeout: float = 10.0
    domains: tuple[SuppressionDomain, ...] | None = None  # Infobip: the account's domains, listed at release time


# A list the provider cannot be asked about (no documented query), cleared regardless: a 2xx to its removal
# proves it no longer holds the address, not that it ever did (Braze's spam list).
CLEARED = "cleared"


class ReleaseStep(msgspec.Struct, frozen=True):
    """One of a provider's suppression lists: how to ask whether an address is on it (`check`, read by
    `listed`), and how to take it off (`remove`). Every call is idempotent, so any of them may be repeated."""

    name: str
    remove: TargetRequest | None  # None: the account may not remove it there (a listed address stays: failed)
    check: TargetRequest | None = None  # None: the provider cannot be asked; `remove` is made regardless
    listed: Callable[[TargetResponse], bool] | None = None
    done: str = "removed"  # what a 2xx to `remove` means (Braze: the state was set to "subscribed"; CLEARED)


class Provider(Protocol):
    name: str
    label: str  # as people write it: "SendGrid"
    dedupes: bool  # documents deduplication of a repeated call, so one that timed out may be made again

    def auth(self, api_key: str) -> dict[str, str]:
        """The credential headers of a call (kept out of queued calls, put back when they are made)."""
        ...

    def validate(self, request: MailRequest) -> None:
        """Raise InvalidRequest (naming the field) for what this provider would refuse."""

    def calls(self, ctx: SendContext, recipients: Sequence[Outbound]) -> list[ProviderCall]: ...

    def read(self, call: ProviderCall, response: TargetResponse) -> ProviderAnswer: ...

    def release_steps(self, email: str, ctx: ReleaseContext) -> list[ReleaseStep]:
        """The calls that take `email` off each of the provider's own suppression lists."""
        ...

    def events(self, payload: Any, received_at: datetime | None = None) -> list[Any]:
        """The provider's event post as NormalizedEvent / RejectedEvent items (`received_at`: when the bridge
        received the post, for events that carry no time of their own)."""


def classify(status: int) -> Literal["accepted", "auth", "rejected", "retry"]:
    if 200 <= status < 300:
        return "accepted"
    if status in (401, 403):
        return "auth"
    if status in (408, 425, 429) or status >= 500:
        return "retry"
    return "rejected"


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a provider asked us to wait. SendGrid and Braze pace a 429 with `X-RateLimit-Reset`, an epoch
    time in seconds (WIRE-FORMATS 1.6, 3.2), not a delay; `Retry-After` (delta or HTTP date) is read too in
    case one comes. Header names are matched case-insensitively: HTTP/2 lower-cases them."""
    lower = {k.lower(): v for k, v in headers.items()}
    waits = [parse_retry_after(lower.get("retry-after"), now)]
    reset = (lower.get("x-ratelimit-reset") or "").strip()
    if re.fullmatch(r"[0-9]{1,12}", reset):  # ASCII digits: "²".isdigit() is true too
        waits.append(min(MAX_RETRY_AFTER, max(0.0, int(reset) - (now if now is not None else time.time()))))
    found = [w for w in waits if w is not None]
    return max(found) if found else None
