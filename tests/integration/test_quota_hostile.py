"""Send quotas against hostile sizes: a counter in moto's messages table, reserved as the send flow does."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from martech_bridge import dependencies, quotas
from martech_bridge.adapters.quota_store import QuotaStore
from martech_bridge.errors import QuotaExceeded
from martech_bridge.models.routes import ProviderSending
from pydantic import ValidationError

from devkit.aws import MotoServer


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
            ProviderSending.model_validate({field: 10**40})
