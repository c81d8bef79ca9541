"""Messages in DynamoDB. One item per dispatch (pk "MSG#<dispatch_id>", sk "M") and one per recipient
(sk "R#<message_id>"). Recipient items are indexed by the provider's id (ProviderIdIndex: "PID#<provider>#<id>")
and by address (LogIndex: "TO#<email>", ordered by send time), so events and log look-ups never scan."""

import hashlib
import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.config import get_settings
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.mail import MailRequest, RecipientResult

REPORT_SHARDS = 8
# Per-day keys are spread over shards so that no partition key takes more than a few per cent of a day's
# writes (DynamoDB caps one key near 1,000 writes/s); readers query every shard and merge.
DAY_SHARDS = 32
REJECTED_SHARDS = 32
TRANSACTION_ITEMS = 100  # TransactWriteItems' limit
TRANSACTION_BYTES = 3_000_000  # under its 4 MB
STATS_SHARDS = 8  # each provider's day of counters is spread over this many keys
MAX_LOG_DAYS = 31  # a log query walks at most this many days of dispatch heads
# Our statuses in Infobip's general status groups (its logs and reports speak these, WIRE-FORMATS 4.8).
GENERAL_STATUS = {
    "accepted": "PENDING",
    "pending": "PENDING",
    "unknown": "PENDING",
    "queued": "PENDING",
    "sent": "PENDING",
    "deferred": "PENDING",
    "delivered": "DELIVERED",
    "bounced": "UNDELIVERABLE",
    "failed": "UNDELIVERABLE",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
    "aborted": "REJECTED",
    "suppressed": "REJECTED",
    "invalid": "REJECTED",
}
STATUSES_OF_GROUP = {
    group: [s for s, g in GENERAL_STATUS.items() if g == group]
    for group in ("PENDING", "DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED")
}
HIDDEN = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expires_at", "status_rank"})


def shard_of(text: str, shards: int) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big") % shards


def day_key(day: str, dispatch_id: str) -> str:
    return f"DAY#{day}#{shard_of(dispatch_id, DAY_SHARDS):02d}"


def stats_key(provider: str, day: str, shard: int) -> str:
    return f"STATS#{provider}#{day}#{shard:02d}"


def provider_lookup_id(provider: str, provider_message_id: str) -> str:
    """SendGrid's sg_message_id is the X-Message-Id the send got, plus a suffix per recipient."""
    return provider_message_id.split(".", 1)[0] if provider == "sendgrid" else provider_message_id


class MessageStore(aws.TableStore):
    @staticmethod
    def head(request: MailRequest) -> dict[str, Any]:
        """What a message's head item keeps of its request (sizes checked before the send: MailRequest.oversized)."""
        return {
            "subject": request.subject,
            "template_id": request.template_id,
            "categories": request.categories or None,
            "metadata": request.metadata or None,
            "external_send_id": request.external_send_id,
            "from": request.sender.email if request.sender else None,
            # KARTE's user key for the sinks (put on each recipient by save, not kept on the head).
            "user_ids": {r.email: r.user_id for r in request.to if r.email and r.user_id} or None,
        }

    def save(
        self,
        dispatch_id: str,
        provider: str,
        head: dict[str, Any],
        results: list[RecipientResult],
        status: str,
        *,
        fresh: bool,
    ) -> None:
        """Write a message once; its records are never overwritten. `fresh`: the dispatch id was minted by
        this process (random, never derived from a key), so nothing can exist under it yet and the recipient
        items go in batches. Otherwise (a take-over, a repeat writing what its first could not) each item
        is put on the condition that it does not exist: only what is missing is written, and a recipient an
        event has moved on is kept. The head goes last, conditionally: once it is there, every recipient is."""
        now = datetime.now(UTC)
        stamp = now.isoformat()
        expires = int((now + self._retention).timestamp())
        pk = f"MSG#{dispatch_id}"
        head = dict(head)
        user_ids = head.pop("user_ids", None) or {}
        karte_user_id = (head.get("metadata") or {}).get("karte_user_id")
        items: list[dict[str, Any]] = []
        for result in results:
            item: dict[str, Any] = {
                "pk": pk,
                "sk": f"R#{result.message_id}",
                "dispatch_id": dispatch_id,
                "provider": provider,
                **result.model_dump(exclude_none=True),
                # KARTE's user key: the recipient's user_id, else the message's metadata.karte_user_id.
                "user_id": user_ids.get(result.email or "") or karte_user_id,
                "sent_at": stamp,
                "expires_at": expires,
            }
            if result.email:
                item.update(gsi2pk=f"TO#{result.email}", gsi2sk=f"{stamp}#{result.message_id}")
            if result.provider_message_id:
                by = result.provider or provider  # a fallback's events find the recipient under its own ids
                item.update(gsi1pk=f"PID#{by}#{result.provider_message_id}", gsi1sk=result.message_id)
            items.append({k: v for k, v in item.items() if v is not None})
        head_item = {
            "pk": pk,
            "sk": "M",
            "dispatch_id": dispatch_id,
            "provider": provider,
            "status": status,
            "created_at": stamp,
            **head,
            "recipients": len(results),
            "expires_at": expires,
            "gsi2pk": day_key(f"{now:%Y-%m-%d}", dispatch_id),
            "gsi2sk": f"{stamp}#{dispatch_id}",
        }
        try:
            if fresh:
                with self._table.batch_writer() as batch:
                    for item in items:
                        batch.put_item(Item=item)
            else:
                with ThreadPoolExecutor(max_workers=8, thread_name_prefix="save") as pool:
                    list(pool.map(self._put_new, items))
            self._put_new({k: v for k, v in head_item.items() if v is not None})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def _put_new(self, item: dict[str, Any]) -> None:
        """Put an item unless it exists (then it is left as it is)."""
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def exists(self, dispatch_id: str) -> bool:
        """Whether a message's records are all written (its head item is written last)."""
        try:
            found = self._table.get_item(Key={"pk": f"MSG#{dispatch_id}", "sk": "M"}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return "Item" in found

    def recipients(self, dispatch_id: str) -> list[dict[str, Any]]:
        """A message's recipient items as stored (for answering a repeat of a send that was recorded)."""
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"MSG#{dispatch_id}") & Key("sk").begins_with("R#"),
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._table.query(**query)
                items += page["Items"]
                if "LastEvaluatedKey" not in page:
                    return [{k: _plain(v) for k, v in i.items()} for i in items]
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def settle_pending(self, dispatch_id: str, result: RecipientResult, provider: str) -> bool:
        """A `pending` recipient after its deferred call: its status, reason and provider id. Only a recipient
        still `pending` changes (an event may have moved it on); False when the record is not there yet."""
        values: dict[str, Any] = {":s": result.status, ":p": "pending"}
        sets = ["#s = :s"]
        removes = []
        if result.reason:
            sets.append("reason = :r")
            values[":r"] = result.reason
        else:
            removes.append("reason")
        if result.provider_message_id:
            sets += ["provider_message_id = :id", "gsi1pk = :g1", "gsi1sk = :m"]
            values.update({":id": result.provider_message_id, ":g1": f"PID#{provider}#{result.provider_message_id}"})
            values[":m"] = result.message_id
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._table.update_item(
                Key={"pk": f"MSG#{dispatch_id}", "sk": f"R#{result.message_id}"},
                UpdateExpression=expression,
                ConditionExpression="#s = :p",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("Message store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    # ------------------------------------------------------------------ events
    def find_recipient(
        self,
        provider: str,
        dispatch_id: str | None,
        message_id: str | None,
        provider_message_id: str | None,
        email: str | None,
    ) -> dict[str, Any] | None:
        """The recipient item an event is about: by our ids when the event carries them (SendGrid custom_args,
        Infobip messageId), else through ProviderIdIndex (Braze dispatch_id, SendGrid X-Message-Id). Only a
        recipient sent through the event's own provider matches."""
        try:
            if dispatch_id and message_id:
                item = self._table.get_item(Key={"pk": f"MSG#{dispatch_id}", "sk": f"R#{message_id}"}).get("Item")
                if item and item.get("provider") == provider:
                    return dict(item)
            if provider_message_id:
                return self._by_provider_id(provider, provider_message_id, email)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return None

    def _by_provider_id(self, provider: str, provider_message_id: str, email: str | None) -> dict[str, Any] | None:
        items = self._provider_id_items(provider, provider_message_id)
        matching = [i for i in items if not email or i.get("email") == email]
        return dict(matching[0]) if matching else None

    def recipients_by_provider_id(self, provider: str, provider_message_id: str) -> list[dict[str, Any]]:
        """Every recipient item sent through `provider` under this provider message id (a SendGrid
        X-Message-Id covers every recipient of its request), in one query."""
        try:
            return [dict(i) for i in self._provider_id_items(provider, provider_message_id)]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def _provider_id_items(self, provider: str, provider_message_id: str) -> list[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        lookup = provider_lookup_id(provider, provider_message_id)
        items: list[dict[str, Any]] = self._table.query(
            IndexName="ProviderIdIndex", KeyConditionExpression=Key("gsi1pk").eq(f"PID#{provider}#{lookup}")
        )["Items"]
        return items

    def _by_address(self, provider: str, email: str, before: str) -> dict[str, Any] | None:
        """The latest recipient item sent to this address through this provider before `before`."""
        from boto3.dynamodb.conditions import Key

        query: dict[str, Any] = {
            "IndexName": "LogIndex",
            "ScanIndexForward": False,
            "Limit": 25,
            "KeyConditionExpression": Key("gsi2pk").eq(f"TO#{email}") & Key("gsi2sk").lte(before + "~"),
        }
        for _ in range(4):  # a few pages of other providers' mail at most
            page = self._table.query(**query)
            for item in page["Items"]:
                if item.get("provider") == provider and str(item.get("sk", "")).startswith("R#"):
                    return dict(item)
            if "LastEvaluatedKey" not in page:
                return None
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return None

    def match(self, events: list[Any]) -> list[tuple[dict[str, Any] | None, str | None]]:
        """Each event's recipient item and how it was found ("id", "provider_id", "address"), or (None, None).
        One BatchGetItem per 100 events that carry our ids; one index query per distinct provider id or
        address among the rest (a post's events share them)."""
        keyed = {(f"MSG#{e.dispatch_id}", f"R#{e.message_id}") for e in events if e.dispatch_id and e.message_id}
        found = self._batch_get(sorted(keyed))
        by_pid: dict[tuple[str, str, str | None], dict[str, Any] | None] = {}
        by_address: dict[tuple[str, str, str], dict[str, Any] | None] = {}
        out: list[tuple[dict[str, Any] | None, str | None]] = []
        try:
            for e in events:
                item = found.get((f"MSG#{e.dispatch_id}", f"R#{e.message_id}")) if e.message_id else None
                if item is not None and item.get("provider") == e.provider:
                    out.append((item, "id"))
                    continue
                if e.provider_message_id:
                    key = (e.provider, provider_lookup_id(e.provider, e.provider_message_id), e.recipient)
                    if key not in by_pid:
                        by_pid[key] = self._by_provider_id(e.provider, e.provider_message_id, e.recipient)
                    out.append((by_pid[key], "provider_id") if by_pid[key] else (None, None))
                    continue
                if e.provider == "sendgrid" and e.recipient and not (e.dispatch_id or e.message_id):
                    # An async bounce carries neither sg_message_id nor custom args (WIRE-FORMATS 2.2): the
                    # latest message sent to the address through SendGrid before the event is the one.
                    stamp = e.timestamp.isoformat()
                    akey = (e.provider, e.recipient, stamp)
                    if akey not in by_address:
                        by_address[akey] = self._by_address(e.provider, e.recipient, stamp)
                    out.append((by_address[akey], "address") if by_address[akey] else (None, None))
                    continue
                out.append((None, None))
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return out

    def _batch_get(self, keys: list[tuple[str, str]], projection: str | None = None) -> dict[tuple[str, str], Any]:
        found: dict[tuple[str, str], Any] = {}
        table = self._table_name
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {table: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in keys[start : start + 100]]}}
            if projection:
                request[table]["ProjectionExpression"] = projection
            for _ in range(8):
                try:
                    answer = aws.dynamodb_resource().batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise DependencyUnavailable("Message store is unavailable") from exc
                for item in answer["Responses"].get(table, []):
                    found[(item["pk"], item["sk"])] = item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise DependencyUnavailable("Message store kept throttling the read")
        return found

    def existing(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these event items are stored already (an event item is its own dedupe marker)."""
        return set(self._batch_get(sorted(set(keys)), projection="pk, sk"))

    def event_item(self, recipient: dict[str, Any] | None, event: Any) -> dict[str, Any]:
        """An event as stored: under its recipient when matched (the message's history, in UTC order), else
        under its own key; indexed by address (LogIndex "EVT#") and provider id (ProviderIdIndex "PEV#").
        Its key depends on the event alone (and the match), so writing it is the event's dedupe marker."""
        stamp = event.timestamp.isoformat()
        body = {k: v for k, v in event.model_dump(mode="json").items() if v not in (None, [], {}) and k != "raw"}
        body["timestamp"] = stamp
        body["raw"] = json.dumps(event.raw, ensure_ascii=False)[:20_000]
        body["expires_at"] = int((datetime.now(UTC) + self._retention).timestamp())
        address = (recipient or {}).get("email") or event.recipient
        if recipient is None:
            key = {"pk": f"EV#{event.provider}#{event.event_id}", "sk": "E"}
        else:
            body.update(dispatch_id=recipient.get("dispatch_id"), message_id=recipient.get("message_id"))
            sk = f"E#{recipient['message_id']}#{stamp}#{event.provider}#{event.event_id}"
            key = {"pk": recipient["pk"], "sk": sk}
        position = f"{stamp}#{event.provider}#{event.event_id}"
        if address:
            body.update(recipient=address, gsi2pk=f"EVT#{address}", gsi2sk=position)
        if event.provider_message_id:
            lookup = provider_lookup_id(event.provider, event.provider_message_id)
            body.update(gsi1pk=f"PEV#{lookup}", gsi1sk=position)
        return {**key, **body}

    def record_events(
        self, items: list[dict[str, Any]], counters: list[tuple[str, str, str] | None] | None = None
    ) -> list[dict[str, Any]]:
        """Write event items that do not exist yet, in transactions of up to 100 conditional puts; the ones
        this call wrote (a concurrent worker's are left out, so each event is counted once). `counters`:
        per item, the (provider, day, counter) its event adds one to. The additions ride in the same
        transaction as the items, one update per provider and day: a counter moves exactly when its events
        are first written, never for a redelivered post, and a cancelled transaction adds nothing."""
        tallies = counters or [None] * len(items)
        written: list[dict[str, Any]] = []
        for chunk in _chunks_with_counters(list(zip(items, tallies, strict=True))):
            pending = chunk
            for attempt in range(6):
                ops = [
                    {
                        "Put": {
                            "TableName": self._table_name,
                            "Item": {k: v for k, v in item.items() if v is not None},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                    for item, _ in pending
                ]
                ops += self._counter_updates(pending)
                failed = self._transact(ops, [attempt] + [(i["pk"], i["sk"]) for i, _ in pending])
                if failed is None:
                    written += [i for i, _ in pending]
                    break
                # Exists already (a concurrent or earlier writer): not ours to count. The rest is retried.
                pending = [p for n, p in enumerate(pending) if failed[n] != "ConditionalCheckFailed"]
                if not pending:
                    break
            else:
                raise DependencyUnavailable("Message store kept cancelling the event writes")
        return written

    def _counter_updates(self, pending: list[tuple[dict[str, Any], tuple[str, str, str] | None]]) -> list[Any]:
        """One ADD per (provider, day) for the items of one transaction, on a shard of that day's counter
        picked by the transaction's first item, so that no counter key takes every post of a busy day."""
        sums: dict[tuple[str, str], Counter[str]] = {}
        for _, tally in pending:
            if tally is not None:
                sums.setdefault((tally[0], tally[1]), Counter())[tally[2]] += 1
        if not sums:
            return []
        shard = shard_of(pending[0][0]["pk"] + pending[0][0]["sk"], STATS_SHARDS)
        ops = []
        for (provider, day), counts in sorted(sums.items()):
            names = {f"#c{n}": name for n, name in enumerate(sorted(counts))}
            values: dict[str, Any] = {f":v{n}": counts[name] for n, name in enumerate(sorted(counts))}
            values[":p"], values[":d"] = provider, day
            adds = ", ".join(f"#c{n} :v{n}" for n in range(len(names)))
            ops.append(
                {
                    "Update": {
                        "TableName": self._table_name,
                        "Key": {"pk": stats_key(provider, day, shard), "sk": "S"},
                        "UpdateExpression": f"ADD {adds} SET provider = :p, #day = :d",
                        "ExpressionAttributeNames": {**names, "#day": "day"},
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        return ops

    def stats(self, providers: list[str], days: list[str]) -> dict[tuple[str, str], dict[str, int]]:
        """Each (provider, day)'s counters, summed over the day's shards (absent: nothing counted)."""
        keys = [(stats_key(p, d, s), "S") for p in providers for d in days for s in range(STATS_SHARDS)]
        out: dict[tuple[str, str], dict[str, int]] = {}
        for item in self._batch_get(keys).values():
            totals = out.setdefault((str(item["provider"]), str(item["day"])), {})
            for name, value in item.items():
                if name not in ("pk", "sk", "provider", "day"):
                    totals[name] = totals.get(name, 0) + int(value)
        return out

    def advance_many(self, changes: list[tuple[dict[str, Any], str, int, Any]]) -> int:
        """Move recipients' statuses forward, each from the rank read to a higher one, with the final report
        in the same transaction: a status never turns final without its report, nor twice. A recipient that
        changed since it was read is read again and retried. Returns how many moved."""
        from martech_bridge.logic.event_effects import reports_on

        moved = 0
        pending = list(changes)
        for attempt in range(6):
            if not pending:
                return moved
            retry: list[tuple[dict[str, Any], str, int, Any]] = []
            for group in _groups(pending):
                ops: list[dict[str, Any]] = []
                owners: list[int] = []
                for n, (recipient, status, rank, event) in enumerate(group):
                    values = {":s": status, ":r": rank, ":t": event.timestamp.isoformat()}
                    condition = "attribute_exists(pk) AND attribute_not_exists(status_rank)"
                    if "status_rank" in recipient:
                        condition = "attribute_exists(pk) AND status_rank = :old"
                        values[":old"] = int(recipient["status_rank"])
                    ops.append(
                        {
                            "Update": {
                                "TableName": self._table_name,
                                "Key": {"pk": recipient["pk"], "sk": recipient["sk"]},
                                "UpdateExpression": "SET #s = :s, status_rank = :r, status_at = :t",
                                "ConditionExpression": condition,
                                "ExpressionAttributeNames": {"#s": "status"},
                                "ExpressionAttributeValues": values,
                            }
                        }
                    )
                    owners.append(n)
                    if reports_on(int(recipient.get("status_rank", 0)), status):
                        report = self._report_item(recipient, status, event)
                        ops.append({"Put": {"TableName": self._table_name, "Item": report}})
                        owners.append(n)
                identity = [attempt] + [(r["pk"], r["sk"], s, r.get("status_rank")) for r, s, _, _ in group]
                failed = self._transact(ops, identity)
                if failed is None:
                    moved += len(group)
                    continue
                stale = {owners[i] for i, code in enumerate(failed) if code == "ConditionalCheckFailed"}
                for n, change in enumerate(group):
                    if n not in stale:
                        retry.append(change)  # cancelled with the others: try again as it is
                        continue
                    fresh = self._fresh(change[0])
                    if fresh is not None and change[2] > int(fresh.get("status_rank", 0)):
                        retry.append((fresh, change[1], change[2], change[3]))
            pending = retry
        raise DependencyUnavailable("Message store kept cancelling the status updates")

    def _fresh(self, recipient: dict[str, Any]) -> dict[str, Any] | None:
        try:
            item = self._table.get_item(Key={"pk": recipient["pk"], "sk": recipient["sk"]}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return item.get("Item")

    def _transact(self, ops: list[dict[str, Any]], identity: Any) -> list[str] | None:
        """None when the transaction committed; else each operation's cancellation code ("None" for those
        cancelled because of another). The request token makes botocore's own retry of a committed
        transaction a success, not a conflict with itself. (The resource's client serialises the values.)"""
        token = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:36]
        try:
            aws.dynamodb_resource().meta.client.transact_write_items(TransactItems=ops, ClientRequestToken=token)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                codes = [str(r.get("Code", "None")) for r in reasons]
                if len(codes) == len(ops):
                    return codes
                return ["None"] * len(ops)  # no reasons given: retry everything
            if code in ("TransactionConflictException", "TransactionInProgressException"):
                return ["None"] * len(ops)
            raise DependencyUnavailable("Message store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return None

    def record_rejected(self, provider: str, rejected: list[tuple[str, Any]], received_at: datetime) -> None:
        """Unreadable events with why, spread over shards of the day; the same post redelivered overwrites
        its own records instead of adding more."""
        from martech_bridge.logic.event_parsing import fingerprint

        stamp = received_at.astimezone(UTC).isoformat()
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        try:
            with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for n, (reason, raw) in enumerate(rejected):
                    # ASCII escapes: a rejected event may hold text that is not valid Unicode (a lone surrogate).
                    body = json.dumps(raw, ensure_ascii=True, default=str)[:20_000]
                    mark = fingerprint([n, body])
                    batch.put_item(
                        Item={
                            "pk": f"REJECTED#{provider}#{stamp[:10]}#{shard_of(mark, REJECTED_SHARDS):02d}",
                            "sk": f"{stamp}#{mark}",
                            "provider": provider,
                            "reason": reason[:1000],
                            "raw": body,
                            "received_at": stamp,
                            "expires_at": expires,
                        }
                    )
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def rejected(self, provider: str, day: str, limit: int) -> list[dict[str, Any]]:
        """A day's rejected events of one provider, newest first, read back across the shards."""
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        try:
            for shard in range(REJECTED_SHARDS):
                items += self._table.query(
                    KeyConditionExpression=Key("pk").eq(f"REJECTED#{provider}#{day}#{shard:02d}"),
                    ScanIndexForward=False,
                    Limit=limit,
                )["Items"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        items.sort(key=lambda i: i["sk"], reverse=True)
        return [{k: _plain(v) for k, v in i.items() if k not in HIDDEN} for i in items[:limit]]

    def events_for(
        self, *, to: str | None, provider_message_id: str | None, limit: int, cursor: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Events recorded for an address or a provider's message id, newest first, matched or not."""
        from boto3.dynamodb.conditions import Key

        if to:
            query: dict[str, Any] = {"IndexName": "LogIndex", "KeyConditionExpression": Key("gsi2pk").eq(f"EVT#{to}")}
        else:
            query = {
                "IndexName": "ProviderIdIndex",
                "KeyConditionExpression": Key("gsi1pk").eq(f"PEV#{provider_message_id}"),
            }
        query.update(ScanIndexForward=False, Limit=limit)
        if cursor:
            query["ExclusiveStartKey"] = cursor
        try:
            page = self._table.query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        events = [{k: _plain(v) for k, v in i.items() if k not in HIDDEN | {"raw"}} for i in page["Items"]]
        return events, page.get("LastEvaluatedKey")

    # ------------------------------------------------------------------ reports
    def _report_item(self, recipient: dict[str, Any], status: str, event: Any) -> dict[str, Any]:
        message_id = str(recipient["message_id"])
        report = {
            "pk": f"REPORT#{shard_of_report(message_id)}",
            "sk": f"R#{message_id}",
            "messageId": message_id,
            "dispatch_id": recipient.get("dispatch_id"),
            "bulkId": recipient.get("dispatch_id"),
            "to": recipient.get("email"),
            "provider": recipient.get("provider"),
            "sentAt": recipient.get("sent_at"),
            "doneAt": event.timestamp.isoformat(),
            "status": status,
            "generalStatus": GENERAL_STATUS.get(status, "PENDING"),
            "description": event.description,
            "bounce": event.bounce,
            "expires_at": int((datetime.now(UTC) + self._retention).timestamp()),
        }
        return {k: v for k, v in report.items() if v is not None}

    def take_reports(
        self, limit: int, *, message_ids: list[str] | None = None, bulk_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Up to `limit` final reports, each handed out once: a report is claimed by deleting it, and only
        one concurrent reader's delete succeeds. Filtered by message ids or by bulk (dispatch) id."""
        from boto3.dynamodb.conditions import Attr, Key

        taken: list[dict[str, Any]] = []
        try:
            if message_ids:
                candidates: list[dict[str, Any]] = [
                    {"pk": f"REPORT#{shard_of_report(m)}", "sk": f"R#{m}"} for m in message_ids
                ]
                if bulk_id:
                    candidates = [c for c in candidates if c["sk"][2:].rsplit(".", 1)[0] == bulk_id]
                return self._claim(candidates[:limit])
            for shard in random.sample(range(REPORT_SHARDS), REPORT_SHARDS):
                query: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"REPORT#{shard}")}
                if bulk_id:
                    query["FilterExpression"] = Attr("dispatch_id").eq(bulk_id)
                else:
                    query["Limit"] = limit - len(taken)
                while len(taken) < limit:
                    page = self._table.query(**query)
                    taken += self._claim(page["Items"][: limit - len(taken)])
                    if "LastEvaluatedKey" not in page:
                        break
                    query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
                if len(taken) >= limit:
                    break
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return taken

    def _claim(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken = []
        for item in items:
            try:
                claimed = self._table.delete_item(
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    ConditionExpression="attribute_exists(pk)",
                    ReturnValues="ALL_OLD",
                ).get("Attributes")
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue  # another reader took it, or there is none
                raise
            if claimed:
                taken.append({k: _plain(v) for k, v in claimed.items() if k not in ("pk", "sk", "expires_at")})
        return taken

    # ------------------------------------------------------------------ logs
    def logs(
        self,
        *,
        message_id: str | list[str] | None = None,
        to: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        general_status: str | None = None,
        limit: int,
        cursor: dict[str, Any] | None,
        bulk_id: str | None = None,
        sender: str | None = None,
        campaign: str | None = None,
    ) -> tuple[list[dict[str, Any]], Any]:
        """Per-recipient log lines, newest first, from keys and indexes only (never a scan), at most `limit`
        lines a page. Filters as Infobip's logs: message ids, bulkId, to, from, campaignReferenceId,
        generalStatus, sentSince/sentUntil."""
        from boto3.dynamodb.conditions import Key

        ids = [message_id] if isinstance(message_id, str) else list(message_id or [])
        statuses = set(STATUSES_OF_GROUP[general_status]) if general_status else None
        heads: dict[str, dict[str, Any] | None] = {}

        def head_of(dispatch: str) -> dict[str, Any] | None:
            if dispatch not in heads:
                heads[dispatch] = self._table.get_item(Key={"pk": f"MSG#{dispatch}", "sk": "M"}).get("Item")
            return heads[dispatch]

        def wanted(item: dict[str, Any]) -> bool:
            if statuses is not None and item.get("status") not in statuses:
                return False
            sent = str(item.get("sent_at", ""))
            if (since and sent < since.isoformat()) or (until and sent > until.isoformat()):
                return False
            if to and item.get("email") != to:
                return False
            if bulk_id and item.get("dispatch_id") != bulk_id:
                return False
            if sender or campaign:
                head = head_of(str(item.get("dispatch_id"))) or {}
                if sender and head.get("from") != sender:
                    return False
                if campaign and campaign not in (head.get("categories") or []):
                    return False
            return True

        try:
            if ids:
                keys = sorted({(f"MSG#{m.rsplit('.', 1)[0]}", f"R#{m}") for m in ids})
                found = self._batch_get(keys)
                lines = [_log_line(i) for k in keys if (i := found.get(k)) is not None and wanted(i)]
                lines.sort(key=lambda line: str(line.get("sentAt")), reverse=True)
                return lines[:limit], None
            if bulk_id or to:
                if bulk_id:
                    query: dict[str, Any] = {
                        "KeyConditionExpression": Key("pk").eq(f"MSG#{bulk_id}") & Key("sk").begins_with("R#")
                    }
                else:
                    low = since.isoformat() if since else ""
                    high = (until.isoformat() if until else "9999") + "~"
                    query = {
                        "IndexName": "LogIndex",
                        "ScanIndexForward": False,
                        "KeyConditionExpression": Key("gsi2pk").eq(f"TO#{to}") & Key("gsi2sk").between(low, high),
                    }
                if cursor:
                    query["ExclusiveStartKey"] = cursor
                lines = []
                for _ in range(20):  # bounded work a call; the cursor carries on
                    query["Limit"] = limit - len(lines)
                    page = self._table.query(**query)
                    lines += [_log_line(i) for i in page["Items"] if wanted(i)]
                    last = page.get("LastEvaluatedKey")
                    if not last or len(lines) >= limit:
                        return lines, last
                    query["ExclusiveStartKey"] = last
                return lines, last
            assert since is not None and until is not None
            return self._logs_by_day(since, until, limit, cursor, wanted)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def _logs_by_day(
        self, since: datetime, until: datetime, limit: int, cursor: dict[str, Any] | None, wanted: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """No address or id: dispatch heads by day (LogIndex "DAY#<day>#<shard>"), every shard of a day merged
        newest first, then each head's recipients. The cursor names the last head and recipient returned."""
        import heapq

        from boto3.dynamodb.conditions import Key

        before = str((cursor or {}).get("b") or "")
        after_member = str((cursor or {}).get("m") or "")
        high = min(until.isoformat() + "~", before + "~") if before else until.isoformat() + "~"
        low = since.isoformat()
        budget = [200]  # queries a call; past it, the cursor carries on

        def shard_heads(day: str, shard: int) -> Any:
            query: dict[str, Any] = {
                "IndexName": "LogIndex",
                "ScanIndexForward": False,
                "Limit": min(limit, 100),
                "KeyConditionExpression": Key("gsi2pk").eq(f"DAY#{day}#{shard:02d}") & Key("gsi2sk").between(low, high),
            }
            while True:
                budget[0] -= 1
                page = self._table.query(**query)
                yield from page["Items"]
                if "LastEvaluatedKey" not in page:
                    return
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        lines: list[dict[str, Any]] = []
        day = before[:10] if before else until.strftime("%Y-%m-%d")
        first_day = since.strftime("%Y-%m-%d")
        while day >= first_day:
            merged = heapq.merge(
                *(shard_heads(day, s) for s in range(DAY_SHARDS)), key=lambda h: str(h["gsi2sk"]), reverse=True
            )
            for head in merged:
                position = str(head["gsi2sk"])
                if before and position > before:
                    continue
                query: dict[str, Any] = {
                    "KeyConditionExpression": Key("pk").eq(head["pk"]) & Key("sk").begins_with("R#")
                }
                if before and position == before and after_member:
                    query["KeyConditionExpression"] = Key("pk").eq(head["pk"]) & Key("sk").between(
                        after_member + "\x00", "R#~"
                    )
                elif before and position == before:
                    query["KeyConditionExpression"] = Key("pk").eq(head["pk"]) & Key("sk").begins_with("R#")
                while True:
                    budget[0] -= 1
                    page = self._table.query(**query)
                    for member in page["Items"]:
                        if wanted(member):
                            lines.append(_log_line(member))
                        if len(lines) >= limit or budget[0] <= 0:
                            return lines, {"b": position, "m": member["sk"]}
                    if "LastEvaluatedKey" not in page:
                        break
                    query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
                if budget[0] <= 0:
                    return lines, {"b": position, "m": "R#~"}
            day = (datetime.strptime(day, "%Y-%m-%d") - timedelta(days=1)).strftime("%Y-%m-%d")
        return lines, None

    # ------------------------------------------------------------------ reads
    def get(self, dispatch_id: str) -> dict[str, Any] | None:
        """The message, each recipient's status, and each recipient's events in provider-time order."""
        from boto3.dynamodb.conditions import Key

        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"MSG#{dispatch_id}")}
        try:
            while True:
                page = self._table.query(**query)
                items += page["Items"]
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        head = next((i for i in items if i["sk"] == "M"), None)
        if head is None:
            return None
        hidden = HIDDEN
        message = {k: _plain(v) for k, v in head.items() if k not in hidden}
        events: dict[str, list[dict[str, Any]]] = {}
        for item in items:  # sorted by sk, so each recipient's events come in provider-time order
            if item["sk"].startswith("E#"):
                event = {k: _plain(v) for k, v in item.items() if k not in hidden | {"raw", "dispatch_id"}}
                events.setdefault(item["sk"].split("#")[1], []).append(event)
        message["recipients"] = [
            {
                **{k: _plain(v) for k, v in i.items() if k not in hidden | {"dispatch_id", "provider"}},
                "events": events.get(str(i["message_id"]), []),
            }
            for i in items
            if i["sk"].startswith("R#")
        ]
        return message


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def shard_of_report(message_id: str) -> int:
    return int(hashlib.sha256(message_id.encode()).hexdigest(), 16) % REPORT_SHARDS


def _log_line(item: dict[str, Any]) -> dict[str, Any]:
    status = str(item.get("status", ""))
    return _plain(
        {
            "messageId": item.get("message_id"),
            "dispatch_id": item.get("dispatch_id"),
            "bulkId": item.get("dispatch_id"),
            "to": item.get("email"),
            "provider": item.get("provider"),
            "sentAt": item.get("sent_at"),
            "doneAt": item.get("status_at"),
            "status": {"groupName": GENERAL_STATUS.get(status, "PENDING"), "name": status.upper()},
            "reason": item.get("reason"),
            "providerMessageId": item.get("provider_message_id"),
        }
    )


def _chunks_with_counters(pairs: list[Any]) -> Any:
    """(item, counter) pairs in groups whose items and counter updates (one per provider and day) a single
    transaction takes: at most 100 operations and about 3 MB."""
    group: list[Any] = []
    days: set[tuple[str, str]] = set()
    size = 0
    for item, tally in pairs:
        weight = len(json.dumps(item, default=str))
        more = {(tally[0], tally[1])} - days if tally else set()
        if group and (len(group) + len(days) + len(more) + 1 > TRANSACTION_ITEMS or size + weight > TRANSACTION_BYTES):
            yield group
            group, days, size = [], set(), 0
            more = {(tally[0], tally[1])} if tally else set()
        group.append((item, tally))
        days |= more
        size += weight
    if group:
        yield group


def _groups(changes: list[Any]) -> Any:
    """Status changes in transactions of at most 100 operations (an update, and a report when final)."""
    group: list[Any] = []
    for change in changes:
        if len(group) >= TRANSACTION_ITEMS // 2:
            yield group
            group = []
        group.append(change)
    if group:
        yield group


@aws.factory
def message_store() -> MessageStore:
    settings = get_settings()
    return MessageStore(settings.require("messages_table"), settings.retention_days)
