"""Idempotency records for sends (24 h): the first request with a key claims it; a repeat gets the first
answer, 409 while that one is still running, or 422 if its body differs."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Claimed:
    """A key seen before, and what became of its request."""

    request_hash: str
    done: bool
    status_code: int | None
    body: dict[str, Any] | None


class IdempotencyStore:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return aws.dynamodb_table(self._table_name)

    def claim(self, key: str, request_hash: str) -> Claimed | None:
        """None when this caller now holds the key; otherwise the earlier request's record."""
        now = datetime.now(UTC)
        try:
            self._table.put_item(
                Item={
                    "pk": key,
                    "request_hash": request_hash,
                    "done": False,
                    "created_at": now.isoformat(),
                    "expires_at": int((now + WINDOW).timestamp()),
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                ExpressionAttributeValues={":now": int(now.timestamp())},
            )
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise DependencyUnavailable("Idempotency store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc
        try:
            item = self._table.get_item(Key={"pk": key}, ConsistentRead=True).get("Item") or {}
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc
        body = json.loads(item["response_json"]) if "response_json" in item else None
        return Claimed(
            str(item.get("request_hash", "")),
            bool(item.get("done")),
            int(item["response_status"]) if "response_status" in item else None,
            body,
        )

    def finish(self, key: str, status_code: int, body: dict[str, Any]) -> None:
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="SET done = :t, response_status = :s, response_json = :b",
                ExpressionAttributeValues={":t": True, ":s": status_code, ":b": json.dumps(body, ensure_ascii=False)},
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc

    def release(self, key: str) -> None:
        """Forget a claim whose request sent nothing (it failed before any provider call)."""
        try:
            self._table.delete_item(Key={"pk": key})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc
