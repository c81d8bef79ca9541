"""Issue 16 part 4 against the running local stack: the sample ISO-2022-JP reply (events/payloads/
reply-iso-2022-jp.eml, from taro.yamada@example.com) posted as `make post-eml` posts it becomes one kintone
record linked to the send it answers when that send went to its sender, and an unverified, unlinked record
(kept, listed, with the reason) when it names a send that went to someone else."""

import contextlib
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import requests

from devkit.inbound import post_eml
from devkit.template import REPO_ROOT
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
SAMPLE = REPO_ROOT / "events" / "payloads" / "reply-iso-2022-jp.eml"


def _until(what: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.5)
    return what()


def test_the_sample_reply_is_linked_only_to_a_send_that_went_to_its_sender(stack: RunningStack) -> None:
    if stack.sandbox is None or stack.aws_endpoint is None:
        pytest.skip("needs the local stack's sandbox and embedded AWS")
    headers = {"X-Api-Key": stack.api_key}
    running = {"api": stack.api, "sandbox": stack.sandbox, "aws_endpoint": stack.aws_endpoint}

    def send(to: str) -> str:
        mail = {"provider": "sendgrid", "to": [{"email": to}], "subject": "ご注文", "text": "t"}
        answer = requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["dispatch_id"])

    def posted(dispatch: str) -> dict[str, Any]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert post_eml(SAMPLE, dispatch_id=dispatch, stack=running) == 0
        return dict(json.loads(out.getvalue()))

    def records() -> list[dict[str, Any]]:
        return requests.get(f"{stack.sandbox}/_sandbox/kintone/apps/12", timeout=5).json()["records"]

    before = {r["reply_id"]["value"] for r in records()}
    to_taro, to_someone_else = send("taro.yamada@example.com"), send(f"other-{uuid.uuid4().hex[:6]}@example.com")
    # The same sample, once naming each send (distinct objects: the rewritten address differs)
    assert posted(to_someone_else) == {"outcomes": ["unmatched"]}
    assert posted(to_taro) == {"outcomes": ["matched"]}

    def new_records() -> list[dict[str, Any]]:
        fresh = [r for r in records() if r["reply_id"]["value"] not in before]
        return fresh if len(fresh) == 2 else []

    fresh = _until(new_records)
    assert fresh, "the replies' kintone records were not written"
    by_claim = {r.get("claimed_dispatch_id", {}).get("value"): r for r in fresh}
    linked, unverified = by_claim[None], by_claim[to_someone_else]
    assert linked["dispatch_id"]["value"] == to_taro and linked["message_id"]["value"] == f"{to_taro}.0"
    assert linked["body_text"]["value"] == "お世話になっております。\n納期を教えてください。"
    assert "dispatch_id" not in unverified and "message_id" not in unverified
    assert "not a recipient" in unverified["unmatched_reason"]["value"]
    listed = requests.get(f"{stack.api}/replies", params={"unmatched": "true"}, headers=headers, timeout=20).json()
    assert any(r.get("claimed_dispatch_id") == to_someone_else for r in listed["results"])
    (own,) = requests.get(f"{stack.api}/replies", params={"dispatch_id": to_taro}, headers=headers, timeout=20).json()[
        "results"
    ]
    assert own["matched"] is True and own["matched_by"] == "reply_address"


def test_a_reply_ses_did_not_authenticate_is_kept_unverified_through_post_eml(stack: RunningStack) -> None:
    # `make post-eml AUTH=fail`: SES's (simulated) Authentication-Results fail the sender's domain, so the
    # sample, though from the send's recipient, is kept and listed unlinked with SES's results as the reason.
    if stack.sandbox is None or stack.aws_endpoint is None:
        pytest.skip("needs the local stack's sandbox and embedded AWS")
    headers = {"X-Api-Key": stack.api_key}
    running = {"api": stack.api, "sandbox": stack.sandbox, "aws_endpoint": stack.aws_endpoint}
    mail = {"provider": "sendgrid", "to": [{"email": "taro.yamada@example.com"}], "subject": "ご注文", "text": "t"}
    answer = requests.post(f"{stack.api}/mail/send", json=mail, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    dispatch = str(answer.json()["dispatch_id"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert post_eml(SAMPLE, dispatch_id=dispatch, stack=running, auth="fail") == 0
    assert json.loads(out.getvalue()) == {"outcomes": ["unmatched"]}

    def listed() -> list[dict[str, Any]]:
        found = requests.get(f"{stack.api}/replies", params={"unmatched": "true"}, headers=headers, timeout=20)
        return [r for r in found.json()["results"] if r.get("claimed_dispatch_id") == dispatch]

    (reply,) = _until(listed)
    assert reply["matched"] is False and "did not authenticate" in reply["unmatched_reason"]
    assert "dmarc=fail" in reply["sender_auth"] and "@" not in reply["unmatched_reason"]
    assert requests.get(f"{stack.api}/replies", params={"dispatch_id": dispatch}, headers=headers, timeout=20).json()[
        "results"
    ] == []
