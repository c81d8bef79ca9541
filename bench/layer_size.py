"""The deployment's size: `sam build` for arm64, then the layer pruned as `make build` does; printed beside
the same build before pruning (the baseline) and the 30 MB budget."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

from devkit.layer import prune_runtime_provided, tree_size
from devkit.template import REPO_ROOT, Template

BUDGET_MB = 30.0


def main() -> dict[str, float]:
    build = Path(tempfile.mkdtemp()) / "build"
    env = {
        **os.environ,
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    subprocess.run(
        ["sam", "build", "--parallel", "--build-dir", str(build)],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    layer = build / "CommonLayer" / "python"
    before = tree_size(layer) / 1_048_576
    prune_runtime_provided(layer)
    after = tree_size(layer) / 1_048_576
    functions = {name: tree_size(build / name) / 1_048_576 for name in Template().functions()}
    results = {
        "layer_mb": after,
        "layer_unpruned_mb": before,
        "budget_mb": BUDGET_MB,
        "largest_function_mb": max(functions.values()),
        "functions_mb": functions,
    }
    print(
        f"Deployment size (sam build, arm64): layer {after:.1f} MB (unpruned {before:.1f} MB, "
        f"budget {BUDGET_MB:g} MB); "
        f"largest function {max(functions.values()):.1f} MB"
    )
    return results


if __name__ == "__main__":
    figures = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["layer_size"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
