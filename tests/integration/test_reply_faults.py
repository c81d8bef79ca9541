"""Faults between every two steps of the replies flow. The flow (one stored message in, a stored reply and
its sink delivery out) is run once to count its AWS calls (S3, DynamoDB, SQS); then, for every call in
turn, it is run again with that call throttled, timed out (carried out, the caller sees an error), and with
the process killed just before and just after it. Then it runs once more, as Lambda's retry of the failed
invocation does, and the deliveries recover (sweeper, worker). Invariants for the message:

- nothing lost: the reply is stored and its sink acted exactly once;
- nothing doubled: one reply item, one delivery, one effect at the target;
- nothing stranded: the delivery is delivered.

Real components: moto server for S3, DynamoDB and SQS, the sandbox's HTTP API as the sink's target; the
faults are botocore event hooks on the bridge's own clients (tests/integration/test_delivery_faults.py)."""

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from martech_bridge import config, dependencies
from martech_bridge.adapters import aws, delivery_store
from martech_bridge.errors import BridgeError
from martech_bridge.replies import receive, reply_id_for

from devkit.inbound import BUCKET
from devkit.sandbox.server import Sandbox
from devkit.template import local_queue_url
from tests.integration.test_delivery_faults import MODES, AwsFaults, Killed, World


class AllAwsFaults(AwsFaults):
    def install(self) -> None:
        super().install()
        aws.client("s3").meta.events.register("before-call.*.*", self._before)
        aws.client("s3").meta.events.register("after-call.*.*", self._after)


@pytest.fixture(scope="module")
def world(moto_server: Any, sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    routes = {
        "version": 1,
        "sinks": [
            {
                "name": "reply-effects",
                "source": "replies",
                "target": {
                    "type": "http",
                    "method": "PUT",
                    "url": f"{sandbox.url}/http/effects",
                    "secret_headers": {"Authorization": "local-http-token"},
                    "secret_header_format": {"Authorization": "Bearer {}"},
                    "timeout_seconds": 3,
                },
                "mapping": {"body": {"n": "subject", "text": "text"}},
                "delivery": {"mode": "async", "max_attempts": 4, "backoff_base_seconds": 1},
            }
        ],
    }
    path = Path(tmp_path_factory.mktemp("reply-faults")) / "routes.json"
    path.write_text(json.dumps(routes))
    patch = pytest.MonkeyPatch()
    env = {
        **moto_server.env(),
        "STAGE": "local",
        "ALLOW_PLAINTEXT_SECRETS": "true",
        "BRIDGE_CONFIG_FILE": str(path),
        "MESSAGES_TABLE": "MessagesTable",
        "DELIVERIES_TABLE": "DeliveriesTable",
        "DELIVERY_QUEUE_URL": local_queue_url("DeliveryQueue"),
        "DELIVERY_DLQ_URL": local_queue_url("DeliveryDLQ"),
        "INBOUND_MAIL_BUCKET": BUCKET,
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
    faults = AllAwsFaults()
    faults.install()
    yield World(dependencies.delivery_engine(), faults, sandbox, moto_server, offset)
    patch.undo()
    config.reset()
    dependencies.reset()


def stored_reply(world: World, marker: str) -> str:
    """A reply to a message the bridge never sent (In-Reply-To looked up and not found), stored as SES does."""
    message = EmailMessage()
    message["From"] = "taro@example.com"
    message["To"] = "info@mail.example.co.jp"
    message["Subject"] = marker
    message["In-Reply-To"] = f"<{marker}@ismtpd.sendgrid.net>"
    message.set_content("了解しました。\n\n> 元の本文\n", charset="iso-2022-jp")
    key = f"inbound/{marker}"
    world.moto.client("s3").put_object(Bucket=BUCKET, Key=key, Body=message.as_bytes())
    return key


def handle(key: str) -> str:
    return receive(
        BUCKET, key, messages=dependencies.message_store(), store=dependencies.reply_store(), max_bytes=1_048_576
    )


def reply_items(world: World, key: str) -> list[dict[str, Any]]:
    table = world.moto.session().resource("dynamodb", endpoint_url=world.moto.endpoint).Table("MessagesTable")
    found = table.get_item(Key={"pk": f"REPLY#{reply_id_for(BUCKET, key)}", "sk": "R"}, ConsistentRead=True)
    return [found["Item"]] if "Item" in found else []


def calls_of_one_run(world: World) -> list[str]:
    key = stored_reply(world, f"count-{uuid.uuid4().hex}")
    world.faults.plan(None)
    handle(key)
    world.faults.enabled = False
    world.recover()
    return list(world.faults.calls)


def test_the_flow_makes_the_calls_it_is_tested_against(world: World) -> None:
    calls = calls_of_one_run(world)
    # the reply looked up, the object read, the referenced id looked up per provider, the reply written,
    # the delivery stored and queued
    assert calls[:2] == ["GetItem", "GetObject"] and calls.count("Query") == 3
    assert calls[-3:] == ["PutItem", "PutItem", "SendMessage"]


@pytest.fixture(scope="module")
def total_calls(world: World) -> int:
    return len(calls_of_one_run(world))


@pytest.mark.parametrize("mode", MODES)
def test_a_fault_at_any_call_loses_and_doubles_nothing(world: World, total_calls: int, mode: str) -> None:
    total = total_calls
    for at in range(1, total + 1):
        marker = f"r-{uuid.uuid4().hex}"
        key = stored_reply(world, marker)
        world.faults.plan(at, mode)
        try:
            handle(key)
        except (BridgeError, Killed):
            pass  # the invocation failed: Lambda invokes it again
        world.faults.enabled = False
        assert handle(key) == "unmatched", (at, mode)  # the retry
        world.recover()
        where = f"fault {mode} at call {at} ({world.faults.calls[at - 1] if at <= len(world.faults.calls) else '?'})"
        assert len(reply_items(world, key)) == 1, where
        deliveries = world.deliveries(marker)
        assert len(deliveries) == 1 and deliveries[0].status.value == "delivered", where
        assert world.effects(marker) == 1, where
