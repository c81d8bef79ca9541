"""The delivery record: a msgspec Struct (no pydantic at INIT) whose stored item and API answer are the ones
the pydantic model wrote before it, field for field; a stored item that is not a delivery is refused."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from martech_bridge.adapters.delivery_store import DeliveryStore
from martech_bridge.models.delivery import Attempt, Delivery, DeliveryStatus, FailureReason

from devkit import openapi

MOMENT = datetime(2026, 11, 30, 1, 2, 3, 456789, tzinfo=UTC)
# What the pydantic Delivery of commit f84bbb5 stored for this delivery and answered for it (generated with it).
STORED: dict[str, Any] = {
    "attempt_history": [
        {
            "ambiguous": False,
            "error": "boom",
            "latency_ms": 12,
            "number": 1,
            "started_at": "2026-11-30T01:02:03.456789Z",
            "status": 503,
            "verdict": "retry",
        }
    ],
    "attempts": 1,
    "created_at": "2026-11-30T01:02:03.456789Z",
    "dead_letter_pending": True,
    "delivery_id": "dl_0123456789abcdef0123456789",
    "expires_at": 1798592523,
    "failure": "gave_up",
    "gsi1pk": "OPEN#01",
    "gsi1sk": "001796000583000",
    "gsi2pk": "DLV#01",
    "gsi2sk": "2026-11-30T01:02:03.456789Z#dl_0123456789abcdef0123456789",
    "idempotency_key": "k",
    "max_attempts": 5,
    "payload_json": '{"n":1.5,"s":"山田"}',
    "pk": "dl_0123456789abcdef0123456789",
    "replays": 0,
    "request_hash": "h",
    "response_json": '{"error": {"code": "x"}}',
    "response_status": 502,
    "route": "r",
    "sk": "D",
    "status": "failed",
    "sweeps": 0,
    "target": "PUT https://x.example/k",
    "updated_at": "2026-11-30T01:02:03Z",
}
PUBLIC: dict[str, Any] = {
    "delivery_id": "dl_0123456789abcdef0123456789",
    "route": "r",
    "target": "PUT https://x.example/k",
    "status": "failed",
    "attempts": 1,
    "max_attempts": 5,
    "created_at": "2026-11-30T01:02:03.456789Z",
    "updated_at": "2026-11-30T01:02:03Z",
    "payload": {"n": 1.5, "s": "山田"},
    "idempotency_key": "k",
    "next_attempt_at": None,
    "last_error": None,
    "failure": "gave_up",
    "response_status": 502,
    "replays": 0,
    "attempt_history": [
        {
            "number": 1,
            "started_at": "2026-11-30T01:02:03.456789Z",
            "latency_ms": 12,
            "status": 503,
            "verdict": "retry",
            "error": "boom",
            "target_code": None,
            "target_message": None,
            "ambiguous": False,
        }
    ],
}


def delivery() -> Delivery:
    return Delivery(
        delivery_id="dl_0123456789abcdef0123456789",
        route="r",
        target="PUT https://x.example/k",
        status=DeliveryStatus.FAILED,
        attempts=1,
        max_attempts=5,
        created_at=MOMENT,
        updated_at=MOMENT.replace(microsecond=0),
        request_hash="h",
        payload={"n": 1.5, "s": "山田"},
        idempotency_key="k",
        failure=FailureReason.GAVE_UP,
        dead_letter_pending=True,
        response_status=502,
        response_body={"error": {"code": "x"}},
        attempt_history=[
            Attempt(number=1, started_at=MOMENT, latency_ms=12, status=503, verdict="retry", error="boom")
        ],
    )


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> DeliveryStore:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return DeliveryStore("DeliveriesTable", 30)


def test_the_stored_item_is_the_one_the_pydantic_record_wrote(store: DeliveryStore) -> None:
    item = store._to_item(delivery())
    assert item == STORED


def test_a_stored_item_reads_back_as_the_same_delivery(store: DeliveryStore) -> None:
    back = store._from_item(store._to_item(delivery()))
    assert back == delivery()
    assert isinstance(back.status, DeliveryStatus) and isinstance(back.attempt_history[0].started_at, datetime)


def test_the_api_answer_is_the_one_the_pydantic_record_gave_in_the_same_order() -> None:
    answer = delivery().public()
    assert answer == PUBLIC and list(answer) == list(PUBLIC)


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "lost"), ("attempts", "many"), ("created_at", "yesterday"), ("attempt_history", [{"number": 0}])],
)
def test_a_stored_item_that_is_not_a_delivery_is_refused_naming_the_field(
    store: DeliveryStore, field: str, value: Any
) -> None:
    item = {**store._to_item(delivery()), field: value}
    with pytest.raises(msgspec.ValidationError, match=field):
        store._from_item(item)


def test_the_documented_attempt_is_the_stored_attempt() -> None:
    documented = openapi.Attempt.model_fields
    assert list(documented) == list(Attempt.__struct_fields__)
    attempt = delivery().attempt_history[0]
    assert openapi.Attempt.model_validate(msgspec.to_builtins(attempt)).model_dump(mode="json") == msgspec.to_builtins(
        attempt
    )
