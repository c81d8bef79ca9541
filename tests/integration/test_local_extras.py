"""The local gateway's /_local/sandbox/... extras: behind the operator API keys, nothing outside the sandbox's
control paths, a clear answer when the sandbox is down, and absent where there is no sandbox (deployed)."""

import socket
from collections.abc import Iterator

import pytest
import requests

from devkit.gateway import Gateway
from devkit.sandbox.server import Sandbox


def _gateway(sandbox_url: str | None) -> Gateway:
    return Gateway([], {}, port=0, sandbox_url=sandbox_url, api_keys=("operator-key",)).start()


@pytest.fixture
def gateway(sandbox: Sandbox) -> Iterator[Gateway]:
    gw = _gateway(sandbox.url)
    yield gw
    gw.stop()


@pytest.mark.parametrize("key", [None, "", "wrong", "operator-key "])
def test_local_extras_refuse_a_missing_or_wrong_key(gateway: Gateway, key: str | None) -> None:
    for method, path in [("GET", "health"), ("GET", "kintone/requests"), ("POST", "kintone/faults")]:
        answer = requests.request(
            method,
            f"{gateway.url}/_local/sandbox/{path}",
            headers={} if key is None else {"X-Api-Key": key},
            json={"count": 1, "status": 503},
            timeout=10,
        )
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("path", ["reset", "../_sandbox/reset", "%2e%2e/reset", "kintone/requests?x=1", "kintone/x"])
def test_local_extras_reach_only_the_sandbox_control_paths(gateway: Gateway, sandbox: Sandbox, path: str) -> None:
    answer = requests.get(f"{gateway.url}/_local/sandbox/{path}", headers={"X-Api-Key": "operator-key"}, timeout=10)
    assert answer.status_code == 404


def test_local_extras_answer_502_when_the_sandbox_is_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once this socket closes
    gw = _gateway(f"http://127.0.0.1:{closed}")
    try:
        answer = requests.get(f"{gw.url}/_local/sandbox/health", headers={"X-Api-Key": "operator-key"}, timeout=15)
    finally:
        gw.stop()
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "sandbox_unavailable"


def test_without_a_sandbox_there_are_no_local_extras() -> None:
    gw = _gateway(None)
    try:
        answer = requests.get(f"{gw.url}/_local/sandbox/health", headers={"X-Api-Key": "operator-key"}, timeout=10)
    finally:
        gw.stop()
    assert answer.status_code == 404
