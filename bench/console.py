"""The console's reads with 10,000 deliveries: GET /deliveries (first page; a page of the 2% that failed;
one route), GET /stats over 7 days, each through the Query function against moto, timed and counted in
DynamoDB requests, beside GET /deliveries/{id} (one key read) in the same run. The deliveries are spread
over four routes and six days, written straight to the table as the relay would have stored them."""

import contextlib
import io
import json
import os
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.client
from ingest import FastMotoProcess, load

from devkit.aws import create_resources
from devkit.gateway import build_event
from devkit.runtime import LambdaContext, function_environment, load_env_json
from devkit.template import REPO_ROOT, HttpRoute, Resolver, Template

DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "10000"))
ROUTES = ["marketo-email-opened", "marketo-lead-upsert", "karte-cart-abandon", "sink:kintone-mail-status"]
FAILED_SHARE = 0.02
RUNS = 3
calls: Counter[str] = Counter()
_real = botocore.client.BaseClient._make_api_call


def _counting(self: Any, operation: str, params: dict[str, Any]) -> Any:
    calls[f"{self.meta.service_model.service_name}.{operation}"] += 1
    return _real(self, operation, params)


def seed(table: Any, now: datetime, rng: random.Random) -> list[str]:
    from martech_bridge.adapters.delivery_store import DeliveryStore
    from martech_bridge.models.delivery import Delivery, DeliveryStatus, FailureReason

    store = DeliveryStore(table.name, 30)
    ids = []
    with table.batch_writer() as batch:
        for n in range(DELIVERIES):
            created = now - timedelta(seconds=rng.uniform(0, 6 * 86400))  # inside /stats' default 7 days
            failed = rng.random() < FAILED_SHARE
            delivery = Delivery(
                delivery_id=f"dl_{n:026x}",
                route=ROUTES[n % len(ROUTES)],
                target="PUT https://example.cybozu.com/k/v1/record.json",
                status=DeliveryStatus.FAILED if failed else DeliveryStatus.DELIVERED,
                failure=FailureReason.GAVE_UP if failed else None,
                attempts=1,
                max_attempts=5,
                created_at=created,
                updated_at=created,
                request_hash="h",
                payload={"email": f"u{n}@example.com", "name": "山田 太郎"},
            )
            batch.put_item(Item=store._to_item(delivery))
            ids.append(delivery.delivery_id)
    return ids


def timed(query: Any, path: str, route: str, params: dict[str, str] | None = None) -> tuple[float, int, Any]:
    """Median wall time (ms) of RUNS calls, the DynamoDB requests of one, and its answer."""
    from urllib.parse import urlencode

    target = path + (f"?{urlencode(params)}" if params else "")
    event = build_event(
        method="GET",
        target=target,
        headers=[("x-api-key", "local-dev-key-1")],
        body=b"",
        route=HttpRoute("GET", route, "QueryFunction"),
        path_parameters={"delivery_id": path.rsplit("/", 1)[1]} if "{delivery_id}" in route else {},
    )
    times = []
    for _ in range(RUNS):
        calls.clear()
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            result = query.lambda_handler(event, LambdaContext("QueryFunction", 512, 30, "b"))
        times.append((time.perf_counter() - started) * 1000)
        assert result["statusCode"] == 200, result
    requests = sum(n for op, n in calls.items() if op.startswith("dynamodb."))
    return statistics.median(times), requests, json.loads(result["body"])


def main() -> dict[str, Any]:
    template = Template()
    env = function_environment(
        template.functions()["QueryFunction"], Resolver(template), env_json=load_env_json(), shell={}
    )
    env |= {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    moto = FastMotoProcess().start()
    try:
        create_resources(template, Resolver(template), moto)
        os.environ.update({**moto.env(), **env})
        from martech_bridge import config
        from martech_bridge.adapters import aws

        config.reset()
        aws.reset()
        now = datetime.now(UTC)
        started = time.perf_counter()
        ids = seed(aws.dynamodb_table(os.environ["DELIVERIES_TABLE"]), now, random.Random(20261130))
        print(f"  seeded {DELIVERIES} deliveries in {time.perf_counter() - started:.0f} s")
        query = load("query_handler", REPO_ROOT / "functions/query/handler.py")
        botocore.client.BaseClient._make_api_call = _counting  # type: ignore[method-assign]
        try:
            one = timed(query, f"/deliveries/{ids[0]}", "/deliveries/{delivery_id}")
            first = timed(query, "/deliveries", "/deliveries", {"limit": "50"})
            failed = timed(query, "/deliveries", "/deliveries", {"status": "failed", "limit": "50"})
            route = timed(query, "/deliveries", "/deliveries", {"route": ROUTES[0], "limit": "50"})
            stats = timed(query, "/stats", "/stats")
        finally:
            botocore.client.BaseClient._make_api_call = _real  # type: ignore[method-assign]
    finally:
        moto.stop()
    assert len(first[2]["results"]) == 50 and all(d["status"] == "failed" for d in failed[2]["results"])
    assert sum(r["total"] for r in stats[2]["relay"]) == DELIVERIES
    figures = {
        "deliveries": DELIVERIES,
        "get_one_ms": one[0],
        "get_one_requests": one[1],
        "list_first_page_ms": first[0],
        "list_first_page_requests": first[1],
        "list_failed_page_ms": failed[0],
        "list_failed_page_requests": failed[1],
        "list_failed_page_results": len(failed[2]["results"]),
        "list_one_route_ms": route[0],
        "list_one_route_requests": route[1],
        "stats_7_days_ms": stats[0],
        "stats_7_days_requests": stats[1],
    }
    print(f"Console reads with {DELIVERIES} deliveries over {len(ROUTES)} routes and 7 days (moto, median of {RUNS})")
    base = figures["get_one_ms"]
    print(f"  GET /deliveries/{{id}} (baseline)  {base:8.1f} ms  {one[1]:3d} DynamoDB requests")
    for label, key in (
        ("GET /deliveries, first page", "list_first_page"),
        ("GET /deliveries?status=failed", "list_failed_page"),
        ("GET /deliveries?route=...", "list_one_route"),
        ("GET /stats (7 days, relay too)", "stats_7_days"),
    ):
        print(
            f"  {label:33s} {figures[key + '_ms']:8.1f} ms  {figures[key + '_requests']:3d} DynamoDB requests"
            f"   ratio {figures[key + '_ms'] / base:.1f}"
        )
    return figures


if __name__ == "__main__":
    results = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["console"] = results
    out.write_text(json.dumps(existing, indent=2) + "\n")
