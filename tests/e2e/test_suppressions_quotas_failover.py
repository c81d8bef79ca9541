"""Issue 16's acceptance against the running local stack: a SendGrid hard bounce puts the address on the
sandbox's bounce list and the sandbox drops mail to it; re-subscribing takes it off and the next send is
delivered; a quota of 3 a day warns once at the third send and refuses the fourth; a provider refusing
connections fails over to the fallback, one timing out ambiguously does not."""

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devkit.aws import free_port
from devkit.template import REPO_ROOT
from tests.e2e.conftest import RunningStack, start_stack, stop_stack

pytestmark = pytest.mark.e2e


def _until(what: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return what()


def _sandbox(stack: RunningStack) -> str:
    if stack.sandbox is None:
        pytest.skip("needs the local stack's sandbox")
    return stack.sandbox


def test_a_hard_bounced_address_is_dropped_until_a_resubscription_releases_it(stack: RunningStack) -> None:
    sandbox = _sandbox(stack)
    headers = {"X-Api-Key": stack.api_key}
    email = f"bounce-{uuid.uuid4().hex[:8]}@example.com"
    mail = {"provider": "sendgrid", "to": [{"email": email}], "subject": "s", "text": "t"}
    # Given a mailbox that does not exist: SendGrid's hard bounce comes back through the Event Webhook
    requests.post(f"{sandbox}/_sandbox/sendgrid/mailboxes", json={"email": email, "outcome": "bounce"}, timeout=5)
    assert requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30).status_code == 202

    def bounced() -> bool:
        state = requests.get(f"{stack.api}/subscriptions/{email}", headers=headers, timeout=20)
        return state.status_code == 200 and state.json()["suppression"] == "hard_bounce"

    assert _until(bounced), "the hard bounce never unsubscribed the address"
    lists = requests.get(f"{sandbox}/_sandbox/sendgrid/suppressions", timeout=5).json()
    assert email in lists["bounces"]
    # Then SendGrid itself drops mail to it (another system sending straight to SendGrid): 202, then `dropped`
    direct = {
        "personalizations": [{"to": [{"email": email}]}],
        "from": {"email": "no-reply@mail.example.co.jp"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "t"}],
    }
    answer = requests.post(
        f"{sandbox}/sendgrid/v3/mail/send",
        json=direct,
        headers={"Authorization": "Bearer SG.local-sandbox-key"},
        timeout=10,
    )
    assert answer.status_code == 202

    def dropped() -> list[dict[str, Any]]:
        events = requests.get(f"{stack.api}/events", params={"to": email}, headers=headers, timeout=20).json()
        return [e for e in events["results"] if e.get("provider_event") == "dropped"]

    assert _until(dropped), "the sandbox did not drop mail to a bounced address"
    # When the mailbox works again and the address is re-subscribed
    requests.post(f"{sandbox}/_sandbox/sendgrid/mailboxes", json={"email": email, "outcome": "deliver"}, timeout=5)
    requests.delete(f"{sandbox}/_sandbox/sendgrid/requests", timeout=5)
    put = requests.put(f"{stack.api}/subscriptions/{email}", json={"subscribed": True}, headers=headers, timeout=30)
    # Then SendGrid's bounce list no longer holds it (the sandbox recorded the calls), and mail is delivered
    assert put.status_code == 200, put.text
    assert put.json()["released"]["sendgrid"] == "removed"
    calls = requests.get(f"{sandbox}/_sandbox/sendgrid/requests", timeout=5).json()
    assert any(c["method"] == "DELETE" and c["path"].startswith("/v3/suppression/bounces/") for c in calls)
    assert email not in requests.get(f"{sandbox}/_sandbox/sendgrid/suppressions", timeout=5).json()["bounces"]
    sent = requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30)
    assert sent.status_code == 202, sent.text
    dispatch = sent.json()["dispatch_id"]

    def delivered() -> bool:
        message = requests.get(f"{stack.api}/messages/{dispatch}", headers=headers, timeout=20).json()
        return message["recipients"][0]["status"] == "delivered"

    assert _until(delivered), "the next send was not delivered"


class _SlowServer:
    """Takes a request and answers only after `delay`: the call may have been carried out (ambiguous)."""

    def __init__(self, port: int, delay: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.delay = delay
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.recv(65536)
        time.sleep(self.delay)
        try:
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: slow\r\n\r\n")
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, int, str]]:
    """A stack whose routes file limits Infobip to 3 a day with a notification address and makes Infobip the
    fallback, and whose SendGrid is at a port the test controls (nothing listening: connections refused)."""
    notify = f"ops-{uuid.uuid4().hex[:6]}@example.co.jp"
    routes = json.loads((REPO_ROOT / "layers/common/config/bridge.json").read_text())
    routes.pop("$schema", None)
    routes["sending"] = {"providers": {"infobip": {"daily_limit": 3, "notify": notify, "fallback": True}}}
    path = Path(tmp_path_factory.mktemp("limited")) / "bridge.json"
    path.write_text(json.dumps(routes))
    port = free_port()
    running = start_stack(
        extra_env={"BRIDGE_CONFIG_FILE": str(path), "SENDGRID_BASE_URL": f"http://127.0.0.1:{port}/sendgrid"}
    )
    yield running, port, notify
    stop_stack(running)


def test_a_quota_of_three_a_day_warns_at_the_third_send_and_refuses_the_fourth(
    limited_stack: tuple[RunningStack, int, str],
) -> None:
    stack, _, notify = limited_stack
    sandbox = _sandbox(stack)
    headers = {"X-Api-Key": stack.api_key}
    statuses = []
    for i in range(4):
        body = {
            "provider": "infobip",
            "to": [{"email": f"q{i}-{uuid.uuid4().hex[:6]}@example.com"}],
            "subject": "s",
            "text": "t",
        }
        answer = requests.post(f"{stack.api}/mail/send", json=body, headers=headers, timeout=30)
        statuses.append((answer.status_code, answer.json()))
    assert [s for s, _ in statuses] == [202, 202, 202, 429], statuses
    assert statuses[3][1]["error"]["code"] == "quota_exceeded"
    sent = requests.get(f"{sandbox}/_sandbox/infobip/sent", timeout=5).json()
    warnings = [s for s in sent if notify in json.dumps(s)]
    assert len(warnings) == 1, warnings
    usage = requests.get(f"{stack.api}/quota", headers=headers, timeout=20).json()
    assert usage["providers"]["infobip"]["daily"]["used"] == 3


def test_a_provider_refusing_connections_fails_over_and_one_timing_out_does_not(
    limited_stack: tuple[RunningStack, int, str],
) -> None:
    stack, port, _ = limited_stack
    sandbox = _sandbox(stack)
    headers = {"X-Api-Key": stack.api_key}
    # Given a fresh day for Infobip's quota (the fallback sends within it; the quota test may have used it up)
    dynamodb = stack.aws("dynamodb")
    for item in dynamodb.query(
        TableName="MessagesTable",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "QUOTA#infobip"}},
    )["Items"]:
        dynamodb.delete_item(TableName="MessagesTable", Key={"pk": item["pk"], "sk": item["sk"]})
    # Refused: nothing listens at SendGrid's address - the mail never left, Infobip sends it
    email = f"fo-{uuid.uuid4().hex[:6]}@example.com"
    body = {"provider": "sendgrid", "to": [{"email": email}], "subject": "s", "text": "t"}
    answer = requests.post(f"{stack.api}/mail/send", json=body, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    (recipient,) = answer.json()["recipients"]
    assert recipient["status"] == "accepted" and recipient["provider"] == "infobip", recipient
    assert any(email in json.dumps(s) for s in requests.get(f"{sandbox}/_sandbox/infobip/sent", timeout=5).json())
    # Ambiguous: SendGrid takes the request and answers too late - it may have the mail, so no failover
    slow = _SlowServer(port, delay=25)
    try:
        email = f"amb-{uuid.uuid4().hex[:6]}@example.com"
        body = {"provider": "sendgrid", "to": [{"email": email}], "subject": "s", "text": "t"}
        answer = requests.post(f"{stack.api}/mail/send", json=body, headers=headers, timeout=40)
        assert slow.requests == 1
        (recipient,) = answer.json()["recipients"]
        assert recipient["status"] == "unknown" and "provider" not in recipient, recipient
        assert not any(
            email in json.dumps(s) for s in requests.get(f"{sandbox}/_sandbox/infobip/sent", timeout=5).json()
        )
    finally:
        slow.close()
