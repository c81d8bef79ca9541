"""The X-Ray SDK setting (template parameter EnableXRaySdk, docs/tracing.md): off by default, a function never
imports the SDK and sends nothing of its own to the X-Ray daemon (Lambda's `Tracing: Active` records the
invocation); on, each AWS call of an invocation reaches the daemon as a subsegment of the invocation's trace.

Each case is a fresh interpreter with the environment the function has when deployed (not `sam local`, which
turns the Tracer off), inside a trace as Lambda sets it, its daemon address a UDP socket of this test's."""

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from devkit.runtime import function_environment, load_env_json, runtime_environment
from devkit.template import Resolver, Template
from tests.conftest import load_event

TRACE_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler

class Context:
    function_name = "QueryFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:QueryFunction"
    aws_request_id = "tracing-test"
    def get_remaining_time_in_millis(self):
        return 10000

result = handler.lambda_handler(json.loads(sys.argv[2]), Context())
print(json.dumps({"status": result["statusCode"], "sdk_loaded": "aws_xray_sdk" in sys.modules}))
"""


def first_invocation(moto_server: Any, template: Template, sdk: str | None) -> tuple[dict[str, Any], list[bytes]]:
    """QueryFunction's import and one look-up with EnableXRaySdk as given (None: the template's default);
    its answer and what reached the daemon address."""
    resolver = Resolver(template, {"EnableXRaySdk": sdk} if sdk else None)
    spec = template.functions()["QueryFunction"]
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(0.5)
    env_json = load_env_json()
    env_json["QueryFunction"].pop("POWERTOOLS_TRACE_DISABLED", None)  # env.json's local off: the template decides
    env_json["Parameters"].pop("POWERTOOLS_TRACE_DISABLED", None)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
        **runtime_environment(spec, moto_server.env()),
        **function_environment(spec, resolver, env_json=env_json, shell={}),
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }
    env.pop("AWS_SAM_LOCAL")
    event = json.dumps(load_event("query-get-subscription.json"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec.code_uri), event], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    received: list[bytes] = []
    try:
        while True:
            received.append(daemon.recv(65536))
    except TimeoutError:
        pass
    finally:
        daemon.close()
    return json.loads(out.stdout.strip().splitlines()[-1]), received


def documents(datagrams: list[bytes]) -> list[dict[str, Any]]:
    """The segment documents sent: each datagram is a JSON header line, then the document."""
    return [json.loads(d.split(b"\n", 1)[1]) for d in datagrams]


@pytest.mark.parametrize("sdk", [None, "false"])
def test_without_the_sdk_a_function_never_imports_it_and_sends_nothing(
    moto_server: Any, template: Template, sdk: str | None
) -> None:
    answer, sent = first_invocation(moto_server, template, sdk)
    assert answer["status"] in (200, 404)
    assert answer["sdk_loaded"] is False
    assert sent == []


def test_with_the_sdk_each_aws_call_is_a_subsegment_of_the_invocations_trace(
    moto_server: Any, template: Template
) -> None:
    answer, sent = first_invocation(moto_server, template, "true")
    assert answer["status"] in (200, 404)
    assert answer["sdk_loaded"] is True
    sent_documents = documents(sent)
    dynamodb = [d for d in sent_documents if d.get("namespace") == "aws" and d.get("name") == "dynamodb"]
    assert dynamodb, sent_documents
    assert all(d["trace_id"] == TRACE_ROOT for d in dynamodb)
    assert dynamodb[0]["aws"]["operation"] in ("GetItem", "Query")
    # The handler's own subsegment (Powertools) is sent too, with its cold-start annotation.
    handler = [d for d in sent_documents if d.get("name") == "## lambda_handler"]
    assert handler and handler[0]["annotations"]["ColdStart"] is True


def test_the_template_turns_the_sdk_on_only_when_asked(template: Template) -> None:
    for sdk, disabled in ((None, "true"), ("false", "true"), ("true", "false")):
        resolver = Resolver(template, {"EnableXRaySdk": sdk} if sdk else None)
        for spec in template.functions().values():
            env = function_environment(spec, resolver, env_json={}, shell={})
            assert env["POWERTOOLS_TRACE_DISABLED"] == disabled, (spec.logical_id, sdk)
