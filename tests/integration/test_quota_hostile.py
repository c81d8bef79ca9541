"""Send quotas against hostile sizes: a counter in moto's messages table, reserved as the send flow does."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from martech_bridge import dependencies, quotas
from martech_bridge.adapters.quota_store import QuotaStore
from martech_bridge.errors import QuotaExceeded
from martech_bridge.models import route_schema
from martech_bridge.models.routes import ProviderSending
from pydantic import ValidationError

from devkit.aws import MotoServer
from devkit.sandbox.server import Sandbox
from tests.conftest import Functions
from tests.integration.test_quota_failover import KEY, routes_file, send


@pytest.fixture()
def store(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuotaStore]:
    monkeypatch.setenv("MESSAGES_TABLE", "MessagesTable")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MartechBridge/test")
    dependencies.reset()
    yield dependencies.quota_store()
    dependencies.reset()


def test_a_first_send_of_the_day_larger_than_the_limit_is_refused_and_counts_nothing(store: QuotaStore) -> None:
    provider = f"p{uuid.uuid4().hex[:8]}"  # a counter that does not exist yet: the first send of a day
    now = datetime.now(UTC)
    spec = ProviderSending(daily_limit=3)
    with pytest.raises(QuotaExceeded):
        quotas.reserve(store, provider, spec, 5, now)
    assert store.used(provider, quotas.periods(now)["daily"]) == 0
    assert quotas.reserve(store, provider, spec, 3, now) is not None  # the limit itself is still usable
    assert store.used(provider, quotas.periods(now)["daily"]) == 3


def test_a_limit_too_large_for_a_dynamodb_number_is_refused_by_the_configuration() -> None:
    # boto3's serializer raises decimal.Inexact on such a number: every send would answer 500
    for field in ("daily_limit", "monthly_limit"):
        with pytest.raises(ValidationError):
            route_schema.ProviderSending.model_validate({field: 10**40})
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({field: 10**40}, ProviderSending)


def quota_used(functions: Functions, config: str, provider: str) -> int:
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    event = build_event(
        method="GET",
        target="/quota",
        headers=KEY,
        body=b"",
        route=HttpRoute("GET", "/quota", "QueryFunction"),
        path_parameters={},
    )
    result = functions.invoke("QueryFunction", event, BRIDGE_CONFIG_FILE=config)
    assert result["statusCode"] == 200, result
    return int(json.loads(result["body"])["providers"][provider]["daily"]["used"])


def test_a_send_refused_before_any_provider_call_leaves_the_quota_as_it_was(
    functions: Functions, sandbox: Sandbox, tmp_path: Path
) -> None:
    # A provider key that cannot be read (an empty setting here; in AWS, a secret store that is down) fails
    # the send before it calls anyone: three such failures must not use up a quota of 3.
    config = routes_file(tmp_path, {"sendgrid": {"daily_limit": 1000}})
    before = quota_used(functions, config, "sendgrid")
    for _ in range(3):
        status, body = send(
            functions, f"k-{uuid.uuid4().hex[:6]}@example.com", BRIDGE_CONFIG_FILE=config, SENDGRID_API_KEY=""
        )
        assert status >= 500 and body["error"]["code"] == "configuration_error", body
    assert quota_used(functions, config, "sendgrid") == before
