"""Cached factories for the adapters the entrypoints use, built from Settings on first use."""

from functools import cache
from typing import TYPE_CHECKING

from martech_bridge.adapters import aws
from martech_bridge.adapters.delivery_queue import DeliveryQueue
from martech_bridge.adapters.delivery_store import DeliveryStore
from martech_bridge.adapters.event_queue import EventQueue
from martech_bridge.adapters.idempotency_store import IdempotencyStore
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.adapters.quota_store import QuotaStore
from martech_bridge.adapters.reply_store import ReplyStore
from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore, SubscriptionStore
from martech_bridge.config import get_settings

if TYPE_CHECKING:
    from martech_bridge.deliveries import Engine


@cache
def subscription_store() -> SubscriptionStore:
    settings = get_settings()
    return DynamoSubscriptionStore(settings.require("subscriptions_table"), settings.retention_days)


@cache
def idempotency_store() -> IdempotencyStore:
    return IdempotencyStore(get_settings().require("idempotency_table"))


@cache
def message_store() -> MessageStore:
    settings = get_settings()
    return MessageStore(settings.require("messages_table"), settings.retention_days)


@cache
def reply_store() -> ReplyStore:
    settings = get_settings()
    return ReplyStore(settings.require("messages_table"), settings.retention_days)


@cache
def quota_store() -> QuotaStore:
    settings = get_settings()
    return QuotaStore(settings.require("messages_table"), settings.retention_days)


@cache
def delivery_engine() -> "Engine":
    from martech_bridge.deliveries import Engine

    settings = get_settings()
    store = DeliveryStore(
        settings.require("deliveries_table"), settings.retention_days, grace_seconds=settings.sweep_grace_seconds
    )
    queue = DeliveryQueue(settings.require("delivery_queue_url"), settings.delivery_dlq_url)
    return Engine(store, queue, settings)


@cache
def event_queue() -> EventQueue:
    settings = get_settings()
    return EventQueue(settings.require("event_queue_url"), settings.require("payload_bucket"))


@cache
def event_payloads() -> EventQueue:
    """The event queue as the worker reads it: a queued post's body, from the bucket when by pointer."""
    settings = get_settings()
    return EventQueue(settings.event_queue_url, settings.require("payload_bucket"))


def reset() -> None:
    subscription_store.cache_clear()
    delivery_engine.cache_clear()
    idempotency_store.cache_clear()
    message_store.cache_clear()
    reply_store.cache_clear()
    quota_store.cache_clear()
    event_queue.cache_clear()
    event_payloads.cache_clear()
    aws.reset()
