"""Issue 12, end to end through the real functions: every terminal outcome final, every event findable,
dialects exact, token scope, per-event isolation, look-ups as complete as Infobip's."""

import base64
import json
import time
import uuid
from typing import Any

import pytest
from martech_bridge.logic.event_auth import infobip_callback_token

from tests.conftest import Functions
from tests.integration.test_event_processing import (
    T0,
    fresh_sandbox,  # noqa: F401 - autouse fixture
    get,
    message,
    post_events,
    send,
    sg,
    subscription,
    work,
)

INFOBIP_SECRET = "local-infobip-webhook-secret"


def addr(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


def drain_reports(functions: Functions, query: str = "limit=1000") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        status, page = get(functions, "/reports", "/reports", query)
        assert status == 200, page
        if not page["results"]:
            return out
        out += page["results"]


def events_for(functions: Functions, query: str) -> list[dict[str, Any]]:
    status, page = get(functions, "/events", "/events", query)
    assert status == 200, page
    return page["results"]


def dlr(dispatch: str | None, message_id: str, to: str, group: str, name: str, **extra: Any) -> dict[str, Any]:
    item = {
        "messageId": message_id,
        "to": to,
        "doneAt": "2026-11-22T05:00:04.000+0000",
        "status": {"groupName": group, "name": name},
        **extra,
    }
    if dispatch:
        item["bulkId"] = dispatch
    return item


def token(dispatch: str) -> str:
    return f"token={infobip_callback_token(INFOBIP_SECRET, dispatch)}"


def test_soft_bounces_are_final_with_a_report_and_suppress_no_one(functions: Functions, moto_server) -> None:
    sg_email, ib_email, bz_email = addr("sgsoft"), addr("ibsoft"), addr("bzsoft")
    sg_dispatch = send(functions, "sendgrid", [sg_email])["dispatch_id"]
    ib_dispatch = send(functions, "infobip", [ib_email])["dispatch_id"]
    braze = send(functions, "braze", [bz_email], template_id="c1")
    post_events(
        functions, "sendgrid", [sg(sg_email, sg_dispatch, 0, "bounce", 5, type="blocked", reason="421 blocked")]
    )
    soft = dlr(ib_dispatch, f"{ib_dispatch}.0", ib_email, "UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED")
    soft["error"] = {"permanent": False, "description": "mailbox full"}
    post_events(functions, "infobip", {"results": [soft]}, token(ib_dispatch))
    post_events(
        functions,
        "braze",
        {
            "dispatch_id": braze["recipients"][0]["provider_message_id"],
            "status": "bounced",
            "metadata": {"bounced_at": "2026-11-22T05:00:03Z", "reason": "smtp; 452 4.2.2 mailbox full"},
        },
        "token=local-braze-postback-secret",
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    dispatches = (sg_dispatch, ib_dispatch, braze["dispatch_id"])
    for dispatch in dispatches:
        assert message(functions, dispatch)["recipients"][0]["status"] == "bounced"
    reports = {r["messageId"]: r for r in drain_reports(functions)}
    for dispatch in dispatches:
        report = reports[f"{dispatch}.0"]
        assert report["generalStatus"] == "UNDELIVERABLE" and report["bounce"] == "soft"
    for email in (sg_email, ib_email, bz_email):
        assert subscription(functions, email) is None  # soft: nobody suppressed
    _, logs = get(functions, "/messages", "/messages", f"messageId={ib_dispatch}.0")
    assert logs["results"][0]["status"]["groupName"] == "UNDELIVERABLE"  # not PENDING for ever


def test_soft_bounces_suppress_for_marketing_only_when_the_setting_asks(functions: Functions, moto_server) -> None:
    soft, hard = addr("sgsoftsup"), addr("sghardsup")
    dispatch = send(functions, "sendgrid", [soft, hard])["dispatch_id"]
    post_events(
        functions,
        "sendgrid",
        [
            sg(soft, dispatch, 0, "bounce", 5, type="blocked", reason="421 4.7.1 try later"),
            sg(hard, dispatch, 1, "bounce", 5, type="bounce", reason="550 5.1.1 no such user"),
        ],
    )
    assert work(functions, moto_server, SUPPRESS_SOFT_BOUNCES="true") == {"batchItemFailures": []}
    assert [r["status"] for r in message(functions, dispatch)["recipients"]] == ["bounced", "bounced"]
    state = subscription(functions, soft)
    assert state is not None and state["subscribed"] is False and state["suppression"] == "soft_bounce"
    assert state["source"] == "event:sendgrid" and "421 4.7.1" in state["reason"]
    assert subscription(functions, hard)["suppression"] == "hard_bounce"  # type: ignore[index]
    # Marketing mail is held back; transactional mail still goes (the bounce was temporary).
    marketing = send(functions, "sendgrid", [soft])["recipients"][0]
    assert marketing["status"] == "suppressed" and "soft_bounce" in marketing["reason"]
    transactional = send(functions, "sendgrid", [soft], categories=["transactional"])["recipients"][0]
    assert transactional["status"] == "accepted"


def test_events_of_mail_sent_elsewhere_are_findable(functions: Functions, moto_server) -> None:
    email = addr("elsewhere")
    pmid = uuid.uuid4().hex
    post_events(
        functions,
        "sendgrid",
        [
            {
                "email": email,
                "event": "open",
                "timestamp": T0,
                "sg_event_id": uuid.uuid4().hex,
                "sg_message_id": f"{pmid}.x",
            }
        ],
    )
    post_events(
        functions,
        "infobip",
        {"notificationType": "OPENED", "messageId": "foreign-1", "recipient": email, "eventId": uuid.uuid4().hex},
        f"token={INFOBIP_SECRET}",
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    found = events_for(functions, f"to={email}")
    assert sorted((e["provider"], e["event_type"]) for e in found) == [("infobip", "opened"), ("sendgrid", "opened")]
    assert all("matched_by" not in e for e in found)
    assert [e["provider"] for e in events_for(functions, f"provider_message_id={pmid}")] == ["sendgrid"]


def test_a_sendgrid_async_bounce_without_ids_is_matched_by_address(functions: Functions, moto_server) -> None:
    email = addr("async")
    dispatch = send(functions, "sendgrid", [email])["dispatch_id"]
    # Async bounces carry neither sg_message_id nor custom args (WIRE-FORMATS 2.2).
    bounce = {
        "email": email,
        "event": "bounce",
        "type": "bounce",
        "reason": "550 5.1.1",
        "timestamp": int(time.time()) + 60,
        "sg_event_id": uuid.uuid4().hex,
    }
    post_events(functions, "sendgrid", [bounce])
    assert work(functions, moto_server) == {"batchItemFailures": []}
    recipient = message(functions, dispatch)["recipients"][0]
    assert recipient["status"] == "bounced" and [e["matched_by"] for e in recipient["events"]] == ["address"]
    assert subscription(functions, email)["suppression"] == "hard_bounce"
    assert [r["messageId"] for r in drain_reports(functions, f"messageId={dispatch}.0")] == [f"{dispatch}.0"]


def test_drops_for_unsubscribed_addresses_suppress(functions: Functions, moto_server) -> None:
    email = addr("dropunsub")
    dispatch = send(functions, "sendgrid", [email])["dispatch_id"]
    post_events(functions, "sendgrid", [sg(email, dispatch, 0, "dropped", 5, reason="Unsubscribed Address")])
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert subscription(functions, email)["suppression"] == "unsubscribe"


def test_history_is_in_utc_order_whatever_the_provider_offset(functions: Functions, moto_server) -> None:
    email = addr("utc")
    dispatch = send(functions, "infobip", [email])["dispatch_id"]
    pending = dlr(dispatch, f"{dispatch}.0", email, "PENDING", "PENDING_ENROUTE", doneAt="2026-11-22T16:40:00.000+0000")
    delivered = dlr(
        dispatch, f"{dispatch}.0", email, "DELIVERED", "DELIVERED_TO_HANDSET", doneAt="2026-11-22T17:32:00.000+0100"
    )
    post_events(functions, "infobip", {"results": [pending, delivered]}, token(dispatch))
    assert work(functions, moto_server) == {"batchItemFailures": []}
    recipient = message(functions, dispatch)["recipients"][0]
    assert [e["timestamp"] for e in recipient["events"]] == ["2026-11-22T16:32:00+00:00", "2026-11-22T16:40:00+00:00"]
    assert recipient["status"] == "delivered" and recipient["status_at"] == "2026-11-22T16:32:00+00:00"


def test_infobip_late_bounce_clicks_expired_and_unknown_groups(functions: Functions, moto_server) -> None:
    emails = [addr("late"), addr("clicks"), addr("expired"), addr("odd")]
    dispatch = send(functions, "infobip", emails)["dispatch_id"]
    late = {"notificationType": "LATE_BOUNCE", "messageId": f"{dispatch}.0", "bulkId": dispatch, "recipient": emails[0]}
    post_events(functions, "infobip", late, token(dispatch))
    for url in ("https://a.example/", "https://b.example/"):  # two clicks, no eventId: both kept
        click = {
            "notificationType": "CLICKED",
            "messageId": f"{dispatch}.1",
            "bulkId": dispatch,
            "recipient": emails[1],
            "url": url,
            "sendDateTime": 1795323605000,
            "recipientInfo": {"deviceType": "Phone", "os": "iOS", "deviceName": "iPhone"},
        }
        post_events(functions, "infobip", click, token(dispatch))
    reports = [
        dlr(dispatch, f"{dispatch}.2", emails[2], "EXPIRED", "EXPIRED_EXPIRED"),
        dlr(dispatch, f"{dispatch}.3", emails[3], "SOMETHING_NEW", "X"),
    ]
    post_events(functions, "infobip", {"results": reports}, token(dispatch))
    assert work(functions, moto_server) == {"batchItemFailures": []}
    recipients = message(functions, dispatch)["recipients"]
    assert recipients[0]["status"] == "bounced" and subscription(functions, emails[0])["suppression"] == "hard_bounce"
    clicks = recipients[1]["events"]
    assert sorted(e["url"] for e in clicks) == ["https://a.example/", "https://b.example/"]
    assert all(e["timestamp"] != "2026-11-22T05:00:05+00:00" for e in clicks)  # not the send time
    assert all("user_agent" not in e for e in clicks)  # device data is not a user agent
    assert recipients[2]["status"] == "expired"
    assert [e["event_type"] for e in recipients[3]["events"]] == ["unknown"]
    status, expired = get(functions, "/messages", "/messages", f"bulkId={dispatch}&generalStatus=EXPIRED")
    assert status == 200 and [r["messageId"] for r in expired["results"]] == [f"{dispatch}.2"]


def test_a_per_dispatch_token_authorises_only_its_own_dispatch(functions: Functions, moto_server) -> None:
    mine, other = addr("mine"), addr("victim")
    dispatch = send(functions, "infobip", [mine])["dispatch_id"]
    victim = send(functions, "infobip", [other])["dispatch_id"]
    bounce = dlr(None, f"{victim}.0", other, "UNDELIVERABLE", "X", error={"permanent": True})  # no bulkId
    ok = dlr(dispatch, f"{dispatch}.0", mine, "DELIVERED", "DELIVERED_TO_HANDSET")
    post_events(functions, "infobip", {"results": [ok, bounce]}, token(dispatch))
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert message(functions, dispatch)["recipients"][0]["status"] == "delivered"
    assert message(functions, victim)["recipients"][0]["status"] == "accepted"
    assert subscription(functions, other) is None


def test_effects_go_to_the_matched_recipient_not_the_address_in_the_event(functions: Functions, moto_server) -> None:
    real, forged = addr("real"), addr("forged")
    dispatch = send(functions, "sendgrid", [real])["dispatch_id"]
    post_events(functions, "sendgrid", [sg(forged, dispatch, 0, "spamreport", 5)])
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert subscription(functions, real)["suppression"] == "spam_report"
    assert subscription(functions, forged) is None


@pytest.mark.parametrize("bad", [1e20, 1e300, "NaN", "soon"])
def test_one_bad_timestamp_never_fails_its_post(functions: Functions, moto_server, bad: Any) -> None:
    email = addr("isolated")
    post_events(
        functions,
        "sendgrid",
        [
            {"email": email, "event": "open", "timestamp": bad, "sg_event_id": uuid.uuid4().hex},
            {"email": email, "event": "unsubscribe", "timestamp": T0, "sg_event_id": uuid.uuid4().hex},
        ],
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert subscription(functions, email)["suppression"] == "unsubscribe"


def test_an_address_our_validator_refuses_is_still_recorded(functions: Functions, moto_server) -> None:
    local = uuid.uuid4().hex[:8]
    event = {"email": f"{local}@invalid", "event": "dropped", "reason": "Invalid", "timestamp": T0}
    post_events(functions, "sendgrid", [{**event, "sg_event_id": uuid.uuid4().hex}])
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert [e["reject_reason"] for e in events_for(functions, f"to={local}@invalid")] == ["invalid"]


# ------------------------------------------------------------------ look-ups
def test_logs_take_several_message_ids_bulk_id_and_limit_bounds_lines(functions: Functions, moto_server) -> None:
    emails = [addr("many") for _ in range(3)]
    dispatch = send(functions, "infobip", emails, categories=["spring-sale"])["dispatch_id"]
    _, two = get(functions, "/messages", "/messages", f"messageId={dispatch}.0,{dispatch}.2")
    assert sorted(r["messageId"] for r in two["results"]) == [f"{dispatch}.0", f"{dispatch}.2"]
    _, bulk = get(functions, "/messages", "/messages", f"bulkId={dispatch}&limit=1")
    assert len(bulk["results"]) == 1 and bulk["cursor"]
    _, rest = get(functions, "/messages", "/messages", f"bulkId={dispatch}&limit=1&cursor={bulk['cursor']}")
    assert len(rest["results"]) == 1 and rest["results"][0]["messageId"] != bulk["results"][0]["messageId"]
    _, by_campaign = get(functions, "/messages", "/messages", f"bulkId={dispatch}&campaignReferenceId=spring-sale")
    assert len(by_campaign["results"]) == 3
    _, none = get(functions, "/messages", "/messages", f"bulkId={dispatch}&campaignReferenceId=other")
    assert none["results"] == []
    _, day = get(functions, "/messages", "/messages", "limit=1")
    assert len(day["results"]) == 1  # lines, not messages
    _, nxt = get(functions, "/messages", "/messages", f"limit=1&cursor={day['cursor']}")
    assert len(nxt["results"]) == 1 and nxt["results"] != day["results"]


def test_reports_by_message_id_and_bulk_id_once_each(functions: Functions, moto_server) -> None:
    emails = [addr("rep") for _ in range(2)]
    dispatch = send(functions, "sendgrid", emails)["dispatch_id"]
    post_events(
        functions, "sendgrid", [sg(emails[0], dispatch, 0, "delivered", 5), sg(emails[1], dispatch, 1, "delivered", 5)]
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    _, one = get(functions, "/reports", "/reports", f"messageId={dispatch}.1")
    assert [r["messageId"] for r in one["results"]] == [f"{dispatch}.1"]
    _, rest = get(functions, "/reports", "/reports", f"bulkId={dispatch}")
    assert [r["messageId"] for r in rest["results"]] == [f"{dispatch}.0"]
    _, again = get(functions, "/reports", "/reports", f"bulkId={dispatch}")
    assert again["results"] == []


def crafted(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=%C2%B2", "limit"),
        ("limit=1001", "limit"),
        ("sentUntil=0001-01-01T00:00:00Z", "sentUntil"),
        ("sentSince=1900-01-01T00:00:00Z", "sentSince"),
        ("sentSince=2026-01-01T00:00:00Z&sentUntil=2026-11-01T00:00:00Z", "sentSince"),
        (f"cursor={crafted({'day': 'x'})}", "cursor"),
        (f"cursor={crafted({'key': 'x'})}", "cursor"),
        (f"cursor={crafted({'f': 'x', 'k': {'b': '2099-01-01', 'm': 'R#'}})}", "cursor"),
        ("messageId=" + ",".join(f"d_x.{i}" for i in range(101)), "messageId"),
        ("messageId=" + "d" * 2001, "messageId"),
    ],
)
def test_bad_look_ups_are_400_never_500(functions: Functions, query: str, field: str) -> None:
    status, body = get(functions, "/messages", "/messages", query)
    assert status == 400 and body["error"]["field"] == field, body


def test_a_cursor_reused_with_other_filters_is_400(functions: Functions, moto_server) -> None:
    email, other = addr("cur"), addr("cur2")
    send(functions, "sendgrid", [email])
    send(functions, "sendgrid", [email])
    _, page = get(functions, "/messages", "/messages", f"to={email}&limit=1")
    assert page["cursor"]
    status, body = get(functions, "/messages", "/messages", f"to={other}&limit=1&cursor={page['cursor']}")
    assert status == 400 and body["error"]["field"] == "cursor"
    status, body = get(functions, "/events", "/events", f"to={email}&cursor={page['cursor']}")
    assert status == 400 and body["error"]["field"] == "cursor"
