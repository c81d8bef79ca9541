"""Faults between every two steps of the re-subscription's releases and of the send quota. Each flow is run once
to count its AWS calls; then, for every call in turn, it is run again with that call throttled (not carried
out), timed out (carried out, but the caller sees an error), and with the process killed just before and just
after it. Then what recovery does runs (the send worker takes every release check) and the invariants hold:

releases - nothing stranded (a subscribed state has no release left `pending`), nothing lost (the address is
off the sandbox's lists whenever the state says subscribed), nothing doubled (one history entry per provider
and re-subscription), every answer backed by the state (a 200 means the state is subscribed);
quotas - the count never passes the limit, never misses a send that was let through, never counts one
twice, and each warning is mailed at most once.

Real components: moto server for DynamoDB and SQS, the sandbox's ESPs over loopback HTTP. The faults are
botocore event hooks on the bridge's own clients (tests/integration/test_delivery_faults.py's)."""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from martech_bridge import config, dependencies, quotas
from martech_bridge.adapters import aws
from martech_bridge.adapters.send_queue import SendQueue, decode_release
from martech_bridge.config import get_settings
from martech_bridge.errors import BridgeError, QuotaExceeded
from martech_bridge.models.routes import ProviderSending
from martech_bridge.models.subscription import SubscriptionUpdate
from martech_bridge.observability import metrics
from martech_bridge.releases import resubscribe, resume

from devkit.sandbox.server import Sandbox
from devkit.template import local_queue_url
from tests.integration.test_delivery_faults import MODES, AwsFaults, Killed

DOMAIN = "mail.example.co.jp"


class Faults(AwsFaults):
    def install(self) -> None:
        super().install()
        # The subscription store writes through the low-level DynamoDB client (transactions).
        aws.client("dynamodb").meta.events.register("before-call.*.*", self._before)
        aws.client("dynamodb").meta.events.register("after-call.*.*", self._after)


@pytest.fixture(scope="module")
def faults(moto_server: Any, sandbox: Sandbox) -> Iterator[Faults]:
    patch = pytest.MonkeyPatch()
    env = {
        **moto_server.env(),
        "STAGE": "local",
        "ALLOW_PLAINTEXT_SECRETS": "true",
        "SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
        "MESSAGES_TABLE": "MessagesTable",
        "SEND_QUEUE_URL": local_queue_url("SendQueue"),
        "RELEASE_CHECK_DELAY_SECONDS": "0",
        "SENDGRID_API_KEY": "SG.local-sandbox-key",
        "SENDGRID_BASE_URL": f"{sandbox.url}/sendgrid",
        "INFOBIP_API_KEY": "local-infobip-key",
        "INFOBIP_BASE_URL": f"{sandbox.url}/infobip",
        "BRAZE_API_KEY": "",
        "DEFAULT_FROM_EMAIL": f"no-reply@{DOMAIN}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "MartechBridge/test",
        "POWERTOOLS_SERVICE_NAME": "martech-bridge",
    }
    for key, value in env.items():
        patch.setenv(key, value)
    config.reset()
    dependencies.reset()
    injected = Faults()
    injected.install()
    yield injected
    patch.undo()
    config.reset()
    dependencies.reset()


def _checks(moto_server: Any) -> list[tuple[str, int]]:
    sqs, url, found = moto_server.client("sqs"), local_queue_url("SendQueue"), []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            check = decode_release(m["Body"])
            if check is not None:
                found.append(check)
    return found


def _listed(sandbox: Sandbox, email: str) -> bool:
    sendgrid = requests.get(f"{sandbox.url}/_sandbox/sendgrid/suppressions", timeout=5).json()
    infobip = requests.get(f"{sandbox.url}/_sandbox/infobip/suppressions", timeout=5).json()
    return any(email in v for v in sendgrid.values()) or any(s["emailAddress"] == email for s in infobip)


def _resubscribe(sandbox: Sandbox, email: str) -> tuple[dict[str, Any] | None, str | None]:
    metrics.clear_metrics()
    try:
        state, _, released = resubscribe(
            email,
            SubscriptionUpdate(subscribed=True),
            settings=get_settings(),
            store=dependencies.subscription_store(),
            queue=SendQueue(get_settings().send_queue_url),
            deadline=time.monotonic() + 10,
        )
        return {"version": state.version, "released": released}, None
    except Killed as killed:
        return None, f"killed at {killed}"
    except BridgeError as error:
        return None, f"{error.status} {error.code}"


def _recover(moto_server: Any) -> None:
    for _ in range(3):
        for email, version in _checks(moto_server):
            assert resume(
                email,
                version,
                settings=get_settings(),
                store=dependencies.subscription_store(),
                deadline=time.monotonic() + 10,
            )


def _check_release(sandbox: Sandbox, email: str, answer: dict[str, Any] | None, where: str) -> None:
    state, history = dependencies.subscription_store().get(email)
    if answer is not None:
        assert state is not None and state.subscribed and state.version == answer["version"], f"{where}: 200 unbacked"
    if state is None or not state.subscribed:
        assert answer is None, f"{where}: answered but not subscribed"
        return
    assert state.release and all(v != "pending" for v in state.release.values()), f"{where}: stranded {state.release}"
    assert not _listed(sandbox, email), f"{where}: subscribed but still on a provider's list"
    sources = [h.source for h in history if h.source.startswith("release:")]
    assert sorted(sources) == sorted(set(sources)), f"{where}: a release recorded twice: {sources}"
    assert {s.partition(":")[2] for s in sources} == set(state.release), f"{where}: history {sources} vs state {state.release}"


def _answer_backed(email: str, answer: dict[str, Any] | None, where: str) -> None:
    """Every release outcome the caller was told is the one stored, or `pending` (not yet settled on record):
    an answer saying `removed` over a state still `pending` would be settled later as `not_listed` (the address
    is off the list by then), so the record would never show what the caller was told."""
    if answer is None:
        return
    state, _ = dependencies.subscription_store().get(email)
    stored = (state.release or {}) if state is not None else {}
    for provider, outcome in answer["released"].items():
        assert outcome == "pending" or stored.get(provider) == outcome, (
            f"{where}: answered {provider} {outcome}, stored {stored.get(provider)}"
        )


def _suppress(sandbox: Sandbox, email: str) -> None:
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/suppressions", json={"list": "bounces", "email": email}, timeout=5)
    requests.post(
        f"{sandbox.url}/_sandbox/infobip/suppressions",
        json={"domainName": DOMAIN, "emailAddress": email, "type": "COMPLAINT"},
        timeout=5,
    )


def test_every_aws_call_failing_or_the_process_dying_never_strands_loses_or_doubles_a_release(
    faults: Faults, sandbox: Sandbox, moto_server: Any
) -> None:
    _checks(moto_server)
    faults.plan(None)
    email = f"rf-{uuid.uuid4().hex[:8]}@example.com"
    _suppress(sandbox, email)
    answer, error = _resubscribe(sandbox, email)
    assert error is None and answer is not None and answer["released"] == {"sendgrid": "removed", "infobip": "removed"}
    steps = len(faults.calls)
    assert steps >= 4  # the check queued, the state written, two outcomes recorded
    faults.enabled = False
    _recover(moto_server)
    _check_release(sandbox, email, answer, "without faults")
    for at in range(1, steps + 1):
        for mode in MODES:
            email = f"rf-{uuid.uuid4().hex[:8]}@example.com"
            _suppress(sandbox, email)
            faults.plan(at, mode)
            answer, _ = _resubscribe(sandbox, email)
            faults.enabled = False
            where = f"call {at} ({faults.calls[at - 1] if at <= len(faults.calls) else '?'}) {mode}"
            _answer_backed(email, answer, where)
            _recover(moto_server)
            _check_release(sandbox, email, answer, where)


def _pending_infobip(sandbox: Sandbox, email: str) -> int:
    """A re-subscription whose Infobip release is left pending (its domain unreachable during the PUT)."""
    _suppress(sandbox, email)
    requests.post(f"{sandbox.url}/_sandbox/infobip/outages", json={"domainName": DOMAIN, "status": 503}, timeout=5)
    try:
        state, _, released = resubscribe(
            email,
            SubscriptionUpdate(subscribed=True),
            settings=get_settings(),
            store=dependencies.subscription_store(),
            queue=SendQueue(get_settings().send_queue_url),
            deadline=time.monotonic() + 1.5,
        )
    finally:
        requests.delete(f"{sandbox.url}/_sandbox/infobip/outages", timeout=5)
    assert released is not None and released["infobip"] == "pending"
    return state.version


def test_a_release_check_hit_by_any_aws_fault_never_reports_done_over_a_pending_release(
    faults: Faults, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given re-subscriptions whose Infobip release is pending, the check runs with each of its AWS calls failing
    # or the process dying there; it may raise (the message stays in the queue) or say "again later", but when
    # it says done (the message is deleted), nothing may be left pending: else nothing would ever retry it
    for at in range(1, 4):
        for mode in MODES:
            faults.enabled = False
            email = f"rc-{uuid.uuid4().hex[:8]}@example.com"
            version = _pending_infobip(sandbox, email)
            faults.plan(at, mode)
            try:
                done = resume(
                    email, version, settings=get_settings(), store=dependencies.subscription_store(),
                    deadline=time.monotonic() + 10,
                )  # fmt: skip
            except (Killed, BridgeError):
                done = False
            faults.enabled = False
            state, _ = dependencies.subscription_store().get(email)
            assert state is not None and state.release is not None
            if done:
                assert state.release["infobip"] != "pending", f"call {at} {mode}: check done, release stranded"
    _checks(moto_server)


def test_every_aws_call_failing_or_the_process_dying_never_lets_the_quota_be_passed_or_miscounted(
    faults: Faults,
) -> None:
    spec = ProviderSending(daily_limit=3, monthly_limit=5, notify="ops@example.com")
    now = datetime.now(UTC)

    def run(provider: str) -> tuple[int, int, list[tuple[str, str]]]:
        """Four sends of one recipient: (let through, counts attempted, warnings mailed)."""
        through = attempted = 0
        mailed: list[tuple[str, str]] = []
        store = dependencies.quota_store()
        for _ in range(4):
            try:
                attempted += 1
                reservation = quotas.reserve(store, provider, spec, 1, now)
                through += 1
                quotas.warn(store, reservation, spec, lambda subject, text: mailed.append((subject, text)) is None, now)
            except (QuotaExceeded, BridgeError):
                continue
            except Killed:
                break
        return through, attempted, mailed

    faults.plan(None)
    provider = f"p{uuid.uuid4().hex[:8]}"
    through, _, mailed = run(provider)
    faults.enabled = False
    assert through == 3 and len(mailed) == 1 and "100%" in mailed[0][0]
    steps = len(faults.calls)
    for at in range(1, steps + 1):
        for mode in MODES:
            provider = f"p{uuid.uuid4().hex[:8]}"
            faults.plan(at, mode)
            through, attempted, mailed = run(provider)
            faults.enabled = False
            store = dependencies.quota_store()
            day = store.used(provider, quotas.periods(now)["daily"])
            month = store.used(provider, quotas.periods(now)["monthly"])
            where = f"call {at} {mode}"
            assert day <= 3 and month <= 5, f"{where}: limit passed ({day}, {month})"
            assert through <= day <= attempted, f"{where}: {through} let through, {day} counted, {attempted} tried"
            subjects = [subject for subject, _ in mailed]  # one subject per provider, period and threshold
            assert len(subjects) == len(set(subjects)), f"{where}: a warning mailed twice: {subjects}"
