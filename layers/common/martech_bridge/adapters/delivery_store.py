"""Deliveries in DynamoDB: one item per delivery (pk = delivery id, sk "D") holding its payload, state and
every attempt. Status changes are conditional: an attempt is *claimed* (attempt number and lease checked),
so a duplicate queue message can never repeat a call that is done or running, and recording it is one
conditional update. Daily request counters per kintone app live beside them (pk "BUDGET#...")."""

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


class DeliveryStore(aws.TableStore):
    # ------------------------------------------------------------------ reads
    def get(self, delivery_id: str) -> Delivery | None:
        try:
            item = self._table.get_item(Key={"pk": delivery_id, "sk": RECORD_SK}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Delivery store is unavailable") from exc
        return self._from_item(item) if item else None

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
        return self.get(delivery.delivery_id)

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
        """Append an attempt and set the delivery's new state in one conditional update (only while this
        caller holds the attempt's lease): atomic without a transaction."""
        now = _now()
        updated = delivery.model_copy(
            update={
                "status": status,
                "attempts": attempt.number,
                "updated_at": now,
                "lease_until_ms": None,
                "next_attempt_at": next_attempt_at,
                "last_error": last_error,
                "attempt_history": [*delivery.attempt_history, attempt],
                **({"response_status": response[0], "response_body": response[1]} if response else {}),
            }
        )
        sets: dict[str, Any] = {
            "#s": status.value,
            "attempts": attempt.number,
            "updated_at": now.isoformat(),
            "gsi1pk": f"STATUS#{status.value}",
            "gsi1sk": now.isoformat(),
        }
        removes = ["lease_until_ms"]
        optional = (
            ("next_attempt_at", next_attempt_at.isoformat() if next_attempt_at else None),
            ("last_error", last_error),
        )
        for name, value in optional:
            if value is None:
                removes.append(name)
            else:
                sets[name] = value
        if response:
            sets["response_status"] = response[0]
            sets["response_json"] = json.dumps(response[1], ensure_ascii=False)
        values: dict[str, Any] = {}
        clauses = []
        for i, (name, value) in enumerate(sets.items()):
            values[f":v{i}"] = value
            clauses.append(f"{name} = :v{i}")
        clauses.append("attempt_history = list_append(if_not_exists(attempt_history, :empty), :attempt)")
        attempt_item = {k: v for k, v in attempt.model_dump(mode="json").items() if v is not None}
        values.update(
            {
                ":empty": [],
                ":attempt": [attempt_item],
                ":done": attempt.number - 1,
                ":running": DeliveryStatus.IN_PROGRESS.value,
            }
        )
        try:
            self._table.update_item(
                Key={"pk": delivery.delivery_id, "sk": RECORD_SK},
                UpdateExpression="SET " + ", ".join(clauses) + " REMOVE " + ", ".join(removes),
                ConditionExpression="attempts = :done AND #s = :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
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

    def count_request(self, counter: str, day: str, requests: int = 1) -> int:
        """Add `requests` to a daily counter and return the new total."""
        try:
            result = self._table.update_item(
                Key={"pk": f"BUDGET#{counter}", "sk": day},
                UpdateExpression="ADD requests :one SET expires_at = if_not_exists(expires_at, :exp)",
                ExpressionAttributeValues={":one": requests, ":exp": int((_now() + timedelta(days=3)).timestamp())},
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
        data["attempt_history"] = [{k: v for k, v in a.items() if v is not None} for a in data["attempt_history"]]
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
        data["attempt_history"] = [_plain(a) for a in data.get("attempt_history", [])]
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
