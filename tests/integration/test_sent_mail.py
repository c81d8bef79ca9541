"""Sent mail recorded in kintone (issue 16, part 3): a send through the sandboxed SendGrid queues the
`kintone-sent-mail` sink of the shipped routes file; the delivery worker writes one record per recipient to
the sandbox kintone app 11, upserted by message id; a repeat of the send with its key writes nothing twice."""

import json
import uuid
from typing import Any

import pytest
import requests

from devkit.sandbox.server import Sandbox
from devkit.stack import seed_demo_apps
from tests.conftest import Functions
from tests.integration.test_event_processing import call, deliver_all

HEADERS = [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")]


@pytest.fixture()
def app11(functions: Functions, moto_server, sandbox: Sandbox) -> Sandbox:
    deliver_all(functions, moto_server)  # leftovers of other tests
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    seed_demo_apps(sandbox)
    return sandbox


def records(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    rows = requests.get(f"{sandbox.url}/_sandbox/kintone/apps/11", timeout=5).json()["records"]
    return {r["message_id"]["value"]: r for r in rows}


def send(functions: Functions, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    headers = HEADERS + ([("idempotency-key", key)] if key else [])
    raw = json.dumps(body, ensure_ascii=False).encode()
    return call(functions, "SendFunction", "POST", "/mail/send", "/mail/send", raw, headers)


def test_a_send_writes_one_kintone_record_per_recipient(functions: Functions, moto_server, app11: Sandbox) -> None:
    emails = [f"sent-{uuid.uuid4().hex[:6]}@example.com" for _ in range(3)]
    status, answer = send(
        functions,
        {
            "provider": "sendgrid",
            "to": [{"email": e} for e in emails],
            "subject": "ご注文ありがとうございます",
            "text": "山田様\nご注文 A-10023 を承りました。",
            "html": "<p>山田様</p>",
        },
    )
    assert status == 202, answer
    deliver_all(functions, moto_server)
    dispatch = answer["dispatch_id"]
    found = records(app11)
    assert set(found) == {f"{dispatch}.{i}" for i in range(3)}
    first = found[f"{dispatch}.0"]
    assert first["email"]["value"] == emails[0]
    assert first["subject"]["value"] == "ご注文ありがとうございます"
    assert first["body_text"]["value"] == "山田様\nご注文 A-10023 を承りました。"
    assert first["body_html"]["value"] == "<p>山田様</p>"
    assert first["provider"]["value"] == "sendgrid" and first["dispatch_id"]["value"] == dispatch
    assert first["provider_message_id"]["value"] == answer["recipients"][0]["provider_message_id"]
    assert first["sent_at"]["value"].endswith("Z") and "." not in first["sent_at"]["value"]  # whole seconds
    # one bulk upsert for the three (WIRE-FORMATS 5.2: records.json is the only upsert)
    calls = [r for r in requests.get(f"{app11.url}/_sandbox/kintone/requests", timeout=5).json()]
    assert [(c["method"], c["path"]) for c in calls] == [("PUT", "/k/v1/records.json")]


def test_suppressed_recipients_are_not_recorded(functions: Functions, moto_server, app11: Sandbox) -> None:
    good, stopped = (f"{tag}-{uuid.uuid4().hex[:6]}@example.com" for tag in ("sent", "stopped"))
    status, _ = call(
        functions,
        "QueryFunction",
        "PUT",
        f"/subscriptions/{stopped}",
        "/subscriptions/{email}",
        json.dumps({"subscribed": False, "suppression": "hard_bounce"}).encode(),
        HEADERS,
        {"email": stopped},
    )
    assert status == 200
    status, answer = send(
        functions, {"provider": "sendgrid", "to": [{"email": good}, {"email": stopped}], "subject": "s", "text": "t"}
    )
    assert status == 202 and answer["recipients"][1]["status"] == "suppressed", answer
    deliver_all(functions, moto_server)
    assert set(records(app11)) == {f"{answer['dispatch_id']}.0"}


def test_a_repeat_with_the_key_records_nothing_twice(functions: Functions, moto_server, app11: Sandbox) -> None:
    key = uuid.uuid4().hex
    body = {"provider": "sendgrid", "to": [{"email": f"k-{key[:6]}@example.com"}], "subject": "s", "text": "t"}
    first = send(functions, body, key)
    deliver_all(functions, moto_server)
    again = send(functions, body, key)
    deliver_all(functions, moto_server)
    assert first[0] == again[0] == 202
    assert list(records(app11)) == [f"{first[1]['dispatch_id']}.0"]
    puts = requests.get(f"{app11.url}/_sandbox/kintone/requests", timeout=5).json()
    assert len(puts) == 1  # the repeat queued no second delivery


def test_a_body_longer_than_kintone_takes_is_cut_and_marked(functions: Functions, moto_server, app11: Sandbox) -> None:
    long_text = "あ" * 70_000  # kintone refuses text over 65,535 characters (the sandbox, pessimistically)
    status, answer = send(
        functions,
        {
            "provider": "sendgrid",
            "to": [{"email": f"l-{uuid.uuid4().hex[:6]}@example.com"}],
            "subject": "s",
            "text": long_text,
        },
    )
    assert status == 202, answer
    deliver_all(functions, moto_server)
    (record,) = records(app11).values()
    text = record["body_text"]["value"]
    assert long_text.startswith(text) and 0 < len(text) <= 65_535
