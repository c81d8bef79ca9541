"""Idempotency records for sends (24 h): the first request with a key claims it for a lease and a dispatch
id of its own; a repeat gets the first answer, 409 while the first still holds its lease, 422 if its body
differs, or - once the lease ran out unfinished (the first process died) - takes the claim over with the
same dispatch id and the phase it reached, so nothing is stuck for 24 h and nothing is sent twice."""

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.config import get_settings
from martech_bridge.errors import DependencyUnavailable

WINDOW = timedelta(hours=24)
# Longer than a send can run (SendFunction's timeout is 29 s): past it, an unfinished claim is abandoned.
LEASE = timedelta(seconds=60)
Phase = Literal["claimed", "calling"]  # "calling": the provider may have been called


class Claimed(msgspec.Struct, frozen=True):
    """A key seen before, and what became of its request."""

    request_hash: str
    done: bool
    status_code: int | None
    body: dict[str, Any] | None
    dispatch_id: str | None = None
    phase: Phase = "claimed"
    stale: bool = False  # unfinished and past its lease: its process is gone
    unsaved: dict[str, Any] | None = None  # message records still to be written (see finish)
    lease_until: int = 0


def _pack(value: Any) -> bytes:
    # Compressed: an answer for 1,000 recipients can exceed DynamoDB's 400 KB item limit as plain JSON.
    return zlib.compress(json.dumps(value, ensure_ascii=False).encode("utf-8"), 6)


def _unpack(value: Any) -> Any:
    return json.loads(zlib.decompress(bytes(value.value if hasattr(value, "value") else value)))


class IdempotencyStore:
    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    @property
    def _table(self) -> Any:
        return aws.dynamodb_table(self._table_name)

    def claim(self, key: str, request_hash: str, dispatch_id: str) -> Claimed | None:
        """None when this caller now holds the key (for `dispatch_id`); otherwise the earlier request's record."""
        now = datetime.now(UTC)
        try:
            self._table.put_item(
                Item={
                    "pk": key,
                    "request_hash": request_hash,
                    "dispatch_id": dispatch_id,
                    "phase": "claimed",
                    "done": False,
                    "created_at": now.isoformat(),
                    "lease_until": int((now + LEASE).timestamp()),
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
        done = bool(item.get("done"))
        lease_until = int(item.get("lease_until", 0))
        body = None
        if "response_gz" in item:
            body = _unpack(item["response_gz"])
        elif "response_json" in item:  # written before answers were compressed
            body = json.loads(item["response_json"])
        return Claimed(
            str(item.get("request_hash", "")),
            done,
            int(item["response_status"]) if "response_status" in item else None,
            body,
            dispatch_id=str(item["dispatch_id"]) if item.get("dispatch_id") else None,
            phase="calling" if item.get("phase") == "calling" else "claimed",
            stale=not done and lease_until < int(now.timestamp()),
            unsaved=_unpack(item["unsaved_gz"]) if "unsaved_gz" in item else None,
            lease_until=lease_until,
        )

    def take_over(self, key: str, earlier: Claimed) -> bool:
        """Take an abandoned claim (stale, unfinished) for a new lease; False when another repeat got it first."""
        now = datetime.now(UTC)
        try:
            self._table.update_item(
                Key={"pk": key},
                UpdateExpression="SET lease_until = :new",
                ConditionExpression="done = :f AND lease_until = :old",
                ExpressionAttributeValues={
                    ":new": int((now + LEASE).timestamp()),
                    ":old": earlier.lease_until,
                    ":f": False,
                },
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("Idempotency store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc

    def calling(self, key: str) -> None:
        """Mark that the provider is about to be called: from here on, a take-over must not send blindly."""
        self._update(key, "SET phase = :p", {":p": "calling"})

    def finish(self, key: str, status_code: int, body: dict[str, Any], unsaved: dict[str, Any] | None = None) -> None:
        """Keep the answer. `unsaved`: the message records that could not be written yet; a repeat writes them."""
        expression = "SET done = :t, response_status = :s, response_gz = :b"
        values: dict[str, Any] = {":t": True, ":s": status_code, ":b": _pack(body)}
        if unsaved is not None:
            expression += ", unsaved_gz = :u"
            values[":u"] = _pack(unsaved)
        self._update(key, expression, values)

    def saved(self, key: str) -> None:
        """The records kept by `finish(unsaved=...)` are written now."""
        self._update(key, "REMOVE unsaved_gz", None)

    def release(self, key: str) -> None:
        """Forget a claim whose request sent nothing (it failed before any provider call)."""
        try:
            self._table.delete_item(Key={"pk": key})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc

    def _update(self, key: str, expression: str, values: dict[str, Any] | None) -> None:
        kwargs: dict[str, Any] = {"Key": {"pk": key}, "UpdateExpression": expression}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._table.update_item(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Idempotency store is unavailable") from exc


@aws.factory
def idempotency_store() -> IdempotencyStore:
    return IdempotencyStore(get_settings().require("idempotency_table"))
