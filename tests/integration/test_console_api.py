"""The console's API through the real functions: GET /stats counts each event exactly once however often its
post arrives, GET /deliveries pages a route's deliveries by state and time, and nothing answers without a key."""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from devkit.sandbox.server import Sandbox
from tests.conftest import Functions
from tests.integration.test_event_processing import call, post_events, send, sg, work

KEY = [("x-api-key", "local-dev-key-1")]


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def query(functions: Functions, path: str, params: dict[str, str], headers: Any = KEY) -> tuple[int, Any]:
    from urllib.parse import urlencode

    return call(functions, "QueryFunction", "GET", path, path, headers=headers, query=urlencode(params))


def a_day_of_our_own() -> tuple[str, int]:
    """A UTC day no other test posts events on (the tables are shared by the session), and its midnight."""
    day = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(3000))
    return f"{day:%Y-%m-%d}", int(day.timestamp())


def story(dispatch: str, emails: list[str], t0: int) -> list[dict[str, Any]]:
    happy, hard, soft, spam, unsub = emails

    def at(email: str, index: int, event: str, offset: int, **fields: Any) -> dict[str, Any]:
        return {**sg(email, dispatch, index, event, offset, **fields), "timestamp": t0 + 3600 + offset}

    return [
        at(happy, 0, "processed", 10),
        at(happy, 0, "delivered", 20, response="250 OK"),
        at(happy, 0, "open", 30, useragent="Mail", sg_machine_open=False),
        at(happy, 0, "open", 35, useragent="Mail", sg_machine_open=False),  # a second open: counted too
        at(happy, 0, "click", 40, url="https://shop.example/"),
        at(hard, 1, "processed", 10),
        at(hard, 1, "bounce", 20, type="bounce", reason="550 5.1.1 unknown", status="5.1.1"),
        at(soft, 2, "processed", 10),
        at(soft, 2, "deferred", 15, response="421 try later", attempt="1"),
        at(soft, 2, "bounce", 20, type="blocked", reason="421 blocked"),
        at(spam, 3, "processed", 10),
        at(spam, 3, "delivered", 20),
        at(spam, 3, "spamreport", 50),
        at(unsub, 4, "processed", 10),
        at(unsub, 4, "delivered", 20),
        at(unsub, 4, "unsubscribe", 61),
    ]


EXPECTED = {
    "sent": 5,
    "delivered": 3,
    "bounced_hard": 1,
    "bounced_soft": 1,
    "opened": 2,
    "clicked": 1,
    "complained": 1,
    "unsubscribed": 1,
}


def test_stats_count_each_event_once_when_its_batch_is_delivered_twice(functions: Functions, moto_server) -> None:
    # Given a day's SendGrid events, posted twice (SendGrid retries a post it thinks failed)
    day, t0 = a_day_of_our_own()
    emails = [f"{tag}-{uuid.uuid4().hex[:6]}@example.com" for tag in ("happy", "hard", "soft", "spam", "unsub")]
    dispatch = send(functions, "sendgrid", emails)["dispatch_id"]
    events = story(dispatch, emails, t0)
    post_events(functions, "sendgrid", events)
    post_events(functions, "sendgrid", events)
    # and again, half of it within a new post: what was applied is not counted again, the rest once
    post_events(functions, "sendgrid", events[:8])
    # When the worker has taken every post
    assert work(functions, moto_server) == {"batchItemFailures": []}

    # Then each counter holds exactly the events of that day
    status, stats = query(functions, "/stats", {"from": day, "to": day, "provider": "sendgrid"})
    assert status == 200, stats
    (only,) = stats["days"]
    assert {k: only[k] for k in EXPECTED} == EXPECTED
    assert only["providers"] == {"sendgrid": EXPECTED}
    assert only["rates"]["delivery_rate"] == round(3 / 5, 4)
    assert only["rates"]["open_rate"] == round(2 / 3, 4) and only["rates"]["bounce_rate"] == round(2 / 5, 4)
    assert stats["totals"]["sent"] == 5
    # another provider saw nothing that day: zeros, and rates that say "not measured" rather than 0 %
    status, braze = query(functions, "/stats", {"from": day, "to": day, "provider": "braze"})
    assert status == 200 and braze["days"][0]["sent"] == 0 and braze["days"][0]["rates"]["delivery_rate"] is None


def test_stats_of_a_window_list_every_day_and_sum_the_providers(functions: Functions, moto_server) -> None:
    day, t0 = a_day_of_our_own()
    emails = [f"{tag}-{uuid.uuid4().hex[:6]}@example.com" for tag in ("happy", "hard", "soft", "spam", "unsub")]
    dispatch = send(functions, "sendgrid", emails)["dispatch_id"]
    post_events(functions, "sendgrid", story(dispatch, emails, t0))
    assert work(functions, moto_server) == {"batchItemFailures": []}
    before = f"{datetime.fromisoformat(day) - timedelta(days=2):%Y-%m-%d}"
    status, stats = query(functions, "/stats", {"from": before, "to": day})
    assert status == 200, stats
    assert [d["day"] for d in stats["days"]][-1] == day and len(stats["days"]) == 3
    assert [d["delivered"] for d in stats["days"]] == [0, 0, 3]
    assert stats["totals"]["opened"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-02-30"},
        {"from": "26-01-01"},
        {"from": "2026-03-01", "to": "2026-01-01"},
        {"from": "2026-01-01", "to": "2026-12-31"},  # more than 92 days
        {"provider": "mailchimp"},
    ],
)
def test_stats_refuse_bad_windows_with_a_400_naming_the_field(functions: Functions, params: dict[str, str]) -> None:
    status, body = query(functions, "/stats", params)
    assert status == 400 and body["error"]["field"] in ("from", "to", "provider")


@pytest.mark.parametrize(
    "path",
    [
        "/stats",
        "/deliveries",
        "/deliveries/dl_00000000000000000000000000",
        "/events",
        "/messages",
        "/subscriptions",
    ],
)
@pytest.mark.parametrize("key", [None, "not-the-key"])
def test_every_call_the_console_makes_is_401_without_the_key(functions: Functions, path: str, key: str | None) -> None:
    headers = [("x-api-key", key)] if key else []
    status, body = call(functions, "QueryFunction", "GET", path, path, headers=headers, query="email=a%40example.com")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    retried = call(
        functions,
        "QueryFunction",
        "POST",
        "/deliveries/dl_00000000000000000000000000/retry",
        "/deliveries/{delivery_id}/retry",
        headers=headers,
        params={"delivery_id": "dl_00000000000000000000000000"},
    )
    assert retried[0] == 401


def test_the_console_page_is_served_without_a_key_and_holds_no_data(functions: Functions) -> None:
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    event = build_event(
        method="GET",
        target="/console",
        headers=[],
        body=b"",
        route=HttpRoute("GET", "/console", "QueryFunction"),
        path_parameters={},
    )
    result = functions.invoke("QueryFunction", event)
    assert result["statusCode"] == 200
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert headers["content-type"].startswith("text/html") and "charset=utf-8" in headers["content-type"]
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
    page = result["body"]
    assert 'id="api-key"' in page and "sessionStorage" in page and "X-Api-Key" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # no CDN


# ------------------------------------------------------------------ deliveries
def seed_deliveries(aws_env, route: str, states: list[str], start: datetime) -> list[str]:
    from martech_bridge import config
    from martech_bridge.adapters.delivery_store import DeliveryStore
    from martech_bridge.models.delivery import Delivery, DeliveryStatus, FailureReason

    config.reset()
    store = DeliveryStore(_table(aws_env), 7)
    ids = []
    for n, state in enumerate(states):
        moment = start + timedelta(seconds=n)
        status = DeliveryStatus("failed" if state == "outcome_unknown" else state)
        delivery = Delivery(
            delivery_id=f"dl_{uuid.uuid4().hex[:26]}",
            route=route,
            target="PUT http://127.0.0.1/k/v1/record.json",
            status=status,
            attempts=1,
            max_attempts=5,
            created_at=moment,
            updated_at=moment,
            request_hash="h",
            payload={"email": "x@example.com"},
            failure=FailureReason.OUTCOME_UNKNOWN if state == "outcome_unknown" else None,
        )
        assert store.create(delivery) is None
        ids.append(delivery.delivery_id)
    return ids


def _table(aws_env) -> str:
    names = aws_env.client("dynamodb").list_tables()["TableNames"]
    return next(n for n in names if "Deliveries" in n)


def test_deliveries_page_newest_first_by_route_state_and_time(functions: Functions, aws_env) -> None:
    route = f"console-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    states = ["delivered", "failed", "rejected", "outcome_unknown", "failed"] * 24  # 120 deliveries
    ids = seed_deliveries(aws_env, route, states, start)
    window = {"route": route, "since": start.isoformat(), "until": (start + timedelta(hours=1)).isoformat()}

    seen: list[str] = []
    cursor = ""
    while True:
        status, page = query(
            functions, "/deliveries", {**window, "limit": "50", **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, page
        seen += [d["delivery_id"] for d in page["results"]]
        if not page["cursor"]:
            break
        cursor = page["cursor"]
    assert seen == list(reversed(ids))  # every one, once, newest first

    status, failed = query(functions, "/deliveries", {**window, "status": "failed", "limit": "1000"})
    assert status == 200
    assert {d["delivery_id"] for d in failed["results"]} == {
        i for i, s in zip(ids, states, strict=True) if s in ("failed", "outcome_unknown")
    }
    status, unknown = query(functions, "/deliveries", {**window, "status": "outcome_unknown", "limit": "1000"})
    assert [d["failure"] for d in unknown["results"]] == ["outcome_unknown"] * 24
    # the time filter: the first ten seconds only
    status, early = query(functions, "/deliveries", {**window, "until": (start + timedelta(seconds=10)).isoformat()})
    assert [d["delivery_id"] for d in early["results"]] == list(reversed(ids[:10]))
    # a cursor only works with the filters it came with
    status, page = query(functions, "/deliveries", {**window, "limit": "10"})
    status, refused = query(functions, "/deliveries", {**window, "status": "failed", "cursor": page["cursor"]})
    assert status == 400 and refused["error"]["field"] == "cursor"


def test_stats_count_relay_deliveries_per_route_and_day(functions: Functions, aws_env) -> None:
    route = "marketo-email-opened"  # configured: counted without naming it
    start = datetime(2027, 3, 3, 23, 59, 58, tzinfo=UTC)
    seed_deliveries(aws_env, route, ["delivered", "failed", "delivered", "rejected"], start)  # 2 before midnight
    status, stats = query(functions, "/stats", {"from": "2027-03-03", "to": "2027-03-04"})
    assert status == 200, stats
    mine = [r for r in stats["relay"] if r["route"] == route]
    assert mine == [
        {"day": "2027-03-03", "route": route, "total": 2, "delivered": 1, "failed": 1},
        {"day": "2027-03-04", "route": route, "total": 2, "delivered": 1, "rejected": 1},
    ]


def test_listed_deliveries_say_what_the_console_shows(functions: Functions, aws_env) -> None:
    route = f"console-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 7, 1, tzinfo=UTC)
    (one,) = seed_deliveries(aws_env, route, ["outcome_unknown"], start)
    window = {"route": route, "since": start.isoformat(), "until": (start + timedelta(days=1)).isoformat()}
    status, page = query(functions, "/deliveries", window)
    assert status == 200
    (line,) = page["results"]
    assert line["delivery_id"] == one and line["status"] == "failed" and line["failure"] == "outcome_unknown"
    assert set(line) >= {"route", "target", "attempts", "max_attempts", "created_at", "updated_at"}
    assert "payload" not in line and json.dumps(line).find("x@example.com") < 0  # no payload, no address


def test_a_filtered_listing_that_stops_early_never_skips_the_last_delivery_it_read(aws_env, monkeypatch) -> None:
    """A shard that stops reading after MAX_LIST_PAGES pages sets the page's floor at the last position it
    read. When that last item matches the filter, it must be on this page or the next, never on neither."""
    import zlib

    from martech_bridge import config
    from martech_bridge.adapters import delivery_store
    from martech_bridge.adapters.delivery_store import LIST_SHARDS, DeliveryStore, list_time
    from martech_bridge.models.delivery import Delivery, DeliveryStatus

    monkeypatch.setattr(delivery_store, "MAX_LIST_PAGES", 1)
    config.reset()
    store = DeliveryStore(_table(aws_env), 7)
    tag = uuid.uuid4().hex[:8]
    wanted, noise = f"wanted-{tag}", f"noise-{tag}"
    start = datetime(2029, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(3000))

    def in_shard_zero() -> str:
        while True:
            candidate = f"dl_{uuid.uuid4().hex[:26]}"
            if zlib.crc32(candidate.encode()) % LIST_SHARDS == 0:
                return candidate

    # Newest first in shard 0: 15 noise, then the wanted one (the 16th, the last of a 16-item read), 10 noise.
    routes = [noise] * 10 + [wanted] + [noise] * 15  # oldest first
    ids = []
    for n, route in enumerate(routes):
        moment = start + timedelta(seconds=n)
        delivery = Delivery(
            delivery_id=in_shard_zero(),
            route=route,
            target="PUT http://127.0.0.1/k/v1/record.json",
            status=DeliveryStatus.DELIVERED,
            attempts=1,
            max_attempts=5,
            created_at=moment,
            updated_at=moment,
            request_hash="h",
            payload={},
        )
        assert store.create(delivery) is None
        ids.append(delivery.delivery_id)

    seen: list[str] = []
    before = list_time(start + timedelta(hours=1))
    for _ in range(10):
        items, after = store.listing(route=wanted, statuses=None, since=list_time(start), before=before, limit=2)
        seen += [i["delivery_id"] for i in items]
        if after is None:
            break
        before = after
    assert seen == [ids[10]]


def test_paging_the_default_window_keeps_the_first_pages_window_while_time_passes(
    functions: Functions, aws_env
) -> None:
    """Without since/until the window is "the last 7 days" of the first page: a later page (the console's
    "More", or a redrive sweeping thousands) must continue it, not slide it and lose or refuse its tail."""
    import time

    route = f"console-{uuid.uuid4().hex[:8]}"
    edge = datetime.now(UTC) - timedelta(days=7) + timedelta(seconds=3)
    older, newer = seed_deliveries(aws_env, route, ["failed", "failed"], edge)
    status, first = query(functions, "/deliveries", {"route": route, "limit": "1"})
    assert status == 200 and [d["delivery_id"] for d in first["results"]] == [newer], first
    time.sleep(5)  # the first page's window now reaches past the older delivery's creation
    status, second = query(functions, "/deliveries", {"route": route, "limit": "1", "cursor": first["cursor"]})
    assert status == 200, second
    assert [d["delivery_id"] for d in second["results"]] == [older]
