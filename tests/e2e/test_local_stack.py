"""The bridge as a user meets it after `make run`: real HTTP to 127.0.0.1, real queues, real DynamoDB
(moto), nothing patched."""

import json
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.conftest import RunningStack, start_stack, stop_stack

pytestmark = pytest.mark.e2e


def address() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}@example.com"


def put(stack: RunningStack, email: str, body: object, key: str | None = None, **kw: object) -> requests.Response:
    headers = {"X-Api-Key": key if key is not None else stack.api_key}
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return requests.put(
        f"{stack.api}/subscriptions/{email}",
        data=data,
        headers={**headers, "Content-Type": "application/json"},
        timeout=20,
        **kw,
    )


def test_unknown_path_is_a_json_404(stack: RunningStack) -> None:
    response = requests.get(f"{stack.api}/definitely/not/here", timeout=20)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_put_then_get_round_trips_through_dynamodb(stack: RunningStack) -> None:
    email = address()
    response = put(stack, email.upper(), {"subscribed": False, "suppression": "unsubscribe", "reason": "配信停止"})
    assert response.status_code == 200, response.text
    got = requests.get(f"{stack.api}/subscriptions/{email}", headers={"X-Api-Key": "local-dev-key-2"}, timeout=20)
    body = got.json()
    assert (got.status_code, body["email"], body["subscribed"], body["reason"]) == (200, email, False, "配信停止")
    item = stack.aws("dynamodb").get_item(
        TableName="SubscriptionsTable", Key={"pk": {"S": email}, "sk": {"S": "STATE"}}
    )["Item"]
    assert item["suppression"]["S"] == "unsubscribe"


@pytest.mark.parametrize("key", [None, "", "local-dev-key-3"])
def test_missing_or_wrong_key_is_401_and_changes_nothing(stack: RunningStack, key: str | None) -> None:
    email = address()
    headers = {} if key is None else {"X-Api-Key": key}
    response = requests.put(
        f"{stack.api}/subscriptions/{email}", json={"subscribed": False}, headers=headers, timeout=20
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    got = requests.get(f"{stack.api}/subscriptions/{email}", headers={"X-Api-Key": stack.api_key}, timeout=20)
    assert got.status_code == 404


@pytest.mark.parametrize("bad", ["taro", "taro@", "taro@example", "taro%20yamada@example.com", "%E3%81%82@example.com"])
def test_malformed_address_is_400(stack: RunningStack, bad: str) -> None:
    response = put(stack, bad, {"subscribed": True})
    assert response.status_code == 400 and response.json()["error"]["field"] == "email"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"[]", "invalid_json"),
        (b"\xc3\x28", "invalid_encoding"),
        (b'{"subscribed": "yes"}', "validation_error"),
        (b'{"subscribed": null}', "validation_error"),
    ],
)
def test_hostile_bodies_are_400_and_change_nothing(stack: RunningStack, body: bytes, code: str) -> None:
    email = address()
    response = put(stack, email, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert (
        requests.get(f"{stack.api}/subscriptions/{email}", headers={"X-Api-Key": stack.api_key}, timeout=20).status_code
        == 404
    )


def test_oversized_bodies_are_413(stack: RunningStack) -> None:
    over_function_limit = put(stack, address(), b'{"reason": "' + b"x" * (1024 * 1024) + b'"}')
    assert over_function_limit.status_code == 413
    assert over_function_limit.json()["error"]["code"] == "payload_too_large"
    over_gateway_limit = put(stack, address(), b"x" * (10 * 1024 * 1024 + 1))
    assert over_gateway_limit.status_code == 413


def test_concurrent_requests_all_land(stack: RunningStack) -> None:
    emails = [address() for _ in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda e: put(stack, e, {"subscribed": True}).status_code, emails))
    assert statuses == [200] * len(emails)


def test_a_message_the_worker_keeps_failing_ends_in_the_dlq(stack: RunningStack) -> None:
    sqs = stack.aws("sqs")
    queue_url = sqs.get_queue_url(QueueName="EventQueue")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName="EventDLQ")["QueueUrl"]
    marker = uuid.uuid4().hex
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"provider": "sendgrid", "marker": marker}))
    deadline = time.monotonic() + 60
    found = None
    while time.monotonic() < deadline and found is None:
        for message in sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", []):
            if marker in message["Body"]:
                found = message
    assert found is not None, "message never reached the DLQ"
    # It was tried as often as the redrive policy allows (maxReceiveCount 5), then moved, not lost.
    assert int(found["Attributes"]["ApproximateReceiveCount"]) >= 5
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    assert attributes["Attributes"] == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


def test_the_sandbox_answers_beside_the_api(stack: RunningStack) -> None:
    if stack.sandbox is None:
        pytest.skip("deployed stacks have no sandbox")
    assert requests.get(f"{stack.sandbox}/_sandbox/health", timeout=5).json()["status"] == "ok"


def test_ctrl_c_stops_everything_cleanly_even_when_started_in_the_background() -> None:
    own = start_stack(sigint_ignored=True)
    assert any("curl" in line and "/subscriptions?email=" in line for line in own.output)
    # A client that hangs up mid-request leaves no traceback either.
    import socket

    with socket.create_connection(("127.0.0.1", int(own.api.rsplit(":", 1)[1]))) as s:
        s.sendall(b"POST /mail/send HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    requests.get(f"{own.api}/health", timeout=10)
    # Ctrl-C signals the whole process group: the stack and every function process in it.
    code = stop_stack(own, signal.SIGINT, group=True)
    assert code == 0 and own.output[-1] == "Stopped."
    assert not [line for line in own.output if "Traceback" in line], own.output
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{own.api}/x", timeout=2)


def story_lines(output: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(output) if line.startswith("The story, in order"))
    lines = []
    for line in output[start + 1 :]:
        if not line.startswith("  "):
            break
        lines.append(line.strip())
    return lines


def test_the_banner_story_runs_as_printed_and_the_sandbox_reports_delivery(stack: RunningStack) -> None:
    """Every line of `make run`'s banner, pasted in order into one shell, answers 2xx; the mail it sends
    reaches `delivered` from the events the sandboxed SendGrid posts back, signed."""
    import shutil
    import subprocess

    if stack.process is None or shutil.which("curl") is None:
        pytest.skip("needs the local stack's banner and curl")
    lines = story_lines(stack.output)
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) >= 12 and any("/health" in c for c in commands), lines
    # Any 4xx or 5xx fails its line (and the script): curl --fail-with-body exits 22 on them.
    script = "set -euo pipefail\n" + "\n".join(
        line.replace("curl -sS", "curl -sS --fail-with-body") + "\necho" for line in lines
    )
    from devkit.template import REPO_ROOT

    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    answers = [json.loads(chunk) for chunk in result.stdout.split("\n") if chunk.strip().startswith(("{", "["))]
    assert not [a for a in answers if isinstance(a, dict) and "error" in a], answers
    message = next(a for a in answers if isinstance(a, dict) and "recipients" in a and "dispatch_id" in a)
    (recipient,) = message["recipients"]
    assert recipient["status"] == "delivered", message  # without the sandbox's events it stays `accepted`
    assert {"delivered", "opened"} <= {e["event_type"] for e in recipient["events"]}


def test_a_signed_sendgrid_batch_is_queued_by_the_running_stack(stack: RunningStack) -> None:
    import subprocess
    import sys

    if stack.process is None:
        pytest.skip("signs with the local key, which a deployed stack does not trust")
    result = subprocess.run(
        [sys.executable, "-m", "devkit", "post-sendgrid", "events/payloads/sendgrid-batch.json", "--api", stack.api],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "queued", "events": 12}
    unsigned = requests.post(f"{stack.api}/events/sendgrid", data=b"[]", timeout=20)
    assert unsigned.status_code == 401


def _raw(stack: RunningStack, data: bytes) -> bytes:
    import socket

    if stack.process is None:
        pytest.skip("the local gateway's protocol handling")
    host, port = stack.api.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /mail/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ],
)
def test_protocol_errors_are_answered_in_json(stack: RunningStack, request_bytes: bytes, status: int) -> None:
    answer = _raw(stack, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), head
    assert b"application/json" in head.lower() and "message" in json.loads(body)


def test_gzip_then_chunked_bodies_are_framed_by_their_chunks(stack: RunningStack) -> None:
    body = b'{"subscribed": false}'
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    answer = _raw(
        stack,
        b"PUT /subscriptions?email=chunked%40example.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Api-Key: local-dev-key-1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: identity, chunked\r\n\r\n" + chunked,
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_a_flood_of_connections_is_held_not_reset(stack: RunningStack) -> None:
    import socket

    if stack.process is None:
        pytest.skip("the local gateway's listen backlog")
    host, port = stack.api.rsplit("/", 1)[1].split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(200)]
    try:
        for s in sockets:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [s.recv(64) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [
        a for a in answers if not a.startswith(b"HTTP/1.1 200")
    ][:3]


def test_persist_keeps_tables_across_a_restart(tmp_path) -> None:
    env = {"PERSIST": "1", "PERSIST_DIR": str(tmp_path)}
    url = "/subscriptions?email=kept%40example.com"
    headers = {"X-Api-Key": "local-dev-key-1"}
    first = start_stack(extra_env=env)
    try:
        put = requests.put(f"{first.api}{url}", json={"subscribed": False}, headers=headers, timeout=20)
        assert put.status_code == 200, put.text
    finally:
        assert stop_stack(first) == 0
    assert (tmp_path / "dynamodb.json").is_file()
    second = start_stack(extra_env=env)
    try:
        got = requests.get(f"{second.api}{url}", headers=headers, timeout=20)
        assert got.status_code == 200 and got.json()["subscribed"] is False, got.text
    finally:
        stop_stack(second)


def test_a_broken_routes_file_stops_make_run_before_it_serves(tmp_path) -> None:
    import subprocess
    import sys

    from devkit.routes_file import CONFIG_FILE
    from devkit.template import REPO_ROOT

    data = json.loads(CONFIG_FILE.read_text())
    name = next(iter(data["routes"]))
    data["routes"][name]["target"]["app"] = "seven"
    bad = tmp_path / "my-routes.json"
    bad.write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, "-m", "devkit", "run", "--no-state-file", "--port", "0", "--sandbox-port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "BRIDGE_CONFIG_FILE": str(bad)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "READY" not in result.stdout
    assert "my-routes.json" in result.stderr and f"route {name}" in result.stderr and "app" in result.stderr


def test_a_taken_port_is_named_before_anything_starts() -> None:
    import socket
    import subprocess
    import sys

    from devkit.template import REPO_ROOT

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "devkit", "run", "--no-state-file", "--port", str(port)]
            + ["--sandbox-port", "0", "--aws-port", "0"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and f"port {port} (PORT) is in use" in result.stderr
    assert f"PORT={port + 10} make run" in result.stderr


@pytest.mark.parametrize(
    "mail",
    [
        {"provider": "sendgrid", "subject": "s", "text": "t"},
        {"provider": "braze", "template_id": "campaign-1"},
        {"provider": "infobip", "subject": "s", "text": "t"},
    ],
    ids=["sendgrid", "braze", "infobip"],
)
def test_each_sandboxed_esp_reports_delivery_back(stack: RunningStack, mail: dict) -> None:
    if stack.sandbox is None:
        pytest.skip("the sandbox posts the events")
    address = f"cb-{uuid.uuid4().hex[:8]}@example.com"
    body = {
        **mail,
        "to": [{"email": address, "user_id": "u-cb"} if mail["provider"] == "braze" else {"email": address}],
    }
    headers = {"X-Api-Key": stack.api_key}
    sent = requests.post(f"{stack.api}/mail/send", json=body, headers=headers, timeout=30)
    assert sent.status_code == 202, sent.text
    dispatch = sent.json()["dispatch_id"]
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        (recipient,) = requests.get(f"{stack.api}/messages/{dispatch}", headers=headers, timeout=20).json()[
            "recipients"
        ]
        status = recipient["status"]
        if status == "delivered":
            break
        time.sleep(0.5)
    assert status == "delivered", recipient


@pytest.mark.parametrize(
    ("provider", "file"),
    [("braze", "events/payloads/braze-postbacks.json"), ("infobip", "events/payloads/infobip-notifications.json")],
)
def test_the_braze_and_infobip_payload_files_post_as_they_are(stack: RunningStack, provider: str, file: str) -> None:
    import subprocess
    import sys

    from devkit.template import REPO_ROOT

    if stack.process is None:
        pytest.skip("posts with the local secrets, which a deployed stack does not trust")
    result = subprocess.run(
        [sys.executable, "-m", "devkit", "post-events", provider, file, "--api", stack.api],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert answers and all(a["status"] == "queued" for a in answers)
