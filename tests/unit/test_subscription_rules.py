"""Subscription changes follow KARTE's rules: unsubscribing records why, re-subscribing is explicit."""

from datetime import UTC, datetime

import pytest
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.plain import ValidationError
from martech_bridge.models.subscription import Subscription, SubscriptionUpdate, SuppressionKind

NOW = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def test_unsubscribe_without_kind_is_a_manual_suppression() -> None:
    new, change = apply_update("a@b.co", None, SubscriptionUpdate(subscribed=False), source="api", now=NOW)
    assert (new.subscribed, new.suppression, new.version) == (False, SuppressionKind.MANUAL, 1)
    assert change.previous_subscribed is None and change.changed_at == NOW


def test_hard_bounce_kind_is_kept() -> None:
    update = SubscriptionUpdate(subscribed=False, suppression="hard_bounce", reason="550 5.1.1")
    new, _ = apply_update("a@b.co", None, update, source="api", now=NOW)
    assert new.suppression is SuppressionKind.HARD_BOUNCE and new.reason == "550 5.1.1"


def test_resubscribe_clears_suppression_and_bumps_version() -> None:
    current = Subscription(email="a@b.co", subscribed=False, suppression="spam_report", changed_at=NOW, version=3)
    new, change = apply_update("a@b.co", current, SubscriptionUpdate(subscribed=True), source="api", now=NOW)
    assert (new.subscribed, new.suppression, new.version) == (True, None, 4)
    assert change.previous_subscribed is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "subscribed"),
        ({"subscribed": "false"}, "subscribed"),  # strings are not booleans
        ({"subscribed": 0}, "subscribed"),
        ({"subscribed": False, "suppression": "bounced-ish"}, "suppression"),
        ({"subscribed": False, "reason": ""}, "reason"),
        ({"subscribed": False, "reason": "x" * 501}, "reason"),
        ({"subscribed": False, "colour": "red"}, "colour"),
    ],
)
def test_bad_updates_name_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SubscriptionUpdate.model_validate(body)
    assert caught.value.errors()[0]["loc"][0] == field


def test_suppression_with_subscribed_true_is_contradictory() -> None:
    with pytest.raises(ValidationError, match="suppression can only be set with subscribed=false"):
        SubscriptionUpdate(subscribed=True, suppression="manual")
