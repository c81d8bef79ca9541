"""Sending one message through its provider: each provider call is made, retried on 429 and 5xx with
backoff inside the request's deadline, and read; the outcome becomes a status per recipient.

A timeout after a call was sent is ambiguous: through a provider that documents deduplication (Braze's
external_send_id) the call is sent again; through one that does not (SendGrid, Infobip) it never is - its
recipients are `unknown`, and the provider's events settle them. A provider that needs one call per
recipient (Braze) is called with bounded concurrency; a call that could not be made, or whose retry found
no time left, before the deadline is `pending`: handed back to be sent later from a queue, never `failed`."""

import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import msgspec.structs

from martech_bridge import secrets
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.adapters.providers.base import (
    Outbound,
    Provider,
    ProviderAnswer,
    ProviderCall,
    SendContext,
    classify,
)
from martech_bridge.adapters.targets.base import TargetResponse, send
from martech_bridge.config import Settings
from martech_bridge.errors import ConfigurationError, DependencyUnavailable
from martech_bridge.logic.delivery import Outcome, backoff_seconds
from martech_bridge.models.mail import RecipientResult, RecipientStatus
from martech_bridge.observability import count, logger

MAX_CALL_ATTEMPTS = 4
MAX_REASON = 300  # characters of a provider's message kept in a reason
MIN_CALL_SECONDS = 0.5  # no call is started with less time than this left
PENDING_REASON = "not sent within the request's deadline; queued by the bridge and sent shortly"


class CallResult(msgspec.Struct, frozen=True):
    results: list[RecipientResult]
    failure: ProviderAnswer | None = None  # the provider's refusal, when it refused
    deferred: ProviderCall | None = None  # the call still to be made, when its recipients are `pending`
    # Refused before anything was accepted, by no answer at all (connection refused) or 429/5xx to the end,
    # with no attempt that may have gone out: provably never left, so another provider may send it.
    never_left: bool = False


def dispatch(
    provider: Provider,
    ctx: SendContext,
    recipients: list[Outbound],
    deadline: float,
    concurrency: int = 1,
    *,
    may_have_sent: bool = False,
) -> list[CallResult]:
    """Every call the provider needs, at most `concurrency` at a time; `deadline` is a time.monotonic() value.
    `may_have_sent`: a take-over of a send whose first try may have reached the provider."""
    calls = [msgspec.structs.replace(c, may_have_sent=may_have_sent) for c in provider.calls(ctx, recipients)]
    return run_calls(provider, calls, deadline, concurrency)


def run_calls(
    provider: Provider, calls: Sequence[ProviderCall], deadline: float, concurrency: int = 1
) -> list[CallResult]:
    if len(calls) <= 1 or concurrency <= 1:
        return [_one_call(provider, call, deadline) for call in calls]
    results: list[CallResult | None] = [None] * len(calls)
    lock = threading.Lock()
    cursor = iter(range(len(calls)))

    def worker() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            results[i] = _one_call(provider, calls[i], deadline)

    with ThreadPoolExecutor(max_workers=min(concurrency, len(calls)), thread_name_prefix="send") as pool:
        for future in [pool.submit(worker) for _ in range(min(concurrency, len(calls)))]:
            future.result()
    return [r for r in results if r is not None]


GATEWAY_TIMEOUT = 504


def _one_call(provider: Provider, call: ProviderCall, deadline: float) -> CallResult:
    answer: ProviderAnswer | None = None
    ambiguous = False
    sent_before = call.may_have_sent  # an attempt of this call may already have reached the provider
    for attempt in range(1, MAX_CALL_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining < MIN_CALL_SECONDS:
            break
        raw = send(call.request, remaining)
        if isinstance(raw, TargetResponse):
            answer = _read(provider, call, raw)
            if answer.deduplicated and not sent_before:
                # "Already queued" is our own earlier attempt only if one may have gone out. Otherwise an
                # earlier request used this external_send_id within 24 h (a caller's lost answer, or another
                # send): nothing new went out for this one, and whether the mail reached this recipient is
                # not ours to say - never "accepted", never "failed".
                reason = (
                    f"{provider.label} already holds a send with this external_send_id from an earlier request "
                    "(its 24 h dedupe window); nothing new was sent for this one"
                )
                return CallResult(
                    [
                        RecipientResult(
                            email=o.recipient.email, message_id=o.message_id, status="unknown", reason=reason
                        )
                        for o in call.recipients
                    ]
                )
            # A 504 is a gateway that stopped waiting on the provider behind it, which may have taken the mail:
            # as ambiguous as a timeout of our own (pessimistic reading: no provider documents otherwise).
            ambiguous = raw.status == GATEWAY_TIMEOUT
            sent_before = sent_before or ambiguous
        else:
            answer = _no_answer(raw)
            ambiguous = raw.ambiguous
            sent_before = sent_before or ambiguous
        if ambiguous and not call.retry_safe:
            break  # it may have been sent: never resend through a provider that cannot deduplicate
        if answer.kind != "retry":
            break
        wait = backoff_seconds(attempt, base=0.5, cap=4, retry_after=answer.retry_after)
        if time.monotonic() + wait > deadline - 0.5:
            break
        logger.info(
            "Provider call will be retried",
            extra={
                "provider": provider.name,
                "attempt": attempt,
                "provider_status": answer.status,
                "wait_s": round(wait, 2),
            },
        )
        time.sleep(wait + random.uniform(0, 0.05))  # noqa: S311 - jitter, not security
    return _results(provider, msgspec.structs.replace(call, may_have_sent=sent_before), answer, ambiguous)


def _read(provider: Provider, call: ProviderCall, raw: TargetResponse) -> ProviderAnswer:
    """The provider's answer as the adapter reads it; an answer the adapter cannot read is judged by its
    status alone - a 2xx is still accepted (its ids unknown), anything else is what its status says."""
    try:
        return provider.read(call, raw)
    except Exception:  # noqa: BLE001 - any reading bug must not turn a provider's yes into our 500
        logger.exception("Provider answer unreadable", extra={"provider": provider.name, "provider_status": raw.status})
        message = f"{provider.label} answered HTTP {raw.status} in an unreadable form"
        return ProviderAnswer(classify(raw.status), raw.status, message=message)


def _no_answer(outcome: Outcome) -> ProviderAnswer:
    return ProviderAnswer("retry", None, message=outcome.error)


def _results(provider: Provider, call: ProviderCall, answer: ProviderAnswer | None, ambiguous: bool) -> CallResult:
    def each(status: str, reason: str | None = None) -> list[RecipientResult]:
        return [
            RecipientResult(
                email=o.recipient.email,
                message_id=o.message_id,
                status=status,  # type: ignore[arg-type]
                reason=reason,
                provider_message_id=(answer.provider_ids.get(o.message_id) if answer else None),
            )
            for o in call.recipients
        ]

    if answer is not None and answer.kind == "accepted":
        return CallResult(each("accepted", answer.message))
    if call.retry_safe and (answer is None or ambiguous or answer.kind == "retry"):
        # Never made, made and unanswered, or still refused for now (429, 5xx) with no time left to repeat it:
        # the provider dedupes, so the send queue makes it later.
        return CallResult(each("pending", PENDING_REASON), deferred=call)
    if ambiguous and not call.retry_safe:
        reason = f"{provider.label} did not answer in time; the mail may have been sent (not resent; events will tell)"
        return CallResult(each("unknown", reason))
    if answer is None:
        answer = ProviderAnswer("retry", None, message="no time left to call the provider")
    what = {
        "auth": f"{provider.label} rejected the bridge's credentials (HTTP {answer.status})",
        "rejected": f"{provider.label} refused the message (HTTP {answer.status}): {_short(answer.message)}",
        "retry": f"{provider.label} was unavailable"
        + (f" (HTTP {answer.status})" if answer.status else f" ({_short(answer.message)})")
        + " after retries",
    }[answer.kind]
    logger.warning(
        "Provider refused or failed",
        extra={
            "provider": provider.name,
            "provider_status": answer.status,
            "kind": answer.kind,
            "provider_message": _ADDRESS.sub("***@", answer.message or ""),  # providers quote addresses
        },
    )
    return CallResult(
        each("failed", what), failure=answer, never_left=answer.kind == "retry" and not call.may_have_sent
    )


_ADDRESS = re.compile(r"[^\s<>\"'@,;:]+@")


def _short(message: str | None) -> str:
    """A provider's message as kept in a recipient's reason: bounded, so records stay small."""
    if not message:
        return "no detail"
    return message if len(message) <= MAX_REASON else message[: MAX_REASON - 1] + "…"


def count_outcomes(provider: Provider, results: Sequence[RecipientResult]) -> None:
    """Sends{Accepted,Pending,Unknown,Failed} for the recipients a provider was (to be) called for. Counted
    once, from the request's own thread: metric lines printed from several threads would interleave."""
    tally: dict[str, int] = {}
    for r in results:
        if r.status in ("accepted", "pending", "unknown", "failed"):
            tally[r.status] = tally.get(r.status, 0) + 1
    for outcome, n in sorted(tally.items()):
        count(f"Sends{outcome.capitalize()}", n, provider=provider.name)


def api_key(settings: Settings, provider: Provider) -> str:
    """The provider's API key, resolved from its secret reference; ConfigurationError when none is set."""
    value = secrets.resolve(
        f"{provider.name}_api_key",
        getattr(settings, f"{provider.name}_api_key"),
        allow_plaintext=settings.allow_plaintext_secrets,
    )
    if not value:
        raise ConfigurationError(f"{provider.label} is not configured: {provider.name.upper()}_API_KEY is empty")
    return value


def not_resent(provider: Provider, recipients: Sequence[Outbound]) -> list[RecipientResult]:
    """Recipients of a take-over whose first attempt may have reached a provider that cannot deduplicate."""
    reason = f"an earlier attempt with this key may have handed it to {provider.label}; not resent (events will tell)"
    return [
        RecipientResult(email=o.recipient.email, message_id=o.message_id, status="unknown", reason=reason)
        for o in recipients
    ]


def not_queued(provider: Provider, call: ProviderCall) -> list[RecipientResult]:
    """Recipients of a deferred call the send queue would not take: failed if nothing can have been sent to
    them, unknown if an attempt may have gone out."""
    unavailable = "the bridge's send queue is unavailable"
    status: RecipientStatus
    if call.may_have_sent:
        status, reason = "unknown", f"an attempt may have reached the provider, and {unavailable} to make sure"
    else:
        status, reason = "failed", f"not sent: no time was left in the request and {unavailable}"
    return [
        RecipientResult(email=o.recipient.email, message_id=o.message_id, status=status, reason=reason)
        for o in call.recipients
    ]


def record(
    store: MessageStore,
    dispatch_id: str,
    provider: str,
    head: dict[str, Any],
    results: list[RecipientResult],
    status: str,
    deadline: float,
    fresh: bool,
) -> bool:
    """Write the message's records, retried until `deadline` (time.monotonic()); False if they could not be.
    A retry writes only what is missing (the first try may have written part)."""
    for attempt in range(1, 5):
        try:
            store.save(dispatch_id, provider, head, results, status, fresh=fresh and attempt == 1)
            return True
        except DependencyUnavailable:
            wait = backoff_seconds(attempt, base=0.2, cap=1.0)
            if time.monotonic() + wait > deadline:
                break
            time.sleep(wait)
    logger.error("Message records could not be written after the provider was called")
    return False
