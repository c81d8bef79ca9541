"""The DynamoDB adapter against moto: one query reads state and history; writes are conditional."""

from datetime import UTC, datetime, timedelta

import pytest
from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore
from martech_bridge.errors import Conflict
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.subscription import SubscriptionUpdate

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_history_is_newest_first_and_expires(aws_env) -> None:
    store = DynamoSubscriptionStore("SubscriptionsTable", history_retention_days=30)
    current = None
    for i, subscribed in enumerate([False, True, False]):
        new, change = apply_update(
            "store@example.com",
            current,
            SubscriptionUpdate(subscribed=subscribed),
            source="api",
            now=T0 + timedelta(minutes=i),
        )
        store.save(new, change, expected_version=current.version if current else None)
        current = new
    state, history = store.get("store@example.com")
    assert state is not None and state.version == 3 and state.subscribed is False
    assert [h.subscribed for h in history] == [False, True, False]
    item = aws_env.client("dynamodb").query(
        TableName="SubscriptionsTable",
        KeyConditionExpression="pk = :e AND begins_with(sk, :h)",
        ExpressionAttributeValues={":e": {"S": "store@example.com"}, ":h": {"S": "HIST#"}},
    )["Items"][0]
    assert int(item["expires_at"]["N"]) == int((T0 + timedelta(days=30)).timestamp())


def test_stale_version_is_a_conflict_and_nothing_is_written(aws_env) -> None:
    store = DynamoSubscriptionStore("SubscriptionsTable", history_retention_days=30)
    first, change = apply_update("race@example.com", None, SubscriptionUpdate(subscribed=False), source="api", now=T0)
    store.save(first, change, expected_version=None)
    second, change2 = apply_update("race@example.com", None, SubscriptionUpdate(subscribed=True), source="api", now=T0)
    with pytest.raises(Conflict):
        store.save(second, change2, expected_version=None)
    state, history = store.get("race@example.com")
    assert state.subscribed is False and len(history) == 1


def test_unknown_address_reads_as_nothing(aws_env) -> None:
    store = DynamoSubscriptionStore("SubscriptionsTable", history_retention_days=30)
    assert store.get("nobody@example.com") == (None, [])
