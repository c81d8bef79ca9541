"""What each Powertools utility the bridge replaced with a few lines of its own would cost a function's cold
start (docs/design.md, "Cold starts": one is replaced only for a gain over 20 ms): in fresh interpreters,
interleaved, medians, the same INIT with our code alone and with the Powertools utility imported and built
as the bridge used it, after the imports every function has anyway. In CPU time of the process: an import
is CPU work, and on a shared machine its wall time is mostly other processes' turns, which would bury a
30 ms difference."""

import json
import os
import statistics
import subprocess
import sys

from devkit.template import REPO_ROOT

RUNS = int(os.environ.get("BENCH_RUNS", "21"))
PRELUDE = "import boto3, martech_bridge.observability, martech_bridge.config\n"
PROBES = {
    # API functions: the HTTP API resolver (its package import loads every resolver and event data class).
    "APIGatewayHttpResolver": (
        "import martech_bridge.api\nmartech_bridge.api.build_resolver()",
        "import martech_bridge.api\nfrom aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
        "APIGatewayHttpResolver()",
    ),
    # Workers: the SQS partial-batch processor.
    "BatchProcessor": (
        "import martech_bridge.sqs_batch",
        "import martech_bridge.sqs_batch\n"
        "from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response\n"
        "BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)",
    ),
    # Every function holding a secret: Parameters builds its client from a session of its own.
    "Parameters": (
        "from martech_bridge.adapters import aws\naws.client('dynamodb')\naws.client('ssm')",
        "from martech_bridge.adapters import aws\naws.client('dynamodb')\n"
        "from aws_lambda_powertools.utilities.parameters import SSMProvider\nSSMProvider()",
    ),
}
TIMER = "import sys, time\nt = time.process_time()\nexec(sys.argv[1])\nprint((time.process_time() - t) * 1000)"


def sample(code: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}  # noqa: S105
    out = subprocess.run([sys.executable, "-c", TIMER, PRELUDE + code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


def main() -> dict[str, dict[str, float]]:
    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in PROBES}
    for _ in range(RUNS):
        for name, (ours, theirs) in PROBES.items():
            samples[name][0].append(sample(ours))
            samples[name][1].append(sample(theirs))
    results = {}
    print(f"Replaced Powertools utilities, INIT CPU time with ours vs with theirs, median of {RUNS} interpreters")
    print(f"  {'utility':24} {'ours ms':>8} {'with it ms':>11} {'gain ms':>8}")
    for name, (ours, theirs) in samples.items():
        a, b = statistics.median(ours), statistics.median(theirs)
        results[name] = {"ours_ms": round(a, 1), "powertools_ms": round(b, 1), "gain_ms": round(b - a, 1)}
        print(f"  {name:24} {a:8.1f} {b:11.1f} {b - a:8.1f}")
    return results


if __name__ == "__main__":
    figures = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["replaced_utilities"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
