"""End-to-end fixtures: the local stack started exactly as `make run` starts it, in its own process, on
free ports - or, with E2E_API_URL (and E2E_API_KEY) set, a deployed stack."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from devkit.aws import free_port
from devkit.template import REPO_ROOT

STARTUP_SECONDS = 90


@dataclass
class RunningStack:
    api: str
    api_key: str
    aws_endpoint: str | None = None
    sandbox: str | None = None
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def aws(self, service: str):  # noqa: ANN201 - a boto3 client
        if self.aws_endpoint is None:
            pytest.skip("needs the local stack's embedded AWS")
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


def start_stack(
    visibility_timeout: int = 1, extra_env: dict[str, str] | None = None, sigint_ignored: bool = False
) -> RunningStack:
    api_port, sandbox_port, aws_port = free_port(), free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "devkit",
        "run",
        "--port",
        str(api_port),
        "--sandbox-port",
        str(sandbox_port),
        "--aws-port",
        str(aws_port),
        "--visibility-timeout",
        str(visibility_timeout),
        "--no-state-file",
        "--concurrency",
        "2",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))} | (extra_env or {})
    # sigint_ignored: started as a shell starts a background job (`make run &`), SIGINT ignored on entry.
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        start_new_session=sigint_ignored,  # a group of its own, so a test can signal it as a terminal does
    )
    lines: queue.Queue[str] = queue.Queue()
    stack = RunningStack(
        api=f"http://127.0.0.1:{api_port}",
        api_key="local-dev-key-1",
        aws_endpoint=f"http://127.0.0.1:{aws_port}",
        sandbox=f"http://127.0.0.1:{sandbox_port}",
        process=process,
    )

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line.rstrip("\n"))
            lines.put(line)

    stack.reader = threading.Thread(target=pump, daemon=True)
    stack.reader.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        try:
            if lines.get(timeout=1).startswith("READY "):
                return stack
        except queue.Empty:
            if process.poll() is not None:
                break
    process.kill()
    raise RuntimeError("local stack did not start:\n" + "\n".join(stack.output[-40:]))


def stop_stack(stack: RunningStack, sig: int = signal.SIGINT, group: bool = False) -> int:
    assert stack.process is not None
    if group:
        os.killpg(stack.process.pid, sig)
    else:
        stack.process.send_signal(sig)
    try:
        code = stack.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        code = -9
    if stack.reader is not None:
        stack.reader.join(timeout=10)  # every line the stack printed is in stack.output now
    return code


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    url = os.environ.get("E2E_API_URL")
    if url:
        yield RunningStack(api=url.rstrip("/"), api_key=os.environ.get("E2E_API_KEY", ""))
        return
    running = start_stack()
    yield running
    stop_stack(running)
