"""Subscriptions in DynamoDB: one STATE item per address plus HIST# items, all under pk = the address.

One Query (newest first) returns the state and its recent history; a change writes both in one
transaction, conditioned on the version read, so concurrent writers cannot lose an update.
"""

from datetime import timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.config import get_settings
from martech_bridge.errors import Conflict, DependencyUnavailable
from martech_bridge.models.subscription import Subscription, SubscriptionChange

STATE_SK = "STATE"
HISTORY_PREFIX = "HIST#"
HISTORY_LIMIT = 50


class SubscriptionStore(Protocol):
    def get(self, email: str) -> tuple[Subscription | None, list[SubscriptionChange]]: ...

    def states(self, emails: list[str]) -> dict[str, Subscription]: ...

    def save(self, new: Subscription, change: SubscriptionChange, *, expected_version: int | None) -> None: ...

    def record_release(
        self, email: str, version: int, provider: str, outcome: str, change: SubscriptionChange
    ) -> bool: ...


class DynamoSubscriptionStore:
    def __init__(self, table_name: str, history_retention_days: int) -> None:
        self._table_name = table_name
        self._retention = timedelta(days=history_retention_days)

    def get(self, email: str) -> tuple[Subscription | None, list[SubscriptionChange]]:
        from boto3.dynamodb.conditions import Key

        try:
            # "STATE" sorts after every "HIST#...", so descending order yields state first, then newest history.
            page = aws.dynamodb_table(self._table_name).query(
                KeyConditionExpression=Key("pk").eq(email),
                ScanIndexForward=False,
                Limit=HISTORY_LIMIT + 1,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Subscription store is unavailable") from exc
        state: Subscription | None = None
        history: list[SubscriptionChange] = []
        for item in page.get("Items", []):
            if item["sk"] == STATE_SK:
                state = Subscription.model_validate(_from_item(item))
            elif item["sk"].startswith(HISTORY_PREFIX):
                history.append(SubscriptionChange.model_validate(_from_item(item)))
        return state, history[:HISTORY_LIMIT]

    def states(self, emails: list[str]) -> dict[str, Subscription]:
        """Current state of many addresses: BatchGetItem, 100 keys a call (only addresses with a record)."""
        found: dict[str, Subscription] = {}
        unique = sorted(set(emails))
        for start in range(0, len(unique), 100):
            keys = [{"pk": {"S": e}, "sk": {"S": STATE_SK}} for e in unique[start : start + 100]]
            request: dict[str, Any] = {self._table_name: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(8):  # unprocessed keys come back under throttling; ask again
                try:
                    answer = aws.client("dynamodb").batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise DependencyUnavailable("Subscription store is unavailable") from exc
                for item in answer["Responses"].get(self._table_name, []):
                    plain = {k: _deserialize(v) for k, v in item.items()}
                    found[plain["pk"]] = Subscription.model_validate(_from_item(plain))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable("Subscription store kept throttling the read")
        return found

    def save(self, new: Subscription, change: SubscriptionChange, *, expected_version: int | None) -> None:
        state_item = {"pk": new.email, "sk": STATE_SK, **new.model_dump(mode="json")}
        history_item = {
            "pk": new.email,
            "sk": f"{HISTORY_PREFIX}{change.changed_at.isoformat()}#{new.version:010d}",
            **change.model_dump(mode="json"),
            "expires_at": int((change.changed_at + self._retention).timestamp()),
        }
        if expected_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(expected_version)}},
            }
        try:
            aws.client("dynamodb").transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table_name, "Item": _serialize(state_item), **condition}},
                    {"Put": {"TableName": self._table_name, "Item": _serialize(history_item)}},
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or not reasons:
                    raise Conflict(
                        "The subscription changed while this request was applied; read it again and retry",
                        code="concurrent_update",
                    ) from None
            raise DependencyUnavailable("Subscription store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Subscription store is unavailable") from exc

    def record_release(self, email: str, version: int, provider: str, outcome: str, change: SubscriptionChange) -> bool:
        """A provider's release outcome into the state (only while it is still that re-subscription's pending
        release) and its history entry, in one transaction; False when the state has moved on."""
        history_item = {
            "pk": email,
            "sk": f"{HISTORY_PREFIX}{change.changed_at.isoformat()}#{version:010d}#release#{provider}",
            **change.model_dump(mode="json"),
            "expires_at": int((change.changed_at + self._retention).timestamp()),
        }
        update = {
            "TableName": self._table_name,
            "Key": {"pk": {"S": email}, "sk": {"S": STATE_SK}},
            "UpdateExpression": "SET #r.#p = :o",
            "ConditionExpression": "#v = :v AND #r.#p = :pending",
            "ExpressionAttributeNames": {"#r": "release", "#p": provider, "#v": "version"},
            "ExpressionAttributeValues": {
                ":o": {"S": outcome},
                ":v": {"N": str(version)},
                ":pending": {"S": "pending"},
            },
        }
        try:
            aws.client("dynamodb").transact_write_items(
                TransactItems=[
                    {"Update": update},
                    {"Put": {"TableName": self._table_name, "Item": _serialize(history_item)}},
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    return False
            raise DependencyUnavailable("Subscription store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Subscription store is unavailable") from exc
        return True


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in item.items() if v is not None}


def _deserialize(value: dict[str, Any]) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer().deserialize(value)


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}
    if "version" in out:
        out["version"] = int(out["version"])
    return out


@aws.factory
def subscription_store() -> SubscriptionStore:
    settings = get_settings()
    return DynamoSubscriptionStore(settings.require("subscriptions_table"), settings.retention_days)
