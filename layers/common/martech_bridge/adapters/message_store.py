"""Messages in DynamoDB. One item per dispatch (pk "MSG#<dispatch_id>", sk "M") and one per recipient
(sk "R#<message_id>"). Recipient items are indexed by the provider's id (ProviderIdIndex: "PID#<provider>#<id>")
and by address (LogIndex: "TO#<email>", ordered by send time), so events and log look-ups never scan."""

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

    def get(self, dispatch_id: str) -> dict[str, Any] | None:
        from boto3.dynamodb.conditions import Key

        try:
            items = self._table.query(KeyConditionExpression=Key("pk").eq(f"MSG#{dispatch_id}"))["Items"]
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable("Message store is unavailable") from exc
        head = next((i for i in items if i["sk"] == "M"), None)
        if head is None:
            return None
        hidden = {"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "expires_at"}
        message = {k: _plain(v) for k, v in head.items() if k not in hidden}
        message["recipients"] = [
            {k: _plain(v) for k, v in i.items() if k not in hidden | {"dispatch_id", "provider"}}
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
