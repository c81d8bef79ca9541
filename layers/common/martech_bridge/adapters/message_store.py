"""Messages in DynamoDB. One item per dispatch (pk "MSG#<dispatch_id>", sk "M") and one per recipient
(sk "R#<message_id>"). Recipient items are indexed by the provider's id (ProviderIdIndex: "PID#<provider>#<id>")
and by address (LogIndex: "TO#<email>", ordered by send time), so events and log look-ups never scan."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from martech_bridge.adapters import aws
from martech_bridge.errors import DependencyUnavailable
from martech_bridge.models.mail import MailRequest, RecipientResult


class MessageStore:
    def __init__(self, table_name: str, retention_days: int) -> None:
        self._table_name = table_name
        self._retention = timedelta(days=retention_days)

    @property
    def _table(self) -> Any:
        return aws.dynamodb_table(self._table_name)

    def save(
        self, dispatch_id: str, provider: str, request: MailRequest, results: list[RecipientResult], status: str
    ) -> None:
        now = datetime.now(UTC)
        stamp = now.isoformat()
        expires = int((now + self._retention).timestamp())
        pk = f"MSG#{dispatch_id}"
        items: list[dict[str, Any]] = [
            {
                "pk": pk,
                "sk": "M",
                "dispatch_id": dispatch_id,
                "provider": provider,
                "status": status,
                "created_at": stamp,
                "subject": request.subject,
                "template_id": request.template_id,
                "categories": request.categories or None,
                "metadata": request.metadata or None,
                "external_send_id": request.external_send_id,
                "recipients": len(results),
                "expires_at": expires,
                "gsi2pk": f"DAY#{now:%Y-%m-%d}",
                "gsi2sk": f"{stamp}#{dispatch_id}",
            }
        ]
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
            items.append(item)
        try:
            with self._table.batch_writer() as batch:
                for item in items:
                    batch.put_item(Item={k: v for k, v in item.items() if v is not None})
        except (ClientError, BotoCoreError) as exc:
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

    def record_event(self, recipient: dict[str, Any] | None, event: Any, status: tuple[str, int] | None) -> bool:
        """Keep the event in the recipient's history (ordered by provider time); move its status forward.
        Returns whether the status moved. Events for mail the bridge did not send are kept per day."""
        stamp = event.timestamp.isoformat()
        body = {k: v for k, v in event.model_dump(mode="json").items() if v is not None and k != "raw"}
        body["raw"] = json.dumps(event.raw, ensure_ascii=False)[:20_000]
        expires = int((datetime.now(UTC) + self._retention).timestamp())
        if recipient is None:
            item = {"pk": f"EVENTS#{event.provider}#{stamp[:10]}", "sk": f"E#{stamp}#{event.event_id}", **body}
        else:
            item = {"pk": recipient["pk"], "sk": f"E#{recipient['message_id']}#{stamp}#{event.event_id}", **body}
        try:
            self._table.put_item(Item={**item, "expires_at": expires})
            if recipient is None or status is None:
                return False
            self._table.update_item(
                Key={"pk": recipient["pk"], "sk": recipient["sk"]},
                UpdateExpression="SET #s = :s, status_rank = :r, status_at = :t",
                ConditionExpression="attribute_exists(pk) AND (attribute_not_exists(status_rank) OR status_rank < :r)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": status[0], ":r": status[1], ":t": stamp},
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # a later (or final) status is already there
            raise DependencyUnavailable("Message store is unavailable") from exc
        except BotoCoreError as exc:
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
