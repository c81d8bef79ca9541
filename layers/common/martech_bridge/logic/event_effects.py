"""What an event does: a recipient's delivery status only moves forward (a late `processed` never undoes
`delivered`; a final state stays final), and KARTE's subscription rule - a hard bounce, spam report or
unsubscribe (or a drop for one of those) sets subscription to false with the reason; soft bounces only
when the operator asks (SUPPRESS_SOFT_BOUNCES), deferrals never. Every terminal provider outcome, a soft
bounce included, is a final status."""

from martech_bridge.models.events import EventType, NormalizedEvent
from martech_bridge.models.subscription import SuppressionKind

# Delivery status rank. Engagement (opened, clicked) proves delivery; failure states outrank success
# (an asynchronous bounce after `delivered` is the truer news) and are final.
RANK: dict[str, int] = {
    "accepted": 0,
    "unknown": 0,
    EventType.QUEUED: 1,
    EventType.SENT: 2,
    EventType.DEFERRED: 3,
    EventType.DELIVERED: 4,
    EventType.OPENED: 5,
    EventType.CLICKED: 6,
    EventType.BOUNCED: 9,
    EventType.REJECTED: 9,
    EventType.FAILED: 9,
    EventType.ABORTED: 9,
    EventType.EXPIRED: 9,
}
FINAL_STATUSES = frozenset({"delivered", "bounced", "rejected", "failed", "aborted", "expired"})
FINAL_RANK_FLOOR = 4  # a status at or above "delivered" was final already: no second report
STATUS_OF = {EventType.OPENED: "delivered", EventType.CLICKED: "delivered"}


def status_change(event: NormalizedEvent) -> tuple[str, int] | None:
    """(new status, its rank) this event can set, or None if it says nothing about delivery."""
    rank = RANK.get(event.event_type)
    if rank is None:
        return None
    return STATUS_OF.get(event.event_type, event.event_type.value), rank


STRENGTH = {
    SuppressionKind.HARD_BOUNCE: 3,
    SuppressionKind.SPAM_REPORT: 3,
    SuppressionKind.UNSUBSCRIBE: 2,
    SuppressionKind.MANUAL: 1,
    SuppressionKind.SOFT_BOUNCE: 1,  # the weakest: any other reason replaces it, it replaces none
}


def suppression_for(event: NormalizedEvent, *, soft_bounces: bool = False) -> SuppressionKind | None:
    """The suppression KARTE's `talk_message_fail` rule asks for, if any; `soft_bounces`: the operator's
    choice to suppress soft-bounced addresses too (KARTE's rule does not)."""
    if event.event_type == EventType.BOUNCED and event.bounce == "hard":
        return SuppressionKind.HARD_BOUNCE
    if event.event_type == EventType.BOUNCED and event.bounce == "soft" and soft_bounces:
        return SuppressionKind.SOFT_BOUNCE
    if event.event_type == EventType.REJECTED and event.reject_reason == "bounced":
        return SuppressionKind.HARD_BOUNCE
    if event.event_type == EventType.COMPLAINED or (
        event.event_type == EventType.REJECTED and event.reject_reason == "spam"
    ):
        return SuppressionKind.SPAM_REPORT
    if event.event_type == EventType.UNSUBSCRIBED or (
        event.event_type == EventType.REJECTED and event.reject_reason == "unsubscribed"
    ):
        return SuppressionKind.UNSUBSCRIBE
    return None


def should_suppress(
    current_subscribed: bool | None, current_kind: SuppressionKind | None, new_kind: SuppressionKind
) -> bool:
    """Write only what changes something: not again, and never a weaker reason over a stronger one."""
    if current_subscribed is None or current_subscribed:
        return True
    return STRENGTH[new_kind] > STRENGTH.get(current_kind or SuppressionKind.MANUAL, 1)


def reports_on(old_rank: int, new_status: str) -> bool:
    """A final delivery report is owed the first time a recipient's status turns final."""
    return new_status in FINAL_STATUSES and old_rank < FINAL_RANK_FLOOR
