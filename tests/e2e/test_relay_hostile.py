"""The relay and every JSON endpoint as an attacker and a flaky target meet them, over real HTTP against the
running local stack (`make run`): hostile placeholders, unusable JSON, odd Retry-After values, every method."""

import json
import time
import uuid
from typing import Any

import pytest
import requests

from devkit.signing import sendgrid_headers
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
CRAFT = {"X-Craft-Token": "local-craft-token"}
HUGE = b'{"user_id": "u1", "n": ' + b"7" * 5000 + b"}"
NAN = b'{"user_id": "u1", "n": NaN}'


def sandbox(stack: RunningStack, path: str, **kw: Any) -> Any:
    if stack.sandbox is None:
        pytest.skip("needs the local stack's sandbox")
    response = requests.request(kw.pop("method", "GET"), f"{stack.sandbox}/_sandbox/http{path}", timeout=10, **kw)
    response.raise_for_status()
    return response.json()


def craft_calls(stack: RunningStack, user: str) -> list[dict[str, Any]]:
    return [r for r in sandbox(stack, "/requests") if user in json.dumps(r)]


@pytest.mark.parametrize("value", ["..", "."])
def test_a_dot_segment_placeholder_never_reaches_another_path(stack: RunningStack, value: str) -> None:
    before = len(sandbox(stack, "/requests"))
    response = requests.put(
        f"{stack.api}/relay/karte-craft-webhook", json={"user_id": value}, headers=CRAFT, timeout=20
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_path_value", "user_id")
    assert len(sandbox(stack, "/requests")) == before  # nothing was sent anywhere


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_every_method_karte_craft_sends_reaches_the_route(stack: RunningStack, method: str) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    if method == "GET":
        response = requests.get(
            f"{stack.api}/relay/karte-craft-webhook", params={"user_id": user}, headers=CRAFT, timeout=20
        )
    else:  # Craft sends JSON.stringify(hookData) with no Content-Type
        response = requests.request(
            method,
            f"{stack.api}/relay/karte-craft-webhook",
            data=json.dumps({"user_id": user}),
            headers=CRAFT,
            timeout=20,
        )
    assert response.status_code == 200, response.text
    (call,) = craft_calls(stack, user)
    assert (call["method"], call["path"]) == ("PUT", f"/v1/craft-users/{user}")


def test_a_method_the_route_does_not_list_is_405_with_allow(stack: RunningStack) -> None:
    response = requests.delete(f"{stack.api}/relay/marketo-email-opened", headers={"X-Webhook-Token": "x"}, timeout=20)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_query_token_is_neither_stored_nor_forwarded(stack: RunningStack) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    response = requests.get(
        f"{stack.api}/relay/karte-craft-webhook", params={"user_id": user, "token": "local-craft-token"}, timeout=20
    )
    assert response.status_code == 200, response.text
    (call,) = craft_calls(stack, user)
    assert call["body"]["json"] == {"user_id": user}
    stored = requests.get(
        f"{stack.api}/deliveries/{response.json()['delivery_id']}", headers={"X-Api-Key": stack.api_key}, timeout=20
    ).json()
    assert stored["payload"] == {"user_id": user}


def test_retry_after_that_is_not_ascii_digits_is_retried_not_stranded(stack: RunningStack) -> None:
    sandbox(stack, "/faults", method="POST", json={"count": 1, "status": 503, "headers": {"Retry-After": "²"}})
    user = f"u-{uuid.uuid4().hex[:8]}"
    response = requests.put(f"{stack.api}/relay/karte-craft-webhook", json={"user_id": user}, headers=CRAFT, timeout=20)
    assert response.status_code == 202, response.text
    delivery_id = response.json()["delivery_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = requests.get(
            f"{stack.api}/deliveries/{delivery_id}", headers={"X-Api-Key": stack.api_key}, timeout=20
        ).json()
        if record["status"] == "delivered":
            break
        time.sleep(1)
    assert record["status"] == "delivered" and record["attempts"] == 2


def _json_endpoints(stack: RunningStack) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Every endpoint that reads a JSON body: (method, url, credentials)."""
    return {
        "relay": ("POST", f"{stack.api}/relay/karte-craft-webhook", CRAFT),
        "mail": ("POST", f"{stack.api}/mail/send", {"X-Api-Key": stack.api_key}),
        "subscriptions": ("PUT", f"{stack.api}/subscriptions/e2e@example.com", {"X-Api-Key": stack.api_key}),
        "braze": ("POST", f"{stack.api}/events/braze", {"X-Webhook-Token": "local-braze-postback-secret"}),
        "infobip": ("POST", f"{stack.api}/events/infobip?token=local-infobip-webhook-secret", {}),
        "sendgrid": ("POST", f"{stack.api}/events/sendgrid", {}),
    }


@pytest.mark.parametrize(
    "body", [HUGE, NAN, b'{"user_id": "u1", "s": "\\ud800"}'], ids=["huge_int", "nan", "surrogate"]
)
@pytest.mark.parametrize("endpoint", ["relay", "mail", "subscriptions", "braze", "infobip", "sendgrid"])
def test_unusable_json_is_a_400_on_every_json_endpoint(stack: RunningStack, endpoint: str, body: bytes) -> None:
    method, url, credentials = _json_endpoints(stack)[endpoint]
    headers = {"Content-Type": "application/json", **credentials}
    if endpoint == "sendgrid":
        headers.update(sendgrid_headers(body))
    response = requests.request(method, url, data=body, headers=headers, timeout=20)
    assert response.status_code == 400, (endpoint, response.status_code, response.text)
    assert response.json()["error"]["code"] in ("invalid_json", "validation_error")


@pytest.mark.parametrize("provider", ["sendgrid", "braze", "infobip"])
def test_event_endpoints_refuse_before_they_parse(stack: RunningStack, provider: str) -> None:
    response = requests.post(f"{stack.api}/events/{provider}", data=HUGE, timeout=20)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
