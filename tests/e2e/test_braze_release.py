"""Issue 16's Braze release against the running local stack: a hard bounce at the Braze sandbox puts the address
on Braze's hard-bounce list and Braze drops mail to it; re-subscribing takes it off (the sandbox recorded the
documented calls) and the next send is delivered."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def _until(what: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return what()


def test_a_braze_hard_bounce_is_dropped_until_a_resubscription_releases_it(stack: RunningStack) -> None:
    if stack.sandbox is None:
        pytest.skip("needs the local stack's sandbox")
    sandbox, headers = stack.sandbox, {"X-Api-Key": stack.api_key}
    email, user = f"bz-{uuid.uuid4().hex[:8]}@example.com", f"user-{uuid.uuid4().hex[:8]}"
    mail = {"provider": "braze", "template_id": "c-order", "to": [{"email": email, "user_id": user}]}
    # Given a mailbox that does not exist: Braze's `bounced` postback comes back with the 5.1.1 reply
    requests.post(f"{sandbox}/_sandbox/braze/mailboxes", json={"email": email, "outcome": "bounce"}, timeout=5)
    assert requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30).status_code == 202

    def bounced() -> bool:
        state = requests.get(f"{stack.api}/subscriptions/{email}", headers=headers, timeout=20)
        return state.status_code == 200 and state.json()["suppression"] == "hard_bounce"

    assert _until(bounced), "the Braze hard bounce never unsubscribed the address"
    assert email in requests.get(f"{sandbox}/_sandbox/braze/suppressions", timeout=5).json()["hard_bounces"]
    # Then Braze itself drops mail to it (another system sending straight to Braze): accepted, then `aborted`
    direct = requests.post(
        f"{sandbox}/braze/transactional/v1/campaigns/c-order/send",
        json={"recipient": {"external_user_id": user, "attributes": {"email": email}}},
        headers={"Authorization": "Bearer local-braze-key"},
        timeout=10,
    )
    assert direct.status_code == 200
    dispatch = direct.json()["dispatch_id"]

    def aborted() -> list[dict[str, Any]]:
        found = requests.get(
            f"{stack.api}/events", params={"provider_message_id": dispatch}, headers=headers, timeout=20
        ).json()
        return [e for e in found["results"] if e.get("provider_event") == "aborted"]

    (event,) = _until(aborted) or [None]
    assert event is not None, "the sandbox did not drop mail to a hard-bounced address"
    assert event["description"] == "User not emailable"
    # When the mailbox works again and the address is re-subscribed
    requests.post(f"{sandbox}/_sandbox/braze/mailboxes", json={"email": email, "outcome": "deliver"}, timeout=5)
    requests.delete(f"{sandbox}/_sandbox/braze/requests", timeout=5)
    put = requests.put(f"{stack.api}/subscriptions/{email}", json={"subscribed": True}, headers=headers, timeout=30)
    # Then Braze's hard-bounce list no longer holds it (the sandbox recorded the calls), and mail is delivered
    assert put.status_code == 200, put.text
    assert put.json()["released"]["braze"] == "removed"
    calls = [(c["method"], c["path"]) for c in requests.get(f"{sandbox}/_sandbox/braze/requests", timeout=5).json()]
    assert ("POST", "/email/bounce/remove") in calls and ("POST", "/email/spam/remove") in calls
    assert email not in requests.get(f"{sandbox}/_sandbox/braze/suppressions", timeout=5).json()["hard_bounces"]
    history = requests.get(f"{stack.api}/subscriptions/{email}", headers=headers, timeout=20).json()["history"]
    assert any(h["source"] == "release:braze" and h["released"] == {"braze": "removed"} for h in history)
    sent = requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30)
    assert sent.status_code == 202, sent.text
    again = sent.json()["dispatch_id"]

    def delivered() -> bool:
        message = requests.get(f"{stack.api}/messages/{again}", headers=headers, timeout=20).json()
        return message["recipients"][0]["status"] == "delivered"

    assert _until(delivered), "the next send was not delivered"
