"""`POST /mail/send` over real HTTP: SendFunction as the local stack runs it, the ESPs are the sandbox on
loopback, subscriptions and messages in moto. Each request is checked field by field against what the
sandboxed provider recorded."""

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore
from martech_bridge.logic.subscriptions import apply_update
from martech_bridge.models.subscription import SubscriptionUpdate

from devkit.gateway import build_event
from devkit.sandbox.server import Sandbox
from devkit.template import HttpRoute
from tests.conftest import Functions, load_event

PDF = base64.b64encode(b"%PDF-1.4 invoice").decode()


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def addr(tag: str = "") -> str:
    return f"{tag or 'r'}-{uuid.uuid4().hex[:8]}@example.com"


def send(functions: Functions, body: dict[str, Any], headers: list | None = None, **env: str) -> tuple[int, Any, dict]:
    event = build_event(
        method="POST",
        target="/mail/send",
        headers=[("content-type", "application/json"), ("x-api-key", "local-dev-key-1"), *(headers or [])],
        body=json.dumps(body, ensure_ascii=False).encode(),
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        path_parameters={},
    )
    result = functions.invoke("SendFunction", event, **env)
    return result["statusCode"], json.loads(result["body"]), result.get("headers", {})


def recorded(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/{provider}/requests", timeout=5).json()


def fault(sandbox: Sandbox, provider: str, **spec: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/{provider}/faults", json=spec, timeout=5).raise_for_status()


def message(functions: Functions, dispatch_id: str) -> dict[str, Any]:
    event = load_event("query-get-message.json")
    event.update(rawPath=f"/messages/{dispatch_id}", pathParameters={"dispatch_id": dispatch_id})
    event["requestContext"]["http"]["path"] = event["rawPath"]
    result = functions.invoke("QueryFunction", event)
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])


# ------------------------------------------------------------------ one send through each provider
def test_sendgrid_request_is_exactly_the_documented_one(functions: Functions, sandbox: Sandbox) -> None:
    taro, hanako = addr("taro"), addr("hanako")
    status, body, _ = send(
        functions,
        {
            "provider": "sendgrid",
            "to": [{"email": taro, "name": "山田 太郎"}, {"email": hanako}],
            "subject": "ご注文ありがとうございます",
            "text": "Order A-10023",
            "html": "<p>Order <b>A-10023</b></p>",
            "categories": ["order-confirmation"],
            "metadata": {"tenant_id": "t_42"},
            "track_opens": True,
            "track_clicks": False,
            "attachments": [{"filename": "invoice.pdf", "content": PDF, "type": "application/pdf"}],
        },
    )
    assert status == 202 and body["status"] == "accepted", body
    (call,) = recorded(sandbox, "sendgrid")
    assert call["path"] == "/v3/mail/send" and call["headers"]["authorization"] == "Bearer SG.local-sandbox-key"
    mail = call["body"]["json"]
    dispatch_id = body["dispatch_id"]
    assert mail["personalizations"] == [
        {
            "to": [{"email": taro, "name": "山田 太郎"}],
            "custom_args": {"tenant_id": "t_42", "dispatch_id": dispatch_id, "message_id": f"{dispatch_id}.0"},
        },
        {
            "to": [{"email": hanako}],
            "custom_args": {"tenant_id": "t_42", "dispatch_id": dispatch_id, "message_id": f"{dispatch_id}.1"},
        },
    ]
    assert mail["from"] == {"email": "no-reply@mail.example.co.jp", "name": "Example Shop"}  # configured defaults
    assert mail["reply_to"] == {"email": "support@example.co.jp"}
    assert mail["subject"] == "ご注文ありがとうございます"
    assert mail["content"] == [
        {"type": "text/plain", "value": "Order A-10023"},
        {"type": "text/html", "value": "<p>Order <b>A-10023</b></p>"},
    ]
    assert mail["attachments"] == [
        {"content": PDF, "filename": "invoice.pdf", "type": "application/pdf", "disposition": "attachment"}
    ]
    assert mail["categories"] == ["order-confirmation"]
    assert mail["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": True},
    }
    x_message_id = requests.get(f"{sandbox.url}/_sandbox/sendgrid/sent", timeout=5).json()[0]["x_message_id"]
    assert {r["provider_message_id"] for r in body["recipients"]} == {x_message_id}
    stored = message(functions, dispatch_id)
    assert stored["provider"] == "sendgrid" and [r["status"] for r in stored["recipients"]] == ["accepted", "accepted"]


def test_braze_request_is_exactly_the_documented_one(functions: Functions, sandbox: Sandbox) -> None:
    email = addr("braze")
    status, body, _ = send(
        functions,
        {
            "provider": "braze",
            "template_id": "4f1c1b62-6b1e-4a8e-9d0c-3c2f5e9a7b10",
            "external_send_id": "bXNnXzAx",
            "to": [
                {
                    "email": email,
                    "user_id": "user_8842",
                    "attributes": {"first_name": "Taro"},
                    "data": {"order_id": "A-1"},
                }
            ],
            "template_data": {"shop": "Example"},
        },
    )
    assert status == 202 and body["status"] == "accepted", body
    (call,) = recorded(sandbox, "braze")
    assert call["path"] == "/transactional/v1/campaigns/4f1c1b62-6b1e-4a8e-9d0c-3c2f5e9a7b10/send"
    assert call["headers"]["authorization"] == "Bearer local-braze-key"
    assert call["body"]["json"] == {
        "external_send_id": "bXNnXzAx",
        "trigger_properties": {"shop": "Example", "order_id": "A-1"},
        "recipient": {"external_user_id": "user_8842", "attributes": {"first_name": "Taro", "email": email}},
    }
    dispatch = requests.get(f"{sandbox.url}/_sandbox/braze/sent", timeout=5).json()[0]["dispatch_id"]
    assert body["recipients"][0]["provider_message_id"] == dispatch


def test_infobip_request_is_exactly_the_documented_one(functions: Functions, sandbox: Sandbox) -> None:
    a, b = addr("ib1"), addr("ib2")
    status, body, _ = send(
        functions,
        {
            "provider": "infobip",
            "to": [{"email": a}, {"email": b, "data": {"name": "B"}}],
            "from": {"email": "shop@example.co.jp", "name": "Shop"},
            "subject": "件名",
            "text": "本文",
            "html": "<p>本文</p>",
            "track_opens": True,
            "attachments": [{"filename": "invoice.pdf", "content": PDF, "type": "application/pdf"}],
        },
    )
    assert status == 202 and body["status"] == "accepted", body
    (call,) = recorded(sandbox, "infobip")
    assert call["path"] == "/email/4/messages" and call["headers"]["authorization"] == "App local-infobip-key"
    dispatch_id = body["dispatch_id"]
    token = hmac.new(b"local-infobip-webhook-secret", dispatch_id.encode(), hashlib.sha256).hexdigest()[:32]
    callback = f"http://127.0.0.1:3000/events/infobip?token={token}"  # PUBLIC_BASE_URL
    assert call["body"]["json"] == {
        "messages": [
            {
                "sender": "Shop <shop@example.co.jp>",
                "destinations": [
                    {
                        "to": [
                            {"destination": a, "messageId": f"{dispatch_id}.0"},
                            {"destination": b, "messageId": f"{dispatch_id}.1", "placeholders": '{"name": "B"}'},
                        ],
                        "replyTo": "support@example.co.jp",
                    }
                ],
                "content": {
                    "subject": "件名",
                    "text": "本文",
                    "html": "<p>本文</p>",
                    "attachments": [
                        {"type": "binary", "content": PDF, "contentType": "application/pdf", "fileName": "invoice.pdf"}
                    ],
                },
                "webhooks": {
                    "callbackData": json.dumps({"dispatch_id": dispatch_id}),
                    "delivery": {"url": callback, "notify": True},
                    "contentType": "application/json",
                },
            }
        ],
        "options": {"schedule": {"bulkId": dispatch_id}, "tracking": {"trackingUrl": callback, "trackOpens": True}},
    }
    assert [r["provider_message_id"] for r in body["recipients"]] == [f"{dispatch_id}.0", f"{dispatch_id}.1"]


# ------------------------------------------------------------------ the gate
@pytest.fixture()
def subscriptions(aws_env) -> DynamoSubscriptionStore:
    return DynamoSubscriptionStore("SubscriptionsTable", 30)


def set_state(store: DynamoSubscriptionStore, email: str, **update: Any) -> None:
    current, _ = store.get(email)
    new, change = apply_update(email, current, SubscriptionUpdate(**update), source="api", now=datetime.now(UTC))
    store.save(new, change, expected_version=current.version if current else None)


def test_unsubscribed_bounced_and_addressless_are_never_sent(
    functions: Functions, sandbox: Sandbox, subscriptions: DynamoSubscriptionStore
) -> None:
    ok, unsub, bounced, spam = addr("ok"), addr("unsub"), addr("bounce"), addr("spam")
    set_state(subscriptions, unsub, subscribed=False, suppression="unsubscribe")
    set_state(subscriptions, bounced, subscribed=False, suppression="hard_bounce")
    set_state(subscriptions, spam, subscribed=False, suppression="spam_report")
    recipients = [{"email": ok}, {"email": unsub}, {"email": bounced}, {"email": spam}, {"user_id": "no-mail"}]
    status, body, _ = send(functions, {"provider": "sendgrid", "to": recipients, "subject": "s", "text": "t"})
    assert status == 202 and body["status"] == "partial"
    statuses = [(r["status"], r.get("reason", "")) for r in body["recipients"]]
    assert statuses[0] == ("accepted", "")
    assert statuses[1][0] == "suppressed" and "unsubscribe" in statuses[1][1]
    assert statuses[2][0] == "suppressed" and "hard_bounce" in statuses[2][1]
    assert statuses[3][0] == "suppressed" and "spam_report" in statuses[3][1]
    assert statuses[4] == ("invalid", "no e-mail address")
    (call,) = recorded(sandbox, "sendgrid")
    assert [p["to"][0]["email"] for p in call["body"]["json"]["personalizations"]] == [ok]

    status, body, _ = send(
        functions,
        {"provider": "sendgrid", "to": recipients[1:4], "subject": "s", "text": "t", "categories": ["transactional"]},
    )
    assert [r["status"] for r in body["recipients"]] == ["accepted", "suppressed", "suppressed"]


def test_everyone_suppressed_sends_nothing(
    functions: Functions, sandbox: Sandbox, subscriptions: DynamoSubscriptionStore
) -> None:
    gone = addr("gone")
    set_state(subscriptions, gone, subscribed=False)
    status, body, _ = send(functions, {"to": [{"email": gone}], "subject": "s", "text": "t"})
    assert (status, body["status"]) == (202, "not_sent") and recorded(sandbox, "sendgrid") == []


# ------------------------------------------------------------------ idempotency
def test_idempotency_key_replays_and_refuses_a_different_body(functions: Functions, sandbox: Sandbox) -> None:
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    key = [("idempotency-key", f"order-{uuid.uuid4().hex}")]
    first = send(functions, mail, key)
    again = send(functions, mail, key)
    assert first[0] == again[0] == 202 and first[1] == again[1] and again[2]["Idempotency-Replay"] == "true"
    assert len(recorded(sandbox, "sendgrid")) == 1
    other = send(functions, {**mail, "subject": "different"}, key)
    assert other[0] == 422 and other[1]["error"]["code"] == "idempotency_key_reused"
    assert len(recorded(sandbox, "sendgrid")) == 1


def test_external_send_id_dedupes_every_provider(functions: Functions, sandbox: Sandbox) -> None:
    mail = {
        "provider": "infobip",
        "to": [{"email": addr()}],
        "subject": "s",
        "text": "t",
        "external_send_id": f"ext-{uuid.uuid4().hex}",
    }
    assert send(functions, mail)[0] == 202 and send(functions, mail)[2]["Idempotency-Replay"] == "true"
    assert len(recorded(sandbox, "infobip")) == 1


# ------------------------------------------------------------------ provider failures
def test_rejected_credentials_are_502_and_never_echo_the_key(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "sendgrid", status=401, body={"errors": [{"message": "authorization required", "field": None}]})
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"})
    assert status == 502 and body["error"]["code"] == "provider_auth_failed"
    assert "SG.local-sandbox-key" not in json.dumps(body) and "credentials" in body["error"]["message"]
    assert body["error"]["recipients"][0]["status"] == "failed"


def test_provider_validation_error_is_502_with_its_message(functions: Functions, sandbox: Sandbox) -> None:
    fault(
        sandbox,
        "sendgrid",
        status=400,
        body={
            "errors": [
                {"message": "The from email does not contain a valid address.", "field": "from.email", "help": None}
            ]
        },
    )
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"})
    assert status == 502 and body["error"]["code"] == "provider_rejected"
    assert body["error"]["provider_field"] == "from.email" and "valid address" in body["error"]["provider_message"]


def test_429_then_success_is_retried_inside_the_request(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "sendgrid", status=429, retry_after=1)
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"})
    assert status == 202 and body["status"] == "accepted"
    assert [r["fault"] for r in recorded(sandbox, "sendgrid")] == ["429", None]


def test_500s_to_exhaustion_fail_the_recipients(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "braze", count=10, status=500)
    status, body, _ = send(
        functions,
        {"provider": "braze", "template_id": "c1", "to": [{"email": addr(), "user_id": "u1"}]},
        SEND_DEADLINE_SECONDS="4",
    )
    assert status == 502 and body["error"]["code"] == "provider_unavailable"
    assert body["error"]["recipients"][0]["status"] == "failed"
    assert 2 <= len(recorded(sandbox, "braze")) <= 4


def test_sendgrid_timeout_after_sending_is_unknown_and_never_resent(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "sendgrid", delay=3)  # carried out, answered after the client gave up
    status, body, _ = send(
        functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"}, PROVIDER_TIMEOUT_SECONDS="1"
    )
    assert status == 202 and body["status"] == "unknown"
    assert body["recipients"][0]["status"] == "unknown" and "not resent" in body["recipients"][0]["reason"]
    assert len(recorded(sandbox, "sendgrid")) == 1
    assert len(requests.get(f"{sandbox.url}/_sandbox/sendgrid/sent", timeout=5).json()) == 1


def test_braze_timeout_is_resent_safely_with_its_external_send_id(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "braze", delay=3)
    status, body, _ = send(
        functions,
        {"provider": "braze", "template_id": "c1", "to": [{"email": addr(), "user_id": "u2"}]},
        PROVIDER_TIMEOUT_SECONDS="1",
    )
    assert status == 202 and body["status"] == "accepted"
    calls = recorded(sandbox, "braze")
    assert (
        len(calls) == 2 and calls[0]["body"]["json"]["external_send_id"] == calls[1]["body"]["json"]["external_send_id"]
    )
    assert len(requests.get(f"{sandbox.url}/_sandbox/braze/sent", timeout=5).json()) == 1  # Braze sent it once


# ------------------------------------------------------------------ malformed requests
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": [{"email": "not-an-address"}], "subject": "s", "text": "t"}, "to.0.email"),
        (
            {
                "to": [
                    {"email": "a@example.com", "user_id": "u", "user_alias": {"alias_name": "a", "alias_label": "l"}}
                ],
                "subject": "s",
                "text": "t",
            },
            "to.0.user_alias",
        ),
        (
            {"to": [{"email": "a@example.com"}], "subject": "s", "text": "t", "external_send_id": "has space"},
            "external_send_id",
        ),
        ({"to": [], "subject": "s", "text": "t"}, "to"),
        ({"to": [{"email": "a@example.com"}], "subject": "s", "text": "t", "provider": "mailchimp"}, "provider"),
        (
            {
                "to": [{"email": "a@example.com"}],
                "subject": "s",
                "text": "t",
                "categories": [str(i) for i in range(11)],
            },
            "categories",
        ),
        ({"to": [{"email": "a@example.com"}], "provider": "braze", "subject": "s", "text": "t"}, "template_id"),
    ],
    ids=[
        "bad-address",
        "both-braze-ids",
        "external-send-id",
        "no-recipients",
        "unknown-provider",
        "too-many-categories",
        "braze-without-campaign",
    ],
)
def test_malformed_requests_are_400_naming_the_field(
    functions: Functions, sandbox: Sandbox, body: dict, field: str
) -> None:
    status, answer, _ = send(functions, body)
    assert status == 400 and answer["error"]["field"] == field, answer
    for provider in ("sendgrid", "braze", "infobip"):
        assert recorded(sandbox, provider) == []


def test_missing_api_key_is_401(functions: Functions) -> None:
    event = build_event(
        method="POST",
        target="/mail/send",
        headers=[("content-type", "application/json")],
        body=b"{}",
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        path_parameters={},
    )
    assert functions.invoke("SendFunction", event)["statusCode"] == 401


def test_a_repeat_while_the_first_is_running_gets_409_with_retry_after(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    import hashlib as _hashlib

    from martech_bridge.adapters.idempotency_store import IdempotencyStore
    from martech_bridge.models.mail import MailRequest

    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    key = f"running-{uuid.uuid4().hex}"
    same_hash = _hashlib.sha256(
        json.dumps(
            MailRequest.model_validate(mail).model_dump(mode="json", by_alias=True), sort_keys=True, ensure_ascii=False
        ).encode()
    ).hexdigest()
    first = IdempotencyStore("IdempotencyTable").claim(f"send#{key}", same_hash, "d_first")  # mid-send, in its lease
    assert first is None
    status, body, headers = send(functions, mail, [("idempotency-key", key)])
    assert status == 409 and body["error"]["code"] == "idempotency_in_progress" and headers["Retry-After"] == "2"
    assert recorded(sandbox, "sendgrid") == []


def test_sends_are_counted_by_provider_and_outcome(functions: Functions) -> None:
    status, body, _ = send(functions, {"provider": "infobip", "to": [{"email": addr()}], "subject": "s", "text": "t"})
    assert status == 202
    emf = [line for line in functions.log_lines("SendFunction") if "_aws" in line and "SendsAccepted" in line]
    dimensioned = [line for line in emf if line.get("provider") == "infobip"]
    assert dimensioned, "no SendsAccepted metric with a provider dimension"
    assert ["provider", "service"] in dimensioned[-1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert any("provider" not in line for line in emf)  # the aggregate the alarms read is there too
