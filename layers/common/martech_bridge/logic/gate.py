"""Who may be sent to (KARTE's rules, checked before any provider is called): the recipient has an e-mail
address; their subscription is true (unknown recipients: a configurable default); they are not suppressed.
Transactional mail may go to an unsubscribed (or soft-bounce suppressed) address, never to a hard-bounced or
spam-reporting one."""

from typing import Literal

import msgspec

from martech_bridge.models.subscription import Subscription, SuppressionKind

BLOCKS_EVEN_TRANSACTIONAL = frozenset({SuppressionKind.HARD_BOUNCE, SuppressionKind.SPAM_REPORT})
# A soft bounce was temporary: an operator who suppresses them holds back marketing, not a password reset.
TRANSACTIONAL_GOES = frozenset({SuppressionKind.UNSUBSCRIBE, SuppressionKind.SOFT_BOUNCE})


class Decision(msgspec.Struct, frozen=True):
    verdict: Literal["send", "suppressed", "invalid"]
    reason: str | None = None


def decide(email: str | None, state: Subscription | None, *, transactional: bool, unknown_subscribed: bool) -> Decision:
    if not email:
        return Decision("invalid", "no e-mail address")
    if state is None:
        if unknown_subscribed:
            return Decision("send")
        return Decision("suppressed", "no subscription record, and unknown recipients are not sent to")
    if state.subscribed:
        return Decision("send")
    kind = state.suppression or SuppressionKind.MANUAL
    if kind in BLOCKS_EVEN_TRANSACTIONAL:
        return Decision("suppressed", f"{kind.value}: never sent to, not even transactional mail")
    if transactional and kind in TRANSACTIONAL_GOES:
        return Decision("send")
    return Decision(
        "suppressed",
        f"{kind.value}: unsubscribed" + ("" if transactional else " (only transactional mail bypasses an unsubscribe)"),
    )
