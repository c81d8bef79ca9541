"""The events flow under faults: fail each DynamoDB call of a post in turn (the post is redelivered, as SQS
does) and check that the final state, the reports and the event metrics come out exactly as without a
fault - each report written atomically with its final status, each event counted once (in the metrics and
in GET /stats's daily counters)."""

import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from botocore.exceptions import ClientError

T0 = 1795323600


@pytest.fixture
def flow(aws_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    config_file = tmp_path / "bridge.json"
    config_file.write_text(json.dumps({"version": 1, "routes": {}, "sinks": []}))
    for key, value in {
        "MESSAGES_TABLE": "MessagesTable",
        "SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
        "PAYLOAD_BUCKET": "unused",
        "BRIDGE_CONFIG_FILE": str(config_file),
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
    }.items():
        monkeypatch.setenv(key, value)
    from martech_bridge import config, events

    config.reset()
    counted: Counter[str] = Counter()
    monkeypatch.setattr(events, "count", lambda name, n=1, **_: counted.update({name: int(n)}))
    return events, counted


def seed(n: int) -> tuple[str, list[str]]:
    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.mail import MailRequest, RecipientResult

    dispatch = f"d_fault{uuid.uuid4().hex[:10]}"
    emails = [f"f{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(n)]
    request = MailRequest.model_validate({"to": [{"email": e} for e in emails], "subject": "s", "text": "t"})
    results = [RecipientResult(email=e, message_id=f"{dispatch}.{i}", status="accepted") for i, e in enumerate(emails)]
    store = MessageStore("MessagesTable", 30)
    store.save(dispatch, "sendgrid", store.head(request), results, "accepted", fresh=True)
    return dispatch, emails


def post(dispatch: str, emails: list[str]) -> dict[str, Any]:
    def ev(i: int, kind: str, offset: int, **extra: Any) -> dict[str, Any]:
        return {
            "email": emails[i],
            "event": kind,
            "timestamp": T0 + offset,
            "sg_event_id": f"{dispatch}-{i}-{kind}",
            "dispatch_id": dispatch,
            "message_id": f"{dispatch}.{i}",
            **extra,
        }

    body = [
        ev(0, "processed", 1),
        ev(0, "delivered", 2),
        ev(0, "open", 3),
        ev(1, "bounce", 2, type="bounce", reason="550 5.1.1"),
        ev(2, "bounce", 2, type="blocked", reason="421 later"),
    ]
    return {"provider": "sendgrid", "received_at": datetime.now(UTC).isoformat(), "body": json.dumps(body)}


def state(dispatch: str) -> Any:
    from martech_bridge.adapters.message_store import MessageStore

    message = MessageStore("MessagesTable", 30).get(dispatch)
    assert message is not None
    return [(r["status"], r.get("status_at"), [e["event_id"] for e in r["events"]]) for r in message["recipients"]]


def take_reports(dispatch: str) -> list[str]:
    from martech_bridge.adapters.message_store import MessageStore

    return sorted(r["messageId"] for r in MessageStore("MessagesTable", 30).take_reports(1000, bulk_id=dispatch))


def day_stats() -> Counter[str]:
    """The effect counters of the day every post here reports on (GET /stats reads the same)."""
    from martech_bridge.adapters.message_store import MessageStore

    day = f"{datetime.fromtimestamp(T0, UTC):%Y-%m-%d}"
    return Counter(MessageStore("MessagesTable", 30).stats(["sendgrid"], [day]).get(("sendgrid", day), {}))


def dynamodb_writes_of_one_post(flow: Any) -> int:
    """How many DynamoDB calls one clean run of the post makes (each is failed in turn below)."""
    events, _ = flow
    dispatch, emails = seed(3)
    made: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def spy(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            made.append(operation)
        return real(self, operation, params)

    botocore.client.BaseClient._make_api_call = spy  # type: ignore[method-assign]
    try:
        events.process_post(post(dispatch, emails))
    finally:
        botocore.client.BaseClient._make_api_call = real  # type: ignore[method-assign]
    return len(made)


def test_a_failure_at_any_dynamodb_call_loses_no_report_and_counts_each_event_once(flow: Any) -> None:
    events, counted = flow
    from martech_bridge.errors import DependencyUnavailable

    steps = dynamodb_writes_of_one_post(flow)
    assert steps >= 4
    clean_dispatch, clean_emails = seed(3)
    counted.clear()
    before = day_stats()
    events.process_post(post(clean_dispatch, clean_emails))
    expected_counts = dict(counted)
    expected_stats = day_stats() - before
    assert expected_stats == {"sent": 1, "delivered": 1, "opened": 1, "bounced_hard": 1, "bounced_soft": 1}
    expected_state = [(s, t, ids) for s, t, ids in state(clean_dispatch)]
    expected_reports = take_reports(clean_dispatch)
    assert expected_reports == sorted(f"{clean_dispatch}.{i}" for i in range(3))
    real = botocore.client.BaseClient._make_api_call
    for failing in range(1, steps + 1):
        dispatch, emails = seed(3)
        counted.clear()
        before = day_stats()
        seen = [0]

        def faulty(
            self: Any, operation: str, params: dict[str, Any], seen: list[int] = seen, failing: int = failing
        ) -> Any:
            if self.meta.service_model.service_name == "dynamodb":
                seen[0] += 1
                if seen[0] == failing:
                    raise ClientError(
                        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}, operation
                    )
            return real(self, operation, params)

        botocore.client.BaseClient._make_api_call = faulty  # type: ignore[method-assign]
        try:
            with pytest.raises(DependencyUnavailable):
                events.process_post(post(dispatch, emails))
        finally:
            botocore.client.BaseClient._make_api_call = real  # type: ignore[method-assign]
        events.process_post(post(dispatch, emails))  # SQS delivers the post again
        events.process_post(post(dispatch, emails))  # and once more, as it may
        mapped = [(s, t, [i.replace(dispatch, clean_dispatch) for i in ids]) for s, t, ids in state(dispatch)]
        assert mapped == expected_state, f"failing call {failing}"
        assert take_reports(dispatch) == sorted(f"{dispatch}.{i}" for i in range(3)), f"failing call {failing}"
        assert dict(counted) == expected_counts, f"failing call {failing}"
        assert day_stats() - before == expected_stats, f"failing call {failing}"


def test_rejected_events_are_spread_over_shards_and_read_back_across_them(flow: Any) -> None:
    from martech_bridge.adapters.message_store import MessageStore

    store = MessageStore("MessagesTable", 30)
    provider = f"p{uuid.uuid4().hex[:6]}"  # a fresh partition family for this test
    received = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
    store.record_rejected(provider, [(f"bad {i}", {"n": i}) for i in range(64)], received)
    store.record_rejected(provider, [(f"bad {i}", {"n": i}) for i in range(64)], received)  # redelivered
    rows = store.rejected(provider, "2026-11-22", 1000)
    assert sorted(r["reason"] for r in rows) == sorted(f"bad {i}" for i in range(64))  # once each
    partitions = {
        item["pk"]
        for shard in range(32)
        for item in store._table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": f"REJECTED#{provider}#2026-11-22#{shard:02d}"},
        )["Items"]
    }
    assert len(partitions) > 16  # no one key takes a day's rejects


def test_an_event_with_a_lone_surrogate_is_rejected_alone(flow: Any) -> None:
    events, _ = flow
    from martech_bridge.adapters.subscription_store import DynamoSubscriptionStore

    email = f"sur-{uuid.uuid4().hex[:6]}@example.com"
    opened = {"email": email, "event": "open", "timestamp": T0, "sg_event_id": uuid.uuid4().hex, "useragent": "X"}
    unsubscribed = {"email": email, "event": "unsubscribe", "timestamp": T0, "sg_event_id": uuid.uuid4().hex}
    body = json.dumps([opened, unsubscribed]).replace('"useragent": "X"', '"useragent": "\\ud800"')
    result = events.process_post({"provider": "sendgrid", "received_at": datetime.now(UTC).isoformat(), "body": body})
    assert result.applied == 1 and len(result.rejected) == 1
    state, _ = DynamoSubscriptionStore("SubscriptionsTable", 30).get(email)
    assert state is not None and state.suppression == "unsubscribe"
