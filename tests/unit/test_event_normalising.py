"""Every provider's events become the one normalised model, and their effects follow KARTE's rules."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from martech_bridge import events
from martech_bridge.adapters.providers.braze import braze_events
from martech_bridge.adapters.providers.infobip import infobip_events
from martech_bridge.adapters.providers.sendgrid import sendgrid_events
from martech_bridge.logic.event_effects import should_suppress, status_change, suppression_for
from martech_bridge.models.events import EventType, NormalizedEvent, RejectedEvent
from martech_bridge.models.subscription import SuppressionKind

from devkit.template import REPO_ROOT

BATCH = json.loads((REPO_ROOT / "events/payloads/sendgrid-batch.json").read_text())


def test_every_sendgrid_event_type_is_mapped() -> None:
    events = sendgrid_events(BATCH)
    assert all(isinstance(e, NormalizedEvent) for e in events)
    mapped = {(e.provider_event, e.event_type, e.bounce) for e in events}
    assert {(k, t) for k, t, _ in mapped} >= {
        ("processed", EventType.QUEUED),
        ("dropped", EventType.REJECTED),
        ("delivered", EventType.DELIVERED),
        ("deferred", EventType.DEFERRED),
        ("open", EventType.OPENED),
        ("click", EventType.CLICKED),
        ("spamreport", EventType.COMPLAINED),
        ("unsubscribe", EventType.UNSUBSCRIBED),
        ("group_unsubscribe", EventType.UNSUBSCRIBED),
        ("group_resubscribe", EventType.SUBSCRIBED),
    }
    bounces = {e.provider_event: e.bounce for e in events if e.event_type == EventType.BOUNCED}
    assert bounces == {"bounce:bounce": "hard", "bounce:blocked": "soft"}


def test_sendgrid_fields_custom_args_and_machine_opens() -> None:
    events = sendgrid_events(
        [
            {
                "email": " Taro@Example.com",
                "event": "open",
                "timestamp": 1717402404,
                "sg_event_id": "e1",
                "sg_message_id": "AOb5.recvd",
                "sg_machine_open": True,
                "useragent": "Mail/1.0",
                "dispatch_id": "d_1",
                "message_id": "d_1.0",
            }
        ]
    )
    (event,) = events
    assert (event.recipient, event.dispatch_id, event.message_id, event.machine_open) == (
        "taro@example.com",
        "d_1",
        "d_1.0",
        True,
    )
    assert event.timestamp == datetime.fromtimestamp(1717402404, UTC) and event.user_agent == "Mail/1.0"


def test_dropped_reasons_and_unreadable_events() -> None:
    events = sendgrid_events(
        [
            {
                "email": "a@b.co",
                "event": "dropped",
                "reason": "Unsubscribed Address",
                "timestamp": 1795323600,
                "sg_event_id": "x",
            },
            {"email": "not an address", "event": "open", "timestamp": 1795323600},  # kept: still news
            {"event": "open"},
            "not an object",
        ]
    )
    assert events[0].reject_reason == "unsubscribed"
    assert isinstance(events[1], NormalizedEvent) and events[1].recipient == "not an address"
    assert [type(e) for e in events[2:]] == [RejectedEvent] * 2
    assert "timestamp" in events[2].reason


@pytest.mark.parametrize(
    ("status", "metadata", "event_type", "bounce"),
    [
        ("sent", {"sent_at": "2020-08-31T18:58:42.000+00:00"}, EventType.QUEUED, None),
        ("processed", {"processed_at": "2020-08-31T18:58:42.000+00:00"}, EventType.QUEUED, None),
        ("delivered", {"delivered_at": "2020-08-31T18:27:32.000+00:00"}, EventType.DELIVERED, None),
        (
            "bounced",
            {"bounced_at": "2020-08-31T18:58:43.000+00:00", "reason": "550 5.1.1 no such user"},
            EventType.BOUNCED,
            "hard",
        ),
        (
            "bounced",
            {"bounced_at": "2020-08-31T18:58:43.000+00:00", "reason": "421 try later"},
            EventType.BOUNCED,
            "soft",
        ),
        (
            "aborted",
            {"aborted_at": "2020-08-31T19:04:51.000+00:00", "reason": "User not emailable"},
            EventType.ABORTED,
            None,
        ),
    ],
)
def test_every_braze_status(status: str, metadata: dict, event_type: EventType, bounce: str | None) -> None:
    (event,) = braze_events({"dispatch_id": "acf47111", "status": status, "metadata": metadata})
    assert (event.event_type, event.bounce, event.event_id) == (event_type, bounce, f"acf47111:{status}")


@pytest.mark.parametrize(
    ("group", "permanent", "event_type", "bounce"),
    [
        ("PENDING", False, EventType.QUEUED, None),
        ("DELIVERED", False, EventType.DELIVERED, None),
        ("UNDELIVERABLE", True, EventType.BOUNCED, "hard"),
        ("UNDELIVERABLE", False, EventType.BOUNCED, "soft"),
        ("EXPIRED", False, EventType.EXPIRED, None),
        ("REJECTED", False, EventType.REJECTED, None),
    ],
)
def test_infobip_status_groups(group: str, permanent: bool, event_type: EventType, bounce: str | None) -> None:
    (event,) = infobip_events(
        {
            "results": [
                {
                    "bulkId": "d_9",
                    "messageId": "d_9.0",
                    "to": "a@b.co",
                    "doneAt": "2024-06-03T08:13:24.512+0000",
                    "status": {"groupName": group, "name": group},
                    "error": {"permanent": permanent},
                }
            ]
        }
    )
    assert (event.event_type, event.bounce, event.dispatch_id) == (event_type, bounce, "d_9")


@pytest.mark.parametrize(
    ("kind", "event_type"),
    [
        ("OPENED", EventType.OPENED),
        ("CLICKED", EventType.CLICKED),
        ("COMPLAINED", EventType.COMPLAINED),
        ("UNSUBSCRIBED", EventType.UNSUBSCRIBED),
    ],
)
def test_infobip_tracking_notifications(kind: str, event_type: EventType) -> None:
    (event,) = infobip_events(
        {
            "notificationType": kind,
            "messageId": "d_9.1",
            "bulkId": "d_9",
            "recipient": "a@b.co",
            "sendDateTime": 1717402404000,
            "url": "https://x.example/",
        }
    )
    assert event.event_type == event_type and event.message_id == "d_9.1"


def ev(event_type: EventType, **kw) -> NormalizedEvent:
    return NormalizedEvent(
        provider="p", event_id="1", event_type=event_type, provider_event="x", timestamp=datetime.now(UTC), **kw
    )


def test_status_ranks_move_forward_and_failures_outrank_success() -> None:
    assert status_change(ev(EventType.QUEUED))[1] < status_change(ev(EventType.DELIVERED))[1]
    assert status_change(ev(EventType.OPENED)) == ("delivered", 5)
    assert status_change(ev(EventType.BOUNCED, bounce="soft")) == status_change(ev(EventType.BOUNCED, bounce="hard"))
    assert status_change(ev(EventType.BOUNCED, bounce="hard"))[1] > status_change(ev(EventType.CLICKED))[1]
    assert status_change(ev(EventType.COMPLAINED)) is None


def test_karte_subscription_rule() -> None:
    assert suppression_for(ev(EventType.BOUNCED, bounce="hard")) == SuppressionKind.HARD_BOUNCE
    assert suppression_for(ev(EventType.BOUNCED, bounce="soft")) is None
    assert suppression_for(ev(EventType.DEFERRED)) is None
    assert suppression_for(ev(EventType.COMPLAINED)) == SuppressionKind.SPAM_REPORT
    assert suppression_for(ev(EventType.UNSUBSCRIBED)) == SuppressionKind.UNSUBSCRIBE
    assert suppression_for(ev(EventType.SUBSCRIBED)) is None  # re-subscribing stays explicit
    assert should_suppress(None, None, SuppressionKind.UNSUBSCRIBE)
    assert not should_suppress(False, SuppressionKind.HARD_BOUNCE, SuppressionKind.UNSUBSCRIBE)
    assert should_suppress(False, SuppressionKind.UNSUBSCRIBE, SuppressionKind.HARD_BOUNCE)


def test_soft_bounces_suppress_only_when_the_operator_asks_and_as_the_weakest_reason() -> None:
    soft = ev(EventType.BOUNCED, bounce="soft")
    assert suppression_for(soft, soft_bounces=False) is None
    assert suppression_for(soft, soft_bounces=True) == SuppressionKind.SOFT_BOUNCE
    # The setting changes nothing else: a hard bounce stays hard, a deferral suppresses no one.
    assert suppression_for(ev(EventType.BOUNCED, bounce="hard"), soft_bounces=True) == SuppressionKind.HARD_BOUNCE
    assert suppression_for(ev(EventType.DEFERRED), soft_bounces=True) is None
    assert should_suppress(True, None, SuppressionKind.SOFT_BOUNCE)
    assert not should_suppress(False, SuppressionKind.UNSUBSCRIBE, SuppressionKind.SOFT_BOUNCE)
    assert not should_suppress(False, SuppressionKind.MANUAL, SuppressionKind.SOFT_BOUNCE)
    assert should_suppress(False, SuppressionKind.SOFT_BOUNCE, SuppressionKind.UNSUBSCRIBE)


def test_a_soft_bounce_suppression_holds_back_marketing_but_not_transactional_mail() -> None:
    from martech_bridge.logic.gate import decide
    from martech_bridge.models.subscription import Subscription

    state = Subscription.model_validate(
        {
            "email": "a@example.com",
            "subscribed": False,
            "suppression": "soft_bounce",
            "changed_at": "2026-11-22T05:00:00Z",
        }
    )
    assert decide("a@example.com", state, transactional=False, unknown_subscribed=True).verdict == "suppressed"
    assert decide("a@example.com", state, transactional=True, unknown_subscribed=True).verdict == "send"


def test_an_event_built_from_checked_fields_is_the_one_the_class_builds() -> None:
    from dataclasses import fields

    from martech_bridge.models.events import checked_event

    # A distinct value per field, so a field left out or set from the wrong argument shows.
    values = [
        "sendgrid", "ev-1", EventType.BOUNCED, "bounce:blocked", datetime(2026, 11, 22, tzinfo=UTC), "a@example.com",
        "d_1", "d_1.0", "X1", "ext-1", "soft", "other", "421 later", "421 4.7.1", "https://x.example/", "Mail",
        False, ["cat"], {"tenant": "t"}, "id", {"event": "bounce"},
    ]  # fmt: skip
    assert len(values) == len(fields(NormalizedEvent))
    built = checked_event(*values)
    assert built == NormalizedEvent(*values)
    assert built.model_dump() == NormalizedEvent(*values).model_dump()


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON, ascii_only=st.booleans())
def test_the_event_worker_reads_a_post_exactly_as_json_does(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    # repr: an int stays an int (64-bit parsers turn longer ones into floats), -0.0 stays -0.0.
    assert repr(events._parse(text)) == repr(json.loads(text))


@pytest.mark.parametrize(
    "text",
    ["[NaN]", "[1e400]", '["\\ud800"]', "[18446744073709551616, -9223372036854775809]", '{"a": 1, "a": 2}'],
)
def test_what_the_fast_parser_refuses_or_reads_otherwise_is_read_as_json_does(text: str) -> None:
    assert repr(events._parse(text)) == repr(json.loads(text))
