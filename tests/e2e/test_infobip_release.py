"""Issue 16 for Infobip against the running local stack: a hard bounce at Infobip on sending domain B makes the
sandbox Infobip drop the next mail from B to that address; re-subscribing lists the account's domains and
deletes the address's suppressions on each (the sandbox recorded the calls), and the next send from B is
delivered. With B's suppression calls failing, the re-subscription is made, the release stays pending, and
the send queue's release check finishes it once Infobip answers again."""

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack, start_stack, stop_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quick_stack() -> Iterator[RunningStack]:
    """A stack whose release checks come due after 2 s (not 120), and whose provider calls end within 4 s."""
    running = start_stack(extra_env={"RELEASE_CHECK_DELAY_SECONDS": "2", "SEND_DEADLINE_SECONDS": "4"})
    yield running
    stop_stack(running)


def _until(what: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return what()


def _infobip_suppressions(sandbox: str, email: str) -> list[tuple[str, str]]:
    listed = requests.get(f"{sandbox}/_sandbox/infobip/suppressions", timeout=5).json()
    return [(s["domainName"], s["type"]) for s in listed if s["emailAddress"] == email]


def test_a_hard_bounce_on_one_domain_drops_mail_from_it_until_a_resubscription_releases_every_domain(
    quick_stack: RunningStack,
) -> None:
    stack, sandbox = quick_stack, str(quick_stack.sandbox)
    headers = {"X-Api-Key": stack.api_key}
    email = f"ib-{uuid.uuid4().hex[:8]}@example.com"
    domain_b = f"b{uuid.uuid4().hex[:6]}.example.org"
    mail = {
        "provider": "infobip",
        "from": {"email": f"news@{domain_b}"},
        "to": [{"email": email}],
        "subject": "s",
        "text": "t",
    }
    # Given a mailbox that does not exist: Infobip's report of the hard bounce comes back to the bridge
    requests.post(f"{sandbox}/_sandbox/infobip/mailboxes", json={"email": email, "outcome": "bounce"}, timeout=5)
    assert requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30).status_code == 202

    def bounced() -> bool:
        state = requests.get(f"{stack.api}/subscriptions/{email}", headers=headers, timeout=20)
        return state.status_code == 200 and state.json()["suppression"] == "hard_bounce"

    assert _until(bounced), "the hard bounce never unsubscribed the address"
    # Infobip suppressed it on domain B only
    assert _infobip_suppressions(sandbox, email) == [(domain_b, "BOUNCE")]
    # Then Infobip itself drops mail from B to it (another system sending straight to Infobip): accepted, not sent
    direct = {
        "messages": [
            {
                "sender": f"news@{domain_b}",
                "destinations": [{"to": [{"destination": email, "messageId": f"direct-{uuid.uuid4().hex[:8]}"}]}],
                "content": {"subject": "s", "text": "t"},
            }
        ]
    }
    answer = requests.post(
        f"{sandbox}/infobip/email/4/messages",
        json=direct,
        headers={"Authorization": "App local-infobip-key"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    direct_id = answer.json()["messages"][0]["messageId"]
    sent = requests.get(f"{sandbox}/_sandbox/infobip/sent", timeout=5).json()
    assert [s["fates"][direct_id] for s in sent if direct_id in s.get("fates", {})] == ["suppressed:BOUNCE"]
    # When the mailbox works again and the address is re-subscribed
    requests.post(f"{sandbox}/_sandbox/infobip/mailboxes", json={"email": email, "outcome": "deliver"}, timeout=5)
    requests.delete(f"{sandbox}/_sandbox/infobip/requests", timeout=5)
    put = requests.put(f"{stack.api}/subscriptions/{email}", json={"subscribed": True}, headers=headers, timeout=30)
    # Then the bridge listed the account's domains and deleted the suppression on B (the sandbox recorded it)
    assert put.status_code == 200, put.text
    assert put.json()["released"]["infobip"] == "removed"
    calls = requests.get(f"{sandbox}/_sandbox/infobip/requests", timeout=5).json()
    assert any(c["method"] == "GET" and c["path"] == "/email/1/suppressions/domains" for c in calls)
    deletes = [g for c in calls if c["method"] == "DELETE" for g in c["body"]["json"]["suppressions"]]
    assert {"domainName": domain_b, "emailAddress": [email], "type": "BOUNCE"} in deletes
    # every domain the account has was looked at, B among them
    account = {d["domainName"] for d in requests.get(f"{sandbox}/_sandbox/infobip/domains", timeout=5).json()}
    looked = {c["query"].split("domainName=")[1].split("&")[0] for c in calls if "domainName=" in (c["query"] or "")}
    assert domain_b in account and looked == account
    assert _infobip_suppressions(sandbox, email) == []
    # And the next send from B is delivered
    again = requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30)
    assert again.status_code == 202, again.text
    dispatch = again.json()["dispatch_id"]

    def delivered() -> bool:
        message = requests.get(f"{stack.api}/messages/{dispatch}", headers=headers, timeout=20).json()
        return message["recipients"][0]["status"] == "delivered"

    assert _until(delivered), "the next send was not delivered"


def test_one_domain_unreachable_leaves_the_release_pending_and_the_queue_finishes_it(
    quick_stack: RunningStack,
) -> None:
    stack, sandbox = quick_stack, str(quick_stack.sandbox)
    headers = {"X-Api-Key": stack.api_key}
    email = f"ibu-{uuid.uuid4().hex[:8]}@example.com"
    domain_b = f"u{uuid.uuid4().hex[:6]}.example.org"
    for domain in (domain_b, "mail.example.co.jp"):
        entry = {"domainName": domain, "emailAddress": email, "type": "BOUNCE"}
        requests.post(f"{sandbox}/_sandbox/infobip/suppressions", json=entry, timeout=5).raise_for_status()
    # Given every suppression call about domain B failing
    requests.post(f"{sandbox}/_sandbox/infobip/outages", json={"domainName": domain_b, "status": 503}, timeout=5)
    try:
        put = requests.put(f"{stack.api}/subscriptions/{email}", json={"subscribed": True}, headers=headers, timeout=30)
        # Then the re-subscription is made, the reachable domain released, Infobip's release pending
        assert put.status_code == 200, put.text
        assert put.json()["subscribed"] is True and put.json()["released"]["infobip"] == "pending"
        assert _infobip_suppressions(sandbox, email) == [(domain_b, "BOUNCE")]
    finally:
        requests.delete(f"{sandbox}/_sandbox/infobip/outages", timeout=5)

    # When Infobip answers again, the release check from the send queue completes it
    def released() -> bool:
        state = requests.get(f"{stack.api}/subscriptions/{email}", headers=headers, timeout=20).json()
        return (state.get("release") or {}).get("infobip") == "removed"

    assert _until(released, 60), "the pending release was never completed"
    assert _infobip_suppressions(sandbox, email) == []
