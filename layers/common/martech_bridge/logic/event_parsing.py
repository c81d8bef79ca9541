"""Small readers shared by the providers' event normalisers: every one either returns a clean value or
raises Unreadable with the reason, so one bad field rejects one event and never its post."""

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from martech_bridge.models.email import InvalidEmail, normalize_email

# Provider times outside this window are not times (1e20 s, 1e300 s): refuse them, one event at a time.
EARLIEST = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
LATEST = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())


class Unreadable(ValueError):
    """Why one event could not be read."""


def recipient(value: Any) -> str | None:
    """The address an event names, normalised as the send path stores it when it can be, but kept even
    when our strict validator would refuse it (SendGrid reports `invalid@invalid`, quoted local parts):
    an event about such an address is still news and is recorded."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise Unreadable("recipient address is not a string")
    address = value.strip()
    if address.isascii():
        # The strict normaliser's own result for every ASCII address it accepts (lower case, no root dot),
        # without its cost; others are kept the same way, lenient. isprintable() is false for control
        # characters and every whitespace but the space itself.
        if not address.isprintable() or " " in address:
            return address.lower()[:320] or None
        if address.rfind("@") > 0 and address[-1] not in ".@":  # nearly every address: one lower() and done
            return address.lower()
        local, sep, domain = address.rpartition("@")
        if sep and local and domain:
            return f"{local.lower()}@{domain.rstrip('.').lower()}"
        return address.lower()[:320] or None
    try:
        return normalize_email(address)
    except InvalidEmail:
        return address.lower()[:320]


def epoch(value: Any) -> datetime:
    """Unix seconds (or milliseconds) to an aware UTC time."""
    if type(value) is int and EARLIEST <= value <= LATEST:  # SendGrid's own form, the common case
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, bool):
        raise Unreadable(f"timestamp {value!r} is not a number")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Unreadable(f"timestamp {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(seconds):
        raise Unreadable("timestamp is not a finite number")
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    if not EARLIEST <= seconds <= LATEST:
        raise Unreadable(f"timestamp {str(value)[:40]!r} is out of range")
    return datetime.fromtimestamp(seconds, UTC)


def iso(value: Any) -> datetime:
    """An ISO 8601 time with any offset (Infobip sends `+0100`) to an aware UTC time."""
    if not isinstance(value, str) or not value or len(value) > 64:
        raise Unreadable(f"timestamp {str(value)[:40]!r} is not a date")
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 -> +00:00
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Unreadable(f"timestamp {value[:40]!r} is not ISO 8601") from None
    if not EARLIEST <= parsed.timestamp() <= LATEST:
        raise Unreadable(f"timestamp {value[:40]!r} is out of range")
    return parsed


def stamp(moment: datetime) -> str:
    """The one text form of a time the bridge stores and sorts by: UTC, microseconds, `+00:00`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def fingerprint(item: Any) -> str:
    """A stable id for an event that carries none of its own."""
    return hashlib.sha256(json.dumps(item, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


def text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def tags(value: Any) -> list[str]:
    """A provider's category field as anymail's tags: a string is one tag, a list several."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int) and v != ""]
    return []


def json_object(value: Any) -> dict[str, Any]:
    """Infobip's callbackData: a JSON object given as text (ours always is); anything else is kept as text."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"callbackData": value[:2000]}
        return parsed if isinstance(parsed, dict) else {"callbackData": value[:2000]}
    return {}
