"""Cached, lazily created AWS clients from one shared boto3 session, and the registry of adapter factories
they feed. Created on first use, so that moto (tests, local stack) is up first and warm invocations reuse
them. The endpoint comes from botocore's own AWS_ENDPOINT_URL handling."""

import threading
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

import boto3
from botocore.config import Config

# Fail fast inside API Gateway's 30 s: short connect timeout, standard retry mode with a small budget.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
# boto3 sessions are not safe to create clients from concurrently (the message store writes from threads).
_LOCK = threading.Lock()
T = TypeVar("T")
_FACTORIES: list[Any] = []


@cache
def session() -> boto3.session.Session:
    """One session per process: each session loads botocore's service data afresh (~40 ms per extra client
    on first use), while clients of one session share what it loaded."""
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    with _LOCK:
        return session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def dynamodb_resource() -> Any:
    with _LOCK:
        return session().resource("dynamodb", config=_CONFIG)  # type: ignore[call-overload]


@cache
def dynamodb_table(name: str) -> Any:
    return dynamodb_resource().Table(name)


def factory(build: Callable[[], T]) -> Callable[[], T]:
    """An adapter's own factory: built once per process from the settings, forgotten by reset()."""
    cached = cache(build)
    _FACTORIES.append(cached)
    return cached


class TableStore:
    """A store over one DynamoDB table whose items expire after a retention period (TTL)."""

    def __init__(self, table_name: str, retention_days: int) -> None:
        self._table_name = table_name
        self._retention = timedelta(days=retention_days)

    @property
    def _table(self) -> Any:
        return dynamodb_table(self._table_name)


def reset() -> None:
    """Drop cached clients and adapters (tests point them at a fresh moto server)."""
    for cached in _FACTORIES:
        cached.cache_clear()
    session.cache_clear()
    client.cache_clear()
    dynamodb_resource.cache_clear()
    dynamodb_table.cache_clear()
