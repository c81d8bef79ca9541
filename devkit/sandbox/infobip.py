"""Infobip e-mail stand-in: `Authorization: App <key>`, v3 multipart send (repeated `to`, attachments,
notifyUrl, callbackData, own messageId/bulkId) and v4 JSON send, PENDING_ACCEPTED per recipient, and
Infobip's requestError/serviceException error shape."""

import json
import re
import secrets
from email import policy
from email.parser import BytesParser
from typing import Any

from devkit.sandbox.base import AcceptedLog, Reply, Request

PENDING = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 26,
    "name": "PENDING_ACCEPTED",
    "description": "Message accepted, pending for delivery.",
}
MAX_RECIPIENTS = 1000


def infobip_error(status: int, message_id: str, text: str, validation: dict[str, list[str]] | None = None) -> Reply:
    exception: dict[str, Any] = {"messageId": message_id, "text": text}
    if validation:
        exception["validationErrors"] = validation
    return Reply(status, {"requestError": {"serviceException": exception}})


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | bytes, str | None]]:
    """(field name, value, filename) for each part; text parts decoded, file parts as bytes."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("body is not multipart")
    parts: list[tuple[str, str | bytes, str | None]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            payload = b""
        if filename is None:
            charset = part.get_content_charset() or "utf-8"
            parts.append((str(name), payload.decode(charset), None))
        else:
            parts.append((str(name), payload, filename))
    return parts


class Infobip(AcceptedLog):
    """Accepted sends (v3 form fields or v4 request, with the ids issued) at /_sandbox/infobip/sent."""

    name = "infobip"

    def __init__(self, api_keys: list[str]) -> None:
        super().__init__()
        self.api_keys = list(api_keys)

    def handle(self, request: Request) -> Reply:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "App" or key.strip() not in self.api_keys:
            return infobip_error(401, "UNAUTHORIZED", "Invalid login details")
        if request.method == "POST" and request.path == "/email/3/send":
            return self._send_v3(request)
        if request.method == "POST" and request.path == "/email/4/messages":
            return self._send_v4(request)
        return infobip_error(404, "NOT_FOUND", "Requested URL not found: " + request.path)

    def _send_v3(self, request: Request) -> Reply:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return infobip_error(415, "UNSUPPORTED_MEDIA_TYPE", "Content type must be multipart/form-data")
        try:
            parts = parse_multipart(content_type, request.body)
        except ValueError:
            return infobip_error(400, "BAD_REQUEST", "Bad request")
        fields: dict[str, list[Any]] = {}
        for name, value, filename in parts:
            fields.setdefault(name, []).append({"filename": filename, "size": len(value)} if filename else value)
        recipients = []
        for raw in fields.get("to", []):
            try:
                parsed = json.loads(raw) if raw.lstrip().startswith("{") else {"to": raw}
            except json.JSONDecodeError:
                return infobip_error(400, "BAD_REQUEST", "Bad request", {"to": ["invalid JSON destination"]})
            recipients.append(parsed)
        problems: dict[str, list[str]] = {}
        if not recipients:
            problems["to"] = ["must not be empty"]
        if len(recipients) + len(fields.get("cc", [])) + len(fields.get("bcc", [])) > MAX_RECIPIENTS:
            problems["to"] = [f"must not have more than {MAX_RECIPIENTS} recipients"]
        if not fields.get("templateId"):
            if not fields.get("from"):
                problems["from"] = ["must not be empty"]
            if not fields.get("subject"):
                problems["subject"] = ["must not be empty"]
            if not (fields.get("text") or fields.get("html")):
                problems["text"] = ["text or html must be present"]
        for r in recipients:
            if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", str(r.get("to", ""))):
                problems.setdefault("to", []).append(f"invalid destination address {r.get('to')!r}")
        if problems:
            return infobip_error(400, "BAD_REQUEST", "Bad request", problems)
        bulk_id = (fields.get("bulkId") or [secrets.token_hex(10)])[0]
        own_id = (fields.get("messageId") or [None])[0]
        messages = []
        for i, r in enumerate(recipients):
            message_id = (
                r.get("messageId") or (own_id if own_id and len(recipients) == 1 else None) or secrets.token_hex(12)
            )
            if own_id and len(recipients) > 1 and not r.get("messageId"):
                message_id = f"{own_id}-{i}"
            messages.append({"to": r["to"], "messageId": message_id, "status": dict(PENDING)})
        self.accept({"api": "v3", "bulkId": bulk_id, "fields": fields, "messages": messages})
        return Reply(200, {"bulkId": bulk_id, "messages": messages})

    def _send_v4(self, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return infobip_error(400, "BAD_REQUEST", "Bad request")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return infobip_error(400, "BAD_REQUEST", "Bad request", {"messages": ["must not be empty"]})
        results = []
        for message in body["messages"]:
            for destination in message.get("destinations", []) if isinstance(message, dict) else []:
                for to in destination.get("to", []):
                    results.append(
                        {
                            "messageId": to.get("messageId") or secrets.token_hex(12),
                            "destination": to.get("destination"),
                            "status": dict(PENDING),
                        }
                    )
        if not results:
            return infobip_error(400, "BAD_REQUEST", "Bad request", {"destinations": ["must not be empty"]})
        bulk_id = body.get("bulkId") or secrets.token_hex(10)
        self.accept({"api": "v4", "bulkId": bulk_id, "request": body, "messages": results})
        return Reply(200, {"bulkId": bulk_id, "messages": results})
