"""Schemathesis against the running local stack, driven by openapi.json: with a bounded number of
examples per operation, no answer is a 5xx, every answer is JSON, every error is the contract's shape, and
no answer contains a configured secret."""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devkit.template import REPO_ROOT
from tests.e2e.conftest import RunningStack
from tests.integration.test_log_hygiene import secret_values

pytestmark = pytest.mark.e2e
schema = schemathesis.openapi.from_path(str(REPO_ROOT / "openapi.json"))
SECRETS = sorted(secret_values() - {"local-dev-key-1"})  # the key the fuzzer itself sends is not a leak


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_requests_get_contract_answers(case, stack: RunningStack) -> None:
    response = case.call(base_url=stack.api, headers={"X-Api-Key": stack.api_key}, timeout=30)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:300]}"
    body = json.loads(response.text)  # every answer is JSON
    if response.status_code >= 400:
        assert isinstance(body.get("error"), dict), where
        assert body["error"].get("code") and body["error"].get("message"), where
    leaked = [s for s in SECRETS if s in response.text]
    assert not leaked, f"{where}: a secret is in the answer"
