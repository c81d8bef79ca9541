"""The adapters' factories in one place, for the events flow and tests; each lives beside its adapter, and an
entrypoint imports only the ones its path uses (importing this module loads every adapter)."""

from martech_bridge.adapters import aws
from martech_bridge.adapters.event_queue import event_payloads, event_queue
from martech_bridge.adapters.idempotency_store import idempotency_store
from martech_bridge.adapters.message_store import message_store
from martech_bridge.adapters.quota_store import QuotaStore
from martech_bridge.adapters.reply_store import ReplyStore
from martech_bridge.adapters.subscription_store import subscription_store
from martech_bridge.config import get_settings
from martech_bridge.deliveries import delivery_engine

__all__ = [
    "delivery_engine",
    "event_payloads",
    "event_queue",
    "idempotency_store",
    "message_store",
    "quota_store",
    "reply_store",
    "subscription_store",
]


@aws.factory
def reply_store() -> ReplyStore:
    settings = get_settings()
    return ReplyStore(settings.require("messages_table"), settings.retention_days)


@aws.factory
def quota_store() -> QuotaStore:
    settings = get_settings()
    return QuotaStore(settings.require("messages_table"), settings.retention_days)


def reset() -> None:
    aws.reset()
