"""Event ingest: 10,000 SendGrid events (about 4 per message, 10% duplicates) through the acknowledge
handler (verify, enqueue) and the event worker (normalise, dedupe, status, history, subscriptions) against
moto, in batches as SendGrid posts them. Prints events per second for each handler and the DynamoDB
requests per event (counted at botocore's API call) beside the floor batch writes allow: 1 request per 25
items. Sinks are off: this is the ingest path alone."""

import contextlib
import importlib.util
import io
import json
import os
import random
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.client
from write_keys import WriteRecorder, print_report, store

from devkit.aws import MotoProcess, create_resources
from devkit.gateway import build_event
from devkit.queues import sqs_event
from devkit.runtime import LambdaContext, function_environment, load_env_json
from devkit.signing import sendgrid_headers
from devkit.template import REPO_ROOT, HttpRoute, Resolver, Template, local_queue_url

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
PER_POST = 500
FLOOR = 1 / 25
calls: Counter[str] = Counter()
_real = botocore.client.BaseClient._make_api_call


def _counting(self: Any, operation: str, params: dict[str, Any]) -> Any:
    calls[f"{self.meta.service_model.service_name}.{operation}"] += 1
    return _real(self, operation, params)


def load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_events(rng: random.Random) -> list[dict[str, Any]]:
    unique = int(EVENTS * 0.9)
    events: list[dict[str, Any]] = []
    message = 0
    while len(events) < unique:
        dispatch = f"d_bench{message // 10:06d}"
        for kind in ("processed", "delivered", "open", "click"):
            events.append(
                {
                    "email": f"u{message}@example.com",
                    "event": kind,
                    "timestamp": 1795323600 + len(events),
                    "sg_event_id": f"ev-{len(events):07d}",
                    "sg_message_id": f"X{message}.recvd",
                    "dispatch_id": dispatch,
                    "message_id": f"{dispatch}.{message % 10}",
                }
            )
        message += 1
    events = events[:unique]
    events += rng.sample(events, EVENTS - unique)  # SendGrid's duplicates
    rng.shuffle(events)
    return events


def seed_messages(events_count: int) -> None:
    """The messages the events are about, as the send path stores them (not counted)."""
    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.mail import MailRequest, RecipientResult

    store = MessageStore("MessagesTable", 30)
    request = MailRequest.model_validate({"to": [{"email": "x@example.com"}], "subject": "s", "text": "t"})
    messages = events_count // 4 + 1
    for d in range(messages // 10 + 1):
        dispatch = f"d_bench{d:06d}"
        results = [
            RecipientResult(
                email=f"u{d * 10 + i}@example.com",
                message_id=f"{dispatch}.{i}",
                status="accepted",
                provider_message_id=f"X{d * 10 + i}",
            )
            for i in range(10)
        ]
        store.save(dispatch, "sendgrid", request, results, "accepted")


def main() -> dict[str, Any]:
    template = Template()
    moto = MotoProcess().start()
    try:
        create_resources(template, Resolver(template), moto)
        routes = Path(tempfile.mkdtemp()) / "no-sinks.json"
        routes.write_text(json.dumps({"version": 1, "routes": {}, "sinks": []}))
        functions = template.functions()
        env_json = load_env_json()
        env: dict[str, str] = {}
        for name in ("EventsFunction", "EventWorkerFunction"):
            env |= function_environment(functions[name], Resolver(template), env_json=env_json, shell={})
        os.environ.update(
            {
                **moto.env(),
                **env,
                "BRIDGE_CONFIG_FILE": str(routes),
                "POWERTOOLS_LOG_LEVEL": "ERROR",
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        seed_messages(events_count=EVENTS)
        ack = load("events_handler", REPO_ROOT / "functions/events/handler.py")
        worker = load("event_worker_handler", REPO_ROOT / "functions/event_worker/handler.py")
        events = make_events(random.Random(20261122))
        posts = []
        for start in range(0, len(events), PER_POST):
            body = (json.dumps(events[start : start + PER_POST], separators=(",", ":")) + "\r\n").encode()
            headers = [(k.lower(), v) for k, v in sendgrid_headers(body).items()] + [
                ("content-type", "application/json")
            ]
            posts.append(
                build_event(
                    method="POST",
                    target="/events/sendgrid",
                    headers=headers,
                    body=body,
                    route=HttpRoute("POST", "/events/{provider}", "EventsFunction"),
                    path_parameters={"provider": "sendgrid"},
                )
            )
        quiet = io.StringIO()
        # scale.hottest_key_share: every DynamoDB write of both phases, recorded at the moto server
        # (bench/write_keys.py; the recorder's file append per request is inside the events/s figures).
        writes = WriteRecorder(moto.endpoint)
        writes.start()
        botocore.client.BaseClient._make_api_call = _counting
        started = time.perf_counter()
        for i, post in enumerate(posts):
            with contextlib.redirect_stdout(quiet):
                result = ack.lambda_handler(post, LambdaContext("EventsFunction", 512, 10, f"a{i}"))
            assert result["statusCode"] == 200, result
        ack_seconds = time.perf_counter() - started
        ack_calls = sum(calls.values())
        calls.clear()
        sqs = moto.client("sqs")
        url = local_queue_url("EventQueue")
        started = time.perf_counter()
        batches = 0
        while True:
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                break
            with contextlib.redirect_stdout(quiet):
                result = worker.lambda_handler(
                    sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:EventQueue"),
                    LambdaContext("EventWorkerFunction", 512, 60, f"w{batches}"),
                )
            assert result == {"batchItemFailures": []}, result
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            batches += 1
        worker_seconds = time.perf_counter() - started
        botocore.client.BaseClient._make_api_call = _real
        write_log = writes.stop()
        dynamo = sum(n for op, n in calls.items() if op.startswith("dynamodb."))
        per_event = dynamo / len(events)
        results = {
            "events": len(events),
            "posts": len(posts),
            "ack_events_per_second": len(events) / ack_seconds,
            "ack_aws_calls": ack_calls,
            "worker_events_per_second": len(events) / worker_seconds,
            "dynamodb_requests_per_event": per_event,
            "floor_requests_per_event": FLOOR,
            "ratio_to_floor": per_event / FLOOR,
            "dynamodb_calls": dict(calls),
            "write_keys": write_log.summary(),  # moved to results["scale"] by __main__
        }
        print(f"Event ingest: {len(events)} SendGrid events in {len(posts)} signed posts, 10% duplicates (moto)")
        print(
            f"  acknowledge handler  {results['ack_events_per_second']:10.0f} events/s   "
            f"({ack_calls} AWS calls: one SQS send per post)"
        )
        print(f"  event worker         {results['worker_events_per_second']:10.0f} events/s")
        print(
            f"  DynamoDB requests    {per_event:10.2f} per event   floor {FLOOR:.2f} (batch writes of 25)   "
            f"ratio {per_event / FLOOR:.1f}"
        )
        print(
            "  by operation: "
            + ", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(calls.items()) if k.startswith("dynamodb."))
        )
        print_report(write_log)
        return results
    finally:
        moto.stop()


if __name__ == "__main__":
    figures = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    store(existing, "ingest", figures.pop("write_keys"))
    existing["ingest"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
