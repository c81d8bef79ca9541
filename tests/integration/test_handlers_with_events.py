"""Every function, run as the local stack runs it (own process, template handler, env.json environment,
moto over HTTP), driven by the event files under events/ - the same files `sam local invoke -e` takes."""

from pathlib import Path

import pytest

from devkit.template import REPO_ROOT, Template
from tests.conftest import Functions, http_body, load_event

EVENTS = sorted((REPO_ROOT / "events").glob("*.json"))


def function_for(event_file: Path, template: Template) -> str:
    """events/<folder-of-the-function>-<case>.json, e.g. delivery-worker-retry.json -> DeliveryWorkerFunction."""
    matches = {
        spec.code_uri.name: logical_id
        for logical_id, spec in template.functions().items()
        if event_file.name.startswith(spec.code_uri.name.replace("_", "-") + "-")
    }
    if not matches:
        raise AssertionError(f"{event_file.name} does not name a function folder")
    return matches[max(matches, key=len)]  # send-worker-... is SendWorkerFunction's, not SendFunction's


def test_every_function_has_an_event_file_and_every_file_a_function(template: Template) -> None:
    covered = {function_for(path, template) for path in EVENTS}
    assert covered == set(template.functions())


@pytest.mark.parametrize(
    ("event_file", "status", "code"),
    [
        ("query-get-subscription-bad-email.json", 400, "invalid_email"),
        ("query-get-subscription-no-key.json", 401, "unauthorized"),
        ("query-unknown-route.json", 404, "not_found"),
        ("query-get-message.json", 404, "message_not_found"),
    ],
)
def test_http_events_get_the_contract_answer(
    functions: Functions, template: Template, event_file: str, status: int, code: str
) -> None:
    result = functions.invoke(function_for(REPO_ROOT / "events" / event_file, template), load_event(event_file))
    assert result["statusCode"] == status
    assert result["headers"]["Content-Type"] == "application/json"
    assert http_body(result)["error"]["code"] == code


def test_put_then_get_subscription_round_trips_through_dynamodb(functions: Functions, moto_server) -> None:
    put = functions.invoke("QueryFunction", load_event("query-put-subscription.json"))
    assert put["statusCode"] == 200, put
    got = functions.invoke("QueryFunction", load_event("query-get-subscription.json"))
    body = http_body(got)
    assert got["statusCode"] == 200
    assert (body["email"], body["subscribed"], body["suppression"]) == ("taro.yamada@example.com", False, "hard_bounce")
    # The state really is in DynamoDB, with its history entry beside it.
    items = moto_server.client("dynamodb").query(
        TableName="SubscriptionsTable",
        KeyConditionExpression="pk = :e",
        ExpressionAttributeValues={":e": {"S": "taro.yamada@example.com"}},
    )["Items"]
    kinds = sorted(i["sk"]["S"].split("#")[0] for i in items)
    assert kinds[-1] == "STATE" and "HIST" in kinds

    again = functions.invoke("QueryFunction", load_event("query-put-subscription-resubscribe.json"))
    body = http_body(again)
    assert (body["subscribed"], body["suppression"], body["reason"]) == (True, None, "お客様からの再登録依頼")
    # Newest first: the providers' release entries this PUT wrote, then the change itself and the one before
    assert [h["subscribed"] for h in body["history"] if not h["source"].startswith("release:")][:2] == [True, False]


def test_send_event_file_sends_through_the_sandbox(functions: Functions) -> None:
    result = functions.invoke("SendFunction", load_event("send-mail-sendgrid.json"))
    body = http_body(result)
    assert result["statusCode"] == 202 and body["provider"] == "sendgrid", body
    assert body["recipients"][0]["status"] in ("accepted", "suppressed")  # suppressed if an earlier test unsubscribed


def test_send_worker_hands_back_a_call_whose_message_is_not_recorded_yet(functions: Functions) -> None:
    # The send tests drive real deferred calls through the worker; this file's dispatch has no records.
    result = functions.invoke("SendWorkerFunction", load_event("send-worker-braze.json"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "5d1f0b7e-2c3a-4b8e-9f10-000000000003"}]}


def test_delivery_worker_drops_a_message_for_an_unknown_delivery(functions: Functions) -> None:
    # The relay tests drive real deliveries through the worker; this file names none that exists.
    result = functions.invoke("DeliveryWorkerFunction", load_event("delivery-worker-retry.json"))
    assert result == {"batchItemFailures": []}
    assert any(
        line.get("message") == "Delivery message for an unknown delivery; dropped"
        for line in functions.log_lines("DeliveryWorkerFunction")
    )


def test_log_lines_carry_the_request_id_and_nothing_from_earlier_requests(functions: Functions) -> None:
    functions.invoke("QueryFunction", load_event("query-get-subscription.json"))  # appends a recipient key
    event = load_event("query-get-subscription-bad-email.json")
    functions.invoke("QueryFunction", event)
    refused = [line for line in functions.log_lines("QueryFunction") if line.get("message") == "Request refused"]
    assert refused[-1]["correlation_id"] == event["requestContext"]["requestId"]
    assert "recipient" not in refused[-1]  # warm instances must not carry keys over
    log_text = functions.log_file("QueryFunction").read_text(encoding="utf-8")
    assert "local-dev-key-1" not in log_text and "taro.yamada@example.com" not in log_text


def test_sweeper_event_file_runs_a_sweep(functions: Functions) -> None:
    result = functions.invoke("SweeperFunction", load_event("sweeper-scheduled.json"))
    assert set(result) == {"requeued", "dead_lettered", "stuck"} and all(isinstance(v, int) for v in result.values())


def test_inbound_mail_event_file_for_an_object_not_there_does_nothing(functions: Functions) -> None:
    # S3's notification for an object the bucket no longer holds (its lifecycle expired it): nothing to read.
    assert functions.invoke("InboundMailFunction", load_event("inbound-mail-received.json")) == {
        "outcomes": ["object not found"]
    }
