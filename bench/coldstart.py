"""Cold-start import time of every handler module, each in a fresh interpreter right after a fresh interpreter
importing `boto3` alone (N pairs), printed as the median of the pairs' ratios. Machines here are shared and
noisy: compare the ratios, not the milliseconds.

Each handler is imported with the environment it has when deployed: the template's values (EnableXRaySdk at
its default, or as BENCH_XRAY_SDK says) and the variables the Lambda service sets - the X-Ray SDK takes a much
cheaper path inside Lambda."""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from compiled import compile_like_the_layer

from devkit.runtime import function_environment, runtime_environment
from devkit.template import Resolver, Template

REPO = Path(__file__).resolve().parent.parent

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
# Wall time, and the process's CPU time beside it: an import is CPU work, and on a shared machine the wall
# time also holds other processes' turns, so the CPU ratio is the steadier of the two.
PROBE = """
import sys, time
sys.path.insert(0, sys.argv[1]) if sys.argv[1] else None
t, c = time.perf_counter(), time.process_time()
exec(sys.argv[2])
print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)
"""


def sample(code: str, env: dict[str, str], path: str = "") -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, path, code], capture_output=True, text=True, env=env, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> dict[str, dict[str, float]]:
    template = Template()
    # BENCH_XRAY_SDK=true measures the functions as deployed with EnableXRaySdk=true (default: the template's).
    sdk = os.environ.get("BENCH_XRAY_SDK")
    resolver = Resolver(template, {"EnableXRaySdk": sdk} if sdk else None)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    base |= {"AWS_DEFAULT_REGION": "us-east-1"}
    base.pop("PYTHONDONTWRITEBYTECODE", None)  # any value, "0" too, stops Python writing bytecode
    compile_like_the_layer()
    probes: dict[str, tuple[str, dict[str, str], str]] = {"import boto3 (baseline)": ("import boto3", base, "")}
    for logical_id, spec in template.functions().items():
        lambda_env = runtime_environment(spec, {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
        lambda_env.pop("AWS_SAM_LOCAL")  # deployed, not `sam local` (which turns the Tracer off)
        env = {**base, **lambda_env, **function_environment(spec, resolver, env_json={}, shell={})}
        probes[logical_id] = ("import handler", env, str(spec.code_uri))
    # Paired samples: each handler's probe right after a baseline probe of its own, so the two see the same
    # machine load; the ratio is the median of the pairs' ratios (a load that changes between the start and
    # the end of a round, as on a shared machine, moves both sides of a pair alike).
    baseline = "import boto3 (baseline)"
    pairs: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {n: [] for n in probes if n != baseline}
    for _ in range(RUNS):
        for name, (code, env, path) in probes.items():
            if name != baseline:
                pairs[name].append((sample(*probes[baseline][:2]), sample(code, env, path)))
    bases = [b for rows in pairs.values() for b, _ in rows]
    results = {
        baseline: {
            "ms": statistics.median(w for w, _ in bases),
            "ratio": 1.0,
            "cpu_ms": statistics.median(c for _, c in bases),
            "cpu_ratio": 1.0,
        }
    }
    for name, rows in pairs.items():
        results[name] = {
            "ms": statistics.median(h[0] for _, h in rows),
            "ratio": statistics.median(h[0] / b[0] for b, h in rows),
            "cpu_ms": statistics.median(h[1] for _, h in rows),
            "cpu_ratio": statistics.median(h[1] / b[1] for b, h in rows),
        }
    print(f"Cold-start import, median of {RUNS} pairs of fresh interpreters (Python {sys.version.split()[0]})")
    print(f"  {'module':32} {'ms':>8} {'x boto3':>8} {'CPU ms':>8} {'x boto3':>8}")
    for name, row in results.items():
        print(f"  {name:32} {row['ms']:8.1f} {row['ratio']:8.2f} {row['cpu_ms']:8.1f} {row['cpu_ratio']:8.2f}")
    return results


if __name__ == "__main__":
    figures = main()
    out = REPO / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["coldstart"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
