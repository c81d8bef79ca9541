"""No secret and no raw e-mail address in any log line: a full run of the main flows, then every line of
every function's log scanned for every secret value configured and every address used."""

import json
import uuid
from pathlib import Path
from typing import Any

import requests

from devkit.gateway import build_event
from devkit.queues import sqs_event
from devkit.runtime import load_env_json
from devkit.sandbox.server import Sandbox
from devkit.signing import sendgrid_headers
from devkit.stack import seed_demo_apps
from devkit.template import REPO_ROOT, HttpRoute, local_queue_url
from tests.conftest import Functions


def secret_values() -> set[str]:
    env = load_env_json()
    keys = (
        "API_KEYS",
        "SENDGRID_API_KEY",
        "BRAZE_API_KEY",
        "INFOBIP_API_KEY",
        "BRAZE_POSTBACK_SECRET",
        "INFOBIP_WEBHOOK_SECRET",
    )
    values = {
        v.strip()
        for section in env.values()
        for k, raw in section.items()
        if k in keys
        for v in raw.split(",")
        if v.strip()
    }
    # Every local value the overlay gives the routes file's secret references.
    values |= set(json.loads((REPO_ROOT / "config/bridge.local.json").read_text())["secrets"].values())
    return values


def http(
    functions: Functions,
    fn: str,
    method: str,
    path: str,
    route: str,
    body: Any = None,
    headers: list | None = None,
    params: dict | None = None,
    query: str = "",
) -> dict[str, Any]:
    data = (
        body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
    )
    event = build_event(
        method=method,
        target=path + (f"?{query}" if query else ""),
        headers=[("content-type", "application/json"), *(headers or [])],
        body=data,
        route=HttpRoute(method, route, fn),
        path_parameters=params or {},
    )
    return functions.invoke(fn, event)


def test_a_full_run_logs_no_secret_and_no_address(
    template, resolver, moto_server, sandbox: Sandbox, tmp_path: Path
) -> None:
    functions = Functions(template, resolver, moto_server, sandbox, tmp_path)
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    seed_demo_apps(sandbox)
    key = [("x-api-key", "local-dev-key-1")]
    addresses = [f"hygiene-{uuid.uuid4().hex[:6]}@example.com" for _ in range(3)]
    try:
        http(
            functions,
            "QueryFunction",
            "PUT",
            f"/subscriptions/{addresses[0]}",
            "/subscriptions/{email}",
            {"subscribed": False, "reason": "asked"},
            key,
            {"email": addresses[0]},
        )
        http(
            functions,
            "QueryFunction",
            "GET",
            "/subscriptions/not-an-address",
            "/subscriptions/{email}",
            headers=[("x-api-key", "wrong-key-value")],
            params={"email": "not-an-address"},
        )
        http(
            functions,
            "RelayFunction",
            "POST",
            "/relay/marketo-email-opened",
            "/relay/{route}",
            {"email": "taro.yamada@example.com", "campaign": "X"},
            [("x-webhook-token", "local-marketo-token")],
            {"route": "marketo-email-opened"},
        )
        http(
            functions,
            "RelayFunction",
            "POST",
            "/relay/marketo-email-opened",
            "/relay/{route}",
            {"email": addresses[1]},
            [("x-webhook-token", "local-marketo-token")],
            {"route": "marketo-email-opened"},
        )
        sent = {}
        for provider in ("sendgrid", "braze", "infobip"):
            body = {
                "provider": provider,
                "to": [{"email": a, "user_id": "u1"} if provider == "braze" else {"email": a} for a in addresses[1:]],
            }
            body.update({"template_id": "c1"} if provider == "braze" else {"subject": "s", "text": "t"})
            result = http(functions, "SendFunction", "POST", "/mail/send", "/mail/send", body, key)
            sent[provider] = json.loads(result["body"])
        dispatch = sent["sendgrid"]["dispatch_id"]
        batch = (
            json.dumps(
                [
                    {
                        "email": addresses[1],
                        "event": "bounce",
                        "type": "bounce",
                        "reason": "550 5.1.1",
                        "timestamp": 1795323600,
                        "sg_event_id": uuid.uuid4().hex,
                        "dispatch_id": dispatch,
                        "message_id": f"{dispatch}.0",
                    }
                ]
            )
            + "\r\n"
        ).encode()
        http(
            functions,
            "EventsFunction",
            "POST",
            "/events/sendgrid",
            "/events/{provider}",
            batch,
            [(k.lower(), v) for k, v in sendgrid_headers(batch).items()],
            {"provider": "sendgrid"},
        )
        sqs = moto_server.client("sqs")
        messages = sqs.receive_message(QueueUrl=local_queue_url("EventQueue"), MaxNumberOfMessages=10).get(
            "Messages", []
        )
        functions.invoke("EventWorkerFunction", sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:EventQueue"))
    finally:
        functions.close()

    logs = "\n".join(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.log"))
    assert logs.count("\n") > 10, "the run should have logged"
    leaked = [s for s in secret_values() if s in logs]
    assert not leaked, f"secret values in logs: {len(leaked)}"
    for address in [*addresses, "taro.yamada@example.com"]:
        assert address not in logs, "a raw e-mail address is in a log line"
    assert "h***@example.com" in logs  # addresses are logged masked
