"""Re-subscribing releases the ESPs' own suppressions: QueryFunction and SendWorkerFunction as the local stack
runs them, the ESPs' suppression lists in the sandbox on loopback, subscriptions and the send queue in moto."""

import json
import uuid
from typing import Any

import pytest
import requests

from devkit.queues import sqs_event
from devkit.sandbox.server import Sandbox
from devkit.template import local_queue_url
from tests.conftest import Functions
from tests.integration.test_event_processing import call

DOMAIN = "mail.example.co.jp"  # env.json's DEFAULT_FROM_EMAIL domain: Infobip keeps suppressions per domain
KEY = [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")]


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def addr() -> str:
    return f"rs-{uuid.uuid4().hex[:8]}@example.com"


def put(
    functions: Functions, email: str, body: dict[str, Any], *, query_form: bool = False, **env: str
) -> tuple[int, Any]:
    raw = json.dumps(body).encode()
    if env:
        from devkit.gateway import build_event
        from devkit.template import HttpRoute

        event = build_event(
            method="PUT",
            target=f"/subscriptions/{email}",
            headers=KEY,
            body=raw,
            route=HttpRoute("PUT", "/subscriptions/{email}", "QueryFunction"),
            path_parameters={"email": email},
        )
        result = functions.invoke("QueryFunction", event, **env)
        return result["statusCode"], json.loads(result["body"])
    if query_form:
        return call(
            functions, "QueryFunction", "PUT", "/subscriptions", "/subscriptions", raw, KEY, None, f"email={email}"
        )
    return call(
        functions,
        "QueryFunction",
        "PUT",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        raw,
        KEY,
        {"email": email},
    )


def control(sandbox: Sandbox, provider: str, path: str, body: Any = None) -> Any:
    if body is None:
        return requests.get(f"{sandbox.url}/_sandbox/{provider}/{path}", timeout=5).json()
    requests.post(f"{sandbox.url}/_sandbox/{provider}/{path}", json=body, timeout=5).raise_for_status()
    return None


def requests_to(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/{provider}/requests", timeout=5).json()


def drain_release_checks(moto_server: Any) -> list[dict[str, Any]]:
    sqs = moto_server.client("sqs")
    url = local_queue_url("SendQueue")
    found = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
    ).get("Messages", []):
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if json.loads(m["Body"]).get("kind") == "release":
                found.append(m)
    return found


@pytest.mark.parametrize("query_form", [False, True])
def test_resubscribing_takes_the_address_off_every_providers_lists(
    functions: Functions, sandbox: Sandbox, moto_server: Any, query_form: bool
) -> None:
    # Given an address SendGrid holds on its bounce and global unsubscribe lists and Infobip on its bounces
    email = addr()
    control(sandbox, "sendgrid", "suppressions", {"list": "bounces", "email": email})
    control(sandbox, "sendgrid", "suppressions", {"list": "global_unsubscribes", "email": email})
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "braze", "email_status", {"email": email, "subscription_state": "unsubscribed"})
    assert put(functions, email, {"subscribed": False, "suppression": "hard_bounce"})[0] == 200
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True, "reason": "asked again"}, query_form=query_form)
    # Then every provider released it, and says so in the answer and the state
    assert status == 200, body
    assert body["subscribed"] is True
    assert body["released"] == {"sendgrid": "removed", "braze": "removed", "infobip": "removed"}
    assert body["release"] == body["released"]
    assert all(not v for v in control(sandbox, "sendgrid", "suppressions").values())
    assert control(sandbox, "infobip", "suppressions") == []
    assert control(sandbox, "braze", "email_status")[email] == "subscribed"
    deletes = [r["path"] for r in requests_to(sandbox, "sendgrid") if r["method"] == "DELETE"]
    assert sorted(p.rsplit("/", 1)[0] for p in deletes) == [
        "/v3/asm/suppressions/global",
        "/v3/suppression/bounces",
    ]  # only the lists that held it
    # And each release is in the subscription's history, with what each list said
    _, view = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    releases = {h["source"]: h for h in view["history"] if h["source"].startswith("release:")}
    assert set(releases) == {"release:sendgrid", "release:braze", "release:infobip"}
    assert "bounces removed" in releases["release:sendgrid"]["reason"]
    assert "blocks not_listed" in releases["release:sendgrid"]["reason"]
    assert view["release"] == {"sendgrid": "removed", "braze": "removed", "infobip": "removed"}
    drain_release_checks(moto_server)


def test_an_address_on_no_list_is_reported_not_listed(functions: Functions, sandbox: Sandbox, moto_server: Any) -> None:
    email = addr()
    status, body = put(functions, email, {"subscribed": True})
    assert status == 200, body
    assert body["released"]["sendgrid"] == "not_listed"
    assert body["released"]["infobip"] == "not_listed"
    assert not [r for r in requests_to(sandbox, "sendgrid") if r["method"] == "DELETE"]
    drain_release_checks(moto_server)


def test_unsubscribing_releases_nothing(functions: Functions, sandbox: Sandbox) -> None:
    email = addr()
    status, body = put(functions, email, {"subscribed": False})
    assert status == 200 and "released" not in body and body.get("release") is None
    assert requests_to(sandbox, "sendgrid") == [] and requests_to(sandbox, "infobip") == []


def test_an_unreachable_provider_leaves_the_release_pending_and_the_check_finishes_it(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given SendGrid refusing every call for now (503) and the address on its bounce list
    email = addr()
    drain_release_checks(moto_server)
    control(sandbox, "sendgrid", "suppressions", {"list": "bounces", "email": email})
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/faults", json={"count": 200, "status": 503}, timeout=5)
    # When the address is re-subscribed
    status, body = put(
        functions, email, {"subscribed": True}, RELEASE_CHECK_DELAY_SECONDS="0", SEND_DEADLINE_SECONDS="3"
    )
    # Then the re-subscription is done, SendGrid's release pending, the others done
    assert status == 200, body
    assert body["subscribed"] is True
    assert body["released"]["sendgrid"] == "pending"
    assert body["released"]["infobip"] == "not_listed"
    # And the delayed check, once SendGrid answers again, finishes it
    requests.delete(f"{sandbox.url}/_sandbox/sendgrid/faults", timeout=5)
    checks = drain_release_checks(moto_server)
    assert len(checks) == 1
    assert json.loads(checks[0]["Body"])["email"] == email
    result = functions.invoke("SendWorkerFunction", sqs_event(checks, "arn:aws:sqs:us-east-1:123456789012:SendQueue"))
    assert result["batchItemFailures"] == []
    assert control(sandbox, "sendgrid", "suppressions")["bounces"] == []
    _, view = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    assert view["release"]["sendgrid"] == "removed"


def test_a_check_that_still_finds_the_provider_unreachable_goes_back_to_the_queue(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    email = addr()
    drain_release_checks(moto_server)
    requests.post(f"{sandbox.url}/_sandbox/infobip/faults", json={"count": 500, "status": 503}, timeout=5)
    status, body = put(
        functions, email, {"subscribed": True}, RELEASE_CHECK_DELAY_SECONDS="0", SEND_DEADLINE_SECONDS="3"
    )
    assert status == 200 and body["released"]["infobip"] == "pending", body
    checks = drain_release_checks(moto_server)
    result = functions.invoke(
        "SendWorkerFunction",
        sqs_event(checks, "arn:aws:sqs:us-east-1:123456789012:SendQueue"),
        SEND_DEADLINE_SECONDS="3",
    )
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [checks[0]["MessageId"]]
    requests.delete(f"{sandbox.url}/_sandbox/infobip/faults", timeout=5)


def test_a_provider_refusing_the_credentials_is_failed_not_retried(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    email = addr()
    drain_release_checks(moto_server)
    requests.post(f"{sandbox.url}/_sandbox/sendgrid/faults", json={"count": 100, "status": 401}, timeout=5)
    try:
        status, body = put(functions, email, {"subscribed": True})
    finally:
        requests.delete(f"{sandbox.url}/_sandbox/sendgrid/faults", timeout=5)
    assert status == 200 and body["released"]["sendgrid"] == "failed", body
    assert len(requests_to(sandbox, "sendgrid")) == 5  # one look per list, none repeated
    _, view = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    assert view["release"]["sendgrid"] == "failed"
    (entry,) = [h for h in view["history"] if h["source"] == "release:sendgrid"]
    assert "HTTP 401" in entry["reason"]
    drain_release_checks(moto_server)


def test_a_list_answer_that_cannot_be_read_is_cleared_anyway_not_taken_for_not_listed(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address on SendGrid's bounce list, and a proxy that garbles SendGrid's answer to the look-up
    email = addr()
    control(sandbox, "sendgrid", "suppressions", {"list": "bounces", "email": email})
    control(sandbox, "sendgrid", "faults", {"count": 1, "status": 200, "body": "<html>gateway page</html>"})
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True})
    # Then the list is cleared all the same (the DELETE is idempotent): an unreadable answer is no "not listed"
    assert status == 200, body
    assert not control(sandbox, "sendgrid", "suppressions")["bounces"]
    assert body["released"]["sendgrid"] == "removed"
    drain_release_checks(moto_server)


def test_an_infobip_list_answer_that_cannot_be_read_is_cleared_anyway(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    email = addr()
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    # The domain listing passes; the bounce list's answer is garbled
    control(sandbox, "infobip", "faults", [{"delay": 0.01}, {"status": 200, "body": {"unexpected": True}}])
    status, body = put(functions, email, {"subscribed": True})
    assert status == 200, body
    assert control(sandbox, "infobip", "suppressions") == []
    assert body["released"]["infobip"] == "removed"
    drain_release_checks(moto_server)


def test_a_provider_whose_key_refers_to_no_secret_is_failed_and_the_others_are_released(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address on SendGrid's bounce list, and Braze's key set to a secret that does not exist
    email = addr()
    control(sandbox, "sendgrid", "suppressions", {"list": "bounces", "email": email})
    missing = {"BRAZE_API_KEY": f"ssm:/martech-bridge/test/missing-{uuid.uuid4().hex[:6]}"}
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True}, **missing)
    # Then the re-subscription is answered as done (it is: the state was written), SendGrid released it and
    # Braze is a recorded failure, never a 500 that leaves every provider pending
    assert status == 200, body
    assert body["released"]["sendgrid"] == "removed" and body["released"]["braze"] == "failed", body
    assert not control(sandbox, "sendgrid", "suppressions")["bounces"]
    assert "missing-" not in json.dumps(body)
    drain_release_checks(moto_server)


def test_a_braze_user_who_opted_in_is_not_turned_into_a_merely_subscribed_one(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address our flag stopped (a SendGrid bounce) whose Braze user had explicitly opted in
    email = addr()
    control(sandbox, "braze", "email_status", {"email": email, "subscription_state": "opted_in"})
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True})
    # Then Braze, asked first, holds no unsubscribe: its state is left alone; only its spam list, which cannot
    # be asked about, was cleared regardless
    assert status == 200, body
    assert control(sandbox, "braze", "email_status")[email] == "opted_in"
    assert body["released"]["braze"] == "cleared", body
    assert not [r for r in requests_to(sandbox, "braze") if r["path"] == "/email/status"]
    drain_release_checks(moto_server)


def view_of(functions: Functions, email: str) -> dict[str, Any]:
    _, view = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    return dict(view)


def test_resubscribing_takes_the_address_off_brazes_hard_bounce_and_spam_lists_and_subscribes_it(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address Braze holds as hard-bounced, spam-marked and unsubscribed
    email = addr()
    control(sandbox, "braze", "suppressions", {"list": "hard_bounces", "email": email})
    control(sandbox, "braze", "suppressions", {"list": "spam", "email": email})
    control(sandbox, "braze", "email_status", {"email": email, "subscription_state": "unsubscribed"})
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True})
    # Then Braze no longer keeps it from e-mail, and the answer says so
    assert status == 200, body
    assert body["released"]["braze"] == "removed"
    assert control(sandbox, "braze", "suppressions") == {"hard_bounces": [], "spam": [], "unsubscribed": []}
    assert control(sandbox, "braze", "email_status")[email] == "subscribed"
    # And the sandbox recorded the documented calls, in order: look, remove; remove; look, set
    calls = [(r["method"], r["path"]) for r in requests_to(sandbox, "braze")]
    assert calls == [
        ("GET", "/email/hard_bounces"),
        ("POST", "/email/bounce/remove"),
        ("POST", "/email/spam/remove"),
        ("GET", "/email/unsubscribes"),
        ("POST", "/email/status"),
    ]
    # And the release is one history entry saying what each list said
    view = view_of(functions, email)
    (entry,) = [h for h in view["history"] if h["source"] == "release:braze"]
    assert entry["released"] == {"braze": "removed"}
    assert "hard_bounces removed" in entry["reason"] and "spam cleared" in entry["reason"]
    assert "email_subscription subscribed" in entry["reason"]
    assert view["release"]["braze"] == "removed"
    drain_release_checks(moto_server)


def test_an_unreachable_braze_leaves_its_release_pending_and_the_check_finishes_it(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given Braze answering 503 to everything for now, and an address on its hard-bounce list
    email = addr()
    drain_release_checks(moto_server)
    control(sandbox, "braze", "suppressions", {"list": "hard_bounces", "email": email})
    requests.post(f"{sandbox.url}/_sandbox/braze/faults", json={"count": 500, "status": 503}, timeout=5)
    try:
        # When it is re-subscribed
        status, body = put(
            functions, email, {"subscribed": True}, RELEASE_CHECK_DELAY_SECONDS="0", SEND_DEADLINE_SECONDS="3"
        )
        # Then the re-subscription is done and Braze's release pending (no history entry yet), the others done
        assert status == 200, body
        assert body["subscribed"] is True
        assert body["released"]["braze"] == "pending"
        assert body["released"]["sendgrid"] == "not_listed"
        assert [h for h in view_of(functions, email)["history"] if h["source"] == "release:braze"] == []
        assert control(sandbox, "braze", "suppressions")["hard_bounces"] == [email]
        checks = drain_release_checks(moto_server)
        assert [json.loads(c["Body"])["email"] for c in checks] == [email]
    finally:
        requests.delete(f"{sandbox.url}/_sandbox/braze/faults", timeout=5)
    # When Braze answers again, the delayed check finishes the release (one still finding Braze down goes back
    # to the queue: test_a_check_that_still_finds_the_provider_unreachable_goes_back_to_the_queue)
    result = functions.invoke("SendWorkerFunction", sqs_event(checks, "arn:aws:sqs:us-east-1:123456789012:SendQueue"))
    assert result["batchItemFailures"] == []
    assert control(sandbox, "braze", "suppressions")["hard_bounces"] == []
    view = view_of(functions, email)
    assert view["release"]["braze"] == "removed" and view["subscribed"] is True
    (entry,) = [h for h in view["history"] if h["source"] == "release:braze"]
    assert "hard_bounces removed" in entry["reason"]


def test_the_answer_to_a_resubscription_holds_the_release_entries_it_wrote(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address SendGrid holds on its bounce list, unsubscribed here
    email = addr()
    control(sandbox, "sendgrid", "suppressions", {"list": "bounces", "email": email})
    assert put(functions, email, {"subscribed": False, "suppression": "hard_bounce"})[0] == 200
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True})
    assert status == 200, body
    # Then the answer's history is the one a GET right after shows: each provider's release entry, then the change
    _, view = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    assert {h["source"] for h in body["history"][:3]} == {"release:sendgrid", "release:braze", "release:infobip"}
    assert body["history"] == view["history"]
    drain_release_checks(moto_server)
