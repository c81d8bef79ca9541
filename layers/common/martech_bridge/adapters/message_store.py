"""Messages in DynamoDB. One item per dispatch (pk "MSG#<dispatch_id>", sk "M") and one per recipient
(sk "R#<message_id>"). Recipient items are indexed by the provider's id (ProviderIdIndex: "PID#<provider>#<id>")
and by address (LogIndex: "TO#<email>", ordered by send time), so events and log look-ups never scan."""

import hashlib
import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.mail import MailRequest, RecipientResult

REPORT_SHARDS = 8
FINAL_STATUSES = frozenset({"delivered", "bounced", "rejected", "failed", "aborted"})
FINAL_RANK_FLOOR = 4  # a status at or above "delivered" was final already: no second report
# Our statuses in Infobip's general status groups (its logs and reports speak these).
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
    "rejected": "REJECTED",
    "aborted": "REJECTED",
    "suppressed": "REJECTED",
    "invalid": "REJECTED",
}
STATUSES_OF_GROUP = {
    group: [s for s, g in GENERAL_STATUS.items() if g == group]
    for group in ("PENDING", "DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED")
}


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
        items: list[dict[str, Any]] = []
        for result in results:
            item: dict[str, Any] = {
                "pk": pk,
                "sk": f"R#{result.message_id}",
                "dispatch_id": dispatch_id,
                "provider": provider,
                **result.model_dump(exclude_none=True),
                "sent_at": stamp,
                "expires_at": expires,
            }
            if result.email:
                item.update(gsi2pk=f"TO#{result.email}", gsi2sk=f"{stamp}#{result.message_id}")
            if result.provider_message_id:
                item.update(gsi1pk=f"PID#{provider}#{result.provider_message_id}", gsi1sk=result.message_id)
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
            "gsi2pk": f"DAY#{now:%Y-%m-%d}",
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
        Infobip messageId), else through ProviderIdIndex (Braze dispatch_id, SendGrid X-Message-Id)."""
        from boto3.dynamodb.conditions import Key

        try:
            if dispatch_id and message_id:
                item = self._table.get_item(Key={"pk": f"MSG#{dispatch_id}", "sk": f"R#{message_id}"}).get("Item")
                if item:
                    return item
            if provider_message_id:
                lookup = provider_message_id.split(".", 1)[0] if provider == "sendgrid" else provider_message_id
                items = self._table.query(
                    IndexName="ProviderIdIndex", KeyConditionExpression=Key("gsi1pk").eq(f"PID#{provider}#{lookup}")
                )["Items"]
                matching = [i for i in items if not email or i.get("email") == email]
                return matching[0] if matching else None
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return None

    def find_recipients(self, events: list[Any]) -> list[dict[str, Any] | None]:
        """`find_recipient` for a post's events: one BatchGetItem (100 keys a call) for those carrying our ids,
        the index for the others."""
        keys = {(f"MSG#{e.dispatch_id}", f"R#{e.message_id}") for e in events if e.dispatch_id and e.message_id}
        found: dict[tuple[str, str], dict[str, Any]] = {}
        ordered = sorted(keys)
        table = self._table_name
        for start in range(0, len(ordered), 100):
            request: dict[str, Any] = {
                table: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in ordered[start : start + 100]]}
            }
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
        out: list[dict[str, Any] | None] = []
        for event in events:
            item = found.get((f"MSG#{event.dispatch_id}", f"R#{event.message_id}")) if event.message_id else None
            if item is None and event.provider_message_id and not (event.dispatch_id and event.message_id):
                item = self.find_recipient(event.provider, None, None, event.provider_message_id, event.recipient)
            out.append(item)
        return out

    def record_history(self, pairs: list[tuple[dict[str, Any] | None, Any]]) -> None:
        """Every event of a post into its recipient's history (or the per-day record), in batches of 25."""
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        try:
            with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for recipient, event in pairs:
                    batch.put_item(Item={**self._event_item(recipient, event), "expires_at": expires})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def advance(self, recipient: dict[str, Any], status: tuple[str, int], event: Any) -> bool:
        """Move a recipient's status forward (never back); report it the first time it turns final."""
        stamp = event.timestamp.isoformat()
        try:
            old = self._table.update_item(
                Key={"pk": recipient["pk"], "sk": recipient["sk"]},
                UpdateExpression="SET #s = :s, status_rank = :r, status_at = :t",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(status_rank) OR status_rank < :r)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": status[0], ":r": status[1], ":t": stamp},
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable("Message store is unavailable") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        if status[0] in FINAL_STATUSES and int(old.get("status_rank", 0)) < FINAL_RANK_FLOOR:
            self._report(recipient, status[0], stamp, event)
        return True

    @staticmethod
    def _event_item(recipient: dict[str, Any] | None, event: Any) -> dict[str, Any]:
        stamp = event.timestamp.isoformat()
        body = {k: v for k, v in event.model_dump(mode="json").items() if v is not None and k != "raw"}
        body["raw"] = json.dumps(event.raw, ensure_ascii=False)[:20_000]
        if recipient is None:
            return {"pk": f"EVENTS#{event.provider}#{stamp[:10]}", "sk": f"E#{stamp}#{event.event_id}", **body}
        return {"pk": recipient["pk"], "sk": f"E#{recipient['message_id']}#{stamp}#{event.event_id}", **body}

    # ------------------------------------------------------------------ reports
    def _report(self, recipient: dict[str, Any], status: str, stamp: str, event: Any) -> None:
        """One final delivery report per message, created the first time its status turns final."""
        message_id = str(recipient["message_id"])
        shard = int(hashlib.sha256(message_id.encode()).hexdigest(), 16) % REPORT_SHARDS
        report = {
            "pk": f"REPORT#{shard}",
            "sk": f"R#{message_id}",
            "messageId": message_id,
            "dispatch_id": recipient.get("dispatch_id"),
            "to": recipient.get("email"),
            "provider": recipient.get("provider"),
            "sentAt": recipient.get("sent_at"),
            "doneAt": stamp,
            "status": status,
            "generalStatus": GENERAL_STATUS.get(status, "PENDING"),
            "description": event.description,
            "expires_at": int((datetime.now(UTC) + self._retention).timestamp()),
        }
        try:
            self._table.put_item(
                Item={k: v for k, v in report.items() if v is not None}, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def take_reports(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` final reports, each handed out once: a report is claimed by deleting it, and only
        one concurrent reader's delete succeeds."""
        from boto3.dynamodb.conditions import Key

        taken: list[dict[str, Any]] = []
        try:
            for shard in random.sample(range(REPORT_SHARDS), REPORT_SHARDS):
                if len(taken) >= limit:
                    break
                page = self._table.query(
                    KeyConditionExpression=Key("pk").eq(f"REPORT#{shard}"), Limit=limit - len(taken)
                )
                for item in page["Items"]:
                    try:
                        claimed = self._table.delete_item(
                            Key={"pk": item["pk"], "sk": item["sk"]},
                            ConditionExpression="attribute_exists(pk)",
                            ReturnValues="ALL_OLD",
                        ).get("Attributes")
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                            continue  # another reader took it
                        raise
                    if claimed:
                        taken.append({k: _plain(v) for k, v in claimed.items() if k not in ("pk", "sk", "expires_at")})
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        return taken

    # ------------------------------------------------------------------ logs
    def logs(
        self,
        *,
        message_id: str | None,
        to: str | None,
        since: datetime,
        until: datetime,
        general_status: str | None,
        limit: int,
        cursor: dict[str, Any] | None,
    ) -> tuple[list[dict[str, Any]], Any]:
        """Per-recipient log lines, newest first, from indexes only (never a scan)."""
        from boto3.dynamodb.conditions import Attr, Key

        def line(item: dict[str, Any]) -> dict[str, Any]:
            status = str(item.get("status", ""))
            return {
                "messageId": item.get("message_id"),
                "dispatch_id": item.get("dispatch_id"),
                "to": item.get("email"),
                "provider": item.get("provider"),
                "sentAt": item.get("sent_at"),
                "doneAt": item.get("status_at"),
                "status": {"groupName": GENERAL_STATUS.get(status, "PENDING"), "name": status.upper()},
                "reason": item.get("reason"),
                "providerMessageId": item.get("provider_message_id"),
            }

        wanted = Attr("status").is_in(STATUSES_OF_GROUP[general_status]) if general_status else None
        try:
            if message_id:
                dispatch = message_id.rsplit(".", 1)[0]
                item = self._table.get_item(Key={"pk": f"MSG#{dispatch}", "sk": f"R#{message_id}"}).get("Item")
                ok = item and (not general_status or item.get("status") in STATUSES_OF_GROUP[general_status])
                return ([_plain(line(item))] if ok else []), None
            if to:
                query: dict[str, Any] = {
                    "IndexName": "LogIndex",
                    "ScanIndexForward": False,
                    "Limit": limit,
                    "KeyConditionExpression": Key("gsi2pk").eq(f"TO#{to}")
                    & Key("gsi2sk").between(since.isoformat(), until.isoformat() + "~"),
                }
                if wanted is not None:
                    query["FilterExpression"] = wanted
                if cursor:
                    query["ExclusiveStartKey"] = cursor
                page = self._table.query(**query)
                return [_plain(line(i)) for i in page["Items"]], page.get("LastEvaluatedKey")
            # No address: message heads by day (LogIndex "DAY#..."), newest day first, then their recipients.
            lines: list[dict[str, Any]] = []
            day = (cursor or {}).get("day") or until.strftime("%Y-%m-%d")
            start = (cursor or {}).get("key")
            while day >= since.strftime("%Y-%m-%d") and len(lines) < limit:
                query = {
                    "IndexName": "LogIndex",
                    "ScanIndexForward": False,
                    "Limit": limit,
                    "KeyConditionExpression": Key("gsi2pk").eq(f"DAY#{day}")
                    & Key("gsi2sk").between(since.isoformat(), until.isoformat() + "~"),
                }
                if start:
                    query["ExclusiveStartKey"] = start
                page = self._table.query(**query)
                for head in page["Items"]:
                    members = self._table.query(
                        KeyConditionExpression=Key("pk").eq(head["pk"]) & Key("sk").begins_with("R#")
                    )["Items"]
                    lines += [
                        _plain(line(m))
                        for m in members
                        if not general_status or m.get("status") in STATUSES_OF_GROUP[general_status]
                    ]
                    if len(lines) >= limit:
                        return lines, {"day": day, "key": {k: head[k] for k in ("pk", "sk", "gsi2pk", "gsi2sk")}}
                if page.get("LastEvaluatedKey"):
                    start = page["LastEvaluatedKey"]
                    continue
                day = (datetime.strptime(day, "%Y-%m-%d") - timedelta(days=1)).strftime("%Y-%m-%d")
                start = None
            return lines, None
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

    def record_rejected(self, provider: str, reason: str, raw: Any) -> None:
        now = datetime.now(UTC)
        item = {
            "pk": f"REJECTED#{provider}#{now:%Y-%m-%d}",
            "sk": f"{now.isoformat()}#{uuid.uuid4().hex[:8]}",
            "reason": reason,
            "raw": json.dumps(raw, ensure_ascii=False, default=str)[:20_000],
            "expires_at": int((now + self._retention).timestamp()),
        }
        try:
            self._table.put_item(Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc

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
        hidden = {"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expires_at", "status_rank"}
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
