"""First call: a fresh interpreter imports a function's handler and makes its first invocation with a real
event - against moto server and the loopback sandbox - beside a hand-written floor for the same work
(bench/floors/<function>.py: the few boto3 / http.client / cryptography calls a person would write in one
file), run the same way in the same rounds. Deferring imports into the first call cannot help here: the
figure is import plus first call. Also the peak RSS of each after its first invocation.

Both run with the environment the function has when deployed (EnableXRaySdk at its default, or as
BENCH_XRAY_SDK says; the variables the Lambda service sets) plus the local stack's values (env.json: table
names, plaintext local secrets, sandbox addresses). Each answer is checked (a refused or failed invocation
stops the bench), and what the call did is checked afterwards in moto or the sandbox, so neither side can skip
its work."""

import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
from compiled import compile_like_the_layer
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devkit.aws import MotoProcess, create_resources
from devkit.gateway import build_event
from devkit.inbound import BUCKET, put_and_event
from devkit.runtime import DEFAULT_SANDBOX_ADDRESS, function_environment, load_env_json, runtime_environment
from devkit.sandbox.server import Sandbox
from devkit.template import REPO_ROOT, HttpRoute, Resolver, Template

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
# BENCH_XRAY_SDK=true measures the functions as deployed with EnableXRaySdk=true (default: the template's).
XRAY_SDK = {"EnableXRaySdk": os.environ["BENCH_XRAY_SDK"]} if os.environ.get("BENCH_XRAY_SDK") else None
FLOORS = REPO_ROOT / "bench" / "floors"
SIGNING_KEY = REPO_ROOT / "devkit" / "sandbox" / "sendgrid-webhook-signing-key.pem"
# The handler's process, timed from before `import boto3` to the first invocation's answer.
PROBE = """
import json, sys, time
event = json.loads(open(sys.argv[2]).read())
t0 = time.perf_counter()
import boto3
sys.path.insert(0, sys.argv[1])
import handler

class Context:
    function_name = sys.argv[3]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[3]
    aws_request_id = "bench-first-call"
    _deadline = time.monotonic() + 25
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

result = handler.lambda_handler(event, Context())
ms = (time.perf_counter() - t0) * 1000
# Peak RSS: VmHWM (ru_maxrss would carry the forking parent's high-water mark over the exec).
rss_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
print(json.dumps({"ms": ms, "result": result, "rss_kb": rss_kb}))
"""


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, Any]:
    """ms, peak RSS (MB) after the first invocation, and the answer of one fresh interpreter."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])[:120]} failed:\n{out.stderr[-3000:]}")
    line = json.loads(out.stdout.strip().splitlines()[-1])
    return float(line["ms"]), line["rss_kb"] / 1024, line["result"]


class Case:
    """One function's first call: its event, the answer it must give, and the floor that does the same."""

    def __init__(
        self, function: str, floor: str, event: dict[str, Any], accept: Callable[[Any], bool], **env: str
    ) -> None:
        self.function, self.floor, self.event, self.accept, self.env = function, floor, event, accept, env
        # Events made before the rounds, one a round, for a call that consumes its event (a queued delivery).
        self.rounds: list[dict[str, Any]] = []
        # The floor's own, where doing the same work twice would not be the same work (a send made again
        # is deduplicated by Braze; a stored reply is found, not stored).
        self.floor_rounds: list[dict[str, Any]] = []


def http_event(
    method: str,
    target: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    fn: str,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    return build_event(
        method=method,
        target=target,
        headers=headers,
        body=body,
        route=HttpRoute(method, path, fn),
        path_parameters=params or {},
    )


def sendgrid_post(count: int) -> tuple[bytes, list[tuple[str, str]]]:
    """A signed SendGrid event post of `count` delivered events, signed as SendGrid signs (ECDSA P-256 over
    timestamp + body) with the sandbox's key, whose public half env.json configures."""
    now = int(time.time())
    events = [
        {
            "email": f"user{i}@example.com",
            "timestamp": now,
            "event": "delivered",
            "sg_event_id": f"ev{i:04d}-{now}",
            "sg_message_id": f"msg{i:04d}.filter0001.{now}.0",
            "response": "250 OK",
        }
        for i in range(count)
    ]
    body = json.dumps(events).encode() + b"\r\n"
    key = serialization.load_pem_private_key(SIGNING_KEY.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = base64.b64encode(key.sign(str(now).encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = [
        ("content-type", "application/json"),
        ("x-twilio-email-event-webhook-signature", signature),
        ("x-twilio-email-event-webhook-timestamp", str(now)),
    ]
    return body, headers


def sqs_batch(body: str, queue: str) -> dict[str, Any]:
    """An SQS event of one message, as Lambda's event source mapping hands it over."""
    return sqs_events([{"MessageId": "bench-1", "ReceiptHandle": "r", "Body": body}], queue)


def sqs_events(messages: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """An SQS event of these received messages, as Lambda's event source mapping hands them over."""
    now = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": "x",
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def cases(sandbox: Sandbox, workdir: Path) -> list[Case]:
    env_json = load_env_json()
    api_key = env_json["QueryFunction"]["API_KEYS"].split(",")[0]
    routes = workdir / "bench-routes.json"
    routes.write_text(
        json.dumps(
            {
                "version": 1,
                "routes": {
                    "bench": {
                        "auth": {"type": "shared_secret", "secrets": ["bench-token"]},
                        "input": {"required": ["email"]},
                        "target": {
                            "type": "kintone",
                            "base_url": f"{sandbox.url}/kintone",
                            "app": 1,
                            "operation": "add",
                            "api_tokens": ["local-kintone-token"],
                        },
                        "mapping": {"record": {"email": "email"}},
                        "delivery": {"mode": "sync"},
                    },
                    "bench-async": {
                        "auth": {"type": "shared_secret", "secrets": ["bench-token"]},
                        "input": {"required": ["email"]},
                        "target": {
                            "type": "kintone",
                            "base_url": f"{sandbox.url}/kintone",
                            "app": 2,
                            "operation": "add",
                            "api_tokens": ["local-kintone-token"],
                        },
                        "mapping": {"record": {"email": "email"}},
                        "delivery": {"mode": "async"},
                    },
                },
            }
        )
    )
    replies = workdir / "bench-replies.json"
    replies.write_text(
        json.dumps(
            {
                "version": 1,
                "sinks": [
                    {
                        "name": "bench-replies",
                        "source": "replies",
                        "target": {
                            "type": "kintone",
                            "base_url": f"{sandbox.url}/kintone",
                            "app": 3,
                            "operation": "add",
                            "api_tokens": ["local-kintone-token"],
                        },
                        "mapping": {"record": {"subject": "subject", "from": "from", "text": "text"}},
                    }
                ],
            }
        )
    )
    body, headers = sendgrid_post(50)
    envelope = {
        "provider": "sendgrid",
        "received_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "body": body.decode(),
    }
    sqs_event = sqs_batch(json.dumps(envelope), "EventQueue")
    mail = {
        "to": [{"email": "taro@example.com"}],
        "from": {"email": "news@example.com"},
        "subject": "Hello",
        "text": "Hello from the bench",
        "provider": "sendgrid",
    }
    ok = lambda status: lambda r: isinstance(r, dict) and r.get("statusCode") == status  # noqa: E731
    return [
        Case(
            "EventsFunction",
            "events.py",
            http_event(
                "POST",
                "/events/sendgrid",
                "/events/{provider}",
                headers,
                body,
                "EventsFunction",
                {"provider": "sendgrid"},
            ),
            ok(200),
        ),
        Case(
            "RelayFunction",
            "relay.py",
            http_event(
                "POST",
                "/relay/bench",
                "/relay/{route}",
                [("content-type", "application/json"), ("x-webhook-token", "bench-token")],
                json.dumps({"email": "taro@example.com", "campaign": "SPRING24"}).encode(),
                "RelayFunction",
                {"route": "bench"},
            ),
            ok(200),
            BRIDGE_CONFIG_FILE=str(routes),
            BRIDGE_CONFIG_OVERLAY="",
        ),
        Case(
            "SendFunction",
            "send.py",
            http_event(
                "POST",
                "/mail/send",
                "/mail/send",
                [("content-type", "application/json"), ("x-api-key", api_key)],
                json.dumps(mail).encode(),
                "SendFunction",
            ),
            ok(202),
        ),
        Case(
            "QueryFunction",
            "query.py",
            http_event(
                "GET",
                "/subscriptions?email=taro%40example.com",
                "/subscriptions",
                [("x-api-key", api_key)],
                b"",
                "QueryFunction",
            ),
            lambda r: ok(200)(r) or ok(404)(r),
        ),
        Case("EventWorkerFunction", "event_worker.py", sqs_event, lambda r: r == {"batchItemFailures": []}),
        # Its events (one queued delivery a round, the floor's apart) are made by the relay before the rounds.
        Case(
            "DeliveryWorkerFunction",
            "delivery_worker.py",
            {},
            lambda r: r == {"batchItemFailures": []},
            BRIDGE_CONFIG_FILE=str(routes),
            BRIDGE_CONFIG_OVERLAY="",
        ),
        # Its events (one batch of queued Braze calls a round, the floor's apart) are made before the rounds.
        Case("SendWorkerFunction", "send_worker.py", {}, lambda r: r == {"batchItemFailures": []}),
        # One stored reply a round (the floor's apart), forwarded to a kintone replies sink.
        Case(
            "InboundMailFunction",
            "inbound_mail.py",
            {},
            lambda r: r == {"outcomes": ["unmatched"]},
            BRIDGE_CONFIG_FILE=str(replies),
            BRIDGE_CONFIG_OVERLAY="",
        ),
        Case(
            "SweeperFunction",
            "sweeper.py",
            {"source": "aws.events", "detail-type": "Scheduled Event"},
            # Its 64 shard queries all the same, and nothing to move on: every function here is given an hour's
            # grace (main), so no delivery made within the bench (the worker's, sink deliveries) is due.
            # (the floor answers how many it found due).
            lambda r: r in ({"requeued": 0, "dead_lettered": 0, "stuck": 0}, {"due": 0}),
        ),
    ]


def queue_deliveries(runs: list[tuple[Case, list[str], list[str], dict[str, str], Path]], moto: MotoProcess) -> None:
    """One pending delivery a round for the delivery worker and one for its floor (a delivery claimed and
    settled by one is not the other's to claim), each queued by the relay's async route (its 202 checked),
    and the queue's messages made into their SQS events."""
    relay = next(r for r in runs if r[0].function == "RelayFunction")
    worker = next(r for r in runs if r[0].function == "DeliveryWorkerFunction")
    hook = json.loads(relay[4].read_text())
    hook["rawPath"] = hook["requestContext"]["http"]["path"] = "/relay/bench-async"
    hook["pathParameters"] = {"route": "bench-async"}
    hook_file = relay[4].with_name("relay-async.json")
    for i in range(2 * RUNS):
        hook["body"] = json.dumps({"email": f"user{i}@example.com"})
        hook_file.write_text(json.dumps(hook))
        _, _, answer = run(["-c", PROBE, relay[1][2], str(hook_file), "RelayFunction"], relay[3])
        if answer.get("statusCode") != 202:
            raise RuntimeError(f"the async relay answered {str(answer)[:500]}")
    sqs = moto.client("sqs")
    bodies: list[str] = []
    while len(bodies) < 2 * RUNS:
        got = sqs.receive_message(QueueUrl=worker[3]["DELIVERY_QUEUE_URL"], MaxNumberOfMessages=10)
        bodies += [m["Body"] for m in got.get("Messages", [])]
    events = [sqs_batch(b, "DeliveryQueue") for b in bodies]
    worker[0].rounds, worker[0].floor_rounds = events[:RUNS], events[RUNS:]


BRAZE_RECIPIENTS = 3  # calls queued by one send, made by the worker in one batch


def queue_send_jobs(
    runs: list[tuple[Case, list[str], list[str], dict[str, str], Path]], moto: MotoProcess, sandbox: Sandbox
) -> list[str]:
    """One batch of queued Braze calls a round for the send worker and one for its floor: each batch is one
    `POST /mail/send` of BRAZE_RECIPIENTS Braze recipients that Braze refused for now (503, not carried
    out), its 202 checked, so their calls went to the send queue as `pending`. Returns the dispatch ids."""
    send = next(r for r in runs if r[0].function == "SendFunction")
    worker = next(r for r in runs if r[0].function == "SendWorkerFunction")
    queue = send[3]["SEND_QUEUE_URL"]
    sqs = moto.client("sqs")
    sqs.purge_queue(QueueUrl=queue)
    faults = f"{sandbox.url}/_sandbox/braze/faults"
    requests.post(faults, json={"count": 1000, "status": 503}, timeout=5).raise_for_status()
    event = json.loads(send[4].read_text())
    event_file = send[4].with_name("send-braze.json")
    env = {**send[3], "SEND_DEADLINE_SECONDS": "1.2"}  # one try, then queued
    dispatches: list[str] = []
    for i in range(2 * RUNS):
        recipients = [{"email": f"b{i}-{n}@example.com", "user_id": f"bench-{i}-{n}"} for n in range(BRAZE_RECIPIENTS)]
        event["body"] = json.dumps({"provider": "braze", "template_id": "bench-campaign", "to": recipients})
        event_file.write_text(json.dumps(event))
        _, _, answer = run(["-c", PROBE, send[1][2], str(event_file), "SendFunction"], env)
        body = json.loads(answer.get("body") or "{}")
        if answer.get("statusCode") != 202 or {r["status"] for r in body.get("recipients", [])} != {"pending"}:
            raise RuntimeError(f"the Braze send answered {str(answer)[:500]}")
        dispatches.append(body["dispatch_id"])
    requests.delete(faults, timeout=5).raise_for_status()
    jobs: dict[str, list[dict[str, Any]]] = {d: [] for d in dispatches}
    while sum(map(len, jobs.values())) < 2 * RUNS * BRAZE_RECIPIENTS:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            jobs[json.loads(m["Body"])["dispatch_id"]].append(m)
    batches = [sqs_events(jobs[d], "SendQueue") for d in dispatches]
    worker[0].rounds, worker[0].floor_rounds = batches[:RUNS], batches[RUNS:]
    return dispatches


def store_replies(runs: list[tuple[Case, list[str], list[str], dict[str, str], Path]], moto: MotoProcess) -> None:
    """One stored reply a round for the inbound mail function and one for its floor, stored as SES's S3
    action stores it: a reply to a message the bridge never sent (its In-Reply-To looked up, not found)."""
    inbound = next(r for r in runs if r[0].function == "InboundMailFunction")
    s3 = moto.client("s3")
    stored = []
    for i in range(2 * RUNS):
        message = EmailMessage()
        message["From"] = "taro@example.com"
        message["To"] = "info@mail.example.co.jp"
        message["Subject"] = f"Re: spring campaign {i} {time.time_ns()}"
        message["In-Reply-To"] = f"<bench{i}-{time.time_ns()}@ismtpd.sendgrid.net>"
        message.set_content("了解しました。来週伺います。\n\n> 元の本文\n", charset="iso-2022-jp")
        stored.append(put_and_event(s3, message.as_bytes()))
    inbound[0].rounds, inbound[0].floor_rounds = stored[:RUNS], stored[RUNS:]


def reply_id(event: dict[str, Any]) -> str:
    key = event["Records"][0]["s3"]["object"]["key"]
    return "rp_" + hashlib.sha256(f"{BUCKET}\x00{key}".encode()).hexdigest()[:26]


def check_side_effects(case: dict[str, Case], moto: MotoProcess, sandbox: Sandbox, dispatches: list[str]) -> None:
    """What the rounds' calls did, for the cases whose answer says little: every queued Braze call made once
    and its recipient settled; every reply stored and its sink delivery stored."""
    dynamodb = moto.session().resource("dynamodb", endpoint_url=moto.endpoint)
    sent = requests.get(f"{sandbox.url}/_sandbox/braze/sent", timeout=5).json()
    if len(sent) != 2 * RUNS * BRAZE_RECIPIENTS:
        raise RuntimeError(f"Braze holds {len(sent)} sends; expected {2 * RUNS * BRAZE_RECIPIENTS}")
    messages = dynamodb.Table("MessagesTable")
    for dispatch in dispatches:
        items = messages.query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :r)",
            ExpressionAttributeValues={":p": f"MSG#{dispatch}", ":r": "R#"},
            ConsistentRead=True,
        )["Items"]
        if [i["status"] for i in items] != ["accepted"] * BRAZE_RECIPIENTS:
            raise RuntimeError(f"the recipients of {dispatch} are {[i['status'] for i in items]}")
    inbound = case["InboundMailFunction"]
    deliveries = dynamodb.Table("DeliveriesTable")
    for event in inbound.rounds + inbound.floor_rounds:
        rid = reply_id(event)
        if "Item" not in messages.get_item(Key={"pk": f"REPLY#{rid}", "sk": "R"}, ConsistentRead=True):
            raise RuntimeError(f"reply {rid} was not stored")
    for event in inbound.rounds:
        rid = reply_id(event)
        delivery = "dl_" + hashlib.sha256(f"sink:bench-replies\x00{rid}".encode()).hexdigest()[:26]
        if "Item" not in deliveries.get_item(Key={"pk": delivery, "sk": "D"}, ConsistentRead=True):
            raise RuntimeError(f"the sink delivery of reply {rid} was not stored")
    for event in inbound.floor_rounds:
        delivery = f"sink-bench-replies-{reply_id(event)}"
        if "Item" not in deliveries.get_item(Key={"pk": delivery, "sk": "D"}, ConsistentRead=True):
            raise RuntimeError(f"the floor's sink delivery {delivery} was not stored")


def main() -> dict[str, dict[str, float]]:
    template = Template()
    resolver = Resolver(template, XRAY_SDK)
    moto = MotoProcess().start()
    sandbox = Sandbox(port=0).start()
    workdir = Path(tempfile.mkdtemp(prefix="first-call-"))
    try:
        create_resources(template, resolver, moto)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
        base.pop("PYTHONDONTWRITEBYTECODE", None)  # any value, "0" too, stops Python writing bytecode
        compile_like_the_layer()
        env_json = load_env_json()
        runs: list[tuple[Case, list[str], list[str], dict[str, str], Path]] = []
        for case in cases(sandbox, workdir):
            spec = template.functions()[case.function]
            env = {
                **base,
                **runtime_environment(spec, moto.env()),
                **function_environment(
                    spec, resolver, env_json=env_json, shell={}, addresses={DEFAULT_SANDBOX_ADDRESS: sandbox.url}
                ),
                **case.env,
                # Deployed, not `sam local` (env.json turns the Tracer off): the template's EnableXRaySdk decides,
                # inside a trace whose segments go to a daemon address nothing listens on (UDP: nothing waits).
                "POWERTOOLS_TRACE_DISABLED": "false" if resolver.condition("XRaySdk") else "true",
                "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                "POWERTOOLS_METRICS_NAMESPACE": "MartechBridge/bench",
                # env.json's 5 s would make the deliveries queued for later rounds (the delivery worker's, the
                # sink deliveries of sends, events and replies) due for the sweeper, whose floor moves none on.
                "SWEEP_GRACE_SECONDS": "3600",
            }
            env.pop("AWS_SAM_LOCAL", None)
            event_file = workdir / f"{case.function}.json"
            event_file.write_text(json.dumps(case.event))
            probe = ["-c", PROBE, str(spec.code_uri), str(event_file), case.function]
            floor = [str(FLOORS / case.floor), str(event_file)]
            runs.append((case, probe, floor, env, event_file))
        queue_deliveries(runs, moto)
        dispatches = queue_send_jobs(runs, moto, sandbox)
        store_replies(runs, moto)
        samples: dict[str, dict[str, list[float]]] = {
            c.function: {"ms": [], "floor_ms": [], "rss": [], "floor_rss": []} for c, *_ in runs
        }
        # Rounds interleave each function with its floor, so both see the same machine load.
        for i in range(RUNS):
            for case, probe, floor, env, event_file in runs:
                if case.rounds:
                    event_file.write_text(json.dumps(case.rounds[i]))
                ms, rss, answer = run(probe, env)
                if case.floor_rounds:
                    event_file.write_text(json.dumps(case.floor_rounds[i]))
                if not case.accept(answer):
                    raise RuntimeError(f"{case.function} answered {str(answer)[:500]}")
                floor_ms, floor_rss, floor_answer = run(floor, env)
                if not case.accept(floor_answer):
                    raise RuntimeError(f"floor of {case.function} answered {str(floor_answer)[:500]}")
                row = samples[case.function]
                row["ms"].append(ms)
                row["floor_ms"].append(floor_ms)
                row["rss"].append(rss)
                row["floor_rss"].append(floor_rss)
        kintone = sandbox.provider("kintone")
        for app in ("1", "2"):  # every relay, delivery worker and floor added its record
            records = len(kintone.apps[app].records)  # type: ignore[attr-defined]
            if records != 2 * RUNS:
                raise RuntimeError(
                    f"kintone app {app} holds {records} records after {RUNS} rounds; expected {2 * RUNS}"
                )
        check_side_effects({c.function: c for c, *_ in runs}, moto, sandbox, dispatches)
    finally:
        sandbox.stop()
        moto.stop()
    results: dict[str, dict[str, float]] = {}
    print(f"First call (import + first invocation), median of {RUNS} fresh interpreters, beside a hand-written floor")
    print(f"  {'function':24} {'ms':>8} {'floor ms':>9} {'ratio':>6} {'RSS MB':>7} {'floor RSS':>9}")
    for name, row in samples.items():
        ms, floor_ms = statistics.median(row["ms"]), statistics.median(row["floor_ms"])
        results[name] = {
            "ms": round(ms, 1),
            "floor_ms": round(floor_ms, 1),
            "ratio": round(ms / floor_ms, 3),
            "peak_rss_mb": round(statistics.median(row["rss"]), 1),
            "floor_peak_rss_mb": round(statistics.median(row["floor_rss"]), 1),
        }
        r = results[name]
        print(
            f"  {name:24} {ms:8.1f} {floor_ms:9.1f} {r['ratio']:6.2f} {r['peak_rss_mb']:7.1f} "
            f"{r['floor_peak_rss_mb']:9.1f}"
        )
    return results


if __name__ == "__main__":
    figures = main()
    out = REPO_ROOT / "bench" / "results.json"
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing["first_call"] = figures
    out.write_text(json.dumps(existing, indent=2) + "\n")
