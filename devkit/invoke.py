"""`make invoke FN=<LogicalId> EVENT=events/<file>.json`: one function, one event, as `sam local invoke`
runs it (handler and environment resolved from template.yaml and env.json) but without Docker.

With `make run` going, it uses that stack's embedded AWS and sandbox; otherwise it brings up its own for
the one invocation. The function's result goes to stdout, its logs to stderr."""

import json
import os
import sys
from pathlib import Path
from typing import Any

from devkit.aws import FAKE_CREDENTIALS, MotoServer, create_resources
from devkit.runtime import (
    DEFAULT_API_ADDRESS,
    DEFAULT_SANDBOX_ADDRESS,
    ENV_JSON,
    STDERR,
    InvocationError,
    LocalFunction,
    function_environment,
    load_env_json,
    runtime_environment,
)
from devkit.sandbox.server import Sandbox
from devkit.stack import STATE_FILE, advertised_stack
from devkit.template import Resolver, Template


def _running_stack() -> dict[str, Any] | None:
    return advertised_stack(STATE_FILE)


def invoke(logical_id: str, event_path: Path, env_json_path: Path = ENV_JSON) -> int:
    template = Template()
    specs = template.functions()
    if logical_id not in specs:
        print(f"Unknown function {logical_id!r}; the template has: {', '.join(specs)}", file=sys.stderr)
        return 2
    try:
        event = json.loads(event_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"Cannot read event {event_path}: {exc}", file=sys.stderr)
        return 2
    resolver = Resolver(template)
    stack = _running_stack()
    owned: list[Any] = []
    if stack:
        aws_env = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": stack["aws_endpoint"]}
        addresses = {DEFAULT_API_ADDRESS: stack["api"], DEFAULT_SANDBOX_ADDRESS: stack["sandbox"]}
        print(f"Using the running local stack ({stack['api']})", file=sys.stderr)
    else:
        print("No running `make run` found: a stack of its own for this one call", file=sys.stderr)
        moto = MotoServer().start()
        create_resources(template, resolver, moto)
        sandbox = Sandbox(port=0).start()
        owned += [sandbox, moto]
        aws_env = moto.env()
        addresses = {DEFAULT_SANDBOX_ADDRESS: sandbox.url}
    spec = specs[logical_id]
    env = function_environment(
        spec, resolver, env_json=load_env_json(env_json_path), shell=os.environ, addresses=addresses
    )
    function = LocalFunction(spec, {**runtime_environment(spec, aws_env), **env}, log_file=STDERR)
    try:
        result = function.invoke(event)
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    except InvocationError as exc:
        print(
            json.dumps(
                {"errorType": exc.error_type, "errorMessage": exc.message, "stackTrace": exc.stack},
                ensure_ascii=False,
                indent=2,
            )
        )
        return 1
    finally:
        function.close()
        for thing in owned:
            thing.stop()
