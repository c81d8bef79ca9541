"""Replies in the messages table: one item per received reply (pk "REPLY#<reply_id>", sk "R"), written once.
LogIndex lists them without a scan: "REPLYTO#<dispatch_id>" for replies tied to a message, "REPLY#UNMATCHED"
for the rest (human replies are few: one key holds them comfortably)."""

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable

UNMATCHED = "REPLY#UNMATCHED"
HIDDEN = frozenset({"pk", "sk", "gsi2pk", "gsi2sk", "expires_at"})


class ReplyStore(aws.TableStore):
    def save(self, item: dict[str, Any]) -> dict[str, Any]:
        """Write a reply unless it is stored already; the stored one either way (the first write wins)."""
        reply_id = item["reply_id"]
        received = item["received_at"]
        dispatch_id = item.get("dispatch_id")
        record = {
            **{k: v for k, v in item.items() if v not in (None, "", [])},
            "pk": f"REPLY#{reply_id}",
            "sk": "R",
            "gsi2pk": f"REPLYTO#{dispatch_id}" if dispatch_id else UNMATCHED,
            "gsi2sk": f"{received}#{reply_id}",
            "expires_at": int((datetime.now(UTC) + self._retention).timestamp()),
        }
        try:
            self._table.put_item(Item=record, ConditionExpression="attribute_not_exists(pk)")
            return _shown(record)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise DependencyUnavailable("Reply store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Reply store is unavailable") from exc
        stored = self.get(reply_id)
        if stored is None:  # written and gone between two calls: only its TTL deletes it
            raise DependencyUnavailable("Reply store is unavailable")
        return stored

    def get(self, reply_id: str) -> dict[str, Any] | None:
        try:
            found = self._table.get_item(Key={"pk": f"REPLY#{reply_id}", "sk": "R"}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Reply store is unavailable") from exc
        return _shown(found["Item"]) if "Item" in found else None

    def list(
        self, *, dispatch_id: str | None, limit: int, cursor: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Replies to one message (its dispatch id), or the unmatched ones; newest first. With the key to
        start the next page from (None on the last): a page ends at `limit` or at DynamoDB's 1 MB."""
        from boto3.dynamodb.conditions import Key

        key = partition(dispatch_id)
        try:
            answer = self._table.query(
                IndexName="LogIndex",
                KeyConditionExpression=Key("gsi2pk").eq(key),
                ScanIndexForward=False,
                Limit=limit,
                **({"ExclusiveStartKey": cursor} if cursor else {}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Reply store is unavailable") from exc
        return [_shown(i) for i in answer["Items"]], answer.get("LastEvaluatedKey")


def partition(dispatch_id: str | None) -> str:
    """LogIndex's partition of the replies to a message, or of the unmatched ones."""
    return f"REPLYTO#{dispatch_id}" if dispatch_id else UNMATCHED


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    from decimal import Decimal

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == int(value) else float(value)
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in item.items() if k not in HIDDEN}
