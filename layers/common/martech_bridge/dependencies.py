"""Cached factories for the adapters the entrypoints use, built from Settings on first use."""

from functools import cache

from martech_bridge.adapters import aws
from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore, SubscriptionStore
from martech_bridge.config import get_settings


@cache
def subscription_store() -> SubscriptionStore:
    settings = get_settings()
    return DynamoSubscriptionStore(settings.require("subscriptions_table"), settings.retention_days)


def reset() -> None:
    subscription_store.cache_clear()
    aws.reset()
