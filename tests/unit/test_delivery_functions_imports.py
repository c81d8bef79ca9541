"""The relay and the delivery functions start without pydantic (issue 13): they read the routes file and the
delivery record as plain data, and the pydantic schema stays with `sam build` and `make run`. (How long they
take to start is the bench's business: `bench/coldstart.py`.)"""

import os
import subprocess
import sys

import pytest

from devkit.runtime import function_environment, runtime_environment
from devkit.template import Resolver, Template

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import handler
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core"))))
print(" ".join(sorted(m for m in sys.modules if m.startswith("martech_bridge.models."))))
from martech_bridge import config
print(config._load_bridge_config.cache_info().currsize)
"""


@pytest.mark.parametrize("function", ["RelayFunction", "DeliveryWorkerFunction", "SweeperFunction"])
def test_the_function_imports_no_pydantic_and_reads_the_routes_file_as_plain_data(function: str) -> None:
    template = Template()
    spec = template.functions()[function]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env = {
        **base,
        **runtime_environment(spec, {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}),
        **function_environment(spec, Resolver(template), env_json={}, shell={}),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(spec.code_uri)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    pydantic, models, loaded = out.stdout.splitlines()[-3:]
    assert pydantic == "", f"{function} imports {pydantic}"
    # It read the routes file at INIT (a file it cannot use stops it there), with the plain loader.
    assert loaded == "1"
    assert "martech_bridge.models.routes" in models.split() and "martech_bridge.models.route_schema" not in models
