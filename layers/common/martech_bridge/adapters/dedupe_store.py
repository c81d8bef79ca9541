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

    def seen_many(self, keys: list[str]) -> set[str]:
        """Which of these keys have markers: BatchGetItem, 100 keys a call."""
        found: set[str] = set()
        unique = sorted(set(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self._table_name: {
                    "Keys": [{"pk": k} for k in unique[start : start + 100]],
                    "ProjectionExpression": "pk",
                }
            }
            for _ in range(8):
                try:
                    answer = aws.dynamodb_resource().batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise DependencyUnavailable("Dedupe store is unavailable") from exc
                found |= {item["pk"] for item in answer["Responses"].get(self._table_name, [])}
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable("Dedupe store kept throttling the read")
        return found

    def mark_many(self, keys: list[str]) -> None:
        now = datetime.now(UTC)
        expires = int((now + KEEP).timestamp())
        try:
            with self._table.batch_writer(overwrite_by_pkeys=["pk"]) as batch:
                for key in keys:
                    batch.put_item(Item={"pk": key, "seen_at": now.isoformat(), "expires_at": expires})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Dedupe store is unavailable") from exc
