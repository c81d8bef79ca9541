"""Tying a reply to the message it answers, verifiably: a reply+<dispatch id>@ address, In-Reply-To and
References can be written by anyone, so the message they name is linked only when the reply's sender is one
of that message's recipients; otherwise the reply is kept unlinked, naming what it claimed and why."""

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, cast

import pytest
from martech_bridge.adapters.message_store import MessageStore
from martech_bridge.logic.replies import parse
from martech_bridge.replies import NO_SENDER, NOT_A_RECIPIENT, tie

from tests.unit.fakes import FakeMessageStore

DISPATCH = "d_0123456789abcdef01234567"
OTHER = "d_fedcba9876543210fedcba98"


def reply(sender: str | None, to: str = "shop@mail.example.co.jp", **headers: str) -> bytes:
    """A reply as a Japanese mail client writes it: ISO-2022-JP display name, subject and text."""
    message = EmailMessage()
    if sender is not None:
        message["From"] = f"山田 太郎 <{sender}>"
    message["To"] = to
    message["Subject"] = "Re: ご注文ありがとうございます"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(
        "納期を教えてください。\n\n> ご注文 A-10023 を承りました。\n", charset="iso-2022-jp", cte="7bit"
    )
    raw = message.as_bytes()
    assert b"\x1b$B" in raw  # ISO-2022-JP on the wire
    return raw


def tied(raw: bytes, store: FakeMessageStore) -> dict[str, Any]:
    return tie(parse(raw), cast(MessageStore, store))


@pytest.fixture()
def store() -> FakeMessageStore:
    messages = FakeMessageStore()
    messages.sent(DISPATCH, "sendgrid", "sgXmsgId0001", "taro@example.com", "hanako@example.com")
    messages.sent(OTHER, "braze", "acf471119f7449d579e8089032003ded", "jiro@example.com")
    return messages


def test_a_reply_from_a_recipient_through_the_reply_address_is_linked_to_that_recipient(
    store: FakeMessageStore,
) -> None:
    link = tied(reply("hanako@example.com", to=f"reply+{DISPATCH}@reply.example.com"), store)
    assert link["matched_by"] == "reply_address" and link["dispatch_id"] == DISPATCH
    assert link["message_id"] == f"{DISPATCH}.1" and link["recipient"] == "hanako@example.com"
    assert "unmatched_reason" not in link


def test_a_reply_address_used_by_someone_the_message_was_not_sent_to_is_kept_unlinked(store: FakeMessageStore) -> None:
    link = tied(reply("mallory@attacker.example", to=f"reply+{DISPATCH}@reply.example.com"), store)
    assert "dispatch_id" not in link and "matched_by" not in link
    assert link == {"claimed_by": "reply_address", "claimed_dispatch_id": DISPATCH, "unmatched_reason": NOT_A_RECIPIENT}
    assert "mallory" not in link["unmatched_reason"]  # the reason names no address


def test_our_message_id_in_in_reply_to_links_only_the_recipient_it_was_sent_to(store: FakeMessageStore) -> None:
    named = f"<{DISPATCH}.0@mail.example.co.jp>"
    own = tied(reply("taro@example.com", In_Reply_To=named), store)
    assert own["matched_by"] == "in_reply_to" and own["message_id"] == f"{DISPATCH}.0"
    # Hanako got the same dispatch, but not that message: its id in her reply is no proof
    other = tied(reply("hanako@example.com", In_Reply_To=named), store)
    assert other == {"claimed_by": "in_reply_to", "claimed_dispatch_id": DISPATCH, "unmatched_reason": NOT_A_RECIPIENT}


def test_a_providers_id_shared_by_several_recipients_links_the_one_who_replied(store: FakeMessageStore) -> None:
    # SendGrid's X-Message-Id is one per request: both recipients' messages carry it
    link = tied(reply("hanako@example.com", In_Reply_To="<sgXmsgId0001@ismtpd0001p1.sendgrid.net>"), store)
    assert link["matched_by"] == "in_reply_to" and link["message_id"] == f"{DISPATCH}.1"
    forged = tied(reply("mallory@attacker.example", In_Reply_To="<sgXmsgId0001@ismtpd0001p1.sendgrid.net>"), store)
    assert forged["claimed_dispatch_id"] == DISPATCH and "dispatch_id" not in forged


def test_the_sender_is_compared_as_the_send_flow_stores_addresses(store: FakeMessageStore) -> None:
    store.sent("d_00000000000000000000abcd", "braze", "b-1", "user@xn--r8jz45g.jp")  # 例え.jp, as stored
    assert (
        tied(reply("Taro@EXAMPLE.com", to=f"reply+{DISPATCH}@reply.example.com"), store)["message_id"]
        == f"{DISPATCH}.0"
    )
    idn = tied(reply("user@例え.jp", In_Reply_To="<b-1@braze.example>"), store)
    assert idn["dispatch_id"] == "d_00000000000000000000abcd"


def test_a_reply_without_a_sender_naming_a_message_is_unverified_with_its_reason(store: FakeMessageStore) -> None:
    link = tied(reply(None, to=f"reply+{DISPATCH}@reply.example.com"), store)
    assert link == {"claimed_by": "reply_address", "claimed_dispatch_id": DISPATCH, "unmatched_reason": NO_SENDER}


def test_a_forged_name_does_not_hide_a_genuine_one_further_on(store: FakeMessageStore) -> None:
    # A reply+ address naming a message Jiro never got, and a References id of the message he did get
    raw = reply(
        "jiro@example.com",
        to=f"reply+{DISPATCH}@reply.example.com",
        References="<acf471119f7449d579e8089032003ded@braze.example>",
    )
    link = tied(raw, store)
    assert link["dispatch_id"] == OTHER and link["matched_by"] == "in_reply_to"


def test_a_reply_naming_nothing_we_sent_is_plain_unmatched(store: FakeMessageStore) -> None:
    assert tied(reply("taro@example.com", In_Reply_To="<unknown@elsewhere.example>"), store) == {}
    assert tied(reply("taro@example.com", to="reply+d_99999999999999999999ffff@reply.example.com"), store) == {}
