"""`POST /events/{provider}`: verify, enqueue the raw post, answer 2xx - nothing enqueued for anything
that does not verify. EventsFunction runs as the local stack runs it, with moto's SQS and S3."""

import json
import time
from typing import Any

import pytest
from martech_bridge.logic.event_auth import infobip_callback_token

from devkit.gateway import build_event
from devkit.signing import sendgrid_headers
from devkit.template import HttpRoute, local_queue_url
from tests.conftest import Functions, load_event

BATCH = (
    json.dumps(
        [
            {
                "email": "taro@example.com",
                "event": "delivered",
                "sg_event_id": "ZGVsaXZlcmVkLTA",
                "timestamp": 1717402404,
                "dispatch_id": "d_1",
                "message_id": "d_1.0",
                "name": "山田",
            }
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    + "\r\n"
).encode()


def post(
    functions: Functions,
    provider: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    query: str = "",
    content_type: str | None = "application/json",
    **env: str,
) -> tuple[int, Any]:
    pairs = [(k.lower(), v) for k, v in (headers or {}).items()]
    if content_type:
        pairs.append(("content-type", content_type))
    event = build_event(
        method="POST",
        target=f"/events/{provider}" + (f"?{query}" if query else ""),
        headers=pairs,
        body=body,
        route=HttpRoute("POST", "/events/{provider}", "EventsFunction"),
        path_parameters={"provider": provider},
    )
    result = functions.invoke("EventsFunction", event, **env)
    return result["statusCode"], json.loads(result["body"])


def drain(moto_server) -> list[dict[str, Any]]:
    """Everything on the event queue now (and take it off)."""
    sqs = moto_server.client("sqs")
    url = local_queue_url("EventQueue")
    found = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return found
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture(autouse=True)
def empty_event_queue(moto_server) -> None:
    drain(moto_server)


def test_signed_sendgrid_batch_is_queued_byte_for_byte(functions: Functions, moto_server) -> None:
    status, body = post(functions, "sendgrid", BATCH, sendgrid_headers(BATCH))
    assert (status, body) == (200, {"status": "queued", "events": 1})
    (queued,) = drain(moto_server)
    assert queued["provider"] == "sendgrid" and queued["body"].encode() == BATCH


def test_a_base64_encoded_body_is_verified_on_its_decoded_bytes(functions: Functions, moto_server) -> None:
    # No Content-Type: API Gateway hands the body over base64-encoded; the signature covers the raw bytes.
    status, _ = post(functions, "sendgrid", BATCH, sendgrid_headers(BATCH), content_type=None)
    assert status == 200 and drain(moto_server)[0]["body"].encode() == BATCH


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (BATCH.rstrip(b"\r\n"), lambda: sendgrid_headers(BATCH)),  # the same body without its CRLF
        (
            BATCH,
            lambda: {
                **sendgrid_headers(BATCH),
                "X-Twilio-Email-Event-Webhook-Signature": sendgrid_headers(b"other")[
                    "X-Twilio-Email-Event-Webhook-Signature"
                ],
            },
        ),  # wrong signature
        (BATCH, lambda: sendgrid_headers(BATCH, timestamp=int(time.time()) - 2 * 86_400)),  # stale
        (BATCH, lambda: {"X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()))}),  # missing signature
        (BATCH, lambda: {}),
    ],
    ids=["no-crlf", "wrong-signature", "stale", "missing-signature", "unsigned"],
)
def test_anything_that_does_not_verify_is_401_and_nothing_is_queued(
    functions: Functions, moto_server, body, headers
) -> None:
    status, answer = post(functions, "sendgrid", body, headers())
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    assert drain(moto_server) == []


def test_a_wrong_key_refuses_everything(functions: Functions, moto_server) -> None:
    other = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="
    status, _ = post(functions, "sendgrid", BATCH, sendgrid_headers(BATCH), SENDGRID_WEBHOOK_PUBLIC_KEYS=other)
    assert status == 401 and drain(moto_server) == []


def test_an_unconfigured_endpoint_fails_closed_unless_insecure_is_explicit(functions: Functions, moto_server) -> None:
    status, answer = post(functions, "sendgrid", BATCH, SENDGRID_WEBHOOK_PUBLIC_KEYS="")
    assert status == 401 and "no key or secret configured" in answer["error"]["message"]
    status, _ = post(
        functions, "sendgrid", BATCH, SENDGRID_WEBHOOK_PUBLIC_KEYS="", INSECURE_ACCEPT_UNSIGNED_EVENTS="true"
    )
    assert status == 200 and len(drain(moto_server)) == 1


def test_a_768_kb_batch_goes_through_s3_with_a_pointer(functions: Functions, moto_server) -> None:
    events = [
        {
            "email": f"u{i}@example.com",
            "event": "open",
            "sg_event_id": f"ev{i:06d}",
            "timestamp": 1717402404,
            "useragent": "Mozilla/5.0 " + "x" * 200,
        }
        for i in range(2400)
    ]
    big = (json.dumps(events, separators=(",", ":")) + "\r\n").encode()
    assert 700_000 < len(big) <= 768 * 1024
    status, answer = post(functions, "sendgrid", big, sendgrid_headers(big))
    assert status == 200 and answer["events"] == 2400
    (queued,) = drain(moto_server)
    assert "body" not in queued
    stored = moto_server.client("s3").get_object(Bucket="martech-bridge-local-payloadbucket", Key=queued["s3_key"])
    assert stored["Body"].read() == big


def test_braze_postbacks_need_the_shared_secret(functions: Functions, moto_server) -> None:
    postback = json.dumps(
        {
            "dispatch_id": "acf471119f7449d579e8089032003ded",
            "status": "delivered",
            "metadata": {"delivered_at": "2020-08-31T18:27:32.000+00:00"},
        }
    ).encode()
    assert post(functions, "braze", postback, query="token=local-braze-postback-secret")[0] == 200
    assert post(functions, "braze", postback, {"X-Webhook-Token": "local-braze-postback-secret"})[0] == 200
    assert post(functions, "braze", postback, query="token=guess")[0] == 401
    assert post(functions, "braze", postback)[0] == 401
    assert len(drain(moto_server)) == 2


def test_infobip_reports_carry_the_dispatch_token_or_the_shared_secret(functions: Functions, moto_server) -> None:
    report = json.dumps(
        {
            "results": [
                {
                    "bulkId": "d_abc",
                    "messageId": "d_abc.0",
                    "to": "taro@example.com",
                    "status": {"groupId": 3, "groupName": "DELIVERED"},
                }
            ]
        }
    ).encode()
    token = infobip_callback_token("local-infobip-webhook-secret", "d_abc")
    assert post(functions, "infobip", report, query=f"token={token}")[0] == 200
    assert post(functions, "infobip", report, query="token=local-infobip-webhook-secret")[0] == 200  # sent elsewhere
    other = infobip_callback_token("local-infobip-webhook-secret", "d_other")
    assert post(functions, "infobip", report, query=f"token={other}")[0] == 401  # another dispatch's token
    assert post(functions, "infobip", report)[0] == 401
    assert len(drain(moto_server)) == 2


@pytest.mark.parametrize(
    ("provider", "body", "status", "code"),
    [
        ("mailgun", b"[]", 404, "unknown_provider"),
        ("sendgrid", b"not json", 400, "invalid_json"),
        ("braze", b"[1,2]", 400, "invalid_json"),
    ],
)
def test_bad_posts_are_refused_clearly(
    functions: Functions, moto_server, provider: str, body: bytes, status: int, code: str
) -> None:
    headers = sendgrid_headers(body) if provider == "sendgrid" else {"X-Webhook-Token": "local-braze-postback-secret"}
    got, answer = post(functions, provider, body, headers)
    assert (got, answer["error"]["code"]) == (status, code)
    assert drain(moto_server) == []


def test_the_events_file_is_refused_unsigned(functions: Functions) -> None:
    # events/events-sendgrid-delivered.json has no signature headers: with keys configured it is a 401.
    result = functions.invoke("EventsFunction", load_event("events-sendgrid-delivered.json"))
    assert result["statusCode"] == 401


def test_an_endpoint_without_a_key_says_so_when_the_function_starts(functions: Functions, moto_server) -> None:
    post(functions, "sendgrid", BATCH, SENDGRID_WEBHOOK_PUBLIC_KEYS="", BRAZE_POSTBACK_SECRET="")
    warnings = [
        line
        for line in functions.log_lines("EventsFunction")
        if line.get("message") == "Event endpoints without a key or secret refuse every post"
    ]
    assert warnings and sorted(warnings[-1]["refusing"]) == ["braze", "sendgrid"]
