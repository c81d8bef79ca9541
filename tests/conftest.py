"""Fixtures shared by every test layer: the template, embedded AWS (moto server) with the template's
resources, the functions run by the local runtime, and the event files under events/."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.aws import MotoServer, create_resources
from devkit.runtime import (
    DEFAULT_SANDBOX_ADDRESS,
    LocalFunction,
    function_environment,
    load_env_json,
    runtime_environment,
)
from devkit.sandbox.server import Sandbox
from devkit.template import REPO_ROOT, Resolver, Template

EVENTS_DIR = REPO_ROOT / "events"


@pytest.fixture(scope="session")
def template() -> Template:
    return Template()


@pytest.fixture(scope="session")
def resolver(template: Template) -> Resolver:
    return Resolver(template)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def moto_server(template: Template, resolver: Resolver) -> Iterator[MotoServer]:
    server = MotoServer().start()
    create_resources(template, resolver, server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(port=0).start()
    yield box
    box.stop()


class Functions:
    """Each function of the template in its own process, configured as `make run` configures it."""

    def __init__(
        self, template: Template, resolver: Resolver, moto: MotoServer, sandbox: Sandbox, log_dir: Path
    ) -> None:
        self.template, self.resolver, self.moto, self.sandbox = template, resolver, moto, sandbox
        self.log_dir = log_dir
        self._running: dict[tuple[str, tuple[tuple[str, str], ...]], LocalFunction] = {}

    def get(self, logical_id: str, **overrides: str) -> LocalFunction:
        key = (logical_id, tuple(sorted(overrides.items())))
        if key not in self._running:
            spec = self.template.functions()[logical_id]
            env = function_environment(
                spec,
                self.resolver,
                env_json=load_env_json(),
                shell=overrides,
                addresses={DEFAULT_SANDBOX_ADDRESS: self.sandbox.url},
            )
            self._running[key] = LocalFunction(
                spec, {**runtime_environment(spec, self.moto.env()), **env}, log_file=self.log_file(logical_id)
            )
        return self._running[key]

    def log_file(self, logical_id: str) -> Path:
        """Where the function's log lines go (its CloudWatch log group, locally)."""
        return self.log_dir / f"{logical_id}.log"

    def log_lines(self, logical_id: str) -> list[dict[str, Any]]:
        path = self.log_file(logical_id)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def invoke(self, logical_id: str, event: dict[str, Any], **overrides: str) -> Any:
        return self.get(logical_id, **overrides).invoke(event)

    def close(self) -> None:
        for fn in self._running.values():
            fn.close()


@pytest.fixture(scope="session")
def functions(
    template: Template,
    resolver: Resolver,
    moto_server: MotoServer,
    sandbox: Sandbox,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Functions]:
    registry = Functions(template, resolver, moto_server, sandbox, tmp_path_factory.mktemp("function-logs"))
    yield registry
    registry.close()


@pytest.fixture()
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Point this process's boto3 at the moto server (for tests that call the adapters in-process)."""
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    from martech_bridge import config

    config.reset()
    yield moto_server
    config.reset()


def http_body(result: dict[str, Any]) -> Any:
    return json.loads(result["body"]) if result.get("body") else None


@pytest.fixture(autouse=True)
def _no_real_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in the suite may reach AWS: real credentials from the developer's shell are hidden."""
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)
