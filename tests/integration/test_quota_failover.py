"""Send quotas with warnings and failover to a fallback provider: SendFunction and QueryFunction as the local
stack runs them, a routes file with a `sending` section, the ESPs in the sandbox, counters in moto."""

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.sandbox.server import Sandbox
from devkit.template import REPO_ROOT
from tests.conftest import Functions

KEY = [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")]


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def routes_file(tmp_path: Path, sending: dict[str, Any]) -> str:
    base = json.loads((REPO_ROOT / "layers/common/config/bridge.json").read_text())
    base.pop("$schema", None)
    path = tmp_path / "bridge.json"
    path.write_text(json.dumps({**base, "sending": {"providers": sending}}))
    return str(path)


def send(functions: Functions, email: str, **env: str) -> tuple[int, Any]:
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    body = {"to": [{"email": email}], "subject": "s", "text": "t"}
    event = build_event(
        method="POST",
        target="/mail/send",
        headers=KEY,
        body=json.dumps(body).encode(),
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        path_parameters={},
    )
    result = functions.invoke("SendFunction", event, **env)
    return result["statusCode"], json.loads(result["body"])


def accepted(sandbox: Sandbox, provider: str) -> list[Any]:
    return requests.get(f"{sandbox.url}/_sandbox/{provider}/sent", timeout=5).json()


def test_third_send_of_a_three_a_day_quota_warns_once_and_the_fourth_is_refused(
    functions: Functions, sandbox: Sandbox, tmp_path: Path
) -> None:
    notify = f"ops-{uuid.uuid4().hex[:6]}@example.com"
    config = routes_file(tmp_path, {"sendgrid": {"daily_limit": 3, "notify": notify}})
    answers = [send(functions, f"q{i}-{uuid.uuid4().hex[:6]}@example.com", BRIDGE_CONFIG_FILE=config) for i in range(4)]
    assert [a[0] for a in answers] == [202, 202, 202, 429], answers
    assert answers[3][1]["error"]["code"] == "quota_exceeded"
    assert answers[3][1]["error"]["limit"] == 3
    warnings = [
        m for m in accepted(sandbox, "sendgrid") if m["request"]["personalizations"][0]["to"][0]["email"] == notify
    ]
    assert len(warnings) == 1  # 80 % and 100 % are both crossed by the third: one mail, the higher threshold
    assert "100%" in warnings[0]["request"]["subject"]
    assert len(accepted(sandbox, "sendgrid")) == 4  # three sends and the warning; the fourth never called
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    event = build_event(
        method="GET",
        target="/quota",
        headers=KEY,
        body=b"",
        route=HttpRoute("GET", "/quota", "QueryFunction"),
        path_parameters={},
    )
    result = functions.invoke("QueryFunction", event, BRIDGE_CONFIG_FILE=config)
    daily = json.loads(result["body"])["providers"]["sendgrid"]["daily"]
    assert result["statusCode"] == 200 and (daily["used"], daily["limit"]) == (3, 3), daily


def test_quota_in_warn_mode_sends_past_the_limit(functions: Functions, sandbox: Sandbox, tmp_path: Path) -> None:
    config = routes_file(tmp_path, {"infobip": {"daily_limit": 1, "on_limit": "warn"}})
    email = f"w-{uuid.uuid4().hex[:6]}@example.com"
    for _ in range(2):
        status, body = send(functions, email, BRIDGE_CONFIG_FILE=config, DEFAULT_PROVIDER="infobip")
        assert status == 202, body


def test_a_provider_refusing_connections_fails_over_to_the_fallback(
    functions: Functions, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = routes_file(tmp_path, {"infobip": {"fallback": True}})
    email = f"f-{uuid.uuid4().hex[:6]}@example.com"
    status, body = send(
        functions,
        email,
        BRIDGE_CONFIG_FILE=config,
        SENDGRID_BASE_URL="http://127.0.0.1:9/sendgrid",
        SEND_DEADLINE_SECONDS="3",
    )
    assert status == 202, body
    recipient = body["recipients"][0]
    assert recipient["status"] == "accepted" and recipient["provider"] == "infobip", recipient
    assert "refused before accepting anything" in recipient["reason"]
    sent = accepted(sandbox, "infobip")
    assert len(sent) == 1 and email in json.dumps(sent[0])


def test_a_provider_answering_5xx_to_the_end_fails_over(functions: Functions, sandbox: Sandbox, tmp_path: Path) -> None:
    config = routes_file(tmp_path, {"infobip": {"fallback": True}})
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/faults", json={"count": 50, "status": 503}, timeout=5)
    status, body = send(
        functions, f"g-{uuid.uuid4().hex[:6]}@example.com", BRIDGE_CONFIG_FILE=config, SEND_DEADLINE_SECONDS="3"
    )
    assert status == 202 and body["recipients"][0]["provider"] == "infobip", body
    requests.delete(f"{sandbox.url}/_sandbox/sendgrid/faults", timeout=5)


def test_an_ambiguous_timeout_never_fails_over(functions: Functions, sandbox: Sandbox, tmp_path: Path) -> None:
    config = routes_file(tmp_path, {"infobip": {"fallback": True}})
    # The sandbox carries the call out, then answers too late: SendGrid may have the mail.
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/faults", json={"count": 1, "delay": 4}, timeout=5)
    status, body = send(
        functions,
        f"t-{uuid.uuid4().hex[:6]}@example.com",
        BRIDGE_CONFIG_FILE=config,
        PROVIDER_TIMEOUT_SECONDS="1",
        SEND_DEADLINE_SECONDS="3",
    )
    assert body["recipients"][0]["status"] == "unknown" and "provider" not in body["recipients"][0], body
    assert accepted(sandbox, "infobip") == []


def test_a_gateway_timeout_is_ambiguous_never_resent_nor_failed_over(
    functions: Functions, sandbox: Sandbox, tmp_path: Path
) -> None:
    # A 504 is a gateway that gave up waiting on the provider behind it, which may have taken the mail: as
    # ambiguous as our own timeout. SendGrid cannot deduplicate, so neither a resend nor the fallback.
    config = routes_file(tmp_path, {"infobip": {"fallback": True}})
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/faults", json={"count": 50, "status": 504}, timeout=5)
    status, body = send(
        functions, f"gw-{uuid.uuid4().hex[:6]}@example.com", BRIDGE_CONFIG_FILE=config, SEND_DEADLINE_SECONDS="3"
    )
    assert body["recipients"][0]["status"] == "unknown" and "provider" not in body["recipients"][0], body
    assert accepted(sandbox, "infobip") == []
    calls = requests.get(f"{sandbox.url}/_sandbox/sendgrid/requests", timeout=5).json()
    assert len([c for c in calls if c["method"] == "POST"]) == 1, calls


def test_without_a_fallback_a_refused_connection_fails(functions: Functions, sandbox: Sandbox) -> None:
    status, body = send(
        functions,
        f"n-{uuid.uuid4().hex[:6]}@example.com",
        SENDGRID_BASE_URL="http://127.0.0.1:9/sendgrid",
        SEND_DEADLINE_SECONDS="3",
    )
    assert status == 502 and body["error"]["recipients"][0]["status"] == "failed", body
    assert accepted(sandbox, "infobip") == []


def test_the_fallback_sends_within_its_own_quota_only(
    functions: Functions, sandbox: Sandbox, tmp_path: Path, moto_server: Any
) -> None:
    # Infobip's counter of today may hold other tests' sends: the limit leaves room for exactly one more.
    day = datetime.now(UTC).strftime("day#%Y-%m-%d")
    item = (
        moto_server.client("dynamodb")
        .get_item(TableName="MessagesTable", Key={"pk": {"S": "QUOTA#infobip"}, "sk": {"S": day}}, ConsistentRead=True)
        .get("Item")
    )
    used = int(item["used"]["N"]) if item else 0
    config = routes_file(tmp_path, {"infobip": {"fallback": True, "daily_limit": used + 1}})
    refused = {
        "BRIDGE_CONFIG_FILE": config,
        "SENDGRID_BASE_URL": "http://127.0.0.1:9/sendgrid",
        "SEND_DEADLINE_SECONDS": "3",
    }
    first = send(functions, f"fq1-{uuid.uuid4().hex[:6]}@example.com", **refused)
    assert first[0] == 202 and first[1]["recipients"][0]["provider"] == "infobip", first
    second = send(functions, f"fq2-{uuid.uuid4().hex[:6]}@example.com", **refused)
    assert second[0] == 502 and second[1]["error"]["recipients"][0]["status"] == "failed", second
    assert len(accepted(sandbox, "infobip")) == 1
