"""Event ingest: 2,000 SendGrid events shaped as SendGrid sends them (about 4 per message, deferrals,
bounces, drops, complaints, categories and custom args; 10% duplicates, 5% for mail not sent through the
bridge, under unusual addresses) through the acknowledge handler (verify, enqueue) and the event worker
(normalise, dedupe, status, history, subscriptions) against moto, in batches as SendGrid posts them, every
batch delivered twice (SQS is at least once). Prints events per second for each handler, the DynamoDB
requests per event (counted at botocore's API call) beside the floor batch writes allow (1 request per
25 items), the hottest partition key's share of the writes of each table and index (bench/write_keys.py),
a digest of the final state beside the digest today's design (before issue 12) reaches on the same
stream, and the CPU of all the worker does to a post before the store beside json.loads of the same
posts and django-anymail's normaliser. moto is slow at transactions and index queries: the run takes a
few minutes (docs/bench.md says why 2,000). Sinks are off: ingest alone."""

import base64
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

# moto answers index queries by scanning the table and transactions slowly: 2,000 events (both designs,
# every batch twice) take a few minutes; past about 3,000 a moto call can outlast the adapters' 5 s read
# timeout on a shared 2-core machine.
EVENTS = int(os.environ.get("BENCH_EVENTS", "2000"))
UNMATCHED_SHARE = 0.05
PER_POST = 500
FLOOR = 1 / 25
calls: Counter[str] = Counter()
_real = botocore.client.BaseClient._make_api_call


def _counting(self: Any, operation: str, params: dict[str, Any]) -> Any:
    calls[f"{self.meta.service_model.service_name}.{operation}"] += 1
    return _real(self, operation, params)


class FastMotoProcess(MotoProcess):
    """moto in its own process, with bench/moto_server.py's fix for its slow transactions (and, as
    MotoProcess, its request recorder writing to a private file for bench/write_keys.py)."""

    server_args = (str(REPO_ROOT / "bench" / "moto_server.py"),)


def load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


T0 = 1795323600
# What SendGrid puts on each event (WIRE-FORMATS 2.2's field matrix, 2.3's batch): the fields beyond these
# are per kind, below.
_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
_CATEGORIES: tuple[Any, ...] = ("newsletter", ["order-confirmation"], ["campaign-2026-11", "jp"])
# Addresses of mail sent elsewhere, as SendGrid reports them: mostly plain, some in the case the sender
# typed, a quoted local part, an internationalised domain, SendGrid's `invalid@invalid` (WIRE-FORMATS 2.2).
_OUTSIDE = (
    "outside{n}@example.com",
    "outside{n}@example.com",
    "outside{n}@example.com",
    "Outside.{n}@Example.CO.JP",
    '"outside {n}"@example.net',
    "outside{n}@bücher.example",
    "invalid@invalid",
)


def _message_events(rng: random.Random, message: int, dispatch: str) -> list[dict[str, Any]]:
    """One message's events as SendGrid posts them: most are delivered, opened and clicked; a few defer,
    bounce (hard or blocked), are dropped, or end in a complaint or an unsubscribe. About 4 a message."""
    sent = T0 + message // 8  # eight messages a second: a post's events share their seconds
    common: dict[str, Any] = {
        "email": f"u{message}@example.com",
        "smtp-id": f"<X{message}AOb5ZXUgSEeRAy@geopod-ismtpd-{message % 7}>",
        "sg_message_id": f"X{message}.recvd-5f8d9c7b6-x2k4p-1-665D1A40-3.0",
    }
    if message % 5 < 3:
        common["category"] = _CATEGORIES[message % 3]
    common |= {"dispatch_id": dispatch, "message_id": f"{dispatch}.{message % 10}"}
    if message % 4 == 0:  # the sender's own metadata, as custom args
        common |= {"tenant_id": "t_42", "kintone_record_id": str(1000 + message)}
    fate = rng.random()
    steps: list[tuple[str, int, dict[str, Any]]] = [("processed", 0, {})]
    if fate < 0.005:
        reason = ("Bounced Address", "Unsubscribed Address", "Spam Reporting Address")[message % 3]
        return _events(common, sent, [("dropped", 0, {"reason": reason, "status": "5.0.0"})], rng)
    if fate < 0.03:
        steps.append(("deferred", 60, {"attempt": "1", "response": "451 4.3.2 Please try again later"}))
    if fate < 0.015:
        blocked = message % 2 == 0
        steps.append(
            (
                "bounce",
                120,
                {
                    "type": "blocked" if blocked else "bounce",
                    "status": "4.7.1" if blocked else "5.1.1",
                    "reason": "421 4.7.1 Temporary rejection, try again later"
                    if blocked
                    else "550 5.1.1 The email account that you tried to reach does not exist.",
                },
            )
        )
        return _events(common, sent, steps, rng)
    delivered = {"ip": "167.89.0.1", "response": f"250 2.0.0 OK  {sent + 3} d9443c01a7336-1f6322ab3b7si.410 - gsmtp"}
    steps.append(("delivered", 3 if fate >= 0.03 else 300, {**delivered, "tls": 1}))
    opened = 30 + int(rng.expovariate(1 / 900))
    steps.append(("open", opened, {"sg_machine_open": fate > 0.8, "ip": "203.0.113.10", "useragent": _AGENT}))
    if fate < 0.033:
        steps.append(("spamreport", opened + 40, {}))
    elif fate < 0.038:
        unsubscribe = {"asm_group_id": 12345, "url": "https://u123.ct.sendgrid.net/asm/unsubscribe/?user_id=123"}
        steps.append(("group_unsubscribe", opened + 30, {**unsubscribe, "ip": "203.0.113.10", "useragent": _AGENT}))
    else:
        click = {
            "url": f"https://shop.example.co.jp/orders/A-{10000 + message}?utm_source=email",
            "url_offset": {"index": 0, "type": "html"},
        }
        steps.append(("click", opened + 20, {**click, "ip": "203.0.113.10", "useragent": _AGENT}))
    return _events(common, sent, steps, rng)


def _events(
    common: dict[str, Any], sent: int, steps: list[tuple[str, int, dict[str, Any]]], rng: random.Random
) -> list[dict[str, Any]]:
    # SendGrid's key order: its own keys, then the custom args (WIRE-FORMATS 2.3).
    custom = {k: v for k, v in common.items() if k in ("dispatch_id", "message_id", "tenant_id", "kintone_record_id")}
    own = {k: v for k, v in common.items() if k not in custom}
    return [
        {
            "email": own["email"],
            "timestamp": sent + offset,
            "smtp-id": own["smtp-id"],
            "event": kind,
            **fields,
            **({"category": own["category"]} if "category" in own else {}),
            "sg_event_id": base64.urlsafe_b64encode(rng.randbytes(36)).decode(),
            "sg_message_id": own["sg_message_id"],
            **custom,
        }
        for kind, offset, fields in steps
    ]


def make_events(rng: random.Random) -> list[dict[str, Any]]:
    unique = int(EVENTS * 0.9)
    events: list[dict[str, Any]] = []
    message = 0
    while len(events) < unique:
        events += _message_events(rng, message, f"d_bench{message // 10:06d}")
        message += 1
    events = events[:unique]
    # Mail not sent through the bridge (a migration): unknown sg_message_id, no custom args.
    for n in range(int(unique * UNMATCHED_SHARE)):
        kind = ("delivered", "open", "click")[n % 3]
        events[n * 7 % unique] = {
            "email": _OUTSIDE[n % len(_OUTSIDE)].format(n=n % 500),
            "timestamp": T0 + n // 4,
            "smtp-id": f"<EXT{n // 3}@geopod-ismtpd-2>",
            "event": kind,
            **({"url": "https://example.com/x"} if kind == "click" else {}),
            "sg_event_id": f"ext-{n:07d}",
            "sg_message_id": f"EXT{n // 3}.filter",
        }
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
        store.save(dispatch, "sendgrid", store.head(request), results, "accepted", fresh=True)


def normaliser_cpu(posts: list[str]) -> dict[str, Any]:
    """µs per event for all the worker does to a post before the store (events.read_post: parse, normalise,
    the storable check), beside json.loads of the same text alone; and django-anymail's SendGrid normaliser
    (the reference the goal names) on the same posts. Interleaved, best of 30 each."""
    from datetime import UTC, datetime

    from martech_bridge import events
    from martech_bridge.adapters.providers import PROVIDERS

    sendgrid, received = PROVIDERS["sendgrid"], datetime.now(UTC)
    count = sum(len(json.loads(p)) for p in posts)

    def ours(body: str) -> None:
        rejected: list[Any] = []
        read = events.read_post(sendgrid, body, received, rejected)
        assert read is not None and len(read) + len(rejected) > 0

    contenders: dict[str, Any] = {"loads": json.loads, "ours": ours}
    anymail = _anymail_normaliser()
    if anymail is not None:
        contenders["anymail"] = lambda body: [anymail(e) for e in json.loads(body)]
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(30):  # a shared machine: the best of many short runs, each contender in turn
        for name, fn in contenders.items():
            started = time.process_time()  # CPU time: the other tenants' share of the cores is not ours
            for body in posts:
                fn(body)
            best[name] = min(best[name], time.process_time() - started)
    return {
        "json_loads_us_per_event": best["loads"] / count * 1e6,
        "normalise_us_per_event": best["ours"] / count * 1e6,
        "normalise_ratio_to_json": best["ours"] / best["loads"],
        "anymail_ratio_to_json": best["anymail"] / best["loads"] if anymail is not None else None,
    }


def _anymail_normaliser() -> Any:
    """django-anymail's per-event SendGrid reader (a test dependency), or None where it is not installed."""
    try:
        import django
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured:
        settings.configure(ANYMAIL={"WEBHOOK_SECRET": "u:p"}, INSTALLED_APPS=["anymail"])
        django.setup()
    from anymail.webhooks.sendgrid import SendGridTrackingWebhookView

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail warns that it dropped official SendGrid support
        return SendGridTrackingWebhookView().esp_to_anymail_event


def digest(moto: Any) -> str:
    """The final state: every recipient's status, every event item, every report, every subscription."""
    import hashlib

    dynamo = moto.client("dynamodb")
    lines = []
    for table, keep in (
        ("MessagesTable", ("status", "status_rank", "status_at", "event_type", "doneAt", "generalStatus")),
        ("SubscriptionsTable", ("subscribed", "suppression")),
    ):
        for page in dynamo.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if item["pk"]["S"].startswith("STATS#"):
                    continue  # GET /stats's counters (issue 15) have no counterpart in today's design
                fields = {k: item[k] for k in keep if k in item}
                sk = item.get("sk", {}).get("S", "")
                if sk.startswith("HIST#"):  # a subscription change's key holds the wall-clock time it was made
                    sk = f"HIST#<now>#{sk.rsplit('#', 1)[-1]}"
                lines.append(json.dumps([table, item.get("pk"), sk, fields], sort_keys=True))
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


class TodaysDesign:
    """The writes of the design before issue 12, for the state digest: every recipient with a change in a post
    gets a conditional UpdateItem (`status_rank < :r`, no skip of what the read rank covers; 47% of them
    no-ops), its report is put after it, and event items go out in unconditional batch writes."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def match(self, events: list[Any]) -> list[Any]:
        # Today's design did not use the rank it read: without it, every change is written.
        return [
            ({k: v for k, v in r.items() if k != "status_rank"} if r else r, how) for r, how in self.store.match(events)
        ]

    def advance_many(self, changes: list[Any]) -> int:
        from botocore.exceptions import ClientError
        from martech_bridge.logic.event_effects import reports_on

        table = self.store._table
        for recipient, status, rank, event in changes:
            try:
                old = table.update_item(
                    Key={"pk": recipient["pk"], "sk": recipient["sk"]},
                    UpdateExpression="SET #s = :s, status_rank = :r, status_at = :t",
                    ConditionExpression=(
                        "attribute_exists(pk) AND (attribute_not_exists(status_rank) OR status_rank < :r)"
                    ),
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": status, ":r": rank, ":t": event.timestamp.isoformat()},
                    ReturnValues="ALL_OLD",
                )["Attributes"]
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
            if reports_on(int(old.get("status_rank", 0)), status):
                table.put_item(Item=self.store._report_item(recipient, status, event))
        return len(changes)

    def record_events(self, items: list[dict[str, Any]], counters: Any = None) -> list[dict[str, Any]]:
        with self.store._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in items:
                batch.put_item(Item={k: v for k, v in item.items() if v is not None})
        return items


def build_posts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    posts = []
    for start in range(0, len(events), PER_POST):
        # As SendGrid's Go encoder writes it: UTF-8, not \\u escapes (WIRE-FORMATS 2.3 shows raw text).
        text = json.dumps(events[start : start + PER_POST], separators=(",", ":"), ensure_ascii=False)
        body = (text + "\r\n").encode()
        headers = [(k.lower(), v) for k, v in sendgrid_headers(body).items()] + [("content-type", "application/json")]
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
    return posts


def run(env: dict[str, str], posts: list[dict[str, Any]], *, todays_design: bool) -> dict[str, Any]:
    """One ingest of the posts on a fresh moto: acknowledge each, then work every queued batch twice."""
    from martech_bridge import config, events

    template = Template()
    moto = FastMotoProcess().start()
    try:
        create_resources(template, Resolver(template), moto)
        os.environ.update({**moto.env(), **env})
        config.reset()
        seed_messages(events_count=EVENTS)
        ack = load("events_handler", REPO_ROOT / "functions/events/handler.py")
        worker = load("event_worker_handler", REPO_ROOT / "functions/event_worker/handler.py")
        real_store = events.message_store
        if todays_design:
            events.message_store = lambda: TodaysDesign(real_store())  # type: ignore[assignment]
        quiet = io.StringIO()
        calls.clear()
        # scale.hottest_key_share: every DynamoDB write of both phases, recorded at the moto server
        # (bench/write_keys.py; the recorder's file append per request is inside the events/s figures).
        recorder = WriteRecorder(moto.endpoint)
        recorder.start()
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
            for delivery in ("w", "r"):  # SQS delivers at least once: every batch twice
                with contextlib.redirect_stdout(quiet):
                    result = worker.lambda_handler(
                        sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:EventQueue"),
                        LambdaContext("EventWorkerFunction", 512, 60, f"{delivery}{batches}"),
                    )
                assert result == {"batchItemFailures": []}, result
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
            batches += 1
        worker_seconds = time.perf_counter() - started
        botocore.client.BaseClient._make_api_call = _real
        events.message_store = real_store  # type: ignore[assignment]
        write_log = recorder.stop()
        return {
            "write_log": write_log,
            "ack_seconds": ack_seconds,
            "ack_calls": ack_calls,
            "worker_seconds": worker_seconds,
            "calls": dict(calls),
            "digest": digest(moto),
        }
    finally:
        botocore.client.BaseClient._make_api_call = _real
        moto.stop()


def main() -> dict[str, Any]:
    template = Template()
    routes = Path(tempfile.mkdtemp()) / "no-sinks.json"
    routes.write_text(json.dumps({"version": 1, "routes": {}, "sinks": []}))
    functions = template.functions()
    env_json = load_env_json()
    env: dict[str, str] = {}
    for name in ("EventsFunction", "EventWorkerFunction"):
        env |= function_environment(functions[name], Resolver(template), env_json=env_json, shell={})
    env |= {
        "BRIDGE_CONFIG_FILE": str(routes),
        "POWERTOOLS_LOG_LEVEL": "ERROR",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.update(env)
    events = make_events(random.Random(20261122))
    posts = build_posts(events)
    before = run(env, posts, todays_design=True)
    now = run(env, posts, todays_design=False)
    dynamo = sum(n for op, n in now["calls"].items() if op.startswith("dynamodb."))
    before_dynamo = sum(n for op, n in before["calls"].items() if op.startswith("dynamodb."))
    per_event = dynamo / len(events)
    cpu = normaliser_cpu([_body(p).decode() for p in posts])
    results = {
        "events": len(events),
        "posts": len(posts),
        "ack_events_per_second": len(events) / now["ack_seconds"],
        "ack_aws_calls": now["ack_calls"],
        "worker_events_per_second": len(events) / now["worker_seconds"],
        "dynamodb_requests_per_event": per_event,
        "todays_design_requests_per_event": before_dynamo / len(events),
        "floor_requests_per_event": FLOOR,
        "ratio_to_floor": per_event / FLOOR,
        "dynamodb_calls": now["calls"],
        "deliveries_per_batch": 2,
        "unmatched_share": UNMATCHED_SHARE,
        "state_digest": now["digest"],
        "todays_design_state_digest": before["digest"],
        "state_digest_equal": now["digest"] == before["digest"],
        "write_keys": now["write_log"].summary(),  # moved to results["scale"] by __main__
        **cpu,
    }
    print(
        f"Event ingest: {len(events)} SendGrid events in {len(posts)} signed posts, 10% duplicates, "
        f"{UNMATCHED_SHARE:.0%} for mail sent elsewhere, every batch delivered twice (moto)"
    )
    print(
        f"  acknowledge handler  {results['ack_events_per_second']:10.0f} events/s   "
        f"({now['ack_calls']} AWS calls: one SQS send per post)"
    )
    print(f"  event worker         {results['worker_events_per_second']:10.0f} events/s")
    print(
        f"  DynamoDB requests    {per_event:10.2f} per event   floor {FLOOR:.2f} (batch writes of 25)   "
        f"ratio {per_event / FLOOR:.1f}   today's design {before_dynamo / len(events):.2f}"
    )
    print(
        "  by operation: "
        + ", ".join(f"{k.split('.')[1]} {v}" for k, v in sorted(now["calls"].items()) if k.startswith("dynamodb."))
    )
    print_report(now["write_log"])
    print(
        f"  state digest         {now['digest']}   today's design {before['digest']}   "
        f"{'equal' if results['state_digest_equal'] else 'DIFFERENT'}"
    )
    print(
        f"  normaliser           {cpu['normalise_us_per_event']:10.2f} us/event   json.loads "
        f"{cpu['json_loads_us_per_event']:.2f} us/event   ratio {cpu['normalise_ratio_to_json']:.2f}"
        + (f"   django-anymail's {cpu['anymail_ratio_to_json']:.2f}" if cpu["anymail_ratio_to_json"] else "")
    )
    return results


def _body(event: dict[str, Any]) -> bytes:
    import base64

    body = event["body"]
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


if __name__ == "__main__":
    figures = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    store(existing, "ingest", figures.pop("write_keys"))
    existing["ingest"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
