"""Deliveries in DynamoDB: one item per delivery (pk = delivery id, sk "D") holding its payload, state and
every attempt. Every state change is one conditional write (the edges are in logic/delivery_states.py): an
attempt is *claimed* (attempt number and lease checked), so a duplicate queue message can never repeat a
call that is done or running, and recording it is one conditional update.

Only deliveries that still need something - `pending`, `in_progress`, or `failed` with its DLQ message not
yet sent - carry the sweep index keys (StatusIndex: gsi1pk `OPEN#<shard>`, gsi1sk the time by which it must
have moved, zero-padded ms). The index is sparse, so settled deliveries cost it nothing, and sharded, so no
partition key takes more than a few percent of its writes. Every delivery also carries the list index keys
(ListIndex: gsi2pk `DLV#<shard>`, gsi2sk its creation time and id), written once at creation, so the
console pages through deliveries newest first without a scan; 32 shards, so that one route's busy hour
puts no more on one key than the sweep index does. Daily request counters per kintone app live
beside them (pk "BUDGET#...")."""

import json
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.delivery import Attempt, Delivery, DeliveryStatus, FailureReason

RECORD_SK = "D"
SWEEP_INDEX = "StatusIndex"
SWEEP_SHARDS = 64
INDEX_KEYS = ("gsi1pk", "gsi1sk")
LIST_INDEX = "ListIndex"
LIST_SHARDS = 32
LIST_KEYS = ("gsi2pk", "gsi2sk")
# What a listed delivery shows (ListIndex projects these; the attempts are one GET away).
LISTED = (
    "delivery_id",
    "route",
    "target",
    "status",
    "failure",
    "attempts",
    "max_attempts",
    "created_at",
    "updated_at",
    "last_error",
    "replays",
)
MAX_LIST_PAGES = 20  # pages a filtered listing reads per partition before it answers with a cursor
# DynamoDB's item limit is 400 KB; the payload may take this much, leaving room for up to 50 attempts,
# the caller's answer and the other attributes.
MAX_STORED_PAYLOAD_BYTES = 256 * 1024
MAX_STORED_ANSWER_BYTES = 16 * 1024
_UNAVAILABLE = "Delivery store is unavailable"


def now() -> datetime:
    """The deliveries' one clock (the fault-injection tests move it forward to lapse leases)."""
    return datetime.now(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def sweep_shard(delivery_id: str) -> str:
    return f"OPEN#{zlib.crc32(delivery_id.encode()) % SWEEP_SHARDS:02d}"


def list_keys(delivery: Delivery) -> dict[str, str]:
    shard = zlib.crc32(delivery.delivery_id.encode()) % LIST_SHARDS
    position = f"{list_time(delivery.created_at)}#{delivery.delivery_id}"
    return {"gsi2pk": f"DLV#{shard:02d}", "gsi2sk": position}


def list_time(moment: datetime) -> str:
    """A time as ListIndex sorts it: fixed-width UTC, so string order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sort_ms(ms: int) -> str:
    return f"{max(0, ms):015d}"


def payload_json(payload: dict[str, Any]) -> str:
    """The payload as it is stored (and so as it is measured against MAX_STORED_PAYLOAD_BYTES)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class DeliveryStore(aws.TableStore):
    def __init__(self, table_name: str, retention_days: int, grace_seconds: float = 60) -> None:
        super().__init__(table_name, retention_days)
        # How long past its due time a pending delivery (or an unsent DLQ message) waits for the normal path
        # before the sweeper steps in.
        self.grace = timedelta(seconds=grace_seconds)

    # ------------------------------------------------------------------ reads
    def get(self, delivery_id: str) -> Delivery | None:
        try:
            item = self._table.get_item(Key={"pk": delivery_id, "sk": RECORD_SK}, ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return self._from_item(item) if item else None

    def due(self, shard: int, now: datetime, limit: int = 100) -> list[str]:
        """Ids of deliveries in one sweep shard whose time to move has passed."""
        try:
            items = self._table.query(
                IndexName=SWEEP_INDEX,
                KeyConditionExpression=Key("gsi1pk").eq(f"OPEN#{shard:02d}") & Key("gsi1sk").lte(_sort_ms(_ms(now))),
                ProjectionExpression="pk",
                Limit=limit,
            )["Items"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return [str(item["pk"]) for item in items]

    def listing(
        self,
        *,
        route: str | None,
        statuses: list[str] | None,
        since: str,
        before: str,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Deliveries created in [since, before) (ListIndex positions), newest first, of one route or all, in
        the given states; and the position to continue before, if there may be more. Each shard is read
        newest first and the shards merged; a sparse filter reads at most MAX_LIST_PAGES pages of a shard,
        and then the page ends where that shard stopped, so no delivery is ever skipped."""
        from concurrent.futures import ThreadPoolExecutor

        wanted = Attr("route").eq(route) if route else None
        if statuses:
            wanted = Attr("status").is_in(statuses) if wanted is None else wanted & Attr("status").is_in(statuses)

        def read(shard: int) -> tuple[list[dict[str, Any]], str | None]:
            query: dict[str, Any] = {
                "IndexName": LIST_INDEX,
                "KeyConditionExpression": Key("gsi2pk").eq(f"DLV#{shard:02d}") & Key("gsi2sk").between(since, before),
                "ScanIndexForward": False,
                "Limit": limit,
            }
            if wanted is not None:
                query["FilterExpression"] = wanted
                # DynamoDB applies Limit before the filter: read more per request, fewer requests per match.
                query["Limit"] = min(1000, limit * 8)
            found: list[dict[str, Any]] = []
            for _ in range(MAX_LIST_PAGES):
                page = self._table.query(**query)
                found += [i for i in page["Items"] if i["gsi2sk"] < before]
                last = page.get("LastEvaluatedKey")
                if len(found) >= limit or not last:
                    return found[:limit], None
                query["ExclusiveStartKey"] = last
            return found, str(last["gsi2sk"])  # stopped early: nothing below this position is known

        try:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="list") as pool:
                answers = list(pool.map(read, range(LIST_SHARDS)))
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        stops = [stop for _, stop in answers if stop is not None]
        floor = max(stops) if stops else ""
        # The floor is the last position a stopped shard read: that item was read, so it belongs on this page
        # (>=); the next page reads strictly below the cursor and would never see it again.
        items = sorted((i for found, _ in answers for i in found if i["gsi2sk"] >= floor), key=lambda i: i["gsi2sk"])
        items.reverse()
        page = items[:limit]
        after = str(page[-1]["gsi2sk"]) if len(page) == limit else (floor or None)
        return [{k: _plain_value(i.get(k)) for k in LISTED if i.get(k) is not None} for i in page], after

    def daily_counts(self, since: str, before: str) -> dict[tuple[str, str], dict[str, int]]:
        """Deliveries created per (route, day), by state, read from ListIndex (route, state and key only)."""
        from concurrent.futures import ThreadPoolExecutor

        def read(shard: int) -> list[tuple[str, str, str]]:
            query: dict[str, Any] = {
                "IndexName": LIST_INDEX,
                "KeyConditionExpression": Key("gsi2pk").eq(f"DLV#{shard:02d}") & Key("gsi2sk").between(since, before),
                "ProjectionExpression": "gsi2sk, #s, #r",
                "ExpressionAttributeNames": {"#s": "status", "#r": "route"},
            }
            seen: list[tuple[str, str, str]] = []
            while True:
                page = self._table.query(**query)
                seen += [
                    (str(i.get("route", "")), str(i["gsi2sk"])[:10], str(i.get("status", ""))) for i in page["Items"]
                ]
                if "LastEvaluatedKey" not in page:
                    return seen
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        out: dict[tuple[str, str], dict[str, int]] = {}
        try:
            with ThreadPoolExecutor(max_workers=8, thread_name_prefix="count") as pool:
                for seen in pool.map(read, range(LIST_SHARDS)):
                    for route, day, status in seen:
                        counts = out.setdefault((route, day), {})
                        counts[status] = counts.get(status, 0) + 1
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return out

    # ------------------------------------------------------------------ writes
    def create(self, delivery: Delivery) -> Delivery | None:
        """Store a new delivery (in whatever state it starts: a keyless sync delivery is written once, already
        settled); if one with this id exists already, return it instead (idempotency)."""
        try:
            self._table.put_item(Item=self._to_item(delivery), ConditionExpression="attribute_not_exists(pk)")
            return None
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise DependencyUnavailable(_UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return self.get(delivery.delivery_id)

    def claim(self, delivery_id: str, attempt: int, lease_seconds: float) -> tuple[Delivery, bool] | None:
        """pending -> in_progress (or a lapsed in_progress taken over): the lease for attempt number `attempt`
        (the one after the `attempt - 1` recorded). Returns the delivery and whether an earlier holder's lease
        lapsed mid-attempt (it may have reached the target), or None if the attempt is not this caller's to
        make (done, running elsewhere, or final)."""
        moment = now()
        lease = _ms(moment + timedelta(seconds=lease_seconds))
        try:
            old = self._table.update_item(
                Key={"pk": delivery_id, "sk": RECORD_SK},
                UpdateExpression="SET #s = :running, lease_until_ms = :lease, updated_at = :now, "
                "gsi1pk = :shard, gsi1sk = :check",
                ConditionExpression="attempts = :done AND "
                "(#s = :pending OR (#s = :running AND lease_until_ms < :nowms))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":running": DeliveryStatus.IN_PROGRESS.value,
                    ":pending": DeliveryStatus.PENDING.value,
                    ":lease": lease,
                    ":now": moment.isoformat(),
                    ":nowms": _ms(moment),
                    ":done": attempt - 1,
                    ":shard": sweep_shard(delivery_id),
                    ":check": _sort_ms(lease),
                },
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        delivery = self._from_item(old).updated(
            **{"status": DeliveryStatus.IN_PROGRESS, "lease_until_ms": lease, "updated_at": moment}
        )
        return delivery, old["status"] == DeliveryStatus.IN_PROGRESS.value

    def release(self, delivery: Delivery) -> None:
        """in_progress -> pending without an attempt: the holder stopped before calling the target."""
        moment = now()
        self._update(
            delivery.delivery_id,
            sets={
                "#s": DeliveryStatus.PENDING.value,
                "updated_at": moment.isoformat(),
                "gsi1pk": sweep_shard(delivery.delivery_id),
                "gsi1sk": _sort_ms(_ms(moment + self.grace)),
            },
            removes=["lease_until_ms"],
            condition="attempts = :done AND #s = :running AND lease_until_ms = :lease",
            values={
                ":done": delivery.attempts,
                ":running": DeliveryStatus.IN_PROGRESS.value,
                ":lease": delivery.lease_until_ms,
            },
        )

    def record_attempt(
        self, delivery: Delivery, attempt: Attempt, *, status: DeliveryStatus, **outcome: Any
    ) -> Delivery:
        """in_progress -> anything: append an attempt and set the delivery's new state (after_attempt's
        `outcome` fields) in one conditional update, only while this caller holds the attempt's lease."""
        updated = after_attempt(delivery, attempt, status=status, **outcome)
        sets, removes = self._state(updated)
        sets["attempts"] = attempt.number
        attempt_item = {k: v for k, v in msgspec.to_builtins(attempt).items() if v is not None}
        self._update(
            delivery.delivery_id,
            sets=sets,
            removes=["lease_until_ms", "sweeps", *removes],
            condition="attempts = :done AND #s = :running AND lease_until_ms = :lease",
            values={
                ":done": attempt.number - 1,
                ":running": DeliveryStatus.IN_PROGRESS.value,
                ":lease": delivery.lease_until_ms,
                ":empty": [],
                ":attempt": [attempt_item],
            },
            extra="attempt_history = list_append(if_not_exists(attempt_history, :empty), :attempt)",
        )
        return updated

    def settle_without_attempt(
        self, delivery: Delivery, status: DeliveryStatus, *, last_error: str, failure: FailureReason | None = None
    ) -> Delivery:
        """pending or in_progress -> final without calling the target (route removed, stuck), conditional on
        nothing having moved since `delivery` was read."""
        updated = delivery.updated(
            **{
                "status": status,
                "updated_at": now(),
                "lease_until_ms": None,
                "last_error": last_error,
                "failure": failure,
                "dead_letter_pending": status == DeliveryStatus.FAILED,
            }
        )
        sets, removes = self._state(updated)
        self._update(
            delivery.delivery_id,
            sets=sets,
            removes=["lease_until_ms", *removes],
            condition="attempts = :done AND #s = :was",
            values={":done": delivery.attempts, ":was": delivery.status.value},
        )
        return updated

    def dead_lettered(self, delivery_id: str) -> bool:
        """failed (DLQ message pending) -> failed: the message is sent; the delivery leaves the sweep index.
        False when another sweeper or worker got there first."""
        try:
            self._update(
                delivery_id,
                sets={},
                removes=["dead_letter_pending", *INDEX_KEYS],
                condition="#s = :failed AND dead_letter_pending = :yes",
                values={":failed": DeliveryStatus.FAILED.value, ":yes": True},
                conflict_ok=False,
            )
        except StateChanged:
            return False
        return True

    def swept(self, delivery: Delivery, backoff: int = 1) -> None:
        """The sweeper re-queued it: count that, and look again only after `backoff` grace periods."""
        self._update(
            delivery.delivery_id,
            sets={"sweeps": delivery.sweeps + 1, "gsi1sk": _sort_ms(_ms(now() + self.grace * backoff))},
            removes=[],
            condition="attempts = :done AND #s = :was AND attribute_exists(gsi1pk)",
            values={":done": delivery.attempts, ":was": delivery.status.value},
        )

    def reopen(self, delivery_id: str, extra_attempts: int) -> Delivery | None:
        """Replay: a failed or rejected delivery becomes pending again with `extra_attempts` more allowed.
        None when it is not in a final failed state (already delivered, or still running)."""
        moment = now()
        try:
            new = self._table.update_item(
                Key={"pk": delivery_id, "sk": RECORD_SK},
                UpdateExpression="SET #s = :pending, max_attempts = attempts + :extra, replays = replays + :one, "
                "updated_at = :now, gsi1pk = :shard, gsi1sk = :check "
                "REMOVE lease_until_ms, failure, dead_letter_pending, sweeps",
                ConditionExpression="#s IN (:failed, :rejected)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":pending": DeliveryStatus.PENDING.value,
                    ":extra": extra_attempts,
                    ":one": 1,
                    ":now": moment.isoformat(),
                    ":failed": DeliveryStatus.FAILED.value,
                    ":rejected": DeliveryStatus.REJECTED.value,
                    ":shard": sweep_shard(delivery_id),
                    ":check": _sort_ms(_ms(moment + self.grace)),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return self._from_item(new)

    def count_request(self, counter: str, day: str, requests: int = 1) -> int:
        """Add `requests` to a daily counter and return the new total."""
        try:
            result = self._table.update_item(
                Key={"pk": f"BUDGET#{counter}", "sk": day},
                UpdateExpression="ADD requests :one SET expires_at = if_not_exists(expires_at, :exp)",
                ExpressionAttributeValues={":one": requests, ":exp": int((now() + timedelta(days=3)).timestamp())},
                ReturnValues="UPDATED_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        return int(result["Attributes"]["requests"])

    # ------------------------------------------------------------------ plumbing
    def _update(
        self,
        delivery_id: str,
        *,
        sets: dict[str, Any],
        removes: list[str],
        condition: str,
        values: dict[str, Any],
        extra: str | None = None,
        conflict_ok: bool = False,
    ) -> None:
        clauses, bound = [], dict(values)
        for i, (name, value) in enumerate(sets.items()):
            bound[f":v{i}"] = value
            clauses.append(f"{name} = :v{i}")
        if extra:
            clauses.append(extra)
        expression = ("SET " + ", ".join(clauses) if clauses else "") + (
            " REMOVE " + ", ".join(dict.fromkeys(removes)) if removes else ""
        )
        try:
            self._table.update_item(
                Key={"pk": delivery_id, "sk": RECORD_SK},
                UpdateExpression=expression.strip(),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=bound,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                if conflict_ok:
                    return
                raise StateChanged(delivery_id) from exc
            raise DependencyUnavailable(_UNAVAILABLE) from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(_UNAVAILABLE) from exc

    def _index_keys(self, delivery: Delivery) -> dict[str, str] | None:
        """The sweep index keys a delivery in this state carries (None: it is settled, not indexed)."""
        if delivery.status == DeliveryStatus.IN_PROGRESS:
            check = delivery.lease_until_ms or _ms(delivery.updated_at)
        elif delivery.status == DeliveryStatus.PENDING:
            check = _ms((delivery.next_attempt_at or delivery.updated_at) + self.grace)
        elif delivery.dead_letter_pending:
            check = _ms(delivery.updated_at + self.grace)
        else:
            return None
        return {"gsi1pk": sweep_shard(delivery.delivery_id), "gsi1sk": _sort_ms(check)}

    def _state(self, delivery: Delivery) -> tuple[dict[str, Any], list[str]]:
        """SET and REMOVE clauses that write `delivery`'s state (not its attempts) onto its item."""
        sets: dict[str, Any] = {"#s": delivery.status.value, "updated_at": delivery.updated_at.isoformat()}
        removes: list[str] = []
        optional = {
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
            "last_error": delivery.last_error,
            "failure": delivery.failure.value if delivery.failure else None,
            "dead_letter_pending": True if delivery.dead_letter_pending else None,
            **(self._index_keys(delivery) or dict.fromkeys(INDEX_KEYS)),
        }
        if delivery.response_body is not None:
            optional["response_status"] = delivery.response_status
            optional["response_json"] = json.dumps(delivery.response_body, ensure_ascii=False)
        for name, value in optional.items():
            if value is None:
                removes.append(name)
            else:
                sets[name] = value
        return sets, removes

    def _to_item(self, delivery: Delivery) -> dict[str, Any]:
        data = delivery.as_json(exclude={"payload", "response_body"})
        data["attempt_history"] = [{k: v for k, v in a.items() if v is not None} for a in data["attempt_history"]]
        item = {k: v for k, v in data.items() if v is not None and v is not False}
        item.update(
            {
                "pk": delivery.delivery_id,
                "sk": RECORD_SK,
                "payload_json": payload_json(delivery.payload),
                "expires_at": int((delivery.created_at + self._retention).timestamp()),
                **(self._index_keys(delivery) or {}),
                **list_keys(delivery),
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
        return Delivery.from_stored(data)


def after_attempt(
    delivery: Delivery,
    attempt: Attempt,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime | None = None,
    response: tuple[int, dict[str, Any]] | None = None,
    last_error: str | None = None,
    failure: FailureReason | None = None,
) -> Delivery:
    """The delivery as attempt `attempt` leaves it (what record_attempt writes)."""
    return delivery.updated(
        **{
            "status": status,
            "attempts": attempt.number,
            "updated_at": now(),
            "lease_until_ms": None,
            "next_attempt_at": next_attempt_at,
            "last_error": last_error,
            "failure": failure,
            "dead_letter_pending": status == DeliveryStatus.FAILED,
            "sweeps": 0,
            "attempt_history": [*delivery.attempt_history, attempt],
            **({"response_status": response[0], "response_body": response[1]} if response else {}),
        }
    )


class StateChanged(DependencyUnavailable):
    """A conditional write found the delivery in another state than this caller expected: someone else
    moved it (a caller answered with this gets a 503, as for any store failure)."""

    def __init__(self, delivery_id: str) -> None:
        super().__init__("The delivery moved on while this step ran", delivery_id=delivery_id)


def _plain_value(value: Any) -> Any:
    return int(value) if isinstance(value, Decimal) else value


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON values (Decimal numbers become int)."""
    out = {}
    for key, value in item.items():
        if key in ("pk", "sk", "expires_at", *INDEX_KEYS, *LIST_KEYS):
            continue
        out[key] = int(value) if isinstance(value, Decimal) else value
    return out
