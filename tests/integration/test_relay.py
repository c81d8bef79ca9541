"""The relay over real HTTP: RelayFunction and DeliveryWorkerFunction run as the local stack runs them,
kintone and the generic API are the sandbox on loopback, state is in moto."""

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.gateway import build_event
from devkit.queues import sqs_event
from devkit.sandbox.server import Sandbox
from devkit.stack import seed_demo_apps
from devkit.template import HttpRoute, local_queue_url
from tests.conftest import Functions, load_event

MARKETO = [("content-type", "application/json"), ("x-webhook-token", "local-marketo-token")]


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    seed_demo_apps(sandbox)
    return sandbox


def relay(
    functions: Functions, route: str, body: bytes | dict, headers=MARKETO, method: str = "POST", query: str = ""
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    event = build_event(
        method=method,
        target=f"/relay/{route}" + (f"?{query}" if query else ""),
        headers=list(headers),
        body=data,
        route=HttpRoute(method, "/relay/{route}", "RelayFunction"),
        path_parameters={"route": route},
    )
    result = functions.invoke("RelayFunction", event)
    return result["statusCode"], json.loads(result["body"]), result.get("headers", {})


def kintone_records(sandbox: Sandbox, app: int) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/kintone/apps/{app}", timeout=5).json()["records"]


def received(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/{provider}/requests", timeout=5).json()


def fault(sandbox: Sandbox, provider: str, **spec: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/{provider}/faults", json=spec, timeout=5).raise_for_status()


def delivery(functions: Functions, delivery_id: str) -> dict[str, Any]:
    event = load_event("query-get-subscription.json")
    event.update(
        rawPath=f"/deliveries/{delivery_id}",
        routeKey="GET /deliveries/{delivery_id}",
        pathParameters={"delivery_id": delivery_id},
    )
    event["requestContext"]["http"]["path"] = event["rawPath"]
    result = functions.invoke("QueryFunction", event)
    assert result["statusCode"] == 200, result
    return json.loads(result["body"])


def run_worker(functions: Functions, moto_server, delivery_id: str) -> dict[str, Any]:
    """Run the worker on this delivery's queue message (leftovers of earlier tests are discarded)."""
    sqs = moto_server.client("sqs")
    url = local_queue_url("DeliveryQueue")
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not messages and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", []):
            if json.loads(message["Body"])["delivery_id"] == delivery_id:
                messages.append(message)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert messages, "nothing queued for this delivery"
    result = functions.invoke(
        "DeliveryWorkerFunction", sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:DeliveryQueue")
    )
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
        )
    return result


# ------------------------------------------------------------------ the shipped examples
def test_marketo_email_opened_updates_the_record_found_by_email(functions: Functions, sandbox: Sandbox) -> None:
    event = load_event("relay-marketo-email-opened.json")  # the same file `sam local invoke -e` takes
    result = functions.invoke("RelayFunction", event)
    body = json.loads(result["body"])
    assert result["statusCode"] == 200, body
    assert body["status"] == "delivered" and body["kintone_revision"] == "2" and body["target_status"] == 200
    record = next(r for r in kintone_records(sandbox, 7) if r["email"]["value"] == "taro.yamada@example.com")
    assert (record["mail_status"]["value"], record["last_campaign"]["value"], record["marketo_lead_id"]["value"]) == (
        "opened",
        "SPRING24",
        "1234567",
    )
    sent = received(sandbox, "kintone")[0]
    assert sent["method"] == "PUT" and sent["path"] == "/k/v1/record.json"
    assert sent["headers"]["x-cybozu-api-token"] == "local-kintone-token"
    assert sent["body"]["json"]["updateKey"] == {"field": "email", "value": "taro.yamada@example.com"}
    history = delivery(functions, body["delivery_id"])
    assert history["status"] == "delivered" and [a["status"] for a in history["attempt_history"]] == [200]


def test_marketo_form_encoded_lead_is_upserted_with_japanese_intact(functions: Functions, sandbox: Sandbox) -> None:
    form = (
        b"email=hanako%40example.com&lead_id=42&first_name=%E8%8A%B1%E5%AD%90&last_name=%E4%BD%90%E8%97%A4"
        b"&company=%E6%A0%AA%E5%BC%8F%E4%BC%9A%E7%A4%BE%E3%82%B5%E3%83%B3%E3%83%97%E3%83%AB"
    )
    headers = [("content-type", "application/x-www-form-urlencoded"), ("x-webhook-token", "local-marketo-token")]
    status, body, _ = relay(functions, "marketo-lead-upsert", form, headers)
    assert status == 200 and body["operation"] == "INSERT", body
    status, body, _ = relay(functions, "marketo-lead-upsert", form.replace(b"42", b"43"), headers)
    assert body["operation"] == "UPDATE"
    (record,) = kintone_records(sandbox, 8)
    assert (record["name"]["value"], record["company"]["value"]) == ("佐藤 花子", "株式会社サンプル")
    assert (record["marketo_lead_id"]["value"], record["lead_source"]["value"]) == ("43", "Marketo")


def test_karte_craft_without_content_type_is_queued_then_added(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    result = functions.invoke("RelayFunction", load_event("relay-karte-craft-no-content-type.json"))
    body = json.loads(result["body"])
    assert result["statusCode"] == 202 and body["status"] == "queued"
    assert received(sandbox, "kintone") == []  # async: nothing sent before the worker runs
    assert run_worker(functions, moto_server, body["delivery_id"]) == {"batchItemFailures": []}
    (record,) = kintone_records(sandbox, 9)
    assert (record["karte_user_id"]["value"], record["event"]["value"]) == ("user_8842", "cart_abandon")
    assert delivery(functions, body["delivery_id"])["status"] == "delivered"


LOCAL_CLIENT_SECRET = "local-karte-client-secret"  # noqa: S105 - bridge.local.json's sandbox value


def karte_signed(body: dict, secret: str = LOCAL_CLIENT_SECRET, age: int = 0) -> tuple[bytes, list]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    ts = str(int(time.time()) - age)
    signature = hmac.new(secret.encode(), ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
    return raw, [
        ("content-type", "application/json"),
        ("x-karte-signature", signature),
        ("x-karte-request-timestamp", ts),
    ]


HOOK = {
    "id": "hook-0001",
    "event_type": "talk/message/sendFromUser",
    "data": {"user_id": "user/8842", "date": "2026-11-22T05:00:00Z", "content": {"text": "在庫はありますか？"}},
}


def hook() -> dict[str, Any]:
    """A KARTE Hook v2 body with an id of its own (deliveries persist across tests)."""
    return {**HOOK, "id": f"hook-{uuid.uuid4().hex[:12]}"}


def test_karte_hook_v2_signed_becomes_a_patch(functions: Functions, sandbox: Sandbox) -> None:
    raw, headers = karte_signed(hook())
    status, body, _ = relay(functions, "karte-hook-message", raw, headers)
    assert status == 200, body
    (call,) = received(sandbox, "http")
    assert call["method"] == "PATCH" and call["path"] == "/v1/users/user%2F8842"
    assert call["headers"]["authorization"] == "Bearer local-http-token"
    assert call["body"]["json"] == {
        "last_message": "在庫はありますか？",
        "last_message_at": "2026-11-22T05:00:00Z",
        "source": "karte",
    }


# ------------------------------------------------------------------ authentication
@pytest.mark.parametrize(
    ("route", "make"),
    [
        ("marketo-email-opened", lambda: (b'{"email":"taro@example.com"}', [("content-type", "application/json")])),
        ("marketo-email-opened", lambda: (b'{"email":"taro@example.com"}', [("x-webhook-token", "wrong")])),
        ("marketo-email-opened", lambda: (b'{"email":"taro@example.com"}', [("x-webhook-token", "rotated-out-token")])),
        ("karte-hook-message", lambda: karte_signed(HOOK, age=600)),  # stale timestamp
        ("karte-hook-message", lambda: karte_signed(HOOK, secret="forged")),
        ("karte-hook-message", lambda: (karte_signed(HOOK)[0] + b" ", karte_signed(HOOK)[1])),  # body altered
    ],
    ids=["missing", "wrong", "rotated-out", "stale", "forged", "altered"],
)
def test_bad_credentials_are_401_and_reach_no_target(functions: Functions, sandbox: Sandbox, route: str, make) -> None:
    raw, headers = make()
    status, body, _ = relay(functions, route, raw, headers)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert received(sandbox, "kintone") == [] and received(sandbox, "http") == []


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("route", "body", "method", "status", "code"),
    [
        ("no-such-route", b"{}", "POST", 404, "route_not_found"),
        ("marketo-email-opened", b"{}", "GET", 405, "method_not_allowed"),
        ("marketo-email-opened", b'{"lead_id": 1}', "POST", 400, "missing_field"),
        ("marketo-email-opened", b'{"email": ', "POST", 400, "invalid_json"),
        ("marketo-email-opened", b"[1]", "POST", 400, "invalid_json"),
        ("marketo-email-opened", b'{"email": "' + b"x" * 300_000 + b'"}', "POST", 413, "payload_too_large"),
    ],
)
def test_bad_requests_get_clear_errors_and_change_nothing(
    functions: Functions, sandbox: Sandbox, route: str, body: bytes, method: str, status: int, code: str
) -> None:
    got, answer, _ = relay(functions, route, body, method=method)
    assert (got, answer["error"]["code"]) == (status, code)
    if code == "missing_field":
        assert answer["error"]["field"] == "email"
    assert received(sandbox, "kintone") == []


# ------------------------------------------------------------------ target errors
def test_kintone_record_not_found_is_502_with_kintones_code(functions: Functions) -> None:
    status, body, _ = relay(functions, "marketo-email-opened", {"email": "nobody@example.com"})
    assert status == 502
    error = body["error"]
    assert (error["code"], error["target_status"], error["target_code"]) == ("target_rejected", 404, "GAIA_RE01")
    assert "not found" in error["target_message"] and error["delivery_id"]


def test_kintone_validation_error_is_502_with_per_field_errors(functions: Functions) -> None:
    status, body, _ = relay(functions, "marketo-email-opened", {"email": "taro@example.com", "lead_id": "not-a-number"})
    assert status == 502 and body["error"]["target_code"] == "CB_VA01"
    assert body["error"]["target_errors"] == {
        "record.marketo_lead_id.value": {"messages": ["Only numbers are allowed."]}
    }


# ------------------------------------------------------------------ retries
@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"status": 503}, "HTTP 503"),
        ({"drop": True}, "connection dropped"),
        ({"status": 429, "retry_after": 45}, "HTTP 429"),
    ],
)
def test_retryable_failure_answers_202_once_queued(
    functions: Functions, sandbox: Sandbox, moto_server, spec: dict, error: str
) -> None:
    fault(sandbox, "kintone", **spec)
    before = queued(moto_server)
    status, body, _ = relay(functions, "marketo-email-opened", {"email": "taro@example.com"})
    assert status == 202 and body["status"] == "queued" and error in body["last_error"]
    if "retry_after" in spec:
        assert body["next_attempt_in_seconds"] >= 45
    record = delivery(functions, body["delivery_id"])
    assert record["status"] == "pending" and record["attempts"] == 1
    assert queued(moto_server) == before + 1


def queued(moto_server) -> int:
    attributes = moto_server.client("sqs").get_queue_attributes(
        QueueUrl=local_queue_url("DeliveryQueue"), AttributeNames=["All"]
    )["Attributes"]
    return sum(
        int(attributes[k])
        for k in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        )
    )


def test_worker_retries_until_delivered_and_records_every_attempt(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    fault(sandbox, "kintone", status=500)
    fault(sandbox, "kintone", status=502)
    status, body, _ = relay(functions, "marketo-email-opened", {"email": "taro@example.com", "campaign": "W1"})
    assert status == 202
    for _ in range(3):  # the message comes back after each backoff (1-4 s here); the record is made due
        if delivery(functions, body["delivery_id"])["status"] == "delivered":
            break
        _make_due(moto_server, body["delivery_id"])
        run_worker(functions, moto_server, body["delivery_id"])
    record = delivery(functions, body["delivery_id"])
    assert record["status"] == "delivered"
    assert [a["status"] for a in record["attempt_history"]] == [500, 502, 200]


def _make_due(moto_server, delivery_id: str) -> None:
    """Bring the delivery's next attempt forward (the test does not wait out the backoff)."""
    moto_server.client("dynamodb").update_item(
        TableName="DeliveriesTable",
        Key={"pk": {"S": delivery_id}, "sk": {"S": "D"}},
        UpdateExpression="REMOVE next_attempt_at",
    )


# ------------------------------------------------------------------ idempotency
def test_repeated_webhook_never_calls_the_target_twice(functions: Functions, sandbox: Sandbox) -> None:
    headers = [*MARKETO, ("idempotency-key", "lead-1234567-open-1")]
    first = relay(functions, "marketo-email-opened", {"email": "taro@example.com"}, headers)
    second = relay(functions, "marketo-email-opened", {"email": "taro@example.com"}, headers)
    assert first[0] == second[0] == 200 and first[1] == second[1]
    assert second[2].get("Idempotency-Replay") == "true"
    assert len(received(sandbox, "kintone")) == 1
    reused = relay(functions, "marketo-email-opened", {"email": "other@example.com"}, headers)
    assert reused[0] == 422 and reused[1]["error"]["code"] == "idempotency_key_reused"
    assert len(received(sandbox, "kintone")) == 1


def test_idempotency_key_from_the_payload(functions: Functions, sandbox: Sandbox) -> None:
    body = hook()
    raw, headers = karte_signed(body)
    assert relay(functions, "karte-hook-message", raw, headers)[0] == 200
    raw, headers = karte_signed(body)  # KARTE may send the same hook again ("data may be sent multiple times")
    assert relay(functions, "karte-hook-message", raw, headers)[0] == 200
    assert len(received(sandbox, "http")) == 1


def test_ambiguous_timeout_of_a_non_idempotent_add_is_not_resent(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    result = functions.invoke("RelayFunction", load_event("relay-karte-craft-no-content-type.json"))
    delivery_id = json.loads(result["body"])["delivery_id"]
    fault(sandbox, "kintone", delay=11)  # carried out, answered after the 10 s target timeout
    run_worker(functions, moto_server, delivery_id)
    record = delivery(functions, delivery_id)
    assert record["status"] == "failed" and "not sent again" in record["last_error"]
    assert len(kintone_records(sandbox, 9)) == 1  # the add happened once, and only once
    dlq = moto_server.client("sqs").receive_message(
        QueueUrl=local_queue_url("DeliveryDLQ"), MaxNumberOfMessages=10, WaitTimeSeconds=1
    )["Messages"]
    assert delivery_id in [json.loads(m["Body"])["delivery_id"] for m in dlq]


def test_replay_reopens_a_failed_delivery(functions: Functions, sandbox: Sandbox, moto_server) -> None:
    status, body, _ = relay(functions, "marketo-email-opened", {"email": "nobody@example.com"})
    assert status == 502
    requests.put(
        f"{sandbox.url}/_sandbox/kintone/apps/7",
        timeout=5,
        json={
            "fields": {"email": {"type": "SINGLE_LINE_TEXT", "unique": True}},
            "records": [{"email": {"value": "nobody@example.com"}}],
        },
    )
    event = load_event("query-get-subscription.json")
    path = f"/deliveries/{body['error']['delivery_id']}/retry"
    event.update(
        rawPath=path,
        routeKey="POST /deliveries/{delivery_id}/retry",
        pathParameters={"delivery_id": body["error"]["delivery_id"]},
    )
    event["requestContext"]["http"].update(path=path, method="POST")
    replayed = functions.invoke("QueryFunction", event)
    assert replayed["statusCode"] == 202, replayed
    again = functions.invoke("QueryFunction", event)
    assert again["statusCode"] == 409  # pending now: not retryable twice
    run_worker(functions, moto_server, body["error"]["delivery_id"])
    record = delivery(functions, body["error"]["delivery_id"])
    assert record["status"] == "delivered" and record["replays"] == 1
    assert [a["status"] for a in record["attempt_history"]] == [404, 200]


def test_form_encoded_event_file_upserts(functions: Functions, sandbox: Sandbox) -> None:
    event = load_event("relay-marketo-lead-form.json")
    assert event["isBase64Encoded"]  # API Gateway hands form posts over base64-encoded
    result = functions.invoke("RelayFunction", event)
    assert result["statusCode"] == 200 and json.loads(result["body"])["operation"] == "INSERT"
    assert kintone_records(sandbox, 8)[0]["name"]["value"] == "佐藤 花子"


def test_signed_event_file_is_refused_as_a_replay_until_signed_afresh(functions: Functions, sandbox: Sandbox) -> None:
    event = load_event("relay-karte-hook-signed.json")
    stale = functions.invoke("RelayFunction", event)
    assert stale["statusCode"] == 401 and "window" in json.loads(stale["body"])["error"]["message"]
    body = json.loads(event["body"]) | {"id": f"hook-{uuid.uuid4().hex[:12]}"}
    raw, headers = karte_signed(body)
    event["body"] = raw.decode()
    event["headers"].update(dict(headers))
    fresh = functions.invoke("RelayFunction", event)
    assert fresh["statusCode"] == 200, fresh
    assert received(sandbox, "http")[0]["path"] == "/v1/users/user_8842"


def test_a_crash_between_the_call_and_its_record_causes_no_second_effect(
    functions: Functions, sandbox: Sandbox, moto_server, aws_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker claims attempt 1, its kintone add goes through, then it dies before recording anything.
    When the message comes back, the lapsed lease says the call may have happened: an add is not resent."""
    from martech_bridge import config
    from martech_bridge.adapters.delivery_store import DeliveryStore
    from martech_bridge.adapters.targets.base import send as call_target
    from martech_bridge.config import get_settings

    monkeypatch.setenv("ALLOW_PLAINTEXT_SECRETS", "true")  # the doomed worker runs with the local settings
    monkeypatch.setenv("STAGE", "local")
    config.reset()
    from martech_bridge.config import read_bridge_config
    from martech_bridge.deliveries import Engine

    from devkit.runtime import LAYER_ROOT

    result = functions.invoke("RelayFunction", load_event("relay-karte-craft-no-content-type.json"))
    delivery_id = json.loads(result["body"])["delivery_id"]
    store = DeliveryStore("DeliveriesTable", 30)
    held, lapsed = store.claim(delivery_id, 1, lease_seconds=0.5)  # the doomed worker's claim
    assert not lapsed
    env = functions.get("RelayFunction").env
    local = read_bridge_config(LAYER_ROOT / env["BRIDGE_CONFIG_FILE"], Path(env["BRIDGE_CONFIG_OVERLAY"]), stage="local")
    route = local.routes["karte-cart-abandon"]
    request = Engine(store, None, get_settings()).build(route, held.payload)  # type: ignore[arg-type]
    assert call_target(request).status == 200  # the add reached kintone...
    time.sleep(0.6)  # ...and the worker died: its lease lapses, nothing was recorded

    run_worker(functions, moto_server, delivery_id)  # SQS hands the message to a new worker
    record = delivery(functions, delivery_id)
    assert record["status"] == "failed" and "stopped midway" in record["last_error"]
    assert len(kintone_records(sandbox, 9)) == 1  # exactly one record: the add was not done twice


def test_karte_craft_put_event_file_reaches_the_users_api(functions: Functions, fresh_sandbox: Sandbox) -> None:
    result = functions.invoke("RelayFunction", load_event("relay-karte-craft-put.json"))
    assert result["statusCode"] == 200, result
    (call,) = [r for r in received(fresh_sandbox, "http") if "karte-user-42" in r["path"]]
    assert (call["method"], call["path"]) == ("PUT", "/v1/craft-users/karte-user-42")
    assert call["body"]["json"]["segment"] == "cart_abandoned"


def test_a_route_added_to_the_routes_file_works_without_a_restart(functions: Functions, tmp_path: Path) -> None:
    from devkit.routes_file import CONFIG_FILE, OVERLAY_FILE

    routes = tmp_path / "bridge.json"
    data = json.loads(CONFIG_FILE.read_text())
    routes.write_text(json.dumps(data))
    env = {"BRIDGE_CONFIG_FILE": str(routes), "BRIDGE_CONFIG_OVERLAY": str(OVERLAY_FILE)}
    body = {"email": "reload@example.com", "lead_id": "42", "last_name": "Reload", "first_name": "R", "company": "C"}
    fn = functions.get("RelayFunction", **env)
    assert relay_with(fn, "marketo-reloaded", body)[0] == 404

    data["routes"]["marketo-reloaded"] = data["routes"]["marketo-lead-upsert"]
    routes.write_text(json.dumps(data))
    status, answer = relay_with(fn, "marketo-reloaded", body)
    assert status == 200, answer
    assert [r["email"]["value"] for r in kintone_records(functions.sandbox, 8)] == ["reload@example.com"]

    routes.write_text("{broken")  # a bad edit answers a clear error naming the file, without a restart
    status, answer = relay_with(fn, "marketo-reloaded", body)
    assert status == 500 and answer["error"]["code"] == "configuration_error"


def relay_with(fn: Any, route: str, body: dict) -> tuple[int, Any]:
    event = build_event(
        method="POST",
        target=f"/relay/{route}",
        headers=list(MARKETO),
        body=json.dumps(body).encode(),
        route=HttpRoute("POST", "/relay/{route}", "RelayFunction"),
        path_parameters={"route": route},
    )
    result = fn.invoke(event)
    return result["statusCode"], json.loads(result["body"])


@pytest.mark.parametrize("function", ["RelayFunction", "DeliveryWorkerFunction", "SweeperFunction"])
def test_a_routes_file_that_skipped_the_build_check_stops_the_function_at_init(
    functions: Functions, tmp_path: Path, function: str
) -> None:
    from devkit.routes_file import CONFIG_FILE, OVERLAY_FILE
    from devkit.runtime import InvocationError

    data = json.loads(CONFIG_FILE.read_text())
    name = next(iter(data["routes"]))
    data["routes"][name]["target"]["app"] = "seven"
    routes = tmp_path / "broken-routes.json"
    routes.write_text(json.dumps(data))
    fn = functions.get(function, BRIDGE_CONFIG_FILE=str(routes), BRIDGE_CONFIG_OVERLAY=str(OVERLAY_FILE))
    with pytest.raises(InvocationError) as raised:
        relay_with(fn, name, {"email": "x@example.com"})
    message = str(raised.value)
    assert "handler.py" in "".join(raised.value.stack), "raised while the handler was imported (INIT)"
    assert "ConfigurationError" in message and "broken-routes.json" in message
    assert f"route {name}, field target.app" in message
