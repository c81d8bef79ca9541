"""Send quotas: a provider's recipients counted per day and per month before its call, refused past a limit
(or only warned about), handed back when the send provably never left, and the notification address warned
once per period at each threshold (docs/sending.md, "Quotas")."""

import math
from collections.abc import Callable
from datetime import datetime

import msgspec

from martech_bridge.adapters.quota_store import QuotaRefused, QuotaStore
from martech_bridge.errors import DependencyUnavailable, QuotaExceeded
from martech_bridge.models.routes import ProviderSending
from martech_bridge.observability import count, logger


class QuotaWarning(msgspec.Struct, frozen=True):
    period: str  # "day#2026-11-30"
    kind: str  # "daily" / "monthly"
    percent: int
    used: int
    limit: int


class Reservation(msgspec.Struct):
    provider: str
    n: int
    periods: list[str] = msgspec.field(default_factory=list)
    warnings: list[QuotaWarning] = msgspec.field(default_factory=list)


def periods(now: datetime) -> dict[str, str]:
    """The counters a send at `now` adds to (UTC days and calendar months)."""
    return {"daily": f"day#{now:%Y-%m-%d}", "monthly": f"month#{now:%Y-%m}"}


def limited(spec: ProviderSending | None) -> bool:
    return spec is not None and (spec.daily_limit is not None or spec.monthly_limit is not None)


def reserve(
    store: QuotaStore, provider: str, spec: ProviderSending | None, n: int, now: datetime
) -> Reservation | None:
    """Count `n` recipients against each of the provider's limits, all or none: QuotaExceeded (429) when one
    would be passed and the provider's `on_limit` is "refuse"; with "warn" the count goes past the limit."""
    if spec is None or n <= 0 or not limited(spec):
        return None
    reservation = Reservation(provider, n)
    for kind, period in periods(now).items():
        limit: int | None = getattr(spec, f"{kind}_limit")
        if limit is None:
            continue
        try:
            used = store.add(provider, period, n, limit if spec.on_limit == "refuse" else None, now)
        except QuotaRefused as exc:
            refund(store, reservation, n)
            count("SendsOverQuota", n, provider=provider)
            raise QuotaExceeded(
                f"The {kind} send quota of {limit} recipients through {provider} is used up",
                used=exc.used,
                limit=limit,
                period=period.partition("#")[2],
                requested=n,
            ) from None
        except DependencyUnavailable:
            refund(store, reservation, n)
            raise
        reservation.periods.append(period)
        before = used - n
        due = [t for t in spec.warn_at if before < math.ceil(limit * t) <= used]
        if due:
            reservation.warnings.append(QuotaWarning(period, kind, round(max(due) * 100), used, limit))
        if used > limit:
            count("SendsOverQuota", n, provider=provider)
    return reservation


def refund(store: QuotaStore, reservation: Reservation | None, n: int) -> None:
    """Hand back `n` recipients that provably never left. Best effort: a refund that fails leaves the count
    too high, never too low."""
    if reservation is None or n <= 0:
        return
    for period in reservation.periods:
        try:
            store.add(reservation.provider, period, -n, None, datetime.now().astimezone())
        except DependencyUnavailable:
            logger.warning("Quota refund not written; the count stays high", extra={"provider": reservation.provider})


def warn(
    store: QuotaStore,
    reservation: Reservation | None,
    spec: ProviderSending | None,
    mail: Callable[[str, str], bool],
    now: datetime,
) -> None:
    """Mail each warning the reservation crossed to the notification address, once per period and threshold:
    the warning is claimed before it is mailed, so it is never doubled; a crash between the two loses it
    (logged and counted as QuotaWarningsLost)."""
    if reservation is None or spec is None or not spec.notify:
        return
    for w in reservation.warnings:
        try:
            if not store.claim_warning(reservation.provider, w.period, w.percent, now):
                continue
        except DependencyUnavailable:
            logger.warning("Quota warning not claimed; not sent", extra={"provider": reservation.provider})
            continue
        day_or_month = w.period.partition("#")[2]
        subject = f"[Martech Bridge] {reservation.provider}: {w.percent}% of the {w.kind} send quota used"
        text = (
            f"{w.used} of {w.limit} recipients of the {w.kind} quota for {day_or_month} (UTC) have been sent "
            f"through {reservation.provider}."
            + (
                " Further sends are refused until the quota resets."
                if w.used >= w.limit and spec.on_limit == "refuse"
                else ""
            )
        )
        if mail(subject, text):
            count("QuotaWarningsSent", 1, provider=reservation.provider)
        else:
            count("QuotaWarningsLost", 1, provider=reservation.provider)
            logger.error("Quota warning could not be mailed", extra={"provider": reservation.provider})
