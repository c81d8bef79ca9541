"""Events end to end through the real functions: a message sent through SendFunction, its provider's
events posted (signed) to EventsFunction, the queued post processed by EventWorkerFunction - then the
message's status and history and the recipients' subscriptions read back."""

import json
import random
import uuid
from typing import Any

import pytest
import requests
from martech_bridge.logic.event_auth import infobip_callback_token

from devkit.gateway import build_event
from devkit.queues import sqs_event
from devkit.sandbox.server import Sandbox
from devkit.signing import sendgrid_headers
from devkit.template import HttpRoute, local_queue_url
from tests.conftest import Functions, load_event

T0 = 1795323600


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def call(
    functions: Functions,
    function: str,
    method: str,
    path: str,
    route: str,
    body: bytes = b"",
    headers: list | None = None,
    params: dict | None = None,
    query: str = "",
) -> tuple[int, Any]:
    event = build_event(
        method=method,
        target=path + (f"?{query}" if query else ""),
        headers=headers or [],
        body=body,
        route=HttpRoute(method, route, function),
        path_parameters=params or {},
    )
    result = functions.invoke(function, event)
    return result["statusCode"], json.loads(result["body"])


def send(functions: Functions, provider: str, emails: list[str], **extra: Any) -> dict[str, Any]:
    body = {
        "provider": provider,
        "to": [
            {"email": e, "user_id": f"u-{i}"} if provider == "braze" else {"email": e} for i, e in enumerate(emails)
        ],
        **extra,
    }
    if provider != "braze":
        body.update(subject="s", text="t")
    status, answer = call(
        functions,
        "SendFunction",
        "POST",
        "/mail/send",
        "/mail/send",
        json.dumps(body).encode(),
        [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")],
    )
    assert status == 202, answer
    return answer


def post_events(functions: Functions, provider: str, payload: Any, query: str = "") -> None:
    raw = (json.dumps(payload, ensure_ascii=False) + ("\r\n" if provider == "sendgrid" else "")).encode()
    headers = [("content-type", "application/json")]
    if provider == "sendgrid":
        headers += [(k.lower(), v) for k, v in sendgrid_headers(raw).items()]
    status, answer = call(
        functions,
        "EventsFunction",
        "POST",
        f"/events/{provider}",
        "/events/{provider}",
        raw,
        headers,
        {"provider": provider},
        query,
    )
    assert status == 200, answer


def work(functions: Functions, moto_server, **settings: str) -> dict[str, Any]:
    """Run the event worker over everything queued (as Lambda would, batch by batch); `settings` override
    its environment."""
    sqs = moto_server.client("sqs")
    url = local_queue_url("EventQueue")
    failures: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return {"batchItemFailures": failures}
        result = functions.invoke(
            "EventWorkerFunction", sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:EventQueue"), **settings
        )
        failures += result["batchItemFailures"]
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def message(functions: Functions, dispatch_id: str) -> dict[str, Any]:
    status, body = call(
        functions,
        "QueryFunction",
        "GET",
        f"/messages/{dispatch_id}",
        "/messages/{dispatch_id}",
        headers=[("x-api-key", "local-dev-key-1")],
        params={"dispatch_id": dispatch_id},
    )
    assert status == 200, body
    return body


def subscription(functions: Functions, email: str) -> dict[str, Any] | None:
    status, body = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        headers=[("x-api-key", "local-dev-key-1")],
        params={"email": email},
    )
    return body if status == 200 else None


def sg(email: str, dispatch: str, index: int, event: str, offset: int, **fields: Any) -> dict[str, Any]:
    return {
        "email": email,
        "event": event,
        "timestamp": T0 + offset,
        "sg_event_id": f"{dispatch}-{index}-{event}-{offset}",
        "sg_message_id": "AOb5ZXUgSEeRAymhwhEySA.recvd-x",
        "dispatch_id": dispatch,
        "message_id": f"{dispatch}.{index}",
        **fields,
    }


def sendgrid_story(dispatch: str, emails: list[str]) -> list[dict[str, Any]]:
    happy, hard, soft, spam, unsub = emails
    return [
        sg(happy, dispatch, 0, "delivered", 20, response="250 OK"),  # delivered arrives before processed
        sg(happy, dispatch, 0, "processed", 10),
        sg(happy, dispatch, 0, "open", 30, useragent="Mail", sg_machine_open=False),
        sg(happy, dispatch, 0, "click", 40, url="https://shop.example/"),
        sg(happy, dispatch, 0, "group_resubscribe", 45),
        sg(hard, dispatch, 1, "processed", 10),
        sg(hard, dispatch, 1, "bounce", 20, type="bounce", reason="550 5.1.1 unknown", status="5.1.1"),
        sg(soft, dispatch, 2, "deferred", 15, response="421 try later", attempt="1"),
        sg(soft, dispatch, 2, "bounce", 20, type="blocked", reason="421 blocked"),
        sg(spam, dispatch, 3, "delivered", 20),
        sg(spam, dispatch, 3, "spamreport", 50),
        sg(unsub, dispatch, 4, "delivered", 20),
        sg(unsub, dispatch, 4, "group_unsubscribe", 60, asm_group_id=7),
        sg(unsub, dispatch, 4, "unsubscribe", 61),
    ]


def snapshot(functions: Functions, dispatch: str, emails: list[str]) -> Any:
    stored = message(functions, dispatch)
    subs = {e: (s or {}).get("suppression") for e in emails if (s := subscription(functions, e)) is not None}
    return stored, subs


def test_a_sendgrid_story_sets_status_history_and_subscriptions(functions: Functions, moto_server) -> None:
    emails = [f"{tag}-{uuid.uuid4().hex[:6]}@example.com" for tag in ("happy", "hard", "soft", "spam", "unsub")]
    dispatch = send(functions, "sendgrid", emails)["dispatch_id"]
    story = sendgrid_story(dispatch, emails)
    post_events(functions, "sendgrid", story + [{"event": "open", "email": "garbage"}])  # one malformed event
    assert work(functions, moto_server) == {"batchItemFailures": []}  # it did not fail its batch

    stored = message(functions, dispatch)
    status = {r["email"]: r["status"] for r in stored["recipients"]}
    assert status == {
        emails[0]: "delivered",
        emails[1]: "bounced",
        emails[2]: "bounced",  # a soft bounce (type=blocked) is final too
        emails[3]: "delivered",
        emails[4]: "delivered",
    }
    happy = stored["recipients"][0]["events"]
    assert [e["event_type"] for e in happy] == [
        "queued",
        "delivered",
        "opened",
        "clicked",
        "subscribed",
    ]  # provider time
    assert happy[3]["url"] == "https://shop.example/"
    assert subscription(functions, emails[0]) is None  # group_resubscribe does not subscribe anyone
    assert subscription(functions, emails[1])["suppression"] == "hard_bounce"
    assert subscription(functions, emails[2]) is None  # a soft bounce changes nothing
    assert subscription(functions, emails[3])["suppression"] == "spam_report"
    unsub = subscription(functions, emails[4])
    assert unsub["suppression"] == "unsubscribe" and unsub["source"] == "event:sendgrid" and len(unsub["history"]) == 1

    before = snapshot(functions, dispatch, emails)
    for _ in range(3):  # the same batch again, three times, shuffled
        shuffled = story[:]
        random.Random(_).shuffle(shuffled)
        post_events(functions, "sendgrid", shuffled)
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert snapshot(functions, dispatch, emails) == before


def test_braze_postbacks_out_of_order(functions: Functions, moto_server) -> None:
    emails = [f"bz-{uuid.uuid4().hex[:6]}@example.com", f"bz-{uuid.uuid4().hex[:6]}@example.com"]
    answer = send(functions, "braze", emails, template_id="c1")
    dispatch = answer["dispatch_id"]
    ok, bounced = (r["provider_message_id"] for r in answer["recipients"])
    for braze_id, status, at, extra in [
        (ok, "delivered", "2026-11-22T05:00:03Z", {}),
        (ok, "processed", "2026-11-22T05:00:02Z", {}),
        (ok, "sent", "2026-11-22T05:00:01Z", {}),
        (bounced, "bounced", "2026-11-22T05:00:03Z", {"reason": "550 5.1.1 no such user"}),
    ]:
        post_events(
            functions,
            "braze",
            {"dispatch_id": braze_id, "status": status, "metadata": {f"{status}_at": at, **extra}},
            "token=local-braze-postback-secret",
        )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    stored = message(functions, dispatch)
    assert [r["status"] for r in stored["recipients"]] == ["delivered", "bounced"]
    assert [e["provider_event"] for e in stored["recipients"][0]["events"]] == ["sent", "processed", "delivered"]
    assert [e["event_type"] for e in stored["recipients"][0]["events"]] == ["queued", "queued", "delivered"]
    assert subscription(functions, emails[1])["suppression"] == "hard_bounce"  # found through the dispatch id


def test_infobip_reports_and_tracking(functions: Functions, moto_server) -> None:
    emails = [f"ib-{uuid.uuid4().hex[:6]}@example.com", f"ib-{uuid.uuid4().hex[:6]}@example.com"]
    dispatch = send(functions, "infobip", emails)["dispatch_id"]
    token = infobip_callback_token("local-infobip-webhook-secret", dispatch)
    post_events(
        functions,
        "infobip",
        {
            "results": [
                {
                    "bulkId": dispatch,
                    "messageId": f"{dispatch}.0",
                    "to": emails[0],
                    "doneAt": "2026-11-22T05:00:04.000+0000",
                    "status": {"groupId": 3, "groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
                    "error": {"permanent": False},
                },
                {
                    "bulkId": dispatch,
                    "messageId": f"{dispatch}.1",
                    "to": emails[1],
                    "doneAt": "2026-11-22T05:00:04.000+0000",
                    "status": {"groupId": 2, "groupName": "UNDELIVERABLE", "name": "UNDELIVERABLE_NOT_DELIVERED"},
                    "error": {"permanent": True, "description": "mailbox unavailable"},
                },
            ]
        },
        f"token={token}",
    )
    post_events(
        functions,
        "infobip",
        {
            "notificationType": "OPENED",
            "messageId": f"{dispatch}.0",
            "bulkId": dispatch,
            "recipient": emails[0],
            "sendDateTime": 1795323605000,
        },
        f"token={token}",
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    stored = message(functions, dispatch)
    assert [r["status"] for r in stored["recipients"]] == ["delivered", "bounced"]
    assert [e["event_type"] for e in stored["recipients"][0]["events"]] == ["delivered", "opened"]
    assert subscription(functions, emails[1])["suppression"] == "hard_bounce"


def test_events_for_mail_sent_elsewhere_still_follow_the_rules(functions: Functions, moto_server) -> None:
    email = f"elsewhere-{uuid.uuid4().hex[:6]}@example.com"
    post_events(
        functions,
        "sendgrid",
        [{"email": email, "event": "spamreport", "timestamp": T0, "sg_event_id": uuid.uuid4().hex}],
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert subscription(functions, email)["suppression"] == "spam_report"


def test_an_event_for_something_that_is_no_address_suppresses_no_one_and_fails_no_post(
    functions: Functions, moto_server, aws_env
) -> None:
    """SendGrid may report an `email` that is no address (`foo@bar`, one without a TLD). No mail can go to it (a
    send refuses it) and the subscription store keys addresses only: a record under it would be refused when
    read, failing every later post that names it again, with the other events in that post."""
    from martech_bridge.adapters.aws import dynamodb_table

    tag = uuid.uuid4().hex[:6]
    odd, valid = f"odd-{tag}@intranet", f"valid-{tag}@example.com"
    for n in range(2):  # the second post names the odd address again, with a real one
        post_events(
            functions,
            "sendgrid",
            [
                {"email": odd, "event": "spamreport", "timestamp": T0 + n, "sg_event_id": f"{tag}-odd-{n}"},
                *([{"email": valid, "event": "spamreport", "timestamp": T0, "sg_event_id": f"{tag}-ok"}] if n else []),
            ],
        )
        assert work(functions, moto_server) == {"batchItemFailures": []}
    assert subscription(functions, valid)["suppression"] == "spam_report"
    table = dynamodb_table("SubscriptionsTable")
    assert "Item" not in table.get_item(Key={"pk": odd, "sk": "STATE"})


def test_the_event_worker_event_file(functions: Functions) -> None:
    # events/event-worker-batch.json: a delivered event for a message this test database does not hold.
    result = functions.invoke("EventWorkerFunction", load_event("event-worker-batch.json"))
    assert result == {"batchItemFailures": []}


# ------------------------------------------------------------------ look-ups
def get(functions: Functions, path: str, route: str, query: str = "") -> tuple[int, Any]:
    return call(functions, "QueryFunction", "GET", path, route, headers=[("x-api-key", "local-dev-key-1")], query=query)


def test_logs_by_address_status_message_and_day_with_a_cursor(functions: Functions, moto_server) -> None:
    email = f"logs-{uuid.uuid4().hex[:6]}@example.com"
    first = send(functions, "sendgrid", [email])["dispatch_id"]
    second = send(functions, "sendgrid", [email])["dispatch_id"]
    post_events(functions, "sendgrid", [sg(email, first, 0, "delivered", 5)])
    assert work(functions, moto_server) == {"batchItemFailures": []}

    status, page = get(functions, "/messages", "/messages", f"to={email}&limit=1")
    assert status == 200 and [r["dispatch_id"] for r in page["results"]] == [second] and page["cursor"]
    status, rest = get(functions, "/messages", "/messages", f"to={email}&limit=1&cursor={page['cursor']}")
    assert [r["dispatch_id"] for r in rest["results"]] == [first]
    assert rest["results"][0]["status"] == {"groupName": "DELIVERED", "name": "DELIVERED"}
    _, delivered = get(functions, "/messages", "/messages", f"to={email}&generalStatus=DELIVERED")
    assert [r["dispatch_id"] for r in delivered["results"]] == [first]
    _, one = get(functions, "/messages", "/messages", f"messageId={second}.0")
    assert one["results"][0]["status"]["groupName"] == "PENDING"
    _, today = get(functions, "/messages", "/messages", "limit=1000")
    assert {first, second} <= {r["dispatch_id"] for r in today["results"]}
    _, old = get(
        functions,
        "/messages",
        "/messages",
        f"to={email}&sentUntil=2020-01-01T00:00:00.000+0000&sentSince=2019-12-30T00:00:00.000+0000",
    )
    assert old["results"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("generalStatus=GOOD", "generalStatus"),
        ("sentSince=yesterday", "sentSince"),
        ("to=nobody", "email"),
        ("cursor=%%%", "cursor"),
        ("sentSince=2026-11-22T05:00:00Z&sentUntil=2026-11-21T05:00:00Z", "sentSince"),
    ],
)
def test_bad_log_queries_are_400(functions: Functions, query: str, field: str) -> None:
    status, body = get(functions, "/messages", "/messages", query)
    assert status == 400 and body["error"]["field"] == field


def test_final_reports_are_handed_out_once(functions: Functions, moto_server) -> None:
    emails = [f"rep-{uuid.uuid4().hex[:6]}@example.com" for _ in range(3)]
    dispatch = send(functions, "sendgrid", emails)["dispatch_id"]
    post_events(
        functions,
        "sendgrid",
        [
            sg(emails[0], dispatch, 0, "delivered", 5),
            sg(emails[0], dispatch, 0, "open", 9),  # no second report for an open
            sg(emails[1], dispatch, 1, "bounce", 5, type="bounce"),
            sg(emails[2], dispatch, 2, "deferred", 5),
        ],
    )  # not final: no report
    assert work(functions, moto_server) == {"batchItemFailures": []}
    reports: list[dict[str, Any]] = []
    while True:
        _, page = get(functions, "/reports", "/reports", "limit=1000")
        if not page["results"]:
            break
        reports += page["results"]
    mine = {r["messageId"]: r["generalStatus"] for r in reports if r.get("dispatch_id") == dispatch}
    assert mine == {f"{dispatch}.0": "DELIVERED", f"{dispatch}.1": "UNDELIVERABLE"}
    _, again = get(functions, "/reports", "/reports")
    assert not [r for r in again["results"] if r.get("dispatch_id") == dispatch]


def test_two_concurrent_readers_never_get_the_same_report(aws_env) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.events import EventType, NormalizedEvent

    store = MessageStore("MessagesTable", 30)
    while store.take_reports(1000):  # start from an empty report queue
        pass
    for i in range(60):
        recipient = {
            "pk": "MSG#d_conc",
            "sk": f"R#d_conc.{i}",
            "message_id": f"d_conc.{i}",
            "email": f"c{i}@example.com",
        }
        event = NormalizedEvent(
            provider="sendgrid",
            event_id=f"c{i}",
            event_type=EventType.DELIVERED,
            provider_event="delivered",
            timestamp=datetime.now(UTC),
        )
        store._table.put_item(Item=store._report_item(recipient, "delivered", event))

    def drain_all(_: int) -> list[str]:
        reader = MessageStore("MessagesTable", 30)
        got: list[str] = []
        while batch := reader.take_reports(7):
            got += [r["messageId"] for r in batch]
        return got

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.map(drain_all, range(2))
    assert not set(a) & set(b) and len(a) + len(b) == 60


# ------------------------------------------------------------------ sinks
def deliver_all(functions: Functions, moto_server) -> None:
    """Run the delivery worker over everything on the delivery queue."""
    sqs = moto_server.client("sqs")
    url = local_queue_url("DeliveryQueue")
    for _ in range(20):
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return
        result = functions.invoke(
            "DeliveryWorkerFunction", sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:DeliveryQueue")
        )
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_events_are_forwarded_to_karte_and_kintone_once(functions: Functions, moto_server, sandbox: Sandbox) -> None:
    from devkit.stack import seed_demo_apps

    seed_demo_apps(sandbox)
    deliver_all(functions, moto_server)  # leftovers of other tests
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    seed_demo_apps(sandbox)
    emails = [f"sink-{uuid.uuid4().hex[:6]}@example.com" for _ in range(2)]
    status, answer = call(
        functions,
        "SendFunction",
        "POST",
        "/mail/send",
        "/mail/send",
        json.dumps(
            {
                "provider": "sendgrid",
                "to": [{"email": emails[0], "user_id": "karte-u0"}, {"email": emails[1], "user_id": "karte-u1"}],
                "subject": "s",
                "text": "t",
            }
        ).encode(),
        [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")],
    )
    assert status == 202, answer
    dispatch = answer["dispatch_id"]
    story = [
        sg(emails[0], dispatch, 0, "delivered", 5),
        sg(emails[0], dispatch, 0, "open", 7),
        sg(emails[0], dispatch, 0, "click", 9, url="https://shop.example/"),
        sg(emails[0], dispatch, 0, "deferred", 3),  # not in either sink's filter
        sg(emails[1], dispatch, 1, "bounce", 5, type="bounce", reason="550 5.1.1"),
    ]
    post_events(functions, "sendgrid", story)
    assert work(functions, moto_server) == {"batchItemFailures": []}
    deliver_all(functions, moto_server)

    karte = requests.get(f"{sandbox.url}/_sandbox/karte/events", timeout=5).json()
    names = sorted((e["keys"]["user_id"], e["event"]["event_name"]) for e in karte)
    # KARTE's user key is the recipient's user_id, never the address.
    assert names == sorted(
        [
            ("karte-u0", "_sendgrid_delivered"),
            ("karte-u0", "talk_message_open"),
            ("karte-u0", "message_click"),
            ("karte-u1", "_sendgrid_bounce"),
        ]
    )
    click = next(e for e in karte if e["event"]["event_name"] == "message_click")
    opened = next(e for e in karte if e["event"]["event_name"] == "talk_message_open")
    assert (
        click["event"]["values"]["app_name"] == "sendgrid"
        and click["event"]["values"]["url"] == "https://shop.example/"
    )
    assert opened["event"]["values"]["app_name"] == "sendgrid"  # KARTE's plug-in marks opens too
    records = {
        r["message_id"]["value"]: r
        for r in requests.get(f"{sandbox.url}/_sandbox/kintone/apps/10", timeout=5).json()["records"]
    }
    assert set(records) == {f"{dispatch}.0", f"{dispatch}.1"}
    assert records[f"{dispatch}.1"]["last_event"]["value"] == "bounced"
    assert records[f"{dispatch}.0"]["email"]["value"] == emails[0]
    # kintone DATETIME at whole seconds (WIRE-FORMATS 5.2)
    assert records[f"{dispatch}.1"]["last_event_at"]["value"] == "2026-11-22T05:00:05Z"

    post_events(functions, "sendgrid", story)  # the same events again: no second forward
    assert work(functions, moto_server) == {"batchItemFailures": []}
    deliver_all(functions, moto_server)
    assert len(requests.get(f"{sandbox.url}/_sandbox/karte/events", timeout=5).json()) == 4


@pytest.mark.parametrize("name", ["event-worker-sendgrid.json", "event-worker-braze.json", "event-worker-infobip.json"])
def test_each_providers_realistic_batch_is_read_without_a_reject(functions: Functions, name: str) -> None:
    """The files under events/ (for `sam local invoke EventWorkerFunction -e ...`) hold every event type."""
    before = len(functions.log_lines("EventWorkerFunction"))
    assert functions.invoke("EventWorkerFunction", load_event(name)) == {"batchItemFailures": []}
    lines = functions.log_lines("EventWorkerFunction")[before:]
    processed = [line for line in lines if line.get("message") == "Event post processed"]
    assert processed and all(line["rejected"] == 0 for line in processed)
    assert sum(line["applied"] + line["duplicates"] for line in processed) >= 5


@pytest.mark.parametrize("name", ["events-braze-postback.json", "events-infobip-report.json"])
def test_the_ack_event_files_are_accepted(functions: Functions, name: str) -> None:
    result = functions.invoke("EventsFunction", load_event(name))
    assert result["statusCode"] == 200 and json.loads(result["body"])["status"] == "queued"
