"""Replies captured in kintone (issue 16, part 4), through InboundMailFunction as the local stack runs it:
a send with REPLY_DOMAIN set carries Reply-To reply+<dispatch id>@; a reply stored in the inbound bucket
(moto S3) and announced by S3's notification becomes one stored reply and one kintone record linked to the
original message; unmatched and unreadable replies are kept and listed by GET /replies."""

import json
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from devkit.inbound import BUCKET, as_ses_stores, put_and_event
from devkit.sandbox.server import Sandbox
from devkit.stack import seed_demo_apps
from tests.conftest import Functions
from tests.integration.test_event_processing import call, deliver_all

HEADERS = [("content-type", "application/json"), ("x-api-key", "local-dev-key-1")]
DOMAIN = "reply.example.com"


@pytest.fixture()
def apps(functions: Functions, moto_server, sandbox: Sandbox) -> Sandbox:
    deliver_all(functions, moto_server)  # leftovers of other tests
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    seed_demo_apps(sandbox)
    return sandbox


def reply_records(sandbox: Sandbox) -> list[dict[str, Any]]:
    return requests.get(f"{sandbox.url}/_sandbox/kintone/apps/12", timeout=5).json()["records"]


def japanese_reply(sender: str, to: str, **headers: str) -> bytes:
    """A reply as a Japanese mail client writes it: ISO-2022-JP text with the quoted original, a PDF."""
    message = EmailMessage()
    message["From"] = f"山田 太郎 <{sender}>"
    message["To"] = to
    message["Subject"] = "Re: ご注文ありがとうございます"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    message["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example.jp>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    body = (
        "お世話になっております。\n納期を教えてください。\n\n"
        "2026年11月29日(日) 9:00 ショップ <no-reply@mail.example.co.jp>:\n"
        "> ご注文 A-10023 を承りました。\n"
    )
    message.set_content(body, charset="iso-2022-jp", cte="7bit")
    message.add_attachment(b"%PDF-1.4 spec", maintype="application", subtype="pdf", filename="仕様書.pdf")
    raw = message.as_bytes()
    assert b"\x1b$B" in raw  # really ISO-2022-JP on the wire
    return raw


def post(functions: Functions, moto_server, data: bytes, *, auth: str = "pass", **env: str) -> dict[str, Any]:
    """The message stored as SES stores it: with SES's fields on top, saying `auth` for its From domain."""
    event = put_and_event(moto_server.client("s3"), as_ses_stores(data, auth), BUCKET)
    return functions.invoke("InboundMailFunction", event, **env)


def replies(functions: Functions, query: str) -> list[dict[str, Any]]:
    status, body = call(functions, "QueryFunction", "GET", "/replies", "/replies", b"", HEADERS, query=query)
    assert status == 200, body
    return body["results"]


def test_a_japanese_reply_becomes_one_kintone_record_linked_to_the_original(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    raw = json.dumps({"provider": "sendgrid", "to": [{"email": customer}], "subject": "ご注文", "text": "t"}).encode()
    event_headers = HEADERS
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    event = build_event(
        method="POST",
        target="/mail/send",
        headers=event_headers,
        body=raw,
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        path_parameters={},
    )
    result = functions.invoke("SendFunction", event, REPLY_DOMAIN=DOMAIN)
    answer = json.loads(result["body"])
    assert result["statusCode"] == 202, answer
    dispatch = answer["dispatch_id"]
    (sent,) = requests.get(f"{apps.url}/_sandbox/sendgrid/requests", timeout=5).json()
    assert sent["body"]["json"]["reply_to"] == {"email": f"reply+{dispatch}@{DOMAIN}"}

    outcome = post(functions, moto_server, japanese_reply(customer, f"reply+{dispatch}@{DOMAIN}"))
    assert outcome == {"outcomes": ["matched"]}
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["message_id"]["value"] == f"{dispatch}.0"  # the original's record in app 11 has this key
    assert record["dispatch_id"]["value"] == dispatch and record["matched_by"]["value"] == "reply_address"
    assert record["from_email"]["value"] == customer
    assert record["subject"]["value"] == "Re: ご注文ありがとうございます"
    assert record["body_text"]["value"] == "お世話になっております。\n納期を教えてください。"  # history cut
    assert "> ご注文 A-10023" in record["full_text"]["value"]
    assert record["attachments"]["value"] == "仕様書.pdf (application/pdf, 13 bytes)"
    (listed,) = replies(functions, f"dispatch_id={dispatch}")
    assert listed["message_id"] == f"{dispatch}.0" and listed["matched"] is True
    # the function's log lines carry neither the address nor the text
    logged = json.dumps(functions.log_lines("InboundMailFunction"), ensure_ascii=False)
    assert customer not in logged and "納期" not in logged and "Reply stored" in logged


def test_in_reply_to_ties_a_reply_without_the_reply_address(functions: Functions, moto_server, apps: Sandbox) -> None:
    customer = f"hanako-{uuid.uuid4().hex[:6]}@example.com"
    status, answer = call(
        functions,
        "SendFunction",
        "POST",
        "/mail/send",
        "/mail/send",
        json.dumps({"provider": "sendgrid", "to": [{"email": customer}], "subject": "s", "text": "t"}).encode(),
        HEADERS,
    )
    assert status == 202
    provider_id = answer["recipients"][0]["provider_message_id"]
    # SendGrid's X-Message-Id as the local part of the Message-ID the reply answers
    data = japanese_reply(
        customer, "shop@mail.example.co.jp", In_Reply_To=f"<{provider_id.split('.')[0]}@ismtpd.sendgrid.net>"
    )
    assert post(functions, moto_server, data) == {"outcomes": ["matched"]}
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["message_id"]["value"] == f"{answer['dispatch_id']}.0"
    assert record["matched_by"]["value"] == "in_reply_to"


def test_an_unmatched_reply_is_kept_listed_and_written_once(functions: Functions, moto_server, apps: Sandbox) -> None:
    data = japanese_reply(f"x-{uuid.uuid4().hex[:6]}@example.com", "info@mail.example.co.jp")
    assert post(functions, moto_server, data) == {"outcomes": ["unmatched"]}
    assert post(functions, moto_server, data) == {"outcomes": ["unmatched"]}  # S3 announces it again
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["matched_by"]["value"] == "unmatched" and "message_id" not in record
    reply_id = record["reply_id"]["value"]
    assert [r["reply_id"] for r in replies(functions, "unmatched=true")].count(reply_id) == 1


def send_to(functions: Functions, customer: str, **env: str) -> dict[str, Any]:
    from devkit.gateway import build_event
    from devkit.template import HttpRoute

    raw = json.dumps({"provider": "sendgrid", "to": [{"email": customer}], "subject": "ご注文", "text": "t"}).encode()
    event = build_event(
        method="POST",
        target="/mail/send",
        headers=HEADERS,
        body=raw,
        route=HttpRoute("POST", "/mail/send", "SendFunction"),
        path_parameters={},
    )
    result = functions.invoke("SendFunction", event, **env)
    answer: dict[str, Any] = json.loads(result["body"])
    assert result["statusCode"] == 202, answer
    return answer


def test_a_reply_address_used_by_someone_else_is_kept_unverified_never_linked(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    # Given a send to a customer, whose Reply-To names the dispatch
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    dispatch = send_to(functions, customer, REPLY_DOMAIN=DOMAIN)["dispatch_id"]
    # When someone it was not sent to writes to that address (ISO-2022-JP, as a Japanese client would)
    stranger = f"mallory-{uuid.uuid4().hex[:6]}@attacker.example"
    outcome = post(functions, moto_server, japanese_reply(stranger, f"reply+{dispatch}@{DOMAIN}"))
    # Then the reply is kept, unlinked, with the message it claimed and why
    assert outcome == {"outcomes": ["unmatched"]}
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["matched_by"]["value"] == "unmatched" and "message_id" not in record and "dispatch_id" not in record
    assert record["claimed_dispatch_id"]["value"] == dispatch
    assert "not a recipient" in record["unmatched_reason"]["value"]
    assert record["body_text"]["value"] == "お世話になっております。\n納期を教えてください。"
    assert replies(functions, f"dispatch_id={dispatch}") == []
    (listed,) = [r for r in replies(functions, "unmatched=true") if r.get("claimed_dispatch_id") == dispatch]
    assert listed["matched"] is False and listed["claimed_by"] == "reply_address"
    assert "not a recipient" in listed["unmatched_reason"]
    logged = json.dumps(functions.log_lines("InboundMailFunction"), ensure_ascii=False)
    assert stranger not in logged and customer not in logged


def test_a_forged_in_reply_to_is_kept_unverified_and_the_recipients_own_reply_is_linked(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    customer = f"hanako-{uuid.uuid4().hex[:6]}@example.com"
    answer = send_to(functions, customer)
    provider_id = answer["recipients"][0]["provider_message_id"].split(".")[0]
    in_reply_to = f"<{provider_id}@ismtpd.sendgrid.net>"
    forged = japanese_reply("someone@else.example", "shop@mail.example.co.jp", In_Reply_To=in_reply_to)
    genuine = japanese_reply(customer.upper(), "shop@mail.example.co.jp", In_Reply_To=in_reply_to)
    assert post(functions, moto_server, forged) == {"outcomes": ["unmatched"]}
    assert post(functions, moto_server, genuine) == {"outcomes": ["matched"]}
    deliver_all(functions, moto_server)
    records = {r["from_email"]["value"]: r for r in reply_records(apps)}
    assert records["someone@else.example"]["claimed_dispatch_id"]["value"] == answer["dispatch_id"]
    assert "message_id" not in records["someone@else.example"]
    assert records[customer]["message_id"]["value"] == f"{answer['dispatch_id']}.0"
    assert "unmatched_reason" not in records[customer]
    (listed,) = replies(functions, f"dispatch_id={answer['dispatch_id']}")
    assert listed["from"] == customer and listed["matched"] is True


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b'From: <a@example.com>\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\n\xe3\x81\x82\r\n--x',
        b"From: =?bogus?Q?=E3=81?= <a@example.com>\r\nSubject: =?iso-2022-jp?B?!!!not-base64?=\r\nContent-Type: text/plain; charset=iso-2022-jp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=1B$B=FF=FF=1B(B =ZZ\r\n",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 3000,
    ],
    ids=["empty", "binary", "unknown-charset", "broken-encodings", "deep-nesting"],
)
def test_hostile_mail_is_recorded_never_a_crash(functions: Functions, moto_server, apps: Sandbox, data: bytes) -> None:
    data += uuid.uuid4().hex.encode()  # a distinct object each run
    assert post(functions, moto_server, data, auth="none") == {"outcomes": ["unmatched"]}
    deliver_all(functions, moto_server)
    assert len(reply_records(apps)) == 1


def test_a_message_too_large_to_read_is_kept_by_its_headers(functions: Functions, moto_server, apps: Sandbox) -> None:
    data = japanese_reply("big@example.com", "info@mail.example.co.jp") + b"x" * 70_000
    assert post(functions, moto_server, data, MAX_INBOUND_MAIL_BYTES="65536") == {"outcomes": ["unmatched"]}
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["subject"]["value"] == "Re: ご注文ありがとうございます"
    assert "larger than the bridge reads" in record["problems"]["value"]


def test_every_unmatched_reply_can_be_paged_to_not_only_the_newest(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    # Without a cursor only the first page (`limit`, or DynamoDB's 1 MB) of unmatched replies was visible.
    for _ in range(3):
        data = japanese_reply(f"p-{uuid.uuid4().hex[:6]}@example.jp", f"shop-{uuid.uuid4().hex[:6]}@{DOMAIN}")
        assert post(functions, moto_server, data) == {"outcomes": ["unmatched"]}
    ids: set[str] = set()
    query, pages = "unmatched=true&limit=1", 0
    while True:
        status, body = call(functions, "QueryFunction", "GET", "/replies", "/replies", b"", HEADERS, query=query)
        assert status == 200, body
        ids |= {r["reply_id"] for r in body["results"]}
        pages += 1
        if not body.get("cursor") or pages > 500:
            break
        query = f"unmatched=true&limit=1&cursor={body['cursor']}"
    assert len(ids) >= 3 and pages >= 3
    status, body = call(
        functions,
        "QueryFunction",
        "GET",
        "/replies",
        "/replies",
        b"",
        HEADERS,
        query=f"dispatch_id=d_{'0' * 24}&cursor={body.get('cursor') or 'eyJ9'}",
    )
    assert status == 400 and body["error"]["code"] == "invalid_request", body


def unverified_record(apps: Sandbox, functions: Functions, moto_server, dispatch: str) -> dict[str, Any]:
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["matched_by"]["value"] == "unmatched" and "message_id" not in record and "dispatch_id" not in record
    assert record["claimed_dispatch_id"]["value"] == dispatch
    assert record["body_text"]["value"] == "お世話になっております。\n納期を教えてください。"  # kept whole
    assert replies(functions, f"dispatch_id={dispatch}") == []
    (listed,) = [r for r in replies(functions, "unmatched=true") if r.get("claimed_dispatch_id") == dispatch]
    assert listed["matched"] is False and listed["unmatched_reason"] == record["unmatched_reason"]["value"]
    return record


def test_a_recipients_reply_ses_did_not_authenticate_is_kept_unverified_never_linked(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    # Given a send to a customer, and a reply whose From names that customer but SES failed SPF, DKIM, DMARC
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    dispatch = send_to(functions, customer, REPLY_DOMAIN=DOMAIN)["dispatch_id"]
    data = japanese_reply(customer, f"reply+{dispatch}@{DOMAIN}")
    assert post(functions, moto_server, data, auth="fail") == {"outcomes": ["unmatched"]}
    # Then it is kept and listed, unlinked, with SES's results as the reason and no address in it
    record = unverified_record(apps, functions, moto_server, dispatch)
    reason = record["unmatched_reason"]["value"]
    assert "did not authenticate" in reason and "dmarc=fail" in reason and "@" not in reason
    logged = json.dumps(functions.log_lines("InboundMailFunction"), ensure_ascii=False)
    assert customer not in logged


def test_a_passing_authentication_results_the_sender_wrote_below_ses_does_not_link(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    dispatch = send_to(functions, customer, REPLY_DOMAIN=DOMAIN)["dispatch_id"]
    forged = "amazonses.com; spf=pass smtp.mailfrom=example.com; dkim=pass header.d=example.com; dmarc=pass"
    data = japanese_reply(customer, f"reply+{dispatch}@{DOMAIN}", Authentication_Results=forged)
    assert post(functions, moto_server, data, auth="fail") == {"outcomes": ["unmatched"]}
    assert "dmarc=fail" in unverified_record(apps, functions, moto_server, dispatch)["unmatched_reason"]["value"]


def test_without_ses_fields_a_reply_is_unverified_unless_authentication_is_not_required(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    dispatch = send_to(functions, customer, REPLY_DOMAIN=DOMAIN)["dispatch_id"]
    data = japanese_reply(customer, f"reply+{dispatch}@{DOMAIN}")
    assert post(functions, moto_server, data, auth="none") == {"outcomes": ["unmatched"]}
    assert (
        "no Authentication-Results from SES"
        in (unverified_record(apps, functions, moto_server, dispatch)["unmatched_reason"]["value"])
    )
    # An inbound path that is not SES: REPLY_REQUIRE_AUTH=false believes the From header (a distinct object)
    again = data + b"\r\n"
    assert post(functions, moto_server, again, auth="none", REPLY_REQUIRE_AUTH="false") == {"outcomes": ["matched"]}
    (listed,) = replies(functions, f"dispatch_id={dispatch}")
    assert listed["matched"] is True and "sender_auth" not in listed


def test_a_reply_ses_judged_spam_or_infected_is_kept_linked_and_flagged(
    functions: Functions, moto_server, apps: Sandbox
) -> None:
    customer = f"taro-{uuid.uuid4().hex[:6]}@example.com"
    dispatch = send_to(functions, customer, REPLY_DOMAIN=DOMAIN)["dispatch_id"]
    data = as_ses_stores(japanese_reply(customer, f"reply+{dispatch}@{DOMAIN}"), "pass", spam="FAIL", virus="FAIL")
    assert post(functions, moto_server, data, auth="none") == {"outcomes": ["matched"]}
    deliver_all(functions, moto_server)
    (record,) = reply_records(apps)
    assert record["flagged"]["value"] == "spam virus" and record["dispatch_id"]["value"] == dispatch
    (listed,) = replies(functions, f"dispatch_id={dispatch}")
    assert listed["flagged"] == ["spam", "virus"] and listed["spam_verdict"] == "FAIL"
    assert listed["sender_auth"] == "spf=pass dkim=pass dmarc=pass"
