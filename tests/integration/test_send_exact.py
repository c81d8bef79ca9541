"""Issue 11: sends that are exact against the real SendGrid, Braze and Infobip. Each test drives `POST /mail/send`
over real HTTP against the corrected sandbox fakes (moto for AWS), and the adapters' bodies are checked
against the vendors' own published models (the official SDKs), not only against our fakes."""

import base64
import hashlib
import json
import time
import uuid
from typing import Any

import pytest
import requests

from devkit.queues import sqs_event
from devkit.sandbox.server import Sandbox
from devkit.template import local_queue_url
from tests.conftest import Functions
from tests.integration.test_event_processing import message, post_events, work
from tests.integration.test_send import addr, fault, recorded, send


@pytest.fixture(autouse=True)
def fresh_sandbox(sandbox: Sandbox) -> Sandbox:
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    return sandbox


def sent(sandbox: Sandbox, provider: str) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/{provider}/sent", timeout=5).json()


def request_hash(mail: dict[str, Any]) -> str:
    from martech_bridge.models.mail import MailRequest

    dumped = MailRequest.model_validate(mail).model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(dumped, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def kept(ours: Any, theirs: Any) -> bool:
    """Every field of `ours` is in `theirs` with the same value (`theirs` may add defaults)."""
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(k in theirs and kept(v, theirs[k]) for k, v in ours.items())
    if isinstance(ours, list):
        return isinstance(theirs, list) and len(ours) == len(theirs) and all(map(kept, ours, theirs))
    return ours == theirs


# ------------------------------------------------------------------ 1. Infobip per-recipient ids
def test_infobip_body_is_valid_against_infobips_own_v4_model(functions: Functions, sandbox: Sandbox) -> None:
    from infobip_api_client.models.email_request import EmailRequest

    logo = base64.b64encode(b"\x89PNG logo").decode()
    status, body, _ = send(
        functions,
        {
            "provider": "infobip",
            "to": [{"email": addr("a"), "data": {"name": "A"}}, {"email": addr("b")}],
            "subject": "件名",
            "html": '<img src="cid:logo-1">',
            "categories": ["order"],
            "track_opens": True,
            "track_clicks": False,
            "attachments": [
                {
                    "filename": "logo.png",
                    "content": logo,
                    "type": "image/png",
                    "disposition": "inline",
                    "content_id": "logo-1",
                },
                {"filename": "a.pdf", "content": logo, "type": "application/pdf"},
            ],
        },
    )
    assert status == 202, body
    (call,) = recorded(sandbox, "infobip")
    wire = call["body"]["json"]
    # The SDK model refuses wrong types and drops what it does not know: everything we sent must survive
    # the round trip (the SDK adds its defaults, such as `track`).
    assert kept(wire, EmailRequest.from_dict(wire).to_dict())
    content = wire["messages"][0]["content"]
    # Infobip addresses an inline image as cid:FILENAME: the file is named after the caller's content_id.
    assert content["inlineImages"] == [
        {"type": "binary", "content": logo, "contentType": "image/png", "fileName": "logo-1"}
    ]
    assert wire["options"]["tracking"] == {
        "trackingUrl": wire["messages"][0]["webhooks"]["delivery"]["url"],
        "trackOpens": True,
        "trackClicks": False,
    }


def test_a_delivery_report_with_only_infobips_message_id_advances_the_right_recipient(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    emails = [addr("r0"), addr("r1"), addr("r2")]
    status, body, _ = send(
        functions, {"provider": "infobip", "to": [{"email": e} for e in emails], "subject": "s", "text": "t"}
    )
    assert status == 202
    dispatch = body["dispatch_id"]
    answered = {m["destination"]: m["messageId"] for m in sent(sandbox, "infobip")[0]["messages"]}
    assert [r["provider_message_id"] for r in body["recipients"]] == [answered[e] for e in emails]
    post_events(
        functions,
        "infobip",
        {
            "results": [
                {  # no bulkId, no callbackData, no address: only the id Infobip answered with
                    "messageId": answered[emails[1]],
                    "doneAt": "2026-11-22T05:00:04.000+0000",
                    "status": {"groupId": 3, "groupName": "DELIVERED", "name": "DELIVERED_TO_HANDSET"},
                    "error": {"permanent": False},
                }
            ]
        },
        "token=local-infobip-webhook-secret",  # no bulkId to derive a per-dispatch token from: the shared one
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert [r["status"] for r in message(functions, dispatch)["recipients"]] == ["accepted", "delivered", "accepted"]


# ------------------------------------------------------------------ 2. no resend after an ambiguous timeout
def test_infobip_timeout_is_unknown_and_never_resent(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "infobip", delay=3)  # carried out, answered after the bridge gave up
    status, body, _ = send(
        functions,
        {"provider": "infobip", "to": [{"email": addr()}, {"email": addr()}], "subject": "s", "text": "t"},
        PROVIDER_TIMEOUT_SECONDS="1",
    )
    assert status == 202 and body["status"] == "unknown"
    assert all(r["status"] == "unknown" and "not resent" in r["reason"] for r in body["recipients"])
    assert len(recorded(sandbox, "infobip")) == 1 and len(sent(sandbox, "infobip")) == 1


# ------------------------------------------------------------------ 3. Braze "queued"
def test_braze_queued_answer_means_accepted_not_failed(functions: Functions, sandbox: Sandbox) -> None:
    external = f"ext-{uuid.uuid4().hex}"
    first = requests.post(  # Braze already has this external_send_id (say, from a send whose answer was lost)
        f"{sandbox.url}/braze/transactional/v1/campaigns/c1/send",
        json={"external_send_id": external, "recipient": {"external_user_id": "u1"}},
        headers={"Authorization": "Bearer local-braze-key"},
        timeout=5,
    )
    assert first.status_code == 200
    status, body, _ = send(
        functions,
        {
            "provider": "braze",
            "template_id": "c1",
            "external_send_id": external,
            "to": [{"email": addr(), "user_id": "u1"}],
        },
    )
    # Not our attempt that Braze holds: never "failed" (the mail may have gone), never "accepted" (this request
    # sent nothing) - unknown, saying why.
    assert status == 202 and body["recipients"][0]["status"] == "unknown", body
    assert "already holds a send with this external_send_id" in body["recipients"][0]["reason"]
    assert len(sent(sandbox, "braze")) == 1  # and Braze sent it once


def test_postbacks_find_a_recipient_whose_send_got_the_queued_answer(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    fault(sandbox, "braze", delay=3, apply=True)  # Braze sends, the bridge gives up, the repeat is "queued"
    status, body, _ = send(
        functions,
        {
            "provider": "braze",
            "template_id": "c1",
            "to": [{"email": addr(), "user_id": "u5"}],
        },
        PROVIDER_TIMEOUT_SECONDS="1",
    )
    assert status == 202 and body["recipients"][0]["status"] == "accepted"
    assert "provider_message_id" not in body["recipients"][0]  # Braze never told us its dispatch_id
    braze_dispatch = sent(sandbox, "braze")[0]["dispatch_id"]
    post_events(
        functions,
        "braze",
        {
            "dispatch_id": braze_dispatch,
            "status": "delivered",
            "metadata": {
                "delivered_at": "2026-11-22T05:00:04.000+00:00",
                "external_send_id": f"{body['dispatch_id']}-0",
            },
        },
        "token=local-braze-postback-secret",
    )
    assert work(functions, moto_server) == {"batchItemFailures": []}
    assert [r["status"] for r in message(functions, body["dispatch_id"])["recipients"]] == ["delivered"]


# ------------------------------------------------------------------ 4. Braze fan-out
def test_300_braze_recipients_at_a_tenth_of_a_second_all_reach_braze(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "braze", count=300, delay=0.1, apply=True)
    recipients = [{"email": addr(f"b{i}"), "user_id": f"u{i}"} for i in range(300)]
    status, body, _ = send(functions, {"provider": "braze", "template_id": "c1", "to": recipients})
    assert status == 202 and body["status"] == "accepted"
    assert {r["status"] for r in body["recipients"]} == {"accepted"}
    assert len(sent(sandbox, "braze")) == 300


def test_braze_recipients_not_sent_in_time_are_queued_then_sent_once(
    functions: Functions, sandbox: Sandbox, moto_server
) -> None:
    sqs = moto_server.client("sqs")
    url = local_queue_url("SendQueue")
    sqs.purge_queue(QueueUrl=url)
    fault(sandbox, "braze", count=40, delay=0.3, apply=True)
    recipients = [{"email": addr(f"q{i}"), "user_id": f"q{i}"} for i in range(40)]
    status, body, _ = send(
        functions,
        {"provider": "braze", "template_id": "c1", "to": recipients},
        SEND_CONCURRENCY="2",
        SEND_DEADLINE_SECONDS="2",
    )
    assert status == 202 and body["status"] == "accepted", body
    statuses = [r["status"] for r in body["recipients"]]
    assert "failed" not in statuses and "pending" in statuses and "accepted" in statuses
    pending = [r["message_id"] for r in body["recipients"] if r["status"] == "pending"]
    requests.delete(f"{sandbox.url}/_sandbox/braze/faults", timeout=5).raise_for_status()  # Braze is quick again
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        messages += got
    assert sorted(json.loads(m["Body"])["recipients"][0]["message_id"] for m in messages) == sorted(pending)
    assert all("local-braze-key" not in m["Body"] for m in messages)  # credentials never queued
    for start in range(0, len(messages), 10):
        result = functions.invoke(
            "SendWorkerFunction",
            sqs_event(messages[start : start + 10], "arn:aws:sqs:us-east-1:123456789012:SendQueue"),
        )
        assert result["batchItemFailures"] == []
    stored = message(functions, body["dispatch_id"])
    assert {r["status"] for r in stored["recipients"]} == {"accepted"}
    assert all(r.get("provider_message_id") for r in stored["recipients"])
    accepted = sent(sandbox, "braze")
    assert len(accepted) == 40  # everyone once: the attempted ones were not sent again
    assert len({a["request"]["recipient"]["external_user_id"] for a in accepted}) == 40


def test_with_the_send_queue_down_the_unattempted_are_failed_and_were_not_sent(
    functions: Functions, sandbox: Sandbox
) -> None:
    fault(sandbox, "braze", count=30, delay=0.3, apply=True)
    recipients = [{"email": addr(f"n{i}"), "user_id": f"n{i}"} for i in range(30)]
    status, body, _ = send(
        functions,
        {"provider": "braze", "template_id": "c1", "to": recipients},
        SEND_CONCURRENCY="2",
        SEND_DEADLINE_SECONDS="2",
        SEND_QUEUE_URL=local_queue_url("NoSuchQueue"),
    )
    assert status == 202 and body["status"] == "partial", body
    refused = [r for r in body["recipients"] if r["status"] == "failed"]
    assert refused and all("not sent" in r["reason"] for r in refused)
    reached = {a["request"]["recipient"]["external_user_id"] for a in sent(sandbox, "braze")}
    accepted = {
        recipients[int(r["message_id"].rsplit(".", 1)[1])]["user_id"]
        for r in body["recipients"]
        if r["status"] == "accepted"
    }
    assert reached == accepted  # what is reported failed never reached Braze


# ------------------------------------------------------------------ 5. dispatch ids unique per send
def test_a_key_reused_after_its_window_is_a_new_send_that_overwrites_nothing(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    from martech_bridge.adapters.aws import dynamodb_table

    key = f"order-{uuid.uuid4().hex}"
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    first = send(functions, mail, [("idempotency-key", key)])[1]
    before = message(functions, first["dispatch_id"])
    dynamodb_table("IdempotencyTable").update_item(  # 24 h later: the key's window is over
        Key={"pk": f"send#{key}"}, UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": 1}
    )
    status, second, headers = send(functions, mail, [("idempotency-key", key)])
    assert status == 202 and "Idempotency-Replay" not in headers
    assert second["dispatch_id"] != first["dispatch_id"]
    assert second["recipients"][0]["message_id"] != first["recipients"][0]["message_id"]
    assert message(functions, first["dispatch_id"]) == before  # the first send's records are untouched
    assert len(sent(sandbox, "sendgrid")) == 2


def test_message_records_are_written_once_and_never_overwritten(aws_env) -> None:
    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.mail import RecipientResult

    store = MessageStore("MessagesTable", 30)
    dispatch = f"d_test{uuid.uuid4().hex[:12]}"
    one = RecipientResult(
        email="a@example.com", message_id=f"{dispatch}.0", status="accepted", provider_message_id="p1"
    )
    two = RecipientResult(email="b@example.com", message_id=f"{dispatch}.1", status="accepted")
    store.save(dispatch, "sendgrid", {"subject": "first"}, [one], "accepted", fresh=True)
    # A take-over's second write: what exists is kept, what is missing is added.
    changed = one.model_copy(update={"status": "failed"})
    store.save(dispatch, "sendgrid", {"subject": "second"}, [changed, two], "failed", fresh=False)
    assert store.get(dispatch)["subject"] == "first"
    assert [(r["message_id"], r["status"]) for r in store.recipients(dispatch)] == [
        (one.message_id, "accepted"),
        (two.message_id, "accepted"),
    ]


# ------------------------------------------------------------------ 6. the outcome is never lost
def test_a_record_failure_after_the_provider_accepted_keeps_the_answer_for_the_key(
    functions: Functions, sandbox: Sandbox
) -> None:
    key = [("idempotency-key", f"lost-{uuid.uuid4().hex}")]
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    status, body, _ = send(functions, mail, key, MESSAGES_TABLE="NoSuchTable")  # DynamoDB refuses every write
    assert status == 202 and body["recipients"][0]["status"] == "accepted", body
    again_status, again, headers = send(functions, mail, key)  # the caller repeats: no 409, no second send
    assert (again_status, again, headers["Idempotency-Replay"]) == (202, body, "true")
    assert len(sent(sandbox, "sendgrid")) == 1
    stored = message(functions, body["dispatch_id"])  # and the repeat wrote the records the first could not
    assert [r["status"] for r in stored["recipients"]] == ["accepted"]


def test_a_record_failure_without_a_key_says_the_mail_went(functions: Functions, sandbox: Sandbox) -> None:
    status, body, _ = send(
        functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"}, MESSAGES_TABLE="NoSuchTable"
    )
    assert status == 503 and body["error"]["code"] == "outcome_not_recorded"
    assert body["error"]["recipients"][0]["status"] == "accepted" and "do not send it again" in body["error"]["message"]


def abandoned_claim(key: str, mail: dict[str, Any], dispatch_id: str, phase: str) -> None:
    """A first attempt that claimed the key (and perhaps called the provider), then died: its lease is over."""
    from martech_bridge.adapters.aws import dynamodb_table
    from martech_bridge.adapters.idempotency_store import IdempotencyStore

    store = IdempotencyStore("IdempotencyTable")
    assert store.claim(f"send#{key}", request_hash(mail), dispatch_id) is None
    if phase == "calling":
        store.calling(f"send#{key}")
    dynamodb_table("IdempotencyTable").update_item(
        Key={"pk": f"send#{key}"},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 1},
    )


def test_an_abandoned_sendgrid_send_is_taken_over_and_not_resent(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    key = f"crash-{uuid.uuid4().hex}"
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    abandoned_claim(key, mail, f"d_dead{uuid.uuid4().hex[:8]}", "calling")
    status, body, headers = send(functions, mail, [("idempotency-key", key)])
    assert (
        status == 202
        and body["recipients"][0]["status"] == "unknown"
        and "not resent" in body["recipients"][0]["reason"]
    )
    assert recorded(sandbox, "sendgrid") == []  # SendGrid cannot deduplicate: nothing is sent twice
    assert send(functions, mail, [("idempotency-key", key)])[1] == body  # and the answer is kept


def test_an_abandoned_send_that_never_called_is_sent_with_its_first_dispatch_id(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    key = f"early-{uuid.uuid4().hex}"
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    dispatch = f"d_dead{uuid.uuid4().hex[:8]}"
    abandoned_claim(key, mail, dispatch, "claimed")
    status, body, _ = send(functions, mail, [("idempotency-key", key)])
    assert (status, body["dispatch_id"], body["status"]) == (202, dispatch, "accepted")
    assert len(sent(sandbox, "sendgrid")) == 1


def test_an_abandoned_braze_send_is_resent_and_braze_dedupes_it(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    key = f"braze-crash-{uuid.uuid4().hex}"
    mail = {
        "provider": "braze",
        "template_id": "c1",
        "to": [{"email": addr(), "user_id": "u9"}, {"email": addr(), "user_id": "u8"}],
    }
    dispatch = f"d_dead{uuid.uuid4().hex[:8]}"
    abandoned_claim(key, mail, dispatch, "calling")
    requests.post(  # the dead attempt had reached Braze for the first recipient
        f"{sandbox.url}/braze/transactional/v1/campaigns/c1/send",
        json={"external_send_id": f"{dispatch}-0", "recipient": {"external_user_id": "u9"}},
        headers={"Authorization": "Bearer local-braze-key"},
        timeout=5,
    ).raise_for_status()
    status, body, _ = send(functions, mail, [("idempotency-key", key)])
    assert status == 202 and [r["status"] for r in body["recipients"]] == ["accepted", "accepted"], body
    assert len(sent(sandbox, "braze")) == 2  # one each, although the first was called twice


def test_a_send_that_died_after_its_records_is_answered_from_them(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.mail import RecipientResult

    key = f"recorded-{uuid.uuid4().hex}"
    email = addr()
    mail = {"to": [{"email": email}], "subject": "s", "text": "t"}
    dispatch = f"d_dead{uuid.uuid4().hex[:8]}"
    abandoned_claim(key, mail, dispatch, "calling")
    done = RecipientResult(email=email, message_id=f"{dispatch}.0", status="accepted", provider_message_id="sg-1")
    MessageStore("MessagesTable", 30).save(dispatch, "sendgrid", {"subject": "s"}, [done], "accepted", fresh=True)
    status, body, headers = send(functions, mail, [("idempotency-key", key)])
    assert (status, headers["Idempotency-Replay"]) == (202, "true")
    assert body == {
        "dispatch_id": dispatch,
        "provider": "sendgrid",
        "status": "accepted",
        "recipients": [done.answer()],
    }
    assert recorded(sandbox, "sendgrid") == []


def test_a_repeat_within_the_lease_is_still_409(functions: Functions, sandbox: Sandbox, aws_env) -> None:
    from martech_bridge.adapters.idempotency_store import IdempotencyStore

    key = f"busy-{uuid.uuid4().hex}"
    mail = {"to": [{"email": addr()}], "subject": "s", "text": "t"}
    assert IdempotencyStore("IdempotencyTable").claim(f"send#{key}", request_hash(mail), "d_busy") is None
    status, body, _ = send(functions, mail, [("idempotency-key", key)])
    assert status == 409 and body["error"]["code"] == "idempotency_in_progress"


# ------------------------------------------------------------------ 7. IDNA 2008 on the wire
def test_an_idn_address_reaches_sendgrid_as_idna_2008(functions: Functions, sandbox: Sandbox) -> None:
    status, body, _ = send(functions, {"to": [{"email": "info@straße.de"}], "subject": "s", "text": "t"})
    assert status == 202 and body["recipients"][0]["email"] == "info@xn--strae-oqa.de"
    (call,) = recorded(sandbox, "sendgrid")
    assert call["body"]["json"]["personalizations"][0]["to"] == [{"email": "info@xn--strae-oqa.de"}]


# ------------------------------------------------------------------ 8. SendGrid categories and attachments
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"categories": ["注文確認"]}, "categories.0"),
        ({"attachments": [{"filename": "a;b.pdf", "content": "eA=="}]}, "attachments.0.filename"),
        ({"attachments": [{"filename": "a,b.pdf", "content": "eA=="}]}, "attachments.0.filename"),
        (
            {"attachments": [{"filename": "a.png", "content": "eA==", "disposition": "inline", "content_id": "x;y"}]},
            "attachments.0.content_id",
        ),
    ],
    ids=["japanese-category", "semicolon-filename", "comma-filename", "semicolon-content-id"],
)
def test_what_sendgrid_refuses_is_a_400_before_any_call(
    functions: Functions, sandbox: Sandbox, change: dict, field: str
) -> None:
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "s", "text": "t", **change})
    assert status == 400 and body["error"]["field"] == field, body
    assert recorded(sandbox, "sendgrid") == []


def test_sendgrid_body_is_what_sendgrids_own_library_builds(functions: Functions, sandbox: Sandbox) -> None:
    """sendgrid-python's helpers (SendGrid's official models of the v3 body), given the same message, build
    exactly what the adapter sent."""
    from sendgrid.helpers.mail import (
        Attachment,
        Category,
        ClickTracking,
        Content,
        ContentId,
        CustomArg,
        Disposition,
        FileContent,
        FileName,
        FileType,
        From,
        Mail,
        OpenTracking,
        Personalization,
        ReplyTo,
        Subject,
        To,
        TrackingSettings,
    )

    taro, hanako = addr("taro"), addr("hanako")
    status, body, _ = send(
        functions,
        {
            "to": [{"email": taro, "name": "Taro"}, {"email": hanako}],
            "subject": "s",
            "text": "t",
            "html": "<p>h</p>",
            "categories": ["order"],
            "metadata": {"tenant": "t_42"},
            "attachments": [
                {
                    "filename": "a.png",
                    "content": "eA==",
                    "type": "image/png",
                    "disposition": "inline",
                    "content_id": "logo",
                }
            ],
            "track_opens": True,
            "track_clicks": False,
        },
    )
    assert status == 202
    wire = recorded(sandbox, "sendgrid")[0]["body"]["json"]
    reference = Mail()
    reference.from_email = From("no-reply@mail.example.co.jp", "Example Shop")
    reference.reply_to = ReplyTo("support@example.co.jp")
    reference.subject = Subject("s")
    # add_personalization puts each new one first: added last to first, they come out in order.
    for i, (email, name) in reversed(list(enumerate(((taro, "Taro"), (hanako, None))))):
        personalization = Personalization()
        personalization.add_to(To(email, name))
        for key, value in (
            ("tenant", "t_42"),
            ("dispatch_id", body["dispatch_id"]),
            ("message_id", f"{body['dispatch_id']}.{i}"),
        ):
            personalization.add_custom_arg(CustomArg(key, value))
        reference.add_personalization(personalization)
    reference.add_content(Content("text/plain", "t"))
    reference.add_content(Content("text/html", "<p>h</p>"))
    reference.add_attachment(
        Attachment(
            FileContent("eA=="), FileName("a.png"), FileType("image/png"), Disposition("inline"), ContentId("logo")
        )
    )
    reference.add_category(Category("order"))
    tracking = TrackingSettings()
    tracking.click_tracking = ClickTracking(False, False)
    tracking.open_tracking = OpenTracking(True)
    reference.tracking_settings = tracking
    assert wire == reference.get()


# ------------------------------------------------------------------ 9. Braze profiles
def test_braze_never_keys_a_profile_by_address(functions: Functions, sandbox: Sandbox) -> None:
    status, body, _ = send(functions, {"provider": "braze", "template_id": "c1", "to": [{"email": addr()}]})
    assert status == 400 and body["error"]["field"] == "to.0.user_id"
    assert recorded(sandbox, "braze") == []
    alias = {"alias_name": "crm-42", "alias_label": "crm_id"}
    status, body, _ = send(
        functions, {"provider": "braze", "template_id": "c1", "to": [{"email": addr(), "user_alias": alias}]}
    )
    assert status == 202
    assert recorded(sandbox, "braze")[0]["body"]["json"]["recipient"]["user_alias"] == alias


# ------------------------------------------------------------------ 10. sizes before the send, answers per schema
def test_oversized_metadata_is_413_naming_the_field_before_any_call(functions: Functions, sandbox: Sandbox) -> None:
    metadata = {f"k{i}": "x" * 90 for i in range(120)}  # each part allowed; together past the limit
    for provider in ("sendgrid", "infobip"):
        status, body, _ = send(
            functions,
            {"provider": provider, "to": [{"email": addr()}], "subject": "s", "text": "t", "metadata": metadata},
        )
        assert status == 413 and body["error"]["field"] == "metadata", body
        assert recorded(sandbox, provider) == []


def test_oversized_attachments_are_413(functions: Functions, sandbox: Sandbox) -> None:
    big = base64.b64encode(b"x" * (4 * 1024 * 1024 + 1)).decode()
    status, body, _ = send(
        functions,
        {"to": [{"email": addr()}], "subject": "s", "text": "t", "attachments": [{"filename": "b", "content": big}]},
    )
    assert status == 413 and body["error"]["field"] == "attachments"


def test_a_recipient_without_an_address_is_answered_with_a_null_email(functions: Functions) -> None:
    status, body, _ = send(functions, {"to": [{"email": addr()}, {"user_id": "no-mail"}], "subject": "s", "text": "t"})
    assert status == 202 and body["recipients"][1] == {
        "email": None,
        "message_id": f"{body['dispatch_id']}.1",
        "status": "invalid",
        "reason": "no e-mail address",
    }


def test_a_thousand_long_recipients_fit_the_idempotency_record(functions: Functions, sandbox: Sandbox) -> None:
    """As plain JSON this answer is past DynamoDB's 400 KB item limit (long addresses, a reason each)."""
    domain = ".".join(["sub-domain-label-" + "x" * 36] * 4) + ".example.co.jp"  # 240 characters with the local part
    to = [{"email": f"{uuid.uuid4().hex[:6]}.{i:04d}@{domain}"} for i in range(1000)]
    key = [("idempotency-key", f"big-{uuid.uuid4().hex}")]
    mail = {"provider": "infobip", "to": to, "subject": "s", "text": "t"}
    fault(sandbox, "infobip", delay=2)  # every recipient `unknown`, with its reason
    first = send(functions, mail, key, PROVIDER_TIMEOUT_SECONDS="1")
    assert first[0] == 202 and first[1]["status"] == "unknown", first[1]
    assert len(json.dumps(first[1]).encode()) > 400 * 1024
    again = send(functions, mail, key, PROVIDER_TIMEOUT_SECONDS="1")
    assert again[1] == first[1] and again[2]["Idempotency-Replay"] == "true"
    assert len(recorded(sandbox, "infobip")) == 1


# ------------------------------------------------------------------ 11. rate limits
def test_a_sendgrid_429_waits_for_its_rate_limit_reset(functions: Functions, sandbox: Sandbox) -> None:
    reset = int(time.time()) + 5  # SendGrid's pacing: an epoch time, and no Retry-After
    fault(sandbox, "sendgrid", status=429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "s", "text": "t"})
    assert status == 202 and body["status"] == "accepted"
    first, second = recorded(sandbox, "sendgrid")
    assert first["time"] < reset - 1  # (the 429 came well before the reset)
    assert second["time"] >= reset - 0.2  # exponential backoff alone would have retried within ~0.5 s


def test_an_infobip_e429_is_read(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "infobip", count=10, status=429)
    status, body, _ = send(
        functions,
        {"provider": "infobip", "to": [{"email": addr()}], "subject": "s", "text": "t"},
        SEND_DEADLINE_SECONDS="3",
    )
    assert status == 502 and body["error"]["code"] == "provider_unavailable"
    assert body["error"]["provider_message"].startswith("E429: Too many requests sent.")


# ---------------------------------------------------------------- found by attacking the send path
@pytest.mark.parametrize("reset", ["²", "9" * 400])
def test_an_unreadable_rate_limit_reset_is_a_refusal_not_a_500(functions: Functions, sandbox: Sandbox, reset: str) -> None:
    fault(sandbox, "sendgrid", status=429, headers={"X-RateLimit-Reset": reset}, count=5)
    status, body, _ = send(functions, {"to": [{"email": addr()}], "subject": "hi", "text": "x"})
    assert status in (202, 502) and body, body  # an answer in the contract, whatever SendGrid's header said
    recipient = (body.get("recipients") or [{}])[0] if status == 202 else None
    assert recipient is None or recipient["status"] == "failed"
    assert not sent(sandbox, "sendgrid")


def test_a_provider_yes_in_an_unexpected_shape_is_recorded_accepted(functions: Functions, sandbox: Sandbox) -> None:
    fault(sandbox, "infobip", status=200, apply=True, body={"bulkId": "b", "messages": 5})
    status, body, _ = send(functions, {"provider": "infobip", "to": [{"email": addr()}], "subject": "hi", "text": "x"})
    assert status == 202 and body["recipients"][0]["status"] == "accepted", body  # never a 500 after the yes
    assert len(sent(sandbox, "infobip")) == 1


def test_the_bridges_own_external_send_id_form_is_reserved(functions: Functions) -> None:
    status, body, _ = send(
        functions,
        {
            "provider": "braze",
            "template_id": "c1",
            "external_send_id": "d_0123456789abcdef01234567-0",  # another send's recipient, as postbacks find it
            "to": [{"email": addr(), "user_id": "u1"}],
        },
    )
    assert status == 400 and body["error"]["field"] == "external_send_id", body


def test_braze_trigger_properties_are_measured_as_braze_may_and_refused_before_any_call(
    functions: Functions, sandbox: Sandbox
) -> None:
    data = {"note": "あ" * 10_000}  # 30 KB as UTF-8, 60 KB with every character escaped
    status, body, _ = send(
        functions, {"provider": "braze", "template_id": "c1", "template_data": data, "to": [{"email": addr(), "user_id": "u1"}]}
    )
    assert status == 400 and body["error"]["field"] == "to.0.data", body
    assert not recorded(sandbox, "braze")


def test_an_abandoned_send_whose_recipients_events_moved_on_is_answered_from_its_records(
    functions: Functions, sandbox: Sandbox, aws_env
) -> None:
    """A first attempt wrote its records and died before keeping its answer; events then moved its recipients
    on (delivered, bounced). The repeat answers from the records as the first would have - the provider took
    them - instead of refusing the stored statuses the send answer does not name (a 500 for a sent mail)."""
    from martech_bridge.adapters.aws import dynamodb_table
    from martech_bridge.adapters.message_store import MessageStore
    from martech_bridge.models.mail import RecipientResult

    key = f"moved-{uuid.uuid4().hex}"
    mail = {"to": [{"email": addr("a")}, {"email": addr("b")}], "subject": "s", "text": "t"}
    dispatch = f"d_dead{uuid.uuid4().hex[:8]}"
    abandoned_claim(key, mail, dispatch, "calling")
    results = [
        RecipientResult(email=r["email"], message_id=f"{dispatch}.{n}", status="accepted", provider_message_id="p")
        for n, r in enumerate(mail["to"])
    ]
    MessageStore("MessagesTable", 30).save(dispatch, "sendgrid", {"subject": "s"}, results, "accepted", fresh=True)
    for result, moved_to in zip(results, ("delivered", "bounced"), strict=True):
        dynamodb_table("MessagesTable").update_item(
            Key={"pk": f"MSG#{dispatch}", "sk": f"R#{result.message_id}"},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": moved_to},
        )
    status, body, _ = send(functions, mail, [("idempotency-key", key)])
    assert status == 202, body
    assert (body["dispatch_id"], [r["status"] for r in body["recipients"]]) == (dispatch, ["accepted", "accepted"])
    assert recorded(sandbox, "sendgrid") == []  # nothing sent again
