"""Effect measurement: which daily counter an event adds to, and the rates a day's counts give."""

from typing import Any

from martech_bridge.models.events import EventType, NormalizedEvent

# The counters GET /stats reports per provider and day, in the order it lists them.
COUNTERS = (
    "sent",
    "delivered",
    "bounced_hard",
    "bounced_soft",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
)
# Each provider tells of one message's acceptance once in `queued`, except Braze, which posts both `sent`
# (handed to its sending partner) and `processed` (the partner took it) for the same message (WIRE-FORMATS
# 3.3): only its `sent` counts, or every Braze message would count twice.
_SECOND_ACCEPTANCE = {("braze", "processed")}
_DIRECT = {
    EventType.DELIVERED: "delivered",
    EventType.OPENED: "opened",
    EventType.CLICKED: "clicked",
    EventType.COMPLAINED: "complained",
    EventType.UNSUBSCRIBED: "unsubscribed",
}


def counter_of(event: NormalizedEvent) -> str | None:
    """The counter this event adds one to, or None (deferrals, rejections, ... are not effect counts).
    A bounce without a class (Braze's reason without an SMTP code) is counted as soft: it suppressed no one."""
    if event.event_type == EventType.QUEUED:
        return None if (event.provider, event.provider_event) in _SECOND_ACCEPTANCE else "sent"
    if event.event_type == EventType.BOUNCED:
        return "bounced_hard" if event.bounce == "hard" else "bounced_soft"
    return _DIRECT.get(event.event_type)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rates(counts: dict[str, int]) -> dict[str, Any]:
    """Rates as ESP dashboards give them: delivery and bounce rates over sent, engagement over delivered.
    None where the denominator is zero (not 0: nothing was measured)."""
    sent, delivered = counts.get("sent", 0), counts.get("delivered", 0)
    bounced = counts.get("bounced_hard", 0) + counts.get("bounced_soft", 0)
    return {
        "delivery_rate": _ratio(delivered, sent),
        "bounce_rate": _ratio(bounced, sent),
        "open_rate": _ratio(counts.get("opened", 0), delivered),
        "click_rate": _ratio(counts.get("clicked", 0), delivered),
        "complaint_rate": _ratio(counts.get("complained", 0), delivered),
        "unsubscribe_rate": _ratio(counts.get("unsubscribed", 0), delivered),
    }


def daily(days: list[str], providers: list[str], found: dict[tuple[str, str], dict[str, int]]) -> dict[str, Any]:
    """GET /stats's body: every day of the window (zeros where nothing was counted), summed over the given
    providers, each with its rates and its per-provider counts, and the window's totals."""
    out = []
    totals = dict.fromkeys(COUNTERS, 0)
    for day in days:
        counts = dict.fromkeys(COUNTERS, 0)
        by_provider = {}
        for provider in providers:
            mine = {name: int(found.get((provider, day), {}).get(name, 0)) for name in COUNTERS}
            if any(mine.values()):
                by_provider[provider] = mine
            for name in COUNTERS:
                counts[name] += mine[name]
        for name in COUNTERS:
            totals[name] += counts[name]
        out.append({"day": day, **counts, "rates": rates(counts), "providers": by_provider})
    return {"days": out, "totals": {**totals, "rates": rates(totals)}}
