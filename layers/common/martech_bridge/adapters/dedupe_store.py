"""Dedupe markers: one item per provider event id, kept 72 h (SendGrid retries for 24 h), so a re-posted
event has no second effect."""

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable

KEEP = timedelta(hours=72)


class DedupeStore:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return aws.dynamodb_table(self._table_name)

    def seen(self, key: str) -> bool:
        try:
            return "Item" in self._table.get_item(Key={"pk": key}, ProjectionExpression="pk")
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Dedupe store is unavailable") from exc

    def mark(self, key: str) -> None:
        now = datetime.now(UTC)
        try:
            self._table.put_item(
                Item={"pk": key, "seen_at": now.isoformat(), "expires_at": int((now + KEEP).timestamp())}
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Dedupe store is unavailable") from exc
