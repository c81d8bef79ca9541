"""Cached, lazily created AWS clients. Created on first use, so that moto (tests, local stack) is up first
and warm invocations reuse them. The endpoint comes from botocore's own AWS_ENDPOINT_URL handling."""

from datetime import timedelta
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Fail fast inside API Gateway's 30 s: short connect timeout, standard retry mode with a small budget.
_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def dynamodb_resource() -> Any:
    return boto3.session.Session().resource("dynamodb", config=_CONFIG)


@cache
def dynamodb_table(name: str) -> Any:
    return dynamodb_resource().Table(name)


class TableStore:
    """A store over one DynamoDB table whose items expire after a retention period (TTL)."""

    def __init__(self, table_name: str, retention_days: int) -> None:
        self._table_name = table_name
        self._retention = timedelta(days=retention_days)

    @property
    def _table(self) -> Any:
        return dynamodb_table(self._table_name)


def reset() -> None:
    """Drop cached clients (tests point them at a fresh moto server)."""
    client.cache_clear()
    dynamodb_resource.cache_clear()
    dynamodb_table.cache_clear()
