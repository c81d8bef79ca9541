"""Operator look-ups: any id to its delivery or message, a recipient's subscription history, and logs
exported for a time range."""

import csv
import io
import json
from datetime import datetime
from typing import Any

from martech_bridge.adapters.delivery_store import DeliveryStore
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore

from bridgectl.resources import StackResources

PROVIDERS = ("sendgrid", "braze", "infobip")


def find(stack: StackResources, any_id: str) -> dict[str, Any] | None:
    """A delivery id (dl_...), a dispatch id (d_...), one of our message ids (d_....N), or a provider's
    message id (SendGrid's X-Message-Id or sg_message_id, Braze's dispatch_id, Infobip's messageId)."""
    stack.apply_to_environment()
    if any_id.startswith("dl_"):
        delivery = DeliveryStore(stack.deliveries_table, 30).get(any_id)
        return {"delivery": delivery.public()} if delivery else None
    messages = MessageStore(stack.messages_table, 30)
    if any_id.startswith("d_"):
        dispatch = any_id.rsplit(".", 1)[0] if "." in any_id else any_id
        message = messages.get(dispatch)
        return {"message": message} if message else None
    for provider in PROVIDERS:
        recipient = messages.find_recipient(provider, None, None, any_id, None)
        if recipient:
            return {"message": messages.get(str(recipient["dispatch_id"]))}
    return None


def subscription(stack: StackResources, email: str) -> dict[str, Any] | None:
    stack.apply_to_environment()
    state, history = DynamoSubscriptionStore(stack.subscriptions_table, 30).get(email)
    if state is None:
        return None
    return {**state.model_dump(mode="json"), "history": [h.model_dump(mode="json") for h in history]}


def export_logs(stack: StackResources, *, since: datetime, until: datetime, to: str | None, fmt: str) -> str:
    """Every log line in the range (following the cursor to the end), as CSV or JSON lines."""
    stack.apply_to_environment()
    messages = MessageStore(stack.messages_table, 30)
    lines: list[dict[str, Any]] = []
    cursor = None
    while True:
        page, cursor = messages.logs(
            message_id=None, to=to, since=since, until=until, general_status=None, limit=500, cursor=cursor
        )
        lines += page
        if not cursor:
            break
    if fmt == "json":
        return "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["sentAt", "doneAt", "to", "messageId", "dispatch_id", "provider", "generalStatus", "status", "reason"]
    )
    for line in lines:
        writer.writerow(
            [
                line.get("sentAt"),
                line.get("doneAt"),
                line.get("to"),
                line.get("messageId"),
                line.get("dispatch_id"),
                line.get("provider"),
                line["status"]["groupName"],
                line["status"]["name"],
                line.get("reason"),
            ]
        )
    return out.getvalue()
