"""The operator command line against embedded AWS: any id to its message, subscription history, log export."""

import csv
import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import requests

from devkit.gateway import build_event
from devkit.sandbox.server import Sandbox
from devkit.template import HttpRoute
from tests.conftest import Functions


def bridgectl(moto_server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridgectl", "--endpoint-url", moto_server.endpoint, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_find_subscription_and_logs(functions: Functions, moto_server, sandbox: Sandbox) -> None:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5)
    email = f"ctl-{uuid.uuid4().hex[:6]}@example.com"
    body = json.dumps({"provider": "braze", "template_id": "c1", "to": [{"email": email, "user_id": "u1"}]}).encode()
    event = build_event(
        method="POST",
        target="/mail/send",
        body=body,
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        headers=[("content-type", "application/json"), ("x-api-key", "local-dev-key-1")],
        path_parameters={},
    )
    sent = json.loads(functions.invoke("SendFunction", event)["body"])
    dispatch, braze_id = sent["dispatch_id"], sent["recipients"][0]["provider_message_id"]

    for any_id in (dispatch, f"{dispatch}.0", braze_id):
        found = bridgectl(moto_server, "find", any_id)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["message"]["dispatch_id"] == dispatch
    assert bridgectl(moto_server, "find", "no-such-id").returncode == 1

    put = build_event(
        method="PUT",
        target=f"/subscriptions/{email}",
        body=b'{"subscribed": false}',
        route=HttpRoute("PUT", "/subscriptions/{email}", "QueryFunction"),
        headers=[("content-type", "application/json"), ("x-api-key", "local-dev-key-1")],
        path_parameters={"email": email},
    )
    functions.invoke("QueryFunction", put)
    history = json.loads(bridgectl(moto_server, "subscription", email).stdout)
    assert history["subscribed"] is False and len(history["history"]) == 1

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    exported = bridgectl(moto_server, "logs", "--since", since, "--to", email)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["to"], r["dispatch_id"], r["generalStatus"]) for r in rows] == [(email, dispatch, "PENDING")]
    as_json = bridgectl(moto_server, "logs", "--since", since, "--to", email, "--format", "json")
    assert json.loads(as_json.stdout.splitlines()[0])["messageId"] == f"{dispatch}.0"


def test_output_cut_short_by_the_reader_is_not_an_error_trace() -> None:
    # `bridgectl logs ... | head -1`: the reader leaves early; no BrokenPipe traceback on the terminal.
    # The command's entry point, with a main that prints more than a pipe holds (as a long export does).
    program = (
        "import sys, bridgectl.__main__ as m; "
        "m.main = lambda: [print('x' * 100) for _ in range(20000)] and 0; sys.exit(m.run())"
    )
    command = f"{sys.executable} -c \"{program}\" | head -c 10"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
