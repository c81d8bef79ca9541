"""Subscription rules: how a requested change becomes the new state and its history entry."""

from datetime import datetime

from martech_bridge.models.subscription import (
    Subscription,
    SubscriptionChange,
    SubscriptionUpdate,
    SuppressionKind,
)


def apply_update(
    email: str,
    current: Subscription | None,
    update: SubscriptionUpdate,
    *,
    source: str,
    now: datetime,
) -> tuple[Subscription, SubscriptionChange]:
    """The state after `update`, and the history entry recording it.

    Unsubscribing without a stated kind is a manual suppression; subscribing clears any suppression
    (the explicit re-subscribe KARTE's rules ask for).
    """
    suppression = None if update.subscribed else (update.suppression or SuppressionKind.MANUAL)
    new = Subscription(
        email=email,
        subscribed=update.subscribed,
        suppression=suppression,
        reason=update.reason,
        source=source,
        changed_at=now,
        version=(current.version + 1) if current else 1,
    )
    change = SubscriptionChange(
        subscribed=new.subscribed,
        suppression=new.suppression,
        reason=new.reason,
        source=source,
        changed_at=now,
        previous_subscribed=current.subscribed if current else None,
    )
    return new, change
