"""Small readers shared by the providers' event normalisers."""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from martech_bridge.models.email import InvalidEmail, normalize_email


class Unreadable(ValueError):
    """Why one event could not be read."""


def recipient(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return normalize_email(str(value))
    except InvalidEmail as exc:
        raise Unreadable(f"recipient address {exc}") from None


def epoch(value: Any) -> datetime:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise Unreadable(f"timestamp {value!r} is not a number") from None
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    return datetime.fromtimestamp(seconds, UTC)


def iso(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise Unreadable(f"timestamp {value!r} is not a date")
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 -> +00:00
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Unreadable(f"timestamp {value!r} is not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fingerprint(item: Any) -> str:
    """A stable id for an event that carries none of its own."""
    return hashlib.sha256(json.dumps(item, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


def text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
