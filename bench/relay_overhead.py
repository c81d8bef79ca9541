"""Relay overhead: median latency of a webhook through the relay handler (auth, parsing, mapping, the
delivery record and its attempt in DynamoDB - moto server here - and the target call) beside a direct
`requests` call to the same loopback target, measured alternately in the same run.

The target answers after a fixed service time. With 0 ms the ratio is pure bridge overhead against a
loopback round trip; with a service time like a real API's (kintone answers in tens to hundreds of ms)
the ratio shows what a user sees.

Then, untimed (so moto's request recorder cannot slow the figures above), BENCH_SCALE_DELIVERIES more
deliveries, each for another address, with every DynamoDB write recorded at the moto server and attributed
to the partition keys it touches (bench/write_keys.py): `scale.hottest_key_share`."""

import contextlib
import importlib.util
import io
import json
import os
import statistics
import tempfile
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from write_keys import WriteLog, print_report, recording, store

from devkit.aws import MotoProcess, create_resources
from devkit.gateway import build_event
from devkit.runtime import LambdaContext, function_environment, load_env_json
from devkit.template import REPO_ROOT, HttpRoute, Resolver, Template

CALLS = int(os.environ.get("BENCH_CALLS", "150"))
SERVICE_TIMES_MS = tuple(int(x) for x in os.environ.get("BENCH_SERVICE_MS", "0,50").split(","))
# Enough that the deliveries table passes write_keys' 1,000-write threshold even once a keyless delivery
# is written once (issue 10); about 20 s.
SCALE_DELIVERIES = int(os.environ.get("BENCH_SCALE_DELIVERIES", "2000"))


class Target(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or every answer waits ~40 ms for a delayed ACK
    service_time = 0.0

    def log_message(self, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(Target.service_time)
        body = b'{"revision":"2"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> tuple[dict[str, Any], WriteLog]:
    target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{target.server_address[1]}"
    routes = Path(tempfile.mkdtemp()) / "bench-routes.json"
    routes.write_text(
        json.dumps(
            {
                "version": 1,
                "routes": {
                    "bench": {
                        "auth": {"type": "shared_secret", "secrets": ["bench-token"]},
                        "input": {"required": ["email"]},
                        "target": {"type": "kintone", "base_url": base, "app": 1, "api_tokens": ["t"]},
                        "mapping": {
                            "update_key": {"field": "email", "value": "email"},
                            "record": {"status": {"const": "opened"}},
                        },
                    }
                },
            }
        )
    )
    template = Template()
    moto = MotoProcess().start()  # its own process, as in the local stack
    create_resources(template, Resolver(template), moto)
    # The function's own environment (template + env.json), pointed at the bench's routes; quiet logs.
    function_env = function_environment(
        template.functions()["RelayFunction"], Resolver(template), env_json=load_env_json(), shell={}
    )
    os.environ.update(
        {
            **moto.env(),
            **function_env,
            "BRIDGE_CONFIG_FILE": str(routes),
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    spec = importlib.util.spec_from_file_location("relay_handler", REPO_ROOT / "functions/relay/handler.py")
    assert spec and spec.loader
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)

    def relay_event(email: str, key: str | None = None) -> dict[str, Any]:
        return build_event(
            method="POST",
            target="/relay/bench",
            headers=[("x-webhook-token", "bench-token"), *([("idempotency-key", key)] if key else [])],
            body=json.dumps({"email": email, "campaign": "SPRING24"}).encode(),
            route=HttpRoute("POST", "/relay/{route}", "RelayFunction"),
            path_parameters={"route": "bench"},
        )

    event = relay_event("taro@example.com")
    direct_body = json.dumps(
        {
            "app": 1,
            "updateKey": {"field": "email", "value": "taro@example.com"},
            "record": {"status": {"value": "opened"}},
        }
    ).encode()
    session = requests.Session()
    quiet = io.StringIO()
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    results: dict[str, Any] = {}
    print(f"Relay overhead, median of {CALLS} calls each, alternating (moto server as DynamoDB)")
    print(f"  {'target service time':20} {'direct ms':>10} {'relay ms':>10} {'overhead ms':>12} {'ratio':>7}")
    for service_ms in SERVICE_TIMES_MS:
        Target.service_time = service_ms / 1000
        relay_ms, direct_ms = [], []
        for i in range(CALLS + 10):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(quiet):  # the function's EMF metric lines
                result = handler.lambda_handler(event, LambdaContext("RelayFunction", 512, 25, f"bench-{i}"))
            t1 = time.perf_counter()
            session.put(
                f"{base}/k/v1/record.json",
                data=direct_body,
                headers={"Content-Type": "application/json", "X-Cybozu-API-Token": "t"},
                timeout=10,
            ).raise_for_status()
            t2 = time.perf_counter()
            assert result["statusCode"] == 200, result
            if i >= 10:  # warm-up
                relay_ms.append((t1 - t0) * 1000)
                direct_ms.append((t2 - t1) * 1000)
        relay, direct = statistics.median(relay_ms), statistics.median(direct_ms)
        results[f"{service_ms}ms"] = {
            "direct_ms": direct,
            "relay_ms": relay,
            "overhead_ms": relay - direct,
            "ratio": relay / direct,
        }
        print(
            f"  {str(service_ms) + ' ms':20} {direct:10.2f} {relay:10.2f} {relay - direct:12.2f} {relay / direct:7.2f}"
        )
    Target.service_time = 0.0
    with recording(moto.endpoint) as writes:
        # Half carry an idempotency key: those are stored in_progress before the call and settled after it,
        # so the sweep index is written too (keyless sync deliveries are written once, settled).
        for i in range(SCALE_DELIVERIES):
            with contextlib.redirect_stdout(quiet):
                result = handler.lambda_handler(
                    relay_event(f"u{i}@example.com", f"scale-{i}" if i % 2 else None),
                    LambdaContext("RelayFunction", 512, 25, f"scale-{i}"),
                )
            assert result["statusCode"] == 200, result
    print(
        f"Relay at scale: {SCALE_DELIVERIES} more deliveries (half with an idempotency key), untimed, "
        "every DynamoDB write recorded (moto)"
    )
    print_report(writes)
    moto.stop()
    target.shutdown()
    return results, writes


if __name__ == "__main__":
    figures, writes = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["relay_overhead"] = figures
    store(existing, "relay", writes)
    out.write_text(json.dumps(existing, indent=2) + "\n")
