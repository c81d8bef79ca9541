"""`make invoke` runs one function once, as `sam local invoke` would, without Docker."""

import json
import subprocess
import sys

from devkit.template import REPO_ROOT


def invoke(function: str, event: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "devkit", "invoke", function, "-e", f"events/{event}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_invoke_prints_the_function_result_and_logs_to_stderr() -> None:
    result = invoke("QueryFunction", "query-put-subscription.json")
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["suppression"] == "hard_bounce"
    assert '"message":"Subscription changed"' in result.stderr


def test_invoke_runs_queue_workers() -> None:
    result = invoke("EventWorkerFunction", "event-worker-batch.json")
    assert result.returncode == 0 and json.loads(result.stdout) == {"batchItemFailures": []}
    assert '"message":"Event post processed"' in result.stderr


def test_invoke_refuses_an_unknown_function() -> None:
    result = invoke("NoSuchFunction", "query-put-subscription.json")
    assert result.returncode == 2 and "QueryFunction" in result.stderr
