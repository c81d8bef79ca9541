"""The console's delivery pages with 10,000 deliveries: GET /deliveries (the first page; a page of the 2%
that failed; one route's page), each through the Query function against moto, timed and counted in
DynamoDB requests and index items read, beside GET /deliveries/{id} (one key read) in the same run. The
deliveries are spread over four routes and six days, written straight to the table as the relay would have
stored them. What stays flat as deliveries grow is requests and items read per page (server-side paging);
the milliseconds are moto's, which answers an index query by scanning the whole table. GET /stats's relay
counts read every delivery of their window, so they are not timed here (docs/design.md)."""

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
    answer = _real(self, operation, params)
    calls["items read"] += int(answer.get("ScannedCount", 0)) if operation == "Query" else 0
    return answer


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


def timed(query: Any, path: str, route: str, params: dict[str, str] | None = None) -> tuple[float, int, int, Any]:
    """Median wall time (ms) of RUNS calls, the DynamoDB requests and index items read of one, its answer."""
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
    return statistics.median(times), requests, calls["items read"], json.loads(result["body"])


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

        # moto scans the whole table for each index query: on a loaded machine one can outlast the adapters'
        # 5 s read timeout. The bench waits for moto; what it measures is requests and items read.
        aws._CONFIG = aws.Config(connect_timeout=2, read_timeout=300, retries={"mode": "standard", "max_attempts": 1})
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
        finally:
            botocore.client.BaseClient._make_api_call = _real  # type: ignore[method-assign]
    finally:
        moto.stop()
    assert len(first[3]["results"]) == 50 and all(d["status"] == "failed" for d in failed[3]["results"])
    assert len(route[3]["results"]) == 50 and {d["route"] for d in route[3]["results"]} == {ROUTES[0]}
    figures: dict[str, Any] = {"deliveries": DELIVERIES, "get_one_ms": one[0], "get_one_requests": one[1]}
    for key, (ms, requests, read, answer) in (
        ("list_first_page", first),
        ("list_failed_page", failed),
        ("list_one_route", route),
    ):
        figures |= {f"{key}_ms": ms, f"{key}_requests": requests, f"{key}_items_read": read}
        figures[f"{key}_results"] = len(answer["results"])
    print(f"Console pages with {DELIVERIES} deliveries over {len(ROUTES)} routes and 6 days (moto, median of {RUNS})")
    base = figures["get_one_ms"]
    print(f"  GET /deliveries/{{id}} (baseline)  {base:8.1f} ms  {one[1]:3d} DynamoDB requests")
    for label, key in (
        ("GET /deliveries, first page", "list_first_page"),
        ("GET /deliveries?status=failed", "list_failed_page"),
        ("GET /deliveries?route=...", "list_one_route"),
    ):
        print(
            f"  {label:33s} {figures[key + '_ms']:8.1f} ms  {figures[key + '_requests']:3d} DynamoDB requests"
            f"  {figures[key + '_items_read']:5d} index items read   ratio {figures[key + '_ms'] / base:.1f}"
        )
    return figures


if __name__ == "__main__":
    results = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["console"] = results
    out.write_text(json.dumps(existing, indent=2) + "\n")
