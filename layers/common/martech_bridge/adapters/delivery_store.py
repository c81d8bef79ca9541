"""Deliveries in DynamoDB: pk = delivery id, with sk "D" for the record and "A#0001"... for its attempts, so one
Query returns a delivery with its history. Status changes are conditional: an attempt is *claimed* (attempt
number and lease checked), so a duplicate queue message can never repeat a call that is done or running.
Daily request counters per kintone app live beside them (pk "BUDGET#...")."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.delivery import Attempt, Delivery, DeliveryStatus

RECORD_SK = "D"


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class DeliveryStore:
    def __init__(self, table_name: str, retention_days: int) -> None:
        self._table_name = table_name
        self._retention = timedelta(days=retention_days)

    @property
    def _table(self) -> Any:
        return aws.dynamodb_table(self._table_name)

    # ------------------------------------------------------------------ reads
    def get(self, delivery_id: str) -> tuple[Delivery | None, list[Attempt]]:
        from boto3.dynamodb.conditions import Key

        try:
            items = self._table.query(KeyConditionExpression=Key("pk").eq(delivery_id), ConsistentRead=True)["Items"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        record = next((i for i in items if i["sk"] == RECORD_SK), None)
        attempts = [Attempt.model_validate(_plain(i)) for i in items if i["sk"].startswith("A#")]
        return (self._from_item(record) if record else None), sorted(attempts, key=lambda a: a.number)

    # ------------------------------------------------------------------ writes
    def create(self, delivery: Delivery) -> Delivery | None:
        """Store a new delivery; if one with this id exists already, return it instead (idempotency)."""
        try:
            self._table.put_item(Item=self._to_item(delivery), ConditionExpression="attribute_not_exists(pk)")
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise DependencyUnavailable("Delivery store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        existing, _ = self.get(delivery.delivery_id)
        return existing

    def delete(self, delivery_id: str) -> None:
        try:
            self._table.delete_item(Key={"pk": delivery_id, "sk": RECORD_SK})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc

    def claim(self, delivery_id: str, attempt: int, lease_seconds: float) -> tuple[Delivery, bool] | None:
        """Take the lease for attempt number `attempt` (the one after the `attempt - 1` recorded). Returns the
        delivery and whether an earlier holder's lease lapsed mid-attempt (it may have reached the target),
        or None if the attempt is not this caller's to make (done, running elsewhere, or final)."""
        now = _now()
        try:
            old = self._table.update_item(
                Key={"pk": delivery_id, "sk": RECORD_SK},
                UpdateExpression="SET #s = :running, lease_until_ms = :lease, updated_at = :now, "
                "gsi1pk = :g, gsi1sk = :now",
                ConditionExpression="attempts = :done AND "
                "(#s = :pending OR (#s = :running AND lease_until_ms < :nowms))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": DeliveryStatus.IN_PROGRESS.value,
                    ":pending": DeliveryStatus.PENDING.value,
                    ":lease": _ms(now + timedelta(seconds=lease_seconds)),
                    ":now": now.isoformat(),
                    ":nowms": _ms(now),
                    ":done": attempt - 1,
                    ":g": f"STATUS#{DeliveryStatus.IN_PROGRESS.value}",
                },
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        delivery = self._from_item(old).model_copy(update={"status": DeliveryStatus.IN_PROGRESS})
        return delivery, old["status"] == DeliveryStatus.IN_PROGRESS.value

    def record_attempt(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_attempt_at: datetime | None = None,
        response: tuple[int, dict[str, Any]] | None = None,
        last_error: str | None = None,
    ) -> Delivery:
        """Write an attempt and the delivery's new state in one transaction (only if this caller holds the
        attempt's lease)."""
        from boto3.dynamodb.types import TypeSerializer

        now = _now()
        updated = delivery.model_copy(
            update={
                "status": status,
                "attempts": attempt.number,
                "updated_at": now,
                "lease_until_ms": None,
                "next_attempt_at": next_attempt_at,
                "last_error": last_error,
                **({"response_status": response[0], "response_body": response[1]} if response else {}),
            }
        )
        serializer = TypeSerializer()
        attempt_item = {
            "pk": delivery.delivery_id,
            "sk": f"A#{attempt.number:04d}",
            **attempt.model_dump(mode="json"),
            "expires_at": self._expires(delivery.created_at),
        }
        try:
            aws.client("dynamodb").transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table_name,
                            "Item": {k: serializer.serialize(v) for k, v in self._to_item(updated).items()},
                            "ConditionExpression": "attempts = :done AND #s = :running",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {
                                ":done": {"N": str(attempt.number - 1)},
                                ":running": {"S": DeliveryStatus.IN_PROGRESS.value},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table_name,
                            "Item": {k: serializer.serialize(v) for k, v in attempt_item.items() if v is not None},
                        }
                    },
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        return updated

    def mark(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        *,
        last_error: str,
        response: tuple[int, dict[str, Any]] | None = None,
    ) -> Delivery:
        """Settle a delivery without an attempt (gave up before calling, route gone, queueing failed)."""
        updated = delivery.model_copy(
            update={
                "status": status,
                "updated_at": _now(),
                "lease_until_ms": None,
                "last_error": last_error,
                **({"response_status": response[0], "response_body": response[1]} if response else {}),
            }
        )
        try:
            self._table.put_item(
                Item=self._to_item(updated),
                ConditionExpression="attempts = :done",
                ExpressionAttributeValues={":done": delivery.attempts},
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        return updated

    def reopen(self, delivery_id: str, extra_attempts: int) -> Delivery | None:
        """Replay: a failed or rejected delivery becomes pending again with `extra_attempts` more allowed.
        None when it is not in a final failed state (already delivered, or still running)."""
        now = _now()
        try:
            new = self._table.update_item(
                Key={"pk": delivery_id, "sk": RECORD_SK},
                UpdateExpression="SET #s = :pending, max_attempts = attempts + :extra, replays = replays + :one, "
                "updated_at = :now, gsi1pk = :g, gsi1sk = :now REMOVE lease_until_ms",
                ConditionExpression="#s IN (:failed, :rejected)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":pending": DeliveryStatus.PENDING.value,
                    ":extra": extra_attempts,
                    ":one": 1,
                    ":now": now.isoformat(),
                    ":failed": DeliveryStatus.FAILED.value,
                    ":rejected": DeliveryStatus.REJECTED.value,
                    ":g": f"STATUS#{DeliveryStatus.PENDING.value}",
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        return self._from_item(new)

    def count_request(self, counter: str, day: str) -> int:
        """Add one to a daily counter and return the new total."""
        try:
            result = self._table.update_item(
                Key={"pk": f"BUDGET#{counter}", "sk": day},
                UpdateExpression="ADD requests :one SET expires_at = if_not_exists(expires_at, :exp)",
                ExpressionAttributeValues={":one": 1, ":exp": int((_now() + timedelta(days=3)).timestamp())},
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        return int(result["Attributes"]["requests"])

    # ------------------------------------------------------------------ items
    def _expires(self, created_at: datetime) -> int:
        return int((created_at + self._retention).timestamp())

    def _to_item(self, delivery: Delivery) -> dict[str, Any]:
        data = delivery.model_dump(mode="json", exclude={"payload", "response_body"})
        item = {k: v for k, v in data.items() if v is not None}
        item.update(
            {
                "pk": delivery.delivery_id,
                "sk": RECORD_SK,
                "payload_json": json.dumps(delivery.payload, ensure_ascii=False),
                "gsi1pk": f"STATUS#{delivery.status.value}",
                "gsi1sk": delivery.updated_at.isoformat(),
                "expires_at": self._expires(delivery.created_at),
            }
        )
        if delivery.response_body is not None:
            item["response_json"] = json.dumps(delivery.response_body, ensure_ascii=False)
        return item

    @staticmethod
    def _from_item(item: dict[str, Any]) -> Delivery:
        data = _plain(item)
        data["payload"] = json.loads(data.pop("payload_json", "{}"))
        if "response_json" in data:
            data["response_body"] = json.loads(data.pop("response_json"))
        return Delivery.model_validate(data)


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON values (Decimal numbers become int)."""
    from decimal import Decimal

    out = {}
    for key, value in item.items():
        if key in ("pk", "sk", "gsi1pk", "gsi1sk", "expires_at"):
            continue
        out[key] = int(value) if isinstance(value, Decimal) else value
    return out
