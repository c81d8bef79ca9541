"""Runs a function the way Lambda does, without Docker: each function in processes of its own (its own
environment, its own module state, its CodeUri first on sys.path, `handler` imported by name), invoked one
event at a time, stopped and replaced when it overruns the template's Timeout."""

import hashlib
import importlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from devkit.template import ACCOUNT_ID, REGION, REPO_ROOT, FunctionSpec, Resolver

ENV_JSON = REPO_ROOT / "env.json"
LAYER_ROOT = REPO_ROOT / "layers" / "common"  # where relative BRIDGE_CONFIG_FILE paths start
# Addresses env.json uses for the local stack's own servers; rewritten when they run on other ports.
DEFAULT_API_ADDRESS = "http://127.0.0.1:3000"
DEFAULT_SANDBOX_ADDRESS = "http://127.0.0.1:3100"
# The embedded AWS's fixed port under `make run`, so env.json's AWS_ENDPOINT_URL (for `sam local invoke`,
# whose containers reach the host as host.docker.internal) can name it.
DEFAULT_AWS_PORT = 3200
# What a Lambda process inherits from nowhere: only what Python itself needs crosses from the shell.
# `log_file` value that sends a function's output to stderr instead of a file.
STDERR = "<stderr>"
# `log_file` value that shows a function's log lines on the console, one readable line each (make run).
CONSOLE = "<console>"
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "VIRTUAL_ENV", "PYENV_VERSION", "SYSTEMROOT")


def load_env_json(path: Path = ENV_JSON) -> dict[str, dict[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path.name} must map function logical ids (or Parameters) to objects")
    return data


def function_environment(
    spec: FunctionSpec,
    resolver: Resolver,
    *,
    env_json: dict[str, dict[str, str]],
    shell: dict[str, str] | os._Environ[str],
    addresses: dict[str, str] | None = None,
) -> dict[str, str]:
    """The declared variables of one function, as `sam local invoke -n env.json` sets them: the template's
    values, then env.json's `Parameters` and `<LogicalId>` entries, then the calling shell's variables.
    Variables the template does not declare are ignored, as SAM ignores them."""
    declared = {k: _as_env_value(resolver.resolve(v)) for k, v in spec.environment.items()}
    overrides = {**env_json.get("Parameters", {}), **env_json.get(spec.logical_id, {})}
    env = {}
    for key, value in declared.items():
        if key in shell:
            env[key] = shell[key]
        elif key in overrides:
            env[key] = str(overrides[key])
        else:
            env[key] = value
    # Functions run here reach the embedded AWS directly (runtime_environment sets it); env.json's value
    # is for `sam local invoke` in Docker.
    env.pop("AWS_ENDPOINT_URL", None)
    for default, actual in (addresses or {}).items():
        env = {k: actual + v[len(default) :] if v.startswith(default) else v for k, v in env.items()}
    if env.get("BRIDGE_CONFIG_OVERLAY"):
        # The overlay is named relative to the checkout (it never ships in the layer).
        overlay = Path(env["BRIDGE_CONFIG_OVERLAY"])
        env["BRIDGE_CONFIG_OVERLAY"] = str(overlay if overlay.is_absolute() else REPO_ROOT / overlay)
    if addresses:
        for key in ("BRIDGE_CONFIG_FILE", "BRIDGE_CONFIG_OVERLAY"):
            if env.get(key):
                env[key] = localized_config(env[key], addresses)
    return env


def localized_config(setting: str, addresses: dict[str, str]) -> str:
    """The routes file (or overlay) with the local stack's default addresses replaced by the ones in use
    (a copy, only when something changes), so a sandbox on another port is still the routes' target."""
    path = Path(setting) if Path(setting).is_absolute() else LAYER_ROOT / setting
    if not path.is_file():
        return setting
    text = original = path.read_text(encoding="utf-8")
    for default, actual in addresses.items():
        text = text.replace(default, actual)
    if text == original:
        return setting
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"martech-bridge-{digest}-{path.name}"
    if not copy.exists():
        copy.write_text(text, encoding="utf-8")
    return str(copy)


def _as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def runtime_environment(spec: FunctionSpec, aws_env: dict[str, str]) -> dict[str, str]:
    """Variables the Lambda service itself sets, plus the embedded AWS endpoint and credentials."""
    base = {k: os.environ[k] for k in _PASS_THROUGH if k in os.environ}
    return {
        **base,
        **aws_env,
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_SAM_LOCAL": "true",  # what `sam local` sets; Powertools' Tracer stays off under it
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "_HANDLER": spec.handler,
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class InvocationError(Exception):
    """The function raised or timed out: Lambda's `errorType` / `errorMessage`."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def _serve(conn: Connection, spec_fields: dict[str, Any], env: dict[str, str], log_file: str | None) -> None:
    """Body of a function process: set the environment, import the handler, answer invocations."""
    # Ctrl-C reaches the whole process group: the stack stops its functions itself, so they ignore it
    # (no KeyboardInterrupt traceback from each of them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if log_file == STDERR:
        os.dup2(2, 1)  # as `sam local invoke`: the result alone on stdout, logs on stderr
    elif log_file == CONSOLE:
        from devkit.console import install

        install(spec_fields["logical_id"])
    elif log_file:
        # Like CloudWatch Logs: everything the function prints goes to its own log.
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, spec_fields["code_uri"])  # Lambda puts the task root first
    module_name, _, attr = spec_fields["handler"].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), attr)
        conn.send(("ready", None))
    except BaseException as exc:  # noqa: BLE001 - an init error is reported to the caller, like Lambda's
        conn.send(
            (
                "init_error",
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exc().splitlines(),
                },
            )
        )
        return
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            # Lambda ends an environment without running the interpreter's shutdown; the shutdown (finalising
            # boto3, the X-Ray SDK and every module) took seconds per instance when `make run` stopped.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        event, request_id = message
        context = LambdaContext(
            spec_fields["logical_id"], spec_fields["memory_size"], spec_fields["timeout"], request_id
        )
        try:
            result = handler(event, context)
            conn.send(("ok", json.loads(json.dumps(result, default=str))))
        except BaseException as exc:  # noqa: BLE001 - the runtime reports every failure, like Lambda's
            conn.send(
                (
                    "error",
                    {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exc().splitlines(),
                    },
                )
            )


class _Instance:
    """One warm 'container' of a function."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], log_file: Path | str | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        fields = {
            "code_uri": str(spec.code_uri),
            "handler": spec.handler,
            "logical_id": spec.logical_id,
            "memory_size": spec.memory_size,
            "timeout": spec.timeout,
        }
        log_path = str(log_file) if log_file else None
        self.process = ctx.Process(
            target=_serve, args=(child, fields, env, log_path), daemon=True, name=f"lambda-{spec.logical_id}"
        )
        self.process.start()
        child.close()
        self.init_error: dict[str, Any] | None = None
        if not self.conn.poll(60):
            self.stop()
            raise InvocationError("InitTimeout", f"{spec.logical_id} did not initialise within 60 s")
        status, payload = self.conn.recv()
        if status == "init_error":
            self.init_error = payload

    def request_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        self.request_stop()
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2)


class LocalFunction:
    """A function's pool of warm instances (up to `concurrency`), each serving one event at a time."""

    def __init__(
        self, spec: FunctionSpec, env: dict[str, str], concurrency: int = 1, log_file: Path | str | None = None
    ) -> None:
        self.spec = spec
        self.env = env
        self.log_file = log_file
        self.concurrency = max(1, concurrency)
        self._idle: list[_Instance] = []
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    def warm(self) -> None:
        instance = self._acquire()
        self._release(instance)

    def invoke(self, event: dict[str, Any]) -> Any:
        instance = self._acquire()
        healthy = True
        try:
            if instance.init_error:
                healthy = False
                err = instance.init_error
                raise InvocationError(err["errorType"], err["errorMessage"], err["stackTrace"])
            request_id = str(uuid.uuid4())
            instance.conn.send((event, request_id))
            if not instance.conn.poll(self.spec.timeout):
                healthy = False
                raise InvocationError("Sandbox.Timedout", f"Task timed out after {self.spec.timeout:.2f} seconds")
            status, payload = instance.conn.recv()
            if status == "error":
                raise InvocationError(payload["errorType"], payload["errorMessage"], payload["stackTrace"])
            return payload
        except (EOFError, OSError, BrokenPipeError):
            healthy = False
            raise InvocationError("Runtime.ExitError", f"{self.spec.logical_id} exited during the invocation") from None
        finally:
            if healthy:
                self._release(instance)
            else:
                instance.stop()
                with self._cond:
                    self._count -= 1
                    self._cond.notify()

    def _acquire(self) -> _Instance:
        with self._cond:
            while True:
                if self._closed:
                    raise InvocationError("Shutdown", "the local stack is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.concurrency:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _Instance(self.spec, self.env, self.log_file)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, instance: _Instance) -> None:
        with self._cond:
            if self._closed:
                instance.stop()
                return
            self._idle.append(instance)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for instance in idle:
            instance.request_stop()
        for instance in idle:
            instance.stop()
