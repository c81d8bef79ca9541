"""Sending one message through its provider: each provider call is made, retried on 429 and 5xx with
backoff inside the request's deadline, and read; the outcome becomes a status per recipient.

A timeout after a call was sent is ambiguous: through a provider that deduplicates (Braze's
external_send_id, Infobip's own ids) the call is sent again; through one that cannot (SendGrid) it never
is - its recipients are `unknown`, and the provider's events settle them."""

import random
import time
from dataclasses import dataclass

from martech_bridge.adapters.providers.base import Outbound, Provider, ProviderAnswer, ProviderCall, SendContext
from martech_bridge.adapters.targets.base import TargetResponse, send
from martech_bridge.logic.delivery import Outcome, backoff_seconds
from martech_bridge.models.mail import RecipientResult
from martech_bridge.observability import count, logger

MAX_CALL_ATTEMPTS = 4


@dataclass(frozen=True)
class CallResult:
    results: list[RecipientResult]
    failure: ProviderAnswer | None = None  # the provider's refusal, when it refused


def dispatch(provider: Provider, ctx: SendContext, recipients: list[Outbound], deadline: float) -> list[CallResult]:
    """Every call the provider needs, in turn; `deadline` is a time.monotonic() value."""
    return [_one_call(provider, call, deadline) for call in provider.calls(ctx, recipients)]


def _one_call(provider: Provider, call: ProviderCall, deadline: float) -> CallResult:
    answer: ProviderAnswer | None = None
    ambiguous = False
    for attempt in range(1, MAX_CALL_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining < 0.5:
            break
        raw = send(call.request, remaining)
        if isinstance(raw, TargetResponse):
            answer = provider.read(call, raw)
            ambiguous = False
        else:
            answer = _no_answer(raw)
            ambiguous = raw.ambiguous
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
    return _results(provider, call, answer, ambiguous)


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
        _count(provider, "accepted", len(call.recipients))
        return CallResult(each("accepted"))
    if ambiguous and not call.retry_safe:
        _count(provider, "unknown", len(call.recipients))
        reason = f"{provider.label} did not answer in time; the mail may have been sent (not resent; events will tell)"
        return CallResult(each("unknown", reason))
    if answer is None:
        answer = ProviderAnswer("retry", None, message="no time left to call the provider")
    what = {
        "auth": f"{provider.label} rejected the bridge's credentials (HTTP {answer.status})",
        "rejected": f"{provider.label} refused the message (HTTP {answer.status}): {answer.message or 'no detail'}",
        "retry": f"{provider.label} was unavailable"
        + (f" (HTTP {answer.status})" if answer.status else f" ({answer.message})")
        + " after retries",
    }[answer.kind]
    _count(provider, "failed", len(call.recipients))
    logger.warning(
        "Provider refused or failed",
        extra={
            "provider": provider.name,
            "provider_status": answer.status,
            "kind": answer.kind,
            "provider_message": answer.message,
        },
    )
    return CallResult(each("failed", what), failure=answer)


def _count(provider: Provider, outcome: str, n: int) -> None:
    count(f"Sends{outcome.capitalize()}", n, provider=provider.name)
