"""Re-subscribing releases Infobip's suppressions on every sending domain of the account: the domains are
listed at release time (Get suppression domains, every page), each domain's lists read and cleared as its
permissions allow; one domain unreachable leaves the release pending, and the send queue's check finishes it.
QueryFunction and SendWorkerFunction as the local stack runs them, the Infobip sandbox on loopback, moto."""

import json
from typing import Any

import requests

from devkit.queues import sqs_event
from devkit.sandbox.server import Sandbox
from tests.conftest import Functions
from tests.integration.test_event_processing import call
from tests.integration.test_release import (
    DOMAIN,
    KEY,
    addr,
    control,
    drain_release_checks,
    fresh_sandbox,  # noqa: F401 - autouse: each test starts from an empty sandbox
    put,
    requests_to,
)

OTHER = "news.example.com"  # a second sending domain of the same Infobip account


def view(functions: Functions, email: str) -> dict[str, Any]:
    _, state = call(
        functions,
        "QueryFunction",
        "GET",
        f"/subscriptions/{email}",
        "/subscriptions/{email}",
        b"",
        KEY,
        {"email": email},
    )
    return state


def infobip_history(state: dict[str, Any]) -> list[str]:
    return [h["reason"] for h in state["history"] if h["source"] == "release:infobip"]


def deleted(sandbox: Sandbox) -> list[tuple[str, str]]:
    """(domainName, type) of every DELETE the sandbox received."""
    out = []
    for r in requests_to(sandbox, "infobip"):
        if r["method"] == "DELETE":
            for group in r["body"]["json"]["suppressions"]:
                out.append((group["domainName"], group["type"]))
    return sorted(out)


def test_resubscribing_clears_the_address_on_every_sending_domain(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an address Infobip suppresses on the default sender's domain (bounce) and on another (complaint)
    email = addr()
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "suppressions", {"domainName": OTHER, "emailAddress": email, "type": "COMPLAINT"})
    # When it is re-subscribed
    status, body = put(functions, email, {"subscribed": True})
    # Then both domains' lists were cleared, each by its own DELETE, and nothing else was deleted
    assert status == 200, body
    assert body["released"]["infobip"] == "removed"
    assert control(sandbox, "infobip", "suppressions") == []
    assert deleted(sandbox) == [(DOMAIN, "BOUNCE"), (OTHER, "COMPLAINT")]
    calls = requests_to(sandbox, "infobip")
    assert calls[0]["method"] == "GET" and calls[0]["path"] == "/email/1/suppressions/domains"
    # And the history names what each domain's lists said
    (reason,) = infobip_history(view(functions, email))
    assert f"{DOMAIN} bounce removed" in reason and f"{OTHER} complaint removed" in reason
    assert f"{OTHER} bounce not_listed" in reason
    drain_release_checks(moto_server)


def test_every_page_of_the_accounts_domains_is_released(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given an account with more domains than one page holds (100), the address suppressed on the last one
    email = addr()
    for n in range(104):
        control(sandbox, "infobip", "domains", {"domainName": f"d{n:03}.example.com", "dataAccess": "OWNER"})
    control(
        sandbox, "infobip", "suppressions", {"domainName": "d103.example.com", "emailAddress": email, "type": "BOUNCE"}
    )
    status, body = put(functions, email, {"subscribed": True})
    assert status == 200, body
    assert body["released"]["infobip"] == "removed"
    assert control(sandbox, "infobip", "suppressions") == []
    pages = [r["query"] for r in requests_to(sandbox, "infobip") if r["path"] == "/email/1/suppressions/domains"]
    assert pages == ["page=0&size=100", "page=1&size=100"]
    # The history names the list that held it and counts the 311 that did not, rather than naming them
    (reason,) = infobip_history(view(functions, email))
    assert "d103.example.com bounce removed" in reason and "311 other lists not_listed" in reason
    assert "d000.example.com" not in reason
    drain_release_checks(moto_server)


def test_a_domain_the_account_may_not_delete_on_fails_the_release_and_keeps_the_others(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given a domain shared with the account that may read its bounces but not delete them (Infobip allows
    # deleting only on domains with a dedicated IP), the address bounced there and on the account's own domain
    email = addr()
    shared = "partner.example.net"
    flags = {"readBounces": True, "deleteBounces": False, "readComplaints": True, "deleteComplaints": False,
             "readOverquotas": True, "deleteOverquotas": False}  # fmt: skip
    control(sandbox, "infobip", "domains", {"domainName": shared, "dataAccess": "GRANTED", **flags})
    control(sandbox, "infobip", "suppressions", {"domainName": shared, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    status, body = put(functions, email, {"subscribed": True})
    # Then the own domain is cleared, the shared one cannot be: failed (not pending: no retry can change it)
    assert status == 200, body
    assert body["subscribed"] is True and body["released"]["infobip"] == "failed"
    remaining = control(sandbox, "infobip", "suppressions")
    assert [(s["domainName"], s["type"]) for s in remaining] == [(shared, "BOUNCE")]
    assert (shared, "BOUNCE") not in deleted(sandbox)  # no call made that Infobip would refuse
    (reason,) = infobip_history(view(functions, email))
    assert f"{shared} bounce failed (no permission to delete)" in reason
    assert f"{shared} complaint not_listed" in reason
    drain_release_checks(moto_server)


def test_one_unreachable_domain_leaves_the_release_pending_and_the_check_finishes_it(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given the address suppressed on two domains, and Infobip failing (503) every call about one of them
    email = addr()
    drain_release_checks(moto_server)
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "suppressions", {"domainName": OTHER, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "outages", {"domainName": OTHER, "status": 503})
    # When it is re-subscribed
    status, body = put(
        functions, email, {"subscribed": True}, RELEASE_CHECK_DELAY_SECONDS="0", SEND_DEADLINE_SECONDS="3"
    )
    # Then the re-subscription is made, the reachable domain cleared, and Infobip's release pending
    assert status == 200, body
    assert body["subscribed"] is True and body["released"]["infobip"] == "pending"
    assert [s["domainName"] for s in control(sandbox, "infobip", "suppressions")] == [OTHER]
    assert view(functions, email)["release"]["infobip"] == "pending"
    # And a check while the domain is still down goes back to the queue
    # (checks of earlier tests may come due meanwhile: only this address's is taken)
    checks = [c for c in drain_release_checks(moto_server) if json.loads(c["Body"])["email"] == email]
    assert len(checks) == 1
    arn = "arn:aws:sqs:us-east-1:123456789012:SendQueue"
    again = functions.invoke("SendWorkerFunction", sqs_event(checks, arn), SEND_DEADLINE_SECONDS="3")
    assert [f["itemIdentifier"] for f in again["batchItemFailures"]] == [checks[0]["MessageId"]]
    # When the domain answers again, the check finishes the release
    requests.delete(f"{sandbox.url}/_sandbox/infobip/outages", timeout=5).raise_for_status()
    done = functions.invoke("SendWorkerFunction", sqs_event(checks, arn))
    assert done["batchItemFailures"] == []
    assert control(sandbox, "infobip", "suppressions") == []
    state = view(functions, email)
    assert state["release"]["infobip"] == "removed"
    assert any(f"{OTHER} bounce removed" in reason for reason in infobip_history(state))


def test_an_unreachable_domain_listing_leaves_the_release_pending(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    email = addr()
    drain_release_checks(moto_server)
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "faults", {"count": 50, "drop": True})
    status, body = put(
        functions, email, {"subscribed": True}, RELEASE_CHECK_DELAY_SECONDS="0", SEND_DEADLINE_SECONDS="3"
    )
    assert status == 200 and body["released"]["infobip"] == "pending", body
    assert len(control(sandbox, "infobip", "suppressions")) == 1
    requests.delete(f"{sandbox.url}/_sandbox/infobip/faults", timeout=5)
    drain_release_checks(moto_server)


def test_an_unreadable_domain_listing_still_clears_the_default_senders_domain_and_fails_the_release(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    email = addr()
    control(sandbox, "infobip", "suppressions", {"domainName": DOMAIN, "emailAddress": email, "type": "BOUNCE"})
    control(sandbox, "infobip", "faults", {"status": 200, "body": "<html>proxy login</html>"})
    status, body = put(functions, email, {"subscribed": True})
    assert status == 200, body
    assert control(sandbox, "infobip", "suppressions") == []  # the default sender's domain, at least
    assert body["released"]["infobip"] == "failed"  # the other domains are unknown: looked at, not hidden
    (reason,) = infobip_history(view(functions, email))
    assert "sending domains failed (unreadable answer" in reason
    drain_release_checks(moto_server)


def test_an_account_with_many_slow_domains_is_released_within_the_deadline(
    functions: Functions, sandbox: Sandbox, moto_server: Any
) -> None:
    # Given 24 domains and Infobip taking 0.25 s per call: one domain after another would need 18 s
    email = addr()
    for n in range(24):
        control(sandbox, "infobip", "domains", {"domainName": f"s{n:02}.example.com", "dataAccess": "OWNER"})
    control(
        sandbox, "infobip", "suppressions", {"domainName": "s23.example.com", "emailAddress": email, "type": "BOUNCE"}
    )
    control(sandbox, "infobip", "faults", {"count": 200, "delay": 0.25})
    # When it is re-subscribed with 8 s for the provider calls
    status, body = put(functions, email, {"subscribed": True}, SEND_DEADLINE_SECONDS="8")
    # Then every domain was settled in time (domains are cleared side by side), so no check is needed
    assert status == 200, body
    assert body["released"]["infobip"] == "removed"
    assert control(sandbox, "infobip", "suppressions") == []
    requests.delete(f"{sandbox.url}/_sandbox/infobip/faults", timeout=5)
    drain_release_checks(moto_server)
