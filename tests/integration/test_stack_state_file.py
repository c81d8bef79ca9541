"""Which `make run` the state file names: the one `make invoke` and `make post-eml` talk to."""

import json
import socket
from pathlib import Path
from types import SimpleNamespace

from devkit.invoke import _running_stack
from devkit.sandbox.server import Sandbox
from devkit.stack import LocalStack, advertised_stack


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def second_stack(state_file: Path, log: list[str]) -> LocalStack:
    """A stack as far as start() gets before it advertises itself: its own sandbox up, on other ports."""
    stack = LocalStack(port=0, sandbox_port=0, state_file=state_file, log=log.append)
    stack.sandbox = Sandbox(port=0).start()
    stack.gateway = SimpleNamespace(url="http://127.0.0.1:3011", stop=lambda: None)  # type: ignore[assignment]
    stack.moto = SimpleNamespace(endpoint="http://127.0.0.1:3211", stop=lambda: None)  # type: ignore[assignment]
    return stack


def test_a_second_stack_leaves_the_running_stacks_state_file_alone(tmp_path: Path) -> None:
    first = Sandbox(port=0).start()
    try:
        state_file = tmp_path / ".local-stack.json"
        running = {"pid": 1, "api": "http://127.0.0.1:3000", "sandbox": first.url, "aws_endpoint": "x"}
        state_file.write_text(json.dumps(running))
        log: list[str] = []
        second = second_stack(state_file, log)
        second._advertise()
        assert json.loads(state_file.read_text()) == running
        assert any("keep using the stack at http://127.0.0.1:3000" in line for line in log), log
        second.stop()
        # Stopping the second stack does not take the first one's file with it.
        assert json.loads(state_file.read_text()) == running
        assert advertised_stack(state_file) == running
    finally:
        first.stop()


def test_a_stale_state_file_is_taken_over_and_removed_on_stop(tmp_path: Path) -> None:
    state_file = tmp_path / ".local-stack.json"
    gone = f"http://127.0.0.1:{closed_port()}"
    state_file.write_text(json.dumps({"pid": 1, "api": gone, "sandbox": gone, "aws_endpoint": gone}))
    assert advertised_stack(state_file) is None
    stack = second_stack(state_file, [])
    stack._advertise()
    written = json.loads(state_file.read_text())
    assert (written["api"], written["sandbox"]) == ("http://127.0.0.1:3011", stack.sandbox.url)
    assert advertised_stack(state_file) == written
    stack.stop()
    assert not state_file.exists()


def test_make_invoke_finds_no_stack_in_a_missing_or_garbled_file(tmp_path: Path, monkeypatch) -> None:
    import devkit.invoke

    missing = tmp_path / "none.json"
    monkeypatch.setattr(devkit.invoke, "STATE_FILE", missing)
    assert _running_stack() is None
    missing.write_text("[1, 2]")
    assert _running_stack() is None
