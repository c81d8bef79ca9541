"""Faults between every two steps of every delivery flow (sync relay with and without a key, async relay, the
worker, sink forwarding, redrive). Each flow is run once to count its AWS calls; then, for every call in
turn, it is run again with that call throttled (not carried out), timed out (carried out, but the caller
sees an error), and with the process killed just before and just after it. Then the sweeper and the worker
run (the clock moved past every lease and grace period) and the invariants are checked for the delivery:

- nothing stranded: it is final (delivered, rejected or failed);
- failed means a DLQ message names it, and its flag is cleared;
- nothing doubled: a non-idempotent target acted at most once, and at most one record exists;
- nothing lost: a caller answered 2xx ends with the target's effect (or, for a non-idempotent call that may
  have gone out, `failed` / `outcome_unknown`, which is the operator's to check);
- every answer is backed by a record: a 200 by a delivered one, a 502 by a rejected or failed one, a 202 by
  one that exists.

Real components: moto server for DynamoDB and SQS, the sandbox's generic HTTP API as the target over
loopback HTTP. The faults are botocore event hooks on the bridge's own clients."""

import io
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import requests
from botocore.exceptions import ClientError, ReadTimeoutError
from martech_bridge import config, dependencies
from martech_bridge.adapters import aws, delivery_store
from martech_bridge.adapters.delivery_queue import parse_message
from martech_bridge.deliveries import Engine, replay_delivery
from martech_bridge.errors import BridgeError
from martech_bridge.models.delivery import Delivery, DeliveryStatus, FailureReason
from martech_bridge.observability import metrics
from martech_bridge.relay import Webhook, relay

from devkit.sandbox.server import Sandbox
from devkit.template import local_queue_url

MODES = ("throttle", "timeout", "kill_before", "kill_after")


class Killed(BaseException):
    """The process died here (a Lambda timeout, an out-of-memory kill): nothing after it runs."""


class AwsFaults:
    """Counts the bridge's AWS calls and fails call number `at` in the planned way."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.at: int | None = None
        self.mode = ""
        self.enabled = False

    def install(self) -> None:
        for client in (aws.client("sqs"), aws.dynamodb_resource().meta.client):
            client.meta.events.register("before-call.*.*", self._before)
            client.meta.events.register("after-call.*.*", self._after)

    def plan(self, at: int | None, mode: str = "") -> None:
        self.calls, self.at, self.mode, self.enabled = [], at, mode, True

    def _before(self, model: Any, **_: Any) -> None:
        if not self.enabled:
            return
        self.calls.append(model.name)
        if len(self.calls) == self.at:
            if self.mode == "throttle":
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected"}}, model.name)
            if self.mode == "kill_before":
                raise Killed(model.name)

    def _after(self, model: Any, **_: Any) -> None:
        if not self.enabled or len(self.calls) != self.at:
            return
        if self.mode == "timeout":
            raise ReadTimeoutError(endpoint_url="moto (injected)")
        if self.mode == "kill_after":
            raise Killed(model.name)


@dataclass
class World:
    engine: Engine
    faults: AwsFaults
    sandbox: Sandbox
    moto: Any
    offset: list[timedelta] = field(default_factory=lambda: [timedelta(0)])

    def advance(self, by: timedelta) -> None:
        self.offset[0] += by

    def effects(self, marker: str) -> int:
        sent = requests.get(f"{self.sandbox.url}/_sandbox/http/sent", timeout=5).json()
        return sum(1 for s in sent if isinstance(s.get("body"), dict) and s["body"].get("n") == marker)

    @cached_property
    def sqs(self) -> Any:
        """Clients of the test's own: their calls are never counted or faulted."""
        return self.moto.client("sqs")

    def table(self) -> Any:
        return self._table

    @cached_property
    def _table(self) -> Any:
        resource = self.moto.session().resource("dynamodb", endpoint_url=self.moto.endpoint)
        return resource.Table(self.engine.store._table_name)

    def deliveries(self, marker: str) -> list[Delivery]:
        items = self.table().scan(
            FilterExpression="contains(payload_json, :m)", ExpressionAttributeValues={":m": marker}
        )["Items"]
        return [self.engine.store._from_item(i) for i in items]

    def dead_letters(self) -> list[str]:
        sqs, url, ids = self.sqs, local_queue_url("DeliveryDLQ"), []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            for m in batch:
                ids.append(json.loads(m["Body"])["delivery_id"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return ids

    def recover(self) -> None:
        """What happens after the crash: time passes, the sweeper runs, the worker takes the messages."""
        sqs, url = self.sqs, local_queue_url("DeliveryQueue")
        for _ in range(8):
            self.advance(timedelta(hours=1))
            if self._open():
                self.engine.sweep(now=delivery_store.now())
            handled = 0
            while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            ):
                for message in batch:
                    self.engine.process(parse_message(message["Body"]), lambda: 30)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    handled += 1
            if not handled and not self._open():
                return

    def _open(self) -> bool:
        return bool(self.table().scan(FilterExpression="attribute_exists(gsi1pk)", Limit=1000)["Items"])

    def purge(self) -> None:
        sqs = self.sqs
        for name in ("DeliveryQueue", "DeliveryDLQ"):
            url = local_queue_url(name)
            while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            ):
                for m in batch:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class _RawTarget:
    """A target that answers 200 with JSON nothing should accept: NaN, 1e400 and a 5,000-digit integer."""

    BODY = b'{"id": ' + b"9" * 5000 + b', "score": NaN, "big": 1e400, "name": "\\ud800"}'

    def start(self) -> "_RawTarget":
        body = self.BODY

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/answer"
        return self

    def stop(self) -> None:
        self.server.shutdown()


def _route(method: str, mode: str, sandbox: Sandbox) -> dict[str, Any]:
    return {
        "auth": {"type": "none"},
        "target": {
            "type": "http",
            "method": method,
            "url": f"{sandbox.url}/http/effects",
            "secret_headers": {"Authorization": "local-http-token"},
            "secret_header_format": {"Authorization": "Bearer {}"},
            "timeout_seconds": 3,
        },
        "mapping": {"body": {"n": "n"}},
        "delivery": {"mode": mode, "deadline_seconds": 3, "max_attempts": 4, "backoff_base_seconds": 1},
    }


@pytest.fixture(scope="module")
def world(moto_server: Any, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    raw = _RawTarget().start()
    needs_id = _route("PUT", "async", sandbox)
    needs_id["target"]["url"] = f"{sandbox.url}/http/items/{{id}}"
    needs_id["mapping"]["url_params"] = {"id": "id"}
    joined = _route("POST", "sync", sandbox)
    joined["mapping"] = {"body": {"n": "n", "joined": "join(',', n)"}}
    raw_route = _route("PUT", "sync", sandbox)
    raw_route["target"]["url"] = raw.url
    routes = {
        "version": 1,
        "routes": {
            **{
                f"{method.lower()}-{mode}": _route(method, mode, sandbox)
                for method in ("POST", "PUT")
                for mode in ("sync", "async")
            },
            "needs-id": needs_id,
            "joined": joined,
            "raw-answer": raw_route,
        },
        "sinks": [
            {"name": "effects", "target": _route("POST", "async", sandbox)["target"], "mapping": {"body": {"n": "n"}}}
        ],
    }
    path = Path(tmp_path_factory.mktemp("faults")) / "routes.json"
    path.write_text(json.dumps(routes))
    patch = pytest.MonkeyPatch()
    env = {
        **moto_server.env(),
        "STAGE": "local",
        "ALLOW_PLAINTEXT_SECRETS": "true",
        "BRIDGE_CONFIG_FILE": str(path),
        "DELIVERIES_TABLE": "DeliveriesTable",
        "DELIVERY_QUEUE_URL": local_queue_url("DeliveryQueue"),
        "DELIVERY_DLQ_URL": local_queue_url("DeliveryDLQ"),
        "SWEEP_GRACE_SECONDS": "5",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "MartechBridge/test",
        "POWERTOOLS_SERVICE_NAME": "martech-bridge",
    }
    for key, value in env.items():
        patch.setenv(key, value)
    config.reset()
    dependencies.reset()
    offset = [timedelta(0)]
    real_now = delivery_store.now
    patch.setattr(delivery_store, "now", lambda: real_now() + offset[0])
    faults = AwsFaults()
    faults.install()
    yield World(dependencies.delivery_engine(), faults, sandbox, moto_server, offset)
    raw.stop()
    patch.undo()
    config.reset()
    dependencies.reset()


# ---------------------------------------------------------------- the flows
Answer = tuple[int, dict[str, Any]] | None


def _hook(route: str, marker: str, key: str | None = None) -> Webhook:
    headers = {"content-type": "application/json", **({"idempotency-key": key} if key else {})}
    return Webhook(route, "POST", headers, {}, "", json.dumps({"n": marker}).encode())


def _answer(call: Callable[[], Any]) -> Answer:
    reply = call()
    return (reply.status, reply.body)


def sync_keyless(world: World, method: str) -> Callable[[str], Answer]:
    return lambda marker: _answer(lambda: relay(world.engine, _hook(f"{method}-sync", marker), lambda: 20))


def sync_keyed(world: World, method: str) -> Callable[[str], Answer]:
    return lambda marker: _answer(lambda: relay(world.engine, _hook(f"{method}-sync", marker, key=marker), lambda: 20))


def async_relay(world: World, method: str) -> Callable[[str], Answer]:
    return lambda marker: _answer(lambda: relay(world.engine, _hook(f"{method}-async", marker, key=marker), lambda: 20))


def worker_step(world: World, method: str) -> Callable[[str], Answer]:
    """The worker's step on a stored, queued delivery (set up without faults)."""

    def run(marker: str) -> Answer:
        enabled, world.faults.enabled = world.faults.enabled, False
        relay(world.engine, _hook(f"{method}-async", marker, key=marker), lambda: 20)
        world.purge()
        world.faults.enabled = enabled
        (delivery,) = world.deliveries(marker)
        world.engine.process(delivery.delivery_id, lambda: 30)
        return None

    return run


def sink_forwarding(world: World, method: str) -> Callable[[str], Answer]:
    """What the event worker does for each event a sink takes."""

    def run(marker: str) -> Answer:
        now = delivery_store.now()
        world.engine.queue_new(
            Delivery(
                delivery_id=f"dl_sink_{marker}",
                route="sink:effects",
                target="POST sandbox",
                status=DeliveryStatus.PENDING,
                max_attempts=4,
                created_at=now,
                updated_at=now,
                request_hash="x",
                payload={"n": marker},
            )
        )
        return None

    return run


def redrive(world: World, method: str) -> Callable[[str], Answer]:
    """An operator replays a delivery that gave up (set up without faults: the target refused twice)."""

    def run(marker: str) -> Answer:
        enabled, world.faults.enabled = world.faults.enabled, False
        requests.post(f"{world.sandbox.url}/_sandbox/http/faults", json={"count": 1, "status": 400}, timeout=5)
        status, _ = _answer(lambda: relay(world.engine, _hook(f"{method}-sync", marker, key=marker), lambda: 20))
        assert status == 502
        world.purge()
        world.faults.enabled = enabled
        (delivery,) = world.deliveries(marker)
        replay_delivery(world.engine, delivery.delivery_id)
        return None

    return run


FLOWS = {
    "sync_keyless": sync_keyless,
    "sync_keyed": sync_keyed,
    "async_relay": async_relay,
    "worker": worker_step,
    "sink": sink_forwarding,
    "redrive": redrive,
}


def _run(world: World, flow: Callable[[str], Answer], marker: str) -> tuple[Answer, str | None]:
    metrics.clear_metrics()  # a Lambda flushes them per invocation; here they would pile up
    try:
        return flow(marker), None
    except Killed as killed:
        return None, f"killed at {killed}"
    except BridgeError as error:  # the caller's answer: a 503
        return None, f"{error.status} {error.code}"


def _check(world: World, marker: str, answer: Answer, idempotent: bool, where: str) -> None:
    found = world.deliveries(marker)
    effects = world.effects(marker)
    dead = set(world.dead_letters())
    assert len(found) <= 1, f"{where}: {len(found)} records for one webhook"
    if not idempotent:
        assert effects <= 1, f"{where}: a non-idempotent target acted {effects} times"
    if answer is not None and answer[0] in (200, 202, 502):
        assert found, f"{where}: answered {answer[0]} without a record"
    if not found:
        return
    (delivery,) = found
    assert delivery.status.final, f"{where}: stranded {delivery.status.value}"
    assert not delivery.dead_letter_pending, f"{where}: failed without its DLQ message"
    if delivery.status == DeliveryStatus.FAILED:
        assert delivery.delivery_id in dead, f"{where}: failed ({delivery.failure}) but no DLQ message"
    if delivery.status == DeliveryStatus.DELIVERED:
        assert effects >= 1, f"{where}: delivered but the target never acted"
    if answer is not None:
        status = answer[0]
        expected = {200: {"delivered"}, 502: {"rejected", "failed"}}.get(status)
        if expected and delivery.response_status == status:
            assert delivery.status.value in expected, f"{where}: answered {status}, record says {delivery.status}"
        if status == 202 and delivery.status != DeliveryStatus.DELIVERED:
            assert delivery.failure == FailureReason.OUTCOME_UNKNOWN, f"{where}: accepted, then {delivery.failure}"


@pytest.mark.parametrize("method", ["post", "put"])
@pytest.mark.parametrize("flow_name", list(FLOWS))
def test_every_aws_call_failing_or_the_process_dying_leaves_no_delivery_stranded_lost_or_doubled(
    world: World, flow_name: str, method: str
) -> None:
    flow = FLOWS[flow_name](world, method)
    idempotent = method == "put"
    world.purge()
    # A run without faults: how many AWS calls the flow makes, and that it works at all.
    world.faults.plan(None)
    marker = uuid.uuid4().hex
    answer, error = _run(world, flow, marker)
    assert error is None
    steps = len(world.faults.calls)
    assert steps >= 1
    world.faults.enabled = False
    world.recover()
    _check(world, marker, answer, idempotent, f"{flow_name}/{method} without faults")
    assert world.effects(marker) >= 1 or flow_name == "redrive" and world.effects(marker) == 0
    for at in range(1, steps + 1):
        for mode in MODES:
            world.purge()
            marker = uuid.uuid4().hex
            world.faults.plan(at, mode)
            answer, _ = _run(world, flow, marker)
            world.faults.enabled = False
            world.recover()
            _check(world, marker, answer, idempotent, f"{flow_name}/{method}: {mode} at AWS call {at}")


def test_the_flows_are_faulted_at_each_of_their_steps(world: World) -> None:
    """The suite above is only as good as the steps it reaches: each flow makes the calls it should."""
    world.faults.plan(None)
    sync_keyless(world, "post")(uuid.uuid4().hex)
    assert world.faults.calls == ["PutItem"]  # keyless sync: written once, after the call
    world.faults.plan(None)
    sync_keyed(world, "post")(uuid.uuid4().hex)
    assert world.faults.calls == ["PutItem", "UpdateItem"]  # claim, then record
    world.faults.plan(None)
    async_relay(world, "post")(uuid.uuid4().hex)
    assert world.faults.calls == ["PutItem", "SendMessage"]
    world.faults.enabled = False


# ---------------------------------------------------------------- each wrong-today case, as a regression
def test_a_repeat_is_answered_from_the_lease_and_recovers_a_dead_attempt(world: World) -> None:
    marker = uuid.uuid4().hex
    world.purge()
    world.faults.plan(2, "kill_before")  # killed after the target call, before its record
    _, error = _run(world, sync_keyed(world, "post"), marker)
    world.faults.enabled = False
    assert error and error.startswith("killed")
    status, body, headers = _reply(relay(world.engine, _hook("post-sync", marker, key=marker), lambda: 20))
    assert status == 409 and body["error"]["code"] == "idempotency_in_progress"
    assert 20 <= int(headers["Retry-After"]) <= 40  # the lease's remaining time, not a fixed 2 s
    world.advance(timedelta(minutes=1))  # the lease has lapsed: its holder is dead
    status, body, _ = _reply(relay(world.engine, _hook("post-sync", marker, key=marker), lambda: 20))
    assert status == 202 and body["status"] == "queued"
    world.recover()
    (delivery,) = world.deliveries(marker)
    # POST is not idempotent and the first attempt may have reached the target: never resent blindly.
    assert (delivery.status, delivery.failure) == (DeliveryStatus.FAILED, FailureReason.OUTCOME_UNKNOWN)
    assert world.effects(marker) == 1 and delivery.delivery_id in world.dead_letters() + [delivery.delivery_id]


def test_a_mapping_that_fails_on_the_payload_is_a_422_naming_it(world: World) -> None:
    world.faults.enabled = False
    with pytest.raises(BridgeError) as caught:
        relay(world.engine, _hook("joined", "5"), lambda: 20)  # join() takes an array; the payload has a string
    assert caught.value.status == 422 and caught.value.code == "mapping_error"
    assert caught.value.details["field"] == "join(',', n)"


def test_a_targets_unusable_json_answer_is_not_our_error(world: World) -> None:
    world.faults.enabled = False
    reply = relay(world.engine, _hook("raw-answer", uuid.uuid4().hex), lambda: 20)
    assert reply.status == 200 and reply.body["status"] == "delivered"
    json.dumps(reply.body, allow_nan=False).encode("utf-8")  # our answer is JSON, and valid UTF-8


def test_a_payload_too_big_to_store_is_a_413_before_any_call(world: World) -> None:
    world.faults.enabled = False
    marker = uuid.uuid4().hex
    body = f"n={marker}&x=".encode() + b"%01" * 80_000  # 240 KB raw; stored as JSON, \u0001 is 6 bytes
    hook = Webhook("post-sync", "POST", {"content-type": "application/x-www-form-urlencoded"}, {}, "", body)
    with pytest.raises(BridgeError) as caught:
        relay(world.engine, hook, lambda: 20)
    assert caught.value.status == 413
    assert world.effects(marker) == 0 and not world.deliveries(marker)


def test_a_queued_delivery_whose_request_cannot_be_built_fails_to_the_dlq(world: World) -> None:
    world.faults.enabled = False
    world.purge()
    marker = uuid.uuid4().hex
    reply = relay(world.engine, Webhook("needs-id", "POST", {}, {}, "", json.dumps({"id": "x", "n": marker}).encode()), lambda: 20)
    assert reply.status == 202
    (delivery,) = world.deliveries(marker)
    # The payload no longer fits the mapping (as after a routes change): the worker cannot build the call.
    table = world.table()
    table.update_item(
        Key={"pk": delivery.delivery_id, "sk": "D"},
        UpdateExpression="SET payload_json = :p",
        ExpressionAttributeValues={":p": json.dumps({"n": marker})},
    )
    assert world.engine.process(delivery.delivery_id, lambda: 30) == "unbuildable"
    (failed,) = world.deliveries(marker)
    assert (failed.status, failed.failure) == (DeliveryStatus.FAILED, FailureReason.UNBUILDABLE)
    assert delivery.delivery_id in world.dead_letters()


def test_an_early_message_is_requeued_not_handed_back(world: World) -> None:
    world.faults.enabled = False
    world.purge()
    marker = uuid.uuid4().hex
    requests.post(f"{world.sandbox.url}/_sandbox/http/faults", json={"count": 1, "status": 503}, timeout=5)
    reply = relay(world.engine, _hook("put-sync", marker), lambda: 20)
    assert reply.status == 202  # retry later; a fresh delayed message is queued
    world.purge()
    (delivery,) = world.deliveries(marker)
    world.advance(-timedelta(hours=1))  # the message arrives long before its attempt is due
    try:
        assert world.engine.process(delivery.delivery_id, lambda: 30).startswith("not due")
    finally:
        world.advance(timedelta(hours=1))
    attributes = world.sqs.get_queue_attributes(
        QueueUrl=local_queue_url("DeliveryQueue"), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"  # a fresh message, delayed (at most 15 min)


def _reply(reply: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    return reply.status, reply.body, reply.headers


# ---------------------------------------------------------------- found by attacking the change
def test_a_queue_that_is_only_behind_is_not_flooded_and_nothing_is_failed_as_stuck(world: World) -> None:
    world.faults.enabled = False
    world.purge()
    marker = uuid.uuid4().hex
    assert relay(world.engine, _hook("post-async", marker, key=marker), lambda: 20).status == 202
    for _ in range(30):  # thirty sweeper runs of a backlog: the worker never gets to the message
        world.advance(world.engine.store.grace)
        world.engine.sweep(now=delivery_store.now())
    (delivery,) = world.deliveries(marker)
    assert delivery.status == DeliveryStatus.PENDING
    # Re-queued after 1, 2, 4, 8, 16 grace periods - not thirty copies (one more if the machine is so slow
    # that the real time spent adds up to another period).
    assert delivery.sweeps <= 6
    world.purge()
    world.advance(timedelta(days=2))  # past the route's max_age_seconds (1 day), still never attempted
    assert world.engine.sweep(now=delivery_store.now()).stuck >= 1
    (delivery,) = world.deliveries(marker)
    assert (delivery.status, delivery.failure) == (DeliveryStatus.FAILED, FailureReason.STUCK)
    assert delivery.delivery_id in world.dead_letters()


def test_a_target_quoting_our_credential_back_is_masked_in_the_answer_and_the_record(world: World) -> None:
    world.faults.enabled = False
    marker = uuid.uuid4().hex
    requests.post(
        f"{world.sandbox.url}/_sandbox/http/faults",
        json={"count": 1, "status": 401, "body": {"message": "bad credentials: Bearer local-http-token"}},
        timeout=5,
    )
    reply = relay(world.engine, _hook("put-sync", marker), lambda: 20)
    assert reply.status == 502
    (delivery,) = world.deliveries(marker)
    stored = msgspec.json.encode(delivery).decode()
    assert "local-http-token" not in json.dumps(reply.body) and "local-http-token" not in stored
    assert reply.body["error"]["message"].endswith("bad credentials: ***")


def test_a_long_url_value_is_recorded_clipped_not_refused_after_the_call(world: World) -> None:
    world.faults.enabled = False
    marker = uuid.uuid4().hex
    body = json.dumps({"id": "é" * 60_000, "n": marker}, ensure_ascii=False).encode()  # 360 KB as %C3%A9 in the URL
    reply = relay(world.engine, Webhook("needs-id", "POST", {}, {}, "", body), lambda: 20)
    assert reply.status == 202
    (delivery,) = world.deliveries(marker)
    assert len(delivery.target) <= 2048 and delivery.target.startswith("PUT ")


def test_a_blanket_redrive_leaves_outcome_unknown_deliveries_for_the_operator(world: World) -> None:
    from bridgectl.redrive import redrive as redrive_dlq
    from bridgectl.resources import StackResources

    world.purge()
    marker = uuid.uuid4().hex
    world.faults.plan(2, "kill_before")  # the POST went out; its record did not
    _run(world, sync_keyed(world, "post"), marker)
    world.faults.enabled = False
    world.recover()
    (delivery,) = world.deliveries(marker)
    assert delivery.failure == FailureReason.OUTCOME_UNKNOWN
    stack = StackResources(
        "DeliveriesTable", local_queue_url("DeliveryQueue"), local_queue_url("DeliveryDLQ"), endpoint_url=world.moto.endpoint
    )
    saved = dict(os.environ)  # the command points the process's environment at the stack
    try:
        summary = redrive_dlq(stack, out=io.StringIO())
        unknown = redrive_dlq(stack, include_outcome_unknown=True, out=io.StringIO())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert summary.examples.get("outcome unknown: check the target, then name it or pass --include-outcome-unknown") == delivery.delivery_id
    assert unknown.examples.get("redriven") == delivery.delivery_id
    world.recover()
    assert world.deliveries(marker)[0].status == DeliveryStatus.DELIVERED and world.effects(marker) == 2  # asked for
