"""Delivery rules: which target answers are retried, how long to wait, and when to give up."""

import email.utils
import random
import re
import time
from typing import Any, Literal

import msgspec

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Retry-After is 1*DIGIT (RFC 9110 10.2.3): ASCII digits only - str.isdigit() also takes "²" and "٣".
_DELTA_SECONDS = re.compile(r"[0-9]{1,400}")
MAX_RETRY_AFTER = 43_200.0  # a target asking for more than SQS can hold a message back (12 h) gets 12 h
Verdict = Literal["delivered", "retry", "rejected"]


class Outcome(msgspec.Struct, frozen=True):
    """One attempt's result, as the delivery machinery sees it."""

    verdict: Verdict
    status: int | None  # HTTP status, None when no answer came (timeout, connection error)
    error: str | None = None  # short description for records and logs
    target_code: str | None = None  # the target's own error code (kintone GAIA_RE01, ...)
    target_message: str | None = None
    target_errors: Any = None
    result: dict[str, Any] | None = None  # flat fields for the caller on success
    retry_after: float | None = None  # seconds the target asked us to wait
    ambiguous: bool = False  # the target may have acted (timeout after sending)


def classify_status(status: int) -> Verdict:
    if 200 <= status < 300:
        return "delivered"
    if status in RETRYABLE_STATUS or status >= 500:
        return "retry"
    return "rejected"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return min(MAX_RETRY_AFTER, float(value))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        seconds = parsed.timestamp() - (now if now is not None else time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def backoff_seconds(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Wait before attempt `attempt + 1`: exponential with full jitter, never less than Retry-After."""
    exponential = min(cap, base * (2 ** max(0, attempt - 1)))
    jittered = (rng or random).uniform(exponential / 2, exponential)
    if retry_after is not None:
        return min(max(jittered, retry_after), max(cap, retry_after))
    return jittered


def should_give_up(
    attempts: int, max_attempts: int, created_at: float, max_age: float, now: float, next_wait: float
) -> str | None:
    """Why no further attempt is made, or None to go on."""
    if attempts >= max_attempts:
        return f"gave up after {attempts} attempt(s) (max_attempts {max_attempts})"
    if now + next_wait - created_at > max_age:
        return f"gave up: the next attempt would be past max_age_seconds ({int(max_age)} s)"
    return None
