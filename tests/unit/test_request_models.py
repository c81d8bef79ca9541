"""The functions' hand-written request checks (models/mail.py, models/subscription.py) and the pydantic models
openapi.json is generated from (devkit/api_models.py) give every body the same verdict: the same accepted
value, or the same first error at the same place in the same words."""

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from martech_bridge.api import validation_error
from martech_bridge.models import mail, plain, subscription
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from devkit import api_models

PAIRS: dict[str, tuple[Any, type[BaseModel]]] = {
    "MailRequest": (mail.MailRequest, api_models.MailRequest),
    "SubscriptionUpdate": (subscription.SubscriptionUpdate, api_models.SubscriptionUpdate),
}


def verdicts(name: str, body: Any) -> tuple[Any, Any]:
    """Each side's answer: the accepted value as JSON text (the idempotency hash is taken of it, so key order
    counts too), or the first error's place and words."""
    ours, theirs = PAIRS[name]
    try:
        mine: Any = ("ok", json.dumps(ours.model_validate(body).model_dump(mode="json", by_alias=True)))
    except plain.ValidationError as exc:
        mine = ("refused", exc.loc, exc.msg)
    try:
        reference: Any = ("ok", json.dumps(theirs.model_validate(body).model_dump(mode="json", by_alias=True)))
    except PydanticError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        reference = ("refused", tuple(first["loc"]), first["msg"])
    return mine, reference


def agree(name: str, body: Any) -> None:
    mine, reference = verdicts(name, body)
    assert mine == reference, body


OK = {"to": [{"email": "taro@example.com"}], "subject": "s", "text": "t"}
ATTACHMENT = {"filename": "a.pdf", "content": "eA=="}

MAIL_BODIES: list[Any] = [
    OK,
    # Not from HTTP (strict_json refuses them), but from code: stored as pydantic stored them, as null.
    {**OK, "to": [{"email": "a@example.com", "attributes": {"": float("inf")}}]},
    {**OK, "template_data": {"x": [float("nan"), -float("inf")]}},
    *({**OK, "track_opens": v} for v in (2.0, -1.0, 2.5, 1e20, 2**63, "of", 0.0)),
    {**OK, "to": [{"email": "  Taro@Example.COM "}]},
    {**OK, "to": [{"email": "info@straße.de", "name": "Taro", "attributes": {"a": [1, {"b": None}]}}]},
    {
        "provider": "braze",
        "template_id": "c1",
        "to": [{"email": "a@example.com", "user_alias": {"alias_name": "n", "alias_label": "l"}}],
        "template_data": {"x": 1},
        "external_send_id": "abc+/=",
    },
    {**OK, "from": {"email": "news@example.com", "name": "News"}, "reply_to": {"email": "r@example.com"}},
    {**OK, "sender": {"email": "news@example.com"}},
    {**OK, "sender": {"email": "nope"}},
    {**OK, "from": {"email": "news@example.com"}, "sender": {"email": "news@example.com"}},
    {**OK, "from": None, "sender": {"email": "news@example.com"}},
    {
        **OK,
        "attachments": [ATTACHMENT, {**ATTACHMENT, "type": "image/png", "disposition": "inline", "content_id": "i"}],
    },
    {**OK, "track_opens": True, "track_clicks": "no", "categories": ["transactional", "order"], "metadata": {"k": "v"}},
    {**OK, "track_opens": 1, "track_clicks": "YES"},
    {"to": [{"email": "a@example.com"}], "template_id": "t"},
    # refused
    {},
    [],
    "text",
    None,
    {**OK, "to": []},
    {**OK, "to": [{}] * 1001},
    {**OK, "to": "a@example.com"},
    {**OK, "to": [None]},
    {**OK, "to": [{"email": "nope"}]},
    {**OK, "to": [{"email": 42}]},
    {**OK, "to": [{"email": "a@example.com", "name": "a;b"}]},
    {**OK, "to": [{"email": "a@example.com", "name": ""}]},
    {**OK, "to": [{"email": "a@example.com", "user_id": "u", "user_alias": {"alias_name": "n", "alias_label": "l"}}]},
    {**OK, "to": [{"email": "a@example.com", "user_alias": {"alias_name": "n"}}]},
    {**OK, "to": [{"email": "a@example.com", "user_alias": "x"}]},
    {**OK, "to": [{"email": "a@example.com", "data": []}]},
    {**OK, "to": [{"email": "a@example.com", "extra": 1}]},
    {**OK, "to": [{"email": "a@example.com"}, {"email": "A@example.com"}]},
    {**OK, "provider": "mailchimp"},
    {**OK, "provider": 1},
    {**OK, "from": "a@example.com"},
    {**OK, "from": {"email": "a@example.com", "name": "x" * 257}},
    {**OK, "from": {}},
    {**OK, "subject": ""},
    {**OK, "subject": "x" * 999},
    {**OK, "subject": None},
    {"to": [{"email": "a@example.com"}], "subject": "s"},
    {**OK, "text": ""},
    {**OK, "html": 1.5},
    {**OK, "template_id": "x" * 129},
    {**OK, "template_data": "x"},
    {**OK, "attachments": [{"filename": "a/b", "content": "eA=="}]},
    {**OK, "attachments": [{"filename": "a.pdf", "content": "eA="}]},
    {**OK, "attachments": [{"filename": "a.pdf", "content": "eA==\n"}]},
    {**OK, "attachments": [{"filename": "a.pdf\n", "content": "eA=="}]},
    {**OK, "attachments": [{"filename": "a.pdf", "content": "eA==", "type": "nonsense"}]},
    {**OK, "attachments": [{"filename": "a.pdf", "content": "eA==", "disposition": "aside"}]},
    {**OK, "attachments": [{"filename": "a.pdf", "content": "eA==", "content_id": "a\x7f"}]},
    {**OK, "attachments": [{"content": "eA=="}]},
    {**OK, "attachments": [ATTACHMENT] * 101},
    {**OK, "attachments": {}},
    {**OK, "track_opens": "maybe"},
    {**OK, "track_opens": 2},
    {**OK, "track_opens": [True]},
    {**OK, "categories": ["a"] * 11},
    {**OK, "categories": ["a", "a"]},
    {**OK, "categories": [""]},
    {**OK, "categories": [1]},
    {**OK, "metadata": {"k": 1}},
    {**OK, "metadata": {"": "v"}},
    {**OK, "metadata": {"k" * 101: "v"}},
    {**OK, "metadata": ["k"]},
    {**OK, "external_send_id": "has space"},
    {**OK, "external_send_id": "d_0123456789abcdef01234567-0"},
    {**OK, "external_send_id": "ok\n"},
    {**OK, "external_send_id": ""},
    {**OK, "unknown": 1},
    {**OK, "to": [{"email": "x" * 300 + "@example.com"}]},
    {**OK, "subject": 10**400},
    {**OK, "subject": math.nan},
    {**OK, "subject": math.inf},
    {**OK, "to": [{"email": "a@example.com", "user_id": 10**30}]},
    {**OK, "template_data": {"deep": [[[[{"x": None}]]]]}},
]

UPDATE_BODIES: list[Any] = [
    {"subscribed": True},
    {"subscribed": False, "suppression": "hard_bounce", "reason": "550"},
    {"subscribed": False, "reason": None, "suppression": None},
    {},
    [],
    {"subscribed": "true"},
    {"subscribed": 1},
    {"subscribed": None},
    {"subscribed": True, "suppression": "manual"},
    {"subscribed": False, "suppression": "x"},
    {"subscribed": False, "suppression": 1},
    {"subscribed": False, "reason": ""},
    {"subscribed": False, "reason": "x" * 501},
    {"subscribed": False, "reason": 5},
    {"subscribed": False, "extra": 1},
    {"extra": 1},
]


@pytest.mark.parametrize("body", MAIL_BODIES, ids=range(len(MAIL_BODIES)))
def test_mail_requests_get_the_schemas_verdict(body: Any) -> None:
    agree("MailRequest", body)


@pytest.mark.parametrize("body", UPDATE_BODIES, ids=range(len(UPDATE_BODIES)))
def test_subscription_updates_get_the_schemas_verdict(body: Any) -> None:
    agree("SubscriptionUpdate", body)


def test_the_sample_holds_both_verdicts() -> None:
    """The samples above are only a check if they are both accepted and refused, in many places."""
    outcomes = [verdicts("MailRequest", b)[0] for b in MAIL_BODIES]
    assert sum(o[0] == "ok" for o in outcomes) >= 8
    assert len({o[1] for o in outcomes if o[0] == "refused"}) >= 25  # distinct places named


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        ["", "a@example.com", "eA==", "sendgrid", "hard_bounce", "x" * 300, "d_0123456789abcdef01234567"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MAIL_KEYS = st.sampled_from([*api_models.MailRequest.model_fields, "from", "nope"])
RECIPIENT_KEYS = st.sampled_from([*api_models.Recipient.model_fields, "nope"])
ATTACHMENT_KEYS = st.sampled_from([*api_models.Attachment.model_fields, "nope"])


@st.composite
def mail_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with a few of its fields (at the top, in a recipient, in an attachment) replaced by
    arbitrary JSON."""
    body: dict[str, Any] = {
        "to": [{"email": "taro@example.com"}, {"email": "hanako@example.com", "user_id": "u"}],
        "subject": "s",
        "text": "t",
        "attachments": [dict(ATTACHMENT)],
    }
    if draw(st.booleans()):
        body[draw(st.sampled_from(["from", "sender", "reply_to"]))] = {"email": "news@example.com", "name": "N"}
    if draw(st.booleans()):
        body["to"][0]["user_alias"] = {"alias_name": "n", "alias_label": "l"}
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "recipient", "attachment", "nested"]))
        if where == "top":
            body[draw(MAIL_KEYS)] = draw(JSON)
        elif where == "nested":  # inside an address or a Braze alias, if there is one
            nested = [v for v in (body.get("from"), body.get("sender"), body.get("reply_to")) if isinstance(v, dict)]
            recipient = body["to"][0] if isinstance(body.get("to"), list) and body["to"] else None
            if isinstance(recipient, dict) and isinstance(recipient.get("user_alias"), dict):
                nested.append(recipient["user_alias"])
            if nested:
                key = draw(st.sampled_from(["email", "name", "alias_name", "alias_label", "nope"]))
                draw(st.sampled_from(nested))[key] = draw(JSON)
        elif where == "recipient" and isinstance(body.get("to"), list) and body["to"]:
            if isinstance(body["to"][0], dict):
                body["to"][0][draw(RECIPIENT_KEYS)] = draw(JSON)
        elif isinstance(body.get("attachments"), list) and body["attachments"]:
            if isinstance(body["attachments"][0], dict):
                body["attachments"][0][draw(ATTACHMENT_KEYS)] = draw(JSON)
    return body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mail_bodies())
def test_arbitrary_mail_requests_get_the_schemas_verdict(body: dict[str, Any]) -> None:
    agree("MailRequest", body)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["subscribed", "reason", "suppression", "nope"]), JSON, max_size=3))
def test_arbitrary_subscription_updates_get_the_schemas_verdict(body: dict[str, Any]) -> None:
    agree("SubscriptionUpdate", body)


def test_a_refusal_is_a_400_naming_the_field_in_pydantics_words() -> None:
    with pytest.raises(plain.ValidationError) as caught:
        mail.MailRequest.model_validate({**OK, "to": [{"email": "a@example.com", "name": "a,b"}]})
    error = validation_error(caught.value)
    assert (error.status, error.code, error.details.get("field")) == (400, "validation_error", "to.0.name")
    assert error.message == "to.0.name: Value error, a recipient name cannot contain ';' or ',' (SendGrid refuses them)"


T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
STORED: list[tuple[Any, type[BaseModel], dict[str, Any]]] = [
    (subscription.Subscription, api_models.Subscription, {"email": "a@b.co", "subscribed": True, "changed_at": T0}),
    (
        subscription.Subscription,
        api_models.Subscription,
        {
            "email": "a@b.co",
            "subscribed": False,
            "suppression": "hard_bounce",
            "reason": "550 5.1.1",
            "source": "event:sendgrid",
            "changed_at": T0 + timedelta(microseconds=120_000),
            "version": 7,
            "release": {"sendgrid": "pending"},
        },
    ),
    (
        subscription.Subscription,
        api_models.Subscription,
        {"email": "a@b.co", "subscribed": True, "changed_at": "2026-11-22T05:00:00.000001Z", "version": 2},
    ),
    (
        subscription.SubscriptionChange,
        api_models.SubscriptionChange,
        {"subscribed": False, "suppression": "manual", "source": "api", "changed_at": T0, "previous_subscribed": True},
    ),
    (
        subscription.SubscriptionChange,
        api_models.SubscriptionChange,
        {
            "subscribed": True,
            "source": "release",
            "changed_at": datetime(2026, 11, 22, 14, 0, tzinfo=timezone(timedelta(hours=9))),
            "released": {"braze": "removed"},
        },
    ),
    (mail.RecipientResult, api_models.RecipientResult, {"email": None, "message_id": "d_1.0", "status": "invalid"}),
    (
        mail.RecipientResult,
        api_models.RecipientResult,
        {
            "email": "a@b.co",
            "message_id": "d_1.1",
            "status": "accepted",
            "reason": "sent through Infobip",
            "provider_message_id": "x.1",
            "provider": "infobip",
        },
    ),
]


@pytest.mark.parametrize(("ours", "theirs", "record"), STORED, ids=range(len(STORED)))
def test_stored_records_are_written_byte_for_byte_as_before(
    ours: Any, theirs: type[BaseModel], record: dict[str, Any]
) -> None:
    """DynamoDB items and queue bodies keep their form: the same JSON text as the pydantic models wrote, every
    way the code dumps them, and read back to the same record."""
    mine, reference = ours.model_validate(record), theirs.model_validate(record)
    assert json.dumps(mine.model_dump(mode="json")) == json.dumps(reference.model_dump(mode="json"))
    for how in ({"exclude_none": True}, {}):  # python objects: equal values, in the same order
        assert list(mine.model_dump(**how).items()) == list(reference.model_dump(**how).items()), how
    stored = mine.model_dump(mode="json")
    assert ours.model_validate(stored) == mine and ours.model_validate(stored).model_dump(mode="json") == stored


@pytest.mark.parametrize(
    "kind", ["te\u0308xt/plain", "text/\u00bd", "text/\u203fa", "text/a\u200db", "t\u0663xt/plain"]
)
def test_a_media_type_outside_ascii_is_refused_by_both(kind: str) -> None:
    """Python's \\w (the hand check's) and Rust's (pydantic's) differ outside ASCII - a combining mark, a
    vulgar fraction, a joiner - so the pattern names ASCII: a media type is ASCII (RFC 6838 4.2)."""
    body = {**OK, "attachments": [{**ATTACHMENT, "type": kind}]}
    agree("MailRequest", body)
    assert verdicts("MailRequest", body)[0][0] == "refused"


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("subject", {**OK, "subject": "Hello\r\nBcc: x@example.net"}),
        ("subject", {**OK, "subject": "Hello\nthere"}),
        ("from.name", {**OK, "from": {"email": "news@example.com", "name": "News\r\nBcc: x@example.net"}}),
        ("reply_to.name", {**OK, "reply_to": {"email": "r@example.com", "name": "R\rX"}}),
        ("to.0.name", {**OK, "to": [{"email": "a@example.com", "name": "Taro\nBcc x"}]}),
        ("to.0.name", {**OK, "to": [{"email": "a@example.com", "name": "Taro\x00"}]}),
    ],
)
def test_a_line_break_in_a_header_field_is_refused_by_both(where: str, body: dict[str, Any]) -> None:
    """The subject and display names become mail headers (Infobip's `from` is "name <address>" text): a line
    break there could start a header of the caller's choosing (pessimistic reading: no provider documents
    what it does with one), so both readings refuse it, naming the field."""
    agree("MailRequest", body)
    mine, _ = verdicts("MailRequest", body)
    assert mine[0] == "refused" and ".".join(map(str, mine[1])) == where, mine
